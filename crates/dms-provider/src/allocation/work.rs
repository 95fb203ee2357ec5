//! What an allocation asks of an executor: the spec built from its record (its volumes
//! as mounts: host directories, or a container's memory-backed tmpfs), the
//! workload (image or module), and the end of its output once it exited.

use base64::Engine as _;
use dms_ensemble::model::Executor as ExecutorKind;
use dms_executor::{
    ExecutionId, Executor, LogOptions, ModuleSource, PortBinding, Protocol, Published, PullPolicy,
    Spec, VmImage, Workload,
};
use dms_protocol::{AllocationSpec, Endpoint, OUTPUT_KEEP};

use crate::hosted::Hosted;

/// The executor's spec of a hosted allocation.
pub(crate) fn executor_spec(
    hosted: &Hosted,
    volumes: &[dms_storage::Placed],
) -> Result<Spec, String> {
    let mut spec = Spec::new(&hosted.id, &hosted.deployment, workload(&hosted.spec, volumes)?);
    let allocation = &hosted.spec.allocation;
    spec.env = allocation.environment.clone();
    spec.args = match allocation.executor {
        ExecutorKind::Docker => allocation.execution.command.clone(),
        _ => allocation.execution.args.clone(),
    };
    spec.working_dir = allocation.execution.working_dir.clone();
    spec.resources.cpu_cores = Some(allocation.resources.cpu.cores);
    spec.resources.memory_bytes = Some(allocation.resources.ram.0);
    spec.ports = ports(&hosted.spec);
    spec.mounts = volumes
        .iter()
        .map(|v| dms_executor::Mount {
            source: v.host.clone().unwrap_or_default(),
            target: v.target.clone(),
            read_only: v.read_only,
            tmpfs: if v.host.is_none() { Some(v.size.unwrap_or(64 << 20)) } else { None },
        })
        .collect();
    if allocation.executor == ExecutorKind::Docker {
        let (request, devices) = gpus(&hosted.gpus, std::path::Path::new("/sys/class/drm"));
        spec.resources.gpus = request;
        spec.devices = devices;
    }
    Ok(spec)
}

/// How a container is given `gpus`: NVIDIA ones as a device request by UUID (by index
/// where there is none), AMD and Intel ones as their DRM device files (the card, its
/// render nodes as listed under `drm`, and `/dev/kfd` for AMD's compute).
pub(crate) fn gpus(
    gpus: &[dms_types::resources::Gpu],
    drm: &std::path::Path,
) -> (Option<dms_executor::GpuRequest>, Vec<std::path::PathBuf>) {
    use dms_types::resources::GpuVendor;
    let nvidia: Vec<String> = gpus
        .iter()
        .filter(|g| g.vendor == GpuVendor::Nvidia)
        .map(|g| g.uuid.clone().unwrap_or_else(|| g.index.to_string()))
        .collect();
    let mut devices = Vec::new();
    for gpu in gpus.iter().filter(|g| g.vendor != GpuVendor::Nvidia) {
        let Some(card) = gpu.drm_card else { continue };
        devices.push(std::path::PathBuf::from(format!("/dev/dri/card{card}")));
        devices.extend(render_nodes(drm, card));
        if gpu.vendor == GpuVendor::Amd && !devices.iter().any(|d| d.ends_with("kfd")) {
            devices.push("/dev/kfd".into());
        }
    }
    let request = (!nvidia.is_empty()).then_some(dms_executor::GpuRequest::Devices(nvidia));
    (request, devices)
}

/// The render nodes of DRM card `card` (`<drm>/card<N>/device/drm/renderD*`), or the
/// conventional `renderD<128 + N>` when sysfs does not list them.
fn render_nodes(drm: &std::path::Path, card: u32) -> Vec<std::path::PathBuf> {
    let listed: Vec<std::path::PathBuf> =
        std::fs::read_dir(drm.join(format!("card{card}/device/drm")))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|name| name.starts_with("renderD"))
            .map(|name| std::path::PathBuf::from(format!("/dev/dri/{name}")))
            .collect();
    if listed.is_empty() { vec![format!("/dev/dri/renderD{}", 128 + card).into()] } else { listed }
}

/// Every port of the allocation, published: on the public port a node port map gives
/// it, else on one the engine picks.
pub(crate) fn ports(spec: &AllocationSpec) -> Vec<PortBinding> {
    spec.allocation
        .ports
        .iter()
        .map(|p| {
            let public = spec
                .port_maps
                .iter()
                .find(|m| m.private == p.port && m.protocol == p.protocol)
                .and_then(|m| m.public);
            PortBinding {
                container_port: p.port,
                protocol: match p.protocol {
                    dms_ensemble::model::Protocol::Tcp => Protocol::Tcp,
                    dms_ensemble::model::Protocol::Udp => Protocol::Udp,
                },
                host_ip: None,
                host_port: public,
            }
        })
        .collect()
}

/// Where users reach each published port: the provider's public `host`.
pub(crate) fn endpoints(published: &[Published], host: &str) -> Vec<Endpoint> {
    published
        .iter()
        .map(|p| Endpoint {
            port: p.port,
            protocol: match p.protocol {
                Protocol::Tcp => "tcp".into(),
                Protocol::Udp => "udp".into(),
            },
            host: host.to_string(),
            public: p.host_port,
        })
        .collect()
}

/// The executor workload of an allocation, its VM images in `volumes` where they are
/// named by a path under a volume's target (the check before allocating passes none: the
/// path is kept as it is).
pub(crate) fn workload(
    spec: &AllocationSpec,
    volumes: &[dms_storage::Placed],
) -> Result<Workload, String> {
    let execution = &spec.allocation.execution;
    match spec.allocation.executor {
        ExecutorKind::Wasm => {
            let module = if let Some(b64) = &spec.module_b64 {
                ModuleSource::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| format!("module: {e}"))?,
                )
            } else {
                match execution.module.as_deref() {
                    Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                        ModuleSource::Url(url.into())
                    }
                    Some(path) => {
                        return Err(format!(
                            "the module {path:?} was not sent along (deploy with `dms deploy`, which reads local modules)"
                        ));
                    }
                    None => return Err("no module".into()),
                }
            };
            Ok(Workload::Wasm { module, cpu_time: None, fuel: None })
        }
        ExecutorKind::Docker => {
            let image = execution.image.clone().ok_or("no image")?;
            let entrypoint =
                (!execution.entrypoint.is_empty()).then(|| execution.entrypoint.clone());
            Ok(Workload::Docker { image, entrypoint, pull: PullPolicy::IfMissing })
        }
        ExecutorKind::Vm => {
            let image = |what, location: &Option<String>| {
                vm_image(spec, volumes, what, location.as_deref())
            };
            Ok(Workload::Vm {
                kernel: image("kernel", &execution.kernel)?.ok_or("no kernel")?,
                initrd: image("initrd", &execution.initrd)?,
                rootfs: image("rootfs", &execution.rootfs)?,
                kernel_args: execution.kernel_args.clone(),
                memory_bytes: execution.memory.map(|m| m.0),
            })
        }
    }
}

/// A VM image as the executor takes it: sent along with the deployment, a file in one of
/// its volumes, or its URL; with the ensemble's checksum.
fn vm_image(
    spec: &AllocationSpec,
    volumes: &[dms_storage::Placed],
    what: &str,
    location: Option<&str>,
) -> Result<Option<VmImage>, String> {
    let Some(location) = location else { return Ok(None) };
    let source = if let Some((volume, rest)) = spec.allocation.in_volume(location) {
        if volumes.is_empty() {
            // The check before allocating: the volumes are placed later.
            ModuleSource::File(location.into())
        } else {
            let placed = volumes.iter().find(|p| p.target == volume.target);
            let host = placed.and_then(|p| p.host.as_ref()).ok_or_else(|| {
                format!("the {what} {location:?} is in a volume with no directory on this host")
            })?;
            ModuleSource::File(
                inside(host, rest).map_err(|why| format!("the {what} {location:?}: {why}"))?,
            )
        }
    } else if let Some(b64) = spec.images_b64.get(what) {
        ModuleSource::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("{what}: {e}"))?,
        )
    } else if location.starts_with("http://") || location.starts_with("https://") {
        ModuleSource::Url(location.into())
    } else {
        return Err(format!(
            "the {what} {location:?} was not sent along (`dms deploy` sends local images that \
             fit in a message; serve larger ones over http(s) and give their URL, or stage \
             them into a volume with `inputs` and give their path there)"
        ));
    };
    let sha256 = spec.allocation.execution.checksums.get(what).cloned();
    Ok(Some(VmImage { source, sha256 }))
}

/// `rest` under the volume directory `host`, refused when it resolves (through links a
/// workload may have made in its volume) outside of it.
fn inside(host: &std::path::Path, rest: &str) -> Result<std::path::PathBuf, String> {
    let path = host.join(rest);
    let real = path.canonicalize().map_err(|e| format!("not in its volume: {e}"))?;
    let root = host.canonicalize().map_err(|e| format!("its volume: {e}"))?;
    if real.starts_with(&root) {
        Ok(real)
    } else {
        Err("a link in its volume leads out of it".into())
    }
}

/// The end of an exited execution's standard output (at most [`OUTPUT_KEEP`] bytes).
pub(crate) async fn output_of(executor: &dyn Executor, execution: &ExecutionId) -> String {
    let options = LogOptions { follow: false, tail: Some(200), stdout: true, stderr: false };
    let Ok(stream) = executor.logs(execution, options).await else { return String::new() };
    let lines = stream.collect().await.unwrap_or_default();
    let mut text: String = lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
    if text.len() > OUTPUT_KEEP {
        let mut cut = text.len() - OUTPUT_KEEP;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = text.split_off(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use dms_types::resources::{Gpu, GpuVendor};

    use super::*;

    fn gpu(index: u32, vendor: GpuVendor, uuid: Option<&str>, drm_card: Option<u32>) -> Gpu {
        Gpu {
            index,
            vendor,
            model: "m".into(),
            vram_bytes: 0,
            uuid: uuid.map(String::from),
            drm_card,
        }
    }

    #[test]
    fn a_volume_file_must_resolve_inside_its_volume() {
        let volume = tempfile::tempdir().expect("tempdir");
        std::fs::write(volume.path().join("vmlinuz"), b"kernel").expect("file");
        std::os::unix::fs::symlink("/etc/passwd", volume.path().join("escape")).expect("link");
        let real = inside(volume.path(), "vmlinuz").expect("inside");
        assert!(real.ends_with("vmlinuz"));
        let error = inside(volume.path(), "escape").expect_err("outside");
        assert!(error.contains("leads out of it"), "{error}");
        assert!(inside(volume.path(), "missing").is_err());
    }

    #[test]
    fn nvidia_gpus_are_requested_by_uuid_and_others_mapped_as_devices() {
        let drm = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(drm.path().join("card1/device/drm/renderD129")).expect("sysfs");
        let given = [
            gpu(0, GpuVendor::Nvidia, Some("GPU-aaaa"), None),
            gpu(1, GpuVendor::Nvidia, None, None),
            gpu(2, GpuVendor::Amd, None, Some(1)),
            gpu(3, GpuVendor::Intel, None, Some(2)),
        ];
        let (request, devices) = gpus(&given, drm.path());
        assert_eq!(
            request,
            Some(dms_executor::GpuRequest::Devices(vec!["GPU-aaaa".into(), "1".into()]))
        );
        let devices: Vec<String> = devices.iter().map(|d| d.display().to_string()).collect();
        assert_eq!(
            devices,
            [
                "/dev/dri/card1",
                "/dev/dri/renderD129",
                "/dev/kfd",
                "/dev/dri/card2",
                "/dev/dri/renderD130"
            ],
            "listed render node; the conventional one where sysfs lists none"
        );
        assert_eq!(gpus(&[], drm.path()), (None, Vec::new()), "no GPU, nothing passed");
    }
}
