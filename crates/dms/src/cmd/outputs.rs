//! `dms deployments outputs <id>`: what each allocation's `outputs` published — object,
//! size and SHA-256 — from the deployment's record on this node.

use std::collections::BTreeMap;

use dms_protocol::node::DeploymentStatus;
use dms_protocol::record::AllocationView;
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
