//! Each orchestrator has a key pair and DID of its own. Its key is kept beside the
//! deployment's record (never in it: records are shown to users), so it survives a
//! restart of the node. Its rights are the node's, delegated to it: the node's provide
//! anchors for `/dms/deployment` and `/dms/allocation` (or, on a node that holds none —
//! one its peers trust as a root — a grant from the node itself). Allocation actors get
//! from it the rights they need: `/dms/deployment/update` and `/dms/deployment/storage`
//! on this orchestrator.

use dms_crypto::{KeyPair, KeyType};
use dms_store::{Repo, Store};
use dms_ucan::{CapContext, Chain, Command, Spec};
use tracing::warn;

use super::Shared;

/// Orchestrator keys (the secret, hex), by deployment id.
const KEYS: Repo<String> = Repo::new("orchestrator_keys");

/// A new key for deployment `id`, queued for the next group commit without waiting
/// (the record's first durable write, queued after it, flushes it too); the receiver
/// hears whether it was stored.
pub(crate) fn create(
    store: &Store,
    id: &str,
) -> (KeyPair, tokio::sync::oneshot::Receiver<Result<(), dms_store::Error>>) {
    let key = KeyPair::generate(KeyType::Ed25519);
    let (id, secret) = (id.to_string(), key.secret_hex());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done = move |stored| {
        let _ = tx.send(stored);
    };
    if let Some(committer) = store.write_queued(false, move |tx| KEYS.put(tx, &id, &*secret), done)
    {
        tokio::task::spawn_blocking(move || committer.run());
    }
    (key, rx)
}

/// The key of deployment `id`; the node's own for deployments made before orchestrators
/// had keys (their allocations obey the node's DID).
pub(crate) fn load(shared: &Shared, id: &str) -> KeyPair {
    let stored = KEYS.get_now(&shared.store, id).ok().flatten();
    let key = stored.and_then(|secret| KeyPair::from_secret_hex(KeyType::Ed25519, &secret).ok());
    key.unwrap_or_else(|| shared.root.signing_key().clone())
}

/// Forgets the key of a pruned deployment.
pub(crate) fn forget(store: &Store, id: &str) {
    if let Err(error) = KEYS.delete_now(store, id) {
        warn!(deployment = %id, %error, "Could not delete an orchestrator's key.");
    }
}

fn paths(paths: &[&str]) -> Vec<Command> {
    paths.iter().filter_map(|p| Command::parse(p).ok()).collect()
}

/// The chains the orchestrator with `key` presents: the node's rights, delegated.
pub(crate) fn delegated(shared: &Shared, key: &KeyPair) -> Vec<Chain> {
    let node_key = shared.root.signing_key();
    let context = shared.root.live_context().read();
    let verifier = shared.root.verifier();
    let now = dms_ucan::now();
    let wanted = [
        Spec {
            commands: paths(&["/dms/deployment", "/dms/allocation"]),
            topics: paths(&["/dms/deployment"]),
            ..Spec::default()
        },
        Spec {
            commands: paths(&["/dms/deployment"]),
            topics: paths(&["/dms/deployment"]),
            ..Spec::default()
        },
        Spec { commands: paths(&["/dms/allocation"]), ..Spec::default() },
    ];
    let whole = context.delegate(node_key, key.did(), &wanted[0], verifier, now);
    let mut chains: Vec<Chain> = match whole {
        Ok(chain) => vec![chain],
        Err(_) => wanted[1..]
            .iter()
            .filter_map(|spec| context.delegate(node_key, key.did(), spec, verifier, now).ok())
            .collect(),
    };
    if chains.is_empty() {
        match context.grant(node_key, key.did(), &wanted[0]) {
            Ok(chain) => chains.push(chain),
            Err(error) => warn!(%error, "Could not grant an orchestrator the node's rights."),
        }
    }
    chains
}

/// The rights an allocation actor needs: to update this orchestrator and to ask it for
/// its storage URLs, and nothing else.
pub(crate) fn update_grant(key: &KeyPair, allocation: &dms_crypto::Did) -> Option<Chain> {
    let issuer = CapContext::new("orchestrator", key.did());
    let spec = Spec {
        commands: paths(&[dms_protocol::UPDATE, dms_protocol::storage::STORAGE]),
        subject: Some(key.did()),
        depth: Some(0),
        ..Spec::default()
    };
    issuer.grant(key, allocation.clone(), &spec).ok()
}
