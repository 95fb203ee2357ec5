//! Remote capability management on a node's root actor, and the revocations nodes
//! spread over gossip.
//!
//! | Request | Behavior | Answer |
//! |---|---|---|
//! | [`ListContext`] | `/dms/cap/list` | the node's capability context |
//! | [`Anchor`] | `/dms/cap/anchor` | [`Anchored`]: the context's new version |
//! | [`Revoke`] | `/dms/cap/revoke` | [`Revoked`]: the revocation token, and whether it was spread |
//! | [`Revocation`] | `/public/cap/revocation` on [`REVOCATION_TOPIC`] | [`Imported`] |

use dms_ucan::CapContext;
use serde::{Deserialize, Serialize};

use crate::Request;

/// Topic revocations are spread on.
pub const REVOCATION_TOPIC: &str = "/dms/cap/revocations";
/// Behavior that receives spread revocations.
pub const REVOCATION_BEHAVIOR: &str = "/public/cap/revocation";

/// The node's capability context (answer: the context).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListContext {}

impl Request for ListContext {
    const BEHAVIOR: &'static str = "/dms/cap/list";
    type Response = Option<CapContext>;
}

/// Add trust anchors to the node's context; at least one field (answer: [`Anchored`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Anchor {
    /// A DID to trust as a root.
    #[serde(default)]
    pub root: Option<String>,
    /// A token (`dmscap1.…`) the node requires of others.
    #[serde(default)]
    pub require: Option<String>,
    /// A token the node provides to others.
    #[serde(default)]
    pub provide: Option<String>,
}

impl Request for Anchor {
    const BEHAVIOR: &'static str = "/dms/cap/anchor";
    type Response = Anchored;
}

/// The anchors are in force.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Anchored {
    /// The context changed.
    pub context: String,
    /// Its version now.
    pub version: u64,
}

/// Revoke a token by its CID, and spread the revocation (answer: [`Revoked`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revoke {
    /// The token's CID.
    pub cid: String,
}

impl Request for Revoke {
    const BEHAVIOR: &'static str = "/dms/cap/revoke";
    type Response = Revoked;
}

/// The revocation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revoked {
    /// The CID revoked.
    pub revoked: String,
    /// The revocation token.
    pub token: String,
    /// Whether it was published on [`REVOCATION_TOPIC`].
    pub broadcast: bool,
}

/// A revocation spread over gossip (answer: [`Imported`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revocation {
    /// The revocation token.
    pub token: String,
}

impl Request for Revocation {
    const BEHAVIOR: &'static str = REVOCATION_BEHAVIOR;
    type Response = Imported;
}

/// Whether the receiver kept it (it keeps revocations by issuers it trusts).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Imported {
    /// Kept.
    pub imported: bool,
}
