//! Steps for supervision on a devnet: providers and orchestrators killed with SIGKILL
//! (`dms devnet stop --kill`) and started again, a Docker service followed through it.

use std::time::{Duration, Instant};

use cucumber::{then, when};
use serde_json::Value;

use super::daemon::patience;
use super::steps_deploy::{IMAGE, deploy, devnet_cli, dms, peer, refresh_devnet, status, write};
use super::world::DmsWorld;

/// The service's allocation, as `dms deployments status -o json` shows it.
async fn work(world: &DmsWorld) -> Value {
    status(world).await["allocations"]["work"].clone()
}

pub(super) fn index_of(world: &DmsWorld, peer_id: &str) -> usize {
    let nodes = world.devnet.as_ref().expect("devnet")["nodes"].as_array().cloned();
    nodes
        .unwrap_or_default()
        .iter()
        .position(|n| n["peer_id"] == peer_id)
        .unwrap_or_else(|| panic!("{peer_id} is not a devnet node"))
}

async fn stop(world: &mut DmsWorld, index: usize) {
    let peer_now = work(world).await["peer"].as_str().unwrap_or_default().to_string();
    let out = dms(world, &["devnet", "stop", "--node", &index.to_string(), "--kill"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    world.stopped = Some((index, peer_now));
}

async fn start(world: &mut DmsWorld) {
    let (index, _) = world.stopped.clone().expect("a stopped node");
    let out = dms(world, &["devnet", "start", "--node", &index.to_string()]).await;
    assert!(out.status.success(), "{}", out.stderr);
    refresh_devnet(world).await;
}

/// Containers of the deployment under test, running now, on the one Docker engine
/// every devnet node shares.
async fn containers(world: &DmsWorld) -> usize {
    let id = world.deployment.clone().expect("a deployment");
    let out = tokio::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=dms.deployment={id}")])
        .output()
        .await
        .expect("docker runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}

/// A Docker service on node `only`, never on node 0, with `redundancy` standbys.
async fn deploy_docker_service(world: &mut DmsWorld, redundancy: u32) {
    let text = format!(
        "version: V1\nallocations:\n  work:\n    type: service\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {{image: \"{IMAGE}\", \
         command: [sleep, \"3600\"]}}\nnodes:\n  only: {{allocations: [work], redundancy: \
         {redundancy}}}\nexclude_peers: [{}]\n",
        peer(world, 0)
    );
    let file = write(world, "docker-service.yaml", &text);
    deploy(world, &file, &[]).await;
}

#[when("the devnet user deploys a Docker service that avoids node 0")]
async fn deploy_plain_service(world: &mut DmsWorld) {
    deploy_docker_service(world, 0).await;
}

#[when("the devnet user deploys a Docker service that avoids node 0, with one standby")]
async fn deploy_standing_by(world: &mut DmsWorld) {
    deploy_docker_service(world, 1).await;
}

#[then("a standby for it is kept on the third node")]
async fn standby_kept(world: &mut DmsWorld) {
    let started = Instant::now();
    let standby = loop {
        let status = status(world).await;
        if let Some(peer) = status["standby"]["only"][0]["provider"]["peer"].as_str() {
            break peer.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no standby: {status:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let primary = work(world).await["peer"].as_str().unwrap_or_default().to_string();
    assert_ne!(standby, primary);
    assert_ne!(standby, peer(world, 0), "node 0 is excluded");
    let index = index_of(world, &standby);
    let out = devnet_cli(world, index, &["onboard", "status", "-o", "json"]).await;
    let accounts: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    assert_eq!(accounts["committed"]["cpu_millicores"], 250, "{accounts:#}");
    world.standby = Some(standby);
}

#[then("the service runs where its standby was")]
async fn runs_on_standby(world: &mut DmsWorld) {
    let view = work(world).await;
    assert_eq!(view["peer"].as_str(), world.standby.as_deref(), "{view:#}");
}

#[when("the provider of the service is killed")]
async fn kill_provider(world: &mut DmsWorld) {
    let provider = work(world).await["peer"].as_str().expect("placed").to_string();
    let index = index_of(world, &provider);
    assert_ne!(index, 0, "the service avoids the orchestrating node");
    stop(world, index).await;
}

/// How soon is measured by `dms devnet cli bench failover`, not here: this waits as
/// long as any wait may ([`patience`], beyond `deployment.lost_after` and a placement).
#[then("the service soon runs on another node")]
async fn runs_elsewhere(world: &mut DmsWorld) {
    let (_, lost) = world.stopped.clone().expect("a stopped node");
    let started = Instant::now();
    loop {
        let view = work(world).await;
        let moved = view["status"]["state"] == "running"
            && view["peer"].as_str().is_some_and(|p| !p.is_empty() && p != lost);
        if moved {
            break;
        }
        assert!(
            started.elapsed() < patience(),
            "not running elsewhere after {:?}: {view:#}",
            patience()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("running elsewhere {:.1} s after the kill", started.elapsed().as_secs_f64());
}

#[then("the service is at attempt 2, its first copy given up on the killed node")]
async fn lineage(world: &mut DmsWorld) {
    let (_, lost) = world.stopped.clone().expect("a stopped node");
    let view = work(world).await;
    let lineage = view["lineage"].as_array().cloned().unwrap_or_default();
    assert_eq!(lineage.len(), 1, "{view:#}");
    assert_eq!(lineage[0]["peer"], lost.as_str(), "{view:#}");
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "status", &id]).await;
    assert!(out.stdout.contains("work attempt 1 on"), "{}", out.stdout);
}

#[when("the killed node is started again")]
async fn start_again(world: &mut DmsWorld) {
    start(world).await;
}

#[then("its stale copy is stopped, its resources are free, and one copy of the service runs")]
async fn one_copy(world: &mut DmsWorld) {
    let (index, _) = world.stopped.clone().expect("a stopped node");
    let started = Instant::now();
    loop {
        let out = devnet_cli(world, index, &["onboard", "status", "-o", "json"]).await;
        let status: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        let allocated = status["allocated"]["cpu_millicores"].as_u64();
        let copies = containers(world).await;
        if out.status.success() && allocated == Some(0) && copies == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node {index} still holds {allocated:?} millicores; {copies} containers run"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let view = work(world).await;
    assert_eq!(view["status"]["state"], "running", "{view:#}");
}

#[when(regex = r"^node 0 is killed, kept down for (\d+) seconds and started again$")]
async fn orchestrator_down(world: &mut DmsWorld, seconds: u64) {
    stop(world, 0).await;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    start(world).await;
}

#[then("the service still runs on its first provider, at attempt 1, after a while")]
async fn still_first(world: &mut DmsWorld) {
    let (_, first) = world.stopped.clone().expect("a stopped node");
    // Past the restart grace and lost_after: nothing may have been declared lost.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let view = work(world).await;
    assert_eq!(view["status"]["state"], "running", "{view:#}");
    assert_eq!(view["peer"], first.as_str(), "{view:#}");
    assert!(view["lineage"].as_array().is_none_or(Vec::is_empty), "{view:#}");
    assert_eq!(containers(world).await, 1);
}

#[when(
    regex = r"^the devnet user deploys a Docker web service whose health check answers 500 and may restart (\d+) times$"
)]
async fn deploy_unhealthy(world: &mut DmsWorld, restarts: u32) {
    // busybox httpd with a CGI that always answers 500.
    let script = r#"mkdir -p /www/cgi-bin && printf '#!/bin/sh\nprintf "Status: 500 Internal Server Error\\r\\n\\r\\nbroken\\n"\n' > /www/cgi-bin/health && chmod +x /www/cgi-bin/health && { httpd -f -p 8080 -h /www & } && trap 'kill $!; exit 0' TERM && wait"#;
    let text = format!(
        "version: V1\nallocations:\n  work:\n    type: service\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {{image: \"{IMAGE}\", \
         command: [sh, -c, {script:?}]}}\n    restart: {{policy: on_failure, max_attempts: \
         {restarts}, delay: 200ms}}\n    healthcheck: {{type: http, port: 8080, path: \
         /cgi-bin/health, interval: 500ms, timeout: 2s, retries: 2}}\nnodes:\n  only: \
         {{allocations: [work]}}\n"
    );
    let file = write(world, "unhealthy.yaml", &text);
    deploy(world, &file, &["--detach"]).await;
    assert!(world.last().status.success(), "{}", world.last().stderr);
}

#[when(
    "the devnet user deploys two WebAssembly services under one_for_all, one exiting 1 once started"
)]
async fn deploy_one_for_all(world: &mut DmsWorld) {
    let spin = super::steps_deploy::spin_module(world);
    let exit = write(
        world,
        "exit1.wat",
        "(module (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32))) \
         (memory (export \"memory\") 1) (func (export \"_start\") (call $exit (i32.const 1))))",
    );
    let service = |name: &str, module: &str| {
        format!(
            "  {name}:\n    type: service\n    executor: wasm\n    resources: {{cpu: {{cores: \
             0.25}}, ram: 64MiB}}\n    execution: {{module: {module}}}\n    restart: {{policy: \
             on_failure, max_attempts: 1, delay: 200ms}}\n"
        )
    };
    let text = format!(
        "version: V1\nallocations:\n{}{}nodes:\n  na: {{allocations: [a]}}\n  nb: \
         {{allocations: [b]}}\nsupervisor: {{strategy: one_for_all, allocations: [a, b], \
         max_restarts: 1, window: 1m}}\nescalation: teardown\n",
        service("a", &exit),
        service("b", &spin)
    );
    let file = write(world, "one-for-all.yaml", &text);
    deploy(world, &file, &["--detach"]).await;
    assert!(world.last().status.success(), "{}", world.last().stderr);
}

#[then(regex = r#"^its events eventually say "([^"]+)"$"#)]
async fn events_eventually(world: &mut DmsWorld, text: String) {
    let id = world.deployment.clone().expect("a deployment");
    let started = Instant::now();
    loop {
        let out = devnet_cli(world, 0, &["deployments", "manifest", &id]).await;
        let manifest: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        let events = manifest["events"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["message"].as_str().unwrap_or("").contains(&text)) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{text:?} not in: {events:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[then("the two services ran on two providers, and b was restarted by its supervisor")]
async fn both_restarted(world: &mut DmsWorld) {
    let status = status(world).await;
    let (a, b) = (&status["allocations"]["a"], &status["allocations"]["b"]);
    let peer_of = |v: &Value| {
        v["peer"]
            .as_str()
            .map(String::from)
            .or_else(|| v["lineage"][0]["peer"].as_str().map(String::from))
    };
    assert_ne!(peer_of(a), peer_of(b), "{status:#}");
    assert!(b["status"]["restarts"].as_u64().unwrap_or(0) >= 1, "{status:#}");
}
