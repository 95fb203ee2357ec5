//! `dms bench deploy`: how long a deployment takes from submit to running, beside how
//! long the executor itself takes to start the workload, measured in the same runs.
//!
//! Each run deploys a one-allocation WebAssembly service through the local node (bids,
//! selection, commit, allocate, start on whichever provider wins), waits until the
//! allocation runs, reads the executor's own start time from the allocation's status,
//! and shuts the deployment down (not timed). The difference of the medians is what
//! orchestration adds.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use base64::Engine as _;
use dms_protocol::AllocationState;
use dms_protocol::node::{DeploymentStatus, NewDeployment, ShutdownDeployment};
use dms_protocol::record::DeploymentState;
use serde_json::json;

use super::Ctx;
use super::actor::Caller;
use crate::cli::{ActorTarget, Output};
use crate::output;

/// A WASI module that runs until stopped.
pub(super) const SPIN: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;

const ENSEMBLE: &str = "version: V1
allocations:
  work:
    type: service
    executor: wasm
    resources: {cpu: {cores: 0.1}, ram: 16MiB}
    execution: {module: spin.wat}
nodes:
  only: {allocations: [work]}
";

/// Warm-up runs not counted.
pub(super) const WARMUP: usize = 2;

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One run: (submit → running, executor start), in milliseconds.
pub(super) async fn once(caller: &Caller, request: &NewDeployment) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let id = caller.request(request, Duration::from_secs(10)).await?.id;
    let mut after = 0;
    let result = loop {
        let ask = DeploymentStatus { id: id.clone(), after, wait_ms: 5000, from: None };
        let status = caller.request(&ask, Duration::from_secs(20)).await?;
        after = status.events.last().map_or(after, |e| e.seq);
        let work = status.allocations.get("work").map(|a| &a.status);
        if let Some(work) = work
            && work.state == AllocationState::Running
        {
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            let start = work.start_us.map_or(f64::NAN, |us| us as f64 / 1000.0);
            break Ok((elapsed, start));
        }
        if status.state == DeploymentState::Failed {
            let reason = status.reason.unwrap_or_default();
            break Err(anyhow!("deployment {id} failed: {reason}"));
        }
        if started.elapsed() > Duration::from_secs(60) {
            break Err(anyhow!("deployment {id} did not run within 60 s"));
        }
    };
    caller.request(&ShutdownDeployment { id }, Duration::from_secs(60)).await?;
    result
}

/// The deployment every run submits: one WebAssembly service.
pub(super) fn request() -> anyhow::Result<NewDeployment> {
    let ensemble =
        dms_ensemble::load(ENSEMBLE).map_err(|e| anyhow!("bench ensemble: {e}"))?.ensemble;
    let module = base64::engine::general_purpose::STANDARD.encode(SPIN);
    Ok(NewDeployment {
        ensemble,
        modules: [("work".to_string(), module)].into(),
        timeout_ms: None,
        credentials: None,
    })
}

/// `dms bench deploy --runs N`
pub async fn deploy(ctx: &Ctx, runs: usize, target: &ActorTarget) -> anyhow::Result<()> {
    if runs < 1 {
        bail!("--runs must be at least 1");
    }
    let request = request()?;
    // The key is unlocked once: the runs measure the deployment, not the CLI.
    let caller = Caller::open(ctx, target).await?;
    let mut totals = Vec::new();
    let mut starts = Vec::new();
    let progress =
        output::Progress::new("run", (runs + WARMUP) as u64, ctx.output == Output::Table);
    for i in 0..runs + WARMUP {
        let (total, start) = once(&caller, &request).await?;
        if i >= WARMUP {
            totals.push(total);
            starts.push(start);
        }
        progress.step();
    }
    progress.finish();
    totals.sort_by(f64::total_cmp);
    starts.sort_by(f64::total_cmp);
    let (t50, t99) = (percentile(&totals, 50.0), percentile(&totals, 99.0));
    let (s50, s99) = (percentile(&starts, 50.0), percentile(&starts, 99.0));
    let overhead = t50 - s50;
    let report = json!({
        "runs": runs,
        "submit_to_running_ms": { "p50": t50, "p99": t99 },
        "executor_start_ms": { "p50": s50, "p99": s99 },
        "overhead_p50_ms": overhead,
        "ratio_p50": t50 / s50,
        "target_overhead_ms": 100.0,
        "met": overhead <= 100.0,
    });
    match ctx.output {
        Output::Json => output::json(&report),
        Output::Table => {
            let rows = vec![
                vec![
                    "submit → running (whole deployment)".into(),
                    format!("{t50:.1}"),
                    format!("{t99:.1}"),
                ],
                vec!["executor start (same runs)".into(), format!("{s50:.2}"), format!("{s99:.2}")],
            ];
            println!("{runs} runs of a one-allocation WebAssembly service:");
            output::table(&["measure", "p50 ms", "p99 ms"], &rows);
            println!(
                "orchestration overhead at p50: {overhead:.1} ms (target ≤ 100 ms: {}); ratio {:.1}×",
                if overhead <= 100.0 { "met" } else { "NOT met" },
                t50 / s50
            );
            Ok(())
        }
    }
}
