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

use dms_contracts::ledger::Side;
use dms_contracts::receipt::{Book, Taken};
use dms_contracts::store::Contracts;
use dms_contracts::{Amount, Contract, Receipt, processor};
use dms_ensemble::model::Ensemble;
use dms_protocol::contract::{
    AllocationUsage, ContractOwed, ReceiptAnswer, ReceiptOffer, ReceiptView, UsageReport,
};
use tracing::{info, warn};

use super::{Orchestrator, Shared};
use crate::Error;

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

    /// Judges and books a receipt; shuts the deployment down when its budget is spent.
    pub(crate) async fn take_receipt(self: &Arc<Self>, text: String) -> ReceiptAnswer {
        let this = self.clone();
        let judged = tokio::task::spawn_blocking(move || this.book(&text)).await;
        let (answer, spent) = match judged {
            Ok(judged) => judged,
            Err(error) => (ReceiptAnswer::refused("receipt_internal", error.to_string()), None),
        };
        if let Some(why) = spent {
            let this = self.clone();
            self.change(None, why.clone(), |r| r.reason = Some(why.clone()));
            tokio::spawn(async move {
                this.shutdown().await;
            });
        }
        answer
    }

    /// The receipt judged and booked (blocking: the store); why the budget is spent,
    /// when this receipt spent it.
    fn book(&self, text: &str) -> (ReceiptAnswer, Option<String>) {
        let receipt = match Receipt::from_text(text) {
            Ok(receipt) => receipt,
            Err(error) => {
                return (ReceiptAnswer::refused("receipt_malformed", error.to_string()), None);
            }
        };
        let s = receipt.statement().clone();
        let (id, ensemble, known_allocation, finished) = self.peek(|r| {
            let finished = r.reason.as_deref().is_some_and(|why| why.starts_with("budget"));
            (r.id.clone(), r.ensemble.clone(), r.allocations.contains_key(&s.allocation), finished)
        });
        let named = ensemble.contracts.values().any(|c| c.id == s.contract);
        if s.deployment != id || !known_allocation || !named {
            let why = format!(
                "receipt {} is for allocation {} of {} under contract {}: not an allocation and \
                 contract of deployment {id}",
                s.seq, s.allocation, s.deployment, s.contract
            );
            return (ReceiptAnswer::refused("receipt_elsewhere", why), None);
        }
        let contracts = self.shared.contracts();
        let contract = match contracts.get(&s.contract) {
            Ok(Some(known)) => known.contract,
            Ok(None) => {
                let why = format!("this node no longer keeps contract {}", s.contract);
                return (ReceiptAnswer::refused("receipt_elsewhere", why), None);
            }
            Err(error) => {
                return (ReceiptAnswer::refused("receipt_internal", error.to_string()), None);
            }
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
            Err(refused) => return (ReceiptAnswer::refused(refused.code, refused.reason), None),
            Ok(Taken::Repeat) => "repeat",
            Ok(Taken::New) => {
                if let Err(error) = contracts.put_receipt(Side::Requester, &receipt) {
                    // Not kept: the book forgets it too, and takes it when it comes again.
                    self.books.lock().expect("books lock").remove(&(s.allocation, s.contract));
                    return (ReceiptAnswer::refused("receipt_internal", error.to_string()), None);
                }
                "new"
            }
        };
        let owed = self.owed_under(&contracts, &contract, &id);
        let memo = format!("receipt {} of {id}.{}", s.seq, s.allocation);
        if outcome == "new" {
            self.accrue(&contracts, &contract, &memo);
        }
        let spent = if finished { None } else { self.budget_spent(&contracts, &ensemble, &id) };
        if let Some(why) = &spent {
            let memo = format!("{id}: {why}");
            for entry in ensemble.contracts.values() {
                if let Ok(Some(known)) = contracts.get(&entry.id) {
                    let _ = contracts.note(Side::Requester, &known.contract, &memo);
                }
            }
        }
        let closed =
            spent.clone().or_else(|| finished.then(|| self.peek(|r| r.reason.clone())).flatten());
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

    /// What the deployment owes under `contract`.
    fn owed_under(
        &self,
        contracts: &Contracts,
        contract: &Contract,
        deployment: &str,
    ) -> Result<Amount, dms_contracts::Error> {
        let receipts = contracts.receipts(Side::Requester, &contract.id(), Some(deployment))?;
        processor::owed(contract, &receipts)
    }

    /// Books in the requester's ledger what `contract` owes now (over every deployment).
    fn accrue(&self, contracts: &Contracts, contract: &Contract, memo: &str) {
        let booked = contracts
            .receipts(Side::Requester, &contract.id(), None)
            .and_then(|all| processor::owed(contract, &all))
            .and_then(|owed| contracts.accrue(Side::Requester, contract, &owed, memo));
        if let Err(error) = booked {
            warn!(contract = %contract.id(), %error, "Could not book a receipt in the ledger.");
        }
    }

    /// Why the budget is spent, when what the deployment owes has reached it.
    fn budget_spent(&self, contracts: &Contracts, ensemble: &Ensemble, id: &str) -> Option<String> {
        let budget = ensemble.requirements.as_ref()?.budget?;
        let (total, currency) = self.total_owed(contracts, ensemble, id);
        let budget = Amount::of_units(budget, currency?);
        (total >= budget.micros).then(|| {
            let why = format!(
                "budget reached: the receipts owe {} of a budget of {budget}; shut down",
                Amount::micros(total, budget.currency.clone())
            );
            info!(deployment = %id, "{why}");
            why
        })
    }

    /// What the deployment owes in all (micro-units) and the currency.
    fn total_owed(
        &self,
        contracts: &Contracts,
        ensemble: &Ensemble,
        id: &str,
    ) -> (u64, Option<String>) {
        let mut total = 0u64;
        let mut currency = None;
        for entry in ensemble.contracts.values() {
            let Ok(Some(known)) = contracts.get(&entry.id) else { continue };
            if let Ok(owed) = self.owed_under(contracts, &known.contract, id) {
                total = total.saturating_add(owed.micros);
                currency = Some(owed.currency);
            }
        }
        (total, currency)
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
