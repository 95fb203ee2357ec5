//! After a restart: every stored allocation record gets its actor back. Containers are
//! re-attached by label, VMs by their directory's record; allocations whose workload did not survive (WebAssembly runs
//! live in the process) are reported failed with that reason; resources that no record
//! accounts for are freed, and volumes no live allocation uses are removed. Everything
//! is keyed by the records themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dms_ensemble::model::Executor as Kind;
use tracing::{info, warn};

use crate::Shared;
use crate::allocation::{self, Internal};
use crate::hosted::{HOSTED, Hosted};

/// Rebuilds the allocation actors from the store.
pub(crate) async fn recover(shared: &Arc<Shared>) {
    let store = shared.store.clone();
    let records: Vec<Hosted> =
        match tokio::task::spawn_blocking(move || HOSTED.list_now(&store)).await {
            Ok(Ok(records)) => records.into_iter().map(|(_, h)| h).collect(),
            Ok(Err(error)) => {
                warn!(%error, "Could not read the hosted allocations; none recovered.");
                return;
            }
            Err(error) => {
                warn!(%error, "Reading the hosted allocations failed.");
                return;
            }
        };
    let recovery = reattach(shared, &records).await;
    crate::subnet::restore(shared, &records, &recovery).await;
    let reattached: BTreeMap<String, String> =
        recovery.into_iter().map(|info| (info.allocation, info.id.0)).collect();
    release_unaccounted(shared, &records).await;
    sweep_volumes(shared, &records);
    let mut by_reservation: BTreeMap<&str, Vec<&Hosted>> = BTreeMap::new();
    for hosted in &records {
        by_reservation.entry(&hosted.reservation).or_default().push(hosted);
    }
    for (reservation, hosted) in by_reservation {
        let live: Vec<&&Hosted> = hosted.iter().filter(|h| !h.status.state.is_terminal()).collect();
        if live.is_empty() {
            // Every allocation had ended; a crash came before the release.
            shared.ledger.release(reservation).await;
        }
        for h in live {
            shared.ledger.hosting(reservation, &h.id);
        }
    }
    let count = records.len();
    for hosted in records {
        let (id, ended) = (hosted.id.clone(), hosted.status.state.is_terminal());
        let key = crate::hosted::key(&shared.store, &id, shared.root.signing_key());
        let running = allocation::spawn(shared, hosted, key);
        if !ended {
            let found = reattached.get(&id).cloned();
            if running.control.send(Internal::Recovered(found)).await.is_err() {
                warn!(allocation = %id, "An allocation actor ended before it recovered.");
            }
        }
        shared.allocations.lock().expect("allocations lock").insert(id, running);
    }
    if count > 0 {
        info!(allocations = count, reattached = reattached.len(), "Recovered hosted allocations.");
    }
}

/// Re-attaches the containers and VMs of allocations that had not ended (and removes
/// the orphans of each executor that has any).
async fn reattach(shared: &Shared, records: &[Hosted]) -> Vec<dms_executor::ExecutionInfo> {
    let mut found = Vec::new();
    for kind in [Kind::Docker, Kind::Vm] {
        let wanted: std::collections::HashSet<String> = records
            .iter()
            .filter(|h| h.spec.allocation.executor == kind && !h.status.state.is_terminal())
            .map(|h| h.id.clone())
            .collect();
        // Docker is asked only when it has something to find: its engine may be shared.
        let asked = kind == Kind::Vm || !wanted.is_empty();
        let Some(executor) = shared.executors.get(kind).filter(|_| asked) else { continue };
        match executor.reattach(&wanted).await {
            Ok(recovery) => found.extend(recovery.reattached),
            Err(error) => warn!(%error, executor = kind.name(), "Could not re-attach workloads."),
        }
    }
    found
}

/// Counts the volumes of allocations that had not ended as theirs again, and removes
/// every other deployment's volumes (a crash between an allocation's end and their
/// removal, or a record lost with them).
fn sweep_volumes(shared: &Shared, records: &[Hosted]) {
    let mut live = BTreeSet::new();
    for h in records.iter().filter(|h| !h.status.state.is_terminal()) {
        if let Ok(placed) = shared.volumes.plan(&h.deployment, &h.id, &h.spec.allocation) {
            shared.volume_users.add(&h.id, &placed);
        }
        live.insert(h.deployment.clone());
    }
    let swept = shared.volumes.sweep(&live);
    if swept > 0 {
        info!(deployments = swept, "Removed the volumes of deployments no allocation here runs.");
    }
}

/// Frees allocated resources that no stored allocation record names (a crash between
/// allocating and writing the records).
async fn release_unaccounted(shared: &Shared, records: &[Hosted]) {
    let accounted: BTreeSet<&str> = records.iter().map(|h| h.reservation.as_str()).collect();
    for id in shared.manager.status().allocations.keys() {
        if !accounted.contains(id.as_str()) {
            info!(reservation = %id, "Releasing resources no allocation accounts for.");
            shared.ledger.release(id).await;
        }
    }
}
