//! Nomad job (HCL, HCL-JSON or the API's JSON) → ensemble. A task group becomes a node
//! (its tasks share a network, like a pod); `count` adds nodes; docker tasks become
//! allocations. Group ports become port maps; constraints become attributes.

use std::collections::BTreeMap;

use super::{Cx, Obj, dns_name, docker, ensemble, strings, text};
use crate::error::Error;
use crate::model::{
    Allocation, AllocationType, Ensemble, Escalation, Gpu, GpuVendor, HealthCheck, HealthCheckKind,
    Node, Port, PortMap, Restart, RestartPolicy, Volume, VolumeKind,
};
use crate::tree::{Kind, Path, Value};
use crate::units::{ByteSize, Duration};

mod api;

pub(super) fn translate(source: &str, cx: &mut Cx) -> Result<Ensemble, Error> {
    let doc = if source.trim_start().starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(source).map_err(|e| {
            Error::Syntax(Box::new(
                crate::Diagnostic::error(
                    crate::Position::new(e.line(), e.column()),
                    "",
                    "the file is not valid JSON",
                )
                .found(e.to_string()),
            ))
        })?;
        let value = Value::from_hcl(
            hcl::to_value(&json).map_err(|e| Error::Untranslatable(e.to_string()))?,
        );
        if value.get("Job").is_some() { api::normalize(&value) } else { value }
    } else {
        let body: hcl::Value = hcl::from_str(source).map_err(|e| {
            Error::Syntax(Box::new(
                crate::Diagnostic::error(
                    crate::Position::new(1, 1),
                    "",
                    "the file is not valid HCL",
                )
                .found(e.to_string()),
            ))
        })?;
        Value::from_hcl(body)
    };
    let jobs =
        doc.get("job").and_then(Value::entries).filter(|j| !j.is_empty()).ok_or_else(|| {
            Error::Untranslatable("a Nomad job file needs a `job \"name\" { ... }` block".into())
        })?;
    if jobs.len() > 1 {
        cx.warn(
            Default::default(),
            &Path::default().key("job"),
            "only the first job of the file is translated",
        );
    }
    let job_name = jobs[0].key.clone();
    let mut job = Obj::new(&jobs[0].value, Path::default().key("job").key(&job_name));
    let kind = job.str("type").unwrap_or_else(|| "service".into());
    let batch = kind == "batch" || kind == "sysbatch";
    if kind.starts_with("sys") {
        cx.warn(
            Default::default(),
            &job.path.key("type"),
            format!("a {kind} job runs on every client; translated as one node per group"),
        );
    }
    let mut result = ensemble(BTreeMap::new(), BTreeMap::new());
    result.metadata.insert("job".into(), job_name.clone());
    if let Some(meta) = job.get("meta") {
        for e in meta.entries().unwrap_or_default() {
            result.metadata.extend(text(&e.value).map(|v| (e.key.clone(), v)));
        }
    }
    let job_attrs = constraints(job.get("constraint"), &job.path.key("constraint"), cx);
    job.drop_key(
        cx,
        "datacenters",
        "an ensemble is placed by constraints, not datacenters (use node location)",
    );
    job.drop_key(cx, "region", "use node location");
    job.drop_key(cx, "namespace", "an ensemble is its own namespace");
    job.drop_key(cx, "priority", "an ensemble has no priorities");
    job.drop_key(cx, "update", "rolling updates are not part of an ensemble");
    job.drop_key(cx, "periodic", "the job runs once");
    for entry in job.get("group").and_then(Value::entries).unwrap_or_default() {
        let path = job.path.key("group").key(&entry.key);
        group(&entry.key, &entry.value, path, batch, &job_attrs, &mut result, cx);
    }
    job.finish(cx);
    if result.allocations.is_empty() {
        return Err(Error::Untranslatable(
            "no docker task in the job (other drivers cannot be represented)".into(),
        ));
    }
    Ok(result)
}

/// One or many blocks (HCL JSON writes a repeated block as a list).
fn blocks(value: Option<&Value>) -> Vec<&Value> {
    match value.map(|v| &v.kind) {
        Some(Kind::Seq(items)) => items.iter().collect(),
        Some(_) => value.into_iter().collect(),
        None => Vec::new(),
    }
}

fn duration(value: Option<&Value>) -> Option<Duration> {
    match value.map(|v| &v.kind)? {
        Kind::Str(s) => s.parse().ok(),
        Kind::Int(n) => u64::try_from(*n).ok().map(Duration),
        _ => None,
    }
}

fn int(value: Option<&Value>) -> Option<i64> {
    match value.map(|v| &v.kind)? {
        Kind::Int(n) => Some(*n),
        Kind::Str(s) => s.parse().ok(),
        _ => None,
    }
}

/// Constraints → (cpu architecture, node attributes).
fn constraints(
    value: Option<&Value>,
    path: &Path,
    cx: &mut Cx,
) -> (Option<String>, BTreeMap<String, String>) {
    let mut arch = None;
    let mut attributes = BTreeMap::new();
    for c in blocks(value) {
        let attribute = c.get("attribute").and_then(text).unwrap_or_default();
        let operator = c.get("operator").and_then(text).unwrap_or_else(|| "=".into());
        let value = c.get("value").and_then(text).unwrap_or_default();
        let key = attribute.trim_start_matches("${").trim_end_matches('}').to_string();
        match operator.as_str() {
            "=" | "==" if key == "attr.cpu.arch" => arch = Some(value),
            "=" | "==" if !key.is_empty() => {
                attributes.insert(key, value);
            }
            _ => cx.warn(c.pos, path, format!("not translated: constraint `{attribute} {operator} {value}` (only equality is expressible)")),
        }
    }
    (arch, attributes)
}

fn group(
    name: &str,
    value: &Value,
    path: Path,
    batch: bool,
    job_attrs: &(Option<String>, BTreeMap<String, String>),
    out: &mut Ensemble,
    cx: &mut Cx,
) {
    let mut g = Obj::new(value, path.clone());
    let node_name = dns_name(name, cx, value.pos, &path);
    let count = int(g.get("count")).unwrap_or(1).clamp(1, 100) as usize;
    let (mut arch, mut attributes) = job_attrs.clone();
    let (group_arch, group_attrs) = constraints(g.get("constraint"), &path.key("constraint"), cx);
    arch = group_arch.or(arch);
    attributes.extend(group_attrs);
    // Port labels → (static public port, port inside the task).
    let mut labels: BTreeMap<String, (Option<u16>, Option<u16>)> = BTreeMap::new();
    for network in blocks(g.get("network")) {
        for (label, port) in network
            .get("port")
            .and_then(Value::entries)
            .unwrap_or_default()
            .iter()
            .map(|e| (&e.key, &e.value))
        {
            let number = |key| int(port.get(key)).and_then(|n| u16::try_from(n).ok());
            labels.insert(label.clone(), (number("static"), number("to")));
        }
        if network.get("mode").and_then(Value::as_str).is_some_and(|m| m != "bridge") {
            cx.warn(
                network.pos,
                &path.key("network"),
                "network mode is not translated: allocations use the ensemble subnet",
            );
        }
    }
    let restart = blocks(g.get("restart")).first().map(|r| restart_policy(r, batch));
    if let Some(reschedule) = blocks(g.get("reschedule")).first() {
        let attempts = int(reschedule.get("attempts"));
        let unlimited = reschedule.get("unlimited").is_some_and(|u| u.kind == Kind::Bool(true));
        out.escalation = Some(if unlimited || attempts.is_some_and(|a| a > 0) {
            Escalation::Redeploy
        } else {
            Escalation::Teardown
        });
        cx.warn(reschedule.pos, &path.key("reschedule"), "reschedule translated as the ensemble's escalation; its attempts, delays and interval are not translated");
    }
    let volumes: BTreeMap<String, (VolumeKind, Option<String>)> = g
        .get("volume")
        .and_then(Value::entries)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let kind = if e.value.get("type").and_then(Value::as_str) == Some("host") {
                VolumeKind::Bind
            } else {
                VolumeKind::Volume
            };
            (e.key.clone(), (kind, e.value.get("source").and_then(text)))
        })
        .collect();
    let group_checks = services(g.get("service"), &labels);
    let mut tasks: Vec<(String, Allocation)> = Vec::new();
    let mut prestart = Vec::new();
    for entry in g.get("task").and_then(Value::entries).unwrap_or_default() {
        let tpath = path.key("task").key(&entry.key);
        let tasks_total = g.value.get("task").and_then(Value::entries).map_or(0, <[_]>::len);
        let alloc_name = if tasks_total == 1 {
            node_name.clone()
        } else {
            dns_name(&format!("{node_name}-{}", entry.key), cx, entry.key_pos, &tpath)
        };
        if let Some((a, is_prestart)) =
            task(&entry.value, tpath, batch, &labels, &volumes, &group_checks, cx)
        {
            let mut a = a;
            if a.restart.is_none() {
                a.restart = restart.clone();
            }
            if let Some(arch) = &arch {
                a.resources.cpu.architecture = Some(arch.clone());
            }
            if is_prestart {
                prestart.push(alloc_name.clone());
            }
            tasks.push((alloc_name, a));
        }
    }
    for (name, a) in &mut tasks {
        if !prestart.contains(name) {
            a.depends_on = prestart.clone();
        }
    }
    for key in
        ["network", "restart", "reschedule", "volume", "service", "task", "constraint", "count"]
    {
        g.skip(key);
    }
    g.drop_key(cx, "ephemeral_disk", "set resources.disk on the allocations");
    g.drop_key(cx, "update", "rolling updates are not part of an ensemble");
    g.drop_key(cx, "spread", "an ensemble has no spread; use node location");
    g.drop_key(cx, "affinity", "an ensemble has only hard constraints");
    g.finish(cx);
    for replica in 1..=count {
        let suffix = if count > 1 { format!("-{replica}") } else { String::new() };
        let mut node = Node { attributes: attributes.clone(), ..Node::default() };
        for (name, a) in &tasks {
            let mut a = a.clone();
            a.depends_on = a.depends_on.iter().map(|d| format!("{d}{suffix}")).collect();
            let full = format!("{name}{suffix}");
            for (label, (public, to)) in &labels {
                let private = to.or(*public);
                let used = a
                    .ports
                    .iter()
                    .any(|p| Some(p.port) == private && p.name.as_deref() == Some(label));
                if let (true, Some(private)) = (used, private) {
                    node.ports.push(PortMap {
                        public: if replica == 1 { *public } else { None },
                        private,
                        allocation: full.clone(),
                        protocol: Default::default(),
                    });
                }
            }
            node.allocations.push(full.clone());
            out.allocations.insert(full, a);
        }
        out.nodes.insert(format!("{node_name}{suffix}"), node);
    }
}

fn restart_policy(r: &Value, batch: bool) -> RestartPolicy {
    let give_up = r.get("mode").and_then(Value::as_str) == Some("fail");
    RestartPolicy {
        policy: if batch { Restart::OnFailure } else { Restart::Always },
        // In `delay` mode Nomad keeps restarting after `attempts`: no limit.
        max_attempts: int(r.get("attempts"))
            .and_then(|a| u32::try_from(a).ok())
            .filter(|_| give_up),
        delay: duration(r.get("delay")),
        window: duration(r.get("interval")),
    }
}

/// Health checks of `service` blocks, by port label (or `""` for checks without a port).
fn services(
    value: Option<&Value>,
    labels: &BTreeMap<String, (Option<u16>, Option<u16>)>,
) -> BTreeMap<String, HealthCheck> {
    let mut out = BTreeMap::new();
    for service in blocks(value) {
        let label = service.get("port").and_then(text).unwrap_or_default();
        let Some(check) = blocks(service.get("check")).into_iter().next() else { continue };
        let port_label = check.get("port").and_then(text).unwrap_or_else(|| label.clone());
        let port = labels.get(&port_label).and_then(|(public, to)| to.or(*public));
        let kind = match check.get("type").and_then(Value::as_str) {
            Some("http") => HealthCheckKind::Http,
            Some("tcp") => HealthCheckKind::Tcp,
            _ => HealthCheckKind::Command,
        };
        let mut command: Vec<String> = check.get("command").and_then(text).into_iter().collect();
        command.extend(check.get("args").map(strings).unwrap_or_default());
        out.insert(
            label,
            HealthCheck {
                kind,
                command,
                port: if kind == HealthCheckKind::Command { None } else { port },
                path: check.get("path").and_then(text),
                interval: duration(check.get("interval")),
                timeout: duration(check.get("timeout")),
                retries: None,
                start_period: None,
            },
        );
    }
    out
}

fn task(
    value: &Value,
    path: Path,
    batch: bool,
    labels: &BTreeMap<String, (Option<u16>, Option<u16>)>,
    volumes: &BTreeMap<String, (VolumeKind, Option<String>)>,
    group_checks: &BTreeMap<String, HealthCheck>,
    cx: &mut Cx,
) -> Option<(Allocation, bool)> {
    let mut t = Obj::new(value, path.clone());
    let driver = t.str("driver").unwrap_or_default();
    if driver != "docker" && driver != "podman" {
        cx.warn(value.pos, &path, format!("not translated: the {driver:?} driver cannot be represented (only docker and podman tasks)"));
        return None;
    }
    let mut config = t.obj("config")?;
    let image = config.str("image").unwrap_or_default();
    let mut a = docker(if batch { AllocationType::Task } else { AllocationType::Service }, image);
    a.execution.command = config.get("args").map(strings).unwrap_or_default();
    if let Some(command) = config.str("command") {
        a.execution.entrypoint = vec![command];
    }
    a.execution.entrypoint.extend(config.get("entrypoint").map(strings).unwrap_or_default());
    a.execution.working_dir = config.str("work_dir");
    for label in config.get("ports").map(strings).unwrap_or_default() {
        match labels.get(&label).and_then(|(public, to)| to.or(*public)) {
            Some(port) => a.ports.push(Port { port, protocol: Default::default(), name: Some(label.clone()) }),
            None => cx.warn(config.pos("ports"), &config.path.key("ports"), format!("not translated: port `{label}` is dynamic without `to`, so its port inside the task is unknown")),
        }
        if let Some(check) = group_checks.get(&label) {
            a.healthcheck = Some(check.clone());
        }
    }
    for spec in config.get("volumes").map(strings).unwrap_or_default() {
        if let Some((source, target)) = spec.split_once(':') {
            cx.warn(config.pos("volumes"), &config.path.key("volumes"), "bind mount of a host path: the path is on the provider's machine, which may refuse it");
            a.volumes.push(Volume {
                kind: VolumeKind::Bind,
                source: Some(source.into()),
                target: target.trim_end_matches(":ro").into(),
                read_only: target.ends_with(":ro"),
                size: None,
            });
        }
    }
    config.drop_key(cx, "auth", "registry credentials are not part of an ensemble");
    config.drop_key(cx, "network_mode", "allocations use the ensemble subnet");
    config.drop_key(cx, "privileged", "privileged containers are not allowed");
    config.finish(cx);
    for e in t.get("env").and_then(Value::entries).unwrap_or_default() {
        a.environment.extend(text(&e.value).map(|v| (e.key.clone(), v)));
    }
    if let Some(mut r) = t.obj("resources") {
        if let Some(cores) = int(r.get("cores")) {
            a.resources.cpu.cores = cores as f64;
        } else if let Some(mhz) = int(r.get("cpu")) {
            a.resources.cpu.cores = ((mhz.max(1) as f64) / 1000.0 * 1000.0).round() / 1000.0;
            cx.warn(
                r.pos("cpu"),
                &r.path.key("cpu"),
                format!("cpu = {mhz} (MHz) approximated as {} core(s)", a.resources.cpu.cores),
            );
        }
        if let Some(mb) = int(r.get("memory")) {
            a.resources.ram = ByteSize::mib(mb.max(0) as u64);
        }
        r.drop_key(cx, "memory_max", "memory oversubscription is not part of an ensemble");
        for d in r.get("device").and_then(Value::entries).unwrap_or_default() {
            let vendor = match d.key.split('/').next() {
                Some("nvidia") => Some(GpuVendor::Nvidia),
                Some("amd") => Some(GpuVendor::Amd),
                Some("intel") => Some(GpuVendor::Intel),
                _ => None,
            };
            let count = int(d.value.get("count")).and_then(|c| u32::try_from(c).ok()).unwrap_or(1);
            a.resources.gpus.push(Gpu { count, vendor, model: None, vram: None });
        }
        r.finish(cx);
    } else {
        cx.warn(value.pos, &path, "no resources given; assumed 1 core and 512MiB");
    }
    if let Some(service) = services(t.get("service"), labels).into_values().next() {
        a.healthcheck = Some(service);
    }
    if let Some(r) = blocks(t.get("restart")).first() {
        a.restart = Some(restart_policy(r, batch));
    }
    for m in blocks(t.get("volume_mount")) {
        let name = m.get("volume").and_then(text).unwrap_or_default();
        let (kind, source) =
            volumes.get(&name).cloned().unwrap_or((VolumeKind::Volume, Some(name.clone())));
        let source = if kind == VolumeKind::Volume { Some(name.clone()) } else { source };
        a.volumes.push(Volume {
            kind,
            source,
            target: m.get("destination").and_then(text).unwrap_or_default(),
            read_only: m.get("read_only").is_some_and(|r| r.kind == Kind::Bool(true)),
            size: None,
        });
    }
    let mut prestart = false;
    if let Some(lifecycle) = blocks(t.get("lifecycle")).first() {
        let sidecar = lifecycle.get("sidecar").is_some_and(|s| s.kind == Kind::Bool(true));
        prestart = lifecycle.get("hook").and_then(Value::as_str) == Some("prestart");
        if prestart && !sidecar {
            a.kind = AllocationType::Task;
            cx.warn(
                lifecycle.pos,
                &path.key("lifecycle"),
                "prestart task: the other tasks start after it starts, not after it finishes",
            );
        } else if !prestart {
            cx.warn(
                lifecycle.pos,
                &path.key("lifecycle"),
                "not translated: poststart/poststop hooks",
            );
        }
    }
    a.execution.user = t.str("user");
    for key in
        ["driver", "config", "env", "resources", "service", "restart", "volume_mount", "lifecycle"]
    {
        t.skip(key);
    }
    t.drop_key(
        cx,
        "template",
        "templates are rendered by Nomad; put the rendered files in a volume or the image",
    );
    t.drop_key(cx, "artifact", "artifacts are not fetched; put them in the image");
    t.drop_key(cx, "kill_timeout", "the stop grace period is the provider's");
    t.drop_key(cx, "logs", "logs are collected by dms");
    t.drop_key(cx, "vault", "secrets are not part of an ensemble");
    t.drop_key(
        cx,
        "constraint",
        "task constraints apply to the whole group's node; move them to the group",
    );
    t.finish(cx);
    Some((a, prestart))
}
