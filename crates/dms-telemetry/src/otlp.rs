//! OTLP/HTTP (protobuf) export of traces, logs and metrics to `telemetry.otlp_endpoint`
//! (`<base>/v1/traces`, `/v1/logs`, `/v1/metrics`). The SDK's batch processors run on
//! their own threads with bounded queues (2048 spans, 2048 log records; the rest are
//! dropped), so a collector that is down or slow costs the node nothing but those
//! threads' retries.

use std::time::Duration;

use opentelemetry_otlp::{LogExporter, MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::Error;

/// How often metrics are pushed.
pub const METRICS_INTERVAL: Duration = Duration::from_secs(10);

fn url(base: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", base.trim_end_matches('/'))
}

fn failed(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Otlp(format!(
        "cannot build the OTLP {what} exporter: {error}; check telemetry.otlp_endpoint \
         (an http:// base URL such as http://127.0.0.1:4318)"
    ))
}

/// The tracer provider exporting spans to `base`.
pub fn tracer(base: &str, resource: &Resource) -> Result<SdkTracerProvider, Error> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url(base, "traces"))
        .build()
        .map_err(|e| failed("span", e))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.clone())
        .build())
}

/// The logger provider exporting log records to `base`.
pub fn logger(base: &str, resource: &Resource) -> Result<SdkLoggerProvider, Error> {
    let exporter = LogExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url(base, "logs"))
        .build()
        .map_err(|e| failed("log", e))?;
    Ok(SdkLoggerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.clone())
        .build())
}

/// The metric reader pushing to `base` every [`METRICS_INTERVAL`].
pub fn metrics(base: &str) -> Result<PeriodicReader<MetricExporter>, Error> {
    let exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url(base, "metrics"))
        .build()
        .map_err(|e| failed("metric", e))?;
    Ok(PeriodicReader::builder(exporter).with_interval(METRICS_INTERVAL).build())
}
