//! dms telemetry: structured events, traces across machines and metrics, with their
//! sinks — the node's event journal, Elasticsearch, OTLP/HTTP and Prometheus.
//!
//! [`init`] installs everything once per process (the daemon, `dms run`): the log
//! output on stderr (its filter changeable at run time, [`set_log_level`]), the layer
//! that turns [`event!`] calls into events for the [`hub`], the OpenTelemetry layers
//! when an OTLP endpoint is configured, and the meter provider behind [`metrics`]. Code
//! elsewhere only calls [`event!`], the counters of [`metrics`], and [`propagate`] for
//! the trace context of envelopes; with nothing installed (tests, the CLI) those cost
//! next to nothing and go nowhere.
//!
//! # Module map
//! - [`event`]: the [`event!`] macro and the layer that collects events.
//! - [`hub`]: stamps events and hands them to the sinks through bounded queues.
//! - [`journal`]: events kept in the node's store and queried by field.
//! - [`elastic`]: the Elasticsearch `_bulk` sink.
//! - [`otlp`]: OTLP/HTTP exporters for traces, logs and metrics.
//! - [`metrics`]: instruments, bounded labels and the Prometheus text.
//! - [`propagate`]: the W3C trace context carried in envelopes.
//! - `testing` (feature): a receiver speaking the sinks' wire protocols, for tests.

pub mod elastic;
pub mod event;
pub mod hub;
pub mod journal;
pub mod metrics;
pub mod otlp;
pub mod propagate;
#[cfg(feature = "testing")]
pub mod testing;

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, reload};

#[doc(hidden)]
pub use tracing as __tracing;

/// Why telemetry could not start or a setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A log filter that does not parse.
    #[error(
        "invalid log level {filter:?}: {reason} (expected a tracing filter such as `info` or `warn,dms_orchestrator=debug`)"
    )]
    Filter {
        /// The filter given.
        filter: String,
        /// Why it does not parse.
        reason: String,
    },
    /// An OTLP exporter could not be built.
    #[error("{0}")]
    Otlp(String),
    /// The Prometheus exporter could not be built.
    #[error("cannot build the Prometheus exporter: {0}")]
    Prometheus(String),
    /// Telemetry was installed already, or the logger could not be.
    #[error("cannot install telemetry: {0}")]
    Install(String),
    /// Telemetry is not installed in this process (only `dms run` installs it).
    #[error(
        "telemetry is not installed in this process: only a node started with `dms run` has a log level and sinks to change"
    )]
    NotInstalled,
}

/// How log lines are written on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What [`init`] sets up.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The log filter (`RUST_LOG`, when set, wins).
    pub log_level: String,
    /// The log format.
    pub log_format: Format,
    /// `service.name` of exported telemetry.
    pub service_name: String,
    /// The version reported as `service.version`.
    pub version: String,
    /// `service.instance.id`: the node's DID, when known before the key is unlocked.
    pub instance: Option<String>,
    /// Where to ship events, when set.
    pub elasticsearch: Option<elastic::Target>,
    /// The OTLP/HTTP base URL, when set.
    pub otlp_endpoint: Option<String>,
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes the sinks.
#[derive(Debug)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    logger: Option<SdkLoggerProvider>,
    meter: SdkMeterProvider,
}

type Reload = Box<dyn Fn(EnvFilter) -> Result<(), reload::Error> + Send + Sync>;

struct LogControl {
    reload: Reload,
    current: Mutex<String>,
}

static LOG: OnceLock<LogControl> = OnceLock::new();

fn filter(spec: &str) -> Result<EnvFilter, Error> {
    EnvFilter::try_new(spec)
        .map_err(|e| Error::Filter { filter: spec.to_string(), reason: e.to_string() })
}

/// Whether a span or log line is dms's own (exported over OTLP; the HTTP client's and
/// the SDK's own are not, or exporting would feed itself).
fn ours(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target().starts_with("dms") && *metadata.level() <= Level::INFO
}

/// Installs the process's telemetry (once; must run inside a Tokio runtime when
/// Elasticsearch is configured).
pub fn init(settings: &Settings) -> Result<Telemetry, Error> {
    // Once per process: the hub is the guard, taken before anything else global.
    if !hub::install() {
        return Err(Error::Install("telemetry is installed already".into()));
    }
    let spec = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec,
        _ => settings.log_level.clone(),
    };
    let (log_filter, handle) = reload::Layer::new(filter(&spec)?);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let stderr = match settings.log_format {
        Format::Text => stderr.boxed(),
        Format::Json => stderr.json().boxed(),
    };
    let mut resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", settings.version.clone()));
    if let Some(instance) = &settings.instance {
        resource = resource
            .with_attribute(opentelemetry::KeyValue::new("service.instance.id", instance.clone()));
    }
    let resource = resource.build();
    let (tracer, logger) = match &settings.otlp_endpoint {
        Some(base) => (Some(otlp::tracer(base, &resource)?), Some(otlp::logger(base, &resource)?)),
        None => (None, None),
    };
    let meter = meter_provider(settings, &resource)?;
    let traces = tracer.as_ref().map(|provider| {
        opentelemetry::global::set_tracer_provider(provider.clone());
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("dms"))
            .with_filter(filter_fn(ours))
    });
    let logs = logger.as_ref().map(|provider| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
            .with_filter(filter_fn(ours))
    });
    tracing_subscriber::registry()
        .with(stderr.with_filter(log_filter))
        .with(event::EventLayer.with_filter(filter_fn(|m| m.target() == event::TARGET)))
        .with(traces)
        .with(logs)
        .try_init()
        .map_err(|e| Error::Install(e.to_string()))?;
    let control =
        LogControl { reload: Box::new(move |new| handle.reload(new)), current: Mutex::new(spec) };
    let _ = LOG.set(control);
    switch_elasticsearch(settings.elasticsearch.clone())?;
    Ok(Telemetry { tracer, logger, meter })
}

fn meter_provider(settings: &Settings, resource: &Resource) -> Result<SdkMeterProvider, Error> {
    let registry = prometheus::Registry::new();
    let prometheus = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .without_target_info()
        .scope_info_enabled(false)
        .build()
        .map_err(|e| Error::Prometheus(e.to_string()))?;
    let mut builder =
        SdkMeterProvider::builder().with_reader(prometheus).with_resource(resource.clone());
    if let Some(base) = &settings.otlp_endpoint {
        builder = builder.with_reader(otlp::metrics(base)?);
    }
    let provider = builder.build();
    opentelemetry::global::set_meter_provider(provider.clone());
    let _ = metrics::REGISTRY.set(registry);
    Ok(provider)
}

impl Telemetry {
    /// Ships what the sinks hold (Elasticsearch for at most 3 s, the OTLP exporters for
    /// at most 5 s), then stops them.
    pub async fn shutdown(self) {
        let _ = set_elasticsearch(None).await;
        let (tracer, logger, meter) = (self.tracer, self.logger, self.meter);
        let flushed = tokio::task::spawn_blocking(move || {
            let grace = Duration::from_secs(5);
            if let Some(tracer) = tracer {
                let _ = tracer.shutdown_with_timeout(grace);
            }
            if let Some(logger) = logger {
                let _ = logger.shutdown_with_timeout(grace);
            }
            let _ = meter.shutdown_with_timeout(grace);
        });
        let _ = flushed.await;
    }
}

/// The Elasticsearch sink running now, with where it ships.
static ELASTIC: Mutex<Option<(elastic::Target, elastic::Sink)>> = Mutex::new(None);

/// Ships events to `target` from now on (none: nowhere); the previous sink, returned,
/// still holds what it had queued.
fn switch_elasticsearch(target: Option<elastic::Target>) -> Result<Option<elastic::Sink>, Error> {
    let hub = hub::get().ok_or(Error::NotInstalled)?;
    let mut slot = ELASTIC.lock().expect("elasticsearch lock");
    let new = target.map(|target| {
        let (tx, rx) = tokio::sync::mpsc::channel(hub::QUEUE);
        hub.set_elastic(Some(tx));
        (target.clone(), elastic::Sink::start(target, rx))
    });
    if new.is_none() {
        hub.set_elastic(None);
    }
    Ok(std::mem::replace(&mut *slot, new).map(|(_, sink)| sink))
}

/// Changes where events are shipped while the node runs (NuNet's logger config does
/// too): the old sink ships what it holds (for at most 3 s) and stops.
pub async fn set_elasticsearch(target: Option<elastic::Target>) -> Result<(), Error> {
    if let Some(old) = switch_elasticsearch(target)? {
        old.stop().await;
    }
    Ok(())
}

/// Where events are shipped now, if anywhere.
pub fn elasticsearch() -> Option<elastic::Target> {
    ELASTIC.lock().expect("elasticsearch lock").as_ref().map(|(target, _)| target.clone())
}

/// `at` in Unix milliseconds (0 before the epoch).
pub(crate) fn unix_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// The log filter in force, when telemetry is installed.
pub fn log_level() -> Option<String> {
    LOG.get().map(|log| log.current.lock().expect("log level lock").clone())
}

/// Changes the log filter of this process (what stderr shows; events always reach the
/// journal); returns the filter now in force.
pub fn set_log_level(spec: &str) -> Result<String, Error> {
    let new = filter(spec)?;
    let log = LOG.get().ok_or(Error::NotInstalled)?;
    // Held across the reload: two changes at once leave the filter said in force.
    let mut current = log.current.lock().expect("log level lock");
    (log.reload)(new).map_err(|e| Error::Install(e.to_string()))?;
    *current = spec.trim().to_string();
    Ok(current.clone())
}
