//! docker-compose → ensemble. Compose runs every service on one host, so the ensemble
//! places every allocation on one node, `main`; published ports become its port maps.

use std::collections::BTreeMap;

use super::{Cx, Obj, dns_name, docker, ensemble, loose_bytes, shell_words, strings, text};
use crate::error::{Diagnostic, Error};
use crate::model::{
    AllocationType, Ensemble, Gpu, GpuVendor, HealthCheck, HealthCheckKind, Node, Port, PortMap,
    Protocol, Restart, RestartPolicy, Volume, VolumeKind,
};
use crate::tree::{self, Kind, Path, Value};
use crate::units::Duration;

pub(super) fn translate(source: &str, cx: &mut Cx) -> Result<Ensemble, Error> {
    let (doc, problems) = tree::parse(source).map_err(Error::Syntax)?;
    cx.warnings.extend(
        problems.into_iter().map(|d| Diagnostic { severity: crate::Severity::Warning, ..d }),
    );
    let mut top = Obj::new(&doc, Path::default());
    let services =
        top.get("services").and_then(Value::entries).filter(|s| !s.is_empty()).ok_or_else(
            || Error::Untranslatable("a compose file needs a non-empty `services` mapping".into()),
        )?;
    top.skip("version");
    top.drop_key(cx, "networks", "the ensemble has one private subnet joining every allocation");
    top.drop_key(cx, "configs", "configs are not supported; mount the files through a volume");
    top.drop_key(cx, "secrets", "secrets are not supported; use environment variables or keys");
    let project = top.str("name");
    if let Some(volumes) = top.obj("volumes") {
        for entry in volumes.value.entries().unwrap_or_default() {
            let mut volume = Obj::new(&entry.value, volumes.path.key(&entry.key));
            volume.drop_key(cx, "driver", "volumes use the provider's storage");
            volume.drop_key(cx, "driver_opts", "volumes use the provider's storage");
            volume.drop_key(cx, "external", "volumes are created per deployment");
            volume.finish(cx);
        }
    }
    // Names first, so that depends_on can be rewritten to translated (and replicated) names.
    let mut names: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for entry in services {
        let name = dns_name(
            &entry.key,
            cx,
            entry.key_pos,
            &Path::default().key("services").key(&entry.key),
        );
        let replicas =
            entry.value.get("deploy").and_then(|d| d.get("replicas")).and_then(|r| match r.kind {
                Kind::Int(n) => Some(n),
                _ => None,
            });
        let copies = match replicas {
            Some(n) if n > 1 => (1..=n.min(100)).map(|i| format!("{name}-{i}")).collect(),
            _ => vec![name],
        };
        names.insert(&entry.key, copies);
    }
    let mut allocations = BTreeMap::new();
    let mut node = Node::default();
    for entry in services {
        let path = Path::default().key("services").key(&entry.key);
        let copies = names[entry.key.as_str()].clone();
        let (allocation, maps) = service(&entry.key, &entry.value, path, &names, cx);
        for (i, name) in copies.iter().enumerate() {
            node.allocations.push(name.clone());
            for map in &maps {
                let public = if i == 0 { map.public } else { None };
                node.ports.push(PortMap { public, allocation: name.clone(), ..map.clone() });
            }
            allocations.insert(name.clone(), allocation.clone());
        }
    }
    top.finish(cx);
    let mut result = ensemble(allocations, BTreeMap::from([("main".to_string(), node)]));
    if let Some(project) = project {
        result.metadata.insert("name".into(), project);
    }
    Ok(result)
}

fn service(
    key: &str,
    value: &Value,
    path: Path,
    names: &BTreeMap<&str, Vec<String>>,
    cx: &mut Cx,
) -> (crate::model::Allocation, Vec<PortMap>) {
    let mut s = Obj::new(value, path.clone());
    let image = match s.str("image") {
        Some(image) => image,
        None => {
            let image = format!("{}:latest", names[key][0]);
            cx.warn(value.pos, &path, format!("service has no `image`; assumed `{image}` (build and push it, then set execution.image)"));
            image
        }
    };
    s.drop_key(cx, "build", "images are not built at deploy time");
    let mut a = docker(AllocationType::Service, image);
    if let Some(command) = s.get("command") {
        a.execution.command = command_words(command);
    }
    if let Some(entrypoint) = s.get("entrypoint") {
        a.execution.entrypoint = command_words(entrypoint);
    }
    a.execution.working_dir = s.str("working_dir");
    a.execution.user = s.str("user");
    a.dns_name =
        s.str("hostname").map(|h| dns_name(&h, cx, s.pos("hostname"), &path.key("hostname")));
    if let Some(env) = s.get("environment") {
        environment(env, &mut a.environment, &path.key("environment"), cx);
    }
    s.drop_key(
        cx,
        "env_file",
        "environment files are read on this machine only; inline the variables under `environment`",
    );
    let mut maps = Vec::new();
    if let Some(ports) = s.get("ports") {
        for (i, port) in ports.items().unwrap_or_default().iter().enumerate() {
            publish(port, &path.key("ports").index(i), &mut a.ports, &mut maps, cx);
        }
    }
    if let Some(expose) = s.get("expose") {
        for port in strings(expose) {
            let (number, protocol) =
                port.split_once('/').map_or((port.as_str(), "tcp"), |(n, p)| (n, p));
            if let Ok(number) = number.parse() {
                declare(&mut a.ports, number, protocol == "udp");
            }
        }
    }
    if let Some(volumes) = s.get("volumes") {
        for (i, v) in volumes.items().unwrap_or_default().iter().enumerate() {
            if let Some(volume) = mount(v, &path.key("volumes").index(i), cx) {
                a.volumes.push(volume);
            }
        }
    }
    if let Some(tmpfs) = s.get("tmpfs") {
        for target in strings(tmpfs) {
            let target = target.split(':').next().unwrap_or_default().to_string();
            a.volumes.push(Volume {
                kind: VolumeKind::Tmpfs,
                source: None,
                target,
                read_only: false,
                size: None,
            });
        }
    }
    if let Some(deps) = s.get("depends_on") {
        let listed: Vec<(String, Option<String>)> = match &deps.kind {
            Kind::Map(entries) => entries
                .iter()
                .map(|e| (e.key.clone(), e.value.get("condition").and_then(text)))
                .collect(),
            _ => strings(deps).into_iter().map(|d| (d, None)).collect(),
        };
        for (dep, condition) in listed {
            if let Some(condition) = condition.filter(|c| c != "service_started") {
                cx.warn(s.pos("depends_on"), &path.key("depends_on").key(&dep), format!("condition `{condition}` is approximated: the allocation starts after `{dep}` starts"));
            }
            match names.get(dep.as_str()) {
                Some(copies) => a.depends_on.extend(copies.iter().cloned()),
                None => a.depends_on.push(dep),
            }
        }
    }
    if let Some(check) = s.obj("healthcheck") {
        a.healthcheck = healthcheck(check, cx);
    }
    if let Some(policy) = s.str("restart") {
        a.restart = restart_policy(&policy, cx, s.pos("restart"), &path.key("restart"));
    }
    if let Some(cpus) = s.get("cpus").and_then(text).and_then(|c| c.parse::<f64>().ok()) {
        a.resources.cpu.cores = cpus;
    }
    if let Some(memory) = s.str("mem_limit") {
        set_memory(&memory, &mut a, cx, s.pos("mem_limit"), &path.key("mem_limit"));
    }
    let mut sized = s.get("cpus").is_some() || s.get("mem_limit").is_some();
    if let Some(deploy) = s.obj("deploy") {
        sized |= deploy_section(deploy, &mut a, cx);
    }
    if !sized {
        cx.warn(
            value.pos,
            &path,
            "no resources given; assumed 1 core and 512MiB (set deploy.resources to choose)",
        );
    }
    for (key, why) in [
        ("container_name", "allocations are named by the ensemble"),
        ("networks", "the ensemble has one private subnet joining every allocation"),
        ("labels", "labels are not carried to allocations"),
        ("logging", "logs are collected by dms"),
        ("privileged", "privileged containers are not allowed"),
        ("cap_add", "capabilities cannot be added"),
        ("cap_drop", "capabilities cannot be dropped"),
        ("extra_hosts", "host entries come from the ensemble DNS"),
        ("network_mode", "the network is the ensemble subnet"),
        ("stop_grace_period", "the stop grace period is the provider's"),
        ("ulimits", "ulimits are the provider's"),
        ("platform", "the architecture is chosen by resources.cpu.architecture"),
    ] {
        s.drop_key(cx, key, why);
    }
    s.finish(cx);
    (a, maps)
}

fn command_words(value: &Value) -> Vec<String> {
    match &value.kind {
        Kind::Seq(_) => strings(value),
        _ => text(value).map(|t| shell_words(&t)).unwrap_or_default(),
    }
}

fn environment(value: &Value, out: &mut BTreeMap<String, String>, path: &Path, cx: &mut Cx) {
    let pairs: Vec<(String, Option<String>, crate::Position)> = match &value.kind {
        Kind::Map(entries) => {
            entries.iter().map(|e| (e.key.clone(), text(&e.value), e.key_pos)).collect()
        }
        Kind::Seq(items) => items
            .iter()
            .filter_map(|i| text(i).map(|t| (t, i.pos)))
            .map(|(t, pos)| match t.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string()), pos),
                None => (t, None, pos),
            })
            .collect(),
        _ => Vec::new(),
    };
    for (key, value, pos) in pairs {
        match value {
            Some(value) => {
                out.insert(key, value);
            }
            None => cx.warn(pos, &path.key(&key), "not translated: the value would come from this machine's environment; give it explicitly"),
        }
    }
}

fn declare(ports: &mut Vec<Port>, port: u16, udp: bool) {
    let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
    if !ports.iter().any(|p| p.port == port && p.protocol == protocol) {
        ports.push(Port { port, protocol, name: None });
    }
}

/// One `ports` entry: short (`[ip:]public:private[/proto]`, ranges) or long syntax.
fn publish(
    value: &Value,
    path: &Path,
    ports: &mut Vec<Port>,
    maps: &mut Vec<PortMap>,
    cx: &mut Cx,
) {
    let (spec, protocol) = if let Kind::Map(_) = value.kind {
        let mut long = Obj::new(value, path.clone());
        let target = long.str("target").unwrap_or_default();
        let published = long.str("published");
        let protocol = long.str("protocol").unwrap_or_else(|| "tcp".into());
        long.drop_key(cx, "host_ip", "ports are published on the node's public address");
        long.skip("mode");
        long.skip("name");
        long.finish(cx);
        (published.map_or(target.clone(), |p| format!("{p}:{target}")), protocol)
    } else {
        let Some(t) = text(value) else { return };
        let (spec, protocol) = t
            .split_once('/')
            .map_or((t.clone(), "tcp".to_string()), |(s, p)| (s.to_string(), p.to_string()));
        (spec, protocol)
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (private, public) = match parts.as_slice() {
        [private] => (*private, None),
        [private, public] => (*private, Some(*public)),
        [private, public, _ip] => {
            cx.warn(
                value.pos,
                path,
                "the host address is dropped: ports are published on the node's public address",
            );
            (*private, Some(*public))
        }
        _ => return,
    };
    let range = |r: &str| -> Option<(u16, u16)> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let Some((lo, hi)) = range(private) else {
        cx.warn(value.pos, path, format!("not translated: cannot read port {spec:?}"));
        return;
    };
    let public = public.filter(|p| !p.is_empty()).and_then(range);
    let udp = protocol == "udp";
    if hi < lo || hi - lo > 100 {
        cx.warn(
            value.pos,
            path,
            format!("not translated: port range {spec:?} is reversed or wider than 100 ports"),
        );
        return;
    }
    for (offset, port) in (lo..=hi).enumerate() {
        declare(ports, port, udp);
        let public = public.map(|(start, _)| start.saturating_add(offset as u16));
        let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
        maps.push(PortMap { public, private: port, allocation: String::new(), protocol });
    }
}

/// One `volumes` entry: `source:target[:ro]`, `target`, or the long syntax.
fn mount(value: &Value, path: &Path, cx: &mut Cx) -> Option<Volume> {
    if let Kind::Map(_) = value.kind {
        let mut long = Obj::new(value, path.clone());
        let kind = match long.str("type").as_deref() {
            Some("bind") => VolumeKind::Bind,
            Some("tmpfs") => VolumeKind::Tmpfs,
            _ => VolumeKind::Volume,
        };
        let size = long
            .obj("tmpfs")
            .and_then(|mut t| t.get("size"))
            .and_then(text)
            .and_then(|s| loose_bytes(&s, true));
        let volume = Volume {
            kind,
            source: long.str("source"),
            target: long.str("target").unwrap_or_default(),
            read_only: long.get("read_only").is_some_and(|r| r.kind == Kind::Bool(true)),
            size,
        };
        long.drop_key(cx, "bind", "bind propagation options are the provider's");
        long.drop_key(cx, "volume", "volume options are the provider's");
        long.skip("consistency");
        long.finish(cx);
        return Some(volume);
    }
    let spec = text(value)?;
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, ""),
        [source, target] => (Some(*source), *target, ""),
        [source, target, mode, ..] => (Some(*source), *target, *mode),
        [] => return None,
    };
    let bind = source.is_some_and(|s| s.starts_with(['.', '/', '~']));
    if bind {
        cx.warn(
            value.pos,
            path,
            "bind mount of a host path: the path is on the provider's machine, which may refuse it",
        );
    }
    Some(Volume {
        kind: if bind { VolumeKind::Bind } else { VolumeKind::Volume },
        source: source
            .map(str::to_string)
            .or_else(|| Some(format!("anon-{}", target.trim_matches('/').replace('/', "-")))),
        target: target.to_string(),
        read_only: mode.split(',').any(|m| m == "ro"),
        size: None,
    })
}

fn duration(text: Option<String>) -> Option<Duration> {
    text.and_then(|t| t.parse().ok())
}

fn healthcheck(mut h: Obj<'_>, cx: &mut Cx) -> Option<HealthCheck> {
    if h.get("disable").is_some_and(|d| d.kind == Kind::Bool(true)) {
        h.finish(cx);
        return None;
    }
    let test = h.get("test").map(|t| match &t.kind {
        Kind::Seq(_) => strings(t),
        _ => vec!["CMD-SHELL".to_string()].into_iter().chain(text(t)).collect(),
    });
    let command = match test.as_deref() {
        Some([first, rest @ ..]) if first == "CMD" => rest.to_vec(),
        Some([first, line, ..]) if first == "CMD-SHELL" => {
            vec!["/bin/sh".into(), "-c".into(), line.clone()]
        }
        Some([first, ..]) if first == "NONE" => {
            h.finish(cx);
            return None;
        }
        Some(other) => other.to_vec(),
        None => Vec::new(),
    };
    let check = HealthCheck {
        kind: HealthCheckKind::Command,
        command,
        port: None,
        path: None,
        interval: duration(h.str("interval")),
        timeout: duration(h.str("timeout")),
        retries: h.str("retries").and_then(|r| r.parse().ok()),
        start_period: duration(h.str("start_period")),
    };
    h.drop_key(cx, "start_interval", "probes run at `interval` during the start period too");
    h.finish(cx);
    Some(check)
}

fn restart_policy(
    policy: &str,
    cx: &mut Cx,
    pos: crate::Position,
    path: &Path,
) -> Option<RestartPolicy> {
    let (name, attempts) =
        policy.split_once(':').map_or((policy, None), |(n, a)| (n, a.parse().ok()));
    let policy = match name {
        "no" | "none" => Restart::Never,
        "always" => Restart::Always,
        "on-failure" | "on_failure" => Restart::OnFailure,
        "unless-stopped" => {
            cx.warn(pos, path, "`unless-stopped` is translated as `always` (an ensemble stops only when shut down)");
            Restart::Always
        }
        other => {
            cx.warn(pos, path, format!("not translated: unknown restart policy {other:?}"));
            return None;
        }
    };
    Some(RestartPolicy { policy, max_attempts: attempts, delay: None, window: None })
}

fn set_memory(
    text: &str,
    a: &mut crate::model::Allocation,
    cx: &mut Cx,
    pos: crate::Position,
    path: &Path,
) {
    match loose_bytes(text, true) {
        Some(size) => a.resources.ram = size,
        None => cx.warn(pos, path, format!("not translated: cannot read memory size {text:?}")),
    }
}

/// `deploy`: resources, replicas (handled by the caller), restart policy. Returns whether
/// resources were given.
fn deploy_section(mut d: Obj<'_>, a: &mut crate::model::Allocation, cx: &mut Cx) -> bool {
    d.skip("replicas");
    if d.str("mode").as_deref() == Some("global") {
        cx.warn(
            d.pos("mode"),
            &d.path.key("mode"),
            "`global` mode is translated as one allocation; add allocations to run one per machine",
        );
    }
    let mut sized = false;
    if let Some(mut resources) = d.obj("resources") {
        let limits = resources.obj("limits");
        let reservations = resources.obj("reservations");
        for mut side in [reservations, limits].into_iter().flatten() {
            if let Some(cpus) = side.str("cpus").and_then(|c| c.parse::<f64>().ok()) {
                a.resources.cpu.cores = cpus;
                sized = true;
            }
            if let Some(memory) = side.str("memory") {
                let (pos, path) = (side.pos("memory"), side.path.key("memory"));
                set_memory(&memory, a, cx, pos, &path);
                sized = true;
            }
            if let Some(devices) = side.get("devices") {
                for device in devices.items().unwrap_or_default() {
                    let caps = device.get("capabilities").map(strings).unwrap_or_default();
                    if caps.iter().any(|c| c == "gpu") {
                        let count = device.get("count").and_then(|c| match c.kind {
                            Kind::Int(n) => u32::try_from(n).ok(),
                            _ => None,
                        });
                        let vendor =
                            device.get("driver").and_then(text).and_then(|d| match d.as_str() {
                                "nvidia" => Some(GpuVendor::Nvidia),
                                "amd" => Some(GpuVendor::Amd),
                                _ => None,
                            });
                        a.resources.gpus = vec![Gpu {
                            count: count.unwrap_or(1),
                            vendor,
                            model: None,
                            vram: None,
                        }];
                    } else {
                        cx.warn(
                            device.pos,
                            &side.path.key("devices"),
                            "not translated: only GPU devices can be requested",
                        );
                    }
                }
            }
            side.drop_key(cx, "pids", "process limits are the provider's");
            side.finish(cx);
        }
        resources.finish(cx);
    }
    if let Some(mut policy) = d.obj("restart_policy") {
        let condition = match policy.str("condition").as_deref() {
            Some("none") => Restart::Never,
            Some("on-failure") => Restart::OnFailure,
            _ => Restart::Always,
        };
        a.restart = Some(RestartPolicy {
            policy: condition,
            max_attempts: policy.str("max_attempts").and_then(|m| m.parse().ok()),
            delay: duration(policy.str("delay")),
            window: duration(policy.str("window")),
        });
        policy.finish(cx);
    }
    d.drop_key(cx, "placement", "placement constraints of swarm nodes have no ensemble equivalent; use node location or attributes");
    d.drop_key(cx, "update_config", "rolling updates are not part of an ensemble");
    d.drop_key(cx, "labels", "labels are not carried to allocations");
    d.finish(cx);
    sized
}
