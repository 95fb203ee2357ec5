//! One Nomad task group → a node per `count`, its docker tasks allocations on it.

use std::collections::BTreeMap;

use super::service::{self, Check};
use super::task::{self, Task};
use super::{Attrs, PortMaps, blocks, constraints, escalation, int, replicate, restart_policy};
use crate::Position;
use crate::model::{Allocation, Ensemble, Port, RestartPolicy, VolumeKind};
use crate::translate::{Cx, Obj, dns_name, text};
use crate::tree::{Path, Value};

/// First port Nomad hands out dynamically; ports the translator picks start here.
const DYNAMIC_PORTS: u16 = 20000;

/// What the groups of a job share.
pub(super) struct Job<'a> {
    pub(super) name: &'a str,
    pub(super) batch: bool,
    pub(super) attrs: &'a Attrs,
}

/// A port label of the group's network.
#[derive(Debug, Clone)]
pub(super) struct Label {
    /// The static port on the node, if any.
    pub(super) public: Option<u16>,
    /// The port inside the task.
    pub(super) inside: u16,
    /// Nomad picks it at run time; the translator picked `inside`.
    pub(super) dynamic: bool,
}

/// What the tasks of one group share.
pub(super) struct Group<'a> {
    pub(super) job: &'a Job<'a>,
    pub(super) name: &'a str,
    pub(super) labels: BTreeMap<String, Label>,
    pub(super) volumes: BTreeMap<String, (VolumeKind, Option<String>)>,
}

pub(super) fn translate(
    name: &str,
    value: &Value,
    path: Path,
    job: &Job<'_>,
    out: &mut Ensemble,
    drivers: &mut Vec<String>,
    cx: &mut Cx,
) {
    let mut g = Obj::new(value, path.clone());
    let node_name = dns_name(name, cx, value.pos, &path);
    let count = match g.get("count") {
        Some(c) => crate::translate::replicas(c, &path.key("count"), cx),
        None => crate::translate::Replicas::one(),
    };
    let (mut arch, mut attributes) = job.attrs.clone();
    let (group_arch, group_attrs) = constraints(g.get("constraint"), &path.key("constraint"), cx);
    arch = group_arch.or(arch);
    attributes.extend(group_attrs);
    let labels = network(g.get("network"), &path.key("network"), cx);
    let restart = blocks(g.get("restart")).first().map(|r| restart_policy(r, job.batch));
    if let Some(reschedule) = blocks(g.get("reschedule")).first() {
        escalation(reschedule, &path.key("reschedule"), out, cx);
    }
    let volumes = volumes(g.get("volume"), &path.key("volume"), cx);
    let group = Group { job, name, labels, volumes };
    let entries = g.get("task").and_then(Value::entries).unwrap_or_default();
    let mut tasks: Vec<(String, Task)> = Vec::new();
    for entry in entries {
        let tpath = path.key("task").key(&entry.key);
        let alloc_name = if entries.len() == 1 {
            node_name.clone()
        } else {
            dns_name(&format!("{node_name}-{}", entry.key), cx, entry.key_pos, &tpath)
        };
        match task::translate(&entry.key, &entry.value, tpath, &group, cx) {
            Ok(t) => tasks.push((alloc_name, t)),
            Err(driver) => drivers.push(format!("task {} (driver {driver:?})", entry.key)),
        }
    }
    unlisted_ports(&group, &mut tasks, &path.key("network"), g.pos("network"), cx);
    let checks = service::translate(g.get("service"), &path.key("service"), &group.labels, cx);
    for check in checks {
        give_check(check, &mut tasks, cx);
    }
    let shared = Shared { restart, arch };
    let built = finish_tasks(tasks, &group, &shared, cx);
    for key in
        ["network", "restart", "reschedule", "volume", "service", "task", "constraint", "count"]
    {
        g.skip(key);
    }
    drop_keys(g, cx);
    if !built.is_empty() {
        let count = cx.copies(&count, built.len());
        replicate(&node_name, count, &attributes, &built, out);
    }
}

/// What the group gives each of its tasks.
struct Shared {
    restart: Option<RestartPolicy>,
    arch: Option<String>,
}

/// The group's restart policy and architecture, prestart dependencies and runtime
/// variables, applied to each task; with the ports each publishes.
fn finish_tasks(
    tasks: Vec<(String, Task)>,
    group: &Group<'_>,
    shared: &Shared,
    cx: &mut Cx,
) -> Vec<(String, Allocation, PortMaps)> {
    let prestart: Vec<String> =
        tasks.iter().filter(|(_, t)| t.prestart).map(|(n, _)| n.clone()).collect();
    let mut built = Vec::new();
    for (alloc_name, mut t) in tasks {
        if t.allocation.restart.is_none() {
            t.allocation.restart = shared.restart.clone();
        }
        if let Some(arch) = &shared.arch {
            t.allocation.resources.cpu.architecture = Some(arch.clone());
        }
        if !t.prestart {
            t.allocation.depends_on = prestart.clone();
        }
        super::runtime::fill(&mut t, group, cx);
        let maps = t
            .labels
            .iter()
            .filter_map(|l| group.labels.get(l))
            .map(|l| (l.inside, l.public))
            .collect();
        built.push((alloc_name, t.allocation, maps));
    }
    built
}

/// The group's `volume` blocks: host volumes are binds of their source, others volumes
/// the provider creates; both with a warning saying what that means.
fn volumes(
    value: Option<&Value>,
    path: &Path,
    cx: &mut Cx,
) -> BTreeMap<String, (VolumeKind, Option<String>)> {
    let mut out = BTreeMap::new();
    for e in value.and_then(Value::entries).unwrap_or_default() {
        let source = e.value.get("source").and_then(text);
        let shown = source.as_deref().unwrap_or("");
        let at = path.key(&e.key);
        // Nomad's default type is `host`.
        let kind = match e.value.get("type").and_then(Value::as_str) {
            Some("host") | None => {
                cx.warn(e.key_pos, &at, format!("host volume `{shown}` is named in the Nomad client's configuration; translated as a bind of the path `{shown}`, which the provider must have"));
                VolumeKind::Bind
            }
            Some(kind) => {
                cx.warn(e.key_pos, &at, format!("{kind} volume `{shown}` translated as a volume the provider creates, empty at first"));
                VolumeKind::Volume
            }
        };
        out.insert(e.key.clone(), (kind, source));
    }
    out
}

/// Warns about the group keys an ensemble has no place for, then any other unread key.
fn drop_keys(mut g: Obj<'_>, cx: &mut Cx) {
    g.drop_key(cx, "ephemeral_disk", "set resources.disk on the allocations");
    g.drop_key(cx, "update", "rolling updates are not part of an ensemble");
    g.drop_key(cx, "spread", "an ensemble has no spread; use node location");
    g.drop_key(cx, "affinity", "an ensemble has only hard constraints");
    g.drop_key(cx, "scaling", "an ensemble does not scale itself");
    g.drop_key(cx, "consul", "there is no Consul; allocations reach each other by DNS name");
    g.drop_key(cx, "vault", "secrets are not part of an ensemble");
    g.drop_key(cx, "meta", "group metadata is not carried to allocations");
    g.drop_key(cx, "shutdown_delay", "the stop grace period is the provider's");
    g.drop_key(cx, "max_client_disconnect", "lost providers are judged by the orchestrator");
    g.drop_key(cx, "disconnect", "lost providers are judged by the orchestrator");
    g.drop_key(cx, "stop_after_client_disconnect", "lost providers are judged by the orchestrator");
    g.finish(cx);
}

/// The `network` blocks' port labels. A port without `static` or `to` is dynamic: Nomad
/// picks it at run time; the translator picks one from 20000 up, with a warning.
fn network(value: Option<&Value>, path: &Path, cx: &mut Cx) -> BTreeMap<String, Label> {
    let mut labels = BTreeMap::new();
    let mut dynamic = Vec::new();
    for network in blocks(value) {
        let mut n = Obj::new(network, path.clone());
        if let Some(mode) = n.str("mode").filter(|m| m != "bridge" && m != "host") {
            cx.warn(
                n.pos("mode"),
                &path.key("mode"),
                format!(
                    "network mode {mode:?} is not translated: allocations use the ensemble subnet"
                ),
            );
        }
        for entry in n.get("port").and_then(Value::entries).unwrap_or_default() {
            let mut p = Obj::new(&entry.value, path.key("port").key(&entry.key));
            let number =
                |v: Option<&Value>| int(v).and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0);
            let public = number(p.get("static"));
            let to = number(p.get("to"));
            p.drop_key(cx, "host_network", "ports are published on the node's public address");
            p.finish(cx);
            match to.or(public) {
                Some(inside) => {
                    labels.insert(entry.key.clone(), Label { public, inside, dynamic: false });
                }
                None => dynamic.push((entry.key.clone(), entry.key_pos, public)),
            }
        }
        n.skip("port");
        n.drop_key(cx, "dns", "DNS is the ensemble's");
        n.drop_key(cx, "hostname", "host names are the ensemble's DNS names");
        n.drop_key(cx, "mbits", "bandwidth is asked for by edges between nodes");
        n.finish(cx);
    }
    let mut next = DYNAMIC_PORTS;
    for (label, pos, public) in dynamic {
        while labels.values().any(|l: &Label| l.inside == next) {
            next += 1;
        }
        cx.warn(pos, &path.key("port").key(&label), format!("dynamic port `{label}`: Nomad picks it at run time; {next} is used inside the task and NOMAD_PORT_{label} is set to it"));
        labels.insert(label, Label { public, inside: next, dynamic: true });
    }
    labels
}

/// Group ports no task lists in `config.ports`: the only task of the group gets them
/// (its network is the group's); with several tasks they are not translated.
fn unlisted_ports(
    group: &Group<'_>,
    tasks: &mut [(String, Task)],
    path: &Path,
    pos: Position,
    cx: &mut Cx,
) {
    for (label, l) in &group.labels {
        if tasks.iter().any(|(_, t)| t.labels.contains(label)) {
            continue;
        }
        let at = path.key("port").key(label);
        match tasks {
            [(_, t)] => {
                let name = &t.name;
                cx.warn(pos, &at, format!("port `{label}` is in no task's `ports`; given to the group's only task, {name}"));
                t.allocation.ports.push(Port {
                    port: l.inside,
                    protocol: Default::default(),
                    name: Some(label.clone()),
                });
                t.labels.push(label.clone());
            }
            _ => {
                cx.warn(pos, &at, format!("not translated: port `{label}` is in no task's `ports`"))
            }
        }
    }
}

/// Gives a group service's check to its task: the one it names, else the one owning its
/// port, else the group's only task.
fn give_check(check: Check, tasks: &mut [(String, Task)], cx: &mut Cx) {
    let by_task = check.task.as_deref().and_then(|n| tasks.iter().position(|(_, t)| t.name == n));
    let by_label = check
        .label
        .as_deref()
        .and_then(|l| tasks.iter().position(|(_, t)| t.labels.iter().any(|x| x == l)));
    let index = by_task.or(by_label).or((tasks.len() == 1).then_some(0));
    match index {
        Some(i) => task::give_check(&mut tasks[i].1, check, cx),
        None => cx.warn(
            check.pos,
            &check.path,
            "not translated: the check belongs to no docker task of the group",
        ),
    }
}
