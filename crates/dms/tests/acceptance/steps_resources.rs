//! Steps for onboarding, hardware and benchmarks, driven through `dms onboard`,
//! `dms offboard`, `dms hardware` and `dms benchmark` against a real daemon.

use cucumber::{given, then, when};
use serde_json::Value;

use super::steps_p2p::{on, on_ok, start_nodes};
use super::world::DmsWorld;

#[given("a running node whose user is trusted")]
async fn running_node(world: &mut DmsWorld) {
    start_nodes(world, 1).await;
}

#[given(regex = r#"^the user onboards "([^"]*)"$"#)]
#[when(regex = r#"^the user onboards "([^"]*)"$"#)]
async fn onboards(world: &mut DmsWorld, args: String) {
    let mut full = vec!["onboard"];
    full.extend(args.split_whitespace());
    world.last = Some(on(world, "A", &full).await);
}

#[when("the user offboards")]
async fn offboards(world: &mut DmsWorld) {
    on_ok(world, "A", &["offboard"]).await;
}

#[then(regex = r#"^the command fails saying "([^"]+)"$"#)]
async fn command_fails(world: &mut DmsWorld, text: String) {
    let last = world.last();
    assert!(!last.status.success(), "succeeded:\n{}", last.stdout);
    assert!(last.stderr.contains(&text), "expected {text:?} in:\n{}", last.stderr);
}

async fn status(world: &DmsWorld) -> Value {
    let out = on_ok(world, "A", &["onboard", "status", "-o", "json"]).await;
    serde_json::from_str(&out).expect("status is JSON")
}

#[then(
    regex = r#"^"dms onboard status" shows (\d+) CPU cores?, "([^"]+)" RAM and "([^"]+)" disk onboarded$"#
)]
async fn shows_onboarded(world: &mut DmsWorld, cores: u64, ram: String, disk: String) {
    let status = status(world).await;
    let onboarded = &status["onboarded"]["resources"];
    assert_eq!(onboarded["cpu_millicores"], Value::from(cores * 1000), "{status}");
    let table = on_ok(world, "A", &["onboard", "status"]).await;
    assert!(table.contains(&ram) && table.contains(&disk), "{ram} / {disk} not in:\n{table}");
}

#[then(r#""dms onboard status" shows the same amounts free"#)]
async fn shows_free(world: &mut DmsWorld) {
    let status = status(world).await;
    assert_eq!(status["free"], status["onboarded"]["resources"], "{status}");
}

#[then(r#""dms onboard status" says the machine is not onboarded"#)]
async fn not_onboarded(world: &mut DmsWorld) {
    let status = status(world).await;
    assert!(status["onboarded"].is_null(), "{status}");
    let table = on_ok(world, "A", &["onboard", "status"]).await;
    assert!(table.contains("not onboarded"), "{table}");
}

#[when("the user asks for the hardware spec")]
async fn hardware_spec(world: &mut DmsWorld) {
    world.last = Some(on(world, "A", &["hardware", "-o", "json"]).await);
}

#[then("it shows the CPU cores, the RAM and at least one disk")]
async fn shows_hardware(world: &mut DmsWorld) {
    let last = world.last();
    assert!(last.status.success(), "failed:\n{}", last.stderr);
    let spec: Value = serde_json::from_str(&last.stdout).expect("JSON");
    assert!(spec["cpu"]["logical_threads"].as_u64().is_some_and(|c| c >= 1), "{spec}");
    assert!(spec["memory"]["total_bytes"].as_u64().is_some_and(|m| m > 0), "{spec}");
    assert!(spec["disks"].as_array().is_some_and(|d| !d.is_empty()), "{spec}");
    assert!(spec["gpus"].as_array().is_some_and(Vec::is_empty), "no GPU here: {spec}");
}

#[when(regex = r#"^the user runs "dms benchmark --budget (\w+)"$"#)]
async fn runs_benchmark(world: &mut DmsWorld, budget: String) {
    let out = on(world, "A", &["benchmark", "--budget", &budget, "-o", "json"]).await;
    world.results = vec![budget];
    world.last = Some(out);
}

/// The bound is the benchmark's own promise (its steps stop at the budget's hard
/// deadline), read from its report: how fast this machine is plays no part.
#[then("it finishes within its budget with CPU, memory and disk scores")]
async fn benchmark_done(world: &mut DmsWorld) {
    let last = world.last();
    assert!(last.status.success(), "benchmark failed:\n{}", last.stderr);
    let budget = humantime::parse_duration(&world.results[0]).expect("budget");
    let report: Value = serde_json::from_str(&last.stdout).expect("JSON report");
    let took = report["duration_secs"].as_f64().expect("duration in the report");
    // The last step's final round may end a little after the deadline it checks.
    assert!(took <= budget.as_secs_f64() * 1.1, "took {took} s of a {budget:?} budget");
    let scores = &report["scores"];
    for key in ["cpu_single", "cpu_multi", "memory_gib_per_sec", "disk_read_mib_per_sec"] {
        assert!(scores[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {report}");
    }
}

#[then(r#""dms onboard status" shows the benchmark scores"#)]
async fn status_has_benchmark(world: &mut DmsWorld) {
    let status = status(world).await;
    assert!(status["benchmark"]["scores"]["cpu_single"].as_f64().is_some(), "{status}");
    assert!(status["benchmark"]["timestamp"].as_u64().is_some(), "{status}");
}

#[then("the node's advertised capability carries the benchmark scores")]
async fn capability_has_benchmark(world: &mut DmsWorld) {
    let status = status(world).await;
    let capability = &status["capability"];
    assert!(capability["benchmarks"]["cpu_single"].as_f64().is_some_and(|v| v > 0.0), "{status}");
    assert!(capability["free"]["cpu_millicores"].as_u64().is_some(), "{status}");
}
