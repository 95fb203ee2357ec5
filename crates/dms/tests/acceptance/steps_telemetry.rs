//! Steps for telemetry: a receiver speaking the Elasticsearch `_bulk` and OTLP/HTTP
//! protocols, a real Prometheus scraping a devnet node with its local token, promtool,
//! and a node's log level raised from another node.

use std::time::{Duration, Instant};

use cucumber::{given, then, when};
use serde_json::Value;

use super::steps_deploy::{devnet_cli, devnet_up_with, node, peer};
use super::world::DmsWorld;

/// A Prometheus server started by a scenario, killed when the scenario ends.
#[derive(Debug)]
pub struct Prometheus {
    /// Its HTTP API, `http://127.0.0.1:<port>`.
    pub url: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

fn receiver(world: &DmsWorld) -> &dms_telemetry::testing::Receiver {
    world.telemetry.as_ref().expect("a telemetry receiver is up")
}

fn deployment(world: &DmsWorld) -> String {
    world.deployment.clone().expect("a deployment was submitted")
}

/// Waits up to 60 s for `check` to hold, then fails with what it said last.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if Instant::now() > deadline => panic!("{what}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// `dms events … --json` on node `index`: one event per line.
async fn events(world: &DmsWorld, index: usize, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["events", "--json", "-n", "1000"];
    full.extend_from_slice(args);
    let out = devnet_cli(world, index, &full).await;
    assert!(out.status.success(), "dms events failed:\n{}", out.stderr);
    out.stdout.lines().map(|l| serde_json::from_str(l).expect("an event per line")).collect()
}

#[given(regex = r"^a devnet of (\d+) nodes shipping telemetry to a receiver is up$")]
async fn devnet_with_receiver(world: &mut DmsWorld, nodes: usize) {
    let receiver = dms_telemetry::testing::Receiver::start().await.expect("receiver");
    let url = receiver.url.clone();
    world.telemetry = Some(receiver);
    let env = [
        ("DMS_TELEMETRY_ELASTICSEARCH_URL", url.as_str()),
        ("DMS_TELEMETRY_OTLP_ENDPOINT", url.as_str()),
    ];
    devnet_up_with(world, nodes, &env).await;
}

#[then(
    regex = r#"^"dms events --deployment" on node 0 lists the deployment from "([^"]+)" to "([^"]+)"$"#
)]
async fn lists_from_to(world: &mut DmsWorld, first: String, last: String) {
    let id = deployment(world);
    let found = events(world, 0, &["--deployment", &id]).await;
    let messages: Vec<&str> = found.iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages.first().is_some_and(|m| m.contains(&first)), "{messages:#?}");
    assert!(found.iter().any(|e| e["state"] == last.as_str()), "no {last}: {found:#?}");
    assert!(found.iter().all(|e| e["deployment"] == id.as_str()), "{found:#?}");
}

#[then("every event of the deployment on every node reaches the receiver with its deployment id")]
async fn all_events_shipped(world: &mut DmsWorld) {
    let id = deployment(world);
    let nodes = world.devnet.as_ref().and_then(|d| d["nodes"].as_array()).map_or(0, Vec::len);
    let mut recorded = Vec::new();
    for i in 0..nodes {
        for event in events(world, i, &["--deployment", &id]).await {
            recorded.push((event["node"].clone(), event["id"].clone()));
        }
    }
    assert!(recorded.len() > 5, "few events recorded: {recorded:?}");
    let receiver = receiver(world);
    eventually("events shipped", || async {
        let docs = receiver.received().documents;
        let missing: Vec<_> = recorded
            .iter()
            .filter(|(node, eid)| {
                !docs.iter().any(|d| {
                    d["node"] == *node && d["id"] == *eid && d["deployment"] == id.as_str()
                })
            })
            .collect();
        if missing.is_empty() { Ok(()) } else { Err(format!("not shipped: {missing:?}")) }
    })
    .await;
    assert!(receiver.received().templates.contains_key("dms-events"), "index template installed");
}

#[then(regex = r#"^the providers' events include a bid and the allocation reaching "([^"]+)"$"#)]
async fn provider_events(world: &mut DmsWorld, state: String) {
    let id = deployment(world);
    let orchestrator = node(world, 0)["did"].clone();
    let docs = receiver(world).received().documents;
    let theirs: Vec<&Value> = docs
        .iter()
        .filter(|d| d["deployment"] == id.as_str() && d["node"] != orchestrator)
        .collect();
    let bidders: std::collections::BTreeSet<&str> =
        theirs.iter().filter(|d| d["kind"] == "bid").filter_map(|d| d["node"].as_str()).collect();
    assert!(bidders.len() >= 2, "bids of two providers: {theirs:#?}");
    let reached = theirs.iter().any(|d| d["kind"] == "allocation" && d["state"] == state.as_str());
    assert!(reached, "no allocation reached {state}: {theirs:#?}");
}

#[then("spans from two nodes share the deployment's trace id, as do its events")]
async fn one_trace(world: &mut DmsWorld) {
    let id = deployment(world);
    let receiver = receiver(world);
    let mut trace = String::new();
    eventually("one trace across nodes", || {
        let received = receiver.received();
        let found = received
            .spans
            .iter()
            .find(|s| s.name == "deployment" && s.attributes.get("id") == Some(&id))
            .map(|s| (s.trace_id.clone(), s.instance.clone()));
        let result = match found {
            None => Err(format!("no span of deployment {id} among {} spans", received.spans.len())),
            Some((t, instance)) => {
                trace = t.clone();
                let others: std::collections::BTreeSet<&str> = received
                    .spans
                    .iter()
                    .filter(|s| s.trace_id == t && s.instance != instance)
                    .map(|s| s.instance.as_str())
                    .collect();
                if others.is_empty() {
                    Err(format!("trace {t} has spans of {instance} only"))
                } else {
                    Ok(())
                }
            }
        };
        async move { result }
    })
    .await;
    let orchestrator = node(world, 0)["did"].as_str().expect("did").to_string();
    let docs = receiver.received().documents;
    let theirs: Vec<&Value> = docs
        .iter()
        .filter(|d| d["deployment"] == id.as_str() && d["node"] == orchestrator.as_str())
        .collect();
    assert!(
        theirs.iter().any(|d| d["trace_id"] == trace.as_str()),
        "events in trace {trace}: {theirs:#?}"
    );
}

/// The local token and API address of devnet node `index`.
fn api(world: &DmsWorld, index: usize) -> (String, String, std::path::PathBuf) {
    let n = node(world, index);
    let home = std::path::PathBuf::from(n["home"].as_str().expect("home"));
    let token = std::fs::read_to_string(home.join("api.token")).expect("api.token");
    (n["api"].as_str().expect("api").to_string(), token.trim().to_string(), home)
}

#[then(regex = r#"^"promtool check metrics" accepts the metrics of node (\d+)$"#)]
async fn promtool(world: &mut DmsWorld, index: usize) {
    let (addr, token, _) = api(world, index);
    let text = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /metrics")
        .error_for_status()
        .expect("metrics served")
        .text()
        .await
        .expect("metrics text");
    assert!(text.contains("dms_messages_received_total"), "{text}");
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus)");
    use tokio::io::AsyncWriteExt as _;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("metrics written to promtool");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool ends");
    assert!(
        out.status.success(),
        "promtool refused the metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts Prometheus scraping node `index` every second with its token file.
async fn start_prometheus(world: &mut DmsWorld, index: usize) -> String {
    if let Some(p) = &world.prometheus {
        return p.url.clone();
    }
    let (addr, _, home) = api(world, index);
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         scrape_configs:\n  - job_name: dms\n    metrics_path: /metrics\n    \
         authorization: {{type: Bearer, credentials_file: {}}}\n    \
         static_configs: [{{targets: [\"{addr}\"]}}]\n",
        home.join("api.token").display()
    );
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config).expect("prometheus.yml");
    let child = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus runs (apt-get install prometheus)");
    let url = format!("http://127.0.0.1:{port}");
    world.prometheus = Some(Prometheus { url: url.clone(), _child: child, _dir: dir });
    url
}

/// The samples of an instant query.
async fn query(url: &str, promql: &str) -> Result<Vec<Value>, String> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let answer: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/query?query={encoded}"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer["data"]["result"].as_array().cloned().unwrap_or_default())
}

#[then(regex = r#"^Prometheus scraping node (\d+) finds (\w+)\{(\w+)="(\w+)"\} = (\d+)$"#)]
async fn prometheus_value(
    world: &mut DmsWorld,
    index: usize,
    name: String,
    label: String,
    value: String,
    expected: String,
) {
    let url = start_prometheus(world, index).await;
    let promql = format!("{name}{{{label}=\"{value}\"}}");
    eventually(&format!("Prometheus query {promql}"), || {
        let (url, promql, expected) = (url.clone(), promql.clone(), expected.clone());
        async move {
            let samples = query(&url, &promql).await?;
            let got =
                samples.first().and_then(|s| s["value"][1].as_str()).unwrap_or("none").to_string();
            if got == expected { Ok(()) } else { Err(format!("{promql} = {got}: {samples:?}")) }
        }
    })
    .await;
}

#[then(regex = r"^Prometheus scraping node (\d+) finds series of (\w+) and (\w+)$")]
async fn prometheus_series(world: &mut DmsWorld, index: usize, first: String, second: String) {
    let url = start_prometheus(world, index).await;
    for name in [first, second] {
        eventually(&format!("Prometheus series {name}"), || {
            let (url, name) = (url.clone(), name.clone());
            async move {
                let samples = query(&url, &name).await?;
                if samples.is_empty() { Err(format!("no {name} series")) } else { Ok(()) }
            }
        })
        .await;
    }
}

#[when(regex = r"^node (\d+) sends node (\d+) a message for a behavior it does not have$")]
async fn unknown_behavior(world: &mut DmsWorld, from: usize, to: usize) {
    let dest = peer(world, to);
    let args = ["actor", "cmd", "--raw", "/dms/node/no/such/behavior", "--dest", &dest];
    let out = devnet_cli(world, from, &args).await;
    assert!(!out.status.success(), "an unknown behavior was answered:\n{}", out.stdout);
    // Refused by the node (which logs it before answering), not by this CLI.
    assert!(out.stderr.contains("unknown_behavior"), "{}", out.stderr);
}

fn node_log(world: &DmsWorld, index: usize) -> String {
    let home = std::path::PathBuf::from(node(world, index)["home"].as_str().expect("home"));
    std::fs::read_to_string(home.join("dms.log")).expect("node log")
}

#[then(regex = r#"^node (\d+)'s log does not show "([^"]+)"$"#)]
async fn log_lacks(world: &mut DmsWorld, index: usize, text: String) {
    let log = node_log(world, index);
    assert!(!log.contains(&text), "{text:?} logged before the level was raised:\n{log}");
}

#[then(regex = r#"^node (\d+)'s log shows "([^"]+)"$"#)]
async fn log_shows(world: &mut DmsWorld, index: usize, text: String) {
    let log = node_log(world, index);
    assert!(log.contains(&text), "{text:?} not in node {index}'s log:\n{log}");
}

#[then(regex = r"^node (\d+)'s log still holds the run before its restart$")]
async fn log_kept(world: &mut DmsWorld, index: usize) {
    let log = node_log(world, index);
    let starts = log.matches(&format!("=== dms devnet: node-{index} starting at")).count();
    let readies = log.matches("dms ready").count();
    assert!(starts >= 2 && readies >= 2, "{starts} starts, {readies} ready lines:\n{log}");
}

#[when(
    regex = r#"^the devnet user sets the log level of node (\d+) to "([^"]+)" from node (\d+)$"#
)]
async fn set_level(world: &mut DmsWorld, to: usize, level: String, from: usize) {
    let dest = peer(world, to);
    let out = devnet_cli(world, from, &["log-level", &level, "--dest", &dest]).await;
    assert!(out.status.success(), "dms log-level failed:\n{}", out.stderr);
    assert!(out.stdout.contains(&format!("Log level is now {level}")), "{}", out.stdout);
}

#[then(regex = r#"^"dms log-level" on node (\d+) says "([^"]+)"$"#)]
async fn level_is(world: &mut DmsWorld, index: usize, level: String) {
    let out = devnet_cli(world, index, &["log-level"]).await;
    assert!(out.status.success(), "dms log-level failed:\n{}", out.stderr);
    assert_eq!(out.stdout.trim(), level);
}

#[then(regex = r#"^"dms events --kind (\w+)" on node (\d+) lists "([^"]+)"$"#)]
async fn kind_lists(world: &mut DmsWorld, kind: String, index: usize, state: String) {
    let found = events(world, index, &["--kind", &kind]).await;
    assert!(found.iter().any(|e| e["state"] == state.as_str()), "{found:#?}");
}

#[then(regex = r#"^"dms status" on node (\d+) shows "([^"]+)"$"#)]
async fn status_shows(world: &mut DmsWorld, index: usize, text: String) {
    let out = devnet_cli(world, index, &["status"]).await;
    assert!(out.status.success(), "dms status failed:\n{}", out.stderr);
    assert!(out.stdout.contains(&text), "{text:?} not in:\n{}", out.stdout);
}
