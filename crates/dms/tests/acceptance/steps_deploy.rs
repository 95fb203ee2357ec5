//! Steps for deployments on a devnet: real `dms run` processes, real executors.

use std::time::{Duration, Instant};

use cucumber::{given, then, when};
use serde_json::Value;

use super::daemon::{Run, run};
use super::world::DmsWorld;

pub(super) const IMAGE: &str = "dms-test/busybox:1";

pub(super) async fn dms(world: &DmsWorld, args: &[&str]) -> Run {
    run(&world.home(0), args, &[]).await
}

pub(super) async fn devnet_cli(world: &DmsWorld, node: usize, args: &[&str]) -> Run {
    let node = node.to_string();
    let mut full = vec!["devnet", "cli", "--node", &node];
    full.extend_from_slice(args);
    dms(world, &full).await
}

pub(super) fn node(world: &DmsWorld, index: usize) -> &Value {
    &world.devnet.as_ref().expect("a devnet is up")["nodes"][index]
}

pub(super) fn peer(world: &DmsWorld, index: usize) -> String {
    node(world, index)["peer_id"].as_str().expect("peer id").to_string()
}

pub(super) fn write(world: &DmsWorld, name: &str, text: &str) -> String {
    let path = world.home(0).parent().expect("home parent").join(name);
    std::fs::write(&path, text).expect("write ensemble");
    path.display().to_string()
}

pub(super) fn repo_file(relative: &str) -> String {
    format!("{}/../../{relative}", env!("CARGO_MANIFEST_DIR"))
}

pub(super) async fn refresh_devnet(world: &mut DmsWorld) {
    let out = dms(world, &["devnet", "status", "-o", "json"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    world.devnet = Some(serde_json::from_str(&out.stdout).expect("devnet JSON"));
}

#[given(regex = r"^a devnet of (\d+) nodes is up$")]
async fn devnet_up(world: &mut DmsWorld, nodes: usize) {
    devnet_up_with(world, nodes, &[]).await;
}

/// Starts a devnet of `nodes` whose nodes run with `env` besides their own, and waits
/// until every node knows the others.
pub(super) async fn devnet_up_with(world: &mut DmsWorld, nodes: usize, env: &[(&str, &str)]) {
    devnet_up_args(world, nodes, &[], env).await;
}

/// [`devnet_up_with`], with more `dms devnet up` options (e.g. `--isolated`).
pub(super) async fn devnet_up_args(
    world: &mut DmsWorld,
    nodes: usize,
    extra: &[&str],
    env: &[(&str, &str)],
) {
    world.add_home();
    let count = nodes.to_string();
    let mut args = vec!["devnet", "up", "--nodes", &count, "-o", "json"];
    args.extend_from_slice(extra);
    let out = run(&world.home(0), &args, env).await;
    assert!(out.status.success(), "devnet up failed:\n{}", out.stderr);
    world.devnet = Some(serde_json::from_str(&out.stdout).expect("devnet JSON"));
    // Every node must know the others before bids are asked for.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..nodes {
        loop {
            let out = devnet_cli(world, i, &["peers", "list", "-o", "json"]).await;
            let peers: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            if peers.as_array().is_some_and(|p| p.len() + 1 >= nodes) {
                break;
            }
            assert!(Instant::now() < deadline, "node {i} peers: {peers}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

pub(super) async fn deploy(world: &mut DmsWorld, file: &str, extra: &[&str]) {
    let mut args = vec!["devnet", "deploy", file];
    args.extend_from_slice(extra);
    let out = dms(world, &args).await;
    world.deployment = deployment_id(&out);
    world.last = Some(out);
}

/// The deployment id `dms deploy` printed (`deployment d-… submitted`).
pub(super) fn deployment_id(out: &Run) -> Option<String> {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("deployment ").and_then(|r| r.split_whitespace().next()))
        .map(|id| id.trim_end_matches(':').to_string())
}

#[when(regex = r#"^the devnet user deploys "([^"]+)"$"#)]
async fn deploy_file(world: &mut DmsWorld, file: String) {
    deploy(world, &repo_file(&file), &[]).await;
}

#[when(regex = r#"^the devnet user plans "([^"]+)"$"#)]
async fn plan_file(world: &mut DmsWorld, file: String) {
    deploy(world, &repo_file(&file), &["--plan"]).await;
    assert!(world.last().status.success(), "{}", world.last().stderr);
}

fn wasm_ensemble(kind: &str, module: &str, extra: &str) -> String {
    format!(
        "version: V1\nallocations:\n  work:\n    type: {kind}\n    executor: wasm\n    resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {{module: {module}, args: [done]}}\nnodes:\n  only: {{allocations: [work]}}\n{extra}"
    )
}

pub(super) fn spin_module(world: &DmsWorld) -> String {
    write(
        world,
        "spin.wat",
        "(module (memory (export \"memory\") 1) (func (export \"_start\") (loop $l (br $l))))",
    )
}

#[when("the devnet user deploys a WebAssembly service")]
async fn deploy_service(world: &mut DmsWorld) {
    let module = spin_module(world);
    let file = write(world, "service.yaml", &wasm_ensemble("service", &module, ""));
    deploy(world, &file, &[]).await;
}

#[when("the devnet user deploys a WebAssembly service that avoids node 0")]
async fn deploy_service_elsewhere(world: &mut DmsWorld) {
    let module = spin_module(world);
    let avoid = format!("exclude_peers: [{}]\n", peer(world, 0));
    let file = write(world, "service.yaml", &wasm_ensemble("service", &module, &avoid));
    deploy(world, &file, &[]).await;
}

#[when(
    regex = r"^the devnet user deploys a WebAssembly service that exits with code (\d+) and may restart (\d+) times$"
)]
async fn deploy_crashing(world: &mut DmsWorld, code: u32, restarts: u32) {
    let module = write(
        world,
        "exit.wat",
        &format!(
            "(module (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32))) \
             (memory (export \"memory\") 1) (func (export \"_start\") (call $exit (i32.const {code}))))"
        ),
    );
    let text = wasm_ensemble("service", &module, "").replace(
        "    execution:",
        &format!("    restart: {{policy: on_failure, max_attempts: {restarts}, delay: 200ms}}\n    execution:"),
    );
    let file = write(world, "crashing.yaml", &text);
    deploy(world, &file, &["--detach"]).await;
    assert!(world.last().status.success(), "{}", world.last().stderr);
}

#[then(regex = r#"^the deployment eventually fails with "([^"]+)"$"#)]
async fn eventually_fails(world: &mut DmsWorld, text: String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = status(world).await;
        if status["state"] == "failed" {
            let reason = status["reason"].as_str().unwrap_or("");
            assert!(reason.contains(&text), "{status:#}");
            return;
        }
        assert!(Instant::now() < deadline, "{status:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[then(regex = r#"^its events say "([^"]+)"$"#)]
async fn events_say(world: &mut DmsWorld, text: String) {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "manifest", &id]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let manifest: Value = serde_json::from_str(&out.stdout).expect("manifest JSON");
    let events = manifest["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events.iter().any(|e| e["message"].as_str().unwrap_or("").contains(&text)),
        "{text:?} not in events: {events:#?}"
    );
}

#[given(regex = r"^a WebAssembly service taking (\S+) CPU runs on every node$")]
async fn fill_nodes(world: &mut DmsWorld, cores: String) {
    let module = spin_module(world);
    let count = world.devnet.as_ref().expect("devnet")["nodes"].as_array().map_or(0, Vec::len);
    let mut text = String::from("version: V1\nallocations:\n");
    for i in 0..count {
        text.push_str(&format!(
            "  fill{i}:\n    type: service\n    executor: wasm\n    resources: {{cpu: {{cores: {cores}}}, ram: 16MiB}}\n    execution: {{module: {module}}}\n"
        ));
    }
    text.push_str("nodes:\n");
    for i in 0..count {
        text.push_str(&format!("  n{i}: {{allocations: [fill{i}]}}\n"));
    }
    let file = write(world, "fill.yaml", &text);
    deploy(world, &file, &[]).await;
    assert!(world.last().status.success(), "{}\n{}", world.last().stdout, world.last().stderr);
}

#[when(regex = r"^the devnet user submits a WebAssembly service needing (\S+) CPU$")]
async fn submit_service(world: &mut DmsWorld, cores: String) {
    let module = spin_module(world);
    let text =
        wasm_ensemble("service", &module, "").replace("cores: 0.25", &format!("cores: {cores}"));
    let file = write(world, "waiting.yaml", &text);
    deploy(world, &file, &["--detach"]).await;
    assert!(world.last().status.success(), "{}", world.last().stderr);
}

#[then(regex = r#"^the deployment list shows it pending because of "([^"]+)"$"#)]
async fn pending_because(world: &mut DmsWorld, text: String) {
    let id = world.deployment.clone().expect("a deployment");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = devnet_cli(world, 0, &["deployments", "list", "-o", "json"]).await;
        assert!(out.status.success(), "{}", out.stderr);
        let list: Value = serde_json::from_str(&out.stdout).expect("list JSON");
        let entry = list.as_array().into_iter().flatten().find(|d| d["id"] == id.as_str()).cloned();
        if let Some(entry) = &entry
            && entry["state"] == "bidding"
            && entry["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("pending") && r.contains(&text))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{entry:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[when("the devnet user deploys a WebAssembly task")]
async fn deploy_task(world: &mut DmsWorld) {
    let file =
        write(world, "task.yaml", &wasm_ensemble("task", &repo_file("examples/echo.wat"), ""));
    deploy(world, &file, &[]).await;
}

#[when(regex = r"^the devnet user submits (\d+) WebAssembly tasks at once$")]
async fn submit_many(world: &mut DmsWorld, count: usize) {
    let file =
        write(world, "many.yaml", &wasm_ensemble("task", &repo_file("examples/echo.wat"), ""));
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (home, file) = (world.home(0), file.clone());
        runs.spawn(async move {
            run(&home, &["devnet", "cli", "--node", "0", "deploy", &file, "--detach"], &[]).await
        });
    }
    world.results.clear();
    while let Some(out) = runs.join_next().await {
        let out = out.expect("the command ran");
        assert!(out.status.success(), "a concurrent deploy failed:\n{}", out.stderr);
        let id = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("deployment ").and_then(|r| r.split_whitespace().next()));
        world.results.push(id.unwrap_or_default().trim_end_matches(':').to_string());
    }
}

#[then("the deployment's logs can be read")]
async fn logs_readable(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "logs", &id]).await;
    assert!(out.status.success() && !out.stderr.contains("unauthorized"), "{out:?}");
}

#[when("the devnet user revokes node 0's deployment grant and spreads the revocation over gossip")]
async fn revoke_node_grant(world: &mut DmsWorld) {
    // The grant node 0 holds from the devnet user (its provide anchor), read from node 0.
    let home = node(world, 0)["home"].as_str().expect("node home").to_string();
    let out =
        run(std::path::Path::new(&home), &["cap", "list", "-c", "dms", "-o", "json"], &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let context: Value = serde_json::from_str(&out.stdout).expect("context JSON");
    let grant = context[0]["provide"][0].as_str().expect("node 0 holds a grant").to_string();
    // The user revokes it (offline, in its own context) ...
    let out = devnet_cli(world, 0, &["cap", "revoke", "-c", "user", &grant]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let revocation = out
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("dmscap1."))
        .expect("a revocation token")
        .to_string();
    // ... and publishes it on the revocation topic through node 1: gossip carries it.
    let token = format!("token={revocation}");
    let args =
        ["actor", "broadcast", "/public/cap/revocation", "--topic", "/dms/cap/revocations", &token];
    let out = devnet_cli(world, 1, &args).await;
    assert!(out.status.success(), "{}", out.stderr);
}

#[then(regex = r#"^the deployment's logs are soon refused as "(\w+)"$"#)]
async fn logs_refused(world: &mut DmsWorld, code: String) {
    let id = world.deployment.clone().expect("a deployment");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = devnet_cli(world, 0, &["deployments", "logs", &id]).await;
        if out.stderr.contains(&code) {
            return;
        }
        assert!(Instant::now() < deadline, "logs still readable: {out:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[then(regex = r"^all (\d+) are accepted with distinct ids$")]
async fn all_accepted(world: &mut DmsWorld, count: usize) {
    let ids: std::collections::BTreeSet<&String> =
        world.results.iter().filter(|id| id.starts_with("d-")).collect();
    assert_eq!(ids.len(), count, "accepted: {:?}", world.results);
    let out = devnet_cli(world, 0, &["deployments", "list", "-o", "json"]).await;
    let listed: Value = serde_json::from_str(&out.stdout).expect("deployments JSON");
    let known = listed.as_array().map_or(0, |l| {
        l.iter()
            .filter(|d| d["id"].as_str().is_some_and(|id| world.results.iter().any(|r| r == id)))
            .count()
    });
    assert_eq!(known, count, "every accepted deployment is listed: {listed}");
}

#[when(
    regex = r"^the devnet user deploys an ensemble needing (\S+) of RAM with a deadline of (\S+)$"
)]
async fn deploy_huge(world: &mut DmsWorld, ram: String, deadline: String) {
    let text = wasm_ensemble("task", &repo_file("examples/echo.wat"), "")
        .replace("ram: 64MiB", &format!("ram: {ram}"));
    let file = write(world, "huge.yaml", &text);
    deploy(world, &file, &["--deadline", &deadline]).await;
}

#[when(regex = r#"^the devnet user deploys a Docker task printing "([^"]+)"$"#)]
async fn deploy_docker(world: &mut DmsWorld, text: String) {
    let ensemble = format!(
        "version: V1\nallocations:\n  box:\n    type: task\n    executor: docker\n    resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {{image: \"{IMAGE}\", command: [echo, \"{text}\"]}}\nnodes:\n  only: {{allocations: [box]}}\n"
    );
    let file = write(world, "docker.yaml", &ensemble);
    deploy(world, &file, &[]).await;
}

#[then("the deployment succeeds")]
async fn succeeds(world: &mut DmsWorld) {
    let out = world.last();
    assert!(out.status.success(), "deploy failed:\n{}\n{}", out.stdout, out.stderr);
    assert!(world.deployment.is_some(), "no deployment id in:\n{}", out.stdout);
}

#[then(regex = r#"^the output shows "([^"]+)"$"#)]
async fn output_shows(world: &mut DmsWorld, text: String) {
    let out = world.last();
    assert!(out.stdout.contains(&text), "{text:?} not in:\n{}\n{}", out.stdout, out.stderr);
}

/// Early: it gave up because the same reason blocked placement attempt after attempt,
/// not because its deadline passed.
#[then("the deployment fails before its deadline, as it cannot be placed")]
async fn fails_early(world: &mut DmsWorld) {
    let out = world.last();
    assert!(!out.status.success(), "deploy succeeded:\n{}", out.stdout);
    assert!(out.stderr.contains("cannot be placed"), "not given up early:\n{}", out.stderr);
    assert!(!out.stderr.contains("deadline passed"), "waited for the deadline:\n{}", out.stderr);
}

#[then(regex = r#"^the error says "([^"]+)"$"#)]
async fn error_says(world: &mut DmsWorld, text: String) {
    let out = world.last();
    assert!(out.stderr.contains(&text), "{text:?} not in:\n{}", out.stderr);
}

pub(super) async fn status(world: &DmsWorld) -> Value {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "status", &id, "-o", "json"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("status JSON")
}

#[then(regex = r#"^the deployment is "([^"]+)"$"#)]
async fn is_state(world: &mut DmsWorld, state: String) {
    let status = status(world).await;
    assert_eq!(status["state"], state.as_str(), "{status:#}");
}

#[then(
    regex = r#"^the deployment is "([^"]+)" with its (\d+) allocations on (\d+) different peers$"#
)]
async fn spread(world: &mut DmsWorld, state: String, allocations: usize, peers: usize) {
    let status = status(world).await;
    assert_eq!(status["state"], state.as_str(), "{status:#}");
    let views = status["allocations"].as_object().expect("allocations");
    assert_eq!(views.len(), allocations);
    let distinct: std::collections::BTreeSet<&str> =
        views.values().filter_map(|v| v["peer"].as_str()).collect();
    assert_eq!(distinct.len(), peers, "{status:#}");
    for view in views.values() {
        assert_eq!(view["status"]["exit_code"], 0, "{status:#}");
    }
}

#[then(r#""dms deployments info" shows where each node went, each actor's own DID and the latest events"#)]
async fn info(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "info", &id]).await;
    assert!(out.status.success(), "{}", out.stderr);
    for text in ["PROVIDER", "first", "second", "latest events:", "every allocation started"] {
        assert!(out.stdout.contains(text), "{text:?} not in:\n{}", out.stdout);
    }
    // The orchestrator and every allocation have DIDs of their own, none a node's.
    let nodes: Vec<String> = world.devnet.as_ref().expect("devnet")["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["did"].as_str().map(String::from))
        .collect();
    let dids: Vec<&str> =
        out.stdout.split_whitespace().filter(|w| w.starts_with("did:key:")).collect();
    let distinct: std::collections::BTreeSet<&&str> = dids.iter().collect();
    assert!(distinct.len() >= 3, "orchestrator + 2 allocation DIDs in:\n{}", out.stdout);
    assert!(dids.iter().all(|d| !nodes.iter().any(|n| n == d)), "{dids:?} vs nodes {nodes:?}");
}

async fn free_of_all(world: &DmsWorld) -> Vec<Value> {
    let count = world.devnet.as_ref().expect("devnet")["nodes"].as_array().map_or(0, Vec::len);
    let mut free = Vec::new();
    for i in 0..count {
        let out = devnet_cli(world, i, &["onboard", "status", "-o", "json"]).await;
        assert!(out.status.success(), "{}", out.stderr);
        let status: Value = serde_json::from_str(&out.stdout).expect("JSON");
        free.push(status["free"].clone());
    }
    free
}

#[given("the free resources of every node are noted")]
async fn note_free(world: &mut DmsWorld) {
    world.free_before = free_of_all(world).await;
}

#[then("one node has less free resources than before")]
async fn less_free(world: &mut DmsWorld) {
    let now = free_of_all(world).await;
    let changed = now.iter().zip(&world.free_before).filter(|(a, b)| a != b).count();
    assert_eq!(changed, 1, "before {:?}, now {now:?}", world.free_before);
}

#[then("every node has the same free resources as before")]
async fn same_free(world: &mut DmsWorld) {
    assert_eq!(free_of_all(world).await, world.free_before);
}

#[when("the devnet user shuts the deployment down")]
async fn shutdown(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "shutdown", &id]).await;
    assert!(out.status.success(), "{}", out.stderr);
}

pub(super) async fn restart(world: &mut DmsWorld, index: usize, kill: bool) {
    let node = index.to_string();
    let mut args = vec!["devnet", "restart", "--node", &node];
    if kill {
        args.push("--kill");
    }
    let out = dms(world, &args).await;
    assert!(out.status.success(), "restart failed:\n{}", out.stderr);
    refresh_devnet(world).await;
}

/// Sets a config key of node `index` and restarts it so that it applies.
pub(super) async fn configure(world: &mut DmsWorld, index: usize, key: &str, value: &str) {
    let home = node(world, index)["home"].as_str().expect("home").to_string();
    let out = run(std::path::Path::new(&home), &["config", "set", key, value], &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    restart(world, index, false).await;
}

#[given(regex = r"^node (\d+) holds bid reservations for only 1ms and offers the tightest fit$")]
async fn short_reservations(world: &mut DmsWorld, index: usize) {
    configure(world, index, "deployment.max_reservation", "1ms").await;
    // A smaller offer makes the task fit it most tightly, so it scores best.
    let out =
        devnet_cli(world, index, &["onboard", "--cpu", "0.5", "--ram", "256MiB", "--disk", "1GiB"])
            .await;
    assert!(out.status.success(), "{}", out.stderr);
    wait_for_peers(world).await;
}

#[given(regex = r"^node (\d+) requires contracts$")]
async fn requires_contracts(world: &mut DmsWorld, index: usize) {
    configure(world, index, "deployment.require_contract", "true").await;
    wait_for_peers(world).await;
}

pub(super) async fn wait_for_peers(world: &DmsWorld) {
    let count = world.devnet.as_ref().expect("devnet")["nodes"].as_array().map_or(0, Vec::len);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = devnet_cli(world, 0, &["peers", "list", "-o", "json"]).await;
        let peers: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if peers.as_array().is_some_and(|p| p.len() + 1 >= count) {
            break;
        }
        assert!(Instant::now() < deadline, "peers: {peers}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Connected is not enough: bid requests travel by gossip, so wait until a broadcast
    // reaches every node.
    loop {
        let out = devnet_cli(
            world,
            0,
            &["actor", "cmd", "/broadcast/hello", "--timeout", "2s", "-o", "json"],
        )
        .await;
        let answers: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        let answered =
            answers.as_array().map_or(0, |a| a.iter().filter(|x| x.get("error").is_none()).count());
        if answered >= count {
            return;
        }
        assert!(Instant::now() < deadline, "broadcast answers: {answers}");
    }
}

/// `phase` is `commit` (a placement of several nodes agrees first) or `allocate` (a
/// one-node placement uses its bid's reservation directly).
#[then(regex = r"^the events say the (commit|allocate) on node (\d+) failed$")]
async fn phase_failed(world: &mut DmsWorld, phase: String, index: usize) {
    let peer = peer(world, index);
    let tail: String = peer.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    let out = world.last();
    assert!(
        out.stdout.lines().any(|l| l.contains(&format!("{phase} on"))
            && l.contains(&tail)
            && l.contains("failed")),
        "no failed {phase} on …{tail} in:\n{}",
        out.stdout
    );
}

#[then(regex = r"^the task did not run on node (\d+)$")]
async fn not_on(world: &mut DmsWorld, index: usize) {
    let status = status(world).await;
    let peer = peer(world, index);
    for view in status["allocations"].as_object().expect("allocations").values() {
        assert_ne!(view["peer"], peer.as_str(), "{status:#}");
        assert_eq!(view["status"]["state"], "completed", "{status:#}");
    }
}

#[when(regex = r"^node (\d+) is killed and restarted$")]
async fn kill_restart(world: &mut DmsWorld, index: usize) {
    restart(world, index, true).await;
}

#[then("its events say the orchestrating node restarted")]
async fn events_restart(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = devnet_cli(world, 0, &["deployments", "manifest", &id]).await;
        assert!(out.status.success(), "{}", out.stderr);
        let manifest: Value = serde_json::from_str(&out.stdout).expect("manifest JSON");
        let events = manifest["events"].as_array().cloned().unwrap_or_default();
        let restarted =
            events.iter().any(|e| e["message"].as_str().unwrap_or("").contains("restarted"));
        let running = manifest["allocations"]["work"]["status"]["state"] == "running";
        if restarted && running {
            return;
        }
        assert!(Instant::now() < deadline, "{manifest:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[given("the Docker test image is built")]
async fn docker_image(_world: &mut DmsWorld) {
    let script = format!(
        "docker image inspect {IMAGE} >/dev/null 2>&1 && exit 0; \
         test -x /bin/busybox || {{ echo 'no /bin/busybox: apt-get install -y busybox-static' >&2; exit 1; }}; \
         root=$(mktemp -d) && mkdir -p $root/bin $root/tmp $root/etc $root/proc $root/sys $root/dev && \
         cp /bin/busybox $root/bin/busybox && for a in $(/bin/busybox --list); do [ -e $root/bin/$a ] || ln -s busybox $root/bin/$a; done && \
         tar -C $root -c . | docker import - {IMAGE} >/dev/null; rc=$?; rm -rf $root; exit $rc"
    );
    let out =
        tokio::process::Command::new("sh").args(["-c", &script]).output().await.expect("sh runs");
    assert!(
        out.status.success(),
        "cannot build {IMAGE} (is the Docker engine running? `dockerd &`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
