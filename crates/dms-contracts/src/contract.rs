//! Contracts: terms agreed between a requester and a provider, content-addressed and
//! signed by both.
//!
//! The terms are encoded in canonical DAG-CBOR; the contract's id is the CID of those
//! bytes, so two parties holding the same id hold the same terms. Each party signs
//! `"dms-contract-v1\0" ‖ terms`; a contract binds once both have. The wire form is
//! the pair (terms, signatures by DID), also canonical: decoding refuses any other
//! encoding of the same content.

use std::collections::BTreeMap;

use cid::Cid;
use dms_crypto::{Did, KeyPair};
use serde::{Deserialize, Serialize};

use crate::encoding::{content_id, encode, signing_input};
pub use crate::models::Model;
use crate::models::Periodic;
use crate::{Amount, Error};

/// The domain of a party's signature.
const DOMAIN: &[u8] = b"dms-contract-v1\0";

/// Bounds on what is done and owed under a contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The most owed in all, in micro-units (what is owed stops growing there).
    pub max_total: Option<u64>,
    /// The most allocations at once.
    pub max_allocations: Option<u32>,
}

/// What both parties agree to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// Format version (1).
    pub v: u32,
    /// Who requests work and pays.
    pub requester: Did,
    /// Who does the work and is paid.
    pub provider: Did,
    /// How the provider is paid.
    pub model: Model,
    /// The currency of every amount (`USDT`, `NTX`, ...).
    pub currency: String,
    /// Bounds.
    pub limits: Limits,
    /// In force from (Unix seconds).
    pub valid_from: u64,
    /// In force until (Unix seconds, inclusive).
    pub valid_until: u64,
    /// A trusted party that hosts the contract (settles disputes, collects usage), if any.
    pub host: Option<Did>,
    /// Makes contracts with otherwise equal terms distinct.
    pub nonce: u64,
}

impl Terms {
    fn check(&self) -> Result<(), Error> {
        let invalid = |why: &str| Err(Error::InvalidTerms(why.to_string()));
        if self.v != 1 {
            return invalid("unknown version (this node reads version 1)");
        }
        if self.currency.trim().is_empty() {
            return invalid("the currency is empty");
        }
        if self.requester == self.provider {
            return invalid("the requester and the provider are the same DID");
        }
        if self.valid_until < self.valid_from {
            return invalid("the validity window ends before it starts");
        }
        if let Model::Periodic(Periodic { period_secs: 0, .. }) = self.model {
            return invalid("a periodic contract's period is 0 seconds");
        }
        Ok(())
    }

    /// `micros` in the contract's currency.
    pub fn amount(&self, micros: u64) -> Amount {
        Amount::micros(micros, self.currency.clone())
    }
}

/// Why a contract does not bind a deployment. `code` is stable (bid refusals carry it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `contract_unsigned`, `contract_bad_signature`, `contract_not_a_party`,
    /// `contract_not_yet_valid`, `contract_expired`.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub reason: String,
}

/// Terms with the parties' signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    terms: Terms,
    /// Canonical bytes of the terms.
    bytes: Vec<u8>,
    id: Cid,
    signatures: BTreeMap<String, serde_bytes::ByteBuf>,
}

impl Contract {
    /// Unsigned terms, checked for consistency.
    pub fn new(terms: Terms) -> Result<Contract, Error> {
        terms.check()?;
        let bytes = encode(&terms)?;
        let id = content_id(&bytes);
        Ok(Contract { terms, bytes, id, signatures: BTreeMap::new() })
    }

    /// The terms.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    /// The content id of the terms: the contract's name.
    pub fn id(&self) -> String {
        self.id.to_string()
    }

    /// Adds `key`'s signature; the key must be a party's (requester or provider).
    pub fn sign(&mut self, key: &KeyPair) -> Result<(), Error> {
        let signer = key.did();
        if signer != self.terms.requester && signer != self.terms.provider {
            return Err(Error::NotAParty { signer: signer.to_string(), contract: self.id() });
        }
        let signature = key.sign(&signing_input(DOMAIN, &self.bytes)).into_bytes();
        self.signatures.insert(signer.to_string(), serde_bytes::ByteBuf::from(signature));
        Ok(())
    }

    /// Whether `did` has signed (validly).
    pub fn signed_by(&self, did: &Did) -> bool {
        self.signatures.get(&did.to_string()).is_some_and(|signature| {
            did.public_key().verify(&signing_input(DOMAIN, &self.bytes), signature).is_ok()
        })
    }

    /// Every signature is a party's and verifies.
    pub fn verify_signatures(&self) -> Result<(), Error> {
        for signer in self.signatures.keys() {
            let did: Did =
                signer.parse().map_err(|_| Error::BadSignature { signer: signer.clone() })?;
            if did != self.terms.requester && did != self.terms.provider {
                return Err(Error::NotAParty { signer: signer.clone(), contract: self.id() });
            }
            if !self.signed_by(&did) {
                return Err(Error::BadSignature { signer: signer.clone() });
            }
        }
        Ok(())
    }

    /// Whether the contract binds `provider` to work for `requester` at `now` (Unix
    /// seconds): they are its parties, both signed, and it is in force.
    pub fn binds(&self, provider: &Did, requester: &Did, now: u64) -> Result<(), Refusal> {
        let refuse = |code, reason: String| Err(Refusal { code, reason });
        let id = self.id();
        if &self.terms.provider != provider || &self.terms.requester != requester {
            return refuse(
                "contract_not_a_party",
                format!(
                    "contract {id} is between {} (requester) and {} (provider), not {requester} and {provider}",
                    self.terms.requester, self.terms.provider
                ),
            );
        }
        if let Err(error) = self.verify_signatures() {
            return refuse("contract_bad_signature", format!("contract {id}: {error}"));
        }
        for (did, role) in [(requester, "requester"), (provider, "provider")] {
            if !self.signed_by(did) {
                return refuse(
                    "contract_unsigned",
                    format!("contract {id} is not signed by its {role} {did}"),
                );
            }
        }
        if now < self.terms.valid_from {
            return refuse(
                "contract_not_yet_valid",
                format!("contract {id} is in force from {} (Unix time)", self.terms.valid_from),
            );
        }
        if now > self.terms.valid_until {
            return refuse(
                "contract_expired",
                format!("contract {id} ended at {} (Unix time)", self.terms.valid_until),
            );
        }
        Ok(())
    }

    /// The DIDs that signed (valid or not: [`Contract::verify_signatures`]).
    pub fn signers(&self) -> impl Iterator<Item = &str> {
        self.signatures.keys().map(String::as_str)
    }

    /// Adds the signatures of `other`, the same terms signed elsewhere (the document
    /// coming back from the other party). Only signatures that verify are taken.
    pub fn merge(&mut self, other: &Contract) -> Result<(), Error> {
        if other.id != self.id {
            return Err(Error::Malformed(format!(
                "contract {} has other terms than {}",
                other.id(),
                self.id()
            )));
        }
        other.verify_signatures()?;
        for (signer, signature) in &other.signatures {
            self.signatures.insert(signer.clone(), signature.clone());
        }
        Ok(())
    }

    /// The text form: the wire form in base64url (`dms contract new` prints it).
    pub fn to_text(&self) -> Result<String, Error> {
        Ok(crate::encoding::to_text(&self.encode()?))
    }

    /// Reads the text form.
    pub fn from_text(text: &str) -> Result<Contract, Error> {
        Contract::decode(&crate::encoding::from_text(text)?)
    }

    /// The wire form: canonical DAG-CBOR of (terms, signatures).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        encode(&(&self.terms, &self.signatures))
    }

    /// Decodes the wire form, refusing non-canonical bytes. Signatures are not checked
    /// here ([`Contract::binds`], [`Contract::verify_signatures`]).
    pub fn decode(bytes: &[u8]) -> Result<Contract, Error> {
        let (terms, signatures): (Terms, BTreeMap<String, serde_bytes::ByteBuf>) =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        let mut contract = Contract::new(terms)?;
        contract.signatures = signatures;
        if contract.encode()? != bytes {
            return Err(Error::Malformed("not in canonical DAG-CBOR form".into()));
        }
        Ok(contract)
    }
}

#[cfg(test)]
mod tests {
    use dms_crypto::KeyType;

    use super::*;
    use crate::models::*;

    pub(crate) fn terms(requester: &KeyPair, provider: &KeyPair, model: Model) -> Terms {
        Terms {
            v: 1,
            requester: requester.did(),
            provider: provider.did(),
            model,
            currency: "USDT".into(),
            limits: Limits::default(),
            valid_from: 1_000,
            valid_until: 2_000,
            host: None,
            nonce: 7,
        }
    }

    fn keys() -> (KeyPair, KeyPair, KeyPair) {
        let key = || KeyPair::generate(KeyType::Ed25519);
        (key(), key(), key())
    }

    #[test]
    fn a_contract_binds_once_both_parties_signed_and_while_in_force() {
        let (requester, provider, _) = keys();
        let mut contract = Contract::new(terms(
            &requester,
            &provider,
            Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 5 }),
        ))
        .expect("valid terms");
        let (p, r) = (provider.did(), requester.did());
        assert_eq!(contract.binds(&p, &r, 1_500).map_err(|e| e.code), Err("contract_unsigned"));
        contract.sign(&requester).expect("a party");
        assert_eq!(contract.binds(&p, &r, 1_500).map_err(|e| e.code), Err("contract_unsigned"));
        contract.sign(&provider).expect("a party");
        assert_eq!(contract.binds(&p, &r, 1_500), Ok(()));
        assert_eq!(contract.binds(&p, &r, 999).map_err(|e| e.code), Err("contract_not_yet_valid"));
        assert_eq!(contract.binds(&p, &r, 2_001).map_err(|e| e.code), Err("contract_expired"));
    }

    #[test]
    fn a_stranger_can_neither_sign_nor_use_it() {
        let (requester, provider, stranger) = keys();
        let mut contract = Contract::new(terms(
            &requester,
            &provider,
            Model::FixedRental(FixedRental { amount: 1 }),
        ))
        .expect("valid terms");
        assert!(matches!(contract.sign(&stranger), Err(Error::NotAParty { .. })));
        contract.sign(&requester).expect("a party");
        contract.sign(&provider).expect("a party");
        let refused = contract.binds(&stranger.did(), &requester.did(), 1_500);
        assert_eq!(refused.map_err(|e| e.code), Err("contract_not_a_party"));
    }

    #[test]
    fn the_wire_form_round_trips_and_tampering_is_caught() {
        let (requester, provider, _) = keys();
        let mut contract = Contract::new(terms(
            &requester,
            &provider,
            Model::PayPerAllocation(PayPerAllocation { per_allocation: 3 }),
        ))
        .expect("valid terms");
        contract.sign(&requester).expect("a party");
        contract.sign(&provider).expect("a party");
        let bytes = contract.encode().expect("encodes");
        let back = Contract::decode(&bytes).expect("decodes");
        assert_eq!(back, contract);
        assert_eq!(back.id(), contract.id());
        // The same signatures over different terms (a higher price) do not verify.
        let mut forged = terms(
            &requester,
            &provider,
            Model::PayPerAllocation(PayPerAllocation { per_allocation: 30 }),
        );
        forged.nonce = contract.terms().nonce;
        let mut forged = Contract::new(forged).expect("valid terms");
        forged.signatures = contract.signatures.clone();
        assert_ne!(forged.id(), contract.id());
        let refused = forged.binds(&provider.did(), &requester.did(), 1_500);
        assert_eq!(refused.map_err(|e| e.code), Err("contract_bad_signature"));
    }

    #[test]
    fn inconsistent_terms_are_refused() {
        let (requester, provider, _) = keys();
        let mut t = terms(
            &requester,
            &provider,
            Model::Periodic(Periodic { per_period: 1, period_secs: 0 }),
        );
        assert!(matches!(Contract::new(t.clone()), Err(Error::InvalidTerms(_))));
        t.model = Model::FixedRental(FixedRental { amount: 1 });
        t.valid_until = 10;
        assert!(matches!(Contract::new(t.clone()), Err(Error::InvalidTerms(_))));
        t.valid_until = 2_000;
        t.provider = t.requester.clone();
        assert!(matches!(Contract::new(t), Err(Error::InvalidTerms(_))));
    }
}
