//! A compose service's sizes: `cpus`, `mem_limit` and the `deploy` section (resources,
//! devices, restart policy). `deploy.replicas` is read by the caller.

use crate::model::{Allocation, Gpu, GpuVendor, Restart, RestartPolicy};
use crate::translate::{Cx, Obj, loose_bytes, strings, text};
use crate::tree::{Path, Value};

use super::parts::duration;

/// Sets the cores from `value`; whether it could be read (a warning when not).
pub(super) fn set_cpus(value: &Value, a: &mut Allocation, cx: &mut Cx, path: &Path) -> bool {
    let written = text(value).unwrap_or_default();
    match written.trim().parse::<f64>() {
        Ok(cores) if cores > 0.0 => {
            a.resources.cpu.cores = cores;
            true
        }
        _ => {
            cx.warn(value.pos, path, format!("not translated: cannot read cpus {written:?}"));
            false
        }
    }
}

/// Sets the memory from `value`; whether it could be read (a warning when not).
pub(super) fn set_memory(value: &Value, a: &mut Allocation, cx: &mut Cx, path: &Path) -> bool {
    let written = text(value).unwrap_or_default();
    match loose_bytes(&written, true) {
        Some(size) => {
            a.resources.ram = size;
            true
        }
        None => {
            cx.warn(
                value.pos,
                path,
                format!("not translated: cannot read memory size {written:?}"),
            );
            false
        }
    }
}

/// `deploy`: resources, devices, restart policy (replicas are the caller's). Returns
/// whether cpu and memory were given.
pub(super) fn section(mut d: Obj<'_>, a: &mut Allocation, cx: &mut Cx) -> (bool, bool) {
    d.skip("replicas");
    if d.str("mode").as_deref() == Some("global") {
        cx.warn(
            d.pos("mode"),
            &d.path.key("mode"),
            "`global` mode is translated as one allocation; add allocations to run one per machine",
        );
    }
    let mut given = (false, false);
    if let Some(mut resources) = d.obj("resources") {
        // Reservations first: a limit, when given, is what the allocation gets.
        let reserved = resources.obj("reservations").map(|side| side_resources(side, a, cx));
        let (cores, ram) = (a.resources.cpu.cores, a.resources.ram);
        let limited = resources.obj("limits").map(|side| side_resources(side, a, cx));
        let (reserved, limited) = (reserved.unwrap_or_default(), limited.unwrap_or_default());
        let (pos, path) = (d.pos("resources"), d.path.key("resources"));
        if reserved.0 && limited.0 && cores != a.resources.cpu.cores {
            let limit = a.resources.cpu.cores;
            cx.warn(pos, &path, format!("reservation of {cores} cpus dropped: the allocation asks for its limit, {limit}"));
        }
        if reserved.1 && limited.1 && ram != a.resources.ram {
            let limit = a.resources.ram;
            cx.warn(
                pos,
                &path,
                format!("reservation of {ram} dropped: the allocation asks for its limit, {limit}"),
            );
        }
        given = (reserved.0 || limited.0, reserved.1 || limited.1);
        resources.finish(cx);
    }
    if let Some(policy) = d.obj("restart_policy") {
        a.restart = Some(restart(policy, cx));
    }
    d.drop_key(cx, "placement", "placement constraints of swarm nodes have no ensemble equivalent; use node location or attributes");
    d.drop_key(cx, "update_config", "rolling updates are not part of an ensemble");
    d.drop_key(cx, "rollback_config", "rolling updates are not part of an ensemble");
    d.drop_key(cx, "endpoint_mode", "allocations are reached by DNS name on the ensemble subnet");
    d.drop_key(cx, "labels", "labels are not carried to allocations");
    d.finish(cx);
    given
}

/// One of `limits` and `reservations`. Returns whether cpu and memory were given.
fn side_resources(mut side: Obj<'_>, a: &mut Allocation, cx: &mut Cx) -> (bool, bool) {
    let cpu = side.get("cpus").is_some_and(|c| set_cpus(c, a, cx, &side.path.key("cpus")));
    let ram = side.get("memory").is_some_and(|m| set_memory(m, a, cx, &side.path.key("memory")));
    if let Some(devices) = side.get("devices") {
        for (i, device) in devices.items().unwrap_or_default().iter().enumerate() {
            gpu(Obj::new(device, side.path.key("devices").index(i)), a, cx);
        }
    }
    side.drop_key(cx, "pids", "process limits are the provider's");
    side.drop_key(cx, "generic_resources", "swarm generic resources have no ensemble equivalent");
    side.finish(cx);
    (cpu, ram)
}

/// One `devices` entry: a GPU request, or a warning saying what was not translated.
fn gpu(mut device: Obj<'_>, a: &mut Allocation, cx: &mut Cx) {
    let caps = device.get("capabilities").map(strings).unwrap_or_default();
    if !caps.iter().any(|c| c == "gpu") {
        cx.warn(
            device.value.pos,
            &device.path,
            format!(
                "not translated: a device with capabilities {caps:?} (only GPUs can be requested)"
            ),
        );
        device.skip("count");
        device.skip("driver");
        device.skip("device_ids");
        device.skip("options");
        device.finish(cx);
        return;
    }
    let count = match device.get("count") {
        None => 1,
        Some(c) => match text(c).unwrap_or_default().as_str() {
            "all" => {
                cx.warn(
                    c.pos,
                    &device.path.key("count"),
                    "`all` GPUs translated as 1 (an ensemble asks for a number)",
                );
                1
            }
            n => match n.parse::<u32>() {
                Ok(n @ 1..=64) => n,
                Ok(_) => {
                    let why = format!("{n} GPUs: an allocation asks for 1 to 64 of a kind");
                    cx.refuse(c.pos, &device.path.key("count"), why);
                    1
                }
                Err(_) => {
                    let why =
                        format!("not translated: GPU count {n:?} is not a number; 1 is asked for");
                    cx.warn(c.pos, &device.path.key("count"), why);
                    1
                }
            },
        },
    };
    let vendor = device.str("driver").and_then(|d| match d.as_str() {
        "nvidia" => Some(GpuVendor::Nvidia),
        "amd" => Some(GpuVendor::Amd),
        "intel" | "i915" => Some(GpuVendor::Intel),
        other => {
            cx.warn(
                device.pos("driver"),
                &device.path.key("driver"),
                format!("not translated: GPU driver {other:?}; any vendor is accepted"),
            );
            None
        }
    });
    if let Some(ids) = device.get("device_ids") {
        let ids = strings(ids);
        cx.warn(
            device.pos("device_ids"),
            &device.path.key("device_ids"),
            format!("device ids {ids:?} translated as a count of {} GPU(s)", ids.len().max(1)),
        );
    }
    let count = device.get("device_ids").map_or(count, |ids| strings(ids).len().max(1) as u32);
    device.drop_key(cx, "options", "driver options are the provider's");
    device.finish(cx);
    a.resources.gpus = vec![Gpu { count, vendor, model: None, vram: None }];
}

/// `deploy.restart_policy`.
fn restart(mut policy: Obj<'_>, cx: &mut Cx) -> RestartPolicy {
    let condition = match policy.str("condition").as_deref() {
        Some("none") => Restart::Never,
        Some("on-failure") => Restart::OnFailure,
        Some("any") | None => Restart::Always,
        Some(other) => {
            cx.warn(
                policy.pos("condition"),
                &policy.path.key("condition"),
                format!("unknown condition {other:?} translated as `any`"),
            );
            Restart::Always
        }
    };
    let result = RestartPolicy {
        policy: condition,
        max_attempts: policy.str("max_attempts").and_then(|m| m.parse().ok()),
        delay: duration(policy.str("delay")),
        window: duration(policy.str("window")),
    };
    policy.finish(cx);
    result
}
