//! Typed key-value repositories ([`Repo`]).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, ControlFlow};

use redb::TableDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::storage;
use crate::{Error, Readable, Store, WriteTx, names};

/// redb table layout shared by repositories and collection documents: `&str -> &[u8]`.
pub(crate) type KvDef<'n> = TableDefinition<'n, &'static str, &'static [u8]>;

/// A typed repository: one redb table mapping string keys to values of type `V`.
///
/// Keys are ordered by their UTF-8 bytes, so [`Repo::list`] and [`Repo::scan_prefix`] return
/// entries in that order. Values are stored as JSON (`serde_json`): self-describing, readable
/// when debugging a database file, and tolerant of schema evolution through serde attributes
/// (`#[serde(default)]` for added fields, unknown fields ignored unless denied). A value that
/// no longer deserializes into `V` reads as [`Error::Decode`] rather than being misread.
///
/// `Repo` holds only the table name, so it is `Copy` and is typically a `const`:
///
/// ```
/// # use dms_store::{Repo, Store};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Device { name: String }
///
/// const DEVICES: Repo<Device> = Repo::new("devices");
///
/// # fn main() -> Result<(), dms_store::Error> {
/// # let dir = tempfile::tempdir().map_err(dms_store::Error::custom)?;
/// # let store = Store::open(dir.path().join("db"))?;
/// DEVICES.put_now(&store, "dev-1", &Device { name: "edge-1".into() })?;
/// assert!(DEVICES.get_now(&store, "dev-1")?.is_some());
/// # Ok(())
/// # }
/// ```
pub struct Repo<V> {
    table: &'static str,
    _value: PhantomData<fn() -> V>,
}

impl<V> Repo<V> {
    /// A repository stored in the table `table`.
    ///
    /// The name must be 1 to 128 bytes of ASCII letters, digits, `_`, `-`, `.` and `:`, and
    /// must not be used by another repository with a different value type. It is checked on
    /// each operation, which returns [`Error::InvalidName`] for an invalid name.
    #[must_use]
    pub const fn new(table: &'static str) -> Self {
        Repo { table, _value: PhantomData }
    }

    /// The table name.
    #[must_use]
    pub const fn table(&self) -> &'static str {
        self.table
    }

    fn def(&self) -> Result<KvDef<'static>, Error> {
        names::validate("table", self.table)?;
        Ok(TableDefinition::new(self.table))
    }
}

impl<V> Clone for Repo<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Repo<V> {}

impl<V> fmt::Debug for Repo<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repo").field("table", &self.table).finish()
    }
}

impl<V: Serialize + DeserializeOwned> Repo<V> {
    /// Inserts or replaces the value under `key`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Encode`] if `value` cannot be serialized,
    /// [`Error::Storage`].
    pub fn put(&self, tx: &WriteTx, key: &str, value: &V) -> Result<(), Error> {
        let def = self.def()?;
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Encode {
            table: self.table.to_owned(),
            key: key.to_owned(),
            source,
        })?;
        let mut table = tx.inner.open_table(def).map_err(storage)?;
        table.insert(key, bytes.as_slice()).map_err(storage)?;
        Ok(())
    }

    /// The value under `key`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Decode`] if the stored value is not a `V`,
    /// [`Error::Storage`].
    pub fn get(&self, tx: &impl Readable, key: &str) -> Result<Option<V>, Error> {
        let view = tx.open_view(self.def()?)?;
        view.get_with(key, |bytes| self.decode(key, bytes))?.transpose()
    }

    /// Removes `key`; returns whether it was present.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Storage`].
    pub fn delete(&self, tx: &WriteTx, key: &str) -> Result<bool, Error> {
        let mut table = tx.inner.open_table(self.def()?).map_err(storage)?;
        let existed = table.remove(key).map_err(storage)?.is_some();
        Ok(existed)
    }

    /// Every entry, in key order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Decode`], [`Error::Storage`].
    pub fn list(&self, tx: &impl Readable) -> Result<Vec<(String, V)>, Error> {
        self.collect(tx, (Bound::Unbounded, Bound::Unbounded), "")
    }

    /// Every entry whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Decode`], [`Error::Storage`].
    pub fn scan_prefix(&self, tx: &impl Readable, prefix: &str) -> Result<Vec<(String, V)>, Error> {
        self.collect(tx, (Bound::Included(prefix), Bound::Unbounded), prefix)
    }

    /// Number of entries.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Storage`].
    pub fn count(&self, tx: &impl Readable) -> Result<u64, Error> {
        let view = tx.open_view(self.def()?)?;
        let mut n = 0u64;
        view.for_each_all(|_, _| {
            n += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(n)
    }

    /// [`Repo::put`] in a transaction of its own, committed durably before returning.
    ///
    /// # Errors
    ///
    /// As [`Repo::put`] and [`Store::write`].
    pub fn put_now(&self, store: &Store, key: &str, value: &V) -> Result<(), Error> {
        store.write(|tx| self.put(tx, key, value))
    }

    /// [`Repo::put`] in its own lazy transaction ([`Store::write_lazy`]): visible at
    /// once, durable with the next durable write.
    ///
    /// # Errors
    ///
    /// As [`Repo::put`] and [`Store::write`].
    pub fn put_lazy(&self, store: &Store, key: &str, value: &V) -> Result<(), Error> {
        store.write_lazy(|tx| self.put(tx, key, value))
    }

    /// [`Repo::get`] from a fresh snapshot.
    ///
    /// # Errors
    ///
    /// As [`Repo::get`] and [`Store::read`].
    pub fn get_now(&self, store: &Store, key: &str) -> Result<Option<V>, Error> {
        self.get(&store.read()?, key)
    }

    /// [`Repo::delete`] in a transaction of its own, committed durably before returning.
    ///
    /// # Errors
    ///
    /// As [`Repo::delete`] and [`Store::write`].
    pub fn delete_now(&self, store: &Store, key: &str) -> Result<bool, Error> {
        store.write(|tx| self.delete(tx, key))
    }

    /// [`Repo::list`] from a fresh snapshot.
    ///
    /// # Errors
    ///
    /// As [`Repo::list`] and [`Store::read`].
    pub fn list_now(&self, store: &Store) -> Result<Vec<(String, V)>, Error> {
        self.list(&store.read()?)
    }

    /// [`Repo::scan_prefix`] from a fresh snapshot.
    ///
    /// # Errors
    ///
    /// As [`Repo::scan_prefix`] and [`Store::read`].
    pub fn scan_prefix_now(&self, store: &Store, prefix: &str) -> Result<Vec<(String, V)>, Error> {
        self.scan_prefix(&store.read()?, prefix)
    }

    fn collect(
        &self,
        tx: &impl Readable,
        range: (Bound<&str>, Bound<&str>),
        prefix: &str,
    ) -> Result<Vec<(String, V)>, Error> {
        let view = tx.open_view(self.def()?)?;
        let mut out = Vec::new();
        view.for_each::<&str>(range, |key, bytes| {
            if !key.starts_with(prefix) {
                return Ok(ControlFlow::Break(()));
            }
            out.push((key.to_owned(), self.decode(key, bytes)?));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<V, Error> {
        serde_json::from_slice(bytes).map_err(|source| Error::Decode {
            table: self.table.to_owned(),
            key: key.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Device {
        name: String,
        cpus: u32,
    }

    const DEVICES: Repo<Device> = Repo::new("devices");
    const COUNTERS: Repo<u64> = Repo::new("counters");

    fn dev(name: &str, cpus: u32) -> Device {
        Device { name: name.to_owned(), cpus }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("db.redb")).expect("open");
        (dir, store)
    }

    #[test]
    fn put_get_delete() {
        let (_dir, store) = store();
        assert_eq!(DEVICES.get_now(&store, "a").expect("get"), None);
        DEVICES.put_now(&store, "a", &dev("a", 2)).expect("put");
        assert_eq!(DEVICES.get_now(&store, "a").expect("get"), Some(dev("a", 2)));
        DEVICES.put_now(&store, "a", &dev("a2", 4)).expect("overwrite");
        assert_eq!(DEVICES.get_now(&store, "a").expect("get"), Some(dev("a2", 4)));
        assert!(DEVICES.delete_now(&store, "a").expect("delete"));
        assert!(!DEVICES.delete_now(&store, "a").expect("delete again"));
        assert_eq!(DEVICES.get_now(&store, "a").expect("get"), None);
    }

    #[test]
    fn list_and_prefix_scan_are_ordered() {
        let (_dir, store) = store();
        store
            .write(|tx| {
                for key in ["node/b", "dev/2", "dev/1", "dev/10", "devx", "a"] {
                    DEVICES.put(tx, key, &dev(key, 1))?;
                }
                Ok(())
            })
            .expect("write");
        let keys = |v: Vec<(String, Device)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(DEVICES.list_now(&store).expect("list")),
            ["a", "dev/1", "dev/10", "dev/2", "devx", "node/b"]
        );
        let tx = store.read().expect("read");
        assert_eq!(
            keys(DEVICES.scan_prefix(&tx, "dev/").expect("scan")),
            ["dev/1", "dev/10", "dev/2"]
        );
        assert_eq!(keys(DEVICES.scan_prefix(&tx, "zzz").expect("scan")), [""; 0]);
        assert_eq!(DEVICES.scan_prefix(&tx, "").expect("scan").len(), 6);
        assert_eq!(DEVICES.count(&tx).expect("count"), 6);
    }

    #[test]
    fn never_created_table_reads_as_empty() {
        let (_dir, store) = store();
        let tx = store.read().expect("read");
        assert_eq!(DEVICES.get(&tx, "x").expect("get"), None);
        assert!(DEVICES.list(&tx).expect("list").is_empty());
        assert!(DEVICES.scan_prefix(&tx, "x").expect("scan").is_empty());
        assert_eq!(DEVICES.count(&tx).expect("count"), 0);
        store
            .write(|tx| {
                assert_eq!(DEVICES.get(tx, "x")?, None);
                assert!(!DEVICES.delete(tx, "x")?);
                Ok(())
            })
            .expect("write");
    }

    #[test]
    fn failed_transaction_writes_nothing() {
        let (_dir, store) = store();
        COUNTERS.put_now(&store, "kept", &1).expect("put");
        let result: Result<(), Error> = store.write(|tx| {
            DEVICES.put(tx, "a", &dev("a", 1))?;
            COUNTERS.put(tx, "kept", &2)?;
            COUNTERS.delete(tx, "kept")?;
            Err(Error::custom("changed my mind"))
        });
        assert_eq!(result.expect_err("must fail").to_string(), "changed my mind");
        assert_eq!(DEVICES.get_now(&store, "a").expect("get"), None);
        assert_eq!(COUNTERS.get_now(&store, "kept").expect("get"), Some(1));
    }

    #[test]
    fn panicking_transaction_writes_nothing() {
        let (_dir, store) = store();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.write(|tx| -> Result<(), Error> {
                DEVICES.put(tx, "a", &dev("a", 1))?;
                panic!("boom");
            })
        }));
        assert!(result.is_err());
        assert_eq!(DEVICES.get_now(&store, "a").expect("get"), None);
        DEVICES.put_now(&store, "b", &dev("b", 1)).expect("store still usable");
    }

    #[test]
    fn two_repos_commit_together() {
        let (_dir, store) = store();
        store
            .write(|tx| {
                DEVICES.put(tx, "a", &dev("a", 1))?;
                COUNTERS.put(tx, "devices", &1)?;
                // Reads inside the transaction see its own writes.
                assert_eq!(DEVICES.get(tx, "a")?, Some(dev("a", 1)));
                Ok(())
            })
            .expect("write");
        let tx = store.read().expect("read");
        assert_eq!(DEVICES.get(&tx, "a").expect("get"), Some(dev("a", 1)));
        assert_eq!(COUNTERS.get(&tx, "devices").expect("get"), Some(1));
    }

    #[test]
    fn snapshot_does_not_see_later_commits() {
        let (_dir, store) = store();
        COUNTERS.put_now(&store, "n", &1).expect("put");
        let snapshot = store.read().expect("read");
        COUNTERS.put_now(&store, "n", &2).expect("put");
        assert_eq!(COUNTERS.get(&snapshot, "n").expect("get"), Some(1));
        assert_eq!(COUNTERS.get_now(&store, "n").expect("get"), Some(2));
    }

    #[test]
    fn wrong_value_type_is_a_decode_error() {
        let (_dir, store) = store();
        COUNTERS.put_now(&store, "n", &7).expect("put");
        let as_devices: Repo<Device> = Repo::new("counters");
        let err = as_devices.get_now(&store, "n").expect_err("must fail");
        assert!(
            matches!(&err, Error::Decode { table, key, .. } if table == "counters" && key == "n"),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_table_name_is_reported() {
        let (_dir, store) = store();
        let bad: Repo<u64> = Repo::new("no/slashes");
        assert!(matches!(
            bad.put_now(&store, "k", &1),
            Err(Error::InvalidName { kind: "table", .. })
        ));
        assert!(matches!(bad.get_now(&store, "k"), Err(Error::InvalidName { .. })));
        let empty: Repo<u64> = Repo::new("");
        assert!(matches!(empty.list_now(&store), Err(Error::InvalidName { .. })));
    }

    #[test]
    fn unencodable_value_is_an_encode_error() {
        let (_dir, store) = store();
        let maps: Repo<std::collections::HashMap<(u8, u8), u8>> = Repo::new("maps");
        let value = std::iter::once(((1, 2), 3)).collect();
        let err = maps.put_now(&store, "k", &value).expect_err("must fail");
        assert!(matches!(err, Error::Encode { .. }), "{err:?}");
        assert!(maps.list_now(&store).expect("list").is_empty());
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.redb");
        {
            let store = Store::open(&path).expect("open");
            DEVICES.put_now(&store, "a", &dev("a", 3)).expect("put");
        }
        let store = Store::open(&path).expect("reopen");
        assert_eq!(DEVICES.get_now(&store, "a").expect("get"), Some(dev("a", 3)));
    }
}
