//! Kubernetes → ensemble. A pod becomes a node (its containers are allocations on it);
//! each replica of a workload is one more node. NodePort and LoadBalancer services become
//! port maps; ConfigMaps and PersistentVolumeClaims in the same file are resolved.

use std::collections::BTreeMap;

use super::{Cx, Obj, dns_name, ensemble, loose_bytes, text};
use crate::error::{Diagnostic, Error};
use crate::model::{
    Allocation, AllocationType, Ensemble, Node, PortMap, Protocol, Restart, RestartPolicy,
};
use crate::tree::{self, Kind, Path, Value};

mod pod;
mod probe;

/// One translated workload: its nodes (one per replica) and selector labels.
struct Workload {
    labels: BTreeMap<String, String>,
    nodes: Vec<String>,
    /// Container ports by name, for `targetPort: http`.
    named_ports: BTreeMap<String, u16>,
}

/// Objects other objects refer to: ConfigMap data and claim sizes.
#[derive(Default)]
pub(super) struct Refs {
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    claims: BTreeMap<String, crate::units::ByteSize>,
}

pub(super) fn translate(source: &str, cx: &mut Cx) -> Result<Ensemble, Error> {
    let (docs, problems) = tree::parse_documents(source).map_err(Error::Syntax)?;
    cx.warnings.extend(
        problems.into_iter().map(|d| Diagnostic { severity: crate::Severity::Warning, ..d }),
    );
    let docs: Vec<(Path, &Value)> = flatten(&docs);
    let mut refs = Refs::default();
    for (_, doc) in &docs {
        collect_refs(doc, &mut refs);
    }
    let mut allocations = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    let mut workloads = Vec::new();
    let mut services = Vec::new();
    for (root, doc) in &docs {
        let root = root.clone();
        let kind = doc.get("kind").and_then(text).unwrap_or_default();
        match kind.as_str() {
            "Pod" | "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
            | "ReplicationController" | "Job" | "CronJob" => {
                match workload(doc, &kind, root.clone(), &refs, &mut allocations, &mut nodes, cx) {
                    Some(w) => workloads.push(w),
                    None => cx.warn(doc.pos, &root, format!("not translated: the {kind} has no `metadata`, `spec` or pod template")),
                }
            }
            "Service" => services.push((*doc, root)),
            "ConfigMap" | "PersistentVolumeClaim" => {}
            "Secret" => cx.warn(doc.pos, &root, "not translated: Secret (secrets are not part of an ensemble; use environment variables or keys)"),
            "" => cx.warn(doc.pos, &root, "not translated: the document has no `kind`"),
            other => cx.warn(doc.pos, &root, format!("not translated: kind {other} has no ensemble equivalent")),
        }
    }
    for (doc, root) in services {
        service(doc, root, &workloads, &allocations, &mut nodes, cx);
    }
    if allocations.is_empty() {
        let mut kinds: Vec<String> = docs
            .iter()
            .map(|(_, d)| d.get("kind").and_then(text).unwrap_or_else(|| "(no kind)".into()))
            .collect();
        kinds.dedup();
        let found = if kinds.is_empty() { "no document".into() } else { kinds.join(", ") };
        return Err(Error::Untranslatable(format!(
            "no workload (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, \
             ReplicationController, Job, CronJob) in the file; found: {found}"
        )));
    }
    Ok(ensemble(allocations, nodes))
}

/// Documents, with `kind: List` items spliced in; each with its index.
fn flatten(docs: &[Value]) -> Vec<(Path, &Value)> {
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let root = Path::default().key(&format!("document{i}"));
        match (doc.get("kind").and_then(Value::as_str), doc.get("items").and_then(Value::items)) {
            (Some("List"), Some(items)) => out.extend(
                items.iter().enumerate().map(|(j, item)| (root.key("items").index(j), item)),
            ),
            _ if doc.kind != Kind::Null => out.push((root, doc)),
            _ => {}
        }
    }
    out
}

fn collect_refs(doc: &Value, refs: &mut Refs) {
    let name = doc.get("metadata").and_then(|m| m.get("name")).and_then(text).unwrap_or_default();
    match doc.get("kind").and_then(Value::as_str) {
        Some("ConfigMap") => {
            let data = doc.get("data").and_then(Value::entries).unwrap_or_default();
            refs.config_maps.insert(
                name,
                data.iter().filter_map(|e| Some((e.key.clone(), text(&e.value)?))).collect(),
            );
        }
        Some("PersistentVolumeClaim") => {
            let size = doc
                .get("spec")
                .and_then(|s| s.get("resources"))
                .and_then(|r| r.get("requests"))
                .and_then(|r| r.get("storage"));
            if let Some(size) = size.and_then(text).and_then(|s| loose_bytes(&s, false)) {
                refs.claims.insert(name, size);
            }
        }
        _ => {}
    }
}

fn workload(
    doc: &Value,
    kind: &str,
    root: Path,
    refs: &Refs,
    allocations: &mut BTreeMap<String, Allocation>,
    nodes: &mut BTreeMap<String, Node>,
    cx: &mut Cx,
) -> Option<Workload> {
    let mut top = Obj::new(doc, root.clone());
    top.skip("apiVersion");
    top.skip("kind");
    let mut meta = top.obj("metadata")?;
    let raw_name = meta.str("name").unwrap_or_else(|| kind.to_ascii_lowercase());
    let name = dns_name(&raw_name, cx, meta.pos("name"), &meta.path.key("name"));
    meta.skip("labels");
    meta.drop_key(cx, "namespace", "an ensemble is its own namespace");
    meta.drop_key(cx, "annotations", "annotations have no ensemble equivalent");
    meta.finish(cx);
    let mut spec = top.obj("spec")?;
    let mut replicas = super::Replicas::one();
    let mut task = false;
    let mut restart_limit = None;
    let mut claim_templates = BTreeMap::new();
    let (pod_value, pod_path, labels) = match kind {
        "Pod" => {
            let labels = doc
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .map(string_map)
                .unwrap_or_default();
            (spec.value, spec.path.clone(), labels)
        }
        _ => {
            let mut job_spec = if kind == "CronJob" {
                if let Some(schedule) = spec.str("schedule") {
                    cx.warn(
                        spec.pos("schedule"),
                        &spec.path.key("schedule"),
                        format!("not translated: schedule {schedule:?}; the job runs once"),
                    );
                }
                spec.drop_key(cx, "concurrencyPolicy", "the job runs once");
                spec.drop_key(cx, "successfulJobsHistoryLimit", "the job runs once");
                spec.drop_key(cx, "failedJobsHistoryLimit", "the job runs once");
                let mut template = spec.obj("jobTemplate")?;
                template.skip("metadata");
                let inner = template.obj("spec")?;
                template.finish(cx);
                inner
            } else {
                Obj::new(spec.value, spec.path.clone())
            };
            if kind == "Job" || kind == "CronJob" {
                task = true;
                restart_limit = job_spec.str("backoffLimit").and_then(|b| b.parse().ok());
                for key in ["completions", "parallelism"] {
                    if job_spec.str(key).is_some_and(|n| n != "1") {
                        cx.warn(job_spec.pos(key), &job_spec.path.key(key), format!("not translated: `{key}` above 1; the job runs once (define one allocation per run to repeat it)"));
                    }
                }
                job_spec.drop_key(
                    cx,
                    "activeDeadlineSeconds",
                    "use requirements.max_duration for the whole ensemble",
                );
                job_spec.drop_key(
                    cx,
                    "ttlSecondsAfterFinished",
                    "finished ensembles are kept until shut down",
                );
            }
            if let Some(n) = job_spec.get("replicas") {
                replicas = super::replicas(n, &job_spec.path.key("replicas"), cx);
            }
            if kind == "DaemonSet" {
                cx.warn(doc.pos, &root, "a DaemonSet runs on every machine; translated as one node (add nodes to run more copies)");
            }
            job_spec.skip("selector");
            job_spec.skip("serviceName");
            job_spec.drop_key(cx, "strategy", "rolling updates are not part of an ensemble");
            job_spec.drop_key(cx, "updateStrategy", "rolling updates are not part of an ensemble");
            job_spec.drop_key(cx, "podManagementPolicy", "allocations start in dependency order");
            job_spec.drop_key(cx, "revisionHistoryLimit", "an ensemble keeps no revisions");
            job_spec.drop_key(cx, "minReadySeconds", "use a health check start_period");
            if let Some(templates) = job_spec.get("volumeClaimTemplates") {
                for t in templates.items().unwrap_or_default() {
                    let claim = t
                        .get("metadata")
                        .and_then(|m| m.get("name"))
                        .and_then(text)
                        .unwrap_or_default();
                    let size = t
                        .get("spec")
                        .and_then(|s| s.get("resources"))
                        .and_then(|r| r.get("requests"))
                        .and_then(|r| r.get("storage"));
                    claim_templates
                        .insert(claim, size.and_then(text).and_then(|s| loose_bytes(&s, false)));
                }
            }
            let mut template = job_spec.obj("template")?;
            let labels = template
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .map(string_map)
                .unwrap_or_default();
            let pod = template.get("spec")?;
            let pod_path = template.path.key("spec");
            template.finish(cx);
            job_spec.finish(cx);
            (pod, pod_path, labels)
        }
    };
    if kind == "CronJob" {
        // Other kinds read `spec` through `job_spec` or the pod translator, which report
        // what they do not translate.
        spec.finish(cx);
    }
    top.finish(cx);
    let translated = pod::translate(pod_value, pod_path, &name, refs, &claim_templates, cx);
    let mut workload =
        Workload { labels, nodes: Vec::new(), named_ports: translated.named_ports.clone() };
    let replicas = cx.copies(&replicas, translated.allocations.len());
    for replica in 1..=replicas {
        let suffix = if replicas > 1 { format!("-{replica}") } else { String::new() };
        let rename = |n: &str| format!("{n}{suffix}");
        let mut node = translated.node.clone();
        node.allocations = translated.allocations.iter().map(|(n, _)| rename(n)).collect();
        for (alloc_name, allocation) in &translated.allocations {
            let mut allocation = allocation.clone();
            allocation.depends_on = allocation.depends_on.iter().map(|d| rename(d)).collect();
            if task {
                allocation.kind = AllocationType::Task;
                if let Some(limit) = restart_limit {
                    let policy =
                        allocation.restart.as_ref().map_or(Restart::OnFailure, |r| r.policy);
                    allocation.restart = Some(RestartPolicy {
                        policy,
                        max_attempts: Some(limit),
                        delay: None,
                        window: None,
                    });
                }
            }
            allocations.insert(rename(alloc_name), allocation);
        }
        let node_name = rename(&name);
        workload.nodes.push(node_name.clone());
        nodes.insert(node_name, node);
    }
    Some(workload)
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .entries()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| Some((e.key.clone(), text(&e.value)?)))
        .collect()
}

/// A Service: NodePort and LoadBalancer ports become port maps on the selected nodes.
fn service(
    doc: &Value,
    root: Path,
    workloads: &[Workload],
    allocations: &BTreeMap<String, Allocation>,
    nodes: &mut BTreeMap<String, Node>,
    cx: &mut Cx,
) {
    let spec = doc.get("spec");
    let kind =
        spec.and_then(|s| s.get("type")).and_then(text).unwrap_or_else(|| "ClusterIP".into());
    let selector = spec.and_then(|s| s.get("selector")).map(string_map).unwrap_or_default();
    let name = doc.get("metadata").and_then(|m| m.get("name")).and_then(text).unwrap_or_default();
    if kind != "NodePort" && kind != "LoadBalancer" {
        cx.warn(doc.pos, &root, format!("Service {name} ({kind}) is not translated: allocations reach each other by DNS name (`<allocation>.internal`) on the ensemble subnet"));
        return;
    }
    let selected: Vec<&Workload> = workloads
        .iter()
        .filter(|w| {
            !selector.is_empty() && selector.iter().all(|(k, v)| w.labels.get(k) == Some(v))
        })
        .collect();
    if selected.is_empty() {
        cx.warn(
            doc.pos,
            &root,
            format!("Service {name} selects no workload in this file; not translated"),
        );
        return;
    }
    let ports = spec.and_then(|s| s.get("ports")).and_then(Value::items).unwrap_or_default();
    for (i, port) in ports.iter().enumerate() {
        let path = root.key("spec").key("ports").index(i);
        let number = |key: &str| {
            port.get(key).and_then(|v| match v.kind {
                Kind::Int(n) => u16::try_from(n).ok(),
                _ => None,
            })
        };
        let protocol = if port.get("protocol").and_then(Value::as_str) == Some("UDP") {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let public = number("nodePort").or(number("port"));
        for workload in &selected {
            let target = match port.get("targetPort").map(|t| &t.kind) {
                Some(Kind::Str(named)) => workload.named_ports.get(named).copied(),
                Some(Kind::Int(n)) => u16::try_from(*n).ok(),
                _ => number("port"),
            };
            let Some(private) = target else {
                cx.warn(port.pos, &path, "not translated: the target port names no container port");
                continue;
            };
            for (replica, node_name) in workload.nodes.iter().enumerate() {
                let Some(node) = nodes.get_mut(node_name) else { continue };
                let owner = node.allocations.iter().find(|a| {
                    allocations.get(*a).is_some_and(|x| x.ports.iter().any(|p| p.port == private))
                });
                let Some(owner) = owner.cloned() else {
                    cx.warn(
                        port.pos,
                        &path,
                        format!(
                            "not translated: no container of {node_name} declares port {private}"
                        ),
                    );
                    continue;
                };
                if replica > 0 && public.is_some() {
                    cx.warn(port.pos, &path, format!("{node_name}: public port left dynamic (each replica is a separate machine)"));
                }
                node.ports.push(PortMap {
                    public: if replica == 0 { public } else { None },
                    private,
                    allocation: owner,
                    protocol,
                });
            }
        }
    }
    if kind == "LoadBalancer" {
        cx.warn(
            doc.pos,
            &root,
            format!(
                "Service {name}: no load balancer is created; each node publishes the port itself"
            ),
        );
    }
}

#[cfg(test)]
mod tests;
