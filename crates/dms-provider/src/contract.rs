//! Which contract a bid is made under, and whether it holds: of the contracts a bid
//! request carries, the one between this node (the provider) and the requesting node,
//! signed by both, in force, not revoked, and paying at least this node's price.
//!
//! The requesting node is the one whose rights the orchestrator carries: the issuer of
//! the last token of the envelope's chain (an orchestrator has a key of its own, to
//! which its node delegates), or the sender when the node itself asks.

use dms_actor::envelope::Envelope;
use dms_contracts::contract::Refusal;
use dms_contracts::store::Contracts;
use dms_contracts::{Contract, processor};
use dms_crypto::Did;
use dms_protocol::NodeAsk;

/// The contracts a request carries, judged for this provider.
#[derive(Debug, Clone)]
pub enum Choice {
    /// The request names no contract with this node.
    None,
    /// This contract binds.
    Bound(Box<Contract>),
    /// A contract names this node but does not hold; or one was needed and none names
    /// this node.
    Refused {
        /// The reason's code (`contract_expired`, `contract_not_a_party`, ...).
        code: &'static str,
        /// For people.
        message: String,
    },
}

/// The node whose rights the sender of `envelope` acts with: the issuer of the last
/// token of its chain when the chain verifies here (signatures, validity, revocations)
/// and is for the sender; otherwise the sender itself. (A sender this node trusts as a
/// root is authorized without its chain being verified, so the chain is verified here:
/// an unverified token naming another node as its issuer must not make that node pay.)
pub fn requester(envelope: &Envelope, verifier: &dms_ucan::Verifier) -> Did {
    let from = &envelope.from.did;
    let Ok(chain) = envelope.chain(verifier.limits()) else { return from.clone() };
    let Some(leaf) = chain.leaf().map(|t| t.payload().clone()) else { return from.clone() };
    match verifier.verify(&chain, dms_ucan::now()) {
        Ok(verified) if &verified.audience == from && &leaf.aud == from => leaf.iss,
        _ => from.clone(),
    }
}

/// Judges the `texts` a request carries for provider `me` working for `requester` at
/// `now` (Unix seconds); `required` when this node runs nothing without a contract.
pub fn choose(
    texts: &[String],
    me: &Did,
    requester: &Did,
    now: u64,
    contracts: &Contracts,
    required: bool,
) -> Choice {
    let mut first_refusal = None;
    let mut strangers = 0;
    for text in texts {
        let contract = match Contract::from_text(text) {
            Ok(contract) => contract,
            Err(error) => {
                first_refusal.get_or_insert(Refusal {
                    code: "contract_malformed",
                    reason: format!("a contract the request carries cannot be read: {error}"),
                });
                continue;
            }
        };
        if &contract.terms().provider != me {
            strangers += 1;
            continue;
        }
        if let Err(refusal) = contract.binds(me, requester, now) {
            first_refusal.get_or_insert(refusal);
            continue;
        }
        match contracts.revocation_of(&contract) {
            Ok(None) => return Choice::Bound(Box::new(contract)),
            Ok(Some(revocation)) => {
                let s = revocation.statement();
                first_refusal.get_or_insert(Refusal {
                    code: "contract_revoked",
                    reason: format!(
                        "contract {} was revoked by {} at {} (Unix time): {}",
                        contract.id(),
                        s.by,
                        s.at,
                        s.reason
                    ),
                });
            }
            Err(error) => {
                first_refusal.get_or_insert(Refusal {
                    code: "contract_malformed",
                    reason: format!("contract {}: {error}", contract.id()),
                });
            }
        }
    }
    if let Some(Refusal { code, reason }) = first_refusal {
        return Choice::Refused { code, message: reason };
    }
    match (required, texts.is_empty()) {
        (false, _) => Choice::None,
        (true, true) => Choice::Refused {
            code: "contract_required",
            message: "this node runs only deployments bound to a contract with it".into(),
        },
        (true, false) => Choice::Refused {
            code: "contract_not_a_party",
            message: format!(
                "this node ({me}) is not a party to any of the {strangers} contract(s) the \
                 deployment names; it runs only deployments bound to a contract with it"
            ),
        },
    }
}

/// `choice`, unless its contract's `max_allocations` run here already (`running` counts
/// them): then a refusal, `contract_limit`.
pub fn within_limits(choice: Choice, running: impl Fn(&str) -> usize) -> Choice {
    let Choice::Bound(contract) = &choice else { return choice };
    let Some(max) = contract.terms().limits.max_allocations else { return choice };
    let now = running(&contract.id());
    if now < max as usize {
        return choice;
    }
    Choice::Refused {
        code: "contract_limit",
        message: format!(
            "contract {} allows {max} allocation(s) at once and {now} run here under it",
            contract.id()
        ),
    }
}

/// Why `contract` does not pay enough for `ask` on a machine asking `price_per_hour`
/// (units of the contract's currency), if it does not.
pub fn price_short(
    contract: &Contract,
    ask: &NodeAsk,
    price_per_hour: Option<f64>,
) -> Option<String> {
    let price = price_per_hour.filter(|p| p.is_finite() && *p > 0.0)?;
    let r = &ask.requirements;
    let gpus = r.gpu.as_ref().map_or(0, |g| u64::from(g.count));
    let terms = contract.terms();
    let pays = processor::hourly(terms, r.cpu_millicores, r.ram_bytes >> 20, gpus)?;
    let asks = dms_contracts::Amount::of_units(price, &terms.currency).micros;
    (pays < asks).then(|| {
        format!(
            "contract {} pays {}/h for this node's resources; this machine asks {price} {}/h \
             (deployment.price_per_hour, taken in the contract's currency): a contract at that \
             price or more, or a lower price here",
            contract.id(),
            terms.amount(pays),
            terms.currency
        )
    })
}

/// The contract an allocate names, checked again (it may have expired or been revoked
/// since the bid) and kept in the node's store; its text for the allocations.
pub(crate) fn at_allocate(
    shared: &crate::Shared,
    text: Option<&str>,
    requester: &Did,
    allocations: usize,
) -> Result<Option<String>, dms_actor::ActorError> {
    let refused = |code: &str, reason: String| dms_actor::ActorError::Unauthorized {
        code: code.to_string(),
        reason,
    };
    let Some(text) = text else {
        if shared.settings.require_contract {
            return Err(refused(
                "contract_required",
                "this node runs only deployments bound to a contract with it".into(),
            ));
        }
        return Ok(None);
    };
    let me = &shared.root.handle().did;
    match choose(&[text.to_string()], me, requester, dms_ucan::now(), &shared.contracts, true) {
        Choice::Bound(contract) => {
            let max = contract.terms().limits.max_allocations;
            let running = shared.running_under(&contract.id());
            if let Some(max) = max.filter(|max| running + allocations > *max as usize) {
                return Err(refused(
                    "contract_limit",
                    format!(
                        "contract {} allows {max} allocation(s) at once; {running} run here under \
                         it and this node has {allocations} more",
                        contract.id()
                    ),
                ));
            }
            shared
                .contracts
                .put(&contract, dms_actor::envelope::now_ms())
                .map_err(|e| crate::failed(format!("could not keep the contract: {e}")))?;
            Ok(Some(text.to_string()))
        }
        Choice::Refused { code, message } => Err(refused(code, message)),
        Choice::None => {
            Err(refused("contract_not_a_party", "the contract does not name this node".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use dms_contracts::models::PayPerTimeUtilization;
    use dms_contracts::{Limits, Model, Revocation, Terms};
    use dms_crypto::{KeyPair, KeyType};
    use dms_types::capability::Requirements;

    use super::*;

    struct Parties {
        requester: KeyPair,
        provider: KeyPair,
        contracts: Contracts,
        _dir: tempfile::TempDir,
    }

    fn parties() -> Parties {
        let dir = tempfile::tempdir().expect("dir");
        let store = dms_store::Store::open(dir.path().join("db")).expect("store");
        let key = || KeyPair::generate(KeyType::Ed25519);
        Parties { requester: key(), provider: key(), contracts: Contracts::new(store), _dir: dir }
    }

    fn contract(p: &Parties, per_hour: u64, max_allocations: Option<u32>) -> Contract {
        let mut contract = Contract::new(Terms {
            v: 1,
            requester: p.requester.did(),
            provider: p.provider.did(),
            model: Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour }),
            currency: "USD".into(),
            limits: Limits { max_total: None, max_allocations },
            valid_from: 100,
            valid_until: 200,
            host: None,
            nonce: 1,
        })
        .expect("terms");
        contract.sign(&p.requester).expect("sign");
        contract.sign(&p.provider).expect("sign");
        contract
    }

    fn code(choice: &Choice) -> &str {
        match choice {
            Choice::None => "none",
            Choice::Bound(_) => "bound",
            Choice::Refused { code, .. } => code,
        }
    }

    #[test]
    fn a_provider_bids_only_under_a_contract_that_binds_it_to_the_requester() {
        let p = parties();
        let c = contract(&p, 1_000_000, None);
        let text = c.to_text().expect("text");
        let one = std::slice::from_ref(&text);
        let (me, them) = (p.provider.did(), p.requester.did());
        let choose_at = |texts: &[String], requester: &Did, now, required| {
            choose(texts, &me, requester, now, &p.contracts, required)
        };
        assert_eq!(code(&choose_at(&[], &them, 150, false)), "none");
        assert_eq!(code(&choose_at(&[], &them, 150, true)), "contract_required");
        assert_eq!(code(&choose_at(one, &them, 150, true)), "bound");
        assert_eq!(code(&choose_at(one, &them, 201, true)), "contract_expired");
        assert_eq!(code(&choose_at(one, &them, 99, false)), "contract_not_yet_valid");
        // Another requester presenting it: not a party.
        let stranger = KeyPair::generate(KeyType::Ed25519).did();
        assert_eq!(code(&choose_at(one, &stranger, 150, true)), "contract_not_a_party");
        assert_eq!(code(&choose_at(&["garbage".into()], &them, 150, true)), "contract_malformed");
        // A contract between two others: ignored unless one is required.
        let others = parties();
        let foreign = contract(&others, 1, None).to_text().expect("text");
        assert_eq!(code(&choose_at(std::slice::from_ref(&foreign), &them, 150, false)), "none");
        assert_eq!(code(&choose_at(&[foreign], &them, 150, true)), "contract_not_a_party");
        // Revoked by a party: refused from then on.
        p.contracts.put(&c, 1).expect("kept");
        let revocation = Revocation::sign(&c, &p.requester, 150, "done").expect("revoke");
        p.contracts.revoke(&revocation).expect("kept");
        assert_eq!(code(&choose_at(one, &them, 150, true)), "contract_revoked");
    }

    #[test]
    fn limits_and_price_are_checked() {
        let p = parties();
        let c = contract(&p, 500_000, Some(2));
        let bound = || Choice::Bound(Box::new(c.clone()));
        assert_eq!(code(&within_limits(bound(), |_| 1)), "bound");
        assert_eq!(code(&within_limits(bound(), |_| 2)), "contract_limit");
        let ask = NodeAsk {
            node: "n".into(),
            requirements: Requirements::default(),
            executors: Vec::new(),
            pinned: None,
            accept: Vec::new(),
            reject: Vec::new(),
            binds: Vec::new(),
            subnet: false,
        };
        // It pays 0.5 USD/h: enough for a machine asking 0.5, not for one asking 0.6.
        assert_eq!(price_short(&c, &ask, Some(0.5)), None);
        assert_eq!(price_short(&c, &ask, None), None);
        let short = price_short(&c, &ask, Some(0.6)).expect("too little");
        assert!(short.contains("pays 0.5 USD/h"), "{short}");
    }
}
