//! Standbys: `nodes.<n>.redundancy: N` keeps N reservations for node `n` on providers
//! that run nothing else of the deployment, so that when the node's provider is lost
//! a standby takes over at once — commit, allocate, start — without a bid round.
//!
//! A standby is a committed reservation. Its provider keeps it for the commit's time
//! to live; the orchestrator renews it when half of that has passed, so it lapses on
//! its own when the orchestrator is gone (nothing is orphaned). A standby that cannot
//! be renewed (its provider left) is dropped, and a new one is sought.
//!
//! The upkeep runs on the placing task, between liveness checks, and never beside a
//! placement or a replacement: renew what is due, then one bid round per missing
//! standby (only for that node, on peers running nothing of this deployment). A
//! round that finds nobody is retried with a doubling back-off, and its reason is an
//! event when it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use dms_actor::envelope::now_ms;
use dms_protocol::*;
use tokio::time::Instant;

use super::bidding::Round;
use super::policy::Backoff;
use super::{Orchestrator, skipped};
use crate::deployment::{Deployment, Standby};
use crate::{ask, select};

/// First pause after a round that found no standby; it doubles up to
/// [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest pause between rounds that find no standby.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A standby this close to lapsing is not taken over (ms).
const LAPSE_MARGIN_MS: u64 = 5_000;

/// When the next round for a missing standby may run, and what the last one said.
#[derive(Debug)]
pub(crate) struct Upkeep {
    backoff: Backoff,
    next_round: Option<Instant>,
    said: Option<String>,
}

impl Default for Upkeep {
    fn default() -> Upkeep {
        Upkeep { backoff: Backoff::new(FIRST_BACKOFF, MAX_BACKOFF), next_round: None, said: None }
    }
}

/// Nodes with fewer standbys than their `redundancy` asks for, and how many more each
/// needs. Pinned nodes have none: there is only one peer they may run on.
pub(crate) fn missing(record: &Deployment) -> BTreeMap<String, usize> {
    record
        .ensemble
        .nodes
        .iter()
        .filter(|(_, node)| node.redundancy > 0 && node.peer.is_none())
        .filter_map(|(name, node)| {
            let have = record.standby.get(name).map_or(0, Vec::len);
            let want = usize::try_from(node.redundancy).unwrap_or(usize::MAX);
            (have < want).then(|| (name.clone(), want - have))
        })
        .collect()
}

/// The standby to take over each of `nodes`, when every one has one not on `avoid`.
pub(crate) fn takeover(
    record: &Deployment,
    nodes: &BTreeSet<String>,
    avoid: &BTreeSet<String>,
) -> BTreeMap<String, select::Choice> {
    nodes
        .iter()
        .filter_map(|node| {
            // One about to lapse (renewals pause while a placement runs) is not taken:
            // its commit would fail and its healthy peer be blamed.
            let live = now_ms().saturating_add(LAPSE_MARGIN_MS);
            let standby = record.standby.get(node)?.iter().find(|s| {
                !avoid.contains(&s.provider.peer)
                    && !record.failed_peers.contains(&s.provider.peer)
                    && s.expires_ms > live
            })?;
            let choice = select::Choice {
                peer: standby.provider.peer.clone(),
                reservation: standby.reservation.clone(),
                score: standby.score,
                contract: standby.contract.clone(),
            };
            Some((node.clone(), choice))
        })
        .collect()
}

/// Peers holding a role in the deployment: a node, an allocation copy, or a standby.
pub(crate) fn involved(record: &Deployment) -> BTreeSet<String> {
    let placed = record.placement.values().map(|p| p.provider.peer.clone());
    let standing = record.standby.values().flatten().map(|s| s.provider.peer.clone());
    let hosting =
        record.allocations.values().filter_map(|v| v.handle.as_ref()).map(|h| h.peer.clone());
    placed.chain(standing).chain(hosting).collect()
}

impl Orchestrator {
    /// Whether the standbys need work now: one is due for renewal, or one is missing
    /// and the back-off allows a round.
    pub(crate) fn standby_due(&self, record: &Deployment) -> bool {
        let now = now_ms();
        if record.standby.values().flatten().any(|s| s.due(now)) {
            return true;
        }
        let upkeep = self.upkeep.lock().expect("upkeep lock");
        !missing(record).is_empty() && upkeep.next_round.is_none_or(|at| Instant::now() >= at)
    }

    /// Renews the standbys that are due, then seeks the missing ones.
    pub(crate) async fn keep_standbys(self: Arc<Self>) {
        self.renew_standbys().await;
        let wanted = missing(&self.snapshot());
        if wanted.is_empty() {
            return;
        }
        if self.upkeep.lock().expect("upkeep lock").next_round.is_some_and(|at| Instant::now() < at)
        {
            return;
        }
        for (node, count) in wanted {
            for _ in 0..count {
                if self.cancelled() {
                    return;
                }
                if let Err(why) = self.add_standby(&node).await {
                    self.round_failed(&node, why);
                    return;
                }
            }
        }
        let mut upkeep = self.upkeep.lock().expect("upkeep lock");
        *upkeep = Upkeep::default();
    }

    fn round_failed(&self, node: &str, why: String) {
        let (pause, first) = {
            let mut upkeep = self.upkeep.lock().expect("upkeep lock");
            let pause = upkeep.backoff.take(MAX_BACKOFF);
            upkeep.next_round = Some(Instant::now() + pause);
            let first = upkeep.said.as_deref() != Some(why.as_str());
            upkeep.said = Some(why.clone());
            (pause, first)
        };
        if first {
            let message = format!(
                "no standby for {node} yet: {why}; trying again in {} s (and on, backing off)",
                pause.as_secs()
            );
            self.change(None, message, |_| {});
        }
    }

    /// Keeps every standby due for renewal; one whose provider does not answer is
    /// dropped (a new one is sought).
    async fn renew_standbys(&self) {
        let record = self.snapshot();
        let now = now_ms();
        let due: Vec<(&String, &Standby)> = record
            .standby
            .iter()
            .flat_map(|(node, list)| list.iter().map(move |s| (node, s)))
            .filter(|(_, s)| s.due(now))
            .collect();
        for (node, standby) in due {
            let commit = Commit {
                deployment: record.id.clone(),
                node: node.clone(),
                reservation: standby.reservation.clone(),
            };
            let timeout = self.shared.settings.call_timeout;
            let reservation = standby.reservation.clone();
            match call(&self.actor, &standby.provider, &commit, timeout).await {
                // A renewal is no event: it would push the deployment's story out.
                Ok(kept) => self.amend(|r| {
                    let kept_now = now_ms();
                    for s in r.standby.values_mut().flatten() {
                        if s.reservation == reservation {
                            (s.kept_ms, s.expires_ms) = (kept_now, kept.expires_ms);
                        }
                    }
                }),
                Err(error) => {
                    let message = format!(
                        "standby for {node} on {} dropped: it could not be kept ({error})",
                        select::short(&standby.provider.peer)
                    );
                    self.change(None, message, |r| drop_standby(r, &reservation));
                }
            }
        }
    }

    /// One bid round for one more standby of `node`; why none was found.
    async fn add_standby(&self, node: &str) -> Result<(), String> {
        let record = self.snapshot();
        let asks: Vec<NodeAsk> =
            ask::asks(&record.ensemble).into_iter().filter(|a| a.node == node).collect();
        let mut exclude = skipped(&record);
        exclude.extend(involved(&record));
        let answers = self.bids_excluding(&record, &asks, exclude.clone(), Round::Standby).await;
        let choice = match select::place(&asks, &answers, &exclude, &[]) {
            Ok(choice) => choice,
            Err(reason) => {
                self.release(&answers, &BTreeMap::new()).await;
                return Err(reason);
            }
        };
        self.release(&answers, &choice).await;
        let chosen = choice.get(node).ok_or("no bid chosen")?;
        let Some(provider) = (self.shared.root_of)(&chosen.peer) else {
            self.release(&answers, &BTreeMap::new()).await;
            return Err("the bidder is unknown".into());
        };
        let commit = Commit {
            deployment: record.id.clone(),
            node: node.to_string(),
            reservation: chosen.reservation.clone(),
        };
        let timeout = self.shared.settings.call_timeout;
        let kept = match call(&self.actor, &provider, &commit, timeout).await {
            Ok(kept) => kept,
            Err(error) => {
                // Its reservation is not kept by anyone: release it now.
                self.release(&answers, &BTreeMap::new()).await;
                return Err(format!("commit on {} failed: {error}", select::short(&chosen.peer)));
            }
        };
        let standby = Standby {
            provider,
            reservation: chosen.reservation.clone(),
            score: chosen.score,
            kept_ms: now_ms(),
            expires_ms: kept.expires_ms,
            contract: chosen.contract.clone(),
        };
        let want = record.ensemble.nodes.get(node).map_or(0, |n| n.redundancy);
        let count = record.standby.get(node).map_or(0, Vec::len) + 1;
        let message = format!(
            "standby {count} of {want} for {node} reserved on {} ({:.2}): it takes over \
             without a bid round if {node}'s provider is lost",
            select::short(&chosen.peer),
            chosen.score
        );
        let seq = self.change_at(None, message, |r| {
            r.standby.entry(node.to_string()).or_default().push(standby);
        });
        self.durable(seq).await;
        Ok(())
    }
}

/// Forgets the standby holding `reservation`.
pub(crate) fn drop_standby(record: &mut Deployment, reservation: &str) {
    for list in record.standby.values_mut() {
        list.retain(|s| s.reservation != reservation);
    }
    record.standby.retain(|_, list| !list.is_empty());
}
