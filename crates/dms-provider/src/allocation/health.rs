//! Health checks (`healthcheck` of an allocation): `http` (a GET; any 2xx or 3xx is
//! healthy), `tcp` (a connection opens) or `command` (run inside the workload; exit 0
//! is healthy), every `interval` (30 s), each within `timeout` (10 s). Failures during
//! `start_period` after a start do not count; `retries` (3) failures in a row make the
//! workload unhealthy, and the life cycle stops it and lets its restart policy decide,
//! as after a failed exit. Health is part of the status (and of every heartbeat).
//!
//! Probes reach a container at its own address on its network; a workload without one
//! (WebAssembly) is probed on this host's loopback. The timer and each probe are tasks
//! the actor owns; a probe's result for an execution that is no longer the current one
//! is dropped.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use dms_actor::envelope::now_ms;
use dms_actor::stateful::Context;
use dms_ensemble::model::{HealthCheck, HealthCheckKind};
use dms_executor::{ExecutionId, Executor};
use dms_protocol::{AllocationState, Health};
use tracing::debug;

use super::machine::Input;
use super::{Allocation, Internal};

const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);
const RETRIES: u32 = 3;

/// Failures in a row, of the current execution.
#[derive(Debug, Default)]
pub(crate) struct Probes {
    failures: u32,
    /// The execution the timer runs for.
    timer_for: Option<String>,
}

fn interval(check: &HealthCheck) -> Duration {
    check.interval.map_or(INTERVAL, |d| d.to_std()).max(Duration::from_millis(100))
}

impl Allocation {
    fn healthcheck(&self) -> Option<HealthCheck> {
        self.hosted.spec.allocation.healthcheck.clone()
    }

    /// Starts probing the current execution, unless it has no check or is probed.
    pub(crate) fn probe_soon(&mut self, ctx: &mut Context<Internal>) {
        let Some(check) = self.healthcheck() else { return };
        let running = self.hosted.status.state == AllocationState::Running;
        if !running
            || self.hosted.execution.is_none()
            || self.probes.timer_for == self.hosted.execution
        {
            return;
        }
        self.probes = Probes { failures: 0, timer_for: self.hosted.execution.clone() };
        let execution = self.hosted.execution.clone().unwrap_or_default();
        ctx.after(interval(&check), Internal::Probe(execution));
    }

    /// The timer fired for `execution`: probe it (if it is still the current one).
    pub(crate) fn probe(&mut self, ctx: &mut Context<Internal>, execution: String) {
        let (Some(check), Some(executor)) = (self.healthcheck(), self.executor()) else { return };
        if self.hosted.execution.as_deref() != Some(&execution) {
            return;
        }
        ctx.spawn(async move {
            let result = probe(executor, &execution, &check).await;
            Some(Internal::Probed { execution, result })
        });
    }

    /// What a probe found.
    pub(crate) async fn probed(
        &mut self,
        ctx: &mut Context<Internal>,
        execution: String,
        result: Result<(), String>,
    ) {
        let Some(check) = self.healthcheck() else { return };
        let current = self.hosted.execution.as_deref() == Some(&execution);
        if !current || self.hosted.status.state != AllocationState::Running {
            return;
        }
        match result {
            Ok(()) => {
                self.probes.failures = 0;
                self.apply(ctx, Input::Health(Health::Healthy)).await;
            }
            Err(why) => {
                let started = self.hosted.status.started_ms.unwrap_or(0);
                let grace = check.start_period.map_or(0, |d| d.to_std().as_millis() as u64);
                if now_ms() < started.saturating_add(grace) {
                    debug!(allocation = %self.hosted.id, %why, "Probe failed during the start period.");
                } else {
                    self.probes.failures += 1;
                    let retries = check.retries.unwrap_or(RETRIES).max(1);
                    if self.probes.failures >= retries {
                        self.probes = Probes::default();
                        let reason =
                            format!("{retries} health probes failed in a row; the last: {why}");
                        self.apply(ctx, Input::Unhealthy { reason }).await;
                        return;
                    }
                }
            }
        }
        if self.hosted.execution.as_deref() == Some(&execution) {
            ctx.after(interval(&check), Internal::Probe(execution));
        }
    }
}

/// One probe of `execution`.
async fn probe(
    executor: Arc<dyn Executor>,
    execution: &str,
    check: &HealthCheck,
) -> Result<(), String> {
    let timeout = check.timeout.map_or(TIMEOUT, |d| d.to_std());
    let id = ExecutionId(execution.to_string());
    let run = async {
        match check.kind {
            HealthCheckKind::Command => {
                let out =
                    executor.exec(&id, check.command.clone()).await.map_err(|e| e.to_string())?;
                if out.exit_code == 0 {
                    return Ok(());
                }
                Err(format!(
                    "`{}` exited with {}: {}",
                    check.command.join(" "),
                    out.exit_code,
                    out.stderr.trim()
                ))
            }
            HealthCheckKind::Tcp | HealthCheckKind::Http => {
                let port = check.port.ok_or("the check names no port")?;
                let info = executor.inspect(&id).await.map_err(|e| e.to_string())?;
                // A workload without an address of its own (a VM) is probed at the host
                // port its port is published on.
                let (ip, port) = match info.address {
                    Some(ip) => (ip, port),
                    None if info.kind == dms_executor::Kind::Vm => {
                        let published = info
                            .published
                            .iter()
                            .find(|p| p.port == port && p.protocol == dms_executor::Protocol::Tcp);
                        let host_port = published
                            .map(|p| p.host_port)
                            .ok_or_else(|| format!("port {port}/tcp of the VM is not published"))?;
                        (IpAddr::V4(Ipv4Addr::LOCALHOST), host_port)
                    }
                    None => (IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                };
                if check.kind == HealthCheckKind::Tcp {
                    tokio::net::TcpStream::connect((ip, port))
                        .await
                        .map(drop)
                        .map_err(|e| format!("tcp {ip}:{port}: {e}"))
                } else {
                    http(ip, port, check.path.as_deref().unwrap_or("/")).await
                }
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

async fn http(ip: IpAddr, port: u16, path: &str) -> Result<(), String> {
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let url = format!("http://{host}:{port}{path}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let status = client.get(&url).send().await.map_err(|e| format!("GET {path}: {e}"))?.status();
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    }
}
