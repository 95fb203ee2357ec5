//! How an orchestrator watches its providers, and what it does when one is lost.
//!
//! Allocations send a heartbeat every `heartbeat` (an `Update` carrying their status);
//! the orchestrator notes when it last heard from each. A provider whose allocations
//! have all been silent for `lost_after` is asked directly (a heartbeat may be lost
//! where the provider is not); when that fails too, it is **lost only on positive
//! evidence**: this node still reaches some other peer. A node that reaches nobody
//! cannot tell whether the provider or itself is cut off, and waits instead of tearing
//! down work that may be healthy.
//!
//! A lost provider's nodes are placed again elsewhere (the lost peer excluded, attempt
//! counted in each allocation's lineage) unless the ensemble's `escalation` is
//! `teardown`, which shuts the deployment down. A copy that comes back after it was
//! replaced is told to stop (`keep: false` in the answer to its next heartbeat); so is
//! any copy of a deployment being shut down. After a restart of this node nobody is
//! declared lost before `restart_grace` has passed: providers need time to reconnect.
//!
//! The same task hands failures of supervised allocations to [`super::supervision`], one
//! at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use dms_actor::envelope::now_ms;
use dms_actor::monitor::{self, Judge};
use dms_actor::{ActorError, Handle, PeerState};
use dms_ensemble::model::Escalation;
use dms_protocol::*;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{Instrument as _, info};

use super::placement::give_up;
use super::{Orchestrator, bad, standby};
use crate::deployment::{Deployment, DeploymentState};
use crate::select;

/// How long a direct status question to a silent allocation may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What an orchestrator knows of its allocations' liveness (in memory: a restart
/// starts it afresh, with a grace).
#[derive(Debug)]
pub(crate) struct Heard {
    /// When each allocation was last heard from.
    last: BTreeMap<String, Instant>,
    /// Nobody is declared lost before this.
    grace_until: Instant,
    /// Stale copies already told to stop (by DID), so that each is an event once.
    told: BTreeSet<String>,
    /// Providers reported as undecidable (this node reaches nobody), once each.
    undecided: BTreeSet<String>,
}

impl Heard {
    pub(crate) fn new() -> Heard {
        Heard {
            last: BTreeMap::new(),
            grace_until: Instant::now(),
            told: BTreeSet::new(),
            undecided: BTreeSet::new(),
        }
    }
}

impl Orchestrator {
    /// How allocations and this orchestrator watch each other (sent with `start`).
    pub(crate) fn liveness(&self) -> Liveness {
        let settings = &self.shared.settings;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Liveness { heartbeat_ms: ms(settings.heartbeat), stop_after_ms: ms(settings.stop_after) }
    }

    /// Nobody is declared lost for `grace` from now (after a restart of this node).
    pub(crate) fn grace(&self, grace: Duration) {
        self.heard.lock().expect("heard lock").grace_until = Instant::now() + grace;
    }

    /// When each allocation was last heard from (Unix ms), for status answers.
    pub(crate) fn heard_ms(&self) -> BTreeMap<String, u64> {
        let (now, unix) = (Instant::now(), now_ms());
        let heard = self.heard.lock().expect("heard lock");
        heard
            .last
            .iter()
            .map(|(name, at)| (name.clone(), unix.saturating_sub(ms(now - *at))))
            .collect()
    }

    /// How long the most silent running allocation has not been heard from.
    pub(crate) fn longest_silence(&self) -> Option<Duration> {
        let running: Vec<String> = self.peek(|r| {
            r.allocations
                .iter()
                .filter(|(_, a)| a.status.state == AllocationState::Running)
                .map(|(name, _)| name.clone())
                .collect()
        });
        let heard = self.heard.lock().expect("heard lock");
        running.iter().filter_map(|name| heard.last.get(name)).map(|at| at.elapsed()).max()
    }

    /// Notes that `allocation` was heard from (or a new copy of it placed) now.
    pub(crate) fn note_heard(&self, allocation: &str) {
        let mut heard = self.heard.lock().expect("heard lock");
        heard.last.insert(allocation.to_string(), Instant::now());
    }

    /// An update or heartbeat from an allocation: recorded when it comes from the
    /// deployment's copy; an earlier copy (replaced, or forgotten after a failed
    /// placement) and every copy of a deployment being shut down are told to stop.
    pub(crate) fn apply(&self, from: &Handle, update: Update) -> Result<Ack, ActorError> {
        // Read what is needed under the lock, without copying the record (a heartbeat
        // per allocation per second).
        let (current, ending) = {
            let record = self.record.lock().expect("deployment lock");
            if update.deployment != record.id {
                return Err(bad(format!(
                    "this is deployment {}, not {}",
                    record.id, update.deployment
                )));
            }
            let view = record
                .allocations
                .get(&update.allocation)
                .ok_or_else(|| bad(format!("no allocation {:?}", update.allocation)))?;
            let current =
                view.handle.as_ref().is_some_and(|h| h.peer == from.peer && h.did == from.did);
            let earlier = view.lineage.iter().any(|copy| copy.did == from.did);
            if !current && !earlier {
                return Err(ActorError::Unauthorized {
                    code: "not_the_host".into(),
                    reason: format!(
                        "allocation {} is not hosted by {}",
                        update.allocation, from.peer
                    ),
                });
            }
            // A deployment that ended (or is shutting down) keeps no copy running.
            let ending =
                record.state.is_terminal() || record.state == DeploymentState::ShuttingDown;
            (current, ending)
        };
        if !current || ending {
            let running = !update.status.state.is_terminal();
            self.tell_to_stop(&update.allocation, from, ending, running);
            return Ok(Ack { keep: false });
        }
        self.note_heard(&update.allocation);
        self.record_status(&update.allocation, update.status);
        Ok(Ack { keep: true })
    }

    fn tell_to_stop(&self, allocation: &str, from: &Handle, ending: bool, running: bool) {
        let first = self.heard.lock().expect("heard lock").told.insert(from.did.to_string());
        if first {
            let why = if ending { "the deployment is shut down" } else { "it was replaced" };
            let peer = select::short(&from.peer);
            let message = if running {
                format!("a copy on {peer} is still running; told it to stop ({why})")
            } else {
                format!("an ended copy on {peer} reported in; told it to forget itself ({why})")
            };
            self.change(Some(allocation), message, |_| {});
        }
    }

    /// Starts watching the providers, on a task the orchestrator owns (it ends with the
    /// deployment, and holds the orchestrator only while checking).
    pub(crate) fn start_watching(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let tick = self.shared.settings.heartbeat.max(Duration::from_millis(50));
        let failures = self.failures_rx.lock().expect("failures lock").take();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut failures = failures;
            loop {
                // Failures of supervised allocations are handled as they come, in order.
                let failed = tokio::select! {
                    _ = interval.tick() => None,
                    Some(failed) = async { failures.as_mut()?.recv().await } => Some(failed),
                };
                let Some(orchestrator) = weak.upgrade() else { return };
                if orchestrator.cancelled() || orchestrator.snapshot().state.is_terminal() {
                    return;
                }
                match failed {
                    Some((allocation, cause)) => orchestrator.supervise(allocation, cause).await,
                    None => orchestrator.check().await,
                }
            }
        });
        *self.watching.lock().expect("watching lock") = Some(task);
    }

    /// Stops watching (shutdown, drain).
    pub(crate) fn stop_watching(&self) {
        if let Some(task) = self.watching.lock().expect("watching lock").take() {
            task.abort();
        }
    }

    pub(crate) fn placing_now(&self) -> bool {
        self.placing.lock().expect("placing lock").as_ref().is_some_and(|t| !t.is_finished())
    }

    /// One look at the providers of a running deployment.
    async fn check(self: &Arc<Self>) {
        let record = self.snapshot();
        if record.state != DeploymentState::Running || self.placing_now() {
            return;
        }
        if self.out_of_time(&record).await {
            return;
        }
        // Nodes with no copy at all (a replacement cut short by a restart): place them.
        let unplaced = unplaced(&record);
        if !unplaced.is_empty() {
            self.start_replacing(unplaced, BTreeSet::new());
            return;
        }
        for (peer, Silent { silence, allocations, .. }) in self.silent(&record) {
            if self.answers(&allocations).await {
                continue;
            }
            // Heard from meanwhile (the asks take a while): not lost.
            if !self.silent(&self.snapshot()).contains_key(&peer) {
                continue;
            }
            let others: Vec<String> =
                (self.shared.connected)().await.into_iter().filter(|p| *p != peer).collect();
            // The same judgement as dms-actor's monitors: lost only on positive evidence.
            let now = Instant::now();
            let liveness = monitor::Liveness {
                heartbeat: self.shared.settings.heartbeat,
                lost_after: lost_after(&record, self.shared.settings.lost_after),
            };
            let mut judge = Judge::new(liveness, now.checked_sub(silence).unwrap_or(now));
            let silence = match judge.check(now, !others.is_empty()) {
                PeerState::Healthy => continue,
                PeerState::Unknown { silent_for } => {
                    let first =
                        self.heard.lock().expect("heard lock").undecided.insert(peer.clone());
                    if first {
                        let message = format!(
                            "provider {} silent for {:.1} s, but this node reaches no other \
                             peer either: it cannot tell who is cut off, so it waits",
                            select::short(&peer),
                            silent_for.as_secs_f64()
                        );
                        self.change(None, message, |_| {});
                    }
                    continue;
                }
                PeerState::Lost { silent_for } => silent_for,
            };
            let why = format!(
                "provider {} lost: no heartbeat for {:.1} s and no answer, while this node \
                 reaches {} other peer(s)",
                select::short(&peer),
                silence.as_secs_f64(),
                others.len()
            );
            self.lost(&record, &peer, &allocations, why).await;
            return;
        }
        // Nothing lost: standbys are kept and sought on the placing task, so that a
        // loss found meanwhile waits for them (and may use the one just reserved).
        if self.standby_due(&record) {
            let mut placing = self.placing.lock().expect("placing lock");
            *placing = Some(tokio::spawn(self.clone().keep_standbys().instrument(self.span())));
        }
    }

    /// `requirements.max_duration` (counted from the submission) has passed: shut the
    /// deployment down, saying why. Whether it did.
    async fn out_of_time(self: &Arc<Self>, record: &Deployment) -> bool {
        let limit = record.ensemble.requirements.as_ref().and_then(|r| r.max_duration);
        let Some(limit) = limit.map(|d| d.to_std()) else { return false };
        if now_ms() < record.created_ms.saturating_add(ms(limit)) {
            return false;
        }
        let why =
            format!("max_duration {} reached: shut down", dms_types::units::format_duration(limit));
        self.change(None, why.clone(), |r| r.reason = Some(why.clone()));
        self.clone().shutdown().await;
        true
    }

    /// Providers whose every running allocation has been silent for `lost_after` (the
    /// ensemble's, else this node's), by peer.
    fn silent(&self, record: &Deployment) -> BTreeMap<String, Silent> {
        let lost_after = lost_after(record, self.shared.settings.lost_after);
        let now = Instant::now();
        let heard = self.heard.lock().expect("heard lock");
        if now < heard.grace_until {
            return BTreeMap::new();
        }
        let mut by_peer: BTreeMap<String, Silent> = BTreeMap::new();
        for (name, view) in &record.allocations {
            let Some(handle) = &view.handle else { continue };
            if view.status.state.is_terminal() {
                continue;
            }
            let since = heard.last.get(name).copied().unwrap_or(heard.grace_until);
            let silence = now.saturating_duration_since(since);
            let entry = by_peer.entry(handle.peer.clone()).or_insert(Silent {
                silence,
                allocations: Vec::new(),
                all: true,
            });
            entry.silence = entry.silence.min(silence);
            entry.allocations.push((name.clone(), handle.clone()));
            entry.all &= silence >= lost_after;
        }
        by_peer.retain(|_, silent| silent.all);
        by_peer
    }

    /// Asks silent allocations directly; whether any answered (then they are heard).
    async fn answers(&self, allocations: &[(String, Handle)]) -> bool {
        let mut answered = false;
        for (name, handle) in allocations {
            match call(&self.actor, handle, &StatusRequest {}, ASK_TIMEOUT).await {
                Ok(status) => {
                    self.note_heard(name);
                    self.record_status(name, status);
                    answered = true;
                }
                // Its node refused the question as late or too many: it is up, only
                // slow (heartbeats expire in transit on an overloaded network). Not lost.
                Err(error) if error.is_busy_peer() => {
                    info!(allocation = %name, peer = %handle.peer, %error,
                        "A silent allocation's provider answered, busy: not lost.");
                    self.note_heard(name);
                    answered = true;
                }
                Err(_) => {}
            }
        }
        answered
    }

    /// `peer` is lost: place its nodes again elsewhere, or tear the deployment down.
    async fn lost(
        self: &Arc<Self>,
        record: &Deployment,
        peer: &str,
        allocations: &[(String, Handle)],
        why: String,
    ) {
        info!(deployment = %record.id, %peer, "{why}");
        if record.ensemble.escalation == Some(Escalation::Teardown) {
            self.change(None, format!("{why}; escalation is teardown: shutting down"), |r| {
                r.reason = Some(why.clone());
            });
            self.clone().shutdown().await;
            return;
        }
        let nodes: BTreeSet<String> = allocations
            .iter()
            .filter_map(|(name, _)| record.allocations.get(name).map(|v| v.node.clone()))
            .collect();
        let list = nodes.iter().cloned().collect::<Vec<_>>().join(", ");
        let pending = AllocationStatus {
            message: Some(format!("lost with provider {}; placing it again", select::short(peer))),
            ..AllocationStatus::default()
        };
        self.change(None, format!("{why}; placing {list} elsewhere"), |r| {
            r.placement.retain(|node, _| !nodes.contains(node));
            for view in r.allocations.values_mut() {
                if nodes.contains(&view.node) {
                    give_up(view, &why, pending.clone());
                }
            }
        });
        self.start_replacing(nodes, [peer.to_string()].into());
    }

    /// Places `nodes` again, not on `avoid`, on the placing task (deadline: the default
    /// placement timeout from now): their standbys take over when every one has one.
    pub(crate) fn start_replacing(
        self: &Arc<Self>,
        nodes: BTreeSet<String>,
        avoid: BTreeSet<String>,
    ) {
        if self.cancelled() {
            return;
        }
        self.forget_asked(nodes.iter());
        let deadline = now_ms().saturating_add(ms(self.shared.settings.default_deadline));
        let standby = standby::takeover(&self.snapshot(), &nodes, &avoid);
        let mut placing = self.placing.lock().expect("placing lock");
        let replacing = self.clone().replace(nodes, avoid, deadline, standby);
        *placing = Some(tokio::spawn(replacing.instrument(self.span())));
    }
}

/// A provider's running allocations and how long the least silent has been silent.
struct Silent {
    silence: Duration,
    allocations: Vec<(String, Handle)>,
    /// Every one of them silent for `lost_after`.
    all: bool,
}

/// Nodes of a running deployment none of whose allocations has a copy or has ended.
fn unplaced(record: &Deployment) -> BTreeSet<String> {
    record
        .ensemble
        .nodes
        .iter()
        .filter(|(_, node)| {
            node.allocations.iter().all(|name| {
                record
                    .allocations
                    .get(name)
                    .is_some_and(|v| v.handle.is_none() && !v.status.state.is_terminal())
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The ensemble's `requirements.lost_after`, else `default` (this node's setting).
fn lost_after(record: &Deployment, default: Duration) -> Duration {
    let own = record.ensemble.requirements.as_ref().and_then(|r| r.lost_after);
    own.map_or(default, |d| d.to_std())
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
