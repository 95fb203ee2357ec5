//! Steps for a devnet on SSH hosts (`dms devnet up --hosts`): three "hosts", each a
//! network namespace running its own real `sshd` (Debian's openssh-server) that accepts
//! a key made for the scenario, on a bridge in a namespace of its own (bridged traffic in
//! this machine's namespace would meet Docker's FORWARD policy), which this machine
//! joins through one more link.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cucumber::{given, when};
use tempfile::TempDir;

use super::daemon::patience;
use super::steps_deploy::devnet_up_args;
use super::steps_subnet::sh;
use super::world::DmsWorld;

const HOSTS: usize = 3;
const SUBNET: &str = "10.204.0";

/// The hosts of one scenario: namespaces, the bridge, the sshd processes; all removed
/// on drop (after the world's `devnet down`).
#[derive(Debug)]
pub struct SshLab {
    tag: String,
    sshd: Vec<Child>,
    dir: TempDir,
}

impl SshLab {
    fn ns(&self, i: usize) -> String {
        format!("dms-ssh{}-{i}", self.tag)
    }

    fn hub(&self) -> String {
        format!("dms-ssh{}-hub", self.tag)
    }

    /// The hosts file the devnet is brought up with.
    fn hosts_file(&self) -> PathBuf {
        self.dir.path().join("hosts.toml")
    }
}

impl Drop for SshLab {
    fn drop(&mut self) {
        for child in &mut self.sshd {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace deletes its links, and so their peers here.
        for ns in (0..HOSTS).map(|i| self.ns(i)).chain([self.hub()]) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

fn sshd_config(lab: &SshLab, i: usize) -> String {
    let dir = lab.dir.path().display();
    format!(
        "Port 22\nListenAddress {SUBNET}.{}\nHostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         UsePAM no\nStrictModes no\nPidFile {dir}/sshd-{i}.pid\n",
        10 + i
    )
}

#[given("three SSH hosts in network namespaces, each running sshd that accepts a test key")]
async fn ssh_hosts(world: &mut DmsWorld) {
    let tag = format!("{:x}", std::process::id() % 0xfff);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lab = SshLab { tag: tag.clone(), sshd: Vec::new(), dir };
    let d = lab.dir.path().display().to_string();
    let hub = lab.hub();
    sh(&format!(
        "set -e
         ssh-keygen -q -t ed25519 -N '' -f {d}/client
         ssh-keygen -q -t ed25519 -N '' -f {d}/host_key
         cp {d}/client.pub {d}/authorized_keys
         mkdir -p /run/sshd
         ip netns add {hub}
         ip -n {hub} link add br0 type bridge
         ip -n {hub} link set br0 up
         ip link add dsr{tag} type veth peer name uplink netns {hub}
         ip -n {hub} link set uplink master br0 up
         ip addr add {SUBNET}.1/24 dev dsr{tag}
         ip link set dsr{tag} up"
    ))
    .await;
    for i in 0..HOSTS {
        let ns = lab.ns(i);
        sh(&format!(
            "set -e
             ip netns add {ns}
             ip -n {hub} link add h{i} type veth peer name eth0 netns {ns}
             ip -n {hub} link set h{i} master br0 up
             ip -n {ns} addr add {SUBNET}.{addr}/24 dev eth0
             ip -n {ns} link set eth0 up
             ip -n {ns} link set lo up",
            addr = 10 + i
        ))
        .await;
        let config = lab.dir.path().join(format!("sshd-{i}.conf"));
        std::fs::write(&config, sshd_config(&lab, i)).expect("sshd config");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (apt-get install openssh-server; .ci/run does)");
        lab.sshd.push(child);
    }
    for i in 0..HOSTS {
        let address = format!("{SUBNET}.{}:22", 10 + i);
        let deadline = tokio::time::Instant::now() + patience();
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "sshd on {address} does not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut hosts = format!(
        "[ssh]\nuser = \"root\"\nidentity = \"{d}/client\"\n\
         options = [\"StrictHostKeyChecking=no\", \"UserKnownHostsFile=/dev/null\", \"LogLevel=ERROR\"]\n"
    );
    for i in 0..HOSTS {
        // Each host's work directory is in the scenario's folder, removed with it.
        hosts.push_str(&format!(
            "\n[[host]]\naddress = \"{SUBNET}.{}\"\nlocation = \"site-{i}\"\nworkdir = \"{d}/host-{i}\"\n",
            10 + i
        ));
    }
    std::fs::write(lab.hosts_file(), hosts).expect("hosts.toml");
    world.ssh = Some(lab);
}

#[when("the devnet user brings up a devnet on those hosts")]
async fn up_on_hosts(world: &mut DmsWorld) {
    let file = world.ssh.as_ref().expect("SSH hosts").hosts_file().display().to_string();
    devnet_up_args(world, HOSTS, &["--hosts", &file], &[]).await;
    let nodes =
        world.devnet.as_ref().and_then(|d| d["nodes"].as_array()).cloned().unwrap_or_default();
    for (i, node) in nodes.iter().enumerate() {
        let address = node["remote"]["address"].as_str().unwrap_or_default();
        assert_eq!(address, format!("{SUBNET}.{}", 10 + i), "node {i} is not on its host: {node}");
    }
}
