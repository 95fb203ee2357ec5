//! What a node says about its network: connected peers, itself, its DHT routing table
//! and gossip scores. The network layer fills them in; the node's behaviors answer with
//! them; the CLI reads them.

use serde::{Deserialize, Serialize};

/// How a peer is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// A direct connection.
    Direct,
    /// Through a relay (`/p2p-circuit`).
    Relayed,
}

/// A connected peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its peer id.
    pub peer_id: String,
    /// The remote addresses of its connections.
    pub addrs: Vec<String>,
    /// Direct when any connection is direct.
    pub path: Path,
    /// Last ping round trip, in milliseconds.
    pub rtt_ms: Option<u64>,
}

/// What the host says about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SelfInfo {
    /// Its peer id.
    pub peer_id: String,
    /// Listen addresses, with `/p2p/<peer id>`.
    pub listen: Vec<String>,
    /// NAT status from AutoNAT: `public`, `private` or `unknown`.
    pub nat: String,
}

/// A peer in the DHT routing table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DhtEntry {
    /// Its peer id.
    pub peer_id: String,
    /// The addresses the table holds for it.
    pub addrs: Vec<String>,
    /// Whether a connection to it is open now.
    pub connected: bool,
}

/// A peer's gossipsub score (negative scores lead to pruning and graylisting).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerScore {
    /// Its peer id.
    pub peer_id: String,
    /// The score, when the peer is known to gossipsub.
    pub score: Option<f64>,
    /// Topics it is subscribed to, as far as this node knows.
    pub topics: Vec<String>,
}
