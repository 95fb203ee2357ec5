//! The deployment behaviors of a node's root actor (what `dms deploy` and `dms
//! deployments` call through the local API): the typed pairs of
//! [`dms_protocol::node`], each answered by the [`Registry`].

use std::sync::Arc;
use std::time::Duration;

use dms_actor::{Actor, ActorError};
use dms_protocol::contract::{DeploymentUsage, ImportReceipt};
use dms_protocol::handle;
use dms_protocol::node::{
    Created, DeploymentLogs, DeploymentStatus, ListDeployments, LogsEntry, Manifest, NewDeployment,
    PAGE_BYTES, PlanDeployment, Prune, Pruned, PublishOutputs, RecordPage, ShutdownDeployment,
};

use crate::orchestrator::Registry;

/// Longest a status request waits for a new event.
pub const MAX_STATUS_WAIT: Duration = Duration::from_secs(20);

/// Registers every `/dms/node/deployment/*` behavior on `actor`, and the capacity
/// adverts providers broadcast (`/dms/deployment/capacity`, into the directory).
pub fn register(actor: &Actor, registry: &Arc<Registry>) -> Result<(), ActorError> {
    let directory = registry.directory();
    handle(actor, move |message, advert: dms_protocol::Advert| {
        directory.note(&message.envelope.from.peer, advert, std::time::Instant::now());
        async { Ok(()) }
    })?;
    let r = registry.clone();
    handle(actor, move |message, request: NewDeployment| {
        let r = r.clone();
        let submitter = message.envelope.from.did.to_string();
        async move { Ok(Created { id: r.create(request, submitter).await? }) }
    })?;
    let r = registry.clone();
    handle(actor, move |_, PlanDeployment(request)| {
        let r = r.clone();
        async move { Ok(r.plan(request).await?) }
    })?;
    let r = registry.clone();
    handle(actor, move |_, ListDeployments {}| {
        let r = r.clone();
        async move { Ok(r.list()) }
    })?;
    let r = registry.clone();
    handle(actor, move |_, DeploymentStatus { id, after, wait_ms, from }| {
        let r = r.clone();
        async move {
            let wait = Duration::from_millis(wait_ms).min(MAX_STATUS_WAIT);
            Ok(r.status_page(&id, after, wait, from.as_deref(), PAGE_BYTES).await?)
        }
    })?;
    let r = registry.clone();
    handle(actor, move |_, Manifest { id, from }| {
        let r = r.clone();
        async move { Ok(RecordPage::of(r.manifest(&id)?, from.as_deref())) }
    })?;
    let r = registry.clone();
    handle(actor, move |_, DeploymentLogs { id, allocation, tail, from }| {
        let r = r.clone();
        async move {
            let logs = r.logs(&id, allocation.as_deref(), tail, from).await?;
            Ok(logs
                .into_iter()
                .map(|(name, result)| {
                    let entry = match result {
                        Ok(logs) => LogsEntry::Logs(logs),
                        Err(error) => LogsEntry::Error { error },
                    };
                    (name, entry)
                })
                .collect())
        }
    })?;
    let r = registry.clone();
    handle(actor, move |_, ShutdownDeployment { id }| {
        let r = r.clone();
        async move { Ok(RecordPage::of(r.shutdown(&id).await?, None)) }
    })?;
    let r = registry.clone();
    handle(actor, move |_, PublishOutputs { id, allocation }| {
        let r = r.clone();
        async move { Ok(r.publish(&id, allocation.as_deref()).await?) }
    })?;
    let r = registry.clone();
    handle(actor, move |_, DeploymentUsage { id }| {
        let r = r.clone();
        async move {
            let usage = tokio::task::spawn_blocking(move || r.usage(&id));
            Ok(usage.await.map_err(|e| dms_actor::ActorError::handler(e.to_string()))??)
        }
    })?;
    let r = registry.clone();
    handle(actor, move |_, ImportReceipt { id, receipt }| {
        let r = r.clone();
        async move { Ok(r.import_receipt(&id, receipt).await?) }
    })?;
    let r = registry.clone();
    handle(actor, move |_, Prune {}| {
        let r = r.clone();
        async move { Ok(Pruned { pruned: r.prune().await }) }
    })?;
    Ok(())
}
