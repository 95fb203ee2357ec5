//! Usage receipts on their way to orchestrators: an allocation under a contract signs
//! a receipt every `deployment.receipt_every` and one at its end
//! ([`crate::allocation`]); each is kept (the provider's own record, which its ledger is
//! computed from) and put in an outbox (table `receipt_outbox`) before it is sent.
//! The courier — one task per provider, stopped at shutdown — sends what the outbox
//! holds to the deployment's orchestrator (`/public/deployment/receipt`) and keeps
//! trying while it is unreachable, so a receipt outlives the allocation that made it
//! and a restart of either side. An answer (counted, repeat, or refused with a reason)
//! takes it out of the outbox; one unsent for [`GIVE_UP_AFTER`] is dropped with a
//! warning (the provider still keeps it: `dms contract show`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use dms_actor::Handle;
use dms_actor::envelope::now_ms;
use dms_contracts::ledger::Side;
use dms_contracts::{Contract, Receipt, processor};
use dms_protocol::contract::ReceiptOffer;
use dms_store::Repo;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::Shared;

const OUTBOX: Repo<Outgoing> = Repo::new("receipt_outbox");

/// How long an unsent receipt is retried.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Most receipts sent per round.
const ROUND: usize = 64;

#[derive(Serialize, Deserialize)]
struct Outgoing {
    text: String,
    to: Handle,
    since_ms: u64,
}

/// Keeps `receipt` (issued by this provider under `contract`), books what is owed
/// under the contract now, and queues the receipt for `to`.
pub(crate) fn issue(
    shared: &Shared,
    contract: &Contract,
    receipt: &Receipt,
    to: &Handle,
) -> Result<(), String> {
    let contracts = &shared.contracts;
    contracts.put_receipt(Side::Provider, receipt).map_err(|e| e.to_string())?;
    let all =
        contracts.receipts(Side::Provider, &contract.id(), None).map_err(|e| e.to_string())?;
    let owed = processor::owed(contract, &all).map_err(|e| e.to_string())?;
    let s = receipt.statement();
    let memo = format!("receipt {} of {}.{}", s.seq, s.deployment, s.allocation);
    contracts.accrue(Side::Provider, contract, &owed, &memo).map_err(|e| e.to_string())?;
    let text = receipt.to_text().map_err(|e| e.to_string())?;
    let outgoing = Outgoing { text, to: to.clone(), since_ms: now_ms() };
    OUTBOX.put_now(&shared.store, &receipt.id(), &outgoing).map_err(|e| e.to_string())?;
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
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let (left, more) = round(&shared).await;
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

/// Sends up to [`ROUND`] receipts of the outbox: how many are still waiting for their
/// orchestrator, and whether the outbox held more than one round.
async fn round(shared: &Arc<Shared>) -> (usize, bool) {
    let store = shared.store.clone();
    let waiting = tokio::task::spawn_blocking(move || OUTBOX.list_now(&store)).await;
    let Ok(Ok(waiting)) = waiting else { return (1, false) };
    let more = waiting.len() > ROUND;
    let mut left = 0;
    let mut delivered = Vec::new();
    for (id, outgoing) in waiting.into_iter().take(ROUND) {
        let offer = ReceiptOffer { receipt: outgoing.text.clone() };
        let sent =
            dms_protocol::call(&shared.root, &outgoing.to, &offer, Duration::from_secs(5)).await;
        let waited = now_ms().saturating_sub(outgoing.since_ms);
        match sent {
            Ok(answer) if answer.outcome == "refused" => {
                warn!(receipt = %id, code = ?answer.code, reason = ?answer.reason,
                    "The orchestrator refused a usage receipt.");
                delivered.push(id);
            }
            Ok(answer) => {
                debug!(receipt = %id, outcome = %answer.outcome, "Usage receipt delivered.");
                if let Some(why) = &answer.closed {
                    note_closed(shared, &outgoing.text, why);
                }
                delivered.push(id);
            }
            Err(error) if waited > GIVE_UP_AFTER.as_millis() as u64 => {
                warn!(receipt = %id, %error, "Gave up sending a usage receipt (kept here).");
                delivered.push(id);
            }
            Err(error) => {
                info!(receipt = %id, %error, "A usage receipt waits for its orchestrator.");
                left += 1;
            }
        }
    }
    let store = shared.store.clone();
    let _ = tokio::task::spawn_blocking(move || {
        store.write(|tx| delivered.iter().try_for_each(|id| OUTBOX.delete(tx, id).map(|_| ())))
    })
    .await;
    (left, more)
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
