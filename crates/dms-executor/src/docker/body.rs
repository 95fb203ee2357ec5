//! Translation of a [`Spec`] into the Engine API's container-create body.
//!
//! Pure functions, unit-tested in `body/tests.rs`; the engine checks the rest.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HostConfig, Mount as DockerMount,
    MountTmpfsOptions, MountType, PortBinding as DockerPortBinding,
};

use crate::error::{Error, Result};
use crate::spec::{
    GpuRequest, LABEL_ALLOCATION, LABEL_DEPLOYMENT, LABEL_SCOPE, PortBinding, Protocol, Spec,
    Workload,
};

/// CFS period used for CPU quotas: 100 ms, the kernel's default.
pub const CPU_PERIOD_US: i64 = 100_000;

/// The image, entrypoint and pull policy of a Docker workload, or an error for other kinds.
pub fn docker_workload(spec: &Spec) -> Result<(&str, Option<&Vec<String>>, crate::PullPolicy)> {
    match &spec.workload {
        Workload::Docker { image, entrypoint, pull } => {
            if image.trim().is_empty() {
                return Err(Error::InvalidSpec("docker workload has an empty image".into()));
            }
            Ok((image, entrypoint.as_ref(), *pull))
        }
        other => Err(Error::InvalidSpec(format!(
            "the docker executor cannot run a {} workload",
            other.kind()
        ))),
    }
}

/// CPU quota in microseconds per [`CPU_PERIOD_US`] for `cores` cores.
pub fn cpu_quota(cores: f64) -> Result<i64> {
    if !cores.is_finite() || cores <= 0.0 || cores > 4096.0 {
        return Err(Error::InvalidSpec(format!(
            "cpu_cores must be a positive number of cores, got {cores}"
        )));
    }
    // The kernel refuses quotas under 1 ms.
    Ok(((cores * CPU_PERIOD_US as f64).round() as i64).max(1_000))
}

/// The container-create body for `spec`, labelled with `scope`.
pub fn create_body(
    spec: &Spec,
    scope: &str,
    allow_privileged: bool,
) -> Result<ContainerCreateBody> {
    let (image, entrypoint, _) = docker_workload(spec)?;
    if spec.privileged && !allow_privileged {
        return Err(Error::Refused(format!(
            "allocation {} asks for a privileged container and this provider does not allow \
             them (set executor.docker.allow_privileged = true to allow)",
            spec.allocation
        )));
    }

    let labels = labels(spec, scope);
    let mut host = HostConfig { privileged: Some(spec.privileged), ..HostConfig::default() };
    let r = &spec.resources;
    if let Some(cores) = r.cpu_cores {
        host.cpu_period = Some(CPU_PERIOD_US);
        host.cpu_quota = Some(cpu_quota(cores)?);
    }
    if let Some(bytes) = r.memory_bytes {
        let bytes =
            i64::try_from(bytes).ok().filter(|b| *b >= 6 * 1024 * 1024).ok_or_else(|| {
                Error::InvalidSpec(format!("memory_bytes {bytes} must be at least 6 MiB"))
            })?;
        host.memory = Some(bytes);
        // Equal to memory: no swap, so exceeding the limit is an OOM kill, not slow swapping.
        host.memory_swap = Some(bytes);
    }
    if let Some(pids) = r.pids {
        host.pids_limit = Some(i64::try_from(pids).unwrap_or(i64::MAX));
    }
    if let Some(gpus) = &r.gpus {
        host.device_requests = Some(vec![device_request(gpus)]);
    }
    if !spec.devices.is_empty() {
        host.devices = Some(
            spec.devices
                .iter()
                .map(|path| {
                    let path = path.to_string_lossy().into_owned();
                    DeviceMapping {
                        path_on_host: Some(path.clone()),
                        path_in_container: Some(path),
                        cgroup_permissions: Some("rwm".into()),
                    }
                })
                .collect(),
        );
    }

    if !spec.mounts.is_empty() {
        host.mounts = Some(
            spec.mounts
                .iter()
                .map(|m| match m.tmpfs {
                    Some(size) => DockerMount {
                        target: Some(m.target.clone()),
                        typ: Some(MountType::TMPFS),
                        read_only: Some(m.read_only),
                        tmpfs_options: Some(MountTmpfsOptions {
                            size_bytes: i64::try_from(size).ok(),
                            ..MountTmpfsOptions::default()
                        }),
                        ..DockerMount::default()
                    },
                    None => DockerMount {
                        target: Some(m.target.clone()),
                        source: Some(m.source.to_string_lossy().into_owned()),
                        typ: Some(MountType::BIND),
                        read_only: Some(m.read_only),
                        ..DockerMount::default()
                    },
                })
                .collect(),
        );
    }

    // A workload on a deployment network shares its sandbox's namespace, which publishes
    // the ports (see `sandbox.rs`).
    let (exposed, bindings) = match spec.network {
        None => ports(&spec.ports),
        Some(_) => (None, None),
    };
    host.port_bindings = bindings;

    Ok(ContainerCreateBody {
        image: Some(image.to_owned()),
        entrypoint: entrypoint.cloned(),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.working_dir.clone(),
        labels: Some(labels),
        exposed_ports: exposed,
        // No TTY: stdout and stderr stay separate streams.
        tty: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        host_config: Some(host),
        ..ContainerCreateBody::default()
    })
}

/// The labels of everything made for `spec`: its own (without `dms.*`) and dms's.
pub(crate) fn labels(spec: &Spec, scope: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with("dms."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_ALLOCATION.into(), spec.allocation.clone());
    labels.insert(LABEL_DEPLOYMENT.into(), spec.deployment.clone());
    labels.insert(LABEL_SCOPE.into(), scope.into());
    labels
}

/// Bindings of the engine's create request.
pub(crate) type Bindings = HashMap<String, Option<Vec<DockerPortBinding>>>;

/// The exposed ports and host bindings publishing `ports`; `None`s when there are none.
pub(crate) fn ports(ports: &[PortBinding]) -> (Option<Vec<String>>, Option<Bindings>) {
    if ports.is_empty() {
        return (None, None);
    }
    let mut exposed = Vec::new();
    let mut map: Bindings = HashMap::new();
    for p in ports {
        let protocol = match p.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let key = format!("{}/{protocol}", p.container_port);
        exposed.push(key.clone());
        map.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(
            DockerPortBinding {
                host_ip: p.host_ip.map(|ip| ip.to_string()),
                host_port: Some(p.host_port.map(|port| port.to_string()).unwrap_or_default()),
            },
        );
    }
    (Some(exposed), Some(map))
}

fn device_request(gpus: &GpuRequest) -> DeviceRequest {
    let (count, device_ids) = match gpus {
        GpuRequest::All => (Some(-1), None),
        GpuRequest::Count(n) => (Some(i64::from(*n)), None),
        GpuRequest::Devices(ids) => (None, Some(ids.clone())),
    };
    DeviceRequest {
        driver: Some("nvidia".into()),
        count,
        device_ids,
        capabilities: Some(vec![vec!["gpu".into()]]),
        options: None,
    }
}

/// A container name for an allocation: `dms-<allocation>-<suffix>`, restricted to the
/// characters Docker accepts.
pub fn container_name(allocation: &str, suffix: u64) -> String {
    let clean: String = allocation
        .chars()
        .map(
            |c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' },
        )
        .take(64)
        .collect();
    format!("dms-{clean}-{suffix:x}")
}

#[cfg(test)]
mod tests;

/// The host ports the engine bound, from a container's `NetworkSettings.Ports`
/// (`"8080/tcp" → [{HostIp, HostPort}]`); one entry per container port and protocol.
pub(crate) fn published(
    ports: Option<&HashMap<String, Option<Vec<DockerPortBinding>>>>,
) -> Vec<crate::execution::Published> {
    let mut out: Vec<crate::execution::Published> = ports
        .into_iter()
        .flatten()
        .filter_map(|(key, bindings)| {
            let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            let protocol = if protocol == "udp" { Protocol::Udp } else { Protocol::Tcp };
            let host_port = bindings
                .iter()
                .flatten()
                .find_map(|b| b.host_port.as_deref().and_then(|p| p.parse().ok()))?;
            Some(crate::execution::Published { port: port.parse().ok()?, protocol, host_port })
        })
        .collect();
    out.sort_by_key(|p| (p.port, p.host_port));
    out
}
