//! Telemetry events: what a node records about deployments, allocations, bids,
//! capability refusals, executors and peers, kept in its store, shipped to sinks and
//! queried with `dms events`.
//!
//! An event is flat JSON with a fixed set of fields, so that every sink (the local
//! store's indexes, Elasticsearch's index template, a Kibana dashboard) reads it the same
//! way. Its `id` sorts by time on the node that made it.

use serde::{Deserialize, Serialize};

/// The kinds of event, a bounded set (metrics and dashboards group by it).
pub mod kind {
    /// A deployment changed state or made progress (orchestrator).
    pub const DEPLOYMENT: &str = "deployment";
    /// An allocation changed state (provider).
    pub const ALLOCATION: &str = "allocation";
    /// A bid was made, refused or chosen.
    pub const BID: &str = "bid";
    /// A message was refused by the capability check.
    pub const CAPABILITY: &str = "capability";
    /// An executor failed to do what it was asked.
    pub const EXECUTOR: &str = "executor";
    /// A peer connected or disconnected.
    pub const PEER: &str = "peer";
    /// The node started or stopped.
    pub const NODE: &str = "node";
    /// Every kind, for validation and help texts.
    pub const ALL: &[&str] = &[DEPLOYMENT, ALLOCATION, BID, CAPABILITY, EXECUTOR, PEER, NODE];
}

/// One telemetry event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique on its node and ordered by time there: `<at_ms, 13 digits>-<sequence>`.
    pub id: String,
    /// When it happened, RFC 3339 in UTC with milliseconds (Elasticsearch's time field).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// When it happened, Unix milliseconds.
    pub at_ms: u64,
    /// The DID of the node that recorded it.
    pub node: String,
    /// One of [`kind::ALL`].
    pub kind: String,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// What happened, for a person.
    pub message: String,
    /// The deployment it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The allocation it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<String>,
    /// The other peer it concerns (a peer id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// A machine-readable reason code (a bid refusal's, a capability refusal's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The state reached, for state changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The trace it belongs to (32 hex digits), when tracing is exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// What `dms events` asks for: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    /// Only events of this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Only events of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only events at or after this time (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Only events after this id (a follower's cursor): the oldest first. Without it, the
    /// newest `limit` events, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Most events returned (at most 1000; 0 means 100).
    #[serde(default)]
    pub limit: usize,
}
