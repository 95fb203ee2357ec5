//! Checks of one allocation: name, executor parameters, ports, volumes, health check,
//! environment and references to keys and scripts.

use std::collections::BTreeMap;

use super::{Checker, health_needs_port, parameter_owners, volume_needs_source};
use crate::model::{
    Allocation, AllocationType, Executor, HealthCheckKind, Restart, VM_OVERHEAD, VolumeKind,
};
use crate::units::ByteSize;

/// Largest memory an allocation may ask for: 64 TiB.
const MAX_RAM: ByteSize = ByteSize(64 << 40);
/// Largest disk: 1 PiB.
const MAX_DISK: ByteSize = ByteSize(1 << 50);
/// Largest memory per GPU: 1 TiB.
const MAX_VRAM: ByteSize = ByteSize(1 << 40);

impl Checker<'_> {
    pub(super) fn allocation(&mut self, name: &str, a: &Allocation) {
        let base = format!("allocations.{name}");
        check_dns_label(self, &base, name, "allocation name");
        if let Some(dns) = &a.dns_name {
            check_dns_label(self, &format!("{base}.dns_name"), dns, "DNS name");
        }
        self.execution(&base, a);
        self.transfers(&base, a);
        self.sizes(&base, a);
        let (wasm, vm) = (a.executor == Executor::Wasm, a.executor == Executor::Vm);
        if !a.ports.is_empty() && wasm {
            // WebAssembly modules get no network.
            self.error(
                &format!("{base}.ports"),
                format!("the {} executor cannot serve ports", a.executor.name()),
            )
            .expected("ports only on docker or vm allocations");
        }
        if self.ensemble.subnet.is_some() && (wasm || vm) {
            let why = if wasm {
                "a WebAssembly allocation cannot join the subnet (WASI preview 1 has no sockets)"
            } else {
                "a VM allocation cannot join the subnet yet (no TAP device is given to VMs)"
            };
            self.warning(
                &format!("{base}.executor"),
                format!("{why}: it gets no address, and no name resolves to it"),
            );
        }
        if !a.resources.gpus.is_empty() && (wasm || vm) {
            self.error(
                &format!("{base}.resources.gpus"),
                format!("the {} executor cannot use GPUs", a.executor.name()),
            )
            .expected("GPUs only on docker allocations");
        }
        let mut seen = BTreeMap::new();
        for (i, port) in a.ports.iter().enumerate() {
            let path = format!("{base}.ports[{i}]");
            if port.port == 0 {
                self.error(&format!("{path}.port"), "port 0 is not a port").expected("1-65535");
            } else if let Some(first) = seen.insert((port.port, port.protocol), i) {
                self.error(
                    &format!("{path}.port"),
                    format!("port {}/{} is declared twice", port.port, port.protocol.name()),
                )
                .found(format!("also at {base}.ports[{first}]"));
            }
        }
        let mut targets = BTreeMap::new();
        for (i, volume) in a.volumes.iter().enumerate() {
            let path = format!("{base}.volumes[{i}]");
            if !volume.target.starts_with('/') {
                self.error(&format!("{path}.target"), "a mount target must be an absolute path")
                    .found(format!("{:?}", volume.target));
            } else if let Some(first) = targets.insert(volume.target.clone(), i) {
                self.error(
                    &format!("{path}.target"),
                    format!("two volumes mount at {}", volume.target),
                )
                .found(format!("also at {base}.volumes[{first}]"));
            }
            if volume_needs_source(volume.kind) && volume.source.is_none() {
                let kind = if volume.kind == VolumeKind::Bind { "bind" } else { "volume" };
                self.error(&path, format!("a {kind} mount needs `source`"))
                    .expected(if kind == "bind" { "the host path" } else { "the volume's name" });
            }
            if volume.kind == VolumeKind::Tmpfs && volume.source.is_some() {
                self.error(&format!("{path}.source"), "a tmpfs mount has no source")
                    .suggest("remove `source`");
            }
        }
        for key in a.environment.keys() {
            let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
            if !valid {
                self.error(
                    &format!("{base}.environment.{key}"),
                    "not a valid environment variable name",
                )
                .found(format!("{key:?}"))
                .expected("letters, digits and `_`, not starting with a digit");
            }
        }
        if let Some(check) = &a.healthcheck {
            let path = format!("{base}.healthcheck");
            match check.kind {
                HealthCheckKind::Command if check.command.is_empty() => {
                    self.error(&path, "a command health check needs `command`")
                        .expected("e.g. [\"curl\", \"-f\", \"http://localhost/\"]");
                }
                kind if health_needs_port(kind) && check.port.is_none() => {
                    self.error(&path, "an http or tcp health check needs `port`")
                        .expected("one of the allocation's ports");
                }
                _ => {}
            }
            if let Some(port) = check.port
                && !a.ports.iter().any(|p| p.port == port)
            {
                self.warning(
                    &format!("{path}.port"),
                    format!(
                        "health check probes port {port}, which the allocation does not declare"
                    ),
                );
            }
        }
        for (i, key) in a.keys.iter().enumerate() {
            self.reference(
                &format!("{base}.keys[{i}]"),
                key,
                "key name",
                self.ensemble.keys.keys(),
            );
        }
        for (i, script) in a.provision.iter().enumerate() {
            self.reference(
                &format!("{base}.provision[{i}]"),
                script,
                "script",
                self.ensemble.scripts.keys(),
            );
        }
        if a.kind == AllocationType::Task
            && a.restart.as_ref().is_some_and(|r| r.policy == Restart::Always)
        {
            self.warning(
                &format!("{base}.restart.policy"),
                "a task restarted always never completes",
            )
            .suggest("use `on_failure` for tasks, or make the allocation a service");
        }
    }

    /// The parameters of the chosen executor are present, and no other executor's are.
    /// Sizes no machine could offer are refused here, with the limit, rather than
    /// left to find no provider.
    fn sizes(&mut self, base: &str, a: &Allocation) {
        let r = &a.resources;
        let mut sizes =
            vec![("ram".to_string(), Some(r.ram), MAX_RAM), ("disk".into(), r.disk, MAX_DISK)];
        for (i, gpu) in r.gpus.iter().enumerate() {
            sizes.push((format!("gpus[{i}].vram"), gpu.vram, MAX_VRAM));
        }
        for (field, size, max) in sizes {
            if let Some(size) = size.filter(|s| s.0 > max.0) {
                self.error(&format!("{base}.resources.{field}"), "more than any machine offers")
                    .found(size.to_string())
                    .expected(format!("at most {max}"));
            }
        }
    }

    fn execution(&mut self, base: &str, a: &Allocation) {
        let path = format!("{base}.execution");
        let x = &a.execution;
        let missing: Vec<&str> = match a.executor {
            Executor::Docker => {
                [("image", x.image.is_none())].into_iter().filter(|m| m.1).map(|m| m.0).collect()
            }
            Executor::Wasm => {
                [("module", x.module.is_none())].into_iter().filter(|m| m.1).map(|m| m.0).collect()
            }
            Executor::Vm => [
                ("kernel", x.kernel.is_none()),
                ("initrd` or `execution.rootfs", x.rootfs.is_none() && x.initrd.is_none()),
            ]
            .into_iter()
            .filter(|m| m.1)
            .map(|m| m.0)
            .collect(),
        };
        for param in missing {
            self.error(
                &path,
                format!("the {} executor needs `execution.{param}`", a.executor.name()),
            )
            .expected(match param {
                "image" => "an image reference such as nginx:1.27",
                "module" => "the path or URL of a .wasm module",
                _ => "a path or URL",
            });
        }
        for (param, owner, given) in parameter_owners(a) {
            if given && owner != a.executor {
                self.error(
                    &format!("{path}.{param}"),
                    format!(
                        "`{param}` is a {} parameter, but this allocation runs on {}",
                        owner.name(),
                        a.executor.name()
                    ),
                )
                .suggest(format!("remove `{param}`, or set `executor: {}`", owner.name()));
            }
        }
        if a.executor == Executor::Vm {
            self.vm(&path, a);
        }
        if let Some(image) = &x.image
            && let Err(problem) = check_image(image)
        {
            self.error(&format!("{path}.image"), problem)
                .found(format!("{image:?}"))
                .expected("an image reference such as nginx:1.27 or ghcr.io/org/app@sha256:…");
        }
    }
}

impl Checker<'_> {
    /// A VM's guest memory fits its allocation with the hypervisor's overhead, and its
    /// checksums name its images and are SHA-256.
    fn vm(&mut self, path: &str, a: &Allocation) {
        let x = &a.execution;
        let ram = a.resources.ram.0;
        let guest = x.memory.map_or(ram.saturating_sub(VM_OVERHEAD.0), |m| m.0);
        if guest + VM_OVERHEAD.0 > ram {
            let at = if x.memory.is_some() { format!("{path}.memory") } else { path.to_string() };
            self.error(
                &at,
                format!(
                    "the guest's memory and the hypervisor's {VM_OVERHEAD} do not fit the \
                     allocation's resources.ram"
                ),
            )
            .found(format!("{} + {VM_OVERHEAD} > {}", ByteSize(guest), a.resources.ram))
            .suggest(format!(
                "set resources.ram to {} or more, or give the guest less memory",
                ByteSize(guest + VM_OVERHEAD.0)
            ));
        }
        for (name, sum) in &x.checksums {
            let image = match name.as_str() {
                "kernel" => Some(&x.kernel),
                "initrd" => Some(&x.initrd),
                "rootfs" => Some(&x.rootfs),
                _ => None,
            };
            let at = format!("{path}.checksums.{name}");
            match image {
                None => {
                    self.error(&at, "a checksum of no image").expected("kernel, initrd or rootfs");
                }
                Some(None) => {
                    self.error(&at, format!("a checksum of `{name}`, which is not given"));
                }
                Some(Some(_)) if !is_sha256(sum) => {
                    self.error(&at, "not a SHA-256")
                        .found(format!("{sum:?}"))
                        .expected("sha256: and 64 hex digits");
                }
                Some(Some(_)) => {}
            }
        }
    }
}

/// `sha256:` (optional) and 64 hex digits.
fn is_sha256(sum: &str) -> bool {
    let hex = sum.strip_prefix("sha256:").unwrap_or(sum);
    hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// A DNS label: 1-63 lower-case letters, digits and `-`, not starting or ending with `-`.
pub(super) fn check_dns_label(c: &mut Checker<'_>, path: &str, name: &str, what: &str) {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        let fixed: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .collect::<String>()
            .trim_matches('-')
            .chars()
            .take(63)
            .collect();
        let mut pending = c
            .error(path, format!("invalid {what}"))
            .found(format!("{name:?}"))
            .expected("a DNS label: 1-63 lower-case letters, digits and `-`");
        if !fixed.is_empty() {
            pending = pending.suggest(format!("rename it `{fixed}`"));
        }
        drop(pending);
    }
}

/// Docker image references: no spaces, a lower-case repository, optional tag or digest.
pub(crate) fn check_image(image: &str) -> Result<(), String> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err("an image reference has no spaces and is not empty".into());
    }
    let (name, _digest) = image.split_once('@').unwrap_or((image, ""));
    let repository = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => {
            if tag.is_empty() || tag.len() > 128 {
                return Err("an image tag is 1-128 characters".into());
            }
            repo
        }
        _ => name,
    };
    let path = repository.split_once('/').map_or(repository, |(host, rest)| {
        if host.contains('.') || host.contains(':') || host == "localhost" {
            rest
        } else {
            repository
        }
    });
    if path.is_empty()
        || path.chars().any(|c| c.is_ascii_uppercase())
        || path.starts_with(['/', '-', '.'])
    {
        return Err(
            "an image repository is lower-case and does not start with `/`, `-` or `.`".into()
        );
    }
    Ok(())
}

/// An IPv4 CIDR inside 10.0.0.0/8.
pub(super) fn check_cidr(cidr: &str) -> Result<(), String> {
    crate::model::parse_cidr(cidr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images() {
        for good in [
            "nginx",
            "nginx:1.27",
            "ghcr.io/org/app@sha256:abc",
            "localhost:5000/x:dev",
            "library/redis:7-alpine",
        ] {
            assert_eq!(check_image(good), Ok(()), "{good}");
        }
        for bad in ["", "ng inx", "Nginx", "nginx:", "/x"] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(check_cidr("10.42.0.0/16"), Ok(()));
        assert!(check_cidr("192.168.0.0/16").is_err());
        assert!(check_cidr("10.42.0.1/16").is_err());
        assert!(check_cidr("10.0.0.0").is_err());
    }
}
