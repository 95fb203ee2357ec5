//! Contract test: every request the VM executor sends to Firecracker's API fits
//! Firecracker's published API description (`tests/firecracker/openapi.json`, see its
//! README). The binary is in no registry this project can reach, so this is how its path
//! is checked: the methods and paths exist, and each body has the required fields, no
//! field Firecracker does not know (it refuses those), and values of the right types.

use dms_executor::vm::backend::Plan;
use dms_executor::vm::firecracker;
use serde_json::Value;

fn description() -> Value {
    let text = include_str!("firecracker/openapi.json");
    serde_json::from_str(text).expect("openapi.json is JSON")
}

/// The schema a template path matches `path` with (`/drives/{drive_id}` ~ `/drives/rootfs`).
fn operation<'a>(api: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let paths = api["paths"].as_object()?;
    let (_, item) = paths.iter().find(|(template, _)| {
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('/').collect();
        t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
    })?;
    item.get(method.to_ascii_lowercase())
}

/// What is wrong with `value` under `schema` (Swagger 2.0 subset Firecracker uses).
fn problems(api: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/definitions/");
        return problems(api, &api["definitions"][name], value, at);
    }
    let mut out = Vec::new();
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {options:?}"));
    }
    let fits = match schema.get("type").and_then(Value::as_str) {
        Some("object") | None if schema.get("properties").is_some() => value.is_object(),
        Some("object") => value.is_object(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_u64() || value.is_i64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        _ => true,
    };
    if !fits {
        out.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return out;
    }
    if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
        && value.as_f64().is_some_and(|v| v < minimum)
    {
        out.push(format!("{at}: {value} is below the minimum {minimum}"));
    }
    let Some(object) = value.as_object() else { return out };
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !object.contains_key(name) {
            out.push(format!("{at}: the required field {name} is missing"));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, field) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(field_schema) => {
                out.extend(problems(api, field_schema, field, &format!("{at}.{name}")))
            }
            None => out.push(format!("{at}: Firecracker does not know the field {name}")),
        }
    }
    out
}

fn check(api: &Value, (method, path, body): &firecracker::Request) -> Vec<String> {
    let Some(operation) = operation(api, method, path) else {
        return vec![format!("{method} {path}: no such operation in Firecracker's API")];
    };
    let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
    let Some(body_schema) = parameters.iter().find(|p| p["in"] == "body").map(|p| &p["schema"])
    else {
        return vec![format!("{method} {path}: takes no body")];
    };
    problems(api, body_schema, body, &format!("{method} {path}"))
}

fn plan(rootfs: bool, initrd: bool) -> Plan {
    Plan {
        dir: "/var/lib/dms/vms/vm-a-1".into(),
        name: "dms-vm-a-1".into(),
        kernel: "/var/lib/dms/images/vmlinux".into(),
        initrd: initrd.then(|| "/var/lib/dms/images/initrd".into()),
        rootfs: rootfs.then(|| "/var/lib/dms/images/rootfs.ext4".into()),
        shares: Vec::new(),
        forwards: Vec::new(),
        cmdline: "console=ttyS0 reboot=t panic=-1 pci=off quiet".into(),
        vcpus: 2,
        memory_mib: 496,
    }
}

#[test]
fn every_request_fits_firecrackers_api_description() {
    let api = description();
    assert_eq!(api["swagger"], "2.0");
    let mut sent = Vec::new();
    for (rootfs, initrd) in [(true, false), (false, true), (true, true)] {
        sent.extend(firecracker::requests(&plan(rootfs, initrd)));
    }
    sent.push(firecracker::action("SendCtrlAltDel"));
    let paths: std::collections::BTreeSet<&str> = sent.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(
        paths.into_iter().collect::<Vec<_>>(),
        ["/actions", "/boot-source", "/drives/rootfs", "/machine-config", "/serial"]
    );
    let problems: Vec<String> = sent.iter().flat_map(|r| check(&api, r)).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let (_, last, start) = &firecracker::requests(&plan(false, true))[3];
    assert_eq!((last.as_str(), &start["action_type"]), ("/actions", &Value::from("InstanceStart")));
}

#[test]
fn the_checker_catches_what_firecracker_would_refuse() {
    let api = description();
    let bad = [
        ("PUT", "/machine-config", serde_json::json!({ "vcpu_count": 1 })),
        (
            "PUT",
            "/machine-config",
            serde_json::json!({ "vcpu_count": 1, "mem_size_mib": 1, "cpus": 2 }),
        ),
        ("PUT", "/boot-source", serde_json::json!({ "kernel_image_path": 7 })),
        ("PUT", "/actions", serde_json::json!({ "action_type": "Reboot" })),
        ("PUT", "/no-such-thing", serde_json::json!({})),
    ];
    for (method, path, body) in bad {
        let found = check(&api, &(method, path.to_string(), body.clone()));
        assert!(!found.is_empty(), "{method} {path} {body} passed");
    }
}
