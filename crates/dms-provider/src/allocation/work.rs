//! What an allocation asks of an executor: the spec built from its record, the
//! workload (image or module), and the end of its output once it exited.

use base64::Engine as _;
use dms_ensemble::model::Executor as ExecutorKind;
use dms_executor::{
    ExecutionId, Executor, LogOptions, ModuleSource, PortBinding, Protocol, Published, PullPolicy,
    Spec, Workload,
};
use dms_protocol::{AllocationSpec, Endpoint, OUTPUT_KEEP};

use crate::hosted::Hosted;

/// The executor's spec of a hosted allocation.
pub(crate) fn executor_spec(hosted: &Hosted) -> Result<Spec, String> {
    let mut spec = Spec::new(&hosted.id, &hosted.deployment, workload(&hosted.spec)?);
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
    Ok(spec)
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

/// The executor workload of an allocation.
pub(crate) fn workload(spec: &AllocationSpec) -> Result<Workload, String> {
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
        ExecutorKind::Vm => Err("the vm executor is not available on this node".into()),
    }
}

/// The end of an exited execution's standard output (at most [`OUTPUT_KEEP`] bytes).
pub(crate) async fn output_of(executor: &dyn Executor, execution: &ExecutionId) -> String {
    let options = LogOptions { follow: false, tail: Some(200), stdout: true, stderr: false };
    let Ok(stream) = executor.logs(execution, options).await else { return String::new() };
    let lines = stream.collect().await.unwrap_or_default();
    let mut text: String = lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("");
    if text.len() > OUTPUT_KEEP {
        let mut cut = text.len() - OUTPUT_KEEP;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = text.split_off(cut);
    }
    text
}
