//! The deployment record the orchestrating node keeps (and persists): its state, where
//! each allocation went and how it is doing, and the events that got it there. The CLI
//! reads the same types from the node's answers (see [`crate::node`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use dms_actor::Handle;
use dms_ensemble::model::{AllocationType, Ensemble};
use serde::{Deserialize, Serialize};

use crate::{AllocationState, AllocationStatus};

/// Most events kept per deployment (the oldest are dropped).
pub const MAX_EVENTS: usize = 500;

/// Where a deployment is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Asking providers for bids and choosing.
    Bidding,
    /// Asking the chosen providers to keep their reservations.
    Committing,
    /// Creating allocation actors on the providers.
    Allocating,
    /// Starting allocations in dependency order.
    Starting,
    /// Every allocation started; services run, tasks may still run.
    Running,
    /// Every allocation is a task that exited with code 0.
    Completed,
    /// Could not be placed before the deadline, or an allocation failed.
    Failed,
    /// Stopping allocations on request.
    ShuttingDown,
    /// Stopped on request; every resource released.
    ShutDown,
}

impl DeploymentState {
    /// Every state, in life-cycle order.
    pub const ALL: [DeploymentState; 9] = [
        DeploymentState::Bidding,
        DeploymentState::Committing,
        DeploymentState::Allocating,
        DeploymentState::Starting,
        DeploymentState::Running,
        DeploymentState::Completed,
        DeploymentState::Failed,
        DeploymentState::ShuttingDown,
        DeploymentState::ShutDown,
    ];

    /// Whether it will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeploymentState::Completed | DeploymentState::Failed | DeploymentState::ShutDown
        )
    }

    /// Whether placement is under way.
    pub fn is_placing(self) -> bool {
        matches!(
            self,
            DeploymentState::Bidding
                | DeploymentState::Committing
                | DeploymentState::Allocating
                | DeploymentState::Starting
        )
    }

    /// The snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            DeploymentState::Bidding => "bidding",
            DeploymentState::Committing => "committing",
            DeploymentState::Allocating => "allocating",
            DeploymentState::Starting => "starting",
            DeploymentState::Running => "running",
            DeploymentState::Completed => "completed",
            DeploymentState::Failed => "failed",
            DeploymentState::ShuttingDown => "shutting_down",
            DeploymentState::ShutDown => "shut_down",
        }
    }
}

/// The provider chosen for a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Placed {
    /// The provider's root actor.
    pub provider: Handle,
    /// The reservation it holds.
    pub reservation: String,
    /// The bid's score.
    pub score: f64,
    /// The contract the provider bid under (its id), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

/// A standby for a node (`nodes.<n>.redundancy`): a reservation its provider keeps
/// for the deployment, renewed by the orchestrator, so that when the node's provider
/// is lost the standby takes over without a bid round. It lapses on its own when the
/// orchestrator stops renewing it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standby {
    /// The provider keeping it.
    pub provider: Handle,
    /// The committed reservation.
    pub reservation: String,
    /// The bid's score.
    pub score: f64,
    /// When it was last kept (Unix ms).
    pub kept_ms: u64,
    /// When it lapses unless kept again (Unix ms).
    pub expires_ms: u64,
    /// The contract the provider bid under (its id), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

impl Standby {
    /// Whether it is due for renewal at `now_ms`: half its time to live has passed.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.kept_ms + self.expires_ms.saturating_sub(self.kept_ms) / 2
    }
}

/// One allocation as the orchestrator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationView {
    /// Its ensemble node.
    pub node: String,
    /// Task or service.
    pub kind: AllocationType,
    /// Its executor.
    pub executor: String,
    /// The provider's peer id, once placed.
    #[serde(default)]
    pub peer: Option<String>,
    /// The allocation actor, once allocated.
    #[serde(default)]
    pub handle: Option<Handle>,
    /// What it is doing.
    pub status: AllocationStatus,
    /// Its earlier copies, oldest first, and why each was replaced: this is attempt
    /// `lineage.len() + 1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<Replaced>,
    /// When its orchestrator last heard from it (Unix ms): filled in by status answers,
    /// not persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_ms: Option<u64>,
}

/// An earlier copy of an allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replaced {
    /// The provider it ran on.
    pub peer: String,
    /// Its allocation actor (a copy that comes back is told to stop).
    pub did: dms_crypto::Did,
    /// When it was given up (Unix ms).
    pub at_ms: u64,
    /// Why.
    pub why: String,
}

/// Something that happened to a deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number, from 1, per deployment.
    pub seq: u64,
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// The deployment's state after it.
    pub state: DeploymentState,
    /// The allocation it is about, if one.
    #[serde(default)]
    pub allocation: Option<String>,
    /// What happened, for people.
    pub message: String,
}

/// A deployment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deployment {
    /// Its id (also the orchestrator actor's inbox).
    pub id: String,
    /// When it was submitted (Unix milliseconds).
    pub created_ms: u64,
    /// When placement gives up (Unix milliseconds).
    pub deadline_ms: u64,
    /// Where it is.
    pub state: DeploymentState,
    /// Why it failed, when it did.
    #[serde(default)]
    pub reason: Option<String>,
    /// The ensemble.
    pub ensemble: Ensemble,
    /// WebAssembly modules sent along, base64, by allocation name.
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// The chosen provider per ensemble node.
    #[serde(default)]
    pub placement: BTreeMap<String, Placed>,
    /// Standbys per ensemble node (`nodes.<n>.redundancy`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub standby: BTreeMap<String, Vec<Standby>>,
    /// Every allocation.
    pub allocations: BTreeMap<String, AllocationView>,
    /// Peers that failed a commit, allocate or start; not asked again.
    #[serde(default)]
    pub failed_peers: BTreeSet<String>,
    /// Why each of [`Deployment::failed_peers`] failed (the root cause a final error
    /// ends with).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, String>,
    /// Placement attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// The latest events.
    #[serde(default)]
    pub events: VecDeque<Event>,
    /// The next event's sequence number.
    #[serde(default)]
    pub next_seq: u64,
    /// The orchestrator actor: its own DID (the node's, for deployments made before
    /// orchestrators had identities of their own).
    #[serde(default)]
    pub orchestrator: Option<dms_actor::Handle>,
    /// Who submitted it (the DID that signed the request; counted against its quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter: Option<String>,
    /// Its private network's addresses and routes, when the ensemble has a `subnet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<crate::subnet::SubnetPlan>,
    /// The trace it is (a W3C `traceparent` naming its first span), when traces are
    /// exported: every message about it joins that trace, also after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl Deployment {
    /// Why placing failed where it was tried: the most frequent failure among
    /// [`Deployment::failures`] and on how many peers it happened, e.g. `on 2 peers:
    /// allocation web: no such image nginx:nope`; `None` when no peer failed.
    pub fn root_cause(&self) -> Option<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for why in self.failures.values() {
            *counts.entry(why.as_str()).or_default() += 1;
        }
        let (why, count) = counts.into_iter().max_by_key(|(why, count)| (*count, why.len()))?;
        let peers = if count == 1 { "on 1 peer".to_string() } else { format!("on {count} peers") };
        let others = self.failures.len() - count;
        let also = match others {
            0 => String::new(),
            n => format!(" ({n} other peer{} failed otherwise)", if n == 1 { "" } else { "s" }),
        };
        Some(format!("{peers}: {why}{also}"))
    }

    /// When it reached its state (its latest event), or was created.
    pub fn changed_ms(&self) -> u64 {
        self.events.back().map_or(self.created_ms, |e| e.at_ms)
    }

    /// Appends an event with the current state.
    pub fn event(&mut self, allocation: Option<&str>, message: impl Into<String>) -> &Event {
        self.next_seq += 1;
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            seq: self.next_seq,
            at_ms: dms_actor::envelope::now_ms(),
            state: self.state,
            allocation: allocation.map(String::from),
            message: message.into(),
        });
        self.events.back().expect("just pushed")
    }

    /// The state the allocations add up to, once running: completed when every
    /// allocation completed, failed when all ended and one failed, else running.
    pub fn settled(&self) -> DeploymentState {
        let all_ended = self.allocations.values().all(|a| a.status.state.is_terminal());
        if !all_ended {
            return DeploymentState::Running;
        }
        if self.allocations.values().all(|a| a.status.state == AllocationState::Completed) {
            DeploymentState::Completed
        } else {
            DeploymentState::Failed
        }
    }

    /// The one-line summary `dms deployments list` shows.
    pub fn summary(&self) -> Summary {
        Summary {
            id: self.id.clone(),
            state: self.state,
            created_ms: self.created_ms,
            allocations: self.allocations.len(),
            running: self
                .allocations
                .values()
                .filter(|a| a.status.state == AllocationState::Running)
                .count(),
            peers: self.placement.values().map(|p| p.provider.peer.clone()).collect(),
            metadata: self.ensemble.metadata.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// A deployment in a list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Its id.
    pub id: String,
    /// Its state.
    pub state: DeploymentState,
    /// When it was submitted (Unix milliseconds).
    pub created_ms: u64,
    /// How many allocations.
    pub allocations: usize,
    /// How many run now.
    pub running: usize,
    /// The providers.
    pub peers: BTreeSet<String>,
    /// The ensemble's labels.
    pub metadata: BTreeMap<String, String>,
    /// Why it failed.
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_cause_is_the_most_frequent_failure_with_its_count() {
        let record: Deployment = serde_json::from_value(serde_json::json!({
            "id": "d-1", "created_ms": 0, "deadline_ms": 0, "state": "failed",
            "ensemble": {"version": "V1", "allocations": {}, "nodes": {}},
            "allocations": {},
        }))
        .expect("a record");
        assert_eq!(record.root_cause(), None, "no peer failed");
        let mut record = record;
        for (peer, why) in [("p1", "no such image"), ("p2", "no such image"), ("p3", "timeout")] {
            record.failures.insert(peer.into(), why.into());
        }
        assert_eq!(
            record.root_cause().as_deref(),
            Some("on 2 peers: no such image (1 other peer failed otherwise)")
        );
    }
}
