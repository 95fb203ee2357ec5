//! Capability tokens after the UCAN 1.0 model, their verification, and capability
//! contexts: the zero-trust authorization under every dms message.
//!
//! A token says: *issuer* grants *audience* the *commands* (paths; a path implies every
//! path under it) and broadcast *topics*, about a *subject*, between *not-before* and
//! *expiry*, under *policies*, citing its *proof* (the parent's content id). Tokens are
//! canonical DAG-CBOR, signed with the issuer's `did:key`, and identified by content id.
//! Delegations chain from a root to a leaf; every link may only narrow what its parent
//! granted. A [`CapContext`] decides whose roots it trusts and what was revoked.
//!
//! # Module map
//! - [`command`]: command paths and topics, and the "implies" relation.
//! - [`policy`]: predicates on invocation arguments.
//! - [`token`]: payload, canonical encoding, signing, content id.
//! - [`chain`]: chains, root first, and their one-line text form.
//! - [`verify`]: chain verification and the cache of verified chains.
//! - [`context`]: capability contexts: roots, require/provide anchors, revocations,
//!   grant, delegate, revoke, authorize.
//! - [`live`]: live contexts shared by every actor of an identity, and [`Contexts`], the
//!   one write path to them (storage is the caller's, behind [`ContextStore`]).
//! - [`error`]: build/decode errors and typed [`Denial`]s.

pub mod chain;
pub mod command;
pub mod context;
pub mod error;
pub mod live;
pub mod policy;
pub mod token;
pub mod verify;

pub use chain::{Chain, Limits};
pub use command::Command;
pub use context::{Authorization, CapContext, Request, Spec};
pub use error::{Denial, Error, Reason};
pub use live::{ContextStore, Contexts, LiveContext};
pub use policy::Predicate;
pub use token::{Kind, Payload, Token};
pub use verify::{Verified, Verifier};

/// The current time in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
