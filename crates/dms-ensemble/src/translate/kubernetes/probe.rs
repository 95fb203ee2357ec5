//! A container probe → a health check; what a health check cannot say is a warning.

use std::collections::BTreeMap;

use crate::model::{HealthCheck, HealthCheckKind};
use crate::translate::{Cx, Obj, strings, text};
use crate::tree::{Kind, Value};
use crate::units::Duration;

fn seconds(probe: &mut Obj<'_>, key: &str) -> Option<Duration> {
    probe
        .get(key)
        .and_then(|v| if let Kind::Int(n) = v.kind { u64::try_from(n).ok() } else { None })
        .map(Duration::secs)
}

/// What a probe does: its kind, and the command, port or path it needs.
struct Action {
    kind: HealthCheckKind,
    command: Vec<String>,
    port: Option<u16>,
    path: Option<String>,
}

/// `livenessProbe` or `readinessProbe` as a health check, or `None` with a warning.
pub(super) fn check(
    mut probe: Obj<'_>,
    named: &BTreeMap<String, u16>,
    cx: &mut Cx,
) -> Option<HealthCheck> {
    let Some(Action { kind, command, port, path }) = action(&mut probe, named, cx) else {
        probe.finish(cx);
        return None;
    };
    if kind != HealthCheckKind::Command && port.is_none() {
        cx.warn(
            probe.value.pos,
            &probe.path,
            "not translated: the probe's port names no container port",
        );
        return None;
    }
    let check = HealthCheck {
        kind,
        command,
        port,
        path,
        interval: seconds(&mut probe, "periodSeconds"),
        timeout: seconds(&mut probe, "timeoutSeconds"),
        retries: probe.get("failureThreshold").and_then(text).and_then(|n| n.parse().ok()),
        start_period: seconds(&mut probe, "initialDelaySeconds"),
    };
    if probe.get("successThreshold").and_then(text).is_some_and(|n| n != "1") {
        cx.warn(
            probe.pos("successThreshold"),
            &probe.path.key("successThreshold"),
            "not translated: one success makes an allocation healthy",
        );
    }
    probe.drop_key(cx, "terminationGracePeriodSeconds", "the stop grace period is the provider's");
    probe.finish(cx);
    Some(check)
}

/// The probe's `exec`, `httpGet`, `tcpSocket` or `grpc` (a tcp probe of its port).
fn action(probe: &mut Obj<'_>, named: &BTreeMap<String, u16>, cx: &mut Cx) -> Option<Action> {
    let port_of = |v: Option<&Value>| match v.map(|v| &v.kind) {
        Some(Kind::Int(n)) => u16::try_from(*n).ok(),
        Some(Kind::Str(s)) => named.get(s).copied().or_else(|| s.parse().ok()),
        _ => None,
    };
    let tcp = HealthCheckKind::Tcp;
    if let Some(mut exec) = probe.obj("exec") {
        let command = exec.get("command").map(strings).unwrap_or_default();
        exec.finish(cx);
        return Some(Action { kind: HealthCheckKind::Command, command, port: None, path: None });
    }
    if let Some(mut http) = probe.obj("httpGet") {
        let port = port_of(http.get("port"));
        let path = http.str("path");
        if let Some(scheme) = http.str("scheme").filter(|s| s != "HTTP") {
            let at = http.path.key("scheme");
            let why = format!("not translated: scheme {scheme}; the probe is plain http");
            cx.warn(http.pos("scheme"), &at, why);
        }
        http.drop_key(cx, "host", "the probe goes to the allocation itself");
        http.drop_key(cx, "httpHeaders", "probes send no headers");
        http.finish(cx);
        return Some(Action { kind: HealthCheckKind::Http, command: Vec::new(), port, path });
    }
    if let Some(mut socket) = probe.obj("tcpSocket") {
        let port = port_of(socket.get("port"));
        socket.drop_key(cx, "host", "the probe goes to the allocation itself");
        socket.finish(cx);
        return Some(Action { kind: tcp, command: Vec::new(), port, path: None });
    }
    if let Some(mut grpc) = probe.obj("grpc") {
        let why = "a grpc probe is approximated as a tcp probe of its port";
        cx.warn(probe.pos("grpc"), &probe.path.key("grpc"), why);
        let port = port_of(grpc.get("port"));
        grpc.drop_key(cx, "service", "a tcp probe names no service");
        grpc.finish(cx);
        return Some(Action { kind: tcp, command: Vec::new(), port, path: None });
    }
    let why = "not translated: the probe has no exec, httpGet, tcpSocket or grpc";
    cx.warn(probe.value.pos, &probe.path, why);
    None
}
