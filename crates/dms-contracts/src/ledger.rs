//! Settlement: each party keeps a double-entry ledger of what is owed under its
//! contracts, and the two must agree.
//!
//! Every entry moves an amount from one account to another, so each currency's
//! balances sum to zero. The requester books what it owes as an expense against a
//! payable to the provider; the provider books the same as a receivable from the
//! requester against revenue. [`Ledger::accrue`] records what is owed under a contract
//! *so far* (the processor's total over the receipts): only the increase since the
//! last accrual is booked, so accruing the same total twice books nothing, and totals
//! arriving out of order never book a decrease. [`agree`] compares the two sides.
//!
//! [`Settlement`] is the seam for payment rails: [`Ledger`] is the local one (no
//! chain); a chain client would implement the same trait and confirm with a
//! transaction id.

use std::collections::BTreeMap;

use dms_crypto::Did;
use serde::{Deserialize, Serialize};

use crate::{Amount, Contract, Error};

/// Which side of a contract a ledger keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The party that pays.
    Requester,
    /// The party that is paid.
    Provider,
}

/// One booking: `amount` from `credit` to `debit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The contract it is under.
    pub contract: String,
    /// The account debited (`expense:…`, `receivable:…`).
    pub debit: String,
    /// The account credited (`payable:…`, `revenue:…`).
    pub credit: String,
    /// How much.
    pub amount: Amount,
    /// Why (`accrued to 1.5 USDT`, `budget reached`, ...).
    pub memo: String,
}

/// Records what is owed; a payment rail implements it.
pub trait Settlement {
    /// Records that `owed` is the total owed under `contract` so far; returns the
    /// increase booked (zero when nothing new is owed).
    fn accrue(&mut self, contract: &Contract, owed: &Amount, memo: &str) -> Result<Amount, Error>;

    /// The total booked under `contract`.
    fn accrued(&self, contract: &str) -> Option<Amount>;
}

/// A party's local double-entry ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ledger {
    side: Side,
    entries: Vec<Entry>,
    /// Total booked per contract.
    totals: BTreeMap<String, Amount>,
}

impl Ledger {
    /// The side it keeps.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Records an event under `contract` that moves nothing (`budget reached: shut
    /// down`), so that the ledger tells what happened beside what is owed.
    pub fn note(&mut self, contract: &Contract, memo: &str) {
        let (debit, credit) = self.accounts(contract);
        let amount = contract.terms().amount(0);
        self.entries.push(Entry {
            contract: contract.id(),
            debit,
            credit,
            amount,
            memo: memo.into(),
        });
    }

    /// An empty ledger of `side`.
    pub fn new(side: Side) -> Ledger {
        Ledger { side, entries: Vec::new(), totals: BTreeMap::new() }
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The balance of `account` per currency (debits positive, credits negative).
    pub fn balance(&self, account: &str) -> BTreeMap<String, i128> {
        let mut balance = BTreeMap::new();
        for entry in &self.entries {
            let micros = i128::from(entry.amount.micros);
            if entry.debit == account {
                *balance.entry(entry.amount.currency.clone()).or_insert(0) += micros;
            }
            if entry.credit == account {
                *balance.entry(entry.amount.currency.clone()).or_insert(0) -= micros;
            }
        }
        balance
    }

    /// The accounts an accrual under `contract` moves between.
    fn accounts(&self, contract: &Contract) -> (String, String) {
        let id = contract.id();
        let terms = contract.terms();
        let other = |did: &Did| did.to_string();
        match self.side {
            Side::Requester => {
                (format!("expense:{id}"), format!("payable:{}", other(&terms.provider)))
            }
            Side::Provider => {
                (format!("receivable:{}", other(&terms.requester)), format!("revenue:{id}"))
            }
        }
    }
}

impl Settlement for Ledger {
    fn accrue(&mut self, contract: &Contract, owed: &Amount, memo: &str) -> Result<Amount, Error> {
        let id = contract.id();
        let before = self.totals.get(&id).cloned().unwrap_or_else(|| contract.terms().amount(0));
        if owed.currency != before.currency {
            return Err(Error::Currency { left: before.currency, right: owed.currency.clone() });
        }
        let increase = owed.micros.saturating_sub(before.micros);
        let increase = Amount::micros(increase, owed.currency.clone());
        if increase.micros == 0 {
            return Ok(increase);
        }
        let (debit, credit) = self.accounts(contract);
        self.entries.push(Entry {
            contract: id.clone(),
            debit,
            credit,
            amount: increase.clone(),
            memo: memo.to_string(),
        });
        self.totals.insert(id, before.plus(&increase)?);
        Ok(increase)
    }

    fn accrued(&self, contract: &str) -> Option<Amount> {
        self.totals.get(contract).cloned()
    }
}

/// Where two ledgers disagree about a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// The contract.
    pub contract: String,
    /// What the requester booked.
    pub requester: Option<Amount>,
    /// What the provider booked.
    pub provider: Option<Amount>,
}

/// Whether the requester's and the provider's ledgers book the same under every
/// contract either knows; the disagreements otherwise.
pub fn agree(requester: &Ledger, provider: &Ledger) -> Result<(), Vec<Disagreement>> {
    let contracts: std::collections::BTreeSet<&String> =
        requester.totals.keys().chain(provider.totals.keys()).collect();
    let disagreements: Vec<Disagreement> = contracts
        .into_iter()
        .filter_map(|id| {
            let (r, p) = (requester.accrued(id), provider.accrued(id));
            (r != p).then(|| Disagreement { contract: id.clone(), requester: r, provider: p })
        })
        .collect();
    if disagreements.is_empty() { Ok(()) } else { Err(disagreements) }
}

#[cfg(test)]
mod tests {
    use dms_crypto::{KeyPair, KeyType};

    use super::*;
    use crate::models::*;
    use crate::{Limits, Model, Terms};

    fn contract() -> Contract {
        let did = || KeyPair::generate(KeyType::Ed25519).did();
        Contract::new(Terms {
            v: 1,
            requester: did(),
            provider: did(),
            model: Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 1_000_000 }),
            currency: "USDT".into(),
            limits: Limits::default(),
            valid_from: 0,
            valid_until: u64::MAX,
            host: None,
            nonce: 1,
        })
        .expect("valid")
    }

    #[test]
    fn accruals_book_only_increases_and_both_sides_agree() {
        let c = contract();
        let (mut requester, mut provider) =
            (Ledger::new(Side::Requester), Ledger::new(Side::Provider));
        let usdt = |micros| Amount::micros(micros, "USDT");
        for owed in [100, 250, 250, 200, 400] {
            requester.accrue(&c, &usdt(owed), "receipts").expect("same currency");
        }
        for owed in [400, 100] {
            provider.accrue(&c, &usdt(owed), "receipts").expect("same currency");
        }
        assert_eq!(requester.accrued(&c.id()), Some(usdt(400)));
        assert_eq!(requester.entries().len(), 3, "100, +150, +150");
        assert_eq!(agree(&requester, &provider), Ok(()));
        // Double entry: the expense and the payable cancel out.
        let expense = requester.balance(&format!("expense:{}", c.id()));
        let payable = requester.balance(&format!("payable:{}", c.terms().provider));
        assert_eq!(expense["USDT"], 400);
        assert_eq!(payable["USDT"], -400);
        let receivable = provider.balance(&format!("receivable:{}", c.terms().requester));
        assert_eq!(receivable["USDT"], 400);
    }

    #[test]
    fn a_difference_is_reported_per_contract() {
        let c = contract();
        let (mut requester, mut provider) =
            (Ledger::new(Side::Requester), Ledger::new(Side::Provider));
        requester.accrue(&c, &Amount::micros(300, "USDT"), "receipts").expect("ok");
        provider.accrue(&c, &Amount::micros(500, "USDT"), "receipts").expect("ok");
        let differ = agree(&requester, &provider).expect_err("they differ");
        assert_eq!(differ.len(), 1);
        assert_eq!(differ[0].provider, Some(Amount::micros(500, "USDT")));
        assert!(matches!(
            requester.accrue(&c, &Amount::micros(1, "NTX"), "x"),
            Err(Error::Currency { .. })
        ));
    }
}
