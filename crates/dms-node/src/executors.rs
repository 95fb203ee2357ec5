//! The executors of `dms run`: WebAssembly in-process; Docker when its engine answers at
//! start; VMs when a hypervisor is found (`[vm]`). A missing engine or hypervisor makes
//! the node bid for fewer kinds of allocation, never fail to start.

use std::sync::Arc;
use std::time::Duration;

use dms_ensemble::model::Executor as Kind;
use dms_store::Store;
use tracing::info;

use crate::config::{Config, VmConfig};
use crate::{Error, NetworkRuntime};

/// The scope label of the node with peer id `peer` on shared engines and VM directories:
/// stable across restarts, distinct between nodes.
fn scope(peer: &str) -> String {
    format!("dms-{}", &peer[peer.len().saturating_sub(16)..])
}

/// How long `dms run` waits for the Docker engine to answer at start.
const DOCKER_CONNECT: Duration = Duration::from_secs(3);

/// Builds the executor set of this host.
pub(crate) async fn host(
    network: &NetworkRuntime,
    store: &Store,
    config: &Config,
) -> Result<dms_provider::Executors, Error> {
    let wasm = dms_executor::wasm::Executor::new(dms_executor::wasm::Config::default())
        .map_err(|e| Error::Executor(format!("WebAssembly: {e}")))?;
    let mut executors = dms_provider::Executors::new().with(Kind::Wasm, Arc::new(wasm));
    let scope = scope(&network.actor.handle().peer);
    match tokio::time::timeout(DOCKER_CONNECT, docker(&scope)).await {
        Ok(Ok(docker)) => executors = executors.with(Kind::Docker, Arc::new(docker)),
        Ok(Err(error)) => {
            info!(%error, "No Docker engine: this node bids for no container allocations.");
        }
        Err(_) => {
            info!(timeout = ?DOCKER_CONNECT, "The Docker engine did not answer: this node bids for no container allocations.");
        }
    }
    if config.vm.enabled {
        let store_dir = store.path().parent().unwrap_or(std::path::Path::new("."));
        executors = vm(executors, &config.vm, store_dir.join("vm"), scope).await?;
    }
    Ok(executors)
}

/// The Docker executor of the node with scope label `scope`. Containers are a node's by
/// that label: nodes sharing one engine (a devnet, or two nodes on one host) never
/// re-attach or remove each other's.
async fn docker(scope: &str) -> Result<dms_executor::docker::Executor, dms_executor::Error> {
    let config = dms_executor::docker::Config {
        scope: scope.into(),
        ..dms_executor::docker::Config::default()
    };
    dms_executor::docker::Executor::connect(config).await
}

/// The VM executor's settings from `[vm]`, its VMs kept under `state_dir` for `scope`.
fn vm_settings(
    config: &VmConfig,
    state_dir: std::path::PathBuf,
    scope: String,
) -> Result<dms_executor::vm::Config, Error> {
    Ok(dms_executor::vm::Config {
        choice: config.choice().map_err(|e| Error::Executor(e.to_string()))?,
        qemu: VmConfig::program(&config.qemu),
        firecracker: VmConfig::program(&config.firecracker),
        ..dms_executor::vm::Config::new(state_dir, scope)
    })
}

/// Stops and removes every workload the node of `home` (peer id `peer`) left running:
/// its Docker containers, found by its scope label, and its VMs, found by their records.
/// Names what it removed. For uninstalling; the daemon must not run (it would re-attach
/// them). A missing engine or hypervisor has nothing to remove.
pub async fn remove_workloads(
    home: &crate::home::Home,
    config: &Config,
    peer: &str,
) -> Result<Vec<String>, Error> {
    use dms_executor::Executor as _;
    let scope = scope(peer);
    let none = std::collections::HashSet::new();
    let mut removed = Vec::new();
    if let Ok(Ok(docker)) = tokio::time::timeout(DOCKER_CONNECT, docker(&scope)).await {
        let recovery =
            docker.reattach(&none).await.map_err(|e| Error::Executor(format!("Docker: {e}")))?;
        removed.extend(recovery.removed.iter().map(|i| format!("container {}", i.id.0)));
    }
    let state_dir = config.store.resolve(home.root());
    let state_dir = state_dir.parent().unwrap_or(home.root()).join("vm");
    if state_dir.exists() {
        let settings = vm_settings(&config.vm, state_dir, scope)?;
        if let Ok(vm) = dms_executor::vm::Executor::new(settings).await {
            let recovery =
                vm.reattach(&none).await.map_err(|e| Error::Executor(format!("VM: {e}")))?;
            removed.extend(recovery.removed.iter().map(|i| format!("VM {}", i.id.0)));
        }
    }
    Ok(removed)
}

/// Adds the VM executor when a hypervisor is found, with `vm.backend` and `vm.accel` as
/// machine attributes.
async fn vm(
    executors: dms_provider::Executors,
    config: &VmConfig,
    state_dir: std::path::PathBuf,
    scope: String,
) -> Result<dms_provider::Executors, Error> {
    use dms_executor::vm;
    let settings = vm_settings(config, state_dir, scope)?;
    match vm::Executor::new(settings).await {
        Ok(executor) => {
            let backend = executor.backend().clone();
            info!(backend = %backend.describe(), "Virtual machines run here.");
            let name = match backend.hypervisor {
                vm::Hypervisor::Qemu => "qemu-microvm",
                vm::Hypervisor::Firecracker => "firecracker",
            };
            let accel = if backend.accel == vm::Accel::Kvm { "kvm" } else { "tcg" };
            Ok(executors
                .with(Kind::Vm, Arc::new(executor))
                .described("vm.backend", name)
                .described("vm.accel", accel))
        }
        Err(error) => {
            info!(%error, "No hypervisor: this node bids for no VM allocations.");
            Ok(executors)
        }
    }
}
