//! Nomad's interpolation: HCL2 variables (`${var.x}`, `${local.y}`), which Nomad resolves
//! when it reads the job, and the runtime variables it fills in when a task starts
//! (`${NOMAD_TASK_DIR}`, `${NOMAD_PORT_http}`, …). Those the ensemble knows too are
//! replaced; the rest stay as written, with a warning, since nothing fills them in later.

use std::collections::{BTreeMap, BTreeSet};

use super::group::Group;
use super::task::Task;
use crate::translate::{Cx, text};
use crate::tree::{Kind, Path, Value};

/// The variables of a job file: `variable` defaults, then `NOMAD_VAR_<name>` of the
/// caller's environment over them (as `nomad job run` reads them), then `locals` whose
/// values are plain. Keys are written as referenced: `var.x`, `local.y`.
pub(super) fn variables(
    doc: &Value,
    environment: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in doc.get("variable").and_then(Value::entries).unwrap_or_default() {
        let given = environment.get(&format!("NOMAD_VAR_{}", e.key)).cloned();
        let default = e.value.get("default").and_then(text);
        if let Some(value) = given.or(default) {
            out.insert(format!("var.{}", e.key), value);
        }
    }
    for locals in super::blocks(doc.get("locals")) {
        for e in locals.entries().unwrap_or_default() {
            if let Some(value) = text(&e.value).filter(|v| !v.contains("${")) {
                out.insert(format!("local.{}", e.key), value);
            }
        }
    }
    out
}

/// Replaces `${var.x}` and `${local.y}` in every string of the job (not in `variable`,
/// `locals` or `template` blocks); an unknown one is kept, with one warning each.
pub(super) fn resolve(
    value: &mut Value,
    path: &Path,
    variables: &BTreeMap<String, String>,
    cx: &mut Cx,
) {
    let mut warned = BTreeSet::new();
    walk(value, path, variables, &mut warned, cx);
}

fn walk(
    value: &mut Value,
    path: &Path,
    variables: &BTreeMap<String, String>,
    warned: &mut BTreeSet<String>,
    cx: &mut Cx,
) {
    match &mut value.kind {
        Kind::Str(s) if s.contains("${") => {
            let (result, unknown) = substitute(s, &|name| {
                if name.starts_with("var.") || name.starts_with("local.") {
                    Some(variables.get(name).cloned())
                } else {
                    None
                }
            });
            *s = result;
            for name in unknown {
                if warned.insert(name.clone()) {
                    let how = match name.strip_prefix("var.") {
                        Some(v) => format!("has no default and NOMAD_VAR_{v} is not set"),
                        None => "is not a plain value".to_string(),
                    };
                    cx.warn(
                        value.pos,
                        path,
                        format!("variable `{name}` {how}; `${{{name}}}` is kept as written"),
                    );
                }
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &path.index(i), variables, warned, cx);
            }
        }
        Kind::Map(entries) => {
            for e in entries {
                if !matches!(e.key.as_str(), "variable" | "locals" | "template") {
                    walk(&mut e.value, &path.key(&e.key), variables, warned, cx);
                }
            }
        }
        _ => {}
    }
}

/// Replaces each `${name}` for which `lookup` answers `Some(Some(value))`; returns the
/// names answered `Some(None)` (known kinds without a value). Others stay silently.
fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<Option<String>>,
) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        // `$${` is HCL's escape for a literal `${`.
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at + 2]);
            rest = &rest[at + 2..];
            continue;
        }
        let Some(end) = rest[at..].find('}') else { break };
        let name = rest[at + 2..at + end].trim();
        out.push_str(&rest[..at]);
        match lookup(name) {
            Some(Some(value)) => out.push_str(&value),
            Some(None) => {
                unknown.push(name.to_string());
                out.push_str(&rest[at..at + end + 1]);
            }
            None => out.push_str(&rest[at..at + end + 1]),
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    (out, unknown)
}

/// Fills Nomad's runtime variables into a task's strings where the ensemble knows them
/// (task directories, job, group and task names, ports inside the task); warns once per
/// variable that stays as written. Dynamic ports get `NOMAD_PORT_<label>` set.
pub(super) fn fill(task: &mut Task, group: &Group<'_>, cx: &mut Cx) {
    for label in &task.labels {
        if let Some(l) = group.labels.get(label).filter(|l| l.dynamic) {
            task.allocation.environment.insert(format!("NOMAD_PORT_{label}"), l.inside.to_string());
        }
    }
    let lookup = |name: &str| -> Option<Option<String>> {
        if name.starts_with("var.") || name.starts_with("local.") {
            return None; // left by `resolve`, which warned already
        }
        let known = match name {
            "NOMAD_TASK_DIR" => Some("/local".to_string()),
            "NOMAD_ALLOC_DIR" => Some("/alloc".to_string()),
            "NOMAD_SECRETS_DIR" => Some("/secrets".to_string()),
            "NOMAD_TASK_NAME" => Some(task.name.clone()),
            "NOMAD_GROUP_NAME" => Some(group.name.to_string()),
            "NOMAD_JOB_NAME" | "NOMAD_JOB_ID" => Some(group.job.name.to_string()),
            _ => name
                .strip_prefix("NOMAD_PORT_")
                .filter(|l| task.labels.iter().any(|x| x == l))
                .and_then(|l| group.labels.get(l))
                .map(|l| l.inside.to_string()),
        };
        Some(known)
    };
    let mut unknown = BTreeSet::new();
    let mut apply = |s: &mut String| {
        if s.contains("${") {
            let (result, missing) = substitute(s, &lookup);
            *s = result;
            unknown.extend(missing);
        }
    };
    let a = &mut task.allocation;
    a.execution.image.iter_mut().for_each(&mut apply);
    a.execution.entrypoint.iter_mut().for_each(&mut apply);
    a.execution.command.iter_mut().for_each(&mut apply);
    a.execution.working_dir.iter_mut().for_each(&mut apply);
    a.environment.values_mut().for_each(&mut apply);
    for v in &mut a.volumes {
        v.source.iter_mut().for_each(&mut apply);
        apply(&mut v.target);
    }
    if let Some(check) = &mut a.healthcheck {
        check.command.iter_mut().for_each(&mut apply);
        check.path.iter_mut().for_each(&mut apply);
    }
    for name in unknown {
        cx.warn(
            task.pos,
            &task.path,
            format!("`${{{name}}}` is filled in by Nomad at run time; kept as written"),
        );
    }
}
