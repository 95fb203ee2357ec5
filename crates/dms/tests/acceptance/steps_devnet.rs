//! Steps for `dms devnet`: real processes started and stopped by the CLI.

use std::time::Duration;

use cucumber::{then, when};
use serde_json::Value;

use super::daemon::{Run, patience, run};
use super::world::DmsWorld;

async fn devnet(world: &DmsWorld, args: &[&str]) -> Run {
    let mut full = vec!["devnet"];
    full.extend_from_slice(args);
    run(&world.home(0), &full, &[]).await
}

#[when(r#"I run "dms devnet up --nodes 3" in a fresh home"#)]
async fn up(world: &mut DmsWorld) {
    world.add_home();
    let out = devnet(world, &["up", "--nodes", "3", "-o", "json"]).await;
    assert!(out.status.success(), "devnet up failed:\n{}", out.stderr);
    let state: Value = serde_json::from_str(&out.stdout).expect("JSON state");
    world.results = state["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["pid"].as_u64().map(|p| p.to_string()))
        .collect();
    world.last = Some(out);
}

#[then(regex = r#"^"dms devnet status" shows (\d+) running nodes$"#)]
async fn status_running(world: &mut DmsWorld, count: usize) {
    let out = devnet(world, &["status", "-o", "json"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let status: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let running = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["running"] == Value::Bool(true))
        .count();
    assert_eq!(running, count, "{status}");
}

#[then(regex = r#"^"dms devnet cli peers list" eventually lists (\d+) peers$"#)]
async fn peers(world: &mut DmsWorld, count: usize) {
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let out = devnet(world, &["cli", "peers", "list", "-o", "json"]).await;
        assert!(out.status.success(), "{}", out.stderr);
        let peers: Value = serde_json::from_str(&out.stdout).expect("JSON");
        if peers.as_array().is_some_and(|p| p.len() == count) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "peers: {peers}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[then(regex = r#"^"dms devnet cli actor cmd /broadcast/hello" is answered by (\d+) nodes$"#)]
async fn broadcast(world: &mut DmsWorld, count: usize) {
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let out = devnet(
            world,
            &["cli", "actor", "cmd", "/broadcast/hello", "--timeout", "3s", "-o", "json"],
        )
        .await;
        assert!(out.status.success(), "{}", out.stderr);
        let answers: Value = serde_json::from_str(&out.stdout).expect("JSON");
        let answered =
            answers.as_array().map_or(0, |a| a.iter().filter(|x| x.get("error").is_none()).count());
        if answered == count {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "answers: {answers}");
    }
}

#[when(r#"the devnet is brought down with "dms devnet down""#)]
async fn down(world: &mut DmsWorld) {
    let out = devnet(world, &["down"]).await;
    assert!(out.status.success(), "devnet down failed:\n{}", out.stderr);
}

#[then(r#""dms devnet status" says there is no devnet"#)]
async fn no_devnet(world: &mut DmsWorld) {
    let out = devnet(world, &["status"]).await;
    assert!(!out.status.success());
    assert!(out.stderr.contains("no devnet"), "{}", out.stderr);
}

#[then("no devnet node process is left")]
async fn no_process(world: &mut DmsWorld) {
    for pid in &world.results {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z");
        assert!(!alive, "node process {pid} is still running");
    }
}
