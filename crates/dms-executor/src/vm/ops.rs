//! The [`crate::Executor`] implementation of [`super::Executor`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::{instrument, warn};

use super::backend::{self, Hypervisor, Plan};
use super::process::{self, Record};
use super::{
    Entry, Error, ExecOutput, ExecutionId, ExecutionInfo, Executor, ExitReason, ExitStatus,
    KILL_WAIT, Kind, LogOptions, LogStream, Recovery, Result, Spec, State, Stats, Stopping,
    Workload, console, firecracker, info_of, new_id, qmp, vm_name,
};

impl Executor {
    /// Asks the guest to shut down: the ACPI power button (QEMU) or Ctrl-Alt-Del
    /// (Firecracker).
    async fn ask_to_stop(&self, entry: &Entry) -> std::result::Result<(), String> {
        match entry.record.hypervisor {
            Hypervisor::Qemu => {
                let mut qmp = qmp::Qmp::connect(&backend::control_path(&entry.dir)).await?;
                qmp.execute("system_powerdown").await.map(drop)
            }
            Hypervisor::Firecracker => {
                firecracker::send(&entry.dir, &[firecracker::action("SendCtrlAltDel")]).await
            }
        }
    }

    /// Kills the VM of `entry` and waits briefly for it to end.
    async fn kill(&self, entry: &Entry) -> Option<ExitStatus> {
        if let State::Exited(status) = &*entry.state.borrow() {
            return Some(status.clone());
        }
        *entry.stopping.lock().expect("stopping lock") = Some(Stopping::Killed);
        process::kill(entry.record.pid, &entry.dir);
        tokio::time::timeout(KILL_WAIT, exited(entry)).await.ok()
    }

    /// The host paths of the workload's images and the hypervisor's plan.
    async fn plan(&self, spec: &Spec, id: &str, vcpus: u32, guest: u64) -> Result<Plan> {
        let Workload::Vm { kernel, initrd, rootfs, kernel_args, .. } = &spec.workload else {
            unreachable!("checked by start");
        };
        let kernel = self.images.resolve("kernel", kernel).await?;
        let initrd = match initrd {
            Some(image) => Some(self.images.resolve("initrd", image).await?),
            None => None,
        };
        let rootfs = match rootfs {
            Some(image) => Some(self.images.resolve("rootfs", image).await?),
            None => None,
        };
        if self.backend.hypervisor == Hypervisor::Firecracker && !firecracker::is_elf(&kernel) {
            return Err(Error::InvalidSpec(
                "Firecracker boots an uncompressed kernel (vmlinux, ELF); this one is not (a \
                 bzImage?). Nodes running QEMU boot both."
                    .into(),
            ));
        }
        let mut env = spec.env.clone();
        let shares: Vec<(String, std::path::PathBuf, bool)> = spec
            .mounts
            .iter()
            .enumerate()
            .map(|(n, m)| (format!("dms{n}"), m.source.clone(), m.read_only))
            .collect();
        if !shares.is_empty() {
            let mounts: Vec<String> = spec
                .mounts
                .iter()
                .zip(&shares)
                .map(|(m, (tag, _, ro))| {
                    format!("{tag}:{}{}", m.target, if *ro { ":ro" } else { "" })
                })
                .collect();
            env.insert("DMS_MOUNTS".into(), mounts.join(" "));
        }
        let cmdline = backend::cmdline(
            &self.backend,
            kernel_args.as_deref(),
            rootfs.is_some(),
            &env,
            &spec.args,
        )
        .map_err(Error::InvalidSpec)?;
        Ok(Plan {
            dir: self.vms_dir().join(id),
            name: vm_name(&spec.allocation),
            kernel,
            initrd,
            rootfs,
            shares,
            forwards: forwards(&spec.ports)?,
            cmdline,
            vcpus,
            memory_mib: guest >> 20,
        })
    }
}

/// The host ports of `ports`: as given, or free ones chosen now (QEMU cannot choose).
fn forwards(ports: &[crate::PortBinding]) -> Result<Vec<backend::Forward>> {
    ports
        .iter()
        .map(|p| {
            let ip = p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
            let host_port = match p.host_port {
                Some(port) => port,
                None => free_port(p.protocol, ip)
                    .map_err(|e| Error::io(format!("cannot find a free port on {ip}"), e))?,
            };
            Ok(backend::Forward {
                protocol: p.protocol,
                host_ip: p.host_ip,
                host_port,
                guest_port: p.container_port,
            })
        })
        .collect()
}

/// A port free on `ip` now (the kernel's choice).
fn free_port(protocol: crate::Protocol, ip: std::net::IpAddr) -> std::io::Result<u16> {
    match protocol {
        crate::Protocol::Tcp => {
            std::net::TcpListener::bind((ip, 0))?.local_addr().map(|a| a.port())
        }
        crate::Protocol::Udp => std::net::UdpSocket::bind((ip, 0))?.local_addr().map(|a| a.port()),
    }
}

impl Executor {
    /// Prepares the VM's directory and starts it under `id`; on failure nothing is left.
    async fn start_as(
        &self,
        spec: &Spec,
        id: &str,
        (vcpus, guest, limit): (u32, u64, u64),
    ) -> Result<()> {
        let mut plan = self.plan(spec, id, vcpus, guest).await?;
        std::fs::create_dir_all(&plan.dir)
            .map_err(|e| Error::io(format!("cannot create {}", plan.dir.display()), e))?;
        let mut record = Record {
            id: id.to_string(),
            allocation: spec.allocation.clone(),
            deployment: spec.deployment.clone(),
            scope: self.config.scope.clone(),
            hypervisor: self.backend.hypervisor,
            pid: 0,
            memory_limit: limit,
            published: plan
                .forwards
                .iter()
                .map(|f| crate::Published {
                    port: f.guest_port,
                    protocol: f.protocol,
                    host_port: f.host_port,
                })
                .collect(),
        };
        let launched = async {
            record.save(&plan.dir).map_err(|e| Error::io("cannot write the VM record", e))?;
            self.private_rootfs(&mut plan).await?;
            self.launch(&plan).await
        };
        let child = match launched.await {
            Ok(child) => child,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&plan.dir);
                return Err(error);
            }
        };
        record.pid = child.id().unwrap_or(0);
        if let Err(e) = record.save(&plan.dir) {
            warn!(error = %e, vm = %id, "Could not record the VM's PID; a restart of dms finds it by its directory.");
        }
        self.watch(record, plan.dir, Some(child));
        Ok(())
    }

    /// A root disk from the image cache is copied into the VM's directory: the guest
    /// writes to its disk, and the cached image must stay what its checksum says.
    async fn private_rootfs(&self, plan: &mut Plan) -> Result<()> {
        let Some(rootfs) = plan.rootfs.as_ref().filter(|r| r.starts_with(self.images.dir())) else {
            return Ok(());
        };
        let copy = plan.dir.join("rootfs.img");
        tokio::fs::copy(rootfs, &copy)
            .await
            .map_err(|e| Error::io("cannot copy the root disk for the VM", e))?;
        plan.rootfs = Some(copy);
        Ok(())
    }
}

/// Waits until the entry's VM has ended.
async fn exited(entry: &Entry) -> ExitStatus {
    let mut state = entry.state.subscribe();
    match state.wait_for(State::is_exited).await.map(|s| s.clone()) {
        Ok(State::Exited(status)) => status,
        // The sender lives in the entry we hold: the channel cannot close under us.
        _ => ExitStatus { code: -1, reason: ExitReason::Failed("VM state lost".into()) },
    }
}

#[async_trait]
impl crate::Executor for Executor {
    fn kind(&self) -> Kind {
        Kind::Vm
    }

    #[instrument(skip_all, fields(allocation = %spec.allocation, deployment = %spec.deployment))]
    async fn start(&self, spec: Spec) -> Result<ExecutionId> {
        let Workload::Vm { memory_bytes, .. } = &spec.workload else {
            return Err(Error::InvalidSpec(format!(
                "the vm executor cannot run a {} workload",
                spec.workload.kind()
            )));
        };
        let (vcpus, guest, limit) = self.sizes(&spec, *memory_bytes)?;
        let id = new_id();
        self.starting.lock().expect("starting lock").insert(id.clone());
        let started = self.start_as(&spec, &id, (vcpus, guest, limit)).await;
        self.starting.lock().expect("starting lock").remove(&id);
        started.map(|()| ExecutionId(id))
    }

    async fn wait(&self, id: &ExecutionId) -> Result<ExitStatus> {
        let entry = self.entry(id)?;
        Ok(exited(&entry).await)
    }

    async fn stop(&self, id: &ExecutionId, grace: Duration) -> Result<ExitStatus> {
        let entry = self.entry(id)?;
        if let State::Exited(status) = &*entry.state.borrow() {
            return Ok(status.clone());
        }
        *entry.stopping.lock().expect("stopping lock") = Some(Stopping::Asked);
        if let Err(why) = self.ask_to_stop(&entry).await {
            warn!(vm = %id, %why, "Could not ask the guest to shut down; it is killed after the grace period.");
        }
        if let Ok(status) = tokio::time::timeout(grace, exited(&entry)).await {
            return Ok(status);
        }
        self.kill(&entry).await.ok_or_else(|| Error::StopTimeout(id.clone()))
    }

    async fn remove(&self, id: &ExecutionId) -> Result<()> {
        let entry = self.entry(id)?;
        if !entry.state.borrow().is_exited() && self.kill(&entry).await.is_none() {
            return Err(Error::StopTimeout(id.clone()));
        }
        self.entries.lock().expect("vm entries lock").remove(id);
        if let Err(error) = tokio::fs::remove_dir_all(&entry.dir).await {
            warn!(vm = %id, %error, "Could not remove the VM's directory.");
        }
        Ok(())
    }

    async fn logs(&self, id: &ExecutionId, options: LogOptions) -> Result<LogStream> {
        let entry = self.entry(id)?;
        let path = backend::console_path(&entry.dir);
        Ok(console::stream(path, options, entry.state.subscribe()))
    }

    async fn exec(&self, _id: &ExecutionId, _command: Vec<String>) -> Result<ExecOutput> {
        Err(Error::Unsupported { backend: "vm", operation: "exec (VMs have no guest agent)" })
    }

    async fn stats(&self, id: &ExecutionId) -> Result<Stats> {
        let entry = self.entry(id)?;
        let mut stats =
            Stats { memory_limit_bytes: Some(entry.record.memory_limit), ..Stats::default() };
        if entry.state.borrow().is_exited() {
            return Ok(stats);
        }
        if let Some((cpu, rss)) = process::usage(entry.record.pid) {
            stats.cpu_time_ns = Some(cpu);
            stats.memory_bytes = rss;
            let now = Instant::now();
            let mut last = entry.last_cpu.lock().expect("cpu sample lock");
            if let Some((at, before)) = *last {
                let wall = now.duration_since(at).as_nanos().max(1) as f64;
                stats.cpu_percent = Some(cpu.saturating_sub(before) as f64 / wall * 100.0);
            }
            *last = Some((now, cpu));
        }
        Ok(stats)
    }

    async fn inspect(&self, id: &ExecutionId) -> Result<ExecutionInfo> {
        Ok(Self::info(&*self.entry(id)?))
    }

    async fn list(&self) -> Result<Vec<ExecutionInfo>> {
        let entries = self.entries.lock().expect("vm entries lock");
        Ok(entries.values().map(|e| Self::info(e)).collect())
    }

    async fn reattach(&self, known: &HashSet<String>) -> Result<Recovery> {
        let mut recovery = Recovery::default();
        for dir in process::dirs(&self.vms_dir()) {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if self.starting.lock().expect("starting lock").contains(name) {
                continue; // Being started by this instance: neither known nor an orphan.
            }
            let Some(mut record) = Record::load(&dir) else {
                // A start that crashed before its record was written.
                if let Some(pid) = process::find(&dir) {
                    process::kill(pid, &dir);
                }
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            };
            let id = ExecutionId(record.id.clone());
            if record.scope != self.config.scope || self.entry(&id).is_ok() {
                continue;
            }
            if record.pid == 0 {
                record.pid = process::find(&dir).unwrap_or(0);
            }
            if known.contains(&record.allocation) {
                let entry: Arc<Entry> = self.watch(record, dir, None);
                recovery.reattached.push(Self::info(&entry));
                continue;
            }
            process::kill(record.pid, &dir);
            let _ = tokio::time::timeout(KILL_WAIT, process::gone(record.pid, &dir)).await;
            let _ = std::fs::remove_dir_all(&dir);
            let killed = ExitStatus { code: 137, reason: ExitReason::Killed };
            recovery.removed.push(info_of(&record, State::Exited(killed)));
        }
        Ok(recovery)
    }
}
