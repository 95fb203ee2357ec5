//! The node's contract behaviors (`dms contract ...` calls them through the local API):
//! make a contract with this node as requester, sign one it is a party to, list and
//! show them with this side's ledger and receipts, revoke one and spread the
//! revocation; and take the revocations other nodes spread. The node signs with its own
//! key: contracts bind the node, which orchestrates or provides.

use std::time::Duration;

use dms_actor::{Actor, ActorError};
use dms_contracts::ledger::{Settlement, Side};
use dms_contracts::store::{Contracts, Known};
use dms_contracts::{Contract, Limits, Revocation, Terms};
use dms_protocol::contract::{
    ContractRevocation, ContractRevoked, ContractView, ListContracts, NewContract,
    REVOCATION_BEHAVIOR, REVOCATION_TOPIC, RevokeContract, ShowContract, SignContract,
};
use dms_protocol::handle;
use dms_store::Store;
use tracing::info;

use crate::behaviors::{bad, failed};

/// Registers the behaviors on the node's root actor and subscribes it to revocations
/// (the composition root joins [`REVOCATION_TOPIC`] on the network).
pub fn register(actor: &Actor, store: &Store) -> Result<(), ActorError> {
    let contracts = Contracts::new(store.clone());
    let c = contracts.clone();
    handle(actor, move |message, request: NewContract| {
        let (c, key) = (c.clone(), message.actor.signing_key().clone());
        blocking(move || {
            let mut contract = Contract::new(terms(&key.did(), request)?).map_err(bad)?;
            contract.sign(&key).map_err(bad)?;
            let kept = c.put(&contract, now_ms()).map_err(failed)?;
            info!(contract = %kept.id(), "Made a contract.");
            view(&c, &key.did(), known(&c, &kept.id())?, false)
        })
    })?;
    let c = contracts.clone();
    handle(actor, move |message, SignContract { contract }| {
        let (c, key) = (c.clone(), message.actor.signing_key().clone());
        blocking(move || {
            let mut contract = Contract::from_text(&contract).map_err(|e| {
                bad(format!("not a contract's text form (what `dms contract new` writes): {e}"))
            })?;
            contract.verify_signatures().map_err(bad)?;
            if !contract.signed_by(&key.did()) {
                contract.sign(&key).map_err(bad)?;
            }
            let kept = c.put(&contract, now_ms()).map_err(failed)?;
            view(&c, &key.did(), known(&c, &kept.id())?, false)
        })
    })?;
    let c = contracts.clone();
    handle(actor, move |message, ListContracts {}| {
        let (c, me) = (c.clone(), message.actor.handle().did.clone());
        blocking(move || {
            let all = c.list().map_err(failed)?;
            all.into_iter().map(|k| view(&c, &me, k, false)).collect()
        })
    })?;
    let c = contracts.clone();
    handle(actor, move |message, ShowContract { id }| {
        let (c, me) = (c.clone(), message.actor.handle().did.clone());
        blocking(move || view(&c, &me, known(&c, &id)?, true))
    })?;
    let c = contracts.clone();
    handle(actor, move |message, RevokeContract { id, reason }| {
        let (c, key) = (c.clone(), message.actor.signing_key().clone());
        async move {
            let (c2, key2) = (c.clone(), key.clone());
            let revocation = blocking(move || {
                let known = known(&c2, &id)?;
                let revocation = Revocation::sign(&known.contract, &key2, dms_ucan::now(), &reason)
                    .map_err(bad)?;
                c2.revoke(&revocation).map_err(failed)?;
                revocation.to_text().map_err(failed)
            })
            .await?;
            let payload =
                dms_protocol::encode(&ContractRevocation { revocation: revocation.clone() })?;
            let spread = message
                .actor
                .broadcast(REVOCATION_TOPIC, REVOCATION_BEHAVIOR, payload, Duration::from_secs(60))
                .await;
            Ok(ContractRevoked { revocation, broadcast: spread.is_ok() })
        }
    })?;
    let c = contracts;
    handle(actor, move |_, ContractRevocation { revocation }| {
        let c = c.clone();
        blocking(move || {
            let revocation = Revocation::from_text(&revocation).map_err(bad)?;
            // Kept only by nodes that keep the contract: the others have nothing to refuse.
            let id = revocation.statement().contract.clone();
            if c.get(&id).map_err(failed)?.is_none() {
                return Ok(false);
            }
            let new = c.revoke(&revocation).map_err(bad)?;
            if new {
                info!(contract = %id, by = %revocation.statement().by, "A party revoked a contract.");
            }
            Ok(new)
        })
    })?;
    actor.subscribe(REVOCATION_TOPIC);
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ActorError> + Send + 'static,
) -> Result<T, ActorError> {
    tokio::task::spawn_blocking(work).await.map_err(failed)?
}

fn now_ms() -> u64 {
    dms_actor::envelope::now_ms()
}

fn terms(me: &dms_crypto::Did, request: NewContract) -> Result<Terms, ActorError> {
    let did = |text: &str, what: &str| -> Result<dms_crypto::Did, ActorError> {
        text.parse().map_err(|e| bad(format!("{what} {text:?} is not a did:key DID: {e}")))
    };
    let now = dms_ucan::now();
    Ok(Terms {
        v: 1,
        requester: me.clone(),
        provider: did(&request.provider, "the provider")?,
        model: request.model,
        currency: request.currency,
        limits: Limits { max_total: request.max_total, max_allocations: request.max_allocations },
        valid_from: now,
        valid_until: now.saturating_add(request.valid_secs),
        host: request.host.as_deref().map(|h| did(h, "the host")).transpose()?,
        nonce: rand::random(),
    })
}

fn known(contracts: &Contracts, id: &str) -> Result<Known, ActorError> {
    contracts.get(id).map_err(failed)?.ok_or_else(|| {
        ActorError::handler(format!("this node keeps no contract {id}: see `dms contract list`"))
    })
}

fn view(
    contracts: &Contracts,
    me: &dms_crypto::Did,
    known: Known,
    receipts: bool,
) -> Result<ContractView, ActorError> {
    let contract = &known.contract;
    let terms = contract.terms();
    let side = if &terms.requester == me {
        Some(Side::Requester)
    } else if &terms.provider == me {
        Some(Side::Provider)
    } else {
        None
    };
    let accrued = match side {
        Some(side) => contracts.ledger(side).map_err(failed)?.accrued(&contract.id()),
        None => None,
    };
    let receipts = match side.filter(|_| receipts) {
        Some(side) => contracts
            .receipts(side, &contract.id(), None)
            .map_err(failed)?
            .iter()
            .map(dms_protocol::contract::ReceiptView::of)
            .collect(),
        None => Vec::new(),
    };
    let revoked = known.revocation.as_ref().map(|r| {
        let s = r.statement();
        format!("revoked by {} at {} (Unix time): {}", s.by, s.at, s.reason)
    });
    Ok(ContractView {
        id: contract.id(),
        text: contract.to_text().map_err(failed)?,
        requester: terms.requester.to_string(),
        provider: terms.provider.to_string(),
        model: terms.model,
        currency: terms.currency.clone(),
        max_total: terms.limits.max_total,
        valid_from: terms.valid_from,
        valid_until: terms.valid_until,
        host: terms.host.as_ref().map(ToString::to_string),
        signed_by: contract.signers().map(String::from).collect(),
        complete: contract.signed_by(&terms.requester) && contract.signed_by(&terms.provider),
        side: match side {
            Some(Side::Requester) => "requester",
            Some(Side::Provider) => "provider",
            None => "none",
        }
        .into(),
        revoked,
        accrued,
        receipts,
        ledger: match side {
            Some(side) => contracts
                .ledger(side)
                .map_err(failed)?
                .entries()
                .iter()
                .filter(|e| e.contract == contract.id())
                .map(|e| format!("{} {}", e.amount, e.memo))
                .collect(),
            None => Vec::new(),
        },
    })
}
