//! CLI → node: the `/dms/node/deployment/*` behaviors of a node's root actor, which
//! `dms deploy` and `dms deployments` call through the local API.
//!
//! | Request | Behavior | Answer |
//! |---|---|---|
//! | [`NewDeployment`] | `/dms/node/deployment/new` | [`Created`] |
//! | [`PlanDeployment`] | `/dms/node/deployment/plan` | [`Plan`]: candidates, rejections, choice |
//! | [`ListDeployments`] | `/dms/node/deployment/list` | [`Summary`] list, newest first |
//! | [`DeploymentStatus`] | `/dms/node/deployment/status` | [`Status`] with the events after `after` |
//! | [`Manifest`] | `/dms/node/deployment/manifest` | the whole [`Deployment`] record, paged ([`RecordPage`]) |
//! | [`DeploymentLogs`] | `/dms/node/deployment/logs` | [`LogsEntry`] by allocation |
//! | [`ShutdownDeployment`] | `/dms/node/deployment/shutdown` | the final [`Deployment`], paged |
//! | [`Prune`] | `/dms/node/deployment/prune` | [`Pruned`] |
//!
//! **Paging.** A deployment of hundreds of allocations does not fit one message (1 MiB
//! by default): status and record answers carry the allocations in name order until
//! their JSON reaches [`PAGE_BYTES`], and say in `more` the name to continue after;
//! the caller asks again with `from` set to it ([`page`] cuts, the CLI merges). The
//! rest of the record (events, ensemble, modules) comes with the first page only.

use std::collections::BTreeMap;

use dms_ensemble::model::Ensemble;
use serde::{Deserialize, Serialize};

use crate::record::{AllocationView, Deployment, DeploymentState, Event, Standby, Summary};
use crate::{AllocationStatus, Logs, Request};

/// Most bytes of allocation views (as JSON) one answer carries.
pub const PAGE_BYTES: usize = 256 * 1024;

/// The allocations after `from` (from the first when `None`), in name order, until
/// their JSON passes `budget` bytes (always at least one); and the name to continue
/// after when some are left.
pub fn page(
    all: &BTreeMap<String, AllocationView>,
    from: Option<&str>,
    budget: usize,
) -> (BTreeMap<String, AllocationView>, Option<String>) {
    use std::ops::Bound;
    let start = from.map_or(Bound::Unbounded, |f| Bound::Excluded(f.to_string()));
    let range = all.range((start, Bound::Unbounded));
    if budget == usize::MAX {
        // In-process readers take everything: nothing to measure.
        return (range.map(|(k, v)| (k.clone(), v.clone())).collect(), None);
    }
    let mut out = BTreeMap::new();
    let mut used = 0;
    for (name, view) in range {
        let size = serde_json::to_vec(view).map_or(0, |v| v.len()) + name.len() + 8;
        if !out.is_empty() && used + size > budget {
            let last = out.keys().next_back().cloned();
            return (out, last);
        }
        used += size;
        out.insert(name.clone(), view.clone());
    }
    (out, None)
}

/// Behavior: submit a deployment.
pub const NEW: &str = "/dms/node/deployment/new";
/// Behavior: what placing a deployment would choose now, without placing it.
pub const PLAN: &str = "/dms/node/deployment/plan";
/// Behavior: every deployment the node orchestrates.
pub const LIST: &str = "/dms/node/deployment/list";
/// Behavior: one deployment's status and its new events.
pub const STATUS: &str = "/dms/node/deployment/status";
/// Behavior: one deployment's whole record.
pub const MANIFEST: &str = "/dms/node/deployment/manifest";
/// Behavior: the output of a deployment's allocations.
pub const LOGS: &str = "/dms/node/deployment/logs";
/// Behavior: shut a deployment down.
pub const SHUTDOWN: &str = "/dms/node/deployment/shutdown";
/// Behavior: forget finished deployments.
pub const PRUNE: &str = "/dms/node/deployment/prune";
/// Behavior: publish running allocations' outputs now.
pub const PUBLISH: &str = "/dms/node/deployment/publish";

/// Publish the outputs of a deployment's running allocations that declare some (or of
/// one); the answer says, per allocation, that publishing began or why not.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PublishOutputs {
    /// The deployment.
    pub id: String,
    /// Only this allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<String>,
}

impl Request for PublishOutputs {
    const BEHAVIOR: &'static str = PUBLISH;
    type Response = BTreeMap<String, Result<AllocationStatus, String>>;
}

/// Submit an ensemble (answer: [`Created`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewDeployment {
    /// The ensemble.
    pub ensemble: Ensemble,
    /// WebAssembly modules by allocation name, and VM images by `<allocation>/<image>`
    /// (`kernel`, `initrd`, `rootfs`), base64 (the CLI reads local files).
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// Placement deadline in milliseconds from now.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Credentials for the ensemble's `storage`, from the environment of `dms deploy`;
    /// held in memory by this node's orchestrator and never sent on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<crate::storage::Credentials>,
}

impl Request for NewDeployment {
    const BEHAVIOR: &'static str = NEW;
    type Response = Created;
}

/// A deployment was accepted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Created {
    /// Its id.
    pub id: String,
}

/// Ask for a plan of the same submission (answer: [`Plan`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlanDeployment(pub NewDeployment);

impl Request for PlanDeployment {
    const BEHAVIOR: &'static str = PLAN;
    type Response = Plan;
}

/// The answer to a plan request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Peers that answered.
    pub answered: Vec<String>,
    /// Per node: candidates with scores, rejections with reasons.
    pub nodes: BTreeMap<String, NodePlan>,
    /// The placement a deployment would choose now (node → peer), or why there is none.
    pub placement: Result<BTreeMap<String, String>, String>,
}

/// A node's candidates and rejections, for `dms deploy --plan`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodePlan {
    /// Bids, best first: (peer, score).
    pub candidates: Vec<(String, f64)>,
    /// Peers that did not bid, with every reason.
    pub rejected: Vec<(String, Vec<String>)>,
    /// How each candidate's score was made, by peer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, dms_types::capability::ScoreParts>,
}

/// List the node's deployments (answer: [`Summary`] list, newest first).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListDeployments {}

impl Request for ListDeployments {
    const BEHAVIOR: &'static str = LIST;
    type Response = Vec<Summary>;
}

/// One deployment's status with the events after `after`; waits up to `wait_ms` (at
/// most 20 s) for a new one when there is none yet (answer: [`Status`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// The deployment.
    pub id: String,
    /// The last event sequence number already seen.
    #[serde(default)]
    pub after: u64,
    /// How long to wait for a new event.
    #[serde(default)]
    pub wait_ms: u64,
    /// A further page: the allocations after this name (an earlier answer's `more`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Request for DeploymentStatus {
    const BEHAVIOR: &'static str = STATUS;
    type Response = Status;
}

/// A deployment's status with the events after a sequence number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// Id.
    pub id: String,
    /// State.
    pub state: DeploymentState,
    /// Why it failed.
    pub reason: Option<String>,
    /// When submitted.
    pub created_ms: u64,
    /// Placement deadline.
    pub deadline_ms: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// Allocations.
    pub allocations: BTreeMap<String, AllocationView>,
    /// Standbys per node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub standby: BTreeMap<String, Vec<Standby>>,
    /// Events after the one asked for (on the first page).
    pub events: Vec<Event>,
    /// More allocations follow: ask again with `from` set to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more: Option<String>,
}

/// One deployment's whole record (answer: [`Deployment`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The deployment.
    pub id: String,
    /// A further page: the allocations after this name (an earlier answer's `more`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Request for Manifest {
    const BEHAVIOR: &'static str = MANIFEST;
    type Response = RecordPage;
}

/// A page of a deployment's record: the record (on pages after the first, with only
/// their allocations and no events or modules) and where to continue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordPage {
    /// The record, or a part of it.
    #[serde(flatten)]
    pub record: Deployment,
    /// More allocations follow: ask [`Manifest`] again with `from` set to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more: Option<String>,
}

impl RecordPage {
    /// The page of `record` after `from`.
    pub fn of(mut record: Deployment, from: Option<&str>) -> RecordPage {
        let (allocations, more) = page(&record.allocations, from, PAGE_BYTES);
        record.allocations = allocations;
        if from.is_some() {
            record.events.clear();
            record.modules.clear();
        }
        RecordPage { record, more }
    }
}

/// The output of a deployment's allocations, or of one (answer: [`LogsEntry`] by
/// allocation name).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DeploymentLogs {
    /// The deployment.
    pub id: String,
    /// Only this allocation.
    #[serde(default)]
    pub allocation: Option<String>,
    /// Only the last lines.
    #[serde(default)]
    pub tail: Option<usize>,
    /// The kept lines from this one on (see [`crate::LogsRequest::from`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<usize>,
}

impl Request for DeploymentLogs {
    const BEHAVIOR: &'static str = LOGS;
    type Response = BTreeMap<String, LogsEntry>;
}

/// One allocation's output, or why it could not be read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogsEntry {
    /// Why not (not placed, or its provider did not answer).
    Error {
        /// The reason.
        error: String,
    },
    /// Its output.
    Logs(Logs),
}

/// Shut a deployment down (answer: its final [`Deployment`] record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShutdownDeployment {
    /// The deployment.
    pub id: String,
}

impl Request for ShutdownDeployment {
    const BEHAVIOR: &'static str = SHUTDOWN;
    /// The first page of the final record ([`Manifest`] gives the rest).
    type Response = RecordPage;
}

/// Forget finished deployments (answer: [`Pruned`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Prune {}

impl Request for Prune {
    const BEHAVIOR: &'static str = PRUNE;
    type Response = Pruned;
}

/// The deployments forgotten.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pruned {
    /// Their ids.
    pub pruned: Vec<String>,
}

/// The VM images of allocation `name` among a deployment's `modules`, by image
/// (`kernel`, `initrd`, `rootfs`).
pub fn images_of(modules: &BTreeMap<String, String>, name: &str) -> BTreeMap<String, String> {
    let prefix = format!("{name}/");
    modules
        .iter()
        .filter_map(|(key, b64)| Some((key.strip_prefix(&prefix)?.to_string(), b64.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogLine, decode, decode_response, encode, respond};

    #[test]
    fn a_plan_request_is_the_submission_under_another_behavior() {
        let ensemble = dms_ensemble::load(
            "version: V1\nallocations:\n  a:\n    type: task\n    executor: wasm\n    resources: {cpu: {cores: 1}, ram: 1MiB}\n    execution: {module: m.wasm}\nnodes:\n  n: {allocations: [a]}\n",
        )
        .expect("a valid ensemble")
        .ensemble;
        let submission = NewDeployment {
            ensemble,
            modules: BTreeMap::new(),
            timeout_ms: Some(5),
            credentials: None,
        };
        let wire = encode(&PlanDeployment(submission)).expect("encodes");
        let PlanDeployment(back) = decode::<PlanDeployment>(&wire).expect("decodes");
        assert_eq!(back.timeout_ms, Some(5));
        assert!(back.ensemble.allocations.contains_key("a"));
        assert_eq!(decode::<NewDeployment>(&wire).expect("same fields").timeout_ms, Some(5));
    }

    #[test]
    fn logs_answers_carry_output_or_the_reason_there_is_none() {
        let answer: BTreeMap<String, LogsEntry> = [
            ("a".to_string(), LogsEntry::Error { error: "not placed".into() }),
            (
                "b".to_string(),
                LogsEntry::Logs(Logs {
                    lines: vec![LogLine { stream: "stdout".into(), text: "hi".into() }],
                    exited: true,
                    truncated: None,
                    next: None,
                }),
            ),
        ]
        .into();
        let bytes = respond::<DeploymentLogs>(&answer).expect("encodes");
        let back = decode_response::<DeploymentLogs>(&bytes).expect("decodes");
        assert!(matches!(&back["a"], LogsEntry::Error { error } if error == "not placed"));
        assert!(matches!(&back["b"], LogsEntry::Logs(l) if l.exited && l.lines[0].text == "hi"));
    }

    #[test]
    fn empty_requests_accept_an_empty_payload_and_refuse_other_versions() {
        assert!(decode::<ListDeployments>(b"").is_ok());
        assert!(decode::<Prune>(br#"{"v": 1}"#).is_ok());
        assert!(decode::<Prune>(br#"{"v": 7}"#).is_err());
        let status = decode::<DeploymentStatus>(br#"{"id": "d-1"}"#).expect("defaults");
        assert_eq!((status.after, status.wait_ms), (0, 0));
    }

    #[test]
    fn pages_cover_every_allocation_once_within_the_budget() {
        use dms_ensemble::model::AllocationType;
        let view = |i: usize| crate::record::AllocationView {
            node: format!("node-{i}"),
            kind: AllocationType::Task,
            executor: "wasm".into(),
            peer: Some("12D3KooW".repeat(6)),
            handle: None,
            status: Default::default(),
            lineage: Vec::new(),
            heard_ms: None,
        };
        let all: BTreeMap<String, _> = (0..500).map(|i| (format!("a{i:03}"), view(i))).collect();
        let budget = 10_000;
        let (mut seen, mut from, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let (part, more) = page(&all, from.as_deref(), budget);
            let size: usize =
                part.values().map(|v| serde_json::to_vec(v).map_or(0, |b| b.len())).sum();
            assert!(size <= budget, "page {pages}: {size} bytes");
            assert!(!part.is_empty());
            seen.extend(part.into_keys());
            pages += 1;
            match more {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, all.keys().cloned().collect::<Vec<_>>(), "all, in order, once");
        assert!(pages > 10, "{pages} pages");
        // One view larger than the budget still makes a page of its own.
        let (part, more) = page(&all, None, 1);
        assert_eq!((part.len(), more.as_deref()), (1, Some("a000")));
    }
}
