//! `dms onboard`, `dms offboard`, `dms hardware`, `dms benchmark`: the machine's
//! resources, through the node's behaviors (`/dms/node/onboarding/*`,
//! `/dms/node/hardware/*`), signed like every other message.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use dms_hardware::BenchmarkReport;
use dms_protocol::onboarding::{
    Amount, Benchmark, GetOnboarding, HardwareSpec, HardwareUsage, Offboard, Onboard,
    OnboardingStatus,
};
use serde::Serialize;

use super::Ctx;
use super::actor::request;
use crate::cli::{ActorTarget, OnboardArgs, Output};
use crate::output;

fn print_or<T: Serialize>(ctx: &Ctx, value: &T, table: impl FnOnce(&T)) -> anyhow::Result<()> {
    match ctx.output {
        Output::Json => output::json(value),
        Output::Table => {
            table(value);
            Ok(())
        }
    }
}

fn print_status(status: &OnboardingStatus) {
    let accounts = &status.accounts;
    match &accounts.onboarded {
        None => println!(
            "This machine is not onboarded. Offer resources with `dms onboard --cpu N --ram SIZE --disk SIZE`."
        ),
        Some(onboarded) => output::fields(&[
            ("onboarded", onboarded.resources.to_string()),
            ("committed", accounts.committed.to_string()),
            ("allocated", accounts.allocated.to_string()),
            ("free", accounts.free.to_string()),
        ]),
    }
    if !status.peer_rtt_ms.is_empty() {
        let text: Vec<String> = status
            .peer_rtt_ms
            .iter()
            .map(|r| {
                let short = &r.peer_id[r.peer_id.len().saturating_sub(8)..];
                format!("…{short} {} ms", r.rtt_ms)
            })
            .collect();
        println!("peer round trips: {}", text.join(", "));
    }
    match &status.benchmark {
        _ if status.benchmark_running => println!("benchmark: running"),
        None => println!("benchmark: none yet (run `dms benchmark`)"),
        Some(report) => print_scores(report),
    }
}

fn print_scores(report: &BenchmarkReport) {
    let s = &report.scores;
    let when = output::rfc3339_secs(report.timestamp);
    println!("benchmark ({when}):");
    let f = |v: f64| format!("{v:.1}");
    let g = |v: Option<f64>| v.map_or_else(|| "-".into(), f);
    output::fields(&[
        ("  cpu single-core", f(s.cpu_single)),
        ("  cpu multi-core", f(s.cpu_multi)),
        ("  memory GiB/s", f(s.memory_gib_per_sec)),
        ("  disk write MiB/s", g(s.disk_write_mib_per_sec)),
        ("  disk read MiB/s", g(s.disk_read_mib_per_sec)),
        ("  disk random IOPS", g(s.disk_random_read_iops)),
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
    let onboard = Onboard {
        cpu: Amount::Text(cpu.clone()),
        ram: Amount::Text(ram.clone()),
        disk: Amount::Text(disk.clone()),
        gpus: amounts.gpus.clone(),
    };
    let answer = request(ctx, &amounts.target, &onboard).await?;
    print_or(ctx, &answer, |status| {
        println!("Onboarded.");
        print_status(status);
    })
}

/// `dms onboard status`
pub async fn status(ctx: &Ctx, target: &ActorTarget) -> anyhow::Result<()> {
    let status = request(ctx, target, &GetOnboarding {}).await?;
    print_or(ctx, &status, print_status)
}

/// `dms offboard`
pub async fn offboard(ctx: &Ctx, target: &ActorTarget) -> anyhow::Result<()> {
    let answer = request(ctx, target, &Offboard {}).await?;
    print_or(ctx, &answer, |_| println!("Offboarded: this machine offers nothing now."))
}

/// `dms hardware [--usage]`
pub async fn hardware(ctx: &Ctx, usage: bool, target: &ActorTarget) -> anyhow::Result<()> {
    if usage {
        output::json(&request(ctx, target, &HardwareUsage {}).await?)
    } else {
        output::json(&request(ctx, target, &HardwareSpec {}).await?)
    }
}

/// `dms benchmark`: runs here with a progress bar, then records the report with the
/// node (which stores it and advertises it in its capability).
pub async fn benchmark(
    ctx: &Ctx,
    budget: &str,
    dir: Option<PathBuf>,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    let budget =
        dms_types::units::parse_duration(budget).with_context(|| format!("--budget {budget:?}"))?;
    // Fail before a long run when there is no daemon to record the result.
    ctx.api_client()?.get::<dms_actor::Handle>("/api/v1/actor/handle").await?;
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
    let report = request(ctx, target, &Benchmark { report: Some(report) }).await?;
    print_or(ctx, &report, print_scores)
}
