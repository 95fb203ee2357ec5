//! `[telemetry]`: the section's struct, its defaults and checks.

use dms_telemetry::elastic::Target;
use serde::{Deserialize, Serialize};

use super::Error;

/// `[telemetry]`: where events, traces, logs and metrics go besides stderr and the
/// node's own event journal (`dms events`), and how much of the journal is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Elasticsearch base URL for the `_bulk` sink (empty: none).
    pub elasticsearch_url: String,
    /// The index events go to.
    pub elasticsearch_index: String,
    /// OTLP/HTTP base URL for traces, logs and metrics (empty: none).
    pub otlp_endpoint: String,
    /// `service.name` of exported telemetry.
    pub service_name: String,
    /// Most events kept in the store.
    pub events_max: u64,
    /// How long events are kept in the store.
    #[serde(with = "dms_types::units::serde_duration")]
    pub events_retention: std::time::Duration,
}

impl Default for TelemetryConfig {
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            elasticsearch_url: String::new(),
            elasticsearch_index: "dms-events".into(),
            otlp_endpoint: String::new(),
            service_name: "dms".into(),
            events_max: 100_000,
            events_retention: std::time::Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl TelemetryConfig {
    /// Checks the URLs, the index name and the journal's bounds.
    pub fn validate(&self) -> Result<(), Error> {
        let rule = |key: &str, why: String| Error::Rule(format!("telemetry.{key}: {why}"));
        if !self.elasticsearch_url.trim().is_empty() {
            Target::new(&self.elasticsearch_url, &self.elasticsearch_index)
                .map_err(|why| rule("elasticsearch_url / elasticsearch_index", why))?;
        }
        if !self.otlp_endpoint.trim().is_empty() {
            dms_telemetry::elastic::check_http_url(self.otlp_endpoint.trim())
                .map_err(|why| rule("otlp_endpoint", why))?;
        }
        if self.events_max == 0 || self.events_retention.is_zero() {
            return Err(Error::Rule(
                "telemetry.events_max and telemetry.events_retention must be above 0".into(),
            ));
        }
        Ok(())
    }

    /// The Elasticsearch target, when a URL is set.
    pub fn elasticsearch(&self) -> Option<Target> {
        let url = self.elasticsearch_url.trim();
        if url.is_empty() {
            return None;
        }
        Target::new(url, &self.elasticsearch_index).ok()
    }

    /// The OTLP base URL, when set.
    pub fn otlp(&self) -> Option<String> {
        Some(self.otlp_endpoint.trim().to_string()).filter(|u| !u.is_empty())
    }

    /// The journal's retention.
    pub fn retention(&self) -> dms_telemetry::journal::Retention {
        dms_telemetry::journal::Retention {
            max_events: self.events_max,
            max_age: self.events_retention,
        }
    }
}
