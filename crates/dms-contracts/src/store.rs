//! Where a node keeps its contracts, their revocations, receipts and its ledger: tables
//! of its `dms-store` database. Contracts and receipts are kept in their signed text
//! form and checked again when read, so a changed database cannot make a node trust a
//! document it would have refused.
//!
//! | table | key | value |
//! |---|---|---|
//! | `contracts` | contract id | the contract, with every signature seen |
//! | `contract_revocations` | contract id | the first valid revocation |
//! | `contract_receipts` | `<side>/<contract>/<deployment>/<allocation>/<seq>` | a receipt |
//! | `contract_tallies` | `<side>/<contract>[/<deployment>]` | what its receipts add up to |
//! | `contract_ledgers` | `requester` or `provider` | that side's [`Ledger`] |

use dms_store::{Repo, Store};
use serde::{Deserialize, Serialize};

use crate::ledger::{Ledger, Settlement, Side};
use crate::processor::{Tally, owed_by};
use crate::{Contract, Error, Receipt, Revocation};

const CONTRACTS: Repo<Stored> = Repo::new("contracts");
const REVOCATIONS: Repo<String> = Repo::new("contract_revocations");
const RECEIPTS: Repo<String> = Repo::new("contract_receipts");
const LEDGERS: Repo<Ledger> = Repo::new("contract_ledgers");
const TALLIES: Repo<Tally> = Repo::new("contract_tallies");

#[derive(Serialize, Deserialize)]
struct Stored {
    /// [`Contract::to_text`].
    text: String,
    /// When this node first stored it (Unix milliseconds).
    added_ms: u64,
}

/// A contract this node keeps, and its revocation if one arrived.
#[derive(Debug, Clone)]
pub struct Known {
    /// The contract, with every signature seen.
    pub contract: Contract,
    /// When this node first stored it (Unix milliseconds).
    pub added_ms: u64,
    /// A party's revocation.
    pub revocation: Option<Revocation>,
}

fn store_error(error: dms_store::Error) -> Error {
    Error::Store(error.to_string())
}

/// The tally keys of a contract, and of one deployment under it.
fn tally_keys(side: Side, contract: &str, deployment: &str) -> (String, String) {
    let whole = format!("{}/{contract}", side_name(side));
    let of_deployment = format!("{whole}/{deployment}");
    (whole, of_deployment)
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Requester => "requester",
        Side::Provider => "provider",
    }
}

/// A node's contracts, receipts and ledger.
#[derive(Clone)]
pub struct Contracts {
    store: Store,
}

impl Contracts {
    /// Over the node's `store`.
    pub fn new(store: Store) -> Contracts {
        Contracts { store }
    }

    /// Keeps `contract` (its signatures must verify), adding its signatures to those of
    /// the same terms kept already; returns what is kept now.
    pub fn put(&self, contract: &Contract, now_ms: u64) -> Result<Contract, Error> {
        contract.verify_signatures()?;
        let id = contract.id();
        let mut kept = None;
        self.store
            .write(|tx| {
                let (merged, added_ms) = match CONTRACTS.get(tx, &id)? {
                    Some(stored) => {
                        let mut merged =
                            Contract::from_text(&stored.text).map_err(dms_store::Error::custom)?;
                        merged.merge(contract).map_err(dms_store::Error::custom)?;
                        (merged, stored.added_ms)
                    }
                    None => (contract.clone(), now_ms),
                };
                let text = merged.to_text().map_err(dms_store::Error::custom)?;
                CONTRACTS.put(tx, &id, &Stored { text, added_ms })?;
                kept = Some(merged);
                Ok(())
            })
            .map_err(store_error)?;
        kept.ok_or_else(|| Error::Store("nothing written".into()))
    }

    /// The contract `id`, if kept.
    pub fn get(&self, id: &str) -> Result<Option<Known>, Error> {
        let Some(stored) = CONTRACTS.get_now(&self.store, id).map_err(store_error)? else {
            return Ok(None);
        };
        self.known(stored).map(Some)
    }

    fn known(&self, stored: Stored) -> Result<Known, Error> {
        let contract = Contract::from_text(&stored.text)?;
        contract.verify_signatures()?;
        let revocation = self.revocation_of(&contract)?;
        Ok(Known { contract, added_ms: stored.added_ms, revocation })
    }

    /// Every contract kept, oldest first.
    pub fn list(&self) -> Result<Vec<Known>, Error> {
        let stored = CONTRACTS.list_now(&self.store).map_err(store_error)?;
        let mut known =
            stored.into_iter().map(|(_, s)| self.known(s)).collect::<Result<Vec<_>, _>>()?;
        known.sort_by_key(|k| k.added_ms);
        Ok(known)
    }

    /// Keeps a revocation that verifies (and, when the contract is kept, is by one of
    /// its parties). Returns whether it is new here; the first one kept stays.
    pub fn revoke(&self, revocation: &Revocation) -> Result<bool, Error> {
        revocation.verify()?;
        let id = revocation.statement().contract.clone();
        if let Some(known) = self.get(&id)? {
            revocation.revokes(&known.contract)?;
        }
        let text = revocation.to_text()?;
        let mut new = false;
        self.store
            .write(|tx| {
                if REVOCATIONS.get(tx, &id)?.is_none() {
                    REVOCATIONS.put(tx, &id, &text)?;
                    new = true;
                }
                Ok(())
            })
            .map_err(store_error)?;
        Ok(new)
    }

    /// The revocation of `contract`, if a party revoked it.
    pub fn revocation_of(&self, contract: &Contract) -> Result<Option<Revocation>, Error> {
        let text = REVOCATIONS.get_now(&self.store, &contract.id()).map_err(store_error)?;
        let Some(text) = text else { return Ok(None) };
        let revocation = Revocation::from_text(&text)?;
        // A revocation kept before the contract arrived counts only if it is a party's.
        Ok(revocation.revokes(contract).is_ok().then_some(revocation))
    }

    /// Keeps a receipt on `side` (issued by this provider, or taken by this requester)
    /// under `contract`, adds it to the contract's tallies and books on `side` what the
    /// contract owes now, with `memo` — all in one transaction with `also` (the caller's
    /// own write: a provider's outbox entry), so that none happens without the others.
    /// A receipt kept already changes nothing (and `also` does not run); returns whether
    /// it is new here.
    pub fn take_receipt(
        &self,
        side: Side,
        contract: &Contract,
        receipt: &Receipt,
        memo: &str,
        also: impl FnOnce(&dms_store::WriteTx) -> Result<(), dms_store::Error>,
    ) -> Result<bool, Error> {
        let s = receipt.statement();
        let key = format!(
            "{}/{}/{}/{}/{:020}",
            side_name(side),
            s.contract,
            s.deployment,
            s.allocation,
            s.seq
        );
        let text = receipt.to_text()?;
        let (whole, of_deployment) = tally_keys(side, &s.contract, &s.deployment);
        let mut new = false;
        self.store
            .write(|tx| {
                if RECEIPTS.get(tx, &key)?.is_some() {
                    return Ok(());
                }
                RECEIPTS.put(tx, &key, &text)?;
                let mut owed = None;
                for tally_key in [&of_deployment, &whole] {
                    let mut tally = TALLIES.get(tx, tally_key)?.unwrap_or_default();
                    tally.add(contract, receipt).map_err(dms_store::Error::custom)?;
                    TALLIES.put(tx, tally_key, &tally)?;
                    owed = Some(owed_by(contract, &tally));
                }
                let mut ledger =
                    LEDGERS.get(tx, side_name(side))?.unwrap_or_else(|| Ledger::new(side));
                let owed = owed.unwrap_or_else(|| contract.terms().amount(0));
                let booked =
                    ledger.accrue(contract, &owed, memo).map_err(dms_store::Error::custom)?;
                if booked.micros > 0 {
                    LEDGERS.put(tx, side_name(side), &ledger)?;
                }
                also(tx)?;
                new = true;
                Ok(())
            })
            .map_err(store_error)?;
        Ok(new)
    }

    /// What `side`'s receipts under `contract` add up to (of one deployment when given).
    pub fn tally(
        &self,
        side: Side,
        contract: &str,
        deployment: Option<&str>,
    ) -> Result<Tally, Error> {
        let (whole, of_deployment) = tally_keys(side, contract, deployment.unwrap_or_default());
        let key = if deployment.is_some() { of_deployment } else { whole };
        Ok(TALLIES.get_now(&self.store, &key).map_err(store_error)?.unwrap_or_default())
    }

    /// The receipts kept on `side` under `contract` (of one deployment when given), in
    /// key order.
    pub fn receipts(
        &self,
        side: Side,
        contract: &str,
        deployment: Option<&str>,
    ) -> Result<Vec<Receipt>, Error> {
        let mut prefix = format!("{}/{contract}/", side_name(side));
        if let Some(deployment) = deployment {
            prefix.push_str(deployment);
            prefix.push('/');
        }
        let rows = RECEIPTS.scan_prefix_now(&self.store, &prefix).map_err(store_error)?;
        rows.into_iter().map(|(_, text)| Receipt::from_text(&text)).collect()
    }

    /// `side`'s ledger (empty before its first entry).
    pub fn ledger(&self, side: Side) -> Result<Ledger, Error> {
        let ledger = LEDGERS.get_now(&self.store, side_name(side)).map_err(store_error)?;
        Ok(ledger.unwrap_or_else(|| Ledger::new(side)))
    }

    /// Records on `side` an event under `contract` that moves nothing
    /// ([`Ledger::note`]), once per memo.
    pub fn note(&self, side: Side, contract: &Contract, memo: &str) -> Result<(), Error> {
        self.store
            .write(|tx| {
                let mut ledger =
                    LEDGERS.get(tx, side_name(side))?.unwrap_or_else(|| Ledger::new(side));
                let id = contract.id();
                if !ledger.entries().iter().any(|e| e.contract == id && e.memo == memo) {
                    ledger.note(contract, memo);
                    LEDGERS.put(tx, side_name(side), &ledger)?;
                }
                Ok(())
            })
            .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use dms_crypto::{KeyPair, KeyType};

    use super::*;
    use crate::models::PayPerTimeUtilization;
    use crate::receipt::Statement;
    use crate::{Limits, Model, Terms, Usage, processor};

    fn contract(requester: &KeyPair, provider: &KeyPair) -> Contract {
        Contract::new(Terms {
            v: 1,
            requester: requester.did(),
            provider: provider.did(),
            model: Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 3_600_000 }),
            currency: "USDT".into(),
            limits: Limits::default(),
            valid_from: 0,
            valid_until: u64::MAX,
            host: None,
            nonce: 1,
        })
        .expect("terms")
    }

    #[test]
    fn signatures_merge_revocations_stay_and_ledgers_persist() {
        let dir = tempfile::tempdir().expect("ok");
        let store = Store::open(dir.path().join("db")).expect("ok");
        let contracts = Contracts::new(store.clone());
        let key = || KeyPair::generate(KeyType::Ed25519);
        let (requester, provider) = (key(), key());
        let terms = contract(&requester, &provider);
        let (mut by_requester, mut by_provider) = (terms.clone(), terms.clone());
        by_requester.sign(&requester).expect("ok");
        by_provider.sign(&provider).expect("ok");
        contracts.put(&by_requester, 1).expect("ok");
        let both = contracts.put(&by_provider, 2).expect("ok");
        assert!(both.signed_by(&requester.did()) && both.signed_by(&provider.did()));
        let known = contracts.get(&terms.id()).expect("ok").expect("kept");
        assert_eq!((known.added_ms, known.revocation.is_none()), (1, true));

        let revocation = Revocation::sign(&terms, &requester, 3, "done").expect("ok");
        assert!(contracts.revoke(&revocation).expect("ok"));
        let later = Revocation::sign(&terms, &provider, 4, "me too").expect("ok");
        assert!(!contracts.revoke(&later).expect("ok"), "the first revocation stays");
        let stranger = key();
        let mut other = contract(&stranger, &provider);
        other.sign(&stranger).expect("ok");
        assert!(
            contracts
                .revoke(&Revocation::sign(&other, &stranger, 3, "x").expect("ok"))
                .expect("ok")
        );
        assert!(contracts.get(&terms.id()).expect("ok").expect("ok").revocation.is_some());

        let receipt = Receipt::sign(
            Statement {
                contract: terms.id(),
                deployment: "d".into(),
                allocation: "a".into(),
                provider: provider.did(),
                seq: 0,
                from_ms: 0,
                to_ms: 2_000,
                usage: Usage { wall_secs: 2, ..Usage::default() },
                exit: None,
            },
            &provider,
        )
        .expect("ok");
        let mut queued = 0;
        let mut take = || {
            contracts.take_receipt(Side::Provider, &terms, &receipt, "receipt 0", |_| {
                queued += 1;
                Ok(())
            })
        };
        assert!(take().expect("ok"));
        assert!(!take().expect("ok"), "a receipt kept already changes nothing");
        assert_eq!(queued, 1);
        let kept = contracts.receipts(Side::Provider, &terms.id(), Some("d")).expect("ok");
        assert_eq!(kept, vec![receipt.clone()]);
        assert!(contracts.receipts(Side::Requester, &terms.id(), None).expect("ok").is_empty());

        let owed = processor::owed(&terms, &kept).expect("ok");
        assert_eq!(owed.micros, 2_000);
        let tally = contracts.tally(Side::Provider, &terms.id(), Some("d")).expect("ok");
        assert_eq!(processor::owed_by(&terms, &tally), owed);
        assert_eq!(contracts.tally(Side::Provider, &terms.id(), None).expect("ok"), tally);
        drop(contracts);
        drop(store);
        let reopened = Contracts::new(Store::open(dir.path().join("db")).expect("ok"));
        let ledger = reopened.ledger(Side::Provider).expect("ok");
        assert_eq!(ledger.accrued(&terms.id()), Some(owed));
    }
}
