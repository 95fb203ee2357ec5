//! `dms deployments outputs <id> [--publish]`: what each allocation's `outputs`
//! published — object, size and SHA-256 — from the deployment's record on this node;
//! `--publish` asks the running allocations to publish now and waits for them.

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use anyhow::bail;
use dms_protocol::node::{DeploymentStatus, PublishOutputs};
use dms_protocol::record::AllocationView;
use dms_protocol::storage;
use serde::Serialize;

use super::actor::{self, Caller};
use super::{Ctx, paging};
use crate::cli::{ActorTarget, Output};
use crate::output;

/// One published object, as printed.
#[derive(Serialize)]
struct Row<'a> {
    allocation: &'a str,
    object: &'a str,
    size: u64,
    sha256: &'a str,
}

/// Asks deployment `id`'s running allocations (or `allocation`) to publish their
/// outputs and waits until each has published or said why not (within the target's
/// timeout, default 10 minutes); the first failure is the error.
pub async fn publish(
    ctx: &Ctx,
    id: &str,
    allocation: Option<&str>,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    let target = super::deploy::with_timeout(target, "10m");
    let (caller, timeout) = (Caller::open(ctx, &target).await?, actor::timeout(&target.timeout)?);
    let ask = PublishOutputs { id: id.to_string(), allocation: allocation.map(String::from) };
    let began = caller.request(&ask, Duration::from_secs(30)).await?;
    if began.is_empty() {
        bail!("deployment {id} has no allocation that declares outputs");
    }
    let mut waiting: BTreeMap<String, u64> = BTreeMap::new();
    for (name, answer) in began {
        match answer {
            Ok(status) => {
                waiting.insert(name, status.version);
            }
            Err(error) => bail!("allocation {name} could not publish: {error}"),
        }
    }
    let deadline = Instant::now() + timeout;
    while !waiting.is_empty() {
        let ask = DeploymentStatus { id: id.to_string(), ..Default::default() };
        let status = paging::status(&caller, ask, Duration::from_secs(30)).await?;
        for (name, view) in &status.allocations {
            let Some(version) = waiting.get(name) else { continue };
            let message = view.status.message.as_deref().unwrap_or_default();
            if view.status.version <= *version || message.starts_with(storage::PUBLISHING) {
                continue;
            }
            if !message.starts_with(storage::PUBLISHED) {
                bail!("allocation {name} did not publish its outputs: {message}");
            }
            if ctx.output == Output::Table {
                println!("{name}: {message}");
            }
            waiting.remove(name);
        }
        if Instant::now() > deadline {
            let names: Vec<&String> = waiting.keys().collect();
            bail!(
                "still publishing after {timeout:?}: {names:?}; see `dms deployments status {id}`"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// Lists the objects deployment `id` published.
pub async fn outputs(ctx: &Ctx, id: &str, target: &ActorTarget) -> anyhow::Result<()> {
    let ask = DeploymentStatus { id: id.to_string(), ..Default::default() };
    let caller = Caller::open(ctx, target).await?;
    let status = paging::status(&caller, ask, actor::timeout(&target.timeout)?).await?;
    let rows = rows(&status.allocations);
    if ctx.output == Output::Json {
        return output::json(&rows);
    }
    if rows.is_empty() {
        println!("deployment {id} ({}) has published nothing yet", status.state.name());
        return Ok(());
    }
    print(&rows);
    Ok(())
}

/// The published objects of `allocations`, as a table after a blank line (nothing when
/// there are none).
pub fn print_published(allocations: &BTreeMap<String, AllocationView>) {
    let rows = rows(allocations);
    if !rows.is_empty() {
        println!();
        print(&rows);
    }
}

fn rows(allocations: &BTreeMap<String, AllocationView>) -> Vec<Row<'_>> {
    allocations
        .iter()
        .flat_map(|(name, view)| {
            view.status.outputs.iter().map(move |p| Row {
                allocation: name,
                object: &p.object,
                size: p.size,
                sha256: &p.sha256,
            })
        })
        .collect()
}

fn print(rows: &[Row<'_>]) {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.allocation.into(),
                r.object.into(),
                dms_types::units::format_bytes(r.size),
                r.sha256.into(),
            ]
        })
        .collect();
    output::table(&["allocation", "published", "size", "sha256"], &table);
}
