//! Parts of a compose service: command words, environment, ports, volumes, health check
//! and restart policy.

use std::collections::BTreeMap;

use crate::model::{
    HealthCheck, HealthCheckKind, Port, PortMap, Protocol, Restart, RestartPolicy, Volume,
    VolumeKind,
};
use crate::translate::{Cx, Obj, loose_bytes, shell_words, strings, text};
use crate::tree::{Kind, Path, Value};
use crate::units::Duration;

pub(super) fn command_words(value: &Value) -> Vec<String> {
    match &value.kind {
        Kind::Seq(_) => strings(value),
        _ => text(value).map(|t| shell_words(&t)).unwrap_or_default(),
    }
}

/// `environment` (mapping or `KEY=VALUE` list). A variable without a value takes it from
/// the caller's variables, as compose does; one that has none there is dropped.
pub(super) fn environment(
    value: &Value,
    out: &mut BTreeMap<String, String>,
    path: &Path,
    cx: &mut Cx,
) {
    let pairs: Vec<(String, Option<String>, crate::Position)> = match &value.kind {
        Kind::Map(entries) => {
            entries.iter().map(|e| (e.key.clone(), text(&e.value), e.key_pos)).collect()
        }
        Kind::Seq(items) => items
            .iter()
            .filter_map(|i| text(i).map(|t| (t, i.pos)))
            .map(|(t, pos)| match t.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string()), pos),
                None => (t, None, pos),
            })
            .collect(),
        _ => Vec::new(),
    };
    for (key, value, pos) in pairs {
        match value.or_else(|| cx.variables.get(&key).cloned()) {
            Some(value) => {
                out.insert(key, value);
            }
            None => cx.warn(pos, &path.key(&key), "not translated: the value comes from the environment, which does not set it; give it explicitly"),
        }
    }
}

pub(super) fn declare(ports: &mut Vec<Port>, port: u16, udp: bool) {
    let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
    if !ports.iter().any(|p| p.port == port && p.protocol == protocol) {
        ports.push(Port { port, protocol, name: None });
    }
}

/// `expose`: ports (or ranges) reachable by the other services, published nowhere.
pub(super) fn expose(value: &Value, path: &Path, ports: &mut Vec<Port>, cx: &mut Cx) {
    for port in strings(value) {
        let (number, protocol) = port.split_once('/').unwrap_or((port.as_str(), "tcp"));
        match range(number) {
            Some((lo, hi)) if hi >= lo && hi - lo <= 100 => {
                for p in lo..=hi {
                    declare(ports, p, protocol == "udp");
                }
            }
            _ => cx.warn(value.pos, path, format!("not translated: cannot read port {port:?}")),
        }
    }
}

fn range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// One `ports` entry: short (`[ip:]public:private[/proto]`, ranges) or long syntax.
pub(super) fn publish(
    value: &Value,
    path: &Path,
    ports: &mut Vec<Port>,
    maps: &mut Vec<PortMap>,
    cx: &mut Cx,
) {
    let (spec, protocol) = if let Kind::Map(_) = value.kind {
        let mut long = Obj::new(value, path.clone());
        let target = long.str("target").unwrap_or_default();
        let published = long.str("published").filter(|p| !p.is_empty());
        let protocol = long.str("protocol").unwrap_or_else(|| "tcp".into());
        long.drop_key(cx, "host_ip", "ports are published on the node's public address");
        long.drop_key(cx, "app_protocol", "the application protocol is not part of a port");
        long.skip("mode");
        long.skip("name");
        long.finish(cx);
        (published.map_or(target.clone(), |p| format!("{p}:{target}")), protocol)
    } else {
        let Some(t) = text(value) else { return };
        let (spec, protocol) = t
            .split_once('/')
            .map_or((t.clone(), "tcp".to_string()), |(s, p)| (s.to_string(), p.to_string()));
        (spec, protocol)
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (private, public) = match parts.as_slice() {
        [private] => (*private, None),
        [private, public] => (*private, Some(*public)),
        [private, public, ip] => {
            if !ip.is_empty() {
                cx.warn(value.pos, path, format!("the host address {ip} is dropped: ports are published on the node's public address"));
            }
            (*private, Some(*public))
        }
        _ => return,
    };
    let Some((lo, hi)) = range(private) else {
        cx.warn(value.pos, path, format!("not translated: cannot read port {spec:?}"));
        return;
    };
    let public = public.filter(|p| !p.is_empty()).and_then(range);
    let udp = protocol == "udp";
    if hi < lo || hi - lo > 100 {
        cx.warn(
            value.pos,
            path,
            format!("not translated: port range {spec:?} is reversed or wider than 100 ports"),
        );
        return;
    }
    for (offset, port) in (lo..=hi).enumerate() {
        declare(ports, port, udp);
        let public = public.map(|(start, _)| start.saturating_add(offset as u16));
        let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
        maps.push(PortMap { public, private: port, allocation: String::new(), protocol });
    }
}

/// One `volumes` entry: `source:target[:mode]`, `target`, or the long syntax.
pub(super) fn mount(value: &Value, path: &Path, cx: &mut Cx) -> Option<Volume> {
    if let Kind::Map(_) = value.kind {
        return long_mount(Obj::new(value, path.clone()), cx);
    }
    let spec = text(value)?;
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, ""),
        [source, target] => (Some(*source), *target, ""),
        [source, target, mode, ..] => (Some(*source), *target, *mode),
        [] => return None,
    };
    let dropped: Vec<&str> =
        mode.split(',').filter(|m| !m.is_empty() && *m != "ro" && *m != "rw").collect();
    if !dropped.is_empty() {
        cx.warn(value.pos, path, format!("not translated: mount options {}", dropped.join(",")));
    }
    let bind = source.is_some_and(|s| s.starts_with(['.', '/', '~']));
    if bind {
        cx.warn(
            value.pos,
            path,
            "bind mount of a host path: the path is on the provider's machine, which may refuse it",
        );
    }
    Some(Volume {
        kind: if bind { VolumeKind::Bind } else { VolumeKind::Volume },
        source: source
            .map(str::to_string)
            .or_else(|| Some(format!("anon-{}", target.trim_matches('/').replace('/', "-")))),
        target: target.to_string(),
        read_only: mode.split(',').any(|m| m == "ro"),
        size: None,
    })
}

fn long_mount(mut long: Obj<'_>, cx: &mut Cx) -> Option<Volume> {
    let kind = match long.str("type").as_deref() {
        Some("bind") => VolumeKind::Bind,
        Some("tmpfs") => VolumeKind::Tmpfs,
        Some("volume") | None => VolumeKind::Volume,
        Some(other) => {
            cx.warn(
                long.pos("type"),
                &long.path.key("type"),
                format!("{other} mount translated as a volume"),
            );
            VolumeKind::Volume
        }
    };
    let size = long.obj("tmpfs").and_then(|mut t| {
        let size = t.get("size").and_then(text).and_then(|s| loose_bytes(&s, true));
        t.drop_key(cx, "mode", "tmpfs modes are the provider's");
        t.finish(cx);
        size
    });
    let volume = Volume {
        kind,
        source: long.str("source"),
        target: long.str("target").unwrap_or_default(),
        read_only: long.get("read_only").is_some_and(|r| text(r).as_deref() == Some("true")),
        size,
    };
    long.drop_key(cx, "bind", "bind propagation options are the provider's");
    long.drop_key(cx, "volume", "volume options are the provider's");
    long.skip("consistency");
    long.finish(cx);
    Some(volume)
}

pub(super) fn duration(text: Option<String>) -> Option<Duration> {
    text.and_then(|t| t.parse().ok())
}

/// A duration that must be read, or a warning naming what could not be.
fn read_duration(h: &mut Obj<'_>, key: &str, cx: &mut Cx) -> Option<Duration> {
    let written = h.str(key)?;
    let parsed = duration(Some(written.clone()));
    if parsed.is_none() {
        cx.warn(
            h.pos(key),
            &h.path.key(key),
            format!("not translated: cannot read duration {written:?}"),
        );
    }
    parsed
}

pub(super) fn healthcheck(mut h: Obj<'_>, cx: &mut Cx) -> Option<HealthCheck> {
    if h.get("disable").is_some_and(|d| text(d).as_deref() == Some("true")) {
        h.finish(cx);
        return None;
    }
    let test = h.get("test").map(|t| match &t.kind {
        Kind::Seq(_) => strings(t),
        _ => vec!["CMD-SHELL".to_string()].into_iter().chain(text(t)).collect(),
    });
    let command = match test.as_deref() {
        Some([first, rest @ ..]) if first == "CMD" => rest.to_vec(),
        Some([first, line, ..]) if first == "CMD-SHELL" => {
            vec!["/bin/sh".into(), "-c".into(), line.clone()]
        }
        Some([first, ..]) if first == "NONE" => {
            h.finish(cx);
            return None;
        }
        Some(other) => other.to_vec(),
        None => Vec::new(),
    };
    let check = HealthCheck {
        kind: HealthCheckKind::Command,
        command,
        port: None,
        path: None,
        interval: read_duration(&mut h, "interval", cx),
        timeout: read_duration(&mut h, "timeout", cx),
        retries: h.str("retries").and_then(|r| r.parse().ok()),
        start_period: read_duration(&mut h, "start_period", cx),
    };
    h.drop_key(cx, "start_interval", "probes run at `interval` during the start period too");
    h.finish(cx);
    Some(check)
}

pub(super) fn restart_policy(
    policy: &str,
    cx: &mut Cx,
    pos: crate::Position,
    path: &Path,
) -> Option<RestartPolicy> {
    let (name, attempts) =
        policy.split_once(':').map_or((policy, None), |(n, a)| (n, a.parse().ok()));
    let policy = match name {
        "no" | "none" => Restart::Never,
        "always" => Restart::Always,
        "on-failure" | "on_failure" => Restart::OnFailure,
        "unless-stopped" => {
            cx.warn(pos, path, "`unless-stopped` is translated as `always` (an ensemble stops only when shut down)");
            Restart::Always
        }
        other => {
            cx.warn(pos, path, format!("not translated: unknown restart policy {other:?}"));
            return None;
        }
    };
    Some(RestartPolicy { policy, max_attempts: attempts, delay: None, window: None })
}
