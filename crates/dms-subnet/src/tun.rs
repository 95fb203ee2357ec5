//! The interface an allocation sees: a TUN device created inside the network namespace
//! of a running process (the allocation's sandbox), with its address and MTU set and the
//! link up. The device's file descriptor stays with dms and holds the namespace: the
//! device, and the namespace once its processes are gone, disappear when the
//! descriptor closes (the allocation is detached, or dms exits). Nothing is made on the
//! host: no host interface, route or firewall rule.
//!
//! Entering a namespace changes the calling thread, so it happens on a short-lived OS
//! thread of its own, never on a runtime worker; the ioctls that configure the device
//! run on that thread too, inside the namespace.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;

use nix::sched::{CloneFlags, setns};
pub use tun_rs::AsyncDevice as Device;
use tun_rs::DeviceBuilder;

/// The interface's name inside every allocation.
pub const DEVICE: &str = "dms0";

/// What the device inside an allocation is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The allocation's address.
    pub address: Ipv4Addr,
    /// The prefix length of the deployment's range (the connected route).
    pub prefix: u8,
    /// The MTU.
    pub mtu: u16,
}

/// Creates [`DEVICE`] inside the network namespace of process `pid`, configured as
/// `interface` and up; its packets are read and written through the returned device.
pub async fn create_in(pid: u32, interface: Interface) -> io::Result<Device> {
    let device = in_namespace(pid, move || {
        DeviceBuilder::new()
            .name(DEVICE)
            .ipv4(interface.address, interface.prefix, None)
            .mtu(interface.mtu)
            // Whole TCP segments up to 64 KiB per read, split by the reader (GSO);
            // packets merged on write (GRO): far fewer system calls per byte.
            .offload(true)
            .build_sync()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create {DEVICE}: {e}")))
    })
    .await??;
    Device::new(device)
}

/// Runs `work` on a new OS thread inside the network namespace of process `pid`. What it
/// creates there (sockets, devices) stays in that namespace wherever it is used later.
pub async fn in_namespace<T: Send + 'static>(
    pid: u32,
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("dms-subnet-netns".into()).spawn(move || {
        // The receiver may be gone (the caller was cancelled): what `work` made is then
        // dropped here.
        let _ = done.send(enter(pid).map(|()| work()));
    })?;
    result.await.map_err(|_| io::Error::other("the namespace thread panicked"))?
}

fn enter(pid: u32) -> io::Result<()> {
    let namespace = File::open(format!("/proc/{pid}/ns/net")).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot open the network namespace of process {pid}: {e}"))
    })?;
    setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(|e| {
        io::Error::other(format!(
            "cannot enter the network namespace of process {pid}: {e} (dms needs CAP_SYS_ADMIN \
             and CAP_NET_ADMIN, i.e. root, for subnets)"
        ))
    })
}

/// Why this machine cannot give allocations an interface, if it cannot: the TUN device
/// file is missing or the process lacks CAP_NET_ADMIN (checked from
/// `/proc/self/status`, without creating anything).
pub fn probe() -> Result<(), String> {
    if std::fs::metadata("/dev/net/tun").is_err() {
        return Err("/dev/net/tun is missing: load the tun module (`modprobe tun`)".into());
    }
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or("/proc/self/status has no CapEff line")?;
    const NET_ADMIN: u64 = 1 << 12;
    const SYS_ADMIN: u64 = 1 << 21;
    if effective & NET_ADMIN == 0 || effective & SYS_ADMIN == 0 {
        return Err("dms lacks CAP_NET_ADMIN and CAP_SYS_ADMIN (run it as root) to create \
                    interfaces inside allocations"
            .into());
    }
    Ok(())
}
