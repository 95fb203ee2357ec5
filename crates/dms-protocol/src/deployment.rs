//! Orchestrator ↔ provider: bid requests and bids, commit, allocate, revert.
//!
//! Bids and refusals travel as replies, so they are signed by the provider's node key
//! like every envelope.

use std::collections::BTreeMap;

use dms_actor::Handle;

use crate::Request;
use dms_types::capability::{Location, Machine, Requirements};
use serde::{Deserialize, Serialize};

/// Topic bid requests are broadcast on.
pub const DEPLOYMENT_TOPIC: &str = "/dms/deployment";
/// Provider root: a bid request (broadcast on [`DEPLOYMENT_TOPIC`], or direct to a pinned
/// peer). Answer: [`BidAnswer`].
pub const REQUEST: &str = "/dms/deployment/request";
/// Provider root: keep a bid's reservation for the deployment ([`Commit`]).
pub const COMMIT: &str = "/dms/deployment/commit";
/// Provider root: turn the committed reservation into allocation actors ([`Allocate`]).
pub const ALLOCATE: &str = "/dms/deployment/allocate";
/// Provider root: undo reservations, commits and allocations of a deployment ([`Revert`]).
pub const REVERT: &str = "/dms/deployment/revert";
/// Orchestrating node's root, sent directly by providers that it asked for bids lately:
/// a provider's capacity ([`Advert`]), so that orchestrators ask only the few providers
/// likely to take a deployment instead of the whole network.
pub const ADVERT: &str = "/dms/deployment/capacity";

/// A provider's capacity advert: what the machine offers now (free resources,
/// executors, place, price, benchmarks, attributes), signed like every envelope. A hint,
/// never a promise: only a bid reserves. Orchestrators keep the latest one per provider
/// until `valid_ms` after `at_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advert {
    /// What the machine offers now.
    pub machine: Machine,
    /// When it was made (the provider's clock, Unix milliseconds): a later advert of the
    /// same provider replaces an earlier one.
    pub at_ms: u64,
    /// How long it holds, in milliseconds.
    pub valid_ms: u64,
}

impl Request for Advert {
    const BEHAVIOR: &'static str = ADVERT;
    type Response = ();
}

/// What an orchestrator asks providers to bid on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BidRequest {
    /// The deployment id.
    pub deployment: String,
    /// The orchestrator actor.
    pub orchestrator: Handle,
    /// The machines wanted.
    pub nodes: Vec<NodeAsk>,
    /// Peer ids that must not bid (the ensemble's `exclude_peers`, peers that failed).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The contracts the ensemble names, each in its signed text form
    /// (`dms_contracts::Contract::to_text`): a provider bids under the one between it and
    /// the requesting node, and checks it (signatures, parties, validity, revocation,
    /// price) before it bids.
    #[serde(default)]
    pub contracts: Vec<String>,
    /// Only say what would be bid: reserve nothing (`dms deploy --plan`).
    #[serde(default)]
    pub dry_run: bool,
    /// How long a reservation must be held, in milliseconds.
    #[serde(default)]
    pub reservation_ms: u64,
    /// Whether bids carry the provider's round-trip times to its peers: only when the
    /// ensemble bounds the latency between its nodes (or for a plan, which shows them).
    /// Otherwise a bid would grow with the provider's peer count and cost it a walk
    /// over every connection. Absent (an older orchestrator): carried.
    #[serde(default = "carried")]
    pub rtts: bool,
}

fn carried() -> bool {
    true
}

/// One machine wanted: an ensemble node and what its allocations need together.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeAsk {
    /// The ensemble node name.
    pub node: String,
    /// Hard and soft limits (sum of the node's allocations).
    pub requirements: Requirements,
    /// Executors every one of which is needed (`docker`, `wasm`).
    pub executors: Vec<String>,
    /// The only peer that may take this node.
    #[serde(default)]
    pub pinned: Option<String>,
    /// The machine must be in one of these places (anywhere when empty).
    #[serde(default)]
    pub accept: Vec<Location>,
    /// The machine must be in none of these places.
    #[serde(default)]
    pub reject: Vec<Location>,
    /// Host paths the node's `bind` volumes name: the provider must allow each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
    /// The node's allocations join the deployment's subnet: the provider must be able
    /// to give them interfaces.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub subnet: bool,
}

/// A provider's answer to a [`BidRequest`]: a bid or a refusal for every node asked.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BidAnswer {
    /// The provider's peer id.
    pub peer: String,
    /// Bids, one per node it can take.
    pub bids: Vec<Bid>,
    /// Refusals, one per node it cannot take.
    pub refusals: Vec<Refusal>,
}

/// An offer to run one ensemble node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bid {
    /// The ensemble node.
    pub node: String,
    /// The reservation held for it (empty for a dry run).
    pub reservation: String,
    /// When the reservation lapses (Unix milliseconds).
    pub expires_ms: u64,
    /// What the machine offers.
    pub machine: Machine,
    /// [`dms_types::capability::score`] of the ask on the machine, in `[0, 1]`.
    pub score: f64,
    /// Round-trip times to the provider's connected peers, in milliseconds (when the
    /// request asked for them: [`BidRequest::rtts`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rtt_ms: BTreeMap<String, f64>,
    /// How the score was made (fit, price, benchmark and their weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<dms_types::capability::ScoreParts>,
    /// The id of the contract the provider bids under (one the request carried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

/// Why a provider does not bid on a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refusal {
    /// The ensemble node.
    pub node: String,
    /// Every reason.
    pub reasons: Vec<Reason>,
}

/// Every code a [`Reason`] may carry (metrics label refusals with these, and `other`).
pub const REASON_CODES: &[&str] = &[
    "insufficient_cpu",
    "insufficient_ram",
    "insufficient_disk",
    "insufficient_gpus",
    "gpu_vendor",
    "gpu_model",
    "gpu_vram",
    "architecture",
    "executor",
    "location",
    "port",
    "attribute",
    "price",
    "total_price",
    "duration",
    "bind",
    "not_onboarded",
    "contract_required",
    "contract_not_a_party",
    "contract_unsigned",
    "contract_bad_signature",
    "contract_not_yet_valid",
    "contract_expired",
    "contract_revoked",
    "contract_malformed",
    "contract_price",
    "contract_limit",
    "excluded",
    "pinned_elsewhere",
    "reserve_failed",
    "quota",
    "subnet",
];

/// A reason with a stable code, one of [`REASON_CODES`] (`insufficient_ram`, `executor`,
/// `not_onboarded`, `contract_required`, `excluded`, `pinned_elsewhere`, `reserve_failed`,
/// `subnet`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Whether it may pass: resources the machine has but are in use now. The
    /// orchestrator keeps trying until its deadline while such reasons block a node,
    /// and gives up early when only lasting ones do.
    #[serde(default)]
    pub transient: bool,
    /// For programs.
    pub code: String,
    /// For people.
    pub message: String,
}

/// Keep a bid's reservation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Commit {
    /// The deployment id.
    pub deployment: String,
    /// The ensemble node.
    pub node: String,
    /// The bid's reservation.
    pub reservation: String,
}

/// Create the allocation actors of one node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Allocate {
    /// The deployment id.
    pub deployment: String,
    /// The ensemble node.
    pub node: String,
    /// The committed reservation.
    pub reservation: String,
    /// The orchestrator actor, trusted by the allocation actors and told of changes.
    pub orchestrator: Handle,
    /// The node's allocations.
    pub allocations: Vec<AllocationSpec>,
    /// The contract the bid was made under (text form): the provider checks it again
    /// and its allocations send usage receipts under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

/// One allocation to create.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocationSpec {
    /// Its name in the ensemble.
    pub name: String,
    /// The ensemble's definition.
    pub allocation: dms_ensemble::model::Allocation,
    /// The WebAssembly module, base64, when the client sent it along.
    #[serde(default)]
    pub module_b64: Option<String>,
    /// A VM's local images the client sent along (`kernel`, `initrd`, `rootfs`), base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images_b64: BTreeMap<String, String>,
    /// The node's port maps that forward to this allocation (public port → one of its
    /// `ports`); its other ports are published on a free public port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_maps: Vec<dms_ensemble::model::PortMap>,
    /// Its address and names on the deployment's subnet, when it joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<crate::subnet::Join>,
}

/// The allocation actors created, by allocation name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Allocated {
    /// Handles by allocation name.
    pub allocations: BTreeMap<String, Handle>,
    /// Where the provider's subnet endpoint answers (when an allocation joined one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_endpoints: Vec<std::net::SocketAddr>,
}

/// Undo everything a provider holds for a deployment (or one node of it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revert {
    /// The deployment id.
    pub deployment: String,
    /// Only this node; all when `None`.
    #[serde(default)]
    pub node: Option<String>,
}

/// What a commit keeps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Committed {
    /// When the kept reservation lapses unless allocated (Unix milliseconds).
    pub expires_ms: u64,
}

/// What a revert undid.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reverted {
    /// Reservations released and allocations stopped.
    pub released: usize,
}

impl Request for BidRequest {
    const BEHAVIOR: &'static str = REQUEST;
    type Response = BidAnswer;
}

impl Request for Commit {
    const BEHAVIOR: &'static str = COMMIT;
    type Response = Committed;
}

impl Request for Allocate {
    const BEHAVIOR: &'static str = ALLOCATE;
    type Response = Allocated;
}

impl Request for Revert {
    const BEHAVIOR: &'static str = REVERT;
    type Response = Reverted;
}
