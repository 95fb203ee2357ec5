//! Usage receipts on their way to orchestrators: an allocation under a contract signs
//! a receipt every `deployment.receipt_every` and one at its end
//! ([`crate::allocation`]); each is kept (the provider's own record, which its ledger is
//! computed from) and put in an outbox (table `receipt_outbox`) before it is sent.
//! The courier — one task per provider, stopped at shutdown — sends what the outbox
//! holds to the deployment's orchestrator (`/public/deployment/receipt`) and keeps
//! trying while it is unreachable, so a receipt outlives the allocation that made it
//! and a restart of either side. An answer (counted, repeat, or refused with a reason)
//! takes it out of the outbox; one whose orchestrator is gone (no such actor, for longer
//! than [`GONE_AFTER`]: its deployment was pruned) or unsent for [`GIVE_UP_AFTER`] is
//! dropped with a warning (the provider still keeps it: `dms contract show`). A round
//! sends up to 64, 16 at a time, starting after where the last one stopped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use dms_actor::envelope::now_ms;
use dms_actor::{ActorError, Handle};
use dms_contracts::ledger::Side;
use dms_contracts::{Contract, Receipt};
use dms_protocol::contract::ReceiptOffer;
use dms_store::Repo;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::Shared;

const OUTBOX: Repo<Outgoing> = Repo::new("receipt_outbox");

/// How long an unsent receipt is retried.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long an orchestrator may be missing (`no actor`) before its receipts are
/// dropped from the outbox: longer than its node takes to restart.
pub const GONE_AFTER: Duration = Duration::from_secs(600);
/// Most receipts sent per round.
const ROUND: usize = 64;
/// Most receipts in flight at once.
const AT_ONCE: usize = 16;

#[derive(Serialize, Deserialize)]
struct Outgoing {
    text: String,
    to: Handle,
    since_ms: u64,
}

/// Keeps `receipt` (issued by this provider under `contract`), books what is owed
/// under the contract now and queues the receipt for `to` — in one transaction.
pub(crate) fn issue(
    shared: &Shared,
    contract: &Contract,
    receipt: &Receipt,
    to: &Handle,
) -> Result<(), dms_contracts::Error> {
    let s = receipt.statement();
    let memo = format!("receipt {} of {}.{}", s.seq, s.deployment, s.allocation);
    let outgoing = Outgoing { text: receipt.to_text()?, to: to.clone(), since_ms: now_ms() };
    let id = receipt.id();
    shared.contracts.take_receipt(Side::Provider, contract, receipt, &memo, |tx| {
        OUTBOX.put(tx, &id, &outgoing)
    })?;
    shared.courier.notify_one();
    Ok(())
}

/// Starts the courier; it ends when the provider is gone.
pub(crate) fn start(shared: &Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let (weak, notify) = (Arc::downgrade(shared), shared.courier.clone());
    tokio::spawn(run(weak, notify))
}

async fn run(weak: Weak<Shared>, notify: Arc<Notify>) {
    let mut pause = Duration::from_secs(1);
    let mut cursor = String::new();
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let (left, more) = round(&shared, &mut cursor).await;
        drop(shared);
        match (left, more) {
            (0, true) => continue,
            (0, false) => {
                pause = Duration::from_secs(1);
                // Nothing left: wait for the next receipt (or look again in a while).
                let _ = tokio::time::timeout(Duration::from_secs(60), notify.notified()).await;
            }
            _ => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// What became of one delivery.
enum Delivery {
    /// Answered (counted, repeat or refused), or given up: out of the outbox.
    Done,
    /// Try again later.
    Wait,
}

/// Sends up to [`ROUND`] receipts of the outbox, from just after `cursor` (so that
/// receipts for an orchestrator that stays away do not hold up the others), at most
/// [`AT_ONCE`] at a time: how many are still waiting, and whether the outbox held more
/// than one round.
async fn round(shared: &Arc<Shared>, cursor: &mut String) -> (usize, bool) {
    let store = shared.store.clone();
    let waiting = tokio::task::spawn_blocking(move || OUTBOX.list_now(&store)).await;
    let Ok(Ok(mut waiting)) = waiting else { return (1, false) };
    let more = waiting.len() > ROUND;
    let split = waiting.partition_point(|(id, _)| id.as_str() <= cursor.as_str());
    waiting.rotate_left(split);
    waiting.truncate(ROUND);
    if let Some((last, _)) = waiting.last() {
        cursor.clone_from(last);
    }
    let mut calls = tokio::task::JoinSet::new();
    let mut outcomes = Vec::new();
    for (id, outgoing) in waiting {
        if calls.len() >= AT_ONCE
            && let Some(Ok(outcome)) = calls.join_next().await
        {
            outcomes.push(outcome);
        }
        let shared = shared.clone();
        calls.spawn(async move {
            let delivery = deliver(&shared, &id, &outgoing).await;
            (id, delivery)
        });
    }
    while let Some(joined) = calls.join_next().await {
        if let Ok(outcome) = joined {
            outcomes.push(outcome);
        }
    }
    let left = outcomes.iter().filter(|(_, d)| matches!(d, Delivery::Wait)).count();
    let delivered: Vec<String> = outcomes
        .into_iter()
        .filter(|(_, d)| matches!(d, Delivery::Done))
        .map(|(id, _)| id)
        .collect();
    let store = shared.store.clone();
    let _ = tokio::task::spawn_blocking(move || {
        store.write(|tx| delivered.iter().try_for_each(|id| OUTBOX.delete(tx, id).map(|_| ())))
    })
    .await;
    (left, more)
}

/// Offers one receipt to its orchestrator.
async fn deliver(shared: &Arc<Shared>, id: &str, outgoing: &Outgoing) -> Delivery {
    let offer = ReceiptOffer { receipt: outgoing.text.clone() };
    let sent = dms_protocol::call(&shared.root, &outgoing.to, &offer, Duration::from_secs(5)).await;
    let waited = now_ms().saturating_sub(outgoing.since_ms);
    match sent {
        Ok(answer) if answer.outcome == "refused" => {
            warn!(receipt = %id, code = ?answer.code, reason = ?answer.reason,
                "The orchestrator refused a usage receipt.");
            Delivery::Done
        }
        Ok(answer) => {
            debug!(receipt = %id, outcome = %answer.outcome, "Usage receipt delivered.");
            if let Some(why) = answer.closed {
                let (shared, text) = (shared.clone(), outgoing.text.clone());
                let _ =
                    tokio::task::spawn_blocking(move || note_closed(&shared, &text, &why)).await;
            }
            Delivery::Done
        }
        // The orchestrator is gone for good (its deployment pruned) once it has been
        // missing for longer than a restart of its node takes.
        Err(error @ (ActorError::NoSuchActor { .. } | ActorError::UnknownBehavior { .. }))
            if waited > GONE_AFTER.as_millis() as u64 =>
        {
            warn!(receipt = %id, %error, "The deployment's orchestrator is gone; the usage receipt stays kept here.");
            Delivery::Done
        }
        Err(error) if waited > GIVE_UP_AFTER.as_millis() as u64 => {
            warn!(receipt = %id, %error, "Gave up sending a usage receipt (kept here).");
            Delivery::Done
        }
        Err(error) => {
            debug!(receipt = %id, %error, "A usage receipt waits for its orchestrator.");
            Delivery::Wait
        }
    }
}

/// Records in the provider's ledger why the requester closed the deployment (its
/// budget reached), under the receipt's contract.
fn note_closed(shared: &Shared, text: &str, why: &str) {
    let Ok(receipt) = Receipt::from_text(text) else { return };
    let s = receipt.statement();
    if let Ok(Some(known)) = shared.contracts.get(&s.contract) {
        let memo = format!("{}: {why}", s.deployment);
        if let Err(error) = shared.contracts.note(Side::Provider, &known.contract, &memo) {
            warn!(%error, "Could not record a closed deployment in the ledger.");
        }
    }
}
