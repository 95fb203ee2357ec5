//! The record of an allocation this node hosts, as persisted (table
//! `hosted_allocations`, keyed by `<deployment>.<allocation>`). Its allocation actor is
//! the only writer of a record while it runs; recovery reads them all at start.

use dms_actor::Handle;
use dms_crypto::{KeyPair, KeyType};
use dms_protocol::{AllocationSpec, AllocationStatus, Liveness};
use dms_store::{Repo, Store};
use serde::{Deserialize, Serialize};

/// The table of hosted allocations.
pub(crate) const HOSTED: Repo<Hosted> = Repo::new("hosted_allocations");

/// An allocation this node hosts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hosted {
    /// `<deployment>.<allocation>`: the actor's inbox and the executor's allocation id.
    pub id: String,
    /// The deployment.
    pub deployment: String,
    /// The ensemble node.
    pub node: String,
    /// The resource account of the node's allocations.
    pub reservation: String,
    /// The orchestrator actor: the only one obeyed, and told of every change.
    pub orchestrator: Handle,
    /// What to run.
    pub spec: AllocationSpec,
    /// The executor's id, once started.
    #[serde(default)]
    pub execution: Option<String>,
    /// Its status.
    pub status: AllocationStatus,
    /// When it was restarted (Unix milliseconds), for the policy's window.
    #[serde(default)]
    pub restart_times: Vec<u64>,
    /// The orchestrator's grant to this allocation's own identity (`dmscap1.…`): the
    /// right to push updates to it.
    #[serde(default)]
    pub grant: Option<String>,
    /// How it and its orchestrator watch each other, as the start said (`None`: the
    /// defaults).
    #[serde(default)]
    pub liveness: Option<Liveness>,
    /// The GPUs of the node's reservation given to this allocation (passed to its
    /// container).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<dms_types::resources::Gpu>,
    /// A task's exit held while its outputs are published (code, how, output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<(i64, String, String)>,
    /// The publishing in flight, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishing: Option<Publishing>,
    /// The deployment's trace (the allocate message's `traceparent`): the allocation's
    /// events name it. (Its heartbeats do not join it: a long-lived deployment's trace
    /// would grow without end.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The contract it runs under (text form): it sends usage receipts under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Since when its usage is counted (its first start, Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_from_ms: Option<u64>,
}

/// Which publishing is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Publishing {
    /// Asked for while the workload runs; it runs on.
    OnRequest,
    /// The task ended: its end is recorded once this is done.
    Final,
}

impl Hosted {
    /// It stages inputs before its first start.
    pub fn stages(&self) -> bool {
        !self.spec.allocation.inputs.is_empty()
    }

    /// It publishes outputs when it ends (tasks only).
    pub fn publishes(&self) -> bool {
        self.spec.allocation.kind == dms_ensemble::model::AllocationType::Task
            && !self.spec.allocation.outputs.is_empty()
    }
}

/// Allocation actors' own keys (the secret, hex), by allocation id: beside the records,
/// never in them.
const KEYS: Repo<String> = Repo::new("allocation_keys");

/// Writes new allocations' records with a new key for each, in one lazy transaction
/// (the durable allocation of their resources that follows flushes it); the keys.
pub(crate) fn create(store: &Store, records: &[Hosted]) -> Result<Vec<KeyPair>, dms_store::Error> {
    store.write_lazy(|tx| {
        let mut keys = Vec::with_capacity(records.len());
        for hosted in records {
            let key = KeyPair::generate(KeyType::Ed25519);
            HOSTED.put(tx, &hosted.id, hosted)?;
            KEYS.put(tx, &hosted.id, &*key.secret_hex())?;
            keys.push(key);
        }
        Ok(keys)
    })
}

/// The key of allocation `id`; `fallback` (the node's) for allocations made before
/// allocations had keys of their own.
pub(crate) fn key(store: &Store, id: &str, fallback: &KeyPair) -> KeyPair {
    let stored = KEYS.get_now(store, id).ok().flatten();
    stored
        .and_then(|secret| KeyPair::from_secret_hex(KeyType::Ed25519, &secret).ok())
        .unwrap_or_else(|| fallback.clone())
}

/// Writes `hosted` (`durable`: flushed before returning), off the async threads,
/// group-committed with the other allocations' writes.
pub(crate) async fn save(store: &Store, hosted: &Hosted, durable: bool) {
    let (store, record) = (store.clone(), hosted.clone());
    let written =
        store.write_grouped_async(durable, move |tx| HOSTED.put(tx, &record.id, &record)).await;
    if let Err(error) = written {
        tracing::warn!(allocation = %hosted.id, %error, "Could not persist an allocation.");
    }
}

/// Deletes a record and the allocation's key, off the async threads.
pub(crate) async fn forget(store: &Store, id: &str) {
    let (store, id) = (store.clone(), id.to_string());
    // One transaction: a record never outlives its key (its identity).
    let deleted = tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            KEYS.delete(tx, &id)?;
            HOSTED.delete(tx, &id)
        })
    })
    .await;
    if !matches!(deleted, Ok(Ok(_))) {
        tracing::warn!("Could not delete a forgotten allocation's record.");
    }
}
