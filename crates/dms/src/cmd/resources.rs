//! `dms onboard`, `dms offboard`, `dms hardware`, `dms benchmark`: the machine's
//! resources, through the node's behaviors (`/dms/node/onboarding/*`,
//! `/dms/node/hardware/*`), signed like every other message.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::Ctx;
use super::actor::call;
use crate::cli::{ActorTarget, OnboardArgs, Output};
use crate::client::ApiClient;
use crate::output;

fn print_or<F: FnOnce(&Value)>(ctx: &Ctx, value: &Value, table: F) -> anyhow::Result<()> {
    match ctx.output {
        Output::Json => output::json(value),
        Output::Table => {
            table(value);
            Ok(())
        }
    }
}

fn line(label: &str, r: &Value) -> (String, String) {
    let text = serde_json::from_value::<dms_types::resources::Resources>(r.clone())
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "-".into());
    (label.to_string(), text)
}

fn print_status(status: &Value) {
    if status["onboarded"].is_null() {
        println!(
            "This machine is not onboarded. Offer resources with `dms onboard --cpu N --ram SIZE --disk SIZE`."
        );
    } else {
        let rows = [
            line("onboarded", &status["onboarded"]["resources"]),
            line("committed", &status["committed"]),
            line("allocated", &status["allocated"]),
            line("free", &status["free"]),
        ];
        let pairs: Vec<(&str, String)> =
            rows.iter().map(|(l, t)| (l.as_str(), t.clone())).collect();
        output::fields(&pairs);
    }
    if let Some(rtts) = status["peer_rtt_ms"].as_array().filter(|r| !r.is_empty()) {
        let text: Vec<String> = rtts
            .iter()
            .map(|r| {
                let peer = r["peer_id"].as_str().unwrap_or_default();
                let short = &peer[peer.len().saturating_sub(8)..];
                format!("…{short} {} ms", r["rtt_ms"])
            })
            .collect();
        println!("peer round trips: {}", text.join(", "));
    }
    let benchmark = &status["benchmark"];
    if status["benchmark_running"].as_bool() == Some(true) {
        println!("benchmark: running");
    } else if benchmark.is_null() {
        println!("benchmark: none yet (run `dms benchmark`)");
    } else {
        print_scores(benchmark);
    }
}

fn print_scores(report: &Value) {
    let s = &report["scores"];
    let when = report["timestamp"]
        .as_u64()
        .map(|t| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
            )
            .to_string()
        })
        .unwrap_or_default();
    println!("benchmark ({when}):");
    let f = |key: &str| s[key].as_f64().map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
    output::fields(&[
        ("  cpu single-core", f("cpu_single")),
        ("  cpu multi-core", f("cpu_multi")),
        ("  memory GiB/s", f("memory_gib_per_sec")),
        ("  disk write MiB/s", f("disk_write_mib_per_sec")),
        ("  disk read MiB/s", f("disk_read_mib_per_sec")),
        ("  disk random IOPS", f("disk_random_read_iops")),
    ]);
}

/// `dms onboard --cpu --ram --disk [--gpus]`
pub async fn onboard(ctx: &Ctx, amounts: OnboardArgs) -> anyhow::Result<()> {
    let (Some(cpu), Some(ram), Some(disk)) = (&amounts.cpu, &amounts.ram, &amounts.disk) else {
        bail!(
            "say what to offer: `dms onboard --cpu 2 --ram 4GiB --disk 20GiB [--gpus 0,1]`, \
             or see what is offered with `dms onboard status`"
        );
    };
    let payload = json!({ "cpu": cpu, "ram": ram, "disk": disk, "gpus": amounts.gpus });
    let answer = call(ctx, &amounts.target, "/dms/node/onboarding/onboard", payload).await?;
    print_or(ctx, &answer, |status| {
        println!("Onboarded.");
        print_status(status);
    })
}

/// `dms onboard status`
pub async fn status(ctx: &Ctx, target: &ActorTarget) -> anyhow::Result<()> {
    let status = call(ctx, target, "/dms/node/onboarding/status", Value::Null).await?;
    print_or(ctx, &status, print_status)
}

/// `dms offboard`
pub async fn offboard(ctx: &Ctx, target: &ActorTarget) -> anyhow::Result<()> {
    let answer = call(ctx, target, "/dms/node/onboarding/offboard", Value::Null).await?;
    print_or(ctx, &answer, |_| println!("Offboarded: this machine offers nothing now."))
}

/// `dms hardware [--usage]`
pub async fn hardware(ctx: &Ctx, usage: bool, target: &ActorTarget) -> anyhow::Result<()> {
    let behavior = if usage { "/dms/node/hardware/usage" } else { "/dms/node/hardware/spec" };
    let answer = call(ctx, target, behavior, Value::Null).await?;
    output::json(&answer)
}

/// `dms benchmark`: runs here with a progress bar, then records the report with the
/// node (which stores it and advertises it in its capability).
pub async fn benchmark(
    ctx: &Ctx,
    budget: &str,
    dir: Option<PathBuf>,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    let budget = humantime::parse_duration(budget)
        .with_context(|| format!("--budget {budget:?}: e.g. 15s"))?;
    // Fail before a long run when there is no daemon to record the result.
    ApiClient::new(ctx.api_addr()?)?.get::<Value>("/api/v1/actor/handle").await?;
    let dir = dir.unwrap_or_else(|| ctx.home.root().to_path_buf());
    let options = dms_hardware::Options { dir, total_budget: budget, ..Default::default() };
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = bar.clone();
    let report = tokio::task::spawn_blocking(move || {
        dms_hardware::run_benchmarks(&options, |p| {
            progress.set_message(p.step.to_string());
            progress.set_position((p.fraction * 1000.0) as u64);
        })
    })
    .await
    .context("the benchmark task failed")??;
    bar.finish_and_clear();
    let report = serde_json::to_value(&report)?;
    call(ctx, target, "/dms/node/hardware/benchmark", json!({ "report": report })).await?;
    print_or(ctx, &report, print_scores)
}
