//! A Kubernetes PodSpec → allocations on one node.

use std::collections::BTreeMap;

use super::Refs;
use crate::model::{
    Allocation, AllocationType, Gpu, GpuVendor, Node, Port, Protocol, Restart, RestartPolicy,
    Volume, VolumeKind,
};
use crate::translate::{Cx, Obj, dns_name, docker, loose_bytes, strings, text};
use crate::tree::{Kind, Path, Value};
use crate::units::ByteSize;

/// The allocations of one pod, the node holding them, and its named ports.
pub(super) struct Translated {
    pub(super) allocations: Vec<(String, Allocation)>,
    pub(super) node: Node,
    pub(super) named_ports: BTreeMap<String, u16>,
}

/// Where a pod volume comes from.
enum Source {
    Mount(VolumeKind, Option<String>, Option<ByteSize>),
    Unsupported(String),
}

pub(super) fn translate(
    pod: &Value,
    path: Path,
    name: &str,
    refs: &Refs,
    claims: &BTreeMap<String, Option<ByteSize>>,
    cx: &mut Cx,
) -> Translated {
    let mut spec = Obj::new(pod, path.clone());
    let restart = match spec.str("restartPolicy").as_deref() {
        Some("Never") => Some(Restart::Never),
        Some("OnFailure") => Some(Restart::OnFailure),
        Some("Always") => Some(Restart::Always),
        _ => None,
    };
    let mut sources = BTreeMap::new();
    if let Some(volumes) = spec.get("volumes") {
        for v in volumes.items().unwrap_or_default() {
            let vname = v.get("name").and_then(text).unwrap_or_default();
            sources.insert(vname.clone(), volume_source(v, &vname, refs));
        }
    }
    for (claim, size) in claims {
        sources
            .insert(claim.clone(), Source::Mount(VolumeKind::Volume, Some(claim.clone()), *size));
    }
    let mut node = Node::default();
    if let Some(selector) = spec.obj("nodeSelector") {
        for entry in selector.value.entries().unwrap_or_default() {
            if let Some(v) = text(&entry.value) {
                node.attributes.insert(entry.key.clone(), v);
            }
        }
        let mut selector = selector;
        for entry in pod.get("nodeSelector").and_then(Value::entries).unwrap_or_default() {
            selector.skip(&entry.key);
        }
    }
    if let Some(affinity) = spec.obj("affinity") {
        affinity_terms(affinity, &mut node, cx);
    }
    let init: Vec<&Value> =
        spec.get("initContainers").and_then(Value::items).unwrap_or_default().iter().collect();
    let containers: Vec<&Value> =
        spec.get("containers").and_then(Value::items).unwrap_or_default().iter().collect();
    let total = init.len() + containers.len();
    let mut out = Translated { allocations: Vec::new(), node, named_ports: BTreeMap::new() };
    let mut init_names = Vec::new();
    for (list, is_init) in [(&init, true), (&containers, false)] {
        let key = if is_init { "initContainers" } else { "containers" };
        for (i, c) in list.iter().enumerate() {
            let cpath = path.key(key).index(i);
            let raw = c.get("name").and_then(text).unwrap_or_else(|| format!("c{i}"));
            let alloc_name = if total == 1 {
                name.to_string()
            } else {
                dns_name(&format!("{name}-{raw}"), cx, c.pos, &cpath.key("name"))
            };
            let mut a = container(c, cpath.clone(), &sources, refs, &mut out.named_ports, cx);
            if let Some(policy) = restart {
                a.restart =
                    Some(RestartPolicy { policy, max_attempts: None, delay: None, window: None });
            }
            if is_init {
                a.kind = AllocationType::Task;
                a.restart = Some(RestartPolicy {
                    policy: Restart::OnFailure,
                    max_attempts: None,
                    delay: None,
                    window: None,
                });
                cx.warn(c.pos, &cpath, "init container translated as a task the other containers depend on (they wait for it to start, not to finish)");
                init_names.push(alloc_name.clone());
            } else {
                a.depends_on = init_names.clone();
            }
            out.node.allocations.push(alloc_name.clone());
            out.allocations.push((alloc_name, a));
        }
    }
    spec.skip("volumes");
    spec.skip("restartPolicy");
    spec.skip("initContainers");
    spec.skip("containers");
    if let Some(host) = spec.str("hostname")
        && let Some((_, first)) = out.allocations.first_mut()
    {
        first.dns_name = Some(dns_name(&host, cx, spec.pos("hostname"), &path.key("hostname")));
    }
    for (key, why) in [
        ("tolerations", "an ensemble has no taints"),
        ("serviceAccountName", "there is no Kubernetes API to authenticate to"),
        ("securityContext", "security settings are the provider's"),
        ("terminationGracePeriodSeconds", "the stop grace period is the provider's"),
        ("imagePullSecrets", "registry credentials are not part of an ensemble"),
        ("hostNetwork", "allocations use the ensemble subnet"),
        ("dnsPolicy", "DNS is the ensemble's"),
        ("priorityClassName", "an ensemble has no priorities"),
    ] {
        spec.drop_key(cx, key, why);
    }
    spec.finish(cx);
    out
}

fn volume_source(v: &Value, name: &str, refs: &Refs) -> Source {
    if let Some(empty) = v.get("emptyDir") {
        let size = empty.get("sizeLimit").and_then(text).and_then(|s| loose_bytes(&s, false));
        let memory = empty.get("medium").and_then(Value::as_str) == Some("Memory");
        return Source::Mount(
            if memory { VolumeKind::Tmpfs } else { VolumeKind::Volume },
            (!memory).then(|| name.to_string()),
            size,
        );
    }
    if let Some(host) = v.get("hostPath") {
        return Source::Mount(VolumeKind::Bind, host.get("path").and_then(text), None);
    }
    if let Some(claim) =
        v.get("persistentVolumeClaim").and_then(|c| c.get("claimName")).and_then(text)
    {
        let size = refs.claims.get(&claim).copied();
        return Source::Mount(VolumeKind::Volume, Some(claim), size);
    }
    let kind = v
        .entries()
        .unwrap_or_default()
        .iter()
        .find(|e| e.key != "name")
        .map_or("unknown", |e| e.key.as_str());
    Source::Unsupported(kind.to_string())
}

fn affinity_terms(mut affinity: Obj<'_>, node: &mut crate::model::Node, cx: &mut Cx) {
    let required = affinity
        .value
        .get("nodeAffinity")
        .and_then(|n| n.get("requiredDuringSchedulingIgnoredDuringExecution"))
        .and_then(|r| r.get("nodeSelectorTerms"))
        .and_then(Value::items)
        .unwrap_or_default();
    let path = affinity.path.key("nodeAffinity");
    if required.len() > 1 {
        cx.warn(affinity.pos("nodeAffinity"), &path, "only the first node selector term is translated (attributes cannot express alternatives)");
    }
    for expression in required
        .first()
        .and_then(|t| t.get("matchExpressions"))
        .and_then(Value::items)
        .unwrap_or_default()
    {
        let key = expression.get("key").and_then(text).unwrap_or_default();
        let op = expression.get("operator").and_then(text).unwrap_or_default();
        let values = expression.get("values").map(strings).unwrap_or_default();
        match (op.as_str(), values.as_slice()) {
            ("In", [one]) => {
                node.attributes.insert(key, one.clone());
            }
            _ => cx.warn(expression.pos, &path, format!("not translated: node affinity `{key} {op} {values:?}` (only `In` with one value is expressible)")),
        }
    }
    if let Some(node_affinity) = affinity.get("nodeAffinity")
        && node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution").is_some()
    {
        cx.warn(
            node_affinity.pos,
            &path,
            "not translated: preferred node affinity (an ensemble has only hard constraints)",
        );
    }
    affinity.drop_key(
        cx,
        "podAffinity",
        "pods of a workload share one node already; other placement is per node",
    );
    affinity.drop_key(cx, "podAntiAffinity", "each replica is already a separate node");
    affinity.finish(cx);
}

fn container(
    c: &Value,
    path: Path,
    sources: &BTreeMap<String, Source>,
    refs: &Refs,
    named: &mut BTreeMap<String, u16>,
    cx: &mut Cx,
) -> Allocation {
    let mut o = Obj::new(c, path.clone());
    o.skip("name");
    let image = o.str("image").unwrap_or_default();
    let mut a = docker(AllocationType::Service, image);
    a.execution.entrypoint = o.get("command").map(strings).unwrap_or_default();
    a.execution.command = o.get("args").map(strings).unwrap_or_default();
    a.execution.working_dir = o.str("workingDir");
    for (i, env) in o.get("env").and_then(Value::items).unwrap_or_default().iter().enumerate() {
        let key = env.get("name").and_then(text).unwrap_or_default();
        if let Some(value) = env.get("value").and_then(text) {
            a.environment.insert(key, value);
        } else if let Some(reference) = env.get("valueFrom").and_then(|v| v.get("configMapKeyRef"))
        {
            let map = reference.get("name").and_then(text).unwrap_or_default();
            let item = reference.get("key").and_then(text).unwrap_or_default();
            match refs.config_maps.get(&map).and_then(|m| m.get(&item)).cloned() {
                Some(value) => {
                    a.environment.insert(key, value);
                }
                None => cx.warn(
                    env.pos,
                    &path.key("env").index(i),
                    format!("not translated: ConfigMap {map} key {item} is not in this file"),
                ),
            }
        } else {
            cx.warn(env.pos, &path.key("env").index(i), format!("not translated: `{key}` takes its value from the cluster (fieldRef, secretKeyRef, resourceFieldRef)"));
        }
    }
    o.skip("env");
    o.drop_key(
        cx,
        "envFrom",
        "environment sources are not part of an ensemble; list the variables under `env`",
    );
    for p in o.get("ports").and_then(Value::items).unwrap_or_default() {
        let Some(port) = p
            .get("containerPort")
            .and_then(|v| if let Kind::Int(n) = v.kind { u16::try_from(n).ok() } else { None })
        else {
            continue;
        };
        let protocol = if p.get("protocol").and_then(Value::as_str) == Some("UDP") {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let pname = p.get("name").and_then(text);
        if let Some(n) = &pname {
            named.insert(n.clone(), port);
        }
        if p.get("hostPort").is_some() {
            cx.warn(
                p.pos,
                &path.key("ports"),
                "not translated: hostPort (publish ports with a NodePort Service)",
            );
        }
        a.ports.push(Port { port, protocol, name: pname });
    }
    let given = match o.obj("resources") {
        Some(resources) => container_resources(resources, &mut a, cx),
        None => (false, false),
    };
    cx.assumed(c.pos, &path, &a, given, " (set resources.limits to choose)");
    let liveness = o.get("livenessProbe");
    let readiness = o.get("readinessProbe");
    if let Some((key, probe)) =
        liveness.map(|l| ("livenessProbe", l)).or(readiness.map(|r| ("readinessProbe", r)))
    {
        a.healthcheck = super::probe::check(Obj::new(probe, path.key(key)), named, cx);
    }
    if liveness.is_some() && readiness.is_some() {
        cx.warn(
            o.pos("readinessProbe"),
            &path.key("readinessProbe"),
            "not translated: an allocation has one health check; the liveness probe is used",
        );
    }
    o.drop_key(cx, "startupProbe", "use the health check's start_period");
    for (i, mount) in
        o.get("volumeMounts").and_then(Value::items).unwrap_or_default().iter().enumerate()
    {
        let vname = mount.get("name").and_then(text).unwrap_or_default();
        let target = mount.get("mountPath").and_then(text).unwrap_or_default();
        let read_only = mount.get("readOnly").is_some_and(|r| r.kind == Kind::Bool(true));
        match sources.get(&vname) {
            Some(Source::Mount(kind, source, size)) => a.volumes.push(Volume {
                kind: *kind,
                source: source.clone(),
                target,
                read_only,
                size: *size,
            }),
            Some(Source::Unsupported(kind)) => cx.warn(
                mount.pos,
                &path.key("volumeMounts").index(i),
                format!("not translated: {kind} volume `{vname}` has no ensemble equivalent"),
            ),
            None => cx.warn(
                mount.pos,
                &path.key("volumeMounts").index(i),
                format!("not translated: volume `{vname}` is not defined in the pod"),
            ),
        }
    }
    o.skip("volumeMounts");
    o.skip("imagePullPolicy");
    o.drop_key(cx, "securityContext", "security settings are the provider's");
    o.drop_key(cx, "lifecycle", "lifecycle hooks have no ensemble equivalent");
    o.finish(cx);
    a
}

/// Extended resources that are GPUs, and their vendors.
const GPUS: [(&str, GpuVendor); 3] = [
    ("nvidia.com/gpu", GpuVendor::Nvidia),
    ("amd.com/gpu", GpuVendor::Amd),
    ("gpu.intel.com/i915", GpuVendor::Intel),
];

/// `resources`: the limit of each resource, else its request. Returns whether cpu and
/// memory were given; every other resource is a GPU or a warning.
fn container_resources(mut r: Obj<'_>, a: &mut Allocation, cx: &mut Cx) -> (bool, bool) {
    let requests = r.obj("requests");
    let limits = r.obj("limits");
    let (requests, limits) = (requests.as_ref().map(|o| o.value), limits.as_ref().map(|o| o.value));
    let path = r.path.clone();
    // Each resource named on either side, once, with the value that counts.
    let mut names: Vec<&str> = Vec::new();
    for side in [limits, requests].into_iter().flatten() {
        for e in side.entries().unwrap_or_default() {
            if !names.contains(&e.key.as_str()) {
                names.push(&e.key);
            }
        }
    }
    let mut given = (false, false);
    for name in names {
        let limit = limits.and_then(|l| l.get(name));
        let request = requests.and_then(|q| q.get(name));
        let (side, value) = match (limit, request) {
            (Some(l), _) => ("limits", l),
            (None, Some(q)) => ("requests", q),
            (None, None) => continue,
        };
        let (pos, at) = (value.pos, path.key(side).key(name));
        let written = text(value).unwrap_or_default();
        if let (Some(l), Some(q)) = (limit, request)
            && text(l) != text(q)
        {
            let request = text(q).unwrap_or_default();
            cx.warn(
                q.pos,
                &path.key("requests").key(name),
                format!("request {request} dropped: the allocation asks for its limit, {written}"),
            );
        }
        let (cpu, ram) = set_resource(name, &written, pos, &at, a, cx);
        given = (given.0 || cpu, given.1 || ram);
    }
    r.skip("requests");
    r.skip("limits");
    r.drop_key(cx, "claims", "dynamic resource claims have no ensemble equivalent");
    r.finish(cx);
    given
}

/// One resource's value (the limit, else the request): sets it, or warns. Returns whether
/// it gave the cpu and the memory.
fn set_resource(
    name: &str,
    written: &str,
    pos: crate::Position,
    at: &Path,
    a: &mut Allocation,
    cx: &mut Cx,
) -> (bool, bool) {
    match name {
        "cpu" => match cores(written) {
            Some(cores) if cores > 0.0 => {
                a.resources.cpu.cores = cores;
                return (true, false);
            }
            _ => cx.warn(pos, at, format!("not translated: cpu quantity {written:?}")),
        },
        "memory" => match loose_bytes(written, false) {
            Some(size) => {
                a.resources.ram = size;
                return (false, true);
            }
            None => cx.warn(pos, at, format!("not translated: memory quantity {written:?}")),
        },
        "ephemeral-storage" => match loose_bytes(written, false) {
            Some(size) => a.resources.disk = Some(size),
            None => cx.warn(pos, at, format!("not translated: storage quantity {written:?}")),
        },
        _ => match GPUS.iter().find(|(key, _)| *key == name) {
            Some((_, vendor)) => match written.parse::<u32>() {
                Ok(count) if (1..=64).contains(&count) => a.resources.gpus.push(Gpu {
                    count,
                    vendor: Some(*vendor),
                    model: None,
                    vram: None,
                }),
                Ok(0) => {}
                _ => cx.refuse(pos, at, format!("{written} GPUs: an allocation asks for 1 to 64 of a kind")),
            },
            None => cx.warn(pos, at, format!("not translated: resource `{name}` ({written}); an ensemble asks only for cpu, memory, disk and GPUs")),
        },
    }
    (false, false)
}

/// A Kubernetes cpu quantity (`500m`, `2`, `0.5`) in cores.
fn cores(text: &str) -> Option<f64> {
    match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok().map(|m| m / 1000.0),
        None => text.parse().ok(),
    }
}
