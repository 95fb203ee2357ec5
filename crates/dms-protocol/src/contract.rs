//! Contracts between requesters and providers (`dms_contracts`): the CLI → node
//! requests that make, sign, show and revoke them; the revocations spread over gossip;
//! the usage receipts providers send to orchestrators; and a deployment's usage.
//!
//! Documents travel in their signed text form (base64url of canonical DAG-CBOR:
//! [`dms_contracts::Contract::to_text`]), so what arrives is exactly what was signed.
//!
//! | Request | Behavior | Answer |
//! |---|---|---|
//! | [`NewContract`] | `/dms/node/contract/new` | [`ContractView`]: terms made, signed by this node as requester |
//! | [`SignContract`] | `/dms/node/contract/sign` | [`ContractView`]: signed by this node (a party), kept |
//! | [`ListContracts`] | `/dms/node/contract/list` | every [`ContractView`] kept |
//! | [`ShowContract`] | `/dms/node/contract/show` | [`ContractView`] with this side's receipts |
//! | [`RevokeContract`] | `/dms/node/contract/revoke` | [`ContractRevoked`] |
//! | [`ContractRevocation`] | `/public/contract/revocation` on [`REVOCATION_TOPIC`] | `bool`: kept as new |
//! | [`ReceiptOffer`] | `/public/deployment/receipt` (orchestrator actor) | [`ReceiptAnswer`] |
//! | [`ImportReceipt`] | `/dms/node/deployment/receipt` | [`ReceiptAnswer`] |
//! | [`DeploymentUsage`] | `/dms/node/deployment/usage` | [`UsageReport`] |

use dms_contracts::{Amount, Model, Usage};
use serde::{Deserialize, Serialize};

use crate::Request;

/// Topic contract revocations are broadcast on.
pub const REVOCATION_TOPIC: &str = "/dms/contract/revocations";
/// The behavior a broadcast contract revocation is delivered to.
pub const REVOCATION_BEHAVIOR: &str = "/public/contract/revocation";
/// Orchestrator actor: a usage receipt of one of its allocations. Public: a receipt is
/// judged by its signature and the deployment's books, not by who carries it (the
/// provider's node sends it, also after the allocation's actor ended).
pub const RECEIPT: &str = "/public/deployment/receipt";

/// Make a contract with this node as the requester, signed by it (it binds once the
/// provider signs it too: [`SignContract`] on the provider's node).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewContract {
    /// The provider's DID.
    pub provider: String,
    /// How the provider is paid (prices in micro-units of `currency`).
    pub model: Model,
    /// The currency.
    pub currency: String,
    /// The most owed in all, in micro-units.
    #[serde(default)]
    pub max_total: Option<u64>,
    /// The most allocations at once.
    #[serde(default)]
    pub max_allocations: Option<u32>,
    /// How long it is in force from now, in seconds.
    pub valid_secs: u64,
    /// A contract host's DID.
    #[serde(default)]
    pub host: Option<String>,
}

/// Sign a contract this node is a party to, and keep it (a contract signed already by
/// this node is kept with the other signatures it carries).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignContract {
    /// The contract's text form.
    pub contract: String,
}

/// Every contract this node keeps.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListContracts {}

/// One contract, with this node's receipts under it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShowContract {
    /// Its id.
    pub id: String,
}

/// Revoke a contract this node is a party to, and spread the revocation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokeContract {
    /// Its id.
    pub id: String,
    /// Why, for the other party.
    #[serde(default)]
    pub reason: String,
}

/// A revocation spread over gossip (its text form).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContractRevocation {
    /// [`dms_contracts::Revocation::to_text`].
    pub revocation: String,
}

/// What a node keeps of a contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContractView {
    /// Its id (the CID of its terms).
    pub id: String,
    /// The text form, with every signature this node has.
    pub text: String,
    /// Who requests and pays.
    pub requester: String,
    /// Who works and is paid.
    pub provider: String,
    /// How.
    pub model: Model,
    /// The currency.
    pub currency: String,
    /// The most owed in all, in micro-units.
    pub max_total: Option<u64>,
    /// In force from, until (Unix seconds).
    pub valid_from: u64,
    /// In force until (Unix seconds).
    pub valid_until: u64,
    /// A contract host.
    pub host: Option<String>,
    /// The DIDs whose signatures it carries.
    pub signed_by: Vec<String>,
    /// Both parties signed.
    pub complete: bool,
    /// This node's side: `requester`, `provider` (or `none`).
    pub side: String,
    /// Why it no longer binds, when a party revoked it.
    pub revoked: Option<String>,
    /// What this node's ledger booked under it so far.
    pub accrued: Option<Amount>,
    /// This node's receipts under it ([`ShowContract`] only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<ReceiptView>,
    /// This side's ledger entries under it (amount and memo).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<String>,
}

/// A revocation made and spread.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContractRevoked {
    /// Its text form.
    pub revocation: String,
    /// Whether it was broadcast.
    pub broadcast: bool,
}

/// A usage receipt, offered to the deployment's orchestrator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptOffer {
    /// [`dms_contracts::Receipt::to_text`].
    pub receipt: String,
}

/// A receipt given to the orchestrating node by hand (`dms deployments receipt`): one a
/// provider kept that never arrived, say. Taken exactly like one its provider sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportReceipt {
    /// The deployment.
    pub id: String,
    /// The receipt's text form.
    pub receipt: String,
}

/// What became of a receipt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptAnswer {
    /// `new` (counted), `repeat` (counted before, not again) or `refused`.
    pub outcome: String,
    /// Why it was refused (`receipt_bad_signature`, `receipt_conflict`, ...).
    #[serde(default)]
    pub code: Option<String>,
    /// For people.
    #[serde(default)]
    pub reason: Option<String>,
    /// What the deployment owes under the receipt's contract now.
    #[serde(default)]
    pub owed: Option<Amount>,
    /// Why the deployment was shut down, once it was for its contracts (its budget
    /// reached): the provider's ledger records it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
}

impl ReceiptAnswer {
    /// A refusal.
    pub fn refused(code: &str, reason: impl Into<String>) -> ReceiptAnswer {
        ReceiptAnswer {
            outcome: "refused".into(),
            code: Some(code.into()),
            reason: Some(reason.into()),
            owed: None,
            closed: None,
        }
    }
}

/// The receipts and what is owed for a deployment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeploymentUsage {
    /// The deployment.
    pub id: String,
}

/// One receipt, as shown.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptView {
    /// Its content id.
    pub id: String,
    /// The deployment.
    pub deployment: String,
    /// The allocation.
    pub allocation: String,
    /// Its number.
    pub seq: u64,
    /// The interval, Unix milliseconds.
    pub from_ms: u64,
    /// End of the interval.
    pub to_ms: u64,
    /// What was used.
    pub usage: Usage,
    /// The exit, on the final one.
    pub exit: Option<i64>,
    /// Its text form.
    pub text: String,
}

impl ReceiptView {
    /// How `receipt` is shown.
    pub fn of(receipt: &dms_contracts::Receipt) -> ReceiptView {
        let s = receipt.statement();
        ReceiptView {
            id: receipt.id(),
            deployment: s.deployment.clone(),
            allocation: s.allocation.clone(),
            seq: s.seq,
            from_ms: s.from_ms,
            to_ms: s.to_ms,
            usage: s.usage,
            exit: s.exit,
            text: receipt.to_text().unwrap_or_default(),
        }
    }
}

/// One allocation's receipts under a contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocationUsage {
    /// The allocation.
    pub allocation: String,
    /// The contract.
    pub contract: String,
    /// The provider.
    pub provider: String,
    /// The receipts taken, by number.
    pub receipts: Vec<ReceiptView>,
    /// Numbers missing below the highest taken.
    pub gaps: Vec<u64>,
    /// The final receipt was taken.
    pub finished: bool,
}

/// What is owed under one contract for the deployment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContractOwed {
    /// The contract.
    pub contract: String,
    /// Its payment model (`pay_per_time_utilization`, ...).
    pub model: String,
    /// Owed for this deployment's receipts.
    pub owed: Amount,
}

/// A deployment's usage: receipts per allocation, what is owed, the budget.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UsageReport {
    /// The deployment.
    pub deployment: String,
    /// The ensemble's budget, when it has one.
    pub budget: Option<Amount>,
    /// What is owed in all, per currency.
    pub total: Vec<Amount>,
    /// Per contract.
    pub contracts: Vec<ContractOwed>,
    /// Per allocation.
    pub allocations: Vec<AllocationUsage>,
}

impl Request for NewContract {
    const BEHAVIOR: &'static str = "/dms/node/contract/new";
    type Response = ContractView;
}

impl Request for SignContract {
    const BEHAVIOR: &'static str = "/dms/node/contract/sign";
    type Response = ContractView;
}

impl Request for ListContracts {
    const BEHAVIOR: &'static str = "/dms/node/contract/list";
    type Response = Vec<ContractView>;
}

impl Request for ShowContract {
    const BEHAVIOR: &'static str = "/dms/node/contract/show";
    type Response = ContractView;
}

impl Request for RevokeContract {
    const BEHAVIOR: &'static str = "/dms/node/contract/revoke";
    type Response = ContractRevoked;
}

impl Request for ContractRevocation {
    const BEHAVIOR: &'static str = REVOCATION_BEHAVIOR;
    type Response = bool;
}

impl Request for ReceiptOffer {
    const BEHAVIOR: &'static str = RECEIPT;
    type Response = ReceiptAnswer;
}

impl Request for ImportReceipt {
    const BEHAVIOR: &'static str = "/dms/node/deployment/receipt";
    type Response = ReceiptAnswer;
}

impl Request for DeploymentUsage {
    const BEHAVIOR: &'static str = "/dms/node/deployment/usage";
    type Response = UsageReport;
}
