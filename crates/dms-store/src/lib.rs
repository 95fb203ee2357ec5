//! Embedded database facade for dms, over [redb](https://docs.rs/redb).
//!
//! One [`Store`] is one database file, locked against other processes. Everything is read and
//! written through transactions:
//!
//! - [`Store::read`] gives a [`ReadTx`], a consistent snapshot.
//! - [`Store::write`] runs a closure with a [`WriteTx`] and commits durably (fsync) if it
//!   returns `Ok`, or aborts if it returns `Err`. Everything written in the closure — to any
//!   number of repositories and collections — commits atomically.
//!
//! Two ways to store data:
//!
//! - [`Repo<V>`]: a typed table of string keys (ordered) to `serde` values, stored as JSON.
//!   Declared as a `const` and used with a transaction (`put`, `get`, `delete`, `list`,
//!   `scan_prefix`) or on its own (`put_now`, `get_now`, …).
//! - [`Collection`]: schemaless JSON documents by id, with secondary indexes on dotted field
//!   paths and [`Query`]s of equality and range conditions.
//!
//! ```
//! use std::ops::Bound;
//! use dms_store::{Query, Repo, Store};
//! use serde_json::json;
//!
//! const SETTINGS: Repo<String> = Repo::new("settings");
//!
//! # fn main() -> Result<(), dms_store::Error> {
//! # let dir = tempfile::tempdir().map_err(dms_store::Error::custom)?;
//! let store = Store::open(dir.path().join("dms.redb"))?;
//! let pods = store.collection("pods");
//! store.write(|tx| {
//!     SETTINGS.put(tx, "cluster", &"edge".to_owned())?;
//!     pods.ensure_index(tx, "resources.cpu")?;
//!     pods.insert(tx, "p1", &json!({"status": "running", "resources": {"cpu": 2}}))?;
//!     pods.insert(tx, "p2", &json!({"status": "running", "resources": {"cpu": 0.5}}))?;
//!     Ok(())
//! })?;
//!
//! let tx = store.read()?;
//! let big = pods.find(
//!     &tx,
//!     &Query::new()
//!         .eq("status", json!("running"))
//!         .range("resources.cpu", Bound::Included(json!(1)), Bound::Unbounded),
//! )?;
//! assert_eq!(big.len(), 1);
//! assert_eq!(big[0].0, "p1");
//! # Ok(())
//! # }
//! ```
//!
//! # Module map
//!
//! | module         | contents                                                            |
//! |----------------|---------------------------------------------------------------------|
//! | `store`        | [`Store`], [`ReadTx`], [`WriteTx`], [`Readable`]: opening, locking, transactions |
//! | `group`        | [`Store::write_queued`], [`Committer`]: group commit, many writers' writes in one flushed transaction |
//! | `repo`         | [`Repo`]: typed key-value tables                                    |
//! | `collection`   | [`Collection`], [`Plan`]: documents, index maintenance, query planning |
//! | `query`        | [`Query`], [`Condition`]: the query builder and match semantics      |
//! | `encoding`     | order-preserving index encoding of JSON scalars, dotted field paths |
//! | `names`        | validation of table and collection names                            |
//! | `error`        | [`Error`]                                                           |
//!
//! # Durability and concurrency
//!
//! A successful [`Store::write`] is on disk when it returns (redb's `Durability::Immediate`:
//! checksummed commit slots and an fsync). After a crash or power loss, the next
//! [`Store::open`] finds every transaction that committed and none of the others, repairing
//! the file if needed. Reads run concurrently with each other and with the single writer;
//! writers are serialized. All calls block on I/O.
//!
//! See the crate's `README.md` for the table layout and index design.

mod collection;
mod encoding;
mod error;
mod group;
mod names;
mod query;
mod repo;
mod store;

pub use collection::{Collection, Plan};
pub use error::Error;
pub use group::Committer;
pub use names::MAX_NAME_LEN;
pub use query::{Condition, Query};
pub use repo::Repo;
pub use store::{ReadTx, Readable, Store, WriteTx};
