//! The dms actor runtime: every interaction is a signed envelope from one actor to
//! another, checked and authorized before anything runs.
//!
//! The runtime knows nothing of nodes, deployments or executors, and nothing of the
//! network: a [`Transport`] moves bytes (libp2p in `dms-network`, memory in tests).
//! The contract — ordering, delivery, timeouts, stop — is in `docs/actor-semantics.md`.
//!
//! # Module map
//! - [`envelope`]: handles, envelopes (with the sender's trace context), canonical
//!   signing, the span a behavior runs in.
//! - [`runtime`]: [`Router`] (per node), the transport trait, behaviors and settings;
//!   `actor.rs` ([`Actor`]: construction, contexts, stop), `send.rs` (invoke/reply,
//!   broadcast, gather) and `receive.rs` (the receive pipeline) implement the actor.
//! - [`stateful`]: state-owning actors (one message at a time on owned state), their
//!   owned tasks, and parent/child links with exit reasons.
//! - [`monitor`]: one actor watching another, local or remote, with a typed reason when
//!   it is down; the peer liveness judgement (`healthy → unknown → lost`).
//! - [`relay`]: envelopes signed by local clients (the CLI), relayed by the node.
//! - [`replay`]: the nonce window.
//! - [`limiter`]: rate limits per peer and behavior class.
//! - [`error`]: [`ActorError`], the typed answer to every refused message.

mod actor;
pub mod envelope;
pub mod error;
pub mod limiter;
pub mod monitor;
mod receive;
pub mod relay;
pub mod replay;
pub mod runtime;
mod send;
pub mod stateful;

pub use actor::{Actor, Renewal};
pub use envelope::{Envelope, Handle};
pub use error::ActorError;
pub use monitor::{Down, Liveness, Monitor, PeerState};
pub use relay::{BroadcastReply, client_request};
pub use runtime::{
    Behavior, BoxFuture, Config, Message, Reply, Responder, Router, Transport, json_reply,
};
pub use send::Answers;
pub use stateful::{Context, ExitReason, Stateful};
