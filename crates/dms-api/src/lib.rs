//! The local REST API of the dms daemon.
//!
//! The CLI talks to its daemon only through this API (DESIGN.md §2). It is bound to
//! loopback by default, and [`access`] refuses requests from non-loopback peers even when
//! the bind address is changed, unless remote access is enabled in [`Config`] — and then
//! only with the configured bearer token.
//!
//! The API relays and reads; it never orchestrates. What it serves comes from the node
//! through [`NodeInfo`].
//!
//! # Module map
//! - [`config`]: the `[api]` section of the node configuration.
//! - [`access`]: the loopback / bearer-token gate in front of every route.
//! - [`routes`]: the handlers and the OpenAPI document generated from them.
//! - [`actor`]: the actor relay: envelopes signed by the CLI, relayed by the node.
//! - [`dashboard`]: the web page at `/dashboard/`, its one-time logins and sessions.
//! - [`caps`]: capability contexts read and written for the CLI while the daemon holds
//!   the store.
//! - [`server`]: binding, serving and graceful shutdown.
//! - [`conn`]: the accept loop: header timeout, connection cap with eviction.
//! - `socket`: the owner-only Unix socket (`api.socket`, `api.socket_group`).
//! - [`error`]: the error body every failed request answers with, and start-up errors.

pub mod access;
pub mod actor;
pub mod caps;
pub mod config;
pub mod conn;
pub mod dashboard;
pub mod error;
pub mod routes;
pub mod server;
mod socket;

pub use actor::Relay;
pub use caps::Caps;
pub use config::Config;
pub use dashboard::Dashboard;
pub use error::{ApiError, Error, ErrorBody};
pub use routes::{NodeInfo, openapi};
pub use server::Server;
