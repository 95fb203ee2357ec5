//! docker-compose → ensemble. Compose runs every service on one host, so the ensemble
//! places every allocation on one node, `main`; published ports become its port maps.
//!
//! Variables are interpolated first ([`interpolate`]), as `docker compose config` does;
//! `deploy.replicas` copies become allocations `<name>-1` … `<name>-n` on the same node.

use std::collections::BTreeMap;

use super::{Cx, Obj, dns_name, docker, ensemble, strings, text};
use crate::error::{Diagnostic, Error};
use crate::model::{AllocationType, Ensemble, Node, PortMap, Volume, VolumeKind};
use crate::tree::{self, Kind, Path, Value};

mod deploy;
pub(super) mod interpolate;
mod parts;

pub(super) fn translate(source: &str, cx: &mut Cx) -> Result<Ensemble, Error> {
    let (mut doc, problems) = tree::parse(source).map_err(Error::Syntax)?;
    cx.warnings.extend(
        problems.into_iter().map(|d| Diagnostic { severity: crate::Severity::Warning, ..d }),
    );
    interpolate::document(&mut doc, &Path::default(), cx);
    let mut top = Obj::new(&doc, Path::default());
    let services =
        top.get("services").and_then(Value::entries).filter(|s| !s.is_empty()).ok_or_else(
            || {
                let keys: Vec<&str> =
                    doc.entries().unwrap_or_default().iter().map(|e| e.key.as_str()).collect();
                let found = if keys.is_empty() {
                    "no mapping".to_string()
                } else {
                    format!("top-level keys {}", keys.join(", "))
                };
                Error::Untranslatable(format!(
                    "a compose file needs a non-empty `services` mapping; found {found}"
                ))
            },
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
            volume.drop_key(cx, "name", "volumes are named by the ensemble");
            volume.drop_key(cx, "labels", "labels are not carried to volumes");
            volume.finish(cx);
        }
    }
    // Names first, so that depends_on can be rewritten to translated (and replicated) names.
    let names = names(services, cx);
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

/// The allocation names of each service: its DNS name, or `<name>-1` … `<name>-n` for
/// `deploy.replicas: n`.
fn names<'s>(services: &'s [tree::Entry], cx: &mut Cx) -> BTreeMap<&'s str, Vec<String>> {
    let mut names = BTreeMap::new();
    for entry in services {
        let path = Path::default().key("services").key(&entry.key);
        let name = dns_name(&entry.key, cx, entry.key_pos, &path);
        let replicas = match entry.value.get("deploy").and_then(|d| d.get("replicas")) {
            Some(r) => super::replicas(r, &path.key("deploy").key("replicas"), cx),
            None => super::Replicas::one(),
        };
        let copies = match cx.copies(&replicas, 1) {
            1 => vec![name],
            n => (1..=n).map(|i| format!("{name}-{i}")).collect(),
        };
        names.insert(entry.key.as_str(), copies);
    }
    names
}

fn service(
    key: &str,
    value: &Value,
    path: Path,
    names: &BTreeMap<&str, Vec<String>>,
    cx: &mut Cx,
) -> (crate::model::Allocation, Vec<PortMap>) {
    let mut s = Obj::new(value, path.clone());
    let image = match s.str("image").filter(|i| !i.is_empty()) {
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
        a.execution.command = parts::command_words(command);
    }
    if let Some(entrypoint) = s.get("entrypoint") {
        a.execution.entrypoint = parts::command_words(entrypoint);
    }
    a.execution.working_dir = s.str("working_dir");
    a.execution.user = s.str("user");
    a.dns_name =
        s.str("hostname").map(|h| dns_name(&h, cx, s.pos("hostname"), &path.key("hostname")));
    if let Some(env) = s.get("environment") {
        parts::environment(env, &mut a.environment, &path.key("environment"), cx);
    }
    s.drop_key(
        cx,
        "env_file",
        "environment files are read on this machine only; inline the variables under `environment`",
    );
    let mut maps = Vec::new();
    if let Some(ports) = s.get("ports") {
        for (i, port) in ports.items().unwrap_or_default().iter().enumerate() {
            parts::publish(port, &path.key("ports").index(i), &mut a.ports, &mut maps, cx);
        }
    }
    if let Some(expose) = s.get("expose") {
        parts::expose(expose, &path.key("expose"), &mut a.ports, cx);
    }
    if let Some(volumes) = s.get("volumes") {
        for (i, v) in volumes.items().unwrap_or_default().iter().enumerate() {
            if let Some(volume) = parts::mount(v, &path.key("volumes").index(i), cx) {
                a.volumes.push(volume);
            }
        }
    }
    if let Some(tmpfs) = s.get("tmpfs") {
        for target in strings(tmpfs) {
            let (target, options) = target.split_once(':').unwrap_or((&target, ""));
            if !options.is_empty() {
                cx.warn(
                    tmpfs.pos,
                    &path.key("tmpfs"),
                    format!("not translated: tmpfs options {options:?} of {target}"),
                );
            }
            a.volumes.push(Volume {
                kind: VolumeKind::Tmpfs,
                source: None,
                target: target.to_string(),
                read_only: false,
                size: None,
            });
        }
    }
    if let Some(deps) = s.get("depends_on") {
        depends_on(deps, &path.key("depends_on"), names, &mut a.depends_on, cx);
    }
    if let Some(check) = s.obj("healthcheck") {
        a.healthcheck = parts::healthcheck(check, cx);
    }
    if let Some(policy) = s.str("restart") {
        a.restart = parts::restart_policy(&policy, cx, s.pos("restart"), &path.key("restart"));
        // Run once and never restarted: a task, which completes when it exits with 0
        // (a service that exits has failed).
        if matches!(policy.as_str(), "no" | "none") {
            a.kind = crate::model::AllocationType::Task;
        }
    }
    let mut given = (false, false);
    if let Some(cpus) = s.get("cpus") {
        given.0 |= deploy::set_cpus(cpus, &mut a, cx, &path.key("cpus"));
    }
    if let Some(memory) = s.get("mem_limit") {
        given.1 |= deploy::set_memory(memory, &mut a, cx, &path.key("mem_limit"));
    }
    if let Some(d) = s.obj("deploy") {
        let (cpu, ram) = deploy::section(d, &mut a, cx);
        given = (given.0 || cpu, given.1 || ram);
    }
    cx.assumed(value.pos, &path, &a, given, " (set deploy.resources.limits to choose)");
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

/// `depends_on` (list or mapping): rewritten to the translated names of the services,
/// every copy of a replicated one. A service not in the file is dropped, with a warning.
fn depends_on(
    deps: &Value,
    path: &Path,
    names: &BTreeMap<&str, Vec<String>>,
    out: &mut Vec<String>,
    cx: &mut Cx,
) {
    let listed: Vec<(String, crate::Position)> = match &deps.kind {
        Kind::Map(entries) => entries
            .iter()
            .map(|e| {
                let mut long = Obj::new(&e.value, path.key(&e.key));
                if let Some(condition) = long.str("condition").filter(|c| c != "service_started") {
                    cx.warn(e.key_pos, &long.path.key("condition"), format!("condition `{condition}` is approximated: the allocation starts after `{}` starts", e.key));
                }
                if long.get("required").is_some_and(|r| text(r).as_deref() == Some("false")) {
                    cx.warn(e.key_pos, &long.path.key("required"), "an optional dependency is translated as a required one");
                }
                long.drop_key(cx, "restart", "dependants are not restarted with their dependency");
                long.finish(cx);
                (e.key.clone(), e.key_pos)
            })
            .collect(),
        Kind::Seq(items) => items.iter().filter_map(|i| Some((text(i)?, i.pos))).collect(),
        _ => text(deps).map(|t| (t, deps.pos)).into_iter().collect(),
    };
    for (dep, pos) in listed {
        match names.get(dep.as_str()) {
            Some(copies) => out.extend(copies.iter().cloned()),
            None => cx.warn(pos, &path.key(&dep), format!("dropped: `{dep}` is not a service of this file (a file meant to be merged with others is translated on its own)")),
        }
    }
}

#[cfg(test)]
mod tests;
