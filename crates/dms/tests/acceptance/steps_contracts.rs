//! Steps of `contracts.feature`: contracts made and signed through `dms contract` on two
//! devnet nodes, WebAssembly services deployed under them, receipts and ledgers read
//! through `dms deployments usage` and `dms contract show`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cucumber::{given, then, when};
use serde_json::Value;

use super::daemon::patience;
use super::steps_deploy::{
    configure, deploy, devnet_cli, node, peer, spin_module, wait_for_peers, write,
};
use super::world::DmsWorld;

#[given(regex = r"^node (\d+) requires contracts and signs usage receipts every (\S+)$")]
async fn requires_contracts(world: &mut DmsWorld, index: usize, every: String) {
    let home = node(world, index)["home"].as_str().expect("home").to_string();
    let set = super::daemon::run(
        std::path::Path::new(&home),
        &["config", "set", "deployment.receipt_every", &every],
        &[],
    )
    .await;
    assert!(set.status.success(), "{}", set.stderr);
    configure(world, index, "deployment.require_contract", "true").await;
    wait_for_peers(world).await;
}

fn did(world: &DmsWorld, index: usize) -> String {
    node(world, index)["did"].as_str().expect("did").to_string()
}

async fn cli_json(world: &DmsWorld, index: usize, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    let out = devnet_cli(world, index, &full).await;
    assert!(out.status.success(), "dms {args:?} on node {index}:\n{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("JSON")
}

#[given(regex = r"^node (\d+) and node (\d+) signed a contract paying (\d+) USD per hour$")]
async fn signed_contract(world: &mut DmsWorld, requester: usize, provider: usize, price: String) {
    let (made, signed) = (write(world, "contract.txt", ""), write(world, "signed.txt", ""));
    let provider_did = did(world, provider);
    let new = [
        "contract",
        "new",
        "--provider",
        &provider_did,
        "--model",
        "pay_per_time_utilization",
        "--price",
        &price,
        "--currency",
        "USD",
        "--out",
        &made,
    ];
    cli_json(world, requester, &new).await;
    let view = cli_json(world, provider, &["contract", "sign", &made, "--out", &signed]).await;
    assert_eq!(view["complete"], true, "{view:#}");
    let kept = cli_json(world, requester, &["contract", "sign", &signed]).await;
    assert_eq!(kept["complete"], true, "{kept:#}");
    assert_eq!(kept["side"], "requester", "{kept:#}");
    world.contract = Some(kept["id"].as_str().expect("id").to_string());
}

fn service_on(world: &DmsWorld, index: usize, contract: bool, budget: Option<u32>) -> String {
    let module = spin_module(world);
    let mut text = format!(
        "version: V1\nallocations:\n  work:\n    type: service\n    executor: wasm\n    resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {{module: {module}}}\nnodes:\n  only: {{allocations: [work], peer: {}}}\n",
        peer(world, index)
    );
    if contract {
        let id = world.contract.as_deref().expect("a contract");
        text.push_str(&format!("contracts:\n  main: {{id: {id}}}\n"));
    }
    if let Some(budget) = budget {
        text.push_str(&format!("requirements: {{budget: {budget}, currency: USD}}\n"));
    }
    write(world, "contract-service.yaml", &text)
}

#[when(regex = r"^the devnet user plans a WebAssembly service on node (\d+) with no contract$")]
async fn plan_without(world: &mut DmsWorld, index: usize) {
    let file = service_on(world, index, false, None);
    deploy(world, &file, &["--plan"]).await;
}

#[when(regex = r"^the devnet user plans a WebAssembly service on node (\d+) under that contract$")]
async fn plan_under(world: &mut DmsWorld, index: usize) {
    let file = service_on(world, index, true, None);
    deploy(world, &file, &["--plan"]).await;
}

#[when(
    regex = r"^the devnet user deploys a WebAssembly service on node (\d+) under that contract$"
)]
async fn deploy_under(world: &mut DmsWorld, index: usize) {
    let file = service_on(world, index, true, None);
    deploy(world, &file, &[]).await;
}

#[when(
    regex = r"^the devnet user deploys a WebAssembly service on node (\d+) under that contract with a budget of (\d+) USD$"
)]
async fn deploy_with_budget(world: &mut DmsWorld, index: usize, budget: u32) {
    let file = service_on(world, index, true, Some(budget));
    deploy(world, &file, &[]).await;
}

async fn usage(world: &DmsWorld) -> Value {
    let id = world.deployment.clone().expect("a deployment");
    cli_json(world, 0, &["deployments", "usage", &id]).await
}

/// The receipts of the deployment's one allocation, in order.
fn receipts(usage: &Value) -> Vec<Value> {
    usage["allocations"][0]["receipts"].as_array().cloned().unwrap_or_default()
}

/// Polls the usage until `done` holds, within the patience.
async fn usage_until(world: &DmsWorld, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + patience();
    loop {
        let usage = usage(world).await;
        if done(&usage) {
            return usage;
        }
        assert!(Instant::now() < deadline, "{what}; usage:\n{usage:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[then(
    regex = r"^the deployment soon has (\d+) receipts, numbered in order, each covering the (\d+)s schedule$"
)]
async fn receipts_in_order(world: &mut DmsWorld, count: usize, every: u64) {
    let usage = usage_until(world, "receipts", |u| receipts(u).len() >= count).await;
    let receipts = receipts(&usage);
    assert!(usage["allocations"][0]["gaps"].as_array().is_some_and(Vec::is_empty), "{usage:#}");
    for (i, receipt) in receipts.iter().enumerate() {
        assert_eq!(receipt["seq"], i as u64, "{usage:#}");
        let span =
            receipt["to_ms"].as_u64().unwrap_or(0) - receipt["from_ms"].as_u64().unwrap_or(0);
        // Whole seconds of the schedule (a late tick covers the seconds it was late too).
        assert!(span >= every * 1000 && span % 1000 == 0, "receipt {i} spans {span} ms: {usage:#}");
        assert_eq!(receipt["usage"]["wall_secs"], span / 1000, "{usage:#}");
        if i > 0 {
            assert_eq!(receipt["from_ms"], receipts[i - 1]["to_ms"], "contiguous: {usage:#}");
        }
    }
}

#[then(regex = r"^what the deployment owes is (\d+) USD for every second its receipts cover$")]
async fn owes_per_second(world: &mut DmsWorld, per_second: u64) {
    let usage = usage(world).await;
    let secs: u64 = receipts(&usage).iter().filter_map(|r| r["usage"]["wall_secs"].as_u64()).sum();
    assert!(secs > 0, "{usage:#}");
    let owed = &usage["contracts"][0]["owed"];
    assert_eq!(owed["micros"], secs * per_second * 1_000_000, "{usage:#}");
    assert_eq!(owed["currency"], "USD");
}

#[then("the final receipt soon arrives")]
async fn final_receipt(world: &mut DmsWorld) {
    let usage =
        usage_until(world, "the final receipt", |u| u["allocations"][0]["finished"] == true).await;
    let last = receipts(&usage).last().cloned().expect("receipts");
    assert!(last["exit"].is_i64(), "{usage:#}");
}

async fn ledger(world: &DmsWorld, index: usize) -> Value {
    let id = world.contract.clone().expect("a contract");
    cli_json(world, index, &["contract", "show", &id]).await
}

#[then(regex = r"^the ledgers of node (\d+) and node (\d+) agree on what the contract owes$")]
async fn ledgers_agree(world: &mut DmsWorld, requester: usize, provider: usize) {
    // The provider books a receipt when it signs it, the requester when it arrives.
    let deadline = Instant::now() + patience();
    loop {
        let (r, p) = (ledger(world, requester).await, ledger(world, provider).await);
        let booked = r["accrued"]["micros"].as_u64().unwrap_or(0);
        if booked > 0 && r["accrued"] == p["accrued"] {
            let usage = usage(world).await;
            assert_eq!(usage["contracts"][0]["owed"], r["accrued"], "{usage:#}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "requester {:#}\nprovider {:#}",
            r["accrued"],
            p["accrued"]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[then(regex = r#"^the ledgers of node (\d+) and node (\d+) both record "([^"]+)"$"#)]
async fn ledgers_record(world: &mut DmsWorld, requester: usize, provider: usize, text: String) {
    let deadline = Instant::now() + patience();
    for index in [requester, provider] {
        loop {
            let view = ledger(world, index).await;
            let lines = view["ledger"].as_array().cloned().unwrap_or_default();
            if lines.iter().any(|l| l.as_str().is_some_and(|l| l.contains(&text))) {
                break;
            }
            assert!(Instant::now() < deadline, "node {index} ledger: {:#}", view["ledger"]);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

async fn hand_over(world: &mut DmsWorld, text: &str) {
    let file = write(world, "receipt.txt", text);
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "receipt", &id, &file, "-o", "json"]).await;
    world.last = Some(out);
}

/// A receipt node `index` sent for the deployment (its first).
async fn sent_receipt(world: &DmsWorld, index: usize) -> String {
    let view = ledger(world, index).await;
    let id = world.deployment.clone().expect("a deployment");
    let receipts = view["receipts"].as_array().cloned().unwrap_or_default();
    let first = receipts.iter().find(|r| r["deployment"] == id.as_str()).expect("a receipt");
    first["text"].as_str().expect("text").to_string()
}

#[when(regex = r"^the devnet user hands the orchestrating node a receipt node (\d+) sent before$")]
async fn replay(world: &mut DmsWorld, index: usize) {
    let text = sent_receipt(world, index).await;
    hand_over(world, &text).await;
}

#[when(
    regex = r"^the devnet user hands the orchestrating node a receipt of node (\d+) with its usage changed$"
)]
async fn forge(world: &mut DmsWorld, index: usize) {
    let text = sent_receipt(world, index).await;
    let bytes = URL_SAFE_NO_PAD.decode(text).expect("base64url");
    // Same statement and signature, one MiB-second of memory less (still plausible: a
    // claim beyond what the allocation holds is refused before its signature is read).
    let (mut statement, signature): (dms_contracts::receipt::Statement, serde_bytes::ByteBuf) =
        serde_ipld_dagcbor::from_slice(&bytes).expect("a receipt");
    statement.usage.ram_mib_secs -= 1;
    let forged = serde_ipld_dagcbor::to_vec(&(&statement, &signature)).expect("encode");
    hand_over(world, &URL_SAFE_NO_PAD.encode(forged)).await;
}

#[then("the receipt is taken as a repeat and counted once")]
async fn repeat(world: &mut DmsWorld) {
    let out = world.last();
    assert!(out.status.success(), "{}", out.stderr);
    let answer: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(answer["outcome"], "repeat", "{answer:#}");
    let usage = usage(world).await;
    let zeros = receipts(&usage).iter().filter(|r| r["seq"] == 0).count();
    assert_eq!(zeros, 1, "{usage:#}");
}

#[then(regex = r#"^the receipt is refused as "([^"]+)"$"#)]
async fn refused(world: &mut DmsWorld, code: String) {
    let out = world.last();
    let answer: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(answer["outcome"], "refused", "{answer:#}");
    assert_eq!(answer["code"], code.as_str(), "{answer:#}");
}

#[then(regex = r#"^the deployment is soon "([^"]+)" because "([^"]+)"$"#)]
async fn soon_because(world: &mut DmsWorld, state: String, reason: String) {
    let deadline = Instant::now() + patience();
    loop {
        let status = super::steps_deploy::status(world).await;
        let why = status["reason"].as_str().unwrap_or_default();
        if status["state"] == state.as_str() && why.contains(&reason) {
            return;
        }
        assert!(Instant::now() < deadline, "{status:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[when(regex = r#"^node (\d+) revokes the contract because "([^"]+)"$"#)]
async fn revoke(world: &mut DmsWorld, index: usize, reason: String) {
    let id = world.contract.clone().expect("a contract");
    let revoked = cli_json(world, index, &["contract", "revoke", &id, "--reason", &reason]).await;
    assert_eq!(revoked["broadcast"], true, "{revoked:#}");
}

#[then(regex = r#"^node (\d+) soon sees the contract revoked because "([^"]+)"$"#)]
async fn sees_revoked(world: &mut DmsWorld, index: usize, reason: String) {
    let deadline = Instant::now() + patience();
    loop {
        let view = ledger(world, index).await;
        if view["revoked"].as_str().is_some_and(|r| r.contains(&reason)) {
            return;
        }
        assert!(Instant::now() < deadline, "{view:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
