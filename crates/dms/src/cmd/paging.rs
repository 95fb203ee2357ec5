//! Paged answers read whole: a deployment's status and record come a page of
//! allocations at a time (`dms_protocol::node::PAGE_BYTES`); these ask for every page
//! and merge them, so a deployment of hundreds of allocations reads like a small one.

use std::time::Duration;

use dms_protocol::node::{DeploymentStatus, Manifest, RecordPage, Status};
use dms_protocol::record::Deployment;

use super::actor::Caller;

/// The status `ask` names (its first page waits as asked), with every allocation.
pub(super) async fn status(
    caller: &Caller,
    ask: DeploymentStatus,
    timeout: Duration,
) -> anyhow::Result<Status> {
    let mut status = caller.request(&ask, timeout).await?;
    while let Some(from) = status.more.take() {
        let next = DeploymentStatus { id: ask.id.clone(), from: Some(from), ..Default::default() };
        let page = caller.request(&next, timeout).await?;
        status.allocations.extend(page.allocations);
        status.more = page.more;
    }
    Ok(status)
}

/// The rest of a record whose first page is `first`.
pub(super) async fn rest(
    caller: &Caller,
    first: RecordPage,
    timeout: Duration,
) -> anyhow::Result<Deployment> {
    let RecordPage { mut record, mut more } = first;
    while let Some(from) = more.take() {
        let page =
            caller.request(&Manifest { id: record.id.clone(), from: Some(from) }, timeout).await?;
        record.allocations.extend(page.record.allocations);
        more = page.more;
    }
    Ok(record)
}

/// A deployment's whole record.
pub(super) async fn record(
    caller: &Caller,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Deployment> {
    let first = caller.request(&Manifest { id: id.to_string(), from: None }, timeout).await?;
    rest(caller, first, timeout).await
}
