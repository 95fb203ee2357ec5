//! Steps for a node behind NAT: three network namespaces made by the scenario — a public
//! network with a relay node and node C, a router that masquerades the LAN behind it and
//! drops connections opened from outside, and node B on the LAN — and real `dms run`
//! processes in them (`ip netns exec`). All traffic stays inside these namespaces.

use std::time::Duration;

use cucumber::{given, then, when};
use serde_json::Value;

use super::daemon::{Daemon, Run, patience, run_in};
use super::steps_subnet::sh;
use super::world::DmsWorld;

const PASS: (&str, &str) = ("DMS_PASSPHRASE", "pw");
/// Public network: router 10.201.0.1, the relay 10.201.0.2, node C 10.201.0.3. LAN:
/// router 10.202.0.1, node B 10.202.0.2.
const PUBLIC_NODE: &str = "10.201.0.2";
const NODE_C: &str = "10.201.0.3";
const LAN_NODE: &str = "10.202.0.2";

/// The namespaces of one scenario (public, router, LAN); deleted on drop.
#[derive(Debug)]
pub struct NatLab {
    names: [String; 3],
}

impl NatLab {
    fn public(&self) -> &str {
        &self.names[0]
    }

    fn lan(&self) -> &str {
        &self.names[2]
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = std::process::Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Makes the three namespaces, the links between them and the router's rules: the LAN
/// is masqueraded, nothing from outside gets in, and from inside only the relay's
/// address is reached (a network that allows the relay only, so that C and B can meet
/// through it alone).
async fn lab() -> NatLab {
    let tag = format!("{:x}", std::process::id() % 0xffff);
    let names = [format!("dms-pub-{tag}"), format!("dms-rtr-{tag}"), format!("dms-lan-{tag}")];
    let [p, r, l] = &names;
    let lab = NatLab { names: names.clone() };
    sh(&format!(
        "set -e
         for n in {p} {r} {l}; do ip netns add $n; ip -n $n link set lo up; done
         ip link add np{tag} netns {p} type veth peer name rp{tag} netns {r}
         ip link add nl{tag} netns {l} type veth peer name rl{tag} netns {r}
         ip -n {p} addr add {PUBLIC_NODE}/24 dev np{tag}; ip -n {p} link set np{tag} up
         ip -n {p} addr add {NODE_C}/24 dev np{tag}
         ip -n {r} addr add 10.201.0.1/24 dev rp{tag}; ip -n {r} link set rp{tag} up
         ip -n {r} addr add 10.202.0.1/24 dev rl{tag}; ip -n {r} link set rl{tag} up
         ip -n {l} addr add {LAN_NODE}/24 dev nl{tag}; ip -n {l} link set nl{tag} up
         ip -n {l} route add default via 10.202.0.1
         ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1
         ip netns exec {r} iptables -t nat -A POSTROUTING -o rp{tag} -j MASQUERADE
         ip netns exec {r} iptables -A FORWARD -i rp{tag} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
         ip netns exec {r} iptables -A FORWARD -i rp{tag} -j DROP
         ip netns exec {r} iptables -A FORWARD -i rl{tag} -d {NODE_C} -j DROP"
    ))
    .await;
    lab
}

/// `dms` against the daemon `index` of this scenario, inside its namespace.
async fn on(world: &DmsWorld, netns: &str, index: usize, args: &[&str]) -> Run {
    let api = world.daemons[index].ready().api.to_string();
    let mut full = vec!["--api-addr", api.as_str()];
    full.extend_from_slice(args);
    run_in(Some(netns), &world.home(index), &full, &[PASS]).await
}

/// A fresh home with a node key, configured with `settings` (key, TOML value).
async fn home(world: &mut DmsWorld, settings: &[(&str, String)]) -> std::path::PathBuf {
    let home = world.add_home();
    for args in [&["key", "new"][..], &["key", "new", "user"], &["cap", "new", "user"]] {
        let out = run_in(None, &home, args, &[PASS]).await;
        assert!(out.status.success(), "dms {args:?}: {}", out.stderr);
    }
    for (key, value) in settings {
        let out = run_in(None, &home, &["config", "set", key, value], &[PASS]).await;
        assert!(out.status.success(), "config set {key}: {}", out.stderr);
    }
    home
}

async fn start(
    world: &mut DmsWorld,
    netns: &str,
    home: &std::path::Path,
    ip: &str,
    extra: &[&str],
) {
    let listen = format!("/ip4/{ip}/tcp/0");
    let mut daemon = Daemon::start_in(netns, home, &listen, "pw", extra);
    daemon.wait_ready_or_exit().await;
    assert!(daemon.exit.is_none(), "a node exited:\n{}", daemon.log());
    world.daemons.push(daemon);
    // Each node trusts its own user, who drives it through the CLI.
    let index = world.daemons.len() - 1;
    let user = run_in(None, home, &["key", "did", "user"], &[PASS]).await.stdout.trim().to_string();
    let out = on(world, netns, index, &["cap", "anchor", "-c", "dms", "--root", &user]).await;
    assert!(out.status.success(), "{}", out.stderr);
}

/// Daemon 0 is the relay, 1 is C (public), 2 is B (behind the router).
fn relay_addr(world: &DmsWorld) -> String {
    let ready = world.daemons[0].ready();
    ready.addrs.iter().find(|a| a.contains(PUBLIC_NODE)).cloned().expect("the relay's address")
}

fn peer_b(world: &DmsWorld) -> String {
    world.daemons[2].ready().peer_id.clone()
}

#[given(
    "a relay node and a node C on a public network, and a node B behind a masquerading router that keeps a reservation on the relay"
)]
async fn nat_setup(world: &mut DmsWorld) {
    let lab = lab().await;
    let relay = home(world, &[("network.relay_service", "true".into())]).await;
    start(world, lab.public(), &relay, PUBLIC_NODE, &[]).await;
    let relay_addr = relay_addr(world);
    let c = home(world, &[]).await;
    start(world, lab.public(), &c, NODE_C, &["--bootstrap", &relay_addr]).await;
    let b = home(world, &[("network.relays", format!("[\"{relay_addr}\"]"))]).await;
    start(world, lab.lan(), &b, LAN_NODE, &["--bootstrap", &relay_addr]).await;
    // B listens through the relay once its reservation is accepted.
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let out = on(world, lab.lan(), 2, &["peers", "self", "-o", "json"]).await;
        let me: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        let listen: Vec<&str> =
            me["listen"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if listen.iter().any(|a| a.contains("/p2p-circuit")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B has no relayed address: {me} {}",
            out.stderr
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    world.nat = Some(lab);
}

fn lab_of(world: &DmsWorld) -> &NatLab {
    world.nat.as_ref().expect("the NAT lab is up")
}

#[then("C has no route to B's own address")]
async fn no_route(world: &mut DmsWorld) {
    let public = lab_of(world).public().to_string();
    let out = tokio::process::Command::new("ip")
        .args(["-n", &public, "route", "get", LAN_NODE])
        .output()
        .await
        .expect("ip runs");
    assert!(!out.status.success(), "the public network routes to the LAN: {out:?}");
}

#[when("C connects to B through the relay")]
async fn connect_relayed(world: &mut DmsWorld) {
    let circuit = format!("{}/p2p-circuit/p2p/{}", relay_addr(world), peer_b(world));
    let public = lab_of(world).public().to_string();
    let out = on(world, &public, 1, &["peers", "connect", &circuit]).await;
    assert!(out.status.success(), "connect {circuit}: {}", out.stderr);
}

#[then("C reaches B: \"/public/hello\" on B answers")]
async fn hello_through(world: &mut DmsWorld) {
    let public = lab_of(world).public().to_string();
    let b = peer_b(world);
    let out =
        on(world, &public, 1, &["actor", "cmd", "--raw", "/public/hello", "--dest", &b]).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
}

#[then("\"dms peers list\" on C says B is reached through the relay, and the relay directly")]
async fn says_how(world: &mut DmsWorld) {
    let public = lab_of(world).public().to_string();
    let b = peer_b(world);
    let out = on(world, &public, 1, &["peers", "list", "-o", "json"]).await;
    let peers: Value = serde_json::from_str(&out.stdout).expect("peers JSON");
    let entry = peers
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["peer_id"] == b.as_str())
        .unwrap_or_else(|| panic!("B is not among C's peers: {peers:#}"));
    let addrs: Vec<&str> =
        entry["addrs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(entry["path"], "relayed", "{entry}");
    assert!(addrs.iter().all(|a| a.contains("/p2p-circuit")), "{entry}");
    let table = on(world, &public, 1, &["peers", "list"]).await.stdout;
    assert!(table.lines().any(|l| l.contains(&b) && l.contains("relayed")), "{table}");
    // The relay, reached straight, is `direct`.
    let relay = world.daemons[0].ready().peer_id.clone();
    assert!(table.lines().any(|l| l.contains(&relay) && l.contains("direct")), "{table}");
}
