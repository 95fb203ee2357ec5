//! The isolated devnet's network and faults (`dms devnet up --isolated`, `dms devnet
//! fault ...`): each node in its own network namespace with its own address, joined by
//! a bridge that lives in a namespace of the devnet's own, so nothing of the host's
//! network is touched; faults are packet filters and token buckets inside the nodes'
//! namespaces; CPU and memory limits are cgroups.
//!
//! ```text
//!   netns dms-<tag>-hub:   br0 ── n0 ── n1 ── n2          (veth ends, no addresses)
//!                                │     │     │
//!   netns dms-<tag>-n<i>:      eth0  eth0  eth0   10.99.0.(10+i)/24, lo
//! ```
//!
//! A partition of A and B drops, in both namespaces, every packet between their
//! addresses (an iptables chain `DMS-FAULT`, jumped to from INPUT and OUTPUT): open
//! connections go silent, as on a cut link, and the nodes notice by their pings.
//! `slow` puts a token bucket (`tc tbf`) on a node's link. `heal` undoes both. Everything
//! made is named from the devnet's tag, kept in its state file, and removed by `down`,
//! even after a crash of the command that made it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// The subnet of every isolated devnet (each devnet's is its own: it lives only inside
/// that devnet's namespaces).
const SUBNET_PREFIX: &str = "10.99.0";
/// The chain the faults' rules go into.
const CHAIN: &str = "DMS-FAULT";

/// The isolated network of one devnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Isolation {
    /// Names everything this devnet makes: namespaces, cgroups.
    pub tag: String,
    /// Per node, its CPU limit in cores (none: unlimited).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Per node, its memory limit in bytes (none: unlimited).
    #[serde(default)]
    pub memory: Option<u64>,
}

/// Runs `program args...`, failing with the command and what it printed.
fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (apt-get install iproute2 iptables)"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A short name for the devnet of `dir` (six hex digits), for what it makes elsewhere.
pub fn tag(dir: &Path) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    format!("{:06x}", hasher.finish() & 0xff_ffff)
}

impl Isolation {
    /// A devnet's isolation, named from its directory.
    pub fn new(dir: &Path, cpus: Option<f64>, memory: Option<u64>) -> Isolation {
        Isolation { tag: tag(dir), cpus, memory }
    }

    /// Whether this machine can make namespaces: root, and `ip` at hand.
    pub fn check_host() -> anyhow::Result<()> {
        if !rustix::process::geteuid().is_root() {
            bail!(
                "--isolated puts each node in a network namespace, which needs root: run it \
                 as root (or use a plain devnet, on loopback, without --isolated)"
            );
        }
        sh("ip", &["-V"])
    }

    fn hub(&self) -> String {
        format!("dms-{}-hub", self.tag)
    }

    /// The namespace of node `i`.
    pub fn netns(&self, i: usize) -> String {
        format!("dms-{}-n{i}", self.tag)
    }

    /// The address of node `i`.
    pub fn address(i: usize) -> String {
        format!("{SUBNET_PREFIX}.{}", 10 + i)
    }

    /// Makes the hub namespace with its bridge (removing leftovers of a crashed run).
    pub fn create_hub(&self) -> anyhow::Result<()> {
        let hub = self.hub();
        let _ = sh("ip", &["netns", "del", &hub]);
        sh("ip", &["netns", "add", &hub])?;
        sh("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        sh("ip", &["-n", &hub, "link", "set", "br0", "up"])
    }

    /// Makes node `i`'s namespace, its link into the bridge and its address, and the
    /// empty fault chain its filters jump to.
    pub fn add_node(&self, i: usize) -> anyhow::Result<()> {
        let (hub, ns) = (self.hub(), self.netns(i));
        let _ = sh("ip", &["netns", "del", &ns]);
        sh("ip", &["netns", "add", &ns])?;
        let port = format!("n{i}");
        sh(
            "ip",
            &[
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ],
        )?;
        sh("ip", &["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
        sh("ip", &["-n", &ns, "addr", "add", &format!("{}/24", Self::address(i)), "dev", "eth0"])?;
        sh("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        let ipt = |args: &[&str]| {
            let mut full = vec!["netns", "exec", &ns, "iptables", "-w"];
            full.extend_from_slice(args);
            sh("ip", &full)
        };
        ipt(&["-N", CHAIN])?;
        ipt(&["-A", "INPUT", "-j", CHAIN])?;
        ipt(&["-A", "OUTPUT", "-j", CHAIN])
    }

    /// Drops every packet between nodes `a` and `b`, in both of their namespaces.
    pub fn partition(&self, a: usize, b: usize) -> anyhow::Result<()> {
        if a == b {
            bail!("a partition needs two different nodes, not node {a} twice");
        }
        for (me, other) in [(a, b), (b, a)] {
            let ns = self.netns(me);
            let peer = Self::address(other);
            for dir in ["-s", "-d"] {
                sh(
                    "ip",
                    &[
                        "netns", "exec", &ns, "iptables", "-w", "-A", CHAIN, dir, &peer, "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Limits node `i`'s link to `rate` (tc's units: `1mbit`, `500kbit`).
    pub fn slow(&self, i: usize, rate: &str) -> anyhow::Result<()> {
        let ns = self.netns(i);
        sh(
            "ip",
            &[
                "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                "rate", rate, "burst", "32kbit", "latency", "400ms",
            ],
        )
        .with_context(|| format!("{rate:?}: a rate in tc's units, e.g. 1mbit or 500kbit"))
    }

    /// Removes every partition and slow link of nodes `0..nodes`.
    pub fn heal(&self, nodes: usize) -> anyhow::Result<()> {
        for i in 0..nodes {
            let ns = self.netns(i);
            sh("ip", &["netns", "exec", &ns, "iptables", "-w", "-F", CHAIN])?;
            // No qdisc to delete is fine: the link was not slowed.
            let _ = sh("ip", &["netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root"]);
        }
        Ok(())
    }

    /// Puts process `pid` (node `i`) under this devnet's CPU and memory limits.
    pub fn limit(&self, i: usize, pid: u32) -> anyhow::Result<()> {
        if self.cpus.is_none() && self.memory.is_none() {
            return Ok(());
        }
        let name = format!("dms-devnet-{}-n{i}", self.tag);
        let root = Path::new("/sys/fs/cgroup");
        let write = |dir: &Path, file: &str, value: String| -> anyhow::Result<()> {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
            std::fs::write(dir.join(file), &value)
                .with_context(|| format!("cannot write {value} to {}", dir.join(file).display()))
        };
        let v2 = root.join("cgroup.controllers").exists();
        if let Some(cpus) = self.cpus {
            let quota = (cpus * 100_000.0).round().max(1000.0) as u64;
            if v2 {
                write(&root.join(&name), "cpu.max", format!("{quota} 100000"))?;
            } else {
                let dir = root.join("cpu").join(&name);
                write(&dir, "cpu.cfs_period_us", "100000".into())?;
                write(&dir, "cpu.cfs_quota_us", quota.to_string())?;
                write(&dir, "cgroup.procs", pid.to_string())?;
            }
        }
        if let Some(memory) = self.memory {
            if v2 {
                write(&root.join(&name), "memory.max", memory.to_string())?;
            } else {
                let dir = root.join("memory").join(&name);
                write(&dir, "memory.limit_in_bytes", memory.to_string())?;
                write(&dir, "cgroup.procs", pid.to_string())?;
            }
        }
        if v2 {
            write(&root.join(&name), "cgroup.procs", pid.to_string())?;
        }
        Ok(())
    }

    /// Removes the namespaces and cgroups of nodes `0..nodes` and the hub. Best effort:
    /// what is already gone is skipped; the first error is returned after trying all.
    pub fn destroy(&self, nodes: usize) -> anyhow::Result<()> {
        let mut first = None;
        for i in 0..nodes {
            let name = format!("dms-devnet-{}-n{i}", self.tag);
            for dir in ["", "cpu", "memory"] {
                let path = Path::new("/sys/fs/cgroup").join(dir).join(&name);
                match std::fs::remove_dir(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        first.get_or_insert(anyhow::anyhow!(
                            "cannot remove the cgroup {}: {e}",
                            path.display()
                        ));
                    }
                    _ => {}
                }
            }
            if let Err(e) = sh("ip", &["netns", "del", &self.netns(i)])
                && Path::new("/run/netns").join(self.netns(i)).exists()
            {
                first.get_or_insert(e);
            }
        }
        if let Err(e) = sh("ip", &["netns", "del", &self.hub()])
            && Path::new("/run/netns").join(self.hub()).exists()
        {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_differ_between_devnets() {
        let a = Isolation::new(Path::new("/tmp/a/devnet"), None, None);
        let b = Isolation::new(Path::new("/tmp/b/devnet"), None, None);
        assert_ne!(a.tag, b.tag);
        assert_eq!(a.tag.len(), 6);
        // Namespace names are files; veth names (n<i>, eth0) must stay under 16 bytes.
        assert!(a.netns(15).len() < 32);
        assert_eq!(Isolation::address(0), "10.99.0.10");
    }
}
