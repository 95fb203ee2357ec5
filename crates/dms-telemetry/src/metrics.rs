//! Metrics: OpenTelemetry instruments, read by two readers — the Prometheus text of
//! `GET /metrics` ([`render`]) and, when `telemetry.otlp_endpoint` is set, an OTLP/HTTP
//! push every 10 s.
//!
//! Names are `dms_<name>_<unit>` (counters get `_total`); labels come from bounded sets
//! (event kinds, sink names, bid outcomes and reason codes, deployment and allocation
//! states, refusal codes): a value outside its set is recorded as `other`, never as
//! itself, so a peer cannot blow up the series count.
//!
//! Counters are counted where things happen; gauges of state (resources, deployments by
//! state, heartbeat age, peers) are [`set`] by the node's sampler.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Meter};

fn meter() -> Meter {
    opentelemetry::global::meter("dms")
}

struct Counters {
    events: Counter<u64>,
    dropped: Counter<u64>,
    bids: Counter<u64>,
    messages: Counter<u64>,
    refused: Counter<u64>,
    sent: Counter<u64>,
    wire: Counter<u64>,
    restarts: Counter<u64>,
}

static COUNTERS: LazyLock<Counters> = LazyLock::new(|| {
    let m = meter();
    let counter =
        |name: &'static str, help: &'static str| m.u64_counter(name).with_description(help).build();
    Counters {
        events: counter("dms_telemetry_events", "Telemetry events emitted, by kind."),
        dropped: counter(
            "dms_telemetry_events_dropped",
            "Telemetry events dropped because a sink's queue was full, by sink.",
        ),
        bids: counter(
            "dms_bids",
            "Bids by side (provider, orchestrator), outcome (sent, refused, received, \
             accepted) and reason code (refusals).",
        ),
        messages: counter("dms_messages_received", "Actor messages received and run."),
        refused: counter(
            "dms_messages_refused",
            "Actor messages refused before running, by code (unauthorized, expired, ...).",
        ),
        sent: counter("dms_messages_sent", "Actor messages sent (local and remote)."),
        wire: counter(
            "dms_network_sent_bytes",
            "Bytes of direct messages (requests and responses, framed) written to peers.",
        ),
        restarts: counter("dms_allocation_restarts", "Allocations restarted on this provider."),
    }
});

/// The one label value a value outside its bounded set is recorded as.
pub const OTHER: &str = "other";

/// `value` when it is in `set`, else [`OTHER`].
pub fn bounded(value: &str, set: &[&'static str]) -> &'static str {
    set.iter().copied().find(|v| *v == value).unwrap_or(OTHER)
}

pub(crate) fn event_emitted(kind: &str) {
    let kind = bounded(kind, dms_types::event::kind::ALL);
    COUNTERS.events.add(1, &[KeyValue::new("kind", kind)]);
}

pub(crate) fn event_dropped(sink: &'static str) {
    events_dropped(sink, 1);
}

pub(crate) fn events_dropped(sink: &'static str, n: usize) {
    COUNTERS.dropped.add(n as u64, &[KeyValue::new("sink", sink)]);
}

/// Bid outcomes.
pub mod bid {
    /// A provider sent a bid.
    pub const SENT: &str = "sent";
    /// A provider refused to bid.
    pub const REFUSED: &str = "refused";
    /// An orchestrator received a bid.
    pub const RECEIVED: &str = "received";
    /// An orchestrator chose a bid.
    pub const ACCEPTED: &str = "accepted";
}

/// Counts a bid: `side` is `provider` or `orchestrator`, `reason` a refusal's code
/// (one of `reasons`, else `other`; empty when not refused).
pub fn bid(side: &'static str, outcome: &'static str, reason: &str, reasons: &[&'static str]) {
    let reason = if reason.is_empty() { "" } else { bounded(reason, reasons) };
    COUNTERS.bids.add(
        1,
        &[
            KeyValue::new("side", side),
            KeyValue::new("outcome", outcome),
            KeyValue::new("reason", reason),
        ],
    );
}

/// Counts a message received and run.
pub fn message_received() {
    COUNTERS.messages.add(1, &[]);
}

/// Counts a message sent.
pub fn message_sent() {
    COUNTERS.sent.add(1, &[]);
}

/// Counts a message refused with `code` (one of `codes`, else `other`).
pub fn message_refused(code: &str, codes: &[&'static str]) {
    COUNTERS.refused.add(1, &[KeyValue::new("code", bounded(code, codes))]);
}

/// Counts `n` bytes of a direct message written to a peer.
pub fn wire_sent(n: usize) {
    COUNTERS.wire.add(n as u64, &[]);
}

/// Counts an allocation restart.
pub fn allocation_restarted() {
    COUNTERS.restarts.add(1, &[]);
}

static GAUGES: LazyLock<Mutex<HashMap<&'static str, Gauge<f64>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Sets the gauge `name` (with `help` the first time) for `labels` to `value`.
/// Labels must come from bounded sets.
pub fn set(name: &'static str, help: &'static str, labels: &[(&'static str, &str)], value: f64) {
    let gauge = {
        let mut gauges = GAUGES.lock().expect("gauges lock");
        gauges
            .entry(name)
            .or_insert_with(|| meter().f64_gauge(name).with_description(help).build())
            .clone()
    };
    let labels: Vec<KeyValue> =
        labels.iter().map(|(k, v)| KeyValue::new(*k, (*v).to_string())).collect();
    gauge.record(value, &labels);
}

/// The Prometheus registry `/metrics` renders, once [`crate::init`] made it.
pub(crate) static REGISTRY: std::sync::OnceLock<prometheus::Registry> = std::sync::OnceLock::new();

/// The metrics in the Prometheus text format (version 0.0.4); empty before
/// [`crate::init`].
pub fn render() -> String {
    use prometheus::Encoder as _;
    let Some(registry) = REGISTRY.get() else { return String::new() };
    let mut out = Vec::new();
    if let Err(error) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::warn!(%error, "Could not encode the metrics.");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_a_set_are_other() {
        assert_eq!(bounded("resources", &["resources", "executor"]), "resources");
        assert_eq!(bounded("ʕ•ᴥ•ʔ", &["resources"]), OTHER);
    }
}
