//! A deployment's placement as a sans-IO state machine: the record as it is, plus what
//! just happened ([`Input`]), gives what to do next ([`Effect`]). It asks nobody, sleeps
//! never and writes nothing; `placement.rs` carries its effects out (bids, commits,
//! reverts, pauses, record changes) and feeds back what came of them. Every decision of
//! a placement is here: when an attempt begins or the deadline ends it, what the bids
//! allow, how a failed provider or a restart is cleaned up, and what a cancellation
//! leaves to undo.
//!
//! ```text
//!   Start ──▶ attempt ──▶ Bidding ──Bids ok──▶ Placing ──Started──▶ Done
//!   Resume ─▶ Reverting ──┐  │ Bids: none fit        │ ProviderFailed
//!                         │  ▼                       ▼
//!              Reverted   └─▶ Waiting ◀──Reverted── Reverting
//!                              │ Due: deadline passed / three strikes ─▶ Fail, Done
//!                              └──Due──▶ attempt
//! ```
//!
//! A cancellation (a shutdown) is noted at once; the machine then answers whatever
//! arrives by undoing only what that step left: unchosen bids are released, a failed
//! or interrupted placement is reverted, a pause ends.
//!
//! The same machine replaces the nodes of a lost provider in a running deployment
//! ([`Placement::replacing`]): only those nodes are asked for, on peers other than the
//! ones running the rest, with a deadline of their own; a failure reverts only them,
//! and the deployment stays `running` meanwhile. Given standbys for every such node
//! ([`Placement::standing_by`]), its first attempt takes them over without a bid
//! round; when that fails, the next attempts bid as usual.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dms_protocol::{BidAnswer, NodeAsk};

use super::policy::{Attempts, Next};
use super::skipped;
use crate::deployment::Deployment;
use crate::{ask, select};

/// What happened, fed to [`Placement::step`].
#[derive(Debug)]
pub enum Input {
    /// A new deployment: place it.
    Start,
    /// A deployment found placing after a restart of this node: whatever providers
    /// hold for it is reverted, then it is placed again.
    Resume,
    /// The pause is over: the next attempt is due.
    Due,
    /// The bid window closed with these answers.
    Bids(Vec<BidAnswer>),
    /// Every allocation was committed, allocated and started.
    Started,
    /// A chosen provider failed to commit, allocate or start (`peer` is empty when the
    /// placement was interrupted by a cancellation).
    ProviderFailed {
        /// The provider to blame.
        peer: String,
        /// Why.
        reason: String,
    },
    /// Every placed provider was asked to revert.
    Reverted,
}

/// What to do, in order.
#[derive(Debug)]
pub enum Effect {
    /// Record that attempt `attempt` begins and bids are asked for.
    Bidding {
        /// Its number, from 1.
        attempt: u32,
    },
    /// Record that attempt `attempt` to replace `nodes` begins (the deployment keeps
    /// its state).
    Replacing {
        /// The nodes being placed again.
        nodes: BTreeSet<String>,
        /// Its number, from 1.
        attempt: u32,
    },
    /// Ask for bids (peers in `exclude` refuse without reserving); answer
    /// [`Input::Bids`].
    AskBids {
        /// What each node needs.
        asks: Vec<NodeAsk>,
        /// Peers not to choose: failed, excluded, avoided, and (when replacing) the
        /// ones running the other nodes.
        exclude: BTreeSet<String>,
    },
    /// Commit, allocate and start `choice`, the standbys of the nodes being replaced
    /// (no bid round); answer [`Input::Started`] or [`Input::ProviderFailed`].
    TakeOver {
        /// The standby taking over, per node.
        choice: BTreeMap<String, select::Choice>,
    },
    /// Release the reservations of every bid in `answers`.
    Release(Vec<BidAnswer>),
    /// Record that the deployment (or the nodes being replaced) cannot be placed yet,
    /// and why.
    Pending(String),
    /// Commit, allocate and start `choice`, releasing the bids of `answers` that were
    /// not chosen beside it; answer [`Input::Started`] or [`Input::ProviderFailed`].
    CommitAndStart {
        /// Every answer of the window.
        answers: Vec<BidAnswer>,
        /// The chosen bid per node.
        choice: BTreeMap<String, select::Choice>,
    },
    /// Revert what the providers of `nodes` hold (every placed provider when `None`);
    /// answer [`Input::Reverted`].
    Revert(Option<BTreeSet<String>>),
    /// Record that the placement of `nodes` (all when `None`) is void: `peer` failed
    /// (it is not asked again) for `reason`, or (no peer) this node restarted while
    /// placing.
    ForgetPlacement {
        /// The provider that failed.
        peer: Option<String>,
        /// Why.
        reason: String,
        /// The nodes forgotten.
        nodes: Option<BTreeSet<String>>,
    },
    /// Wait this long (ending early on a cancellation); answer [`Input::Due`].
    Wait(Duration),
    /// Record that the deployment failed, and why.
    Fail(String),
    /// Nothing more to do.
    Done,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Bidding(Vec<NodeAsk>),
    Placing,
    Reverting(AfterRevert),
    Waiting,
    Done,
}

#[derive(Debug)]
enum AfterRevert {
    /// A provider failed: forget it, pause, try again.
    Retry { peer: String, reason: String },
    /// This node restarted while placing: forget the old placement, try again now.
    Restarted,
}

/// One deployment's placement, or the replacement of some of its nodes.
#[derive(Debug)]
pub struct Placement {
    attempts: Attempts,
    phase: Phase,
    cancelled: bool,
    /// Replacing only these nodes, by this deadline (Unix ms), attempts counted here.
    replacing: Option<(BTreeSet<String>, u64)>,
    /// Peers not to choose in this placement only (a lost provider).
    avoid: BTreeSet<String>,
    /// Standbys to take over in the first attempt, per node.
    standby: BTreeMap<String, select::Choice>,
    tries: u32,
}

impl Default for Placement {
    fn default() -> Placement {
        Placement {
            attempts: Attempts::default(),
            phase: Phase::Idle,
            cancelled: false,
            replacing: None,
            avoid: BTreeSet::new(),
            standby: BTreeMap::new(),
            tries: 0,
        }
    }
}

impl Placement {
    /// Places `nodes` of a running deployment again (their provider was lost), not on
    /// the peers in `avoid`, by `deadline_ms`; start it with [`Input::Start`]. (A lost
    /// peer is avoided by this replacement only: once back, it may host again.)
    pub fn replacing(
        nodes: BTreeSet<String>,
        avoid: BTreeSet<String>,
        deadline_ms: u64,
    ) -> Placement {
        Placement { replacing: Some((nodes, deadline_ms)), avoid, ..Placement::default() }
    }

    /// A replacement whose first attempt takes over these standbys (one per node),
    /// when there is one for every node being replaced and none is on a peer avoided.
    pub fn standing_by(mut self, standby: BTreeMap<String, select::Choice>) -> Placement {
        let covers = self.scope().is_some_and(|nodes| {
            nodes.iter().all(|n| standby.get(n).is_some_and(|c| !self.avoid.contains(&c.peer)))
        });
        if covers {
            self.standby = standby;
        }
        self
    }

    /// The nodes being replaced, when this is a replacement.
    pub fn scope(&self) -> Option<&BTreeSet<String>> {
        self.replacing.as_ref().map(|(nodes, _)| nodes)
    }

    /// Notes a cancellation: from now on every input is answered by undoing what its
    /// step left, and then [`Effect::Done`].
    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// Whether nothing more will be done.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// What to do after `input`, given `record` as it is now and the time (Unix ms).
    pub fn step(&mut self, record: &Deployment, input: Input, now_ms: u64) -> Vec<Effect> {
        if self.is_done() {
            return vec![Effect::Done];
        }
        let left = Duration::from_millis(self.deadline_ms(record).saturating_sub(now_ms));
        match (std::mem::replace(&mut self.phase, Phase::Idle), input) {
            (Phase::Idle, Input::Start) | (Phase::Waiting, Input::Due) => {
                self.attempt(record, now_ms)
            }
            (Phase::Idle, Input::Resume) => self.revert(AfterRevert::Restarted),
            (Phase::Bidding(asks), Input::Bids(answers)) => self.bids(record, &asks, answers, left),
            (Phase::Placing, Input::Started) => self.done(Vec::new()),
            (Phase::Placing, Input::ProviderFailed { peer, reason }) => {
                self.revert(AfterRevert::Retry { peer, reason })
            }
            (Phase::Reverting(_), Input::Reverted) if self.cancelled => self.done(Vec::new()),
            (Phase::Reverting(AfterRevert::Retry { peer, reason }), Input::Reverted) => {
                let Next::Retry(pause) = self.attempts.provider_failed(&reason, left) else {
                    unreachable!("a provider failure is always retried")
                };
                self.phase = Phase::Waiting;
                let nodes = self.scope().cloned();
                vec![
                    Effect::ForgetPlacement { peer: Some(peer), reason, nodes },
                    Effect::Wait(pause),
                ]
            }
            (Phase::Reverting(AfterRevert::Restarted), Input::Reverted) => {
                let reason = "the orchestrating node restarted while placing".to_string();
                let nodes = self.scope().cloned();
                let mut effects = vec![Effect::ForgetPlacement { peer: None, reason, nodes }];
                effects.extend(self.attempt(record, now_ms));
                effects
            }
            (phase, input) => {
                // A driver bug, not a user's: say so loudly and stop placing rather
                // than guess.
                let why = format!("placement got {input:?} while {phase:?}");
                tracing::error!(deployment = %record.id, "{why}");
                self.done(vec![Effect::Fail(format!("internal error: {why}"))])
            }
        }
    }

    fn deadline_ms(&self, record: &Deployment) -> u64 {
        self.replacing.as_ref().map_or(record.deadline_ms, |(_, deadline)| *deadline)
    }

    /// Begins an attempt, unless the deadline passed or the placement was cancelled.
    fn attempt(&mut self, record: &Deployment, now_ms: u64) -> Vec<Effect> {
        if self.cancelled {
            return self.done(Vec::new());
        }
        let made = if self.replacing.is_some() { self.tries } else { record.attempts };
        if let Some(why) = self.attempts.past_deadline(now_ms, self.deadline_ms(record), made) {
            return self.done(vec![Effect::Fail(why)]);
        }
        let mut asks = ask::asks(&record.ensemble);
        if let Some(nodes) = self.scope() {
            asks.retain(|a| nodes.contains(&a.node));
        }
        self.tries += 1;
        let begins = match &self.replacing {
            Some((nodes, _)) => Effect::Replacing { nodes: nodes.clone(), attempt: self.tries },
            None => Effect::Bidding { attempt: record.attempts + 1 },
        };
        let standby = std::mem::take(&mut self.standby);
        if !standby.is_empty() {
            self.phase = Phase::Placing;
            return vec![begins, Effect::TakeOver { choice: standby }];
        }
        self.phase = Phase::Bidding(asks.clone());
        vec![begins, Effect::AskBids { asks, exclude: self.skip(record) }]
    }

    /// Peers not to choose: failed, excluded and avoided ones, standbys' peers, and
    /// (when replacing) the ones running the other nodes, one node per peer.
    fn skip(&self, record: &Deployment) -> BTreeSet<String> {
        let mut skip = skipped(record);
        skip.extend(self.avoid.iter().cloned());
        // A standby's peer keeps its reservation for its node: it takes no other role.
        skip.extend(record.standby.values().flatten().map(|s| s.provider.peer.clone()));
        if let Some(nodes) = self.scope() {
            skip.extend(
                record
                    .placement
                    .iter()
                    .filter(|(node, _)| !nodes.contains(*node))
                    .map(|(_, placed)| placed.provider.peer.clone()),
            );
        }
        skip
    }

    /// The window closed: place, or say why not and wait, or give up.
    fn bids(
        &mut self,
        record: &Deployment,
        asks: &[NodeAsk],
        answers: Vec<BidAnswer>,
        left: Duration,
    ) -> Vec<Effect> {
        if self.cancelled {
            return self.done(vec![Effect::Release(answers)]);
        }
        match select::place(asks, &answers, &self.skip(record), &record.ensemble.edges) {
            Ok(choice) => {
                self.phase = Phase::Placing;
                vec![Effect::CommitAndStart { answers, choice }]
            }
            Err(reason) => {
                // Only lasting reasons end it early: resources in use may free up.
                let lasting = !answers.is_empty()
                    && !answers
                        .iter()
                        .flat_map(|a| &a.refusals)
                        .flat_map(|r| &r.reasons)
                        .any(|r| r.transient);
                match self.attempts.unplaceable(&reason, lasting, left) {
                    Next::Retry(pause) => {
                        self.phase = Phase::Waiting;
                        vec![Effect::Release(answers), Effect::Pending(reason), Effect::Wait(pause)]
                    }
                    Next::Fail(why) => self.done(vec![Effect::Release(answers), Effect::Fail(why)]),
                }
            }
        }
    }

    fn revert(&mut self, then: AfterRevert) -> Vec<Effect> {
        self.phase = Phase::Reverting(then);
        vec![Effect::Revert(self.scope().cloned())]
    }

    fn done(&mut self, mut effects: Vec<Effect>) -> Vec<Effect> {
        self.phase = Phase::Done;
        effects.push(Effect::Done);
        effects
    }
}

#[cfg(test)]
mod tests;
