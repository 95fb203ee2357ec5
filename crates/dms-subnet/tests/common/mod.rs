//! What the subnet tests and the benchmark share: network namespaces made with
//! `unshare -n` (root), and providers on loopback.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use dms_subnet::{Config, Subnet, tun};
use libp2p_identity::Keypair;

/// A process holding a fresh network namespace; killed on drop.
pub struct Namespace(Child);

impl Namespace {
    pub fn new() -> Namespace {
        let mut child = Command::new("unshare")
            .args(["--net", "sh", "-c", "ip link set lo up && exec sleep 300"])
            .spawn()
            .expect("unshare --net (root needed)");
        // Ready once the shell has exec'd sleep (after bringing lo up).
        for _ in 0..200 {
            let command = std::fs::read_to_string(format!("/proc/{}/cmdline", child.id()));
            if command.is_ok_and(|c| c.starts_with("sleep")) {
                return Namespace(child);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("unshare made no namespace");
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn provider() -> (Subnet, String, SocketAddr) {
    assert!(tun::probe().is_ok(), "these tests need root and /dev/net/tun: {:?}", tun::probe());
    let key = Keypair::generate_ed25519();
    let config = Config { listen: "127.0.0.1:0".parse().expect("addr"), ..Config::default() };
    let subnet = Subnet::start(&key, &config).expect("endpoint");
    let at = subnet.local_addr().expect("bound");
    (subnet, key.public().to_peer_id().to_string(), at)
}
