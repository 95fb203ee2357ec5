//! Revocations: a party's signed statement that a contract no longer binds it. A
//! revocation is spread over gossip like a capability revocation; every node that
//! keeps the contract refuses to work under it from then on (providers refuse bids with
//! `contract_revoked`, orchestrators refuse submissions naming it). Work already
//! running under it is billed to its end: revoking stops new work, it does not erase
//! what was done.

use dms_crypto::{Did, KeyPair};
use serde::{Deserialize, Serialize};

use crate::encoding::{encode, signing_input};
use crate::{Contract, Error};

const DOMAIN: &[u8] = b"dms-contract-revocation-v1\0";

/// What a revocation states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The contract's id.
    pub contract: String,
    /// The party that revokes it (the signer).
    pub by: Did,
    /// When (Unix seconds).
    pub at: u64,
    /// Why, for people.
    pub reason: String,
}

/// A signed revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    statement: Statement,
    signature: serde_bytes::ByteBuf,
}

impl Revocation {
    /// `key`'s revocation of `contract`; the key must be a party's.
    pub fn sign(
        contract: &Contract,
        key: &KeyPair,
        at: u64,
        reason: &str,
    ) -> Result<Revocation, Error> {
        let by = key.did();
        let terms = contract.terms();
        if by != terms.requester && by != terms.provider {
            return Err(Error::NotAParty { signer: by.to_string(), contract: contract.id() });
        }
        let statement = Statement { contract: contract.id(), by, at, reason: reason.into() };
        let signature = key.sign(&signing_input(DOMAIN, &encode(&statement)?)).into_bytes();
        Ok(Revocation { statement, signature: serde_bytes::ByteBuf::from(signature) })
    }

    /// What it states.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The signature verifies under the key of the DID it names.
    pub fn verify(&self) -> Result<(), Error> {
        let bytes = encode(&self.statement)?;
        self.statement
            .by
            .public_key()
            .verify(&signing_input(DOMAIN, &bytes), &self.signature)
            .map_err(|_| Error::BadSignature { signer: self.statement.by.to_string() })
    }

    /// It verifies and revokes `contract`: it names it and is by one of its parties.
    pub fn revokes(&self, contract: &Contract) -> Result<(), Error> {
        self.verify()?;
        let terms = contract.terms();
        if self.statement.contract != contract.id() {
            return Err(Error::Malformed(format!(
                "the revocation is of contract {}, not {}",
                self.statement.contract,
                contract.id()
            )));
        }
        if self.statement.by != terms.requester && self.statement.by != terms.provider {
            return Err(Error::NotAParty {
                signer: self.statement.by.to_string(),
                contract: contract.id(),
            });
        }
        Ok(())
    }

    /// The wire form: canonical DAG-CBOR of (statement, signature).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        encode(&(&self.statement, &self.signature))
    }

    /// Decodes the wire form, refusing non-canonical bytes (the signature is not checked).
    pub fn decode(bytes: &[u8]) -> Result<Revocation, Error> {
        let (statement, signature): (Statement, serde_bytes::ByteBuf) =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        let revocation = Revocation { statement, signature };
        if revocation.encode()? != bytes {
            return Err(Error::Malformed("not in canonical DAG-CBOR form".into()));
        }
        Ok(revocation)
    }

    /// The text form (base64url of the wire form).
    pub fn to_text(&self) -> Result<String, Error> {
        Ok(crate::encoding::to_text(&self.encode()?))
    }

    /// Reads the text form.
    pub fn from_text(text: &str) -> Result<Revocation, Error> {
        Revocation::decode(&crate::encoding::from_text(text)?)
    }
}

#[cfg(test)]
mod tests {
    use dms_crypto::KeyType;

    use super::*;
    use crate::models::*;
    use crate::{Limits, Model, Terms};

    fn contract(requester: &KeyPair, provider: &KeyPair) -> Contract {
        Contract::new(Terms {
            v: 1,
            requester: requester.did(),
            provider: provider.did(),
            model: Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 1 }),
            currency: "USDT".into(),
            limits: Limits::default(),
            valid_from: 0,
            valid_until: 10,
            host: None,
            nonce: 1,
        })
        .expect("terms")
    }

    #[test]
    fn only_a_party_revokes_and_a_changed_revocation_does_not_verify() {
        let key = || KeyPair::generate(KeyType::Ed25519);
        let (requester, provider, stranger) = (key(), key(), key());
        let contract = contract(&requester, &provider);
        let revocation = Revocation::sign(&contract, &provider, 5, "machine retired").expect("ok");
        revocation.revokes(&contract).expect("ok");
        let text = revocation.to_text().expect("ok");
        assert_eq!(Revocation::from_text(&text).expect("ok"), revocation);
        assert!(matches!(
            Revocation::sign(&contract, &stranger, 5, "no"),
            Err(Error::NotAParty { .. })
        ));
        let mut changed = revocation.clone();
        changed.statement.reason = "something else".into();
        assert!(matches!(changed.verify(), Err(Error::BadSignature { .. })));
        let other = contract_with_nonce(&requester, &provider);
        assert!(matches!(revocation.revokes(&other), Err(Error::Malformed(_))));
    }

    fn contract_with_nonce(requester: &KeyPair, provider: &KeyPair) -> Contract {
        let mut terms = contract(requester, provider).terms().clone();
        terms.nonce = 2;
        Contract::new(terms).expect("terms")
    }
}
