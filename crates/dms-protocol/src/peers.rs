//! CLI → node: the network behaviors of a node's root actor (`dms peers …`), and the
//! public greetings any peer may ask for.
//!
//! | Request | Behavior | Answer |
//! |---|---|---|
//! | [`ListPeers`] | `/dms/node/peers/list` | connected peers: address, direct/relayed, RTT |
//! | [`SelfInfoRequest`] | `/dms/node/peers/self` | peer id, listen addresses, NAT status |
//! | [`Connect`] | `/dms/node/peers/connect` | [`Connected`] |
//! | [`Ping`] | `/dms/node/peers/ping` | [`Pong`]: an actor round trip to the peer |
//! | [`Dht`] | `/dms/node/peers/dht` | the Kademlia routing table |
//! | [`Scores`] | `/dms/node/peers/score` | gossipsub scores of connected peers |
//! | [`Hello`] | `/public/hello` | [`Greeting`] (no capability needed) |
//! | [`BroadcastHello`] | `/broadcast/hello` on [`HELLO_TOPIC`] | [`Greeting`] from every node |
//! | [`PublicStatus`] | `/public/status` | [`NodeStatus`] (no capability needed) |

use dms_crypto::Did;
pub use dms_types::peers::{DhtEntry, Path, PeerInfo, PeerScore, SelfInfo};
use serde::{Deserialize, Serialize};

use crate::Request;

/// Topic of `/broadcast/hello`.
pub const HELLO_TOPIC: &str = "/dms/hello";

/// Connected peers (answer: [`PeerInfo`] list).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListPeers {}

impl Request for ListPeers {
    const BEHAVIOR: &'static str = "/dms/node/peers/list";
    type Response = Vec<PeerInfo>;
}

/// What the node says about itself (answer: [`SelfInfo`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SelfInfoRequest {}

impl Request for SelfInfoRequest {
    const BEHAVIOR: &'static str = "/dms/node/peers/self";
    type Response = SelfInfo;
}

/// Dial a peer (answer: [`Connected`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Connect {
    /// A multiaddr with `/p2p/<peer id>`.
    pub address: String,
}

impl Request for Connect {
    const BEHAVIOR: &'static str = "/dms/node/peers/connect";
    type Response = Connected;
}

/// The peer was dialled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Connected {
    /// The address dialled.
    pub connected: String,
}

/// An actor round trip to a peer's `/public/hello` (answer: [`Pong`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ping {
    /// The peer id.
    pub peer: String,
}

impl Request for Ping {
    const BEHAVIOR: &'static str = "/dms/node/peers/ping";
    type Response = Pong;
}

/// How the round trip went.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pong {
    /// The peer id.
    pub peer: String,
    /// Its node's DID.
    pub did: Did,
    /// The round trip, in milliseconds.
    pub rtt_ms: f64,
    /// The dms version it runs, when it said.
    #[serde(default)]
    pub version: Option<String>,
}

/// The DHT routing table (answer: [`DhtEntry`] list).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Dht {}

impl Request for Dht {
    const BEHAVIOR: &'static str = "/dms/node/peers/dht";
    type Response = Vec<DhtEntry>;
}

/// Gossip scores of connected peers (answer: [`PeerScore`] list).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Scores {}

impl Request for Scores {
    const BEHAVIOR: &'static str = "/dms/node/peers/score";
    type Response = Vec<PeerScore>;
}

/// Who are you (answer: [`Greeting`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Hello {}

impl Request for Hello {
    const BEHAVIOR: &'static str = "/public/hello";
    type Response = Greeting;
}

/// Who are you, to every node on [`HELLO_TOPIC`] (answer: [`Greeting`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BroadcastHello {}

impl Request for BroadcastHello {
    const BEHAVIOR: &'static str = "/broadcast/hello";
    type Response = Greeting;
}

/// A node introducing itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Greeting {
    /// Its DID.
    pub did: Did,
    /// Its peer id.
    pub peer_id: String,
    /// The dms version it runs.
    pub version: String,
}

/// How a node is doing (answer: [`NodeStatus`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PublicStatus {}

impl Request for PublicStatus {
    const BEHAVIOR: &'static str = "/public/status";
    type Response = NodeStatus;
}

/// A node's public status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its DID.
    pub did: Did,
    /// How many peers it is connected to.
    pub peers: usize,
    /// Seconds since it started.
    pub uptime_secs: u64,
}
