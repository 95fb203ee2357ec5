//! Usage receipts of an allocation that runs under a contract: its usage counts from
//! its first start (the resources are held from then on, also while it restarts); every
//! `deployment.receipt_every` it signs a receipt for the time since the last one (its
//! resources × that time), and one more, final, when it ends (with its exit code, -1
//! when stopped without one). Receipts are numbered from 0 by what this provider kept
//! already, so a restart of the provider continues the numbering and the interval
//! where they were; each is kept and sent by the provider's courier ([`crate::receipts`]).

use dms_actor::envelope::now_ms;
use dms_actor::stateful::Context;
use dms_contracts::ledger::Side;
use dms_contracts::receipt::Statement;
use dms_contracts::{Contract, Receipt, Usage};
use tracing::warn;

use super::{Allocation, Internal};

impl Allocation {
    /// Counts usage from now (the first start) and schedules the next receipt.
    pub(crate) fn bill_soon(&mut self, ctx: &mut Context<Internal>) {
        if self.hosted.contract.is_none() || self.receipting {
            return;
        }
        // Set by the first start (and persisted with it); a record from before then
        // counts from now.
        self.hosted.billed_from_ms.get_or_insert_with(now_ms);
        self.receipting = true;
        ctx.after(self.shared.settings.receipt_every, Internal::Receipt);
    }

    /// A periodic receipt is due.
    pub(crate) async fn receipt_due(&mut self, ctx: &mut Context<Internal>) {
        self.receipting = false;
        if self.hosted.status.state.is_terminal() {
            return;
        }
        self.issue_receipt(None).await;
        self.bill_soon(ctx);
    }

    /// The final receipt, as the allocation ends.
    pub(crate) async fn final_receipt(&mut self) {
        if self.hosted.contract.is_some() && self.hosted.billed_from_ms.is_some() {
            let exit = self.hosted.status.exit_code.unwrap_or(-1);
            self.issue_receipt(Some(exit)).await;
        }
    }

    async fn issue_receipt(&mut self, exit: Option<i64>) {
        let (Some(text), Some(since)) = (self.hosted.contract.clone(), self.hosted.billed_from_ms)
        else {
            return;
        };
        let (shared, hosted) = (self.shared.clone(), self.hosted.clone());
        let issued = tokio::task::spawn_blocking(move || {
            let contract = Contract::from_text(&text).map_err(|e| e.to_string())?;
            let Some(receipt) = next_receipt(&shared, &hosted, &contract, since, exit)? else {
                return Ok(());
            };
            crate::receipts::issue(&shared, &contract, &receipt, &hosted.orchestrator)
                .map_err(|e| e.to_string())
        })
        .await;
        let error = match issued {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(error) => error.to_string(),
        };
        warn!(allocation = %self.hosted.id, %error, "Could not issue a usage receipt.");
    }
}

/// The receipt that follows the ones kept for this allocation (none after a final one).
fn next_receipt(
    shared: &crate::Shared,
    hosted: &crate::hosted::Hosted,
    contract: &Contract,
    since: u64,
    exit: Option<i64>,
) -> Result<Option<Receipt>, String> {
    let kept = shared
        .contracts
        .receipts(Side::Provider, &contract.id(), Some(&hosted.deployment))
        .map_err(|e| e.to_string())?;
    let last = kept.iter().map(Receipt::statement).rfind(|s| s.allocation == hosted.spec.name);
    if last.is_some_and(|s| s.exit.is_some()) {
        return Ok(None);
    }
    let (seq, from_ms) = last.map_or((0, since), |s| (s.seq + 1, s.to_ms));
    // The final receipt ends when the workload did (a provider that restarts later
    // does not bill the time it was down).
    let end = exit.and(hosted.status.finished_ms).unwrap_or_else(now_ms);
    let now = end.max(from_ms);
    let wall_secs = (now - from_ms) / 1000;
    // A periodic receipt covers whole seconds; the fraction left counts in the next one
    // (only the final receipt ends at the end, dropping less than a second).
    let to_ms = if exit.is_some() { now } else { from_ms + wall_secs * 1000 };
    let resources = &hosted.spec.allocation.resources;
    let cpu_millicores = (resources.cpu.cores * 1000.0).round().max(0.0) as u64;
    let usage = Usage {
        wall_secs,
        cpu_millicore_secs: cpu_millicores.saturating_mul(wall_secs),
        ram_mib_secs: (resources.ram.0 >> 20).saturating_mul(wall_secs),
        gpu_secs: (hosted.gpus.len() as u64).saturating_mul(wall_secs),
    };
    let statement = Statement {
        contract: contract.id(),
        deployment: hosted.deployment.clone(),
        allocation: hosted.spec.name.clone(),
        provider: shared.root.handle().did.clone(),
        seq,
        from_ms,
        to_ms,
        usage,
        exit,
    };
    Receipt::sign(statement, shared.root.signing_key()).map(Some).map_err(|e| e.to_string())
}
