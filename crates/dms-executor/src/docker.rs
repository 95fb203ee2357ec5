//! The Docker backend: containers through the Engine API ([bollard]).
//!
//! Every container carries the labels `dms.allocation`, `dms.deployment` and `dms.executor`
//! (the scope: which dms node owns it). The executor keeps a table of the containers it
//! manages; after a restart [`Executor::reattach`](crate::Executor::reattach) rebuilds it from
//! the labels and removes orphans. Limits are cgroup settings: CPU as a CFS quota, memory
//! with swap disabled, pids. `body.rs` turns a [`Spec`] into the create request; `ops.rs`
//! holds logs, exec and stats.

mod body;
mod ops;
pub mod sandbox;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerState, ContainerStateStatusEnum};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, StartContainerOptions, WaitContainerOptions,
};
use futures::StreamExt as _;
use tracing::{debug, info, instrument, warn};

pub use body::{CPU_PERIOD_US, container_name, cpu_quota, create_body};

use crate::error::{Error, Result};
use crate::execution::{
    ExecOutput, ExecutionId, ExecutionInfo, ExitReason, ExitStatus, Kind, LogOptions, LogStream,
    Recovery, State, Stats,
};
use crate::spec::{LABEL_ALLOCATION, LABEL_DEPLOYMENT, LABEL_ROLE, LABEL_SCOPE, PullPolicy, Spec};

const BACKEND: &str = "docker";

/// Settings of the Docker executor (the `[executor.docker]` config section).
#[derive(Debug, Clone)]
pub struct Config {
    /// The engine's Unix socket. Default: `DOCKER_HOST` when it is `unix://…`, else
    /// `/var/run/docker.sock`.
    pub socket: String,
    /// Scope label value (`dms.executor`) marking the containers this node owns. Two nodes
    /// sharing one engine must use different scopes.
    pub scope: String,
    /// Whether privileged containers may run here (provider policy).
    pub allow_privileged: bool,
    /// Timeout of each Engine API request (pulls stream and are not bounded by it).
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: default_socket(),
            scope: "dms".into(),
            allow_privileged: false,
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// The Docker socket: `DOCKER_HOST` when it names a Unix socket, else the standard path.
pub fn default_socket() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => host.trim_start_matches("unix://").to_owned(),
        _ => "/var/run/docker.sock".to_owned(),
    }
}

/// What an operator should do when the engine cannot be reached.
pub const START_HINT: &str = "start the Docker engine (`systemctl start docker`, or where there \
     is no systemd: `dockerd >/tmp/dockerd.log 2>&1 &`) and make sure this user may use its \
     socket (root, or a member of the docker group)";

/// One container this executor manages.
#[derive(Debug, Clone)]
struct Entry {
    allocation: String,
    deployment: String,
    /// Set by `stop`: how the exit should be reported if the container did not OOM.
    stop_reason: Option<ExitReason>,
    /// The container holding its network namespace, when it joined a deployment network.
    sandbox: Option<String>,
}

/// The Docker executor.
pub struct Executor {
    docker: Docker,
    config: Config,
    table: Mutex<HashMap<ExecutionId, Entry>>,
    counter: AtomicU64,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("docker::Executor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Executor {
    /// Connects to the engine, negotiates the API version and checks that it answers.
    ///
    /// Fails with [`Error::Unavailable`] (saying how to start the engine) when it cannot.
    pub async fn connect(config: Config) -> Result<Executor> {
        let unavailable = |e: BollardError| Error::Unavailable {
            backend: BACKEND,
            reason: format!("cannot reach the engine at {}: {e}; {START_HINT}", config.socket),
        };
        let docker = Docker::connect_with_socket(
            &config.socket,
            config.request_timeout.as_secs().max(1),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(unavailable)?
        .negotiate_version()
        .await
        .map_err(unavailable)?;
        docker.ping().await.map_err(unavailable)?;
        debug!(socket = %config.socket, api = %docker.client_version(), "Connected to Docker.");
        Ok(Executor {
            docker,
            config,
            table: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        })
    }

    /// The underlying client, for callers that need more of the Engine API.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The executor's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn entry(&self, id: &ExecutionId) -> Result<Entry> {
        self.table().get(id).cloned().ok_or_else(|| Error::NotFound(id.clone()))
    }

    fn set_stop_reason(&self, id: &ExecutionId, reason: ExitReason) {
        if let Some(entry) = self.table().get_mut(id) {
            entry.stop_reason = Some(reason);
        }
    }

    async fn ensure_image(&self, image: &str, pull: PullPolicy) -> Result<()> {
        let present = match self.docker.inspect_image(image).await {
            Ok(_) => true,
            Err(e) if status(&e) == Some(404) => false,
            Err(e) => return Err(backend_error("inspect image", e)),
        };
        match (present, pull) {
            (true, PullPolicy::IfMissing | PullPolicy::Never) => Ok(()),
            (false, PullPolicy::Never) => Err(Error::Image {
                image: image.to_owned(),
                reason: "not present locally and the pull policy is `never`: build, load or \
                         import it first (docker build / docker load / docker import)"
                    .into(),
            }),
            (_, PullPolicy::IfMissing | PullPolicy::Always) => self.pull(image).await,
        }
    }

    #[instrument(skip(self))]
    async fn pull(&self, image: &str) -> Result<()> {
        let (from_image, tag) = split_tag(image);
        let options = CreateImageOptions {
            from_image: Some(from_image.to_owned()),
            tag: Some(tag.to_owned()),
            ..CreateImageOptions::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| Error::Image {
                image: image.to_owned(),
                reason: format!(
                    "pull failed: {e}; check that the registry is reachable and the name is \
                     right, or load the image locally"
                ),
            })?;
        }
        info!(image, "Image pulled.");
        Ok(())
    }

    async fn container_state(&self, id: &ExecutionId) -> Result<Option<ContainerState>> {
        Ok(self.container(id).await?.map(|c| c.state))
    }

    /// The container's state, its address on its first network and its published
    /// ports; `None` when gone.
    async fn container(&self, id: &ExecutionId) -> Result<Option<Inspected>> {
        match self.docker.inspect_container(&id.0, None).await {
            Ok(c) => {
                // A workload on a deployment network has its sandbox's network.
                let sandbox = self.table().get(id).and_then(|e| e.sandbox.clone());
                let sandbox = match sandbox {
                    Some(sandbox) => self.docker.inspect_container(&sandbox, None).await.ok(),
                    None => None,
                };
                let network_pid = sandbox
                    .as_ref()
                    .and_then(|s| s.state.as_ref()?.pid)
                    .and_then(|pid| u32::try_from(pid).ok())
                    .filter(|pid| *pid > 0);
                let settings =
                    sandbox.map_or(c.network_settings, |s| s.network_settings).unwrap_or_default();
                let published = body::published(settings.ports.as_ref());
                let address = settings
                    .networks
                    .and_then(|n| n.into_values().find_map(|e| e.ip_address))
                    .and_then(|ip| ip.parse().ok());
                Ok(Some(Inspected {
                    state: c.state.unwrap_or_default(),
                    address,
                    published,
                    network_pid,
                }))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(backend_error("inspect container", e)),
        }
    }

    fn state_of(&self, id: &ExecutionId, state: Option<&ContainerState>) -> State {
        let Some(state) = state else {
            return State::Exited(ExitStatus {
                code: -1,
                reason: ExitReason::Failed("container was removed outside dms".into()),
            });
        };
        match state.status {
            Some(
                ContainerStateStatusEnum::RUNNING
                | ContainerStateStatusEnum::PAUSED
                | ContainerStateStatusEnum::RESTARTING,
            ) => State::Running,
            Some(ContainerStateStatusEnum::CREATED)
            | None
            | Some(ContainerStateStatusEnum::EMPTY) => State::Created,
            _ => {
                let stop_reason = self.table().get(id).and_then(|e| e.stop_reason.clone());
                State::Exited(exit_status(state, stop_reason))
            }
        }
    }

    /// Waits for the container to leave the running state, then reads its exit status.
    async fn wait_exit(&self, id: &ExecutionId) -> Result<ExitStatus> {
        let mut waiting = self.docker.wait_container(&id.0, None::<WaitContainerOptions>);
        match waiting.next().await {
            // A non-zero exit code arrives as this "error": it is a normal exit.
            None | Some(Ok(_)) | Some(Err(BollardError::DockerContainerWaitError { .. })) => {}
            Some(Err(e)) if status(&e) == Some(404) => {}
            Some(Err(e)) => return Err(backend_error("wait container", e)),
        }
        let state = self.container_state(id).await?;
        match self.state_of(id, state.as_ref()) {
            State::Exited(status) => Ok(status),
            // The wait returned early (engine restart): report what we know.
            other => Err(Error::Backend {
                backend: BACKEND,
                operation: "wait container",
                message: format!("wait ended while the container is {other:?}; retry"),
            }),
        }
    }

    async fn kill(&self, id: &ExecutionId, signal: &str) -> Result<()> {
        let options = KillContainerOptions { signal: signal.into() };
        match self.docker.kill_container(&id.0, Some(options)).await {
            // 409: not running any more; 404: gone. Both mean there is nothing to signal.
            Err(e) if matches!(status(&e), Some(404 | 409)) => Ok(()),
            other => other.map_err(|e| backend_error("kill container", e)),
        }
    }

    async fn info(&self, id: &ExecutionId, entry: &Entry) -> Result<ExecutionInfo> {
        let container = self.container(id).await?;
        let (state, address, published, network_pid) = match container {
            Some(c) => (Some(c.state), c.address, c.published, c.network_pid),
            None => (None, None, Vec::new(), None),
        };
        Ok(ExecutionInfo {
            id: id.clone(),
            kind: Kind::Docker,
            allocation: entry.allocation.clone(),
            deployment: entry.deployment.clone(),
            state: self.state_of(id, state.as_ref()),
            address: address.filter(|ip| !ip.is_unspecified()),
            published,
            network_pid,
        })
    }

    fn next_suffix(&self) -> u64 {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        (nanos as u64 & 0xffff_ffff) << 16 | (self.counter.fetch_add(1, Ordering::Relaxed) & 0xffff)
    }
}

/// What inspecting a container (and its sandbox) tells.
struct Inspected {
    state: ContainerState,
    address: Option<std::net::IpAddr>,
    published: Vec<crate::execution::Published>,
    network_pid: Option<u32>,
}

#[async_trait]
impl crate::Executor for Executor {
    fn kind(&self) -> Kind {
        Kind::Docker
    }

    #[instrument(skip_all, fields(allocation = %spec.allocation, deployment = %spec.deployment))]
    async fn start(&self, spec: Spec) -> Result<ExecutionId> {
        let mut body = create_body(&spec, &self.config.scope, self.config.allow_privileged)?;
        let (image, _, pull) = body::docker_workload(&spec)?;
        self.ensure_image(image, pull).await?;

        let name = container_name(&spec.allocation, self.next_suffix());
        let sandbox = match &spec.network {
            Some(network) => {
                let scope = &self.config.scope;
                let id =
                    sandbox::start(&self.docker, &spec, network, scope, &format!("{name}-net"))
                        .await?;
                let host = body.host_config.get_or_insert_default();
                host.network_mode = Some(format!("container:{id}"));
                Some(id)
            }
            None => None,
        };
        let started = self.create_and_start(&name, body, image).await;
        let id = match started {
            Ok(id) => id,
            Err(e) => {
                if let Some(sandbox) = &sandbox {
                    self.remove_quietly(&ExecutionId(sandbox.clone())).await;
                }
                return Err(e);
            }
        };
        self.table().insert(
            id.clone(),
            Entry {
                allocation: spec.allocation,
                deployment: spec.deployment,
                stop_reason: None,
                sandbox,
            },
        );
        info!(container = %id, %name, "Container started.");
        Ok(id)
    }

    async fn wait(&self, id: &ExecutionId) -> Result<ExitStatus> {
        self.entry(id)?;
        let status = self.wait_exit(id).await?;
        // The namespace has no use once the workload exited (a restart makes a new one).
        let sandbox = self.table().get_mut(id).and_then(|e| e.sandbox.take());
        if let Some(sandbox) = sandbox {
            self.remove_quietly(&ExecutionId(sandbox)).await;
        }
        Ok(status)
    }

    #[instrument(skip(self), fields(container = %id))]
    async fn stop(&self, id: &ExecutionId, grace: Duration) -> Result<ExitStatus> {
        let entry = self.entry(id)?;
        if let State::Exited(status) = self.info(id, &entry).await?.state {
            return Ok(status);
        }
        self.set_stop_reason(id, ExitReason::Stopped);
        self.kill(id, "SIGTERM").await?;
        match tokio::time::timeout(grace, self.wait_exit(id)).await {
            Ok(status) => status,
            Err(_) => {
                info!(grace = ?grace, "Container ignored SIGTERM: killing it.");
                self.set_stop_reason(id, ExitReason::Killed);
                self.kill(id, "SIGKILL").await?;
                self.wait_exit(id).await
            }
        }
    }

    #[instrument(skip(self), fields(container = %id))]
    async fn remove(&self, id: &ExecutionId) -> Result<()> {
        let entry = self.entry(id)?;
        self.remove_container(id).await?;
        if let Some(sandbox) = entry.sandbox {
            self.remove_container(&ExecutionId(sandbox)).await?;
        }
        self.table().remove(id);
        info!("Container removed.");
        Ok(())
    }

    async fn logs(&self, id: &ExecutionId, options: LogOptions) -> Result<LogStream> {
        self.entry(id)?;
        Ok(ops::logs(self.docker.clone(), id.clone(), options))
    }

    async fn exec(&self, id: &ExecutionId, command: Vec<String>) -> Result<ExecOutput> {
        self.entry(id)?;
        ops::exec(&self.docker, id, command).await
    }

    async fn stats(&self, id: &ExecutionId) -> Result<Stats> {
        self.entry(id)?;
        ops::stats(&self.docker, id).await
    }

    async fn inspect(&self, id: &ExecutionId) -> Result<ExecutionInfo> {
        let entry = self.entry(id)?;
        self.info(id, &entry).await
    }

    async fn list(&self) -> Result<Vec<ExecutionInfo>> {
        let entries: Vec<(ExecutionId, Entry)> =
            self.table().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut out = Vec::with_capacity(entries.len());
        for (id, entry) in entries {
            out.push(self.info(&id, &entry).await?);
        }
        out.sort_by(|a, b| a.allocation.cmp(&b.allocation).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    #[instrument(skip_all, fields(scope = %self.config.scope, known = known.len()))]
    async fn reattach(&self, known: &HashSet<String>) -> Result<Recovery> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_SCOPE}={}", self.config.scope), LABEL_ALLOCATION.to_owned()],
        )]);
        let options =
            ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| backend_error("list containers", e))?;
        let mut recovery = Recovery::default();
        let (sandboxes, containers): (Vec<_>, Vec<_>) = containers.into_iter().partition(|c| {
            c.labels.as_ref().and_then(|l| l.get(LABEL_ROLE)).is_some_and(|r| r == sandbox::ROLE)
        });
        // Sandbox ids; what no re-attached workload shares the network of is removed below.
        let mut sandboxes: HashSet<String> = sandboxes.into_iter().filter_map(|c| c.id).collect();
        for container in containers {
            let Some(id) = container.id.map(ExecutionId) else { continue };
            let labels = container.labels.unwrap_or_default();
            let allocation = labels.get(LABEL_ALLOCATION).cloned().unwrap_or_default();
            // A workload on a deployment network names its sandbox: `container:<id>`.
            let network = container.host_config.and_then(|h| h.network_mode).unwrap_or_default();
            let sandbox = network.strip_prefix("container:").map(String::from);
            let entry = Entry {
                sandbox: sandbox.filter(|s| known.contains(&allocation) && sandboxes.remove(s)),
                allocation,
                deployment: labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
                stop_reason: None,
            };
            if known.contains(&entry.allocation) {
                self.table().insert(id.clone(), entry.clone());
                let info = self.info(&id, &entry).await?;
                info!(container = %id, allocation = %entry.allocation, state = ?info.state, "Re-attached.");
                recovery.reattached.push(info);
            } else {
                let info = self.info(&id, &entry).await?;
                self.remove_container(&id).await?;
                self.table().remove(&id);
                warn!(container = %id, allocation = %entry.allocation, "Removed an orphan container.");
                recovery.removed.push(info);
            }
        }
        for sandbox in sandboxes {
            // A sandbox left over is no reason to give up the re-attached workloads.
            match self.remove_container(&ExecutionId(sandbox.clone())).await {
                Ok(()) => warn!(%sandbox, "Removed an orphan sandbox."),
                Err(error) => warn!(%sandbox, %error, "Cannot remove an orphan sandbox."),
            }
        }
        Ok(recovery)
    }
}

impl Executor {
    async fn create_and_start(
        &self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
        image: &str,
    ) -> Result<ExecutionId> {
        let options = CreateContainerOptions { name: Some(name.to_owned()), ..Default::default() };
        let created = self.docker.create_container(Some(options), body).await.map_err(|e| {
            if status(&e) == Some(404) {
                Error::Image { image: image.to_owned(), reason: format!("{e}") }
            } else {
                backend_error("create container", e)
            }
        })?;
        for warning in &created.warnings {
            warn!(container = %created.id, warning, "Docker warned about the container.");
        }
        let id = ExecutionId(created.id);
        if let Err(e) = self.docker.start_container(&id.0, None::<StartContainerOptions>).await {
            let message = e.to_string();
            self.remove_quietly(&id).await;
            if message.contains("device driver") || message.contains("nvidia") {
                return Err(Error::GpuUnavailable(message));
            }
            return Err(backend_error("start container", e));
        }
        Ok(id)
    }

    /// Removes a container whose failure is being reported already.
    async fn remove_quietly(&self, id: &ExecutionId) {
        if let Err(cleanup) = self.remove_container(id).await {
            warn!(container = %id, error = %cleanup, "Cannot remove a container that failed.");
        }
    }

    async fn remove_container(&self, id: &ExecutionId) -> Result<()> {
        let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match self.docker.remove_container(&id.0, Some(options)).await {
            Err(e) if status(&e) == Some(404) => Ok(()),
            other => other.map_err(|e| backend_error("remove container", e)),
        }
    }
}

/// The exit status in an inspected container state.
fn exit_status(state: &ContainerState, stop_reason: Option<ExitReason>) -> ExitStatus {
    let code = state.exit_code.unwrap_or(-1);
    let reason = if state.oom_killed == Some(true) {
        ExitReason::OomKilled
    } else if let Some(error) = state.error.as_deref().filter(|e| !e.is_empty()) {
        ExitReason::Failed(error.to_owned())
    } else {
        stop_reason.unwrap_or(ExitReason::Exited)
    };
    ExitStatus { code, reason }
}

/// The HTTP status of an engine error, if it is one.
fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub(crate) fn backend_error(operation: &'static str, e: BollardError) -> Error {
    Error::Backend { backend: BACKEND, operation, message: e.to_string() }
}

/// `repo[:tag]` → (`repo`, `tag`), defaulting the tag to `latest` (pulling with an empty tag
/// would fetch every tag). Digests (`@sha256:…`) are passed whole with an empty tag.
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_default_to_latest() {
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_tag("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(split_tag("localhost:5000/app"), ("localhost:5000/app", "latest"));
        assert_eq!(split_tag("localhost:5000/app:v2"), ("localhost:5000/app", "v2"));
    }

    #[test]
    fn oom_wins_over_stop_reason() {
        let state =
            ContainerState { exit_code: Some(137), oom_killed: Some(true), ..Default::default() };
        assert_eq!(exit_status(&state, Some(ExitReason::Killed)).reason, ExitReason::OomKilled);
        let state =
            ContainerState { exit_code: Some(137), oom_killed: Some(false), ..Default::default() };
        assert_eq!(exit_status(&state, Some(ExitReason::Killed)).reason, ExitReason::Killed);
        assert_eq!(exit_status(&state, None).reason, ExitReason::Exited);
    }
}
