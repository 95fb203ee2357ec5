//! The field-status table of `docs/ensemble.md` covers every field of the generated
//! schema, once, and its `ignored` rows are exactly the fields validate warns about
//! (`semantic::UNSUPPORTED`) — each of which is shown to warn.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use dms_ensemble::semantic::UNSUPPORTED;
use serde_json::Value;

/// Every field path of the schema: `<name>` for map keys, `[]` for list items.
fn schema_paths() -> BTreeSet<String> {
    let schema = dms_ensemble::schema::json_schema();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut out = BTreeSet::new();
    walk(&schema, &defs, "", &mut Vec::new(), &mut out);
    out
}

fn walk(
    node: &Value,
    defs: &Value,
    path: &str,
    seen: &mut Vec<String>,
    out: &mut BTreeSet<String>,
) {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap().to_string();
        if !seen.contains(&name) {
            seen.push(name.clone());
            walk(&defs[&name], defs, path, seen, out);
            seen.pop();
        }
        return;
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for sub in node.get(key).and_then(Value::as_array).into_iter().flatten() {
            walk(sub, defs, path, seen, out);
        }
    }
    for (key, sub) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        out.insert(child.clone());
        walk(sub, defs, &child, seen, out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(values, defs, &format!("{path}.<name>"), seen, out);
    }
    if let Some(items) = node.get("items").filter(|v| v.is_object()) {
        walk(items, defs, &format!("{path}[]"), seen, out);
    }
}

/// The table's rows: (field, status).
fn table() -> Vec<(String, String)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ensemble.md"))
            .unwrap();
    let start = doc.find("<!-- fields:begin -->").expect("the table's begin marker");
    let end = doc.find("<!-- fields:end -->").expect("the table's end marker");
    doc[start..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let field = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((field.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

fn under(field: &str, parent: &str) -> bool {
    field == parent
        || field.starts_with(&format!("{parent}."))
        || field.starts_with(&format!("{parent}["))
}

#[test]
fn every_schema_field_has_one_row_and_every_row_a_field() {
    let rows = table();
    let fields: BTreeSet<String> = rows.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(fields.len(), rows.len(), "a field has two rows");
    let schema = schema_paths();
    let missing: Vec<&String> = schema.difference(&fields).collect();
    let stale: Vec<&String> = fields.difference(&schema).collect();
    assert!(missing.is_empty(), "fields without a row in docs/ensemble.md: {missing:?}");
    assert!(stale.is_empty(), "rows for fields the schema does not have: {stale:?}");
    let statuses = ["honored", "checked", "kept", "refused", "ignored"];
    for (field, status) in &rows {
        assert!(statuses.contains(&status.as_str()), "{field}: unknown status {status}");
    }
}

#[test]
fn ignored_rows_are_exactly_the_fields_validate_warns_about() {
    for (field, status) in table() {
        let warned = UNSUPPORTED.iter().any(|(u, _)| under(&field, u));
        assert_eq!(status == "ignored", warned, "{field} is {status} in the table");
    }
}

#[test]
fn each_ignored_field_used_is_a_warning() {
    let text = "version: V1
allocations:
  web:
    type: service
    executor: docker
    dns_name: web
    resources: {cpu: {cores: 1, clock: 2GHz}, ram: 64MiB}
    execution: {image: nginx:1.27, user: nobody}
    volumes: [{type: tmpfs, target: /data, size: 1GiB}]
    keys: [ops]
    provision: [setup]
nodes:
  a:
    allocations: [web]
    location:
      accept: [{asn: 64512}, {isp: example}]
      reject: [{asn: 64513}, {isp: other}]
  b: {allocations: []}
edges: [{source: a, target: b, min_bandwidth: 100Mbps}]
subnet: {join: true}
scripts: {setup: ./setup.sh}
keys: {ops: {type: ssh, file: ./id.pub}}
requirements: {budget: 10, currency: USD}
";
    let loaded = dms_ensemble::load(text).unwrap_or_else(|e| {
        panic!("{}", dms_ensemble::error::render_all(&e.diagnostics(), "test.yaml"))
    });
    let warned: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|d| d.message.starts_with("not supported by this version"))
        .map(|d| d.path.clone())
        .collect();
    // The concrete path of each field as this file uses it.
    let concrete = |field: &str| {
        field
            .replace("allocations.<name>", "allocations.web")
            .replace("nodes.<name>.location.accept[].asn", "nodes.a.location.accept[0].asn")
            .replace("nodes.<name>.location.accept[].isp", "nodes.a.location.accept[1].isp")
            .replace("nodes.<name>.location.reject[].asn", "nodes.a.location.reject[0].asn")
            .replace("nodes.<name>.location.reject[].isp", "nodes.a.location.reject[1].isp")
            .replace("edges[]", "edges[0]")
    };
    for (field, _) in UNSUPPORTED {
        let path = concrete(field);
        assert!(warned.contains(&path), "no warning for {field} (at {path}); warned: {warned:#?}");
    }
    assert_eq!(warned.len(), UNSUPPORTED.len(), "{warned:#?}");
}
