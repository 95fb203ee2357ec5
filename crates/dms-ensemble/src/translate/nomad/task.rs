//! One Nomad task → an allocation (docker and podman tasks only).

use super::group::Group;
use super::service::{self, Check};
use super::{blocks, int, restart_policy};
use crate::Position;
use crate::model::{Allocation, AllocationType, Gpu, GpuVendor, Port, Volume, VolumeKind};
use crate::translate::{Cx, Obj, docker, strings, text};
use crate::tree::{Kind, Path, Value};
use crate::units::ByteSize;

/// A translated task.
pub(super) struct Task {
    /// The task's name in the job.
    pub(super) name: String,
    pub(super) allocation: Allocation,
    /// A prestart task: the others depend on it.
    pub(super) prestart: bool,
    /// The group port labels the task uses.
    pub(super) labels: Vec<String>,
    pub(super) pos: Position,
    pub(super) path: Path,
}

/// The task, or the driver that cannot be represented.
pub(super) fn translate(
    name: &str,
    value: &Value,
    path: Path,
    group: &Group<'_>,
    cx: &mut Cx,
) -> Result<Task, String> {
    let mut t = Obj::new(value, path.clone());
    let driver = t.str("driver").unwrap_or_default();
    if driver != "docker" && driver != "podman" {
        cx.warn(value.pos, &path, format!("not translated: the {driver:?} driver cannot be represented (only docker and podman tasks)"));
        return Err(driver);
    }
    let kind = if group.job.batch { AllocationType::Task } else { AllocationType::Service };
    let mut task = Task {
        name: name.to_string(),
        allocation: docker(kind, String::new()),
        prestart: false,
        labels: Vec::new(),
        pos: value.pos,
        path: path.clone(),
    };
    match t.obj("config") {
        Some(config) => self::config(config, group, &mut task, cx),
        None => cx.warn(value.pos, &path, "the task has no `config`, so no image"),
    }
    let a = &mut task.allocation;
    for e in t.get("env").and_then(Value::entries).unwrap_or_default() {
        a.environment.extend(text(&e.value).map(|v| (e.key.clone(), v)));
    }
    let given = t.obj("resources").map_or((false, false), |r| resources(r, a, cx));
    a.resources.cpu.cores = if given.0 { a.resources.cpu.cores } else { 0.1 };
    a.resources.ram = if given.1 { a.resources.ram } else { ByteSize::mib(300) };
    cx.assumed(value.pos, &path, a, given, " (Nomad's defaults: cpu = 100 MHz, memory = 300 MB)");
    if let Some(r) = blocks(t.get("restart")).first() {
        a.restart = Some(restart_policy(r, group.job.batch));
    }
    mounts(t.get("volume_mount"), group, a);
    if let Some(lifecycle) = blocks(t.get("lifecycle")).first() {
        task.prestart = lifecycle_hook(lifecycle, &path.key("lifecycle"), &mut task.allocation, cx);
    }
    task.allocation.execution.user = t.str("user");
    for check in service::translate(t.get("service"), &path.key("service"), &group.labels, cx) {
        give_check(&mut task, check, cx);
    }
    for key in
        ["driver", "config", "env", "resources", "service", "restart", "volume_mount", "lifecycle"]
    {
        t.skip(key);
    }
    for (key, why) in [
        (
            "template",
            "templates are rendered by Nomad; put the rendered files in a volume or the image",
        ),
        ("artifact", "artifacts are not fetched; put them in the image"),
        ("kill_timeout", "the stop grace period is the provider's"),
        ("kill_signal", "allocations are stopped by the provider"),
        ("shutdown_delay", "the stop grace period is the provider's"),
        ("logs", "logs are collected by dms"),
        ("vault", "secrets are not part of an ensemble"),
        ("identity", "workload identities are not part of an ensemble"),
        ("meta", "task metadata is not carried to allocations"),
        ("leader", "every allocation lives on its own"),
        ("constraint", "task constraints apply to the whole group's node; move them to the group"),
        ("affinity", "an ensemble has only hard constraints"),
    ] {
        t.drop_key(cx, key, why);
    }
    t.finish(cx);
    Ok(task)
}

/// A check of a service, unless the allocation has one already.
pub(super) fn give_check(task: &mut Task, check: Check, cx: &mut Cx) {
    if task.allocation.healthcheck.is_some() {
        cx.warn(
            check.pos,
            &check.path,
            format!(
                "not translated: an allocation has one health check; {} has one already",
                task.name
            ),
        );
    } else {
        task.allocation.healthcheck = Some(check.check);
    }
}

/// The docker driver's `config`. Nomad's `command` and `args` are the container's
/// command (the image's entrypoint stays); `entrypoint` replaces the entrypoint.
fn config(mut config: Obj<'_>, group: &Group<'_>, task: &mut Task, cx: &mut Cx) {
    let a = &mut task.allocation;
    a.execution.image = Some(config.str("image").unwrap_or_default());
    a.execution.command = config.str("command").into_iter().collect();
    a.execution.command.extend(config.get("args").map(strings).unwrap_or_default());
    a.execution.entrypoint = config.get("entrypoint").map(strings).unwrap_or_default();
    a.execution.working_dir = config.str("work_dir");
    for label in config.get("ports").map(strings).unwrap_or_default() {
        match group.labels.get(&label) {
            Some(l) => {
                a.ports.push(Port {
                    port: l.inside,
                    protocol: Default::default(),
                    name: Some(label.clone()),
                });
                task.labels.push(label);
            }
            None => cx.warn(
                config.pos("ports"),
                &config.path.key("ports"),
                format!("not translated: port `{label}` is not a port of the group's network"),
            ),
        }
    }
    for (i, spec) in config.get("volumes").map(strings).unwrap_or_default().iter().enumerate() {
        let pos = config.pos("volumes");
        bind(spec, pos, &config.path.key("volumes").index(i), a, cx);
    }
    for (i, m) in blocks(config.get("mount")).into_iter().enumerate() {
        mount(Obj::new(m, config.path.key("mount").index(i)), a, cx);
    }
    for (key, why) in [
        ("auth", "registry credentials are not part of an ensemble"),
        ("network_mode", "allocations use the ensemble subnet"),
        ("privileged", "privileged containers are not allowed"),
        ("labels", "labels are not carried to allocations"),
        ("dns_servers", "DNS is the ensemble's"),
        ("dns_search_domains", "DNS is the ensemble's"),
        ("extra_hosts", "host entries come from the ensemble DNS"),
        ("cap_add", "capabilities cannot be added"),
        ("cap_drop", "capabilities cannot be dropped"),
        ("devices", "host devices are not passed through; ask for GPUs in resources"),
        ("logging", "logs are collected by dms"),
        ("hostname", "host names are the ensemble's DNS names"),
        ("ulimit", "ulimits are the provider's"),
        ("shm_size", "shared memory size is the provider's"),
        ("sysctl", "kernel parameters are the provider's"),
        ("security_opt", "security settings are the provider's"),
    ] {
        config.drop_key(cx, key, why);
    }
    for key in ["force_pull", "image_pull_timeout", "interactive", "tty"] {
        config.skip(key);
    }
    config.finish(cx);
}

/// One `volumes` entry of the docker config: `source:target[:ro]`. A relative source is
/// in the task directory Nomad fills (templates, artifacts).
fn bind(spec: &str, pos: Position, path: &Path, a: &mut Allocation, cx: &mut Cx) {
    let mut parts = spec.splitn(3, ':');
    let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
        cx.warn(pos, path, format!("not translated: volume {spec:?} has no target"));
        return;
    };
    let mode = parts.next().unwrap_or_default();
    if source.contains("${") {
        cx.warn(
            pos,
            path,
            format!("bind mount of {source}: the path is not known until its variable is set"),
        );
    } else if source.starts_with('/') {
        cx.warn(pos, path, format!("bind mount of the host path {source}: the path is on the provider's machine, which may refuse it"));
    } else {
        cx.warn(pos, path, format!("bind mount of {source}, a path in Nomad's task directory (filled by templates or artifacts): it is not there on a provider"));
    }
    a.volumes.push(Volume {
        kind: VolumeKind::Bind,
        source: Some(source.into()),
        target: target.into(),
        read_only: mode.split(',').any(|m| m == "ro"),
        size: None,
    });
}

/// A `mount` block of the docker config.
fn mount(mut m: Obj<'_>, a: &mut Allocation, cx: &mut Cx) {
    let kind = match m.str("type").as_deref() {
        Some("bind") => VolumeKind::Bind,
        Some("tmpfs") => VolumeKind::Tmpfs,
        _ => VolumeKind::Volume,
    };
    let size = m
        .get("tmpfs_options")
        .and_then(|o| int(o.get("size")))
        .and_then(|n| u64::try_from(n).ok())
        .map(ByteSize);
    a.volumes.push(Volume {
        kind,
        source: m.str("source").filter(|_| kind != VolumeKind::Tmpfs),
        target: m.str("target").unwrap_or_default(),
        read_only: m.get("readonly").is_some_and(|r| text(r).as_deref() == Some("true")),
        size,
    });
    m.drop_key(cx, "bind_options", "bind propagation is the provider's");
    m.drop_key(cx, "volume_options", "volume options are the provider's");
    m.finish(cx);
}

/// `volume_mount` blocks: the group's volumes mounted into the task.
fn mounts(value: Option<&Value>, group: &Group<'_>, a: &mut Allocation) {
    for m in blocks(value) {
        let name = m.get("volume").and_then(text).unwrap_or_default();
        let (kind, source) =
            group.volumes.get(&name).cloned().unwrap_or((VolumeKind::Volume, Some(name.clone())));
        let source = if kind == VolumeKind::Volume { Some(name.clone()) } else { source };
        a.volumes.push(Volume {
            kind,
            source,
            target: m.get("destination").and_then(text).unwrap_or_default(),
            read_only: m.get("read_only").is_some_and(|r| r.kind == Kind::Bool(true)),
            size: None,
        });
    }
}

/// `lifecycle`: whether the task is a prestart task.
fn lifecycle_hook(lifecycle: &Value, path: &Path, a: &mut Allocation, cx: &mut Cx) -> bool {
    let sidecar = lifecycle.get("sidecar").is_some_and(|s| s.kind == Kind::Bool(true));
    let prestart = lifecycle.get("hook").and_then(Value::as_str) == Some("prestart");
    if prestart && !sidecar {
        a.kind = AllocationType::Task;
        cx.warn(
            lifecycle.pos,
            path,
            "prestart task: the other tasks start after it starts, not after it finishes",
        );
    } else if !prestart {
        cx.warn(lifecycle.pos, path, "not translated: poststart/poststop hooks");
    }
    prestart
}

/// `resources`: cores or MHz, memory, GPUs. Returns whether cpu and memory were given.
fn resources(mut r: Obj<'_>, a: &mut Allocation, cx: &mut Cx) -> (bool, bool) {
    let mut given = (false, false);
    if let Some(cores) = int(r.get("cores")).filter(|c| *c > 0) {
        a.resources.cpu.cores = cores as f64;
        given.0 = true;
    } else if let Some(mhz) = int(r.get("cpu")).filter(|c| *c > 0) {
        a.resources.cpu.cores = (mhz as f64).round() / 1000.0;
        given.0 = true;
        cx.warn(
            r.pos("cpu"),
            &r.path.key("cpu"),
            format!("cpu = {mhz} (MHz) approximated as {} core(s)", a.resources.cpu.cores),
        );
    }
    if let Some(mb) = int(r.get("memory")).filter(|m| *m > 0) {
        a.resources.ram = ByteSize::mib(mb as u64);
        given.1 = true;
    }
    r.drop_key(cx, "memory_max", "memory oversubscription is not part of an ensemble");
    r.drop_key(cx, "network", "give ports in the group's `network` block");
    r.drop_key(cx, "numa", "NUMA placement is the provider's");
    r.drop_key(cx, "secrets", "secrets are not part of an ensemble");
    for d in r.get("device").and_then(Value::entries).unwrap_or_default() {
        device(&d.key, Obj::new(&d.value, r.path.key("device").key(&d.key)), a, cx);
    }
    r.skip("device");
    r.finish(cx);
    given
}

/// `device "[vendor/]type[/model]"`: GPUs become GPU requests, others warnings.
fn device(name: &str, mut d: Obj<'_>, a: &mut Allocation, cx: &mut Cx) {
    let parts: Vec<&str> = name.split('/').collect();
    let (vendor, kind, model) = match parts.as_slice() {
        [kind] => (None, *kind, None),
        [vendor, kind] => (Some(*vendor), *kind, None),
        [vendor, kind, model, ..] => (Some(*vendor), *kind, Some(*model)),
        [] => (None, "", None),
    };
    let count = d.get("count").map_or(Some(1), |c| int(Some(c)));
    if kind != "gpu" {
        cx.warn(
            d.value.pos,
            &d.path,
            format!("not translated: device {name:?} (only GPUs can be requested)"),
        );
        d.skip("count");
    } else {
        match count.and_then(|c| u32::try_from(c).ok()) {
            Some(count @ 1..=64) => a.resources.gpus.push(Gpu {
                count,
                vendor: match vendor {
                    Some("nvidia") => Some(GpuVendor::Nvidia),
                    Some("amd") => Some(GpuVendor::Amd),
                    Some("intel") => Some(GpuVendor::Intel),
                    _ => None,
                },
                model: model.map(str::to_string),
                vram: None,
            }),
            _ => cx.refuse(
                d.value.pos,
                &d.path,
                format!("{count:?} GPUs: an allocation asks for 1 to 64 of a kind"),
            ),
        }
    }
    d.drop_key(
        cx,
        "constraint",
        "device constraints are not expressible; use the GPU model or vram",
    );
    d.drop_key(cx, "affinity", "an ensemble has only hard constraints");
    d.finish(cx);
}
