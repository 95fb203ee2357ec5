//! Steps for the p2p network and actor messaging: three real `dms run` processes on
//! loopback, driven through `dms peers`, `dms actor` and `dms cap`.

use std::time::Duration;

use cucumber::{given, then, when};
use serde_json::Value;

use super::daemon::{Daemon, Run, patience, run};
use super::world::DmsWorld;

const PASS: (&str, &str) = ("DMS_PASSPHRASE", "pw");
const NODES: [&str; 3] = ["A", "B", "C"];

fn index(node: &str) -> usize {
    NODES.iter().position(|n| *n == node).unwrap_or_else(|| panic!("no node {node}"))
}

/// Runs `dms` against node `node` (its home and its API).
pub(super) async fn on(world: &DmsWorld, node: &str, args: &[&str]) -> Run {
    let i = index(node);
    let api = world.daemons[i].ready().api.to_string();
    let mut full = vec!["--api-addr", api.as_str()];
    full.extend_from_slice(args);
    run(&world.home(i), &full, &[PASS]).await
}

pub(super) async fn on_ok(world: &DmsWorld, node: &str, args: &[&str]) -> String {
    let out = on(world, node, args).await;
    assert!(out.status.success(), "dms {args:?} on {node} failed:\n{}", out.stderr);
    out.stdout
}

async fn setup_home(world: &mut DmsWorld) -> std::path::PathBuf {
    let home = world.add_home();
    for args in [&["key", "new"][..], &["key", "new", "user"], &["cap", "new", "user"]] {
        let out = run(&home, args, &[PASS]).await;
        assert!(out.status.success(), "dms {args:?} failed: {}", out.stderr);
    }
    home
}

#[given("three nodes A, B and C, where B and C bootstrap from A and each trusts its own user")]
async fn three_nodes(world: &mut DmsWorld) {
    start_nodes(world, 3).await;
}

/// Starts `count` nodes (named A, B, C); every node after the first bootstraps from A,
/// and each node trusts its own user key as a root.
pub(super) async fn start_nodes(world: &mut DmsWorld, count: usize) {
    for (i, node) in NODES.iter().take(count).enumerate() {
        let home = setup_home(world).await;
        let mut extra = Vec::new();
        if i > 0 {
            let a = world.daemons[0].ready();
            let addr = a.addrs.first().unwrap_or_else(|| panic!("A printed no address"));
            extra = vec!["--bootstrap".to_string(), addr.clone()];
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut daemon = Daemon::start_with(&home, "127.0.0.1:0", "pw", &extra);
        daemon.wait_ready_or_exit().await;
        assert!(daemon.exit.is_none(), "node {node} exited:\n{}", daemon.log());
        world.daemons.push(daemon);
        let user = run(&home, &["key", "did", "user"], &[PASS]).await.stdout.trim().to_string();
        world.dids.insert(format!("user of {node}"), user.clone());
        on_ok(world, node, &["cap", "anchor", "-c", "dms", "--root", &user]).await;
    }
}

#[then(r#""dms peers list" on every node shows the other two"#)]
async fn peers_list_shows_others(world: &mut DmsWorld) {
    let deadline = tokio::time::Instant::now() + patience();
    for node in NODES {
        let others: Vec<String> = NODES
            .iter()
            .filter(|n| **n != node)
            .map(|n| world.daemons[index(n)].ready().peer_id.clone())
            .collect();
        loop {
            let out = on_ok(world, node, &["peers", "list", "-o", "json"]).await;
            let peers: Value = serde_json::from_str(&out).expect("peers list is JSON");
            let ids: Vec<&str> = peers
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["peer_id"].as_str())
                .collect();
            if others.iter().all(|o| ids.contains(&o.as_str())) {
                // The human form names them too.
                let table = on_ok(world, node, &["peers", "list"]).await;
                assert!(others.iter().all(|o| table.contains(o.as_str())), "{table}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{node} sees {ids:?}, expected {others:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn invoke(world: &DmsWorld, from: &str, behavior: &str, dest: &str) -> Run {
    invoke_with(world, from, behavior, None, dest).await
}

async fn invoke_with(
    world: &DmsWorld,
    from: &str,
    behavior: &str,
    arg: Option<&str>,
    dest: &str,
) -> Run {
    let peer = world.daemons[index(dest)].ready().peer_id.clone();
    let mut args = vec!["actor", "cmd", "--raw", behavior];
    args.extend(arg);
    args.extend(["--dest", &peer, "-o", "json"]);
    on(world, from, &args).await
}

#[when(regex = r#"^the user of (\w) invokes "([^"]+)"(?: with "([^"]+)")? on (\w)$"#)]
async fn user_invokes(
    world: &mut DmsWorld,
    from: String,
    behavior: String,
    arg: String,
    dest: String,
) {
    let arg = (!arg.is_empty()).then_some(arg.as_str());
    world.last = Some(invoke_with(world, &from, &behavior, arg, &dest).await);
}

#[then("it succeeds")]
async fn it_succeeds(world: &mut DmsWorld) {
    let last = world.last();
    assert!(last.status.success(), "refused:\n{}", last.stderr);
    let _: Value = serde_json::from_str(&last.stdout).expect("the answer is JSON");
}

fn assert_refused(run: &Run, code: &str, reason: Option<&str>) {
    assert!(!run.status.success(), "expected a refusal, got:\n{}", run.stdout);
    assert!(run.stderr.contains(&format!("({code})")), "expected ({code}):\n{}", run.stderr);
    if let Some(reason) = reason {
        assert!(run.stderr.contains(reason), "expected {reason:?}:\n{}", run.stderr);
    }
    assert!(!run.stderr.contains("(timeout)"), "a refusal must not be a timeout:\n{}", run.stderr);
}

#[then(regex = r#"^it is refused as "(\w+)"(?: with "(\w+)")?$"#)]
async fn refused(world: &mut DmsWorld, code: String, reason: String) {
    let reason = (!reason.is_empty()).then_some(reason.as_str());
    assert_refused(world.last(), &code, reason);
}

/// `node`'s owner grants `audience` a capability with the node key; returns the token
/// and its content id.
async fn grant(world: &DmsWorld, node: &str, audience: &str, args: &[&str]) -> (String, String) {
    let did = world.dids[audience].clone();
    let mut full = vec!["cap", "grant", "-c", "dms", "--duration", "1h", "-o", "json"];
    full.extend_from_slice(args);
    full.push(&did);
    let out: Value = serde_json::from_str(&on_ok(world, node, &full).await).expect("JSON");
    (out["token"].as_str().expect("token").into(), out["cid"].as_str().expect("cid").into())
}

#[when(regex = r#"^(\w) grants the user of (\w) "([^"]+)" and the user of \w holds the token$"#)]
#[given(regex = r#"^(\w) grants the user of (\w) "([^"]+)" and the user of \w holds the token$"#)]
async fn grants_and_holds(world: &mut DmsWorld, node: String, holder: String, path: String) {
    let audience = format!("user of {holder}");
    let (token, cid) = grant(world, &node, &audience, &["--cap", &path]).await;
    on_ok(world, &holder, &["cap", "anchor", "-c", "user", "--provide", &token]).await;
    world.results = vec![cid];
}

#[given(
    regex = r#"^(\w) grants the user of (\w) "([^"]+)" on topic "([^"]+)" and the user of \w holds the token$"#
)]
async fn grant_broadcast(
    world: &mut DmsWorld,
    node: String,
    holder: String,
    path: String,
    topic: String,
) {
    let audience = format!("user of {holder}");
    let (token, _) = grant(world, &node, &audience, &["--cap", &path, "--topic", &topic]).await;
    on_ok(world, &holder, &["cap", "anchor", "-c", "user", "--provide", &token]).await;
}

/// The peers that answered a broadcast without an error.
fn answered(run: &Run) -> Vec<String> {
    let answers: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    answers
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a.get("error").is_none())
        .filter_map(|a| a["from"]["peer"].as_str().map(String::from))
        .collect()
}

#[when(regex = r#"^the user of A broadcasts "([^"]+)"$"#)]
async fn broadcasts(world: &mut DmsWorld, behavior: String) {
    // Gossip meshes form a heartbeat or two after the nodes meet: a broadcast sent
    // before then reaches fewer nodes, so send again (a new envelope) until the mesh is
    // up, within the patience.
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let out =
            on(world, "A", &["actor", "cmd", &behavior, "--timeout", "3s", "-o", "json"]).await;
        let all = out.status.success() && answered(&out).len() == NODES.len();
        if all || tokio::time::Instant::now() >= deadline {
            world.last = Some(out);
            return;
        }
    }
}

#[then("answers come from A, B and C")]
async fn answers_from_all(world: &mut DmsWorld) {
    let last = world.last();
    assert!(last.status.success(), "broadcast failed:\n{}", last.stderr);
    let answers: Value = serde_json::from_str(&last.stdout).expect("JSON answers");
    for node in NODES {
        let peer = &world.daemons[index(node)].ready().peer_id;
        let answer = answers
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["from"]["peer"].as_str() == Some(peer.as_str()))
            .unwrap_or_else(|| panic!("no answer from {node} ({peer}): {answers}"));
        assert!(answer.get("error").is_none(), "{node} refused: {answer}");
    }
}

#[given(regex = r"^(\w) trusts node (\w) as a root$")]
async fn trusts_root(world: &mut DmsWorld, node: String, root: String) {
    let did = world.daemons[index(&root)].ready().did.clone();
    on_ok(world, &node, &["cap", "anchor", "-c", "dms", "--root", &did]).await;
}

#[when(regex = r#"^"dms cap remove" takes the user of (\w) off the roots of node (\w)$"#)]
async fn remove_root(world: &mut DmsWorld, user: String, node: String) {
    let did = world.dids[&format!("user of {user}")].clone();
    on_ok(world, &node, &["cap", "remove", "-c", "dms", &did]).await;
}

#[when(regex = r#"^"dms cap remove --all" removes the capability context of node (\w)$"#)]
async fn remove_context(world: &mut DmsWorld, node: String) {
    on_ok(world, &node, &["cap", "remove", "-c", "dms", "--all"]).await;
}

#[when(regex = r"^the user of (\w) has \w revoke the token it gave the user of \w$")]
async fn has_node_revoke(world: &mut DmsWorld, node: String) {
    let cid = world.results.first().expect("a token was granted").clone();
    on_ok(world, &node, &["actor", "cmd", "/dms/cap/revoke", &format!("cid={cid}")]).await;
}

#[then(
    regex = r#"^the user of (\w) invoking "([^"]+)" on (\w) is soon refused as "(\w+)" with "(\w+)"$"#
)]
async fn soon_refused(
    world: &mut DmsWorld,
    from: String,
    behavior: String,
    dest: String,
    code: String,
    reason: String,
) {
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let out = invoke(world, &from, &behavior, &dest).await;
        if !out.status.success() && out.stderr.contains(&reason) {
            assert_refused(&out, &code, Some(&reason));
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still not refused: {out:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
