//! Contracts between the party that requests work and the party that does it, the
//! receipts of what was used, and what is owed for it (../../shared/DESIGN.md §7).
//!
//! - [`contract`] — a [`Contract`]: terms (parties by DID, payment model, price and
//!   currency, limits, validity window, optional contract host) encoded canonically
//!   (DAG-CBOR) and content-addressed (its id is the CID of the terms), signed by both
//!   parties. [`Contract::check`] says whether it binds a given provider and requester
//!   now, and why not.
//! - [`money`] — [`Amount`]s in integer micro-units of a currency: no floating point
//!   in anything that is owed.
//! - [`receipt`] — [`Receipt`]s a provider signs per allocation (resources × time over
//!   an interval, a sequence number, the final exit), and the [`receipt::Book`] that
//!   takes them idempotently: a repeat is not counted twice, a gap is reported, a
//!   different receipt with a sequence number already taken is refused.
//! - [`models`] — the payment models behind one trait, [`models::Processor`]: NuNet's
//!   six, each a formula; [`Model`] is the one a contract names.
//! - [`processor`] — what is owed under a contract, a pure function of the terms and the
//!   accepted receipts (their [`processor::Tally`]).
//! - [`ledger`] — each side's double-entry [`ledger::Ledger`] behind the
//!   [`ledger::Settlement`] trait (the seam for payment rails), and [`ledger::agree`],
//!   which says whether requester and provider booked the same.
//!
//! - [`revocation`] — a party's signed [`Revocation`] of a contract, spread over gossip.
//! - [`store`] — where a node keeps contracts, revocations, receipts and its ledger
//!   (tables in its `dms-store` database): the only module that does I/O. The
//!   orchestrator and the provider send receipts and book them with these types.

pub mod contract;
pub mod ledger;
pub mod models;
pub mod money;
pub mod processor;
pub mod receipt;
pub mod revocation;
pub mod store;

mod encoding;

pub use contract::{Contract, Limits, Model, Terms};
pub use money::Amount;
pub use receipt::{Receipt, Usage};
pub use revocation::Revocation;

/// Why a contract, receipt or amount is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Encoding failed (should not happen for well-formed values).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The bytes are not a contract or receipt in canonical form.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A signature does not verify, or is by a key that is not a party's.
    #[error("bad signature by {signer}")]
    BadSignature {
        /// The DID the signature claims.
        signer: String,
    },
    /// The signing key belongs to neither party.
    #[error("{signer} is not a party to contract {contract}")]
    NotAParty {
        /// The signer.
        signer: String,
        /// The contract id.
        contract: String,
    },
    /// The terms are inconsistent (an empty currency, a window that ends before it
    /// starts, the same DID on both sides).
    #[error("invalid terms: {0}")]
    InvalidTerms(String),
    /// Amounts in different currencies were combined.
    #[error("cannot combine {left} and {right}")]
    Currency {
        /// One currency.
        left: String,
        /// The other.
        right: String,
    },
    /// An amount does not fit.
    #[error("amount overflows")]
    Overflow,
    /// The node's database failed.
    #[error("store: {0}")]
    Store(String),
}
