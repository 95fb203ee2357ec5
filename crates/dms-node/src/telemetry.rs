//! The node's side of telemetry: its event journal (started on the store, drained before
//! the store closes), the behaviors that read it and change the log level, and the
//! sampler that sets the gauges of state every [`SAMPLE_EVERY`].

use std::sync::Arc;
use std::time::Duration;

use dms_actor::{Actor, ActorError};
use dms_protocol::handle;
use dms_protocol::telemetry::{EventSink, ListEvents, LoggerConfig, LoggerState};
use dms_store::Store;
use dms_telemetry::elastic::Target;
use dms_telemetry::journal::{self, Journal};
use dms_telemetry::metrics::set;
use tokio::sync::oneshot;
use tracing::warn;

use crate::Deployments;
use crate::behaviors::{bad, failed};
use crate::config::TelemetryConfig;

/// How often the gauges of state are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// What the node runs for telemetry; [`Running::stop`] before the store closes.
#[derive(Debug)]
pub struct Running {
    journal: Option<Journal>,
    sampler: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

/// Names the node in events and starts the journal, when this process installed
/// telemetry (`dms run`; in-process test nodes have none).
pub fn start(store: &Store, did: &str, config: &TelemetryConfig) -> Result<Running, crate::Error> {
    let Some(hub) = dms_telemetry::hub::get() else {
        return Ok(Running { journal: None, sampler: None });
    };
    hub.set_node(did);
    let journal = hub
        .take_journal()
        .map(|feed| Journal::start(store.clone(), feed, config.retention()))
        .transpose()?;
    Ok(Running { journal, sampler: None })
}

impl Running {
    /// Samples the gauges of `deployments` (and the machine) until stopped.
    pub fn sample(&mut self, deployments: &Deployments, store: &Store) {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sampler(
            deployments.provider.clone(),
            deployments.registry.clone(),
            store.clone(),
            stopped,
        ));
        self.sampler = Some((stop, task));
    }

    /// Stops sampling and writes the journal's queue out.
    pub async fn stop(self) {
        if let Some((stop, task)) = self.sampler {
            let _ = stop.send(());
            let _ = task.await;
        }
        if let Some(journal) = self.journal {
            journal.stop().await;
        }
    }
}

/// Registers `/dms/node/events/list`, `/dms/node/logger/config` and
/// `/dms/node/logger/sink` on the root actor.
pub fn register(actor: &Actor, store: &Store, config: &TelemetryConfig) -> Result<(), ActorError> {
    let store = store.clone();
    handle(actor, move |_, ListEvents { query }| {
        let store = store.clone();
        async move {
            if let Some(kind) = &query.kind
                && !dms_types::event::kind::ALL.contains(&kind.as_str())
            {
                return Err(bad(format!(
                    "no event kind {kind:?}; the kinds are {}",
                    dms_types::event::kind::ALL.join(", ")
                )));
            }
            tokio::task::spawn_blocking(move || journal::query(&store, &query))
                .await
                .map_err(failed)?
                .map_err(failed)
        }
    })?;
    handle(actor, move |_, LoggerConfig { level }| async move {
        if let Some(level) = level {
            dms_telemetry::set_log_level(&level).map_err(|e| match e {
                dms_telemetry::Error::Filter { .. } => bad(e),
                e => failed(e),
            })?;
        }
        logger_state()
    })?;
    let index = config.elasticsearch_index.clone();
    handle(actor, move |_, EventSink { elasticsearch_url }| {
        let index = index.clone();
        async move {
            let target = match elasticsearch_url.trim() {
                "" => None,
                url => Some(
                    Target::new(url, &index)
                        .map_err(|why| bad(format!("elasticsearch_url {why}")))?,
                ),
            };
            dms_telemetry::set_elasticsearch(target).await.map_err(failed)?;
            logger_state()
        }
    })?;
    Ok(())
}

/// What `/dms/node/logger/*` answer: the filter in force and where events go.
fn logger_state() -> Result<LoggerState, ActorError> {
    Ok(LoggerState {
        level: dms_telemetry::log_level()
            .ok_or_else(|| failed(dms_telemetry::Error::NotInstalled))?,
        elasticsearch_url: dms_telemetry::elasticsearch().map(|t| t.url),
        elasticsearch_dropped: dms_telemetry::hub::get().map_or(0, |h| h.elastic_dropped()),
    })
}

async fn sampler(
    provider: dms_provider::Provider,
    registry: Arc<dms_orchestrator::Registry>,
    store: Store,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut monitor = Some(dms_hardware::usage::Monitor::new());
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stopped => return,
        }
        sample_deployments(&registry);
        let (p, s, mut m) = (provider.clone(), store.clone(), monitor.take());
        let sampled = tokio::task::spawn_blocking(move || {
            sample_provider(&p, &s);
            if let Some(monitor) = m.as_mut() {
                sample_system(monitor);
            }
            m
        })
        .await;
        match sampled {
            Ok(m) => monitor = m,
            Err(error) => warn!(%error, "The metrics sampler failed."),
        }
    }
}

fn sample_deployments(registry: &dms_orchestrator::Registry) {
    let (by_state, silence) = registry.gauges();
    for state in dms_protocol::record::DeploymentState::ALL {
        let n = by_state.get(state.name()).copied().unwrap_or(0);
        set(
            "dms_deployments",
            "Deployments this node orchestrates, by state.",
            &[("state", state.name())],
            n as f64,
        );
    }
    set(
        "dms_allocation_heartbeat_age_max_seconds",
        "How long the most silent running allocation of a running deployment has not been heard from.",
        &[],
        silence.map_or(0.0, |d| d.as_secs_f64()),
    );
}

fn sample_provider(provider: &dms_provider::Provider, store: &Store) {
    match provider.allocation_states() {
        Ok(states) => {
            for (state, n) in states {
                set(
                    "dms_allocations",
                    "Allocations hosted on this provider, by state.",
                    &[("state", state)],
                    n as f64,
                );
            }
        }
        Err(error) => warn!(%error, "Could not count the hosted allocations."),
    }
    let accounts = provider.accounts();
    let onboarded = accounts.onboarded.map(|o| o.resources).unwrap_or_default();
    resources(&ONBOARDED, &onboarded);
    resources(&FREE, &accounts.free);
    resources(&ALLOCATED, &accounts.allocated);
    if let Ok(meta) = std::fs::metadata(store.path()) {
        set("dms_store_size_bytes", "Size of the node's database file.", &[], meta.len() as f64);
    }
}

type Names = [(&'static str, &'static str); 4];

const ONBOARDED: Names = [
    ("dms_onboarded_cpu_cores", "CPU cores offered to deployments."),
    ("dms_onboarded_memory_bytes", "Memory offered to deployments."),
    ("dms_onboarded_disk_bytes", "Disk offered to deployments."),
    ("dms_onboarded_gpus", "GPUs offered to deployments."),
];
const FREE: Names = [
    ("dms_free_cpu_cores", "Onboarded CPU cores neither reserved nor allocated."),
    ("dms_free_memory_bytes", "Onboarded memory neither reserved nor allocated."),
    ("dms_free_disk_bytes", "Onboarded disk neither reserved nor allocated."),
    ("dms_free_gpus", "Onboarded GPUs neither reserved nor allocated."),
];
const ALLOCATED: Names = [
    ("dms_allocated_cpu_cores", "CPU cores held by running allocations."),
    ("dms_allocated_memory_bytes", "Memory held by running allocations."),
    ("dms_allocated_disk_bytes", "Disk held by running allocations."),
    ("dms_allocated_gpus", "GPUs held by running allocations."),
];

/// Sets the four gauges `names` of `r`: CPU cores, memory, disk, GPUs.
fn resources(names: &Names, r: &dms_types::resources::Resources) {
    let values = [
        r.cpu_millicores as f64 / 1000.0,
        r.ram_bytes as f64,
        r.disk_bytes as f64,
        r.gpus.len() as f64,
    ];
    for (&(name, help), value) in names.iter().zip(values) {
        set(name, help, &[], value);
    }
}

/// The machine as a whole (not only what is onboarded), and this process's memory.
fn sample_system(monitor: &mut dms_hardware::usage::Monitor) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    if let Some(pages) = statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()) {
        let bytes = pages * rustix::param::page_size() as u64;
        set(
            "dms_process_resident_memory_bytes",
            "Resident memory of this dms process.",
            &[],
            bytes as f64,
        );
    }
    let usage = monitor.sample();
    set(
        "dms_system_cpu_utilization_ratio",
        "CPU use of the whole machine, 0 to 1.",
        &[],
        f64::from(usage.cpu_percent) / 100.0,
    );
    set(
        "dms_system_memory_total_bytes",
        "Memory of the machine.",
        &[],
        usage.ram_total_bytes as f64,
    );
    set(
        "dms_system_memory_used_bytes",
        "Memory in use on the machine.",
        &[],
        usage.ram_used_bytes as f64,
    );
    for gpu in &usage.gpus {
        let index = gpu.index.to_string();
        if let Some(percent) = gpu.utilization_percent {
            set(
                "dms_system_gpu_utilization_ratio",
                "Use of each GPU, 0 to 1.",
                &[("gpu", index.as_str())],
                f64::from(percent) / 100.0,
            );
        }
        if let Some(used) = gpu.memory_used_bytes {
            set(
                "dms_system_gpu_memory_used_bytes",
                "Video memory in use on each GPU.",
                &[("gpu", index.as_str())],
                used as f64,
            );
        }
    }
}
