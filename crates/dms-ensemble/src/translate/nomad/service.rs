//! Nomad `service` blocks: their first `check` becomes a health check; registration
//! (name, tags, provider), Connect and further checks are named in warnings.

use std::collections::BTreeMap;

use super::group::Label;
use super::{blocks, duration, int};
use crate::Position;
use crate::model::{HealthCheck, HealthCheckKind};
use crate::translate::{Cx, Obj, strings, text};
use crate::tree::{Path, Value};

/// A health check and who it belongs to.
pub(super) struct Check {
    pub(super) check: HealthCheck,
    /// The port label it probes (the service's when the check names none).
    pub(super) label: Option<String>,
    /// The task named by the check or its service (`task = "…"`), if any.
    pub(super) task: Option<String>,
    pub(super) pos: Position,
    pub(super) path: Path,
}

/// Keys of a service that only register it in Consul or Nomad's catalogue.
const REGISTRATION: [&str; 15] = [
    "name",
    "tags",
    "canary_tags",
    "provider",
    "meta",
    "canary_meta",
    "enable_tag_override",
    "tagged_addresses",
    "weights",
    "address",
    "address_mode",
    "on_update",
    "identity",
    "cluster",
    "kind",
];

/// The checks of the `service` blocks at `value`.
pub(super) fn translate(
    value: Option<&Value>,
    path: &Path,
    labels: &BTreeMap<String, Label>,
    cx: &mut Cx,
) -> Vec<Check> {
    let services = blocks(value);
    let mut out = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let spath = if services.len() > 1 { path.index(i) } else { path.clone() };
        let mut s = Obj::new(service, spath.clone());
        let label = s.str("port");
        let task = s.str("task");
        let registered: Vec<&str> =
            REGISTRATION.into_iter().filter(|key| s.get(key).is_some()).collect();
        if !registered.is_empty() {
            let name = service.get("name").and_then(text).unwrap_or_default();
            cx.warn(service.pos, &spath, format!("service registration `{name}` not translated ({}): allocations reach each other as `<allocation>.internal`", registered.join(", ")));
        }
        s.drop_key(cx, "connect", "Consul Connect (a service mesh) has no ensemble equivalent; allocations reach each other directly on the ensemble subnet");
        let checks = blocks(s.get("check"));
        for (j, c) in checks.iter().enumerate() {
            let cpath =
                if checks.len() > 1 { spath.key("check").index(j) } else { spath.key("check") };
            if j > 0 {
                cx.warn(c.pos, &cpath, "not translated: an allocation has one health check; only the first check of a service is used");
                continue;
            }
            let own_task = c.get("task").and_then(text);
            let own_label = c.get("port").and_then(text);
            let check_label = own_label.or_else(|| label.clone());
            if let Some(check) =
                check(Obj::new(c, cpath.clone()), check_label.as_deref(), labels, cx)
            {
                out.push(Check {
                    check,
                    label: check_label,
                    task: own_task.or_else(|| task.clone()),
                    pos: c.pos,
                    path: cpath,
                });
            }
        }
        s.finish(cx);
    }
    out
}

/// One `check` block, or `None` (with a warning) when it cannot be expressed.
fn check(
    mut c: Obj<'_>,
    label: Option<&str>,
    labels: &BTreeMap<String, Label>,
    cx: &mut Cx,
) -> Option<HealthCheck> {
    let kind = kind(&mut c, cx)?;
    c.skip("port");
    c.skip("task");
    c.skip("name");
    let port = label.and_then(|l| labels.get(l).map(|l| l.inside).or_else(|| l.parse().ok()));
    if kind != HealthCheckKind::Command && port.is_none() {
        cx.warn(
            c.value.pos,
            &c.path,
            format!(
                "not translated: the check's port {:?} is not a port of the group's network",
                label.unwrap_or("")
            ),
        );
        return None;
    }
    let mut command: Vec<String> = c.str("command").into_iter().collect();
    command.extend(c.get("args").map(strings).unwrap_or_default());
    let mut retries = int(c.get("failures_before_critical")).and_then(|n| u32::try_from(n).ok());
    let mut start_period = None;
    if let Some(mut restart) = c.obj("check_restart") {
        retries = int(restart.get("limit")).and_then(|n| u32::try_from(n).ok()).or(retries);
        start_period = duration(restart.get("grace"));
        if restart.get("ignore_warnings").and_then(text).as_deref() == Some("true") {
            let at = restart.path.key("ignore_warnings");
            cx.warn(
                restart.pos("ignore_warnings"),
                &at,
                "not translated: a check passes or fails; a warning state counts as failing",
            );
        }
        restart.finish(cx);
    }
    if let Some(method) = c.str("method").filter(|m| m != "GET") {
        cx.warn(
            c.pos("method"),
            &c.path.key("method"),
            format!("not translated: method {method}; the probe is a GET"),
        );
    }
    if let Some(protocol) = c.str("protocol").filter(|p| p != "http") {
        cx.warn(
            c.pos("protocol"),
            &c.path.key("protocol"),
            format!("not translated: protocol {protocol}; the probe is plain http"),
        );
    }
    let check = HealthCheck {
        kind,
        command,
        port: if kind == HealthCheckKind::Command { None } else { port },
        path: c.str("path").filter(|_| kind == HealthCheckKind::Http),
        interval: duration(c.get("interval")),
        timeout: duration(c.get("timeout")),
        retries,
        start_period,
    };
    drop_check_keys(c, cx);
    Some(check)
}

/// The check's `type`: http, tcp, script (a command), grpc (a tcp check of its port).
fn kind(c: &mut Obj<'_>, cx: &mut Cx) -> Option<HealthCheckKind> {
    let written = c.str("type").unwrap_or_default();
    let kind = match written.as_str() {
        "http" => HealthCheckKind::Http,
        "tcp" => HealthCheckKind::Tcp,
        "script" => HealthCheckKind::Command,
        "grpc" => {
            cx.warn(
                c.pos("type"),
                &c.path.key("type"),
                "a grpc check is approximated as a tcp check of its port",
            );
            HealthCheckKind::Tcp
        }
        other => {
            cx.warn(c.value.pos, &c.path, format!("not translated: check type {other:?}"));
            return None;
        }
    };
    Some(kind)
}

/// Warns about the check keys a health check cannot say, then any other unread key.
fn drop_check_keys(mut c: Obj<'_>, cx: &mut Cx) {
    for (key, why) in [
        ("header", "probes send no headers"),
        ("body", "probes send no body"),
        ("tls_skip_verify", "probes are plain http"),
        ("tls_server_name", "probes are plain http"),
        ("expose", "probes reach the allocation directly"),
        ("initial_status", "an allocation starts unknown until its first probe"),
        ("success_before_passing", "one success makes an allocation healthy"),
        ("address_mode", "probes reach the allocation directly"),
        ("on_update", "there are no rolling updates"),
        ("grpc_service", "a grpc check is a tcp check"),
        ("grpc_use_tls", "a grpc check is a tcp check"),
    ] {
        c.drop_key(cx, key, why);
    }
    c.drop_key(cx, "failures_before_warning", "a health check has no warning state");
    c.finish(cx);
}
