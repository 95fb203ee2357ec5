//! CLI → node: the node's event journal and its log level.
//!
//! | Request | Behavior | Answer |
//! |---|---|---|
//! | [`ListEvents`] | `/dms/node/events/list` | the events asked for, oldest first |
//! | [`LoggerConfig`] | `/dms/node/logger/config` | [`LoggerState`]: the log filter in force |
//! | [`EventSink`] | `/dms/node/logger/sink` | [`LoggerState`], after changing where events are shipped |
//!
//! Both are ordinary behaviors: an operator may read a remote node's events or raise its
//! log level with a capability granted for them (NuNet names the second
//! `/dms/node/logger/config` too).

pub use dms_types::event::{Event, EventQuery};
use serde::{Deserialize, Serialize};

use crate::Request;

/// Events of the node's journal (answer: at most `limit` events, oldest first).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListEvents {
    /// What to look for.
    #[serde(flatten)]
    pub query: EventQuery,
}

impl Request for ListEvents {
    const BEHAVIOR: &'static str = "/dms/node/events/list";
    type Response = Vec<Event>;
}

/// Reads the node's log filter (and where events go), or changes the filter when
/// `level` is given (answer: [`LoggerState`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoggerConfig {
    /// The new filter, e.g. `debug` or `info,dms_orchestrator=debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// Ships events to another Elasticsearch from now on (answer: [`LoggerState`]). A
/// behavior of its own: a grant to raise the log level must not also let its holder
/// send the node's events, and requests, wherever it likes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EventSink {
    /// An Elasticsearch base URL (`http://…`); empty: ship nowhere. The index stays
    /// `telemetry.elasticsearch_index`; the config file is not changed.
    pub elasticsearch_url: String,
}

impl Request for EventSink {
    const BEHAVIOR: &'static str = "/dms/node/logger/sink";
    type Response = LoggerState;
}

impl Request for LoggerConfig {
    const BEHAVIOR: &'static str = "/dms/node/logger/config";
    type Response = LoggerState;
}

/// The log filter in force and where events go.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoggerState {
    /// The filter.
    pub level: String,
    /// The Elasticsearch base URL events are shipped to, if any.
    #[serde(default)]
    pub elasticsearch_url: Option<String>,
    /// Events not queued for Elasticsearch because its queue was full, since start.
    #[serde(default)]
    pub elasticsearch_dropped: u64,
}
