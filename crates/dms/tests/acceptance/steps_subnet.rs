//! Steps for deployments' subnets: a compose file translated with `dms translate`, its
//! services on two devnet providers reaching each other by name, a second deployment
//! that cannot, a node port map, and what remains after shutdown (nothing).

use std::time::{Duration, Instant};

use cucumber::{given, then, when};

use super::steps_deploy::{IMAGE, configure, deploy, devnet_cli, dms, peer, status, write};
use super::world::DmsWorld;

/// A db service answering every connection on 5432 with a line, published at `public`;
/// a web task that reads it by name (retrying while the db starts).
fn compose(public: u16) -> String {
    format!(
        "services:\n  db:\n    image: {IMAGE}\n    command: [sh, -c, \"while true; do echo 'rows from db' | nc -l -p 5432; done\"]\n    \
         ports: [\"{public}:5432\"]\n    deploy: {{resources: {{limits: {{cpus: '0.25', memory: 64M}}}}}}\n  \
         web:\n    image: {IMAGE}\n    restart: \"no\"\n    depends_on: [db]\n    \
         command: [sh, -c, \"for i in 1 2 3 4 5 6 7 8 9 10; do nc db.internal 5432 && exit 0; sleep 1; done; exit 1\"]\n    \
         deploy: {{resources: {{limits: {{cpus: '0.25', memory: 64M}}}}}}\n"
    )
}

#[when(
    "the devnet user translates a compose file with a db service published at that port and a web task reading db.internal:5432"
)]
async fn translate(world: &mut DmsWorld) {
    let public = world.public_port.expect("a public port was chosen");
    let file = write(world, "compose.yml", &compose(public));
    let out = dms(world, &["translate", &file]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("subnet: {}"), "a compose project gets a subnet:\n{}", out.stdout);
    world.last = Some(out);
}

#[when(regex = r"^deploys it with db pinned to node (\d+) and web to node (\d+)$")]
async fn deploy_pinned(world: &mut DmsWorld, db: usize, web: usize) {
    // What a user does with the translation: one machine per service.
    let mut ensemble = dms_ensemble::load(&world.last().stdout).expect("it loads").ensemble;
    let main = ensemble.nodes.remove("main").expect("compose services share node main");
    let on = |allocation: &str, index: usize| {
        let mut node = main.clone();
        node.allocations = vec![allocation.to_string()];
        node.ports.retain(|p| p.allocation == allocation);
        node.peer = Some(peer(world, index));
        node
    };
    ensemble.nodes.insert("dbnode".into(), on("db", db));
    ensemble.nodes.insert("webnode".into(), on("web", web));
    let file = write(world, "subnet.yaml", &dms_ensemble::to_yaml(&ensemble));
    deploy(world, &file, &[]).await;
}

/// The output lines of `allocation`, waiting until it has some.
async fn output_of(world: &DmsWorld, allocation: &str) -> String {
    let id = world.deployment.clone().expect("a deployment");
    let prefix = format!("{allocation} | ");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = devnet_cli(world, 0, &["deployments", "logs", &id]).await;
        let lines: Vec<&str> =
            out.stdout.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect();
        if !lines.is_empty() {
            return lines.join("\n");
        }
        assert!(Instant::now() < deadline, "no output of {allocation}:\n{}", out.stdout);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[then(regex = r#"^the output of (\w+) is "([^"]+)"$"#)]
async fn output_is(world: &mut DmsWorld, allocation: String, text: String) {
    assert_eq!(output_of(world, &allocation).await, text);
}

#[then("\"dms deployments info\" shows the subnet addresses of db and web")]
async fn info_addresses(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "info", &id]).await;
    for (name, address) in [("db", "10.42.0.2/16"), ("web", "10.42.0.3/16")] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(name) && l.ends_with(address)),
            "{name} at {address} not in:\n{}",
            out.stdout
        );
    }
}

#[then(regex = r#"^a connection to that public port on this machine reads "([^"]+)"$"#)]
async fn public_port_reads(world: &mut DmsWorld, text: String) {
    use tokio::io::AsyncReadExt as _;
    let public = world.public_port.expect("a public port");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut read = String::new();
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", public)).await {
            let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_string(&mut read))
                .await;
        }
        if read.contains(&text) {
            return;
        }
        assert!(Instant::now() < deadline, "port {public} read {read:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[when(regex = r"^a second deployment on node (\d+) tries to reach db's subnet address$")]
async fn probe(world: &mut DmsWorld, node: usize) {
    let first = world.deployment.clone();
    // Its range is the first one's (the default): 10.42.0.2 is its own `peer` there, so
    // the attempt stays on its own network (no traffic leaves this machine's namespaces).
    let script = "if nc -w 3 10.42.0.2 5432 </dev/null | grep -q rows; then echo reached; \
                  else echo unreachable; fi";
    let text = format!(
        "version: V1\nallocations:\n  probe:\n    type: task\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    \
         execution: {{image: \"{IMAGE}\", command: [sh, -c, \"{script}\"]}}\n  \
         peer:\n    type: task\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    \
         execution: {{image: \"{IMAGE}\", command: [\"true\"]}}\n\
         nodes:\n  only:\n    allocations: [probe, peer]\n    peer: {}\nsubnet: {{}}\n",
        peer(world, node)
    );
    let file = write(world, "probe.yaml", &text);
    deploy(world, &file, &[]).await;
    assert!(world.last().status.success(), "{}", world.last().stderr);
    world.endpoint = Some(output_of(world, "probe").await);
    world.deployment = first;
}

#[then("it could not, and neither can this machine")]
async fn unreachable(world: &mut DmsWorld) {
    assert_eq!(world.endpoint.as_deref(), Some("unreachable"));
    // This machine has no address on any subnet and no route to one but its default
    // route (no traffic is sent to check: test traffic stays inside this machine).
    let addresses = sh("ip -o addr show").await;
    assert!(!addresses.contains("10.42."), "this machine has a subnet address:\n{addresses}");
    let route = sh("ip -o route get 10.42.0.2").await;
    assert!(!route.contains("dms"), "this machine routes to the subnet: {route}");
}

#[then("no container, TUN device or firewall rule made for it remains")]
async fn nothing_remains(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = status(world).await["state"].as_str().unwrap_or("").to_string();
        let containers = sh(&format!("docker ps -aq --filter label=dms.deployment={id}")).await;
        if containers.trim().is_empty() && state != "running" {
            break;
        }
        assert!(Instant::now() < deadline, "left: {containers} (state {state})");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let links = sh("ip -o link show").await;
    assert!(!links.contains("dms0"), "a dms interface is on this machine:\n{links}");
    let rules = sh("iptables-save 2>/dev/null || true").await;
    assert!(!rules.to_lowercase().contains("dms"), "a dms firewall rule remains:\n{rules}");
}

/// Runs `script` with `sh -c`; its standard output (a failure fails the step).
pub(super) async fn sh(script: &str) -> String {
    let out = tokio::process::Command::new("sh").args(["-c", script]).output().await;
    let out = out.expect("sh runs");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[given(regex = r"^node (\d+) has subnets disabled$")]
async fn subnets_disabled(world: &mut DmsWorld, node: usize) {
    configure(world, node, "subnet.enabled", "false").await;
    super::steps_deploy::wait_for_peers(world).await;
}

#[when(regex = r"^the devnet user plans a subnet deployment pinned to node (\d+)$")]
async fn plan_pinned(world: &mut DmsWorld, node: usize) {
    let text = format!(
        "version: V1\nallocations:\n  a:\n    type: task\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    \
         execution: {{image: \"{IMAGE}\", command: [\"true\"]}}\n\
         nodes:\n  only:\n    allocations: [a]\n    peer: {}\nsubnet: {{}}\n",
        peer(world, node)
    );
    let file = write(world, "plan-subnet.yaml", &text);
    deploy(world, &file, &["--plan"]).await;
}

#[when(
    regex = r#"^the devnet user deploys a db service "work" named db and a web service on node 0 reading db.internal$"#
)]
async fn deploy_moving_db(world: &mut DmsWorld) {
    // Node 0 (1 core) keeps 0.25 free beside web: too little for the db, which therefore
    // runs, and moves, elsewhere.
    let db = "while true; do echo rows from $(hostname) | nc -l -p 5432; done";
    let web = "while true; do nc -w 2 db.internal 5432; sleep 0.3; done";
    let text = format!(
        "version: V1\nallocations:\n  work:\n    type: service\n    executor: docker\n    \
         dns_name: db\n    resources: {{cpu: {{cores: 0.5}}, ram: 64MiB}}\n    \
         execution: {{image: \"{IMAGE}\", command: [sh, -c, \"{db}\"]}}\n  \
         web:\n    type: service\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.75}}, ram: 64MiB}}\n    \
         execution: {{image: \"{IMAGE}\", command: [sh, -c, \"{web}\"]}}\n\
         nodes:\n  only: {{allocations: [work]}}\n  front: {{allocations: [web], peer: {}}}\n\
         subnet: {{cidr: 10.77.0.0/24}}\n",
        peer(world, 0)
    );
    let file = write(world, "moving-db.yaml", &text);
    deploy(world, &file, &[]).await;
    assert!(world.last().status.success(), "{}\n{}", world.last().stdout, world.last().stderr);
}

/// The hosts of the db copies web has read from so far, oldest first.
async fn copies_read(world: &DmsWorld) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for line in output_of(world, "web").await.lines() {
        if let Some(host) = line.strip_prefix("rows from ")
            && hosts.last().is_none_or(|h| h != host)
        {
            hosts.push(host.to_string());
        }
    }
    hosts
}

#[then("the web service reads rows from one copy of the db")]
async fn reads_first_copy(world: &mut DmsWorld) {
    let hosts = copies_read(world).await;
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    world.endpoint = hosts.into_iter().next();
}

#[then("the web service reads rows from another copy of the db, at the same address")]
async fn reads_second_copy(world: &mut DmsWorld) {
    let first = world.endpoint.clone().expect("the first copy");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hosts = copies_read(world).await;
        if hosts.last().is_some_and(|h| *h != first) {
            break;
        }
        assert!(Instant::now() < deadline, "web read only from {hosts:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "manifest", &id]).await;
    let manifest: serde_json::Value = serde_json::from_str(&out.stdout).expect("manifest JSON");
    let plan = &manifest["subnet"];
    assert_eq!(plan["addresses"]["work"], "10.77.0.3", "the address is kept: {plan}");
    assert!(plan["version"].as_u64() >= Some(2), "the routes were sent again: {plan}");
}

#[then("one copy of the db and its sandbox remain")]
async fn one_copy_left(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let filter = format!("docker ps -q --filter label=dms.allocation={id}.work");
        let running = sh(&filter).await.lines().filter(|l| !l.trim().is_empty()).count();
        if running == 2 {
            return;
        }
        assert!(Instant::now() < deadline, "{running} containers of work run");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
