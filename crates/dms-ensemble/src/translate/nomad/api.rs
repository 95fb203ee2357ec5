//! The Nomad API's JSON job (`{"Job": {"TaskGroups": [...]}}`, from `nomad job inspect`
//! or `nomad job run -output`) rewritten into the HCL-JSON shape the translator reads.
//! Keys not listed here are carried over in snake_case, so they still reach the
//! translator and are reported when not translated.

use crate::tree::{Entry, Kind, Value};

/// Rewrites `{"Job": {...}}` into `{"job": {"<id>": {...}}}`.
pub(super) fn normalize(doc: &Value) -> Value {
    let Some(job) = doc.get("Job") else { return doc.clone() };
    let id = job.get("ID").or(job.get("Name")).and_then(Value::as_str).unwrap_or("job").to_string();
    map(vec![("job", map(vec![(id.as_str(), block(job))]))])
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::new(Kind::Map(
        entries
            .into_iter()
            .map(|(k, v)| Entry { key: k.to_string(), key_pos: Default::default(), value: v })
            .collect(),
    ))
}

/// A labelled list (`TaskGroups`, `Tasks`): `[{Name: a, ...}]` → `{a: {...}}`.
fn labelled(list: &Value) -> Value {
    let items = list.items().unwrap_or_default();
    map(items
        .iter()
        .map(|item| (item.get("Name").and_then(Value::as_str).unwrap_or("unnamed"), block(item)))
        .collect())
}

fn snake(key: &str) -> String {
    let mut out = String::new();
    let mut previous_upper = true;
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if !previous_upper {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_upper = true;
        } else {
            out.push(c);
            previous_upper = false;
        }
    }
    out
}

/// One API object → HCL-JSON block, with the renames the translator needs.
fn block(value: &Value) -> Value {
    let Some(entries) = value.entries() else { return value.clone() };
    let mut out: Vec<(String, Value)> = Vec::new();
    for e in entries {
        let v = &e.value;
        match e.key.as_str() {
            "ID" | "Name" | "Stop" | "Status" | "Version" | "CreateIndex" | "ModifyIndex"
            | "JobModifyIndex" | "SubmitTime" => {}
            "TaskGroups" => out.push(("group".into(), labelled(v))),
            "Tasks" => out.push(("task".into(), labelled(v))),
            "Config" | "Env" | "Meta" => out.push((snake(&e.key), v.clone())),
            "Constraints" => out.push((
                "constraint".into(),
                list(v, |c| {
                    map(vec![
                        ("attribute", c.get("LTarget").cloned().unwrap_or(Value::new(Kind::Null))),
                        (
                            "operator",
                            c.get("Operand").cloned().unwrap_or(Value::new(Kind::Str("=".into()))),
                        ),
                        ("value", c.get("RTarget").cloned().unwrap_or(Value::new(Kind::Null))),
                    ])
                }),
            )),
            "Networks" => out.push(("network".into(), list(v, network))),
            "RestartPolicy" => out.push(("restart".into(), block(v))),
            "ReschedulePolicy" => out.push(("reschedule".into(), block(v))),
            "Services" => out.push(("service".into(), list(v, block))),
            "Checks" => out.push(("check".into(), list(v, block))),
            "PortLabel" => out.push(("port".into(), v.clone())),
            "VolumeMounts" => out.push(("volume_mount".into(), list(v, block))),
            "Destination" => out.push(("destination".into(), v.clone())),
            "Volumes" => out.push((
                "volume".into(),
                v.entries().map_or_else(
                    || v.clone(),
                    |_| {
                        map(v
                            .entries()
                            .unwrap_or_default()
                            .iter()
                            .map(|e| (e.key.as_str(), block(&e.value)))
                            .collect())
                    },
                ),
            )),
            "Resources" => out.push(("resources".into(), resources(v))),
            "Lifecycle" => out.push(("lifecycle".into(), block(v))),
            key => out.push((snake(key), block_or_list(v))),
        }
    }
    Value::new(Kind::Map(
        out.into_iter()
            .map(|(key, value)| Entry { key, key_pos: Default::default(), value })
            .collect(),
    ))
}

fn block_or_list(v: &Value) -> Value {
    match &v.kind {
        Kind::Map(_) => block(v),
        Kind::Seq(items) => Value::new(Kind::Seq(items.iter().map(block_or_list).collect())),
        _ => v.clone(),
    }
}

fn list(v: &Value, f: impl Fn(&Value) -> Value) -> Value {
    Value::new(Kind::Seq(v.items().unwrap_or_default().iter().map(f).collect()))
}

fn network(n: &Value) -> Value {
    let mut ports = Vec::new();
    for (key, is_static) in [("ReservedPorts", true), ("DynamicPorts", false)] {
        for p in n.get(key).and_then(Value::items).unwrap_or_default() {
            let label = p.get("Label").and_then(Value::as_str).unwrap_or("port");
            let mut fields = Vec::new();
            if let (true, Some(value)) = (is_static, p.get("Value")) {
                fields.push(("static", value.clone()));
            }
            if let Some(to) = p.get("To").filter(|t| !matches!(t.kind, Kind::Int(0))) {
                fields.push(("to", to.clone()));
            }
            ports.push((label, map(fields)));
        }
    }
    let mut fields = vec![("port", map(ports))];
    if let Some(mode) = n.get("Mode").filter(|m| m.as_str().is_some_and(|s| !s.is_empty())) {
        fields.push(("mode", mode.clone()));
    }
    map(fields)
}

fn resources(r: &Value) -> Value {
    let mut fields = Vec::new();
    for (from, to) in
        [("CPU", "cpu"), ("Cores", "cores"), ("MemoryMB", "memory"), ("MemoryMaxMB", "memory_max")]
    {
        if let Some(v) = r.get(from).filter(|v| !matches!(v.kind, Kind::Int(0) | Kind::Null)) {
            fields.push((to, v.clone()));
        }
    }
    let devices: Vec<(&str, Value)> = r
        .get("Devices")
        .and_then(Value::items)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            (
                d.get("Name").and_then(Value::as_str).unwrap_or("gpu"),
                map(vec![("count", d.get("Count").cloned().unwrap_or(Value::new(Kind::Int(1))))]),
            )
        })
        .collect();
    if !devices.is_empty() {
        fields.push(("device", map(devices)));
    }
    map(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_keys() {
        assert_eq!(snake("KillTimeout"), "kill_timeout");
        assert_eq!(snake("MemoryMB"), "memory_mb");
        assert_eq!(snake("Type"), "type");
    }
}
