//! Nomad job (HCL, HCL-JSON or the API's JSON) → ensemble. A task group becomes a node
//! (its tasks share a network, like a pod); `count` adds nodes; docker tasks become
//! allocations. Group ports become port maps; constraints become attributes.
//!
//! HCL2 variables (`var.x`, `local.y`) are resolved from their defaults and the caller's
//! `NOMAD_VAR_<name>` variables ([`runtime`]); what Nomad only knows at run time (task
//! directories, names, ports) is filled in where the ensemble knows it too.

use std::collections::BTreeMap;

use super::{Cx, Obj, ensemble, text};
use crate::error::{Diagnostic, Error};
use crate::model::{Allocation, Ensemble, Escalation, Node, PortMap, Restart, RestartPolicy};
use crate::tree::{Kind, Path, Value};
use crate::units::Duration;

mod api;
mod group;
mod hcl;
mod runtime;
mod service;
mod task;

pub(super) fn translate(
    source: &str,
    cx: &mut Cx,
    options: &super::Options,
) -> Result<Ensemble, Error> {
    let mut doc = if source.trim_start().starts_with('{') {
        let (value, _) = crate::tree::parse(source).map_err(|d| {
            Error::Syntax(Box::new(Diagnostic {
                message: "the file is not valid JSON".into(),
                ..*d
            }))
        })?;
        if value.get("Job").is_some() { api::normalize(&value) } else { value }
    } else {
        hcl::parse(source).map_err(Error::Syntax)?
    };
    let variables = runtime::variables(&doc, &options.environment);
    runtime::resolve(&mut doc, &Path::default(), &variables, cx);
    let mut top = Obj::new(&doc, Path::default());
    let jobs =
        top.get("job").and_then(Value::entries).filter(|j| !j.is_empty()).ok_or_else(|| {
            let keys: Vec<&str> =
                doc.entries().unwrap_or_default().iter().map(|e| e.key.as_str()).collect();
            Error::Untranslatable(format!(
                "a Nomad job file needs a `job \"name\" {{ ... }}` block; found: {}",
                if keys.is_empty() { "nothing".to_string() } else { keys.join(", ") }
            ))
        })?;
    top.skip("variable");
    top.skip("locals");
    if jobs.len() > 1 {
        cx.warn(
            jobs[1].key_pos,
            &Path::default().key("job").key(&jobs[1].key),
            "only the first job of the file is translated",
        );
    }
    let result = job(&jobs[0].key, &jobs[0].value, cx)?;
    top.finish(cx);
    Ok(result)
}

fn job(name: &str, value: &Value, cx: &mut Cx) -> Result<Ensemble, Error> {
    let mut job = Obj::new(value, Path::default().key("job").key(name));
    let kind = job.str("type").unwrap_or_else(|| "service".into());
    let batch = kind == "batch" || kind == "sysbatch";
    if kind.starts_with("sys") {
        cx.warn(
            job.pos("type"),
            &job.path.key("type"),
            format!("a {kind} job runs on every client; translated as one node per group"),
        );
    }
    let mut result = ensemble(BTreeMap::new(), BTreeMap::new());
    result.metadata.insert("job".into(), name.to_string());
    if let Some(meta) = job.get("meta") {
        for e in meta.entries().unwrap_or_default() {
            result.metadata.extend(text(&e.value).map(|v| (e.key.clone(), v)));
        }
    }
    let job_attrs = constraints(job.get("constraint"), &job.path.key("constraint"), cx);
    drop_job_keys(&mut job, cx);
    let mut drivers = Vec::new();
    let cx_job = group::Job { name, batch, attrs: &job_attrs };
    for entry in job.get("group").and_then(Value::entries).unwrap_or_default() {
        let path = job.path.key("group").key(&entry.key);
        group::translate(&entry.key, &entry.value, path, &cx_job, &mut result, &mut drivers, cx);
    }
    // A task straight under the job is a group of its own, named after the task.
    if let Some(tasks) = job.get("task").and_then(Value::entries) {
        for entry in tasks {
            let path = job.path.key("task").key(&entry.key);
            let implicit = Value {
                pos: entry.value.pos,
                kind: Kind::Map(vec![crate::tree::Entry {
                    key: "task".into(),
                    key_pos: entry.key_pos,
                    value: Value { pos: entry.key_pos, kind: Kind::Map(vec![entry.clone()]) },
                }]),
            };
            group::translate(&entry.key, &implicit, path, &cx_job, &mut result, &mut drivers, cx);
        }
    }
    job.finish(cx);
    if result.allocations.is_empty() {
        let found = if drivers.is_empty() { "no task".to_string() } else { drivers.join(", ") };
        return Err(Error::Untranslatable(format!(
            "no docker or podman task in the job (other drivers cannot be represented); found: {found}"
        )));
    }
    Ok(result)
}

/// Warns about the job keys an ensemble has no place for.
fn drop_job_keys(job: &mut Obj<'_>, cx: &mut Cx) {
    for (key, why) in [
        (
            "datacenters",
            "an ensemble is placed by constraints, not datacenters (use node location)",
        ),
        ("region", "use node location"),
        ("namespace", "an ensemble is its own namespace"),
        ("priority", "an ensemble has no priorities"),
        ("update", "rolling updates are not part of an ensemble"),
        ("periodic", "the job runs once"),
        ("parameterized", "the job runs once, without a dispatch payload"),
        ("node_pool", "an ensemble is placed by constraints; use node attributes"),
        ("affinity", "an ensemble has only hard constraints"),
        ("spread", "an ensemble has no spread; use node location"),
        ("all_at_once", "allocations are placed as the orchestrator decides"),
        ("vault", "secrets are not part of an ensemble"),
        ("consul", "there is no Consul; allocations reach each other by DNS name"),
    ] {
        job.drop_key(cx, key, why);
    }
    job.skip("id");
    job.skip("name");
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
        Kind::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Job or group constraints: `(cpu architecture, node attributes)`.
type Attrs = (Option<String>, BTreeMap<String, String>);

/// Constraints → (cpu architecture, node attributes).
fn constraints(value: Option<&Value>, path: &Path, cx: &mut Cx) -> Attrs {
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

/// `reschedule` → the ensemble's escalation.
fn escalation(reschedule: &Value, path: &Path, out: &mut Ensemble, cx: &mut Cx) {
    let attempts = int(reschedule.get("attempts"));
    let unlimited = reschedule.get("unlimited").is_some_and(|u| u.kind == Kind::Bool(true));
    out.escalation = Some(if unlimited || attempts.is_some_and(|a| a > 0) {
        Escalation::Redeploy
    } else {
        Escalation::Teardown
    });
    cx.warn(reschedule.pos, path, "reschedule translated as the ensemble's escalation; its attempts, delays and interval are not translated");
}

/// Ports a task publishes: (port inside, static public port).
type PortMaps = Vec<(u16, Option<u16>)>;

/// Copies of a group's tasks, one node per copy; ports maps go to the copies.
fn replicate(
    node_name: &str,
    count: u32,
    attributes: &BTreeMap<String, String>,
    tasks: &[(String, Allocation, PortMaps)],
    out: &mut Ensemble,
) {
    for replica in 1..=count {
        let suffix = if count > 1 { format!("-{replica}") } else { String::new() };
        let mut node = Node { attributes: attributes.clone(), ..Node::default() };
        for (name, a, maps) in tasks {
            let mut a = a.clone();
            a.depends_on = a.depends_on.iter().map(|d| format!("{d}{suffix}")).collect();
            let full = format!("{name}{suffix}");
            for (private, public) in maps {
                node.ports.push(PortMap {
                    public: if replica == 1 { *public } else { None },
                    private: *private,
                    allocation: full.clone(),
                    protocol: Default::default(),
                });
            }
            node.allocations.push(full.clone());
            out.allocations.insert(full, a);
        }
        out.nodes.insert(format!("{node_name}{suffix}"), node);
    }
}

#[cfg(test)]
mod tests;
