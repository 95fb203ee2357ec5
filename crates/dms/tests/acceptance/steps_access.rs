//! Steps for the daemon and its local API.

use cucumber::{given, then, when};

use super::daemon::{Daemon, run};
use super::http::{get_body, get_status, non_loopback_ipv4};
use super::world::DmsWorld;

#[given("the API listens on all addresses")]
async fn listen_all(world: &mut DmsWorld) {
    world.api_addr = "0.0.0.0:0".into();
}

#[given(expr = "remote access is enabled with token {string}")]
async fn remote_enabled(world: &mut DmsWorld, token: String) {
    let home = world.home(0);
    for (key, value) in [("api.token", token.as_str()), ("api.allow_remote", "true")] {
        let out = run(&home, &["config", "set", key, value], &[]).await;
        assert!(out.status.success(), "config set {key}: {}", out.stderr);
    }
}

async fn start(world: &mut DmsWorld, home_index: usize, passphrase: &str) {
    let home = world.home(home_index);
    if world.key_file_before.is_none() {
        let path = world.key_file("dms");
        if let (Ok(bytes), Ok(mtime)) =
            (std::fs::read(&path), std::fs::metadata(&path).and_then(|m| m.modified()))
        {
            world.key_file_before = Some((bytes, mtime));
        }
    }
    let mut daemon = Daemon::start(&home, &world.api_addr, passphrase);
    daemon.wait_ready_or_exit().await;
    world.daemons.push(daemon);
}

#[when(expr = "I start the daemon with passphrase {string}")]
async fn start_daemon(world: &mut DmsWorld, passphrase: String) {
    start(world, 0, &passphrase).await;
}

#[when(expr = "I start the second daemon with passphrase {string}")]
async fn start_second(world: &mut DmsWorld, passphrase: String) {
    start(world, 1, &passphrase).await;
}

#[when(expr = "I start another daemon on the same home with passphrase {string}")]
async fn start_another(world: &mut DmsWorld, passphrase: String) {
    start(world, 0, &passphrase).await;
}

fn daemon(world: &DmsWorld) -> &Daemon {
    world.daemons.first().expect("a daemon was started")
}

#[then("the daemon is ready")]
async fn is_ready(world: &mut DmsWorld) {
    let ready = daemon(world).ready();
    assert!(ready.did.starts_with("did:key:z"), "{}", ready.did);
}

async fn exits_with(daemon: &mut Daemon, needle: &str) {
    let status = daemon.wait_exit().await;
    assert!(!status.success(), "daemon exited successfully");
    assert!(daemon.ready.is_none(), "daemon became ready");
    let log = daemon.log();
    assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
}

#[then(expr = "the daemon exits with an error containing {string}")]
async fn daemon_fails(world: &mut DmsWorld, needle: String) {
    let daemon = world.daemons.first_mut().expect("a daemon was started");
    exits_with(daemon, &needle).await;
}

#[then(expr = "that daemon exits with an error containing {string}")]
async fn last_daemon_fails(world: &mut DmsWorld, needle: String) {
    let daemon = world.daemons.last_mut().expect("a daemon was started");
    exits_with(daemon, &needle).await;
    assert!(world.daemons[0].exit.is_none(), "the first daemon kept running");
}

fn loopback(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

#[then(expr = "GET {word} answers {int}")]
async fn get_answers(world: &mut DmsWorld, path: String, code: u16) {
    let api = loopback(daemon(world).ready().api);
    let status = get_status(None, api, &path, None).await.expect("request");
    assert_eq!(status, code);
}

#[then(expr = "GET {word} from a non-loopback address answers {int}")]
async fn get_remote(world: &mut DmsWorld, path: String, code: u16) {
    let ip = non_loopback_ipv4();
    let port = daemon(world).ready().api.port();
    let status = get_status(Some(ip), (ip, port).into(), &path, None).await.expect("request");
    assert_eq!(status, code, "from {ip}");
}

#[then(expr = "GET {word} from a non-loopback address with token {string} answers {int}")]
async fn get_remote_token(world: &mut DmsWorld, path: String, token: String, code: u16) {
    let ip = non_loopback_ipv4();
    let port = daemon(world).ready().api.port();
    let status =
        get_status(Some(ip), (ip, port).into(), &path, Some(&token)).await.expect("request");
    assert_eq!(status, code, "from {ip}");
}

#[then(expr = "{string} shows the node's DID")]
async fn cli_shows_did(world: &mut DmsWorld, command: String) {
    let ready = daemon(world).ready().clone();
    let api = loopback(ready.api).to_string();
    let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
    args.extend(["--api-addr", &api]);
    let out = run(&world.home(0), &args, &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains(&ready.did), "{}", out.stdout);
    args.extend(["--output", "json"]);
    let json = run(&world.home(0), &args, &[]).await;
    let info: serde_json::Value = serde_json::from_str(&json.stdout).expect("json info");
    assert_eq!(info["did"], ready.did.as_str());
    assert!(info["version"].is_string() && info["uptime_secs"].is_u64());
}

#[then(expr = "the OpenAPI document lists {string} and {string}")]
async fn openapi_lists(world: &mut DmsWorld, first: String, second: String) {
    let api = loopback(daemon(world).ready().api);
    let body = get_body(api, "/api/v1/openapi.json").await.expect("openapi");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("openapi is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{body}");
    for path in [first, second] {
        assert!(doc["paths"].get(&path).is_some(), "{path} not in {body}");
    }
}

#[when("I send SIGTERM to the daemon")]
async fn sigterm(world: &mut DmsWorld) {
    daemon(world).signal(15);
}

#[then("the daemon exits cleanly")]
async fn exits_cleanly(world: &mut DmsWorld) {
    let daemon = world.daemons.first_mut().expect("a daemon was started");
    let status = daemon.wait_exit().await;
    assert!(status.success(), "exit {status}; log:\n{}", daemon.log());
    assert!(daemon.log().contains("dms stopped"), "{}", daemon.log());
}

#[then("the store records a graceful stop")]
async fn graceful_stop_recorded(world: &mut DmsWorld) {
    let path = world.home(0).join("db/dms.redb");
    let store = dms_store::Store::open(&path).expect("store reopens after the daemon stopped");
    let record = dms_node::lifecycle::read(&store).expect("lifecycle record");
    assert_eq!(record.starts, 1);
    assert!(!record.running && record.last_stop.is_some(), "{record:?}");
}

#[then("both daemons are ready with different DIDs")]
async fn both_ready(world: &mut DmsWorld) {
    let [first, second] = &world.daemons[..] else { panic!("two daemons expected") };
    let (a, b) = (first.ready(), second.ready());
    assert_ne!(a.did, b.did);
    assert_ne!(a.api, b.api);
    for ready in [a, b] {
        assert_eq!(get_status(None, ready.api, "/health", None).await.expect("health"), 200);
    }
}
