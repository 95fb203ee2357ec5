//! `dms deploy` and `dms deployments`: submit an ensemble to the local node and follow
//! it, list, inspect, read logs of, shut down and prune deployments — all through the
//! node's `/dms/node/deployment/*` behaviors, signed like every message.
//!
//! `dms deploy` reads WebAssembly modules named by path (relative to the ensemble file)
//! and sends them along, so providers need no copy of the file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use super::Ctx;
use super::actor::{Caller, call, timeout};
use crate::cli::{ActorTarget, DeploymentsCommand, Output};
use crate::output;

/// Largest total size of the modules sent with a deployment (the message limit is 1 MiB).
const MAX_MODULES_BYTES: usize = 700 * 1024;
/// How long one status request waits for a new event.
const STATUS_WAIT_MS: u64 = 5_000;

fn with_timeout(target: &ActorTarget, timeout: &str) -> ActorTarget {
    ActorTarget {
        context: target.context.clone(),
        dest: target.dest.clone(),
        timeout: timeout.into(),
    }
}

/// Loads and checks the ensemble, and reads the modules it names by path.
fn request(file: &Path, timeout: Option<Duration>) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let loaded = match dms_ensemble::load(&text) {
        Ok(loaded) => loaded,
        Err(error) => {
            let diagnostics = error.diagnostics();
            eprint!("{}", dms_ensemble::error::render_all(&diagnostics, &name));
            bail!("{name} is not a valid ensemble (see `dms validate {name}`)");
        }
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let mut modules = BTreeMap::new();
    let mut total = 0;
    for (alloc, allocation) in &loaded.ensemble.allocations {
        let Some(module) = &allocation.execution.module else { continue };
        if module.starts_with("http://") || module.starts_with("https://") {
            continue;
        }
        let path = base.join(module);
        let bytes = std::fs::read(&path).with_context(|| {
            format!("allocation {alloc}: cannot read module {} (paths are relative to the ensemble file)", path.display())
        })?;
        total += bytes.len();
        if total > MAX_MODULES_BYTES {
            bail!(
                "the modules add up to more than {} KiB, too large to send along; serve them over \
                 http and give the URL as `module`",
                MAX_MODULES_BYTES / 1024
            );
        }
        modules.insert(alloc.clone(), base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    let mut request = json!({ "ensemble": loaded.ensemble, "modules": modules });
    if let Some(timeout) = timeout {
        request["timeout_ms"] = json!(timeout.as_millis() as u64);
    }
    Ok(request)
}

/// `dms deploy <file> [--plan] [--timeout] [--detach]`
pub async fn deploy(
    ctx: &Ctx,
    file: &Path,
    plan: bool,
    deadline: Option<&str>,
    detach: bool,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    let deadline = deadline
        .map(|t| {
            humantime::parse_duration(t).with_context(|| format!("--deadline {t:?}: e.g. 2m, 90s"))
        })
        .transpose()?;
    let request = request(file, deadline)?;
    if plan {
        let answer =
            call(ctx, &with_timeout(target, "30s"), "/dms/node/deployment/plan", request).await?;
        return print_plan(ctx, &answer);
    }
    // One signer for the submission and every status poll: the key is unlocked once.
    let caller = Caller::open(ctx, target).await?;
    let answer =
        caller.call("/dms/node/deployment/new", request, timeout(&target.timeout)?).await?;
    let id = answer["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the node answered without an id: {answer}"))?
        .to_string();
    if ctx.output == Output::Table {
        println!("deployment {id} submitted");
    }
    if detach {
        if ctx.output == Output::Json {
            output::json(&answer)?;
        } else {
            println!("follow it with `dms deployments status {id}`");
        }
        return Ok(());
    }
    let status = follow(ctx, &caller, &id, true).await?;
    finish(ctx, &status)
}

/// Prints events until the deployment is finished, or runs with every allocation
/// started and only services left running. Returns the last status.
async fn follow(
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    until_settled: bool,
) -> anyhow::Result<Value> {
    let wait = Duration::from_millis(STATUS_WAIT_MS) + Duration::from_secs(10);
    let mut first_at: Option<u64> = None;
    let mut after = 0;
    loop {
        let status = caller
            .call(
                "/dms/node/deployment/status",
                json!({ "id": id, "after": after, "wait_ms": STATUS_WAIT_MS }),
                wait,
            )
            .await?;
        for event in status["events"].as_array().into_iter().flatten() {
            after = after.max(event["seq"].as_u64().unwrap_or(0));
            if ctx.output == Output::Table {
                let at_ms = event["at_ms"].as_u64().unwrap_or(0);
                let at = at_ms.saturating_sub(*first_at.get_or_insert(at_ms)) as f64 / 1000.0;
                let subject =
                    event["allocation"].as_str().map(|a| format!("{a}: ")).unwrap_or_default();
                println!(
                    "[{at:6.2}s] {:<13} {subject}{}",
                    event["state"].as_str().unwrap_or(""),
                    event["message"].as_str().unwrap_or("")
                );
            }
        }
        let state = status["state"].as_str().unwrap_or("");
        let terminal = matches!(state, "completed" | "failed" | "shut_down");
        let only_services_left = state == "running"
            && status["allocations"].as_object().is_some_and(|a| {
                a.values().all(|v| {
                    v["kind"] == "service"
                        || matches!(
                            v["status"]["state"].as_str(),
                            Some("completed" | "failed" | "stopped")
                        )
                })
            });
        if terminal || (until_settled && only_services_left) {
            return Ok(status);
        }
    }
}

fn finish(ctx: &Ctx, status: &Value) -> anyhow::Result<()> {
    if ctx.output == Output::Json {
        output::json(status)?;
    } else {
        print_summary(status);
    }
    if status["state"] == "failed" {
        bail!(
            "deployment {} failed: {}",
            status["id"].as_str().unwrap_or(""),
            status["reason"].as_str().unwrap_or("see its events")
        );
    }
    Ok(())
}

fn print_summary(status: &Value) {
    println!();
    let mut rows = Vec::new();
    let allocations = status["allocations"].as_object().cloned().unwrap_or_default();
    for (name, view) in &allocations {
        rows.push(vec![
            name.clone(),
            view["kind"].as_str().unwrap_or("").into(),
            view["node"].as_str().unwrap_or("").into(),
            view["peer"].as_str().unwrap_or("-").into(),
            view["status"]["state"].as_str().unwrap_or("").into(),
            view["status"]["exit_code"].as_i64().map_or("-".into(), |c| c.to_string()),
        ]);
    }
    println!(
        "deployment {}: {}",
        status["id"].as_str().unwrap_or(""),
        status["state"].as_str().unwrap_or("")
    );
    output::table(&["allocation", "type", "node", "peer", "state", "exit"], &rows);
    for (name, view) in &allocations {
        if let Some(text) = view["status"]["output"].as_str()
            && !text.is_empty()
        {
            println!("\n--- output of {name} ---\n{}", text.trim_end());
        }
    }
}

fn when(ms: &Value) -> String {
    ms.as_u64()
        .map(|ms| {
            let time = std::time::UNIX_EPOCH + Duration::from_millis(ms);
            humantime::format_rfc3339_seconds(time).to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn print_info(record: &Value, events: usize) {
    output::fields(&[
        ("deployment", record["id"].as_str().unwrap_or("").into()),
        ("state", record["state"].as_str().unwrap_or("").into()),
        ("reason", record["reason"].as_str().unwrap_or("-").into()),
        ("submitted", when(&record["created_ms"])),
        ("deadline", when(&record["deadline_ms"])),
        ("attempts", record["attempts"].to_string()),
        ("orchestrator", record["orchestrator"]["did"].as_str().unwrap_or("-").into()),
        (
            "failed peers",
            record["failed_peers"]
                .as_array()
                .map(|p| p.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "-".into()),
        ),
    ]);
    let placement: Vec<Vec<String>> = record["placement"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(node, p)| {
            vec![
                node.clone(),
                p["provider"]["peer"].as_str().unwrap_or("").into(),
                format!("{:.3}", p["score"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    if !placement.is_empty() {
        println!();
        output::table(&["node", "provider", "score"], &placement);
    }
    // Every allocation actor has an identity of its own.
    let identities: Vec<Vec<String>> = record["allocations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, a)| Some(vec![name.clone(), a["handle"]["did"].as_str()?.into()]))
        .collect();
    if !identities.is_empty() {
        println!();
        output::table(&["allocation", "actor DID"], &identities);
    }
    let status = json!({ "id": record["id"], "state": record["state"], "allocations": record["allocations"] });
    print_summary(&status);
    let all = record["events"].as_array().cloned().unwrap_or_default();
    println!("\nlatest events:");
    for event in all.iter().skip(all.len().saturating_sub(events)) {
        let subject = event["allocation"].as_str().map(|a| format!("{a}: ")).unwrap_or_default();
        println!(
            "  {} {:<13} {subject}{}",
            when(&event["at_ms"]),
            event["state"].as_str().unwrap_or(""),
            event["message"].as_str().unwrap_or("")
        );
    }
}

fn print_plan(ctx: &Ctx, plan: &Value) -> anyhow::Result<()> {
    if ctx.output == Output::Json {
        return output::json(plan);
    }
    let answered = plan["answered"].as_array().map_or(0, Vec::len);
    println!("{answered} peers answered");
    for (node, p) in plan["nodes"].as_object().cloned().unwrap_or_default() {
        println!("\nnode {node}:");
        let mut rows = Vec::new();
        for c in p["candidates"].as_array().into_iter().flatten() {
            rows.push(vec![
                c[0].as_str().unwrap_or("").into(),
                format!("{:.3}", c[1].as_f64().unwrap_or(0.0)),
                "candidate".into(),
            ]);
        }
        for r in p["rejected"].as_array().into_iter().flatten() {
            let reasons: Vec<&str> =
                r[1].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            rows.push(vec![
                r[0].as_str().unwrap_or("").into(),
                "-".into(),
                format!("rejected: {}", reasons.join("; ")),
            ]);
        }
        output::table(&["peer", "score", "verdict"], &rows);
    }
    match plan["placement"].as_object() {
        Some(placement) if placement.contains_key("Ok") => {
            println!("\nwould place:");
            for (node, peer) in placement["Ok"].as_object().cloned().unwrap_or_default() {
                println!("  {node} → {}", peer.as_str().unwrap_or(""));
            }
        }
        Some(placement) => {
            println!("\ncannot be placed now: {}", placement["Err"].as_str().unwrap_or(""))
        }
        None => {}
    }
    Ok(())
}

/// `dms deployments ...`
pub async fn deployments(ctx: &Ctx, command: DeploymentsCommand) -> anyhow::Result<()> {
    match command {
        DeploymentsCommand::List { state, target } => {
            let list = call(ctx, &target, "/dms/node/deployment/list", Value::Null).await?;
            let list: Vec<Value> = list
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|d| state.as_deref().is_none_or(|s| d["state"] == s))
                .collect();
            if ctx.output == Output::Json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d["id"].as_str().unwrap_or("").into(),
                        d["state"].as_str().unwrap_or("").into(),
                        format!("{}/{}", d["running"], d["allocations"]),
                        d["peers"].as_array().map_or(0, Vec::len).to_string(),
                        d["reason"].as_str().unwrap_or("").into(),
                    ]
                })
                .collect();
            output::table(&["id", "state", "running", "peers", "reason"], &rows);
            Ok(())
        }
        DeploymentsCommand::Status { id, follow: true, target } => {
            let caller = Caller::open(ctx, &target).await?;
            let status = self::follow(ctx, &caller, &id, false).await?;
            finish(ctx, &status)
        }
        DeploymentsCommand::Status { id, follow: false, target } => {
            let status =
                call(ctx, &target, "/dms/node/deployment/status", json!({ "id": id })).await?;
            if ctx.output == Output::Json {
                return output::json(&status);
            }
            print_summary(&status);
            if let Some(reason) = status["reason"].as_str() {
                println!("\nreason: {reason}");
            }
            Ok(())
        }
        DeploymentsCommand::Info { id, events, target } => {
            let record =
                call(ctx, &target, "/dms/node/deployment/manifest", json!({ "id": id })).await?;
            if ctx.output == Output::Json {
                return output::json(&record);
            }
            print_info(&record, events);
            Ok(())
        }
        DeploymentsCommand::Manifest { id, target } => {
            let manifest =
                call(ctx, &target, "/dms/node/deployment/manifest", json!({ "id": id })).await?;
            output::json(&manifest)
        }
        DeploymentsCommand::Logs { id, allocation, tail, follow, target } => {
            logs(ctx, &id, allocation.as_deref(), tail, follow, &target).await
        }
        DeploymentsCommand::Shutdown { id, target } => {
            let record = call(
                ctx,
                &with_timeout(&target, "90s"),
                "/dms/node/deployment/shutdown",
                json!({ "id": id }),
            )
            .await?;
            if ctx.output == Output::Json {
                return output::json(&record);
            }
            println!("deployment {id}: {}", record["state"].as_str().unwrap_or(""));
            Ok(())
        }
        DeploymentsCommand::Prune { target } => {
            let answer =
                call(ctx, &with_timeout(&target, "90s"), "/dms/node/deployment/prune", Value::Null)
                    .await?;
            if ctx.output == Output::Json {
                return output::json(&answer);
            }
            let pruned = answer["pruned"].as_array().cloned().unwrap_or_default();
            println!("pruned {} finished deployment(s)", pruned.len());
            Ok(())
        }
    }
}

async fn logs(
    ctx: &Ctx,
    id: &str,
    allocation: Option<&str>,
    tail: Option<usize>,
    follow: bool,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    let caller = Caller::open(ctx, target).await?;
    let wait = timeout(&target.timeout)?;
    let mut printed: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let mut payload = json!({ "id": id, "allocation": allocation });
        if !follow && let Some(tail) = tail {
            payload["tail"] = json!(tail);
        }
        let logs = caller.call("/dms/node/deployment/logs", payload, wait).await?;
        if ctx.output == Output::Json && !follow {
            return output::json(&logs);
        }
        let mut all_exited = true;
        let several = logs.as_object().is_some_and(|l| l.len() > 1);
        for (name, entry) in logs.as_object().cloned().unwrap_or_default() {
            if let Some(error) = entry["error"].as_str() {
                eprintln!("{name}: {error}");
                continue;
            }
            let lines = entry["lines"].as_array().cloned().unwrap_or_default();
            let seen = printed.entry(name.clone()).or_default();
            for line in lines.iter().skip(*seen) {
                let text = line["text"].as_str().unwrap_or("");
                let prefix = if several { format!("{name} | ") } else { String::new() };
                if line["stream"] == "stderr" {
                    eprintln!("{prefix}{text}");
                } else {
                    println!("{prefix}{text}");
                }
            }
            *seen = (*seen).max(lines.len());
            all_exited &= entry["exited"].as_bool().unwrap_or(true);
        }
        if !follow || all_exited {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
