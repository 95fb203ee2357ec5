//! Usage receipts: what an allocation used over an interval, signed by its provider.
//!
//! A provider numbers each allocation's receipts from 0, one per interval, the last
//! one carrying the allocation's exit. A [`Book`] takes them as they come: a repeat
//! (the same receipt again, after a lost answer) is accepted and counted once; a
//! different receipt under a number already taken, a receipt after the final one, or
//! one whose interval overlaps a neighbour's is refused; missing numbers are gaps.

use std::collections::BTreeMap;

use cid::Cid;
use dms_crypto::{Did, KeyPair};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::encoding::{content_id, encode, signing_input};

/// The domain of a provider's receipt signature.
const DOMAIN: &[u8] = b"dms-receipt-v1\0";

/// Resources × time over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Wall-clock seconds the allocation ran.
    pub wall_secs: u64,
    /// CPU reserved × seconds, in millicore-seconds.
    pub cpu_millicore_secs: u64,
    /// Memory reserved × seconds, in MiB-seconds.
    pub ram_mib_secs: u64,
    /// GPUs reserved × seconds.
    pub gpu_secs: u64,
}

impl Usage {
    /// Nothing used.
    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }

    /// The sum (saturating).
    pub fn plus(&self, other: &Usage) -> Usage {
        Usage {
            wall_secs: self.wall_secs.saturating_add(other.wall_secs),
            cpu_millicore_secs: self.cpu_millicore_secs.saturating_add(other.cpu_millicore_secs),
            ram_mib_secs: self.ram_mib_secs.saturating_add(other.ram_mib_secs),
            gpu_secs: self.gpu_secs.saturating_add(other.gpu_secs),
        }
    }
}

/// What a receipt states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The contract's id.
    pub contract: String,
    /// The deployment.
    pub deployment: String,
    /// The allocation.
    pub allocation: String,
    /// The provider (the signer).
    pub provider: Did,
    /// The receipt's number for this allocation, from 0.
    pub seq: u64,
    /// The interval, in Unix milliseconds: `[from_ms, to_ms)`.
    pub from_ms: u64,
    /// End of the interval.
    pub to_ms: u64,
    /// What was used in it.
    pub usage: Usage,
    /// On the final receipt: how the allocation ended (its exit code; -1 when stopped
    /// or lost without one).
    pub exit: Option<i64>,
}

/// A signed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    statement: Statement,
    signature: serde_bytes::ByteBuf,
    id: Cid,
}

impl Receipt {
    /// Signs `statement` with `key`, which must be the provider's.
    pub fn sign(statement: Statement, key: &KeyPair) -> Result<Receipt, Error> {
        if key.did() != statement.provider {
            return Err(Error::BadSignature { signer: key.did().to_string() });
        }
        if statement.to_ms < statement.from_ms {
            return Err(Error::Malformed("the interval ends before it starts".into()));
        }
        let bytes = encode(&statement)?;
        let signature = key.sign(&signing_input(DOMAIN, &bytes)).into_bytes();
        let signature = serde_bytes::ByteBuf::from(signature);
        let id = content_id(&encode(&(&statement, &signature))?);
        Ok(Receipt { statement, signature, id })
    }

    /// What it states.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// Its content id (statement and signature).
    pub fn id(&self) -> String {
        self.id.to_string()
    }

    /// Checks the provider's signature.
    pub fn verify(&self) -> Result<(), Error> {
        let bytes = encode(&self.statement)?;
        self.statement
            .provider
            .public_key()
            .verify(&signing_input(DOMAIN, &bytes), &self.signature)
            .map_err(|_| Error::BadSignature { signer: self.statement.provider.to_string() })
    }

    /// The wire form: canonical DAG-CBOR of (statement, signature).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        encode(&(&self.statement, &self.signature))
    }

    /// The text form: the wire form in base64url.
    pub fn to_text(&self) -> Result<String, Error> {
        Ok(crate::encoding::to_text(&self.encode()?))
    }

    /// Reads the text form.
    pub fn from_text(text: &str) -> Result<Receipt, Error> {
        Receipt::decode(&crate::encoding::from_text(text)?)
    }

    /// Decodes the wire form, refusing non-canonical bytes; the signature is not
    /// checked here ([`Receipt::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Receipt, Error> {
        let (statement, signature): (Statement, serde_bytes::ByteBuf) =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        let canonical = encode(&(&statement, &signature))?;
        if canonical != bytes {
            return Err(Error::Malformed("not in canonical DAG-CBOR form".into()));
        }
        Ok(Receipt { statement, signature, id: content_id(bytes) })
    }
}

/// What became of a receipt offered to a [`Book`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// New: counted.
    New,
    /// The same receipt again: already counted.
    Repeat,
}

/// Why a [`Book`] refuses a receipt. `code` is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refused {
    /// `receipt_bad_signature`, `receipt_conflict`, `receipt_after_final`,
    /// `receipt_overlap`, `receipt_wrong_party`, `receipt_elsewhere` (another
    /// contract, deployment or allocation), `receipt_impossible` (a reversed interval,
    /// or more time than it spans).
    pub code: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// The receipts of one allocation under one contract, by number.
#[derive(Debug, Clone)]
pub struct Book {
    contract: String,
    deployment: String,
    allocation: String,
    provider: Did,
    receipts: BTreeMap<u64, Receipt>,
}

impl Book {
    /// The book of `allocation` of `deployment`, run by `provider` under `contract`
    /// (its id).
    pub fn new(contract: &str, deployment: &str, allocation: &str, provider: Did) -> Book {
        Book {
            contract: contract.to_string(),
            deployment: deployment.to_string(),
            allocation: allocation.to_string(),
            provider,
            receipts: BTreeMap::new(),
        }
    }

    /// Takes `receipt`: it must be this book's (contract, deployment, allocation,
    /// provider), signed by the provider, and possible (an interval in order, no more
    /// time than it spans).
    pub fn take(&mut self, receipt: Receipt) -> Result<Taken, Refused> {
        let refuse = |code, reason: String| Err(Refused { code, reason });
        let s = receipt.statement().clone();
        let provider = &self.provider;
        if (s.contract.as_str(), s.deployment.as_str(), s.allocation.as_str())
            != (self.contract.as_str(), self.deployment.as_str(), self.allocation.as_str())
        {
            return refuse(
                "receipt_elsewhere",
                format!(
                    "receipt {} is for allocation {} of {} under contract {}, not this book's {} of {} under {}",
                    s.seq,
                    s.allocation,
                    s.deployment,
                    s.contract,
                    self.allocation,
                    self.deployment,
                    self.contract
                ),
            );
        }
        let spans_secs = s.to_ms.saturating_sub(s.from_ms).div_ceil(1000);
        if s.to_ms < s.from_ms || s.usage.wall_secs > spans_secs {
            return refuse(
                "receipt_impossible",
                format!(
                    "receipt {} claims {} s over [{}, {}) ms",
                    s.seq, s.usage.wall_secs, s.from_ms, s.to_ms
                ),
            );
        }
        if &s.provider != provider {
            return refuse(
                "receipt_wrong_party",
                format!(
                    "receipt {} is signed by {}, not the provider {provider}",
                    s.seq, s.provider
                ),
            );
        }
        if let Err(error) = receipt.verify() {
            return refuse("receipt_bad_signature", format!("receipt {}: {error}", s.seq));
        }
        if let Some(known) = self.receipts.get(&s.seq) {
            if known.id == receipt.id {
                return Ok(Taken::Repeat);
            }
            return refuse(
                "receipt_conflict",
                format!(
                    "a different receipt {} of allocation {} was taken already",
                    s.seq, s.allocation
                ),
            );
        }
        if let Some((seq, _)) =
            self.receipts.iter().find(|(seq, r)| r.statement.exit.is_some() && **seq < s.seq)
        {
            return refuse(
                "receipt_after_final",
                format!(
                    "receipt {} follows the final receipt {seq} of allocation {}",
                    s.seq, s.allocation
                ),
            );
        }
        let before = self.receipts.range(..s.seq).next_back().map(|(_, r)| &r.statement);
        let after = self.receipts.range(s.seq + 1..).next().map(|(_, r)| &r.statement);
        let overlaps = before.is_some_and(|b| b.to_ms > s.from_ms)
            || after.is_some_and(|a| a.from_ms < s.to_ms)
            || (s.exit.is_some() && after.is_some());
        if overlaps {
            return refuse(
                "receipt_overlap",
                format!("receipt {} of allocation {} overlaps its neighbours", s.seq, s.allocation),
            );
        }
        self.receipts.insert(s.seq, receipt);
        Ok(Taken::New)
    }

    /// The receipts taken, by number.
    pub fn receipts(&self) -> impl Iterator<Item = &Receipt> {
        self.receipts.values()
    }

    /// Numbers missing below the highest taken.
    pub fn gaps(&self) -> Vec<u64> {
        let Some(last) = self.receipts.keys().next_back() else { return Vec::new() };
        (0..*last).filter(|seq| !self.receipts.contains_key(seq)).collect()
    }

    /// Whether the final receipt was taken.
    pub fn finished(&self) -> bool {
        self.receipts.values().any(|r| r.statement.exit.is_some())
    }

    /// Everything used, by the receipts taken.
    pub fn usage(&self) -> Usage {
        self.receipts.values().fold(Usage::default(), |sum, r| sum.plus(&r.statement.usage))
    }
}

#[cfg(test)]
mod tests {
    use dms_crypto::KeyType;

    use super::*;

    fn statement(provider: &KeyPair, seq: u64, exit: Option<i64>) -> Statement {
        Statement {
            contract: "c".into(),
            deployment: "d".into(),
            allocation: "a".into(),
            provider: provider.did(),
            seq,
            from_ms: seq * 1_000,
            to_ms: (seq + 1) * 1_000,
            usage: Usage { wall_secs: 1, cpu_millicore_secs: 500, ram_mib_secs: 64, gpu_secs: 0 },
            exit,
        }
    }

    #[test]
    fn repeats_count_once_and_gaps_show() {
        let provider = KeyPair::generate(KeyType::Ed25519);
        let mut book = Book::new("c", "d", "a", provider.did());
        let r0 = Receipt::sign(statement(&provider, 0, None), &provider).expect("signed");
        let r2 = Receipt::sign(statement(&provider, 2, None), &provider).expect("signed");
        assert_eq!(book.take(r0.clone()), Ok(Taken::New));
        assert_eq!(book.take(r0), Ok(Taken::Repeat));
        assert_eq!(book.take(r2), Ok(Taken::New));
        assert_eq!(book.gaps(), vec![1]);
        assert_eq!(book.usage().wall_secs, 2);
    }

    #[test]
    fn forged_conflicting_and_late_receipts_are_refused() {
        let provider = KeyPair::generate(KeyType::Ed25519);
        let other = KeyPair::generate(KeyType::Ed25519);
        let mut book = Book::new("c", "d", "a", provider.did());
        // Signed by someone else, claiming to be the provider.
        let mut forged = Receipt::sign(statement(&other, 0, None), &other).expect("signed");
        forged.statement.provider = provider.did();
        let refused = book.take(forged).map_err(|e| e.code);
        assert_eq!(refused, Err("receipt_bad_signature"));
        // A receipt of another party.
        let theirs = Receipt::sign(statement(&other, 0, None), &other).expect("signed");
        assert_eq!(book.take(theirs).map_err(|e| e.code), Err("receipt_wrong_party"));
        // The same number with more usage.
        book.take(Receipt::sign(statement(&provider, 0, None), &provider).expect("signed"))
            .expect("taken");
        let mut more = statement(&provider, 0, None);
        more.usage.cpu_millicore_secs *= 100;
        let more = Receipt::sign(more, &provider).expect("signed");
        assert_eq!(book.take(more).map_err(|e| e.code), Err("receipt_conflict"));
        // After the final one.
        let last = Receipt::sign(statement(&provider, 1, Some(0)), &provider).expect("signed");
        book.take(last).expect("taken");
        assert!(book.finished());
        let late = Receipt::sign(statement(&provider, 2, None), &provider).expect("signed");
        assert_eq!(book.take(late).map_err(|e| e.code), Err("receipt_after_final"));
    }

    #[test]
    fn a_receipt_counts_only_in_its_own_book_and_only_for_time_it_spans() {
        let provider = KeyPair::generate(KeyType::Ed25519);
        let mut book = Book::new("c", "d", "a", provider.did());
        // A genuine receipt of another allocation, then of another contract.
        let mut other = statement(&provider, 0, None);
        other.allocation = "b".into();
        let other = Receipt::sign(other, &provider).expect("signed");
        assert_eq!(book.take(other).map_err(|e| e.code), Err("receipt_elsewhere"));
        let mut other = statement(&provider, 0, None);
        other.contract = "c2".into();
        let other = Receipt::sign(other, &provider).expect("signed");
        assert_eq!(book.take(other).map_err(|e| e.code), Err("receipt_elsewhere"));
        // An hour claimed over one second.
        let mut greedy = statement(&provider, 0, None);
        greedy.usage.wall_secs = 3_600;
        let greedy = Receipt::sign(greedy, &provider).expect("signed");
        assert_eq!(book.take(greedy).map_err(|e| e.code), Err("receipt_impossible"));
        assert_eq!(book.usage(), Usage::default());
    }

    #[test]
    fn the_wire_form_round_trips() {
        let provider = KeyPair::generate(KeyType::Ed25519);
        let receipt = Receipt::sign(statement(&provider, 3, Some(1)), &provider).expect("signed");
        let back = Receipt::decode(&receipt.encode().expect("encodes")).expect("decodes");
        assert_eq!(back, receipt);
        back.verify().expect("verifies");
    }
}
