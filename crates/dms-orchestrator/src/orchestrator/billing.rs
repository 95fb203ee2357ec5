//! A deployment's contracts on the requesting side: what the submission must name, the
//! documents its bid requests carry, and the usage receipts its providers send.
//!
//! A receipt (`/public/deployment/receipt`, or `dms deployments receipt` by hand) is
//! judged by its signature and the deployment's books, not by who carries it: it must
//! be for this deployment, one of its allocations and one of its contracts, signed by
//! that contract's provider, and fit the allocation's book ([`dms_contracts::receipt::Book`],
//! one per allocation and contract: a repeat counts once, a conflict, overlap or a
//! receipt after the final one is refused). A new one is kept (table
//! `contract_receipts`), the requester's ledger books what the contract owes now, and
//! when what the deployment owes reaches `requirements.budget` the deployment is shut
//! down, saying so — in its events, in the ledger and in the answer to the provider,
//! whose ledger records it too.

use std::collections::BTreeMap;
use std::sync::Arc;

use dms_actor::envelope::now_ms;
use dms_contracts::ledger::Side;
use dms_contracts::processor::{self, owed_by};
use dms_contracts::receipt::{Book, Taken};
use dms_contracts::store::Contracts;
use dms_contracts::{Amount, Contract, Receipt};
use dms_ensemble::model::Ensemble;
use dms_protocol::contract::{
    AllocationUsage, ContractOwed, ReceiptAnswer, ReceiptOffer, ReceiptView, UsageReport,
};
use dms_protocol::record::DeploymentState;
use tracing::{info, warn};

use super::{Orchestrator, Shared};
use crate::Error;

/// How the reason of a deployment shut down for its budget begins.
const BUDGET: &str = "budget reached";

/// How far a receipt's interval may reach past this node's clock (or before the
/// deployment was made): clocks of two machines differ.
const SKEW_MS: u64 = 60_000;

/// Why a receipt cannot be true, if it cannot: an interval outside the deployment's
/// life (give or take [`SKEW_MS`]), or more resources than the allocation holds.
fn implausible(
    s: &dms_contracts::receipt::Statement,
    spec: &dms_ensemble::model::Allocation,
    created_ms: u64,
    now_ms: u64,
) -> Option<String> {
    if s.from_ms.saturating_add(SKEW_MS) < created_ms || s.to_ms > now_ms.saturating_add(SKEW_MS) {
        return Some(format!(
            "receipt {} covers [{}, {}) ms, outside the deployment's life (made at {created_ms} ms, \
             now {now_ms} ms)",
            s.seq, s.from_ms, s.to_ms
        ));
    }
    let r = &spec.resources;
    let wall = s.usage.wall_secs;
    let cpu = ((r.cpu.cores * 1000.0).round().max(0.0) as u64).saturating_mul(wall);
    let ram = (r.ram.0 >> 20).saturating_mul(wall);
    let gpus = u64::from(dms_protocol::total([spec]).1).saturating_mul(wall);
    let u = &s.usage;
    (u.cpu_millicore_secs > cpu || u.ram_mib_secs > ram || u.gpu_secs > gpus).then(|| {
        format!(
            "receipt {} claims more than allocation {} holds over {wall} s ({} core-ms·s, {} \
             MiB·s, {} GPU·s; at most {cpu}, {ram}, {gpus})",
            s.seq, s.allocation, u.cpu_millicore_secs, u.ram_mib_secs, u.gpu_secs
        )
    })
}

/// The books of one deployment, by (allocation, contract id).
pub(crate) type Books = BTreeMap<(String, String), Book>;

impl Shared {
    /// The node's contracts.
    pub(crate) fn contracts(&self) -> Contracts {
        Contracts::new(self.store.clone())
    }
}

/// Refuses a submission whose contracts would not bind: each must be kept here, signed
/// by this node as requester and by its provider, in force and not revoked (and name
/// the host the ensemble names); a budget needs contracts, all in one currency.
pub(crate) fn check(shared: &Shared, ensemble: &Ensemble) -> Result<(), Error> {
    let me = &shared.root.handle().did;
    let now = dms_ucan::now();
    let invalid =
        |name: &str, why: String| Error::InvalidEnsemble(format!("contracts.{name}: {why}"));
    let mut currencies = std::collections::BTreeSet::new();
    for (name, entry) in &ensemble.contracts {
        let id = &entry.id;
        let known = shared.contracts().get(id).map_err(|e| invalid(name, e.to_string()))?;
        let Some(known) = known else {
            return Err(invalid(
                name,
                format!(
                    "this node keeps no contract {id}: make one with `dms contract new`, have \
                     the provider sign it (`dms contract sign`) and sign the copy it returns here"
                ),
            ));
        };
        let terms = known.contract.terms();
        if let Err(refusal) = known.contract.binds(&terms.provider, me, now) {
            let hint = match refusal.code {
                "contract_unsigned" => {
                    "; sign the copy the provider signed with `dms contract sign <file>`"
                }
                _ => "",
            };
            return Err(invalid(name, format!("{}{hint}", refusal.reason)));
        }
        if let Some(revocation) = known.revocation {
            let s = revocation.statement();
            return Err(invalid(
                name,
                format!("contract {id} was revoked by {}: {}", s.by, s.reason),
            ));
        }
        if let Some(host) = &entry.host
            && terms.host.as_ref().map(ToString::to_string).as_deref() != Some(host.as_str())
        {
            return Err(invalid(name, format!("contract {id} names no host {host}")));
        }
        currencies.insert(terms.currency.clone());
    }
    let requirements = ensemble.requirements.as_ref();
    if requirements.is_some_and(|r| r.budget.is_some()) {
        if currencies.is_empty() {
            return Err(Error::InvalidEnsemble(
                "requirements.budget: what a deployment owes is counted from the receipts of its \
                 contracts, and it names none (`contracts`)"
                    .into(),
            ));
        }
        if currencies.len() > 1 {
            return Err(Error::InvalidEnsemble(format!(
                "requirements.budget: the contracts are in {} currencies ({}); a budget needs one",
                currencies.len(),
                currencies.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    if let Some(currency) = requirements.and_then(|r| r.currency.as_ref())
        && !currencies.is_empty()
        && !currencies.contains(currency)
    {
        return Err(Error::InvalidEnsemble(format!(
            "requirements.currency is {currency}; the contracts are in {}",
            currencies.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

impl Orchestrator {
    /// The text forms of the deployment's contracts, for its bid requests.
    pub(crate) fn contract_texts(&self, ensemble: &Ensemble) -> Vec<String> {
        let contracts = self.shared.contracts();
        ensemble
            .contracts
            .values()
            .filter_map(|entry| contracts.get(&entry.id).ok().flatten())
            .filter_map(|known| known.contract.to_text().ok())
            .collect()
    }

    /// The text form of contract `id`, for an allocate.
    pub(crate) fn contract_text(&self, id: Option<&str>) -> Option<String> {
        let known = self.shared.contracts().get(id?).ok().flatten()?;
        known.contract.to_text().ok()
    }

    /// Registers the receipt behavior on the orchestrator's actor.
    pub(crate) fn register_receipts(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let registered = dms_protocol::handle(&self.actor, move |_, offer: ReceiptOffer| {
            let weak = weak.clone();
            async move {
                let orchestrator = weak.upgrade().ok_or(dms_actor::ActorError::Closed)?;
                Ok(orchestrator.take_receipt(offer.receipt).await)
            }
        });
        if let Err(error) = registered {
            warn!(%error, "Could not register the receipt behavior.");
        }
    }

    /// Judges and books a receipt; shuts the deployment down, once, when its budget is
    /// spent by it.
    pub(crate) async fn take_receipt(self: &Arc<Self>, text: String) -> ReceiptAnswer {
        let this = self.clone();
        let judged = tokio::task::spawn_blocking(move || this.book(&text)).await;
        let (mut answer, spent) = match judged {
            Ok(judged) => judged,
            Err(error) => (ReceiptAnswer::refused("receipt_internal", error.to_string()), None),
        };
        let Some(why) = spent else { return answer };
        // Decided under the record's lock: only a deployment still running is shut down
        // for its budget, and only once (receipts arrive concurrently).
        let fired = self.change_when(None, why.clone(), |r| {
            let active = !r.state.is_terminal() && r.state != DeploymentState::ShuttingDown;
            let already = r.reason.as_deref().is_some_and(|w| w.starts_with(BUDGET));
            if active && !already {
                r.reason = Some(why.clone());
            }
            active && !already
        });
        if fired.is_none() {
            answer.closed = self.peek(|r| r.reason.clone().filter(|w| w.starts_with(BUDGET)));
            return answer;
        }
        answer.closed = Some(why.clone());
        let (contracts, ensemble) = (self.shared.contracts(), self.peek(|r| r.ensemble.clone()));
        let memo = format!("{}: {why}", self.peek(|r| r.id.clone()));
        let _ = tokio::task::spawn_blocking(move || {
            for entry in ensemble.contracts.values() {
                if let Ok(Some(known)) = contracts.get(&entry.id) {
                    let _ = contracts.note(Side::Requester, &known.contract, &memo);
                }
            }
        })
        .await;
        let this = self.clone();
        tokio::spawn(async move {
            this.shutdown().await;
        });
        answer
    }

    /// The receipt judged and booked (blocking: the store); why the budget is spent,
    /// when it is.
    fn book(&self, text: &str) -> (ReceiptAnswer, Option<String>) {
        let refused = |code: &str, why: String| (ReceiptAnswer::refused(code, why), None);
        let receipt = match Receipt::from_text(text) {
            Ok(receipt) => receipt,
            Err(error) => return refused("receipt_malformed", error.to_string()),
        };
        let s = receipt.statement().clone();
        let (id, ensemble, created_ms, closed, peers) = self.peek(|r| {
            let closed = r.reason.clone().filter(|why| why.starts_with(BUDGET));
            let view = r.allocations.get(&s.allocation);
            let peers: Vec<String> = view
                .map(|v| v.peer.iter().cloned().chain(v.lineage.iter().map(|l| l.peer.clone())))
                .into_iter()
                .flatten()
                .collect();
            (r.id.clone(), r.ensemble.clone(), r.created_ms, closed, peers)
        });
        let spec = ensemble.allocations.get(&s.allocation);
        let named = ensemble.contracts.values().any(|c| c.id == s.contract);
        let (Some(spec), true, true) = (spec, named, s.deployment == id) else {
            let why = format!(
                "receipt {} is for allocation {} of {} under contract {}: not an allocation and \
                 contract of deployment {id}",
                s.seq, s.allocation, s.deployment, s.contract
            );
            return refused("receipt_elsewhere", why);
        };
        // Only a provider that held the allocation (now or an earlier copy) bills for it.
        let held =
            peers.iter().any(|p| (self.shared.root_of)(p).is_some_and(|h| h.did == s.provider));
        if !held {
            let why = format!(
                "receipt {} is signed by {}, which never ran allocation {} of {id}",
                s.seq, s.provider, s.allocation
            );
            return refused("receipt_wrong_party", why);
        }
        if let Some(why) = implausible(&s, spec, created_ms, now_ms()) {
            return refused("receipt_impossible", why);
        }
        let contracts = self.shared.contracts();
        let contract = match contracts.get(&s.contract) {
            Ok(Some(known)) => known.contract,
            Ok(None) => {
                return refused(
                    "receipt_elsewhere",
                    format!("this node no longer keeps contract {}", s.contract),
                );
            }
            Err(error) => return refused("receipt_internal", error.to_string()),
        };
        let taken = {
            let mut books = self.books.lock().expect("books lock");
            let key = (s.allocation.clone(), s.contract.clone());
            let book = books
                .entry(key)
                .or_insert_with(|| self.reopen(&contracts, &contract, &id, &s.allocation));
            book.take(receipt.clone())
        };
        let outcome = match taken {
            Err(refusal) => return refused(refusal.code, refusal.reason),
            Ok(Taken::Repeat) => "repeat",
            Ok(Taken::New) => {
                let memo = format!("receipt {} of {id}.{}", s.seq, s.allocation);
                let kept =
                    contracts.take_receipt(Side::Requester, &contract, &receipt, &memo, |_| Ok(()));
                if let Err(error) = kept {
                    // Not kept: the book forgets it too, and takes it when it comes again.
                    self.books.lock().expect("books lock").remove(&(s.allocation, s.contract));
                    return refused("receipt_internal", error.to_string());
                }
                "new"
            }
        };
        let owed = contracts
            .tally(Side::Requester, &contract.id(), Some(&id))
            .map(|tally| owed_by(&contract, &tally));
        let spent =
            if closed.is_some() { None } else { self.budget_spent(&contracts, &ensemble, &id) };
        let answer = ReceiptAnswer {
            outcome: outcome.into(),
            code: None,
            reason: None,
            owed: owed.ok(),
            closed,
        };
        (answer, spent)
    }

    /// The book of `allocation` under `contract`, from the receipts kept (after a
    /// restart of this node, or a failed write).
    fn reopen(
        &self,
        contracts: &Contracts,
        contract: &Contract,
        deployment: &str,
        allocation: &str,
    ) -> Book {
        let provider = contract.terms().provider.clone();
        let mut book = Book::new(&contract.id(), deployment, allocation, provider);
        let kept = contracts.receipts(Side::Requester, &contract.id(), Some(deployment));
        for receipt in kept.unwrap_or_default() {
            if receipt.statement().allocation == allocation {
                let _ = book.take(receipt);
            }
        }
        book
    }

    /// Why the budget is spent, when what the deployment owes has reached it.
    fn budget_spent(&self, contracts: &Contracts, ensemble: &Ensemble, id: &str) -> Option<String> {
        let budget = ensemble.requirements.as_ref()?.budget?;
        let mut total = 0u64;
        let mut currency = None;
        for entry in ensemble.contracts.values() {
            let Ok(Some(known)) = contracts.get(&entry.id) else { continue };
            let Ok(tally) = contracts.tally(Side::Requester, &entry.id, Some(id)) else { continue };
            let owed = owed_by(&known.contract, &tally);
            total = total.saturating_add(owed.micros);
            currency = Some(owed.currency);
        }
        let budget = Amount::of_units(budget, currency?);
        (total >= budget.micros).then(|| {
            let why = format!(
                "{BUDGET}: the receipts owe {} of a budget of {budget}; shut down",
                Amount::micros(total, budget.currency.clone())
            );
            info!(deployment = %id, "{why}");
            why
        })
    }

    /// The deployment's receipts, per allocation and contract, and what they owe.
    pub(crate) fn usage(&self) -> Result<UsageReport, Error> {
        let (id, ensemble) = self.peek(|r| (r.id.clone(), r.ensemble.clone()));
        let contracts = self.shared.contracts();
        let store_error = |e: dms_contracts::Error| Error::Contract(e.to_string());
        let mut report = UsageReport {
            deployment: id.clone(),
            budget: None,
            total: Vec::new(),
            contracts: Vec::new(),
            allocations: Vec::new(),
        };
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        for entry in ensemble.contracts.values() {
            let Some(known) = contracts.get(&entry.id).map_err(store_error)? else { continue };
            let contract = known.contract;
            let receipts = contracts
                .receipts(Side::Requester, &contract.id(), Some(&id))
                .map_err(store_error)?;
            let owed = processor::owed(&contract, &receipts).map_err(store_error)?;
            *totals.entry(owed.currency.clone()).or_default() += owed.micros;
            report.contracts.push(ContractOwed {
                contract: contract.id(),
                model: contract.terms().model.name().into(),
                owed,
            });
            let mut by_allocation: BTreeMap<String, Book> = BTreeMap::new();
            for receipt in receipts {
                let allocation = receipt.statement().allocation.clone();
                by_allocation
                    .entry(allocation.clone())
                    .or_insert_with(|| {
                        Book::new(
                            &contract.id(),
                            &id,
                            &allocation,
                            contract.terms().provider.clone(),
                        )
                    })
                    .take(receipt)
                    .ok();
            }
            for (allocation, book) in by_allocation {
                report.allocations.push(AllocationUsage {
                    allocation,
                    contract: contract.id(),
                    provider: contract.terms().provider.to_string(),
                    receipts: book.receipts().map(ReceiptView::of).collect(),
                    gaps: book.gaps(),
                    finished: book.finished(),
                });
            }
        }
        report.total = totals.into_iter().map(|(c, m)| Amount::micros(m, c)).collect();
        let budget = ensemble.requirements.as_ref().and_then(|r| r.budget);
        let currency = report.total.first().map(|a| a.currency.clone());
        report.budget = budget.zip(currency).map(|(b, c)| Amount::of_units(b, c));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use dms_contracts::Usage;
    use dms_contracts::receipt::Statement;

    use super::*;

    #[test]
    fn a_receipt_claiming_more_than_the_allocation_holds_or_outside_its_life_is_impossible() {
        let spec: dms_ensemble::model::Allocation = serde_json::from_value(serde_json::json!({
            "type": "service", "executor": "wasm",
            "resources": {"cpu": {"cores": 0.5}, "ram": "64MiB"},
            "execution": {"module": "m.wasm"}
        }))
        .expect("an allocation");
        let provider = dms_crypto::KeyPair::generate(dms_crypto::KeyType::Ed25519).did();
        let statement = |from_ms, to_ms, usage| Statement {
            contract: "c".into(),
            deployment: "d".into(),
            allocation: "a".into(),
            provider: provider.clone(),
            seq: 0,
            from_ms,
            to_ms,
            usage,
            exit: None,
        };
        let (made, now) = (1_000_000, 2_000_000);
        let fair =
            Usage { wall_secs: 10, cpu_millicore_secs: 5_000, ram_mib_secs: 640, gpu_secs: 0 };
        assert_eq!(implausible(&statement(made, made + 10_000, fair), &spec, made, now), None);
        let greedy = Usage { cpu_millicore_secs: 5_001, ..fair };
        let why = implausible(&statement(made, made + 10_000, greedy), &spec, made, now);
        assert!(why.is_some_and(|w| w.contains("more than allocation a holds")));
        let gpus = Usage { gpu_secs: 1, ..fair };
        assert!(implausible(&statement(made, made + 10_000, gpus), &spec, made, now).is_some());
        // Before the deployment was made, or in the future, beyond the clocks' skew.
        assert!(implausible(&statement(0, 10_000, fair), &spec, made, now).is_some());
        let late = now + SKEW_MS + 1;
        assert!(implausible(&statement(late - 10_000, late, fair), &spec, made, now).is_some());
    }
}
