//! Deployments: from an ensemble to allocations running on providers.
//!
//! The orchestrating node's side of ../shared/DESIGN.md §5. A user asks its own node to
//! deploy an ensemble; the node's [`Registry`] creates an orchestrator actor for it
//! (inbox = deployment id, persisted), which asks providers for bids, chooses by score
//! under hard constraints, commits and allocates on the chosen providers, starts the
//! allocations in dependency order and follows them until they finish or are shut down.
//!
//! The orchestrator reaches workloads only through messages to allocation actors (the
//! provider side is `dms-provider`; the two share only `dms-protocol`); it never calls an
//! executor or the network.
//!
//! # Module map
//! - [`ask`]: ensemble nodes → what providers are asked for; start order.
//! - [`select`]: choosing bids, and explaining why nothing fits.
//! - [`deployment`]: the persisted record, states and events (defined in
//!   `dms_protocol::record`, since the CLI reads them too).
//! - [`orchestrator`]: the orchestrator actor's life cycle; in its submodules the sans-IO
//!   placement machine (record × input → effects), its policy (bid window, back-off,
//!   strikes) and the driver that carries its effects out.
//! - [`registry`]: the [`Registry`] of a node's deployments; quotas and pruning by
//!   policy (`quota.rs`).
//! - [`error`]: the typed [`Error`] of deployment requests.
//! - [`behaviors`]: `/dms/node/deployment/*` on the node's root actor.

pub mod ask;
pub mod behaviors;
pub mod directory;
pub mod error;
pub mod orchestrator;
mod quota;
pub mod registry;
pub mod select;

pub use deployment::{Deployment, DeploymentState, Event, Summary};
pub use dms_protocol as protocol;
pub use dms_protocol::record as deployment;
pub use error::Error;
pub use orchestrator::{NewDeployment, Plan, Quotas, Registry, Settings, Shared, Status};
