//! The ensemble's `supervisor` tree, enforced across providers by the orchestrator.
//!
//! A supervised allocation *fails* when its provider restarts it by its own `restart`
//! policy (that run failed) or when it ends `failed`. Its innermost supervisor then acts
//! by its strategy (Erlang/OTP semantics, across machines):
//!
//! - `one_for_one` — only the failed child: an ended one is placed again;
//! - `one_for_all` — every child: running siblings are restarted in place
//!   (`/dms/allocation/restart`), ended ones placed again;
//! - `rest_for_one` — the failed child and the children listed after it.
//!
//! Each action counts against the supervisor's budget (`max_restarts` within `window`,
//! default 3 within 60 s). A supervisor out of budget escalates: its parent acts as if
//! the whole subtree had failed; at the top, the ensemble's `escalation` decides —
//! `teardown` shuts the deployment down, `redeploy` (the default) places the failed
//! allocations' nodes again on other providers. Every decision is an event with its
//! reason. Supervision acts while the deployment runs; a deployment all of whose
//! allocations ended is settled (completed or failed) as before.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use dms_ensemble::model::{Escalation, Strategy, Supervisor};
use dms_protocol::*;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Orchestrator;
use super::placement::give_up;
use crate::deployment::{Deployment, DeploymentState};

const MAX_RESTARTS: u32 = 3;
const WINDOW: Duration = Duration::from_secs(60);

/// Why a supervised allocation counts as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Its provider restarted it by its policy (the run failed).
    Restarted,
    /// It ended failed.
    Failed,
}

impl Cause {
    /// Whether the change from `before` to `after` is a failure a supervisor handles;
    /// `asked`: the restart count a restart the supervisor asked for leads to (that one
    /// is not a failure).
    pub(crate) fn of(
        before: &AllocationStatus,
        after: &AllocationStatus,
        asked: Option<u32>,
    ) -> Option<Cause> {
        if after.state == AllocationState::Failed && before.state != AllocationState::Failed {
            return Some(Cause::Failed);
        }
        let by_supervisor = asked.is_some_and(|asked| after.restarts <= asked);
        (after.restarts > before.restarts && !by_supervisor).then_some(Cause::Restarted)
    }

    fn name(self) -> &'static str {
        match self {
            Cause::Restarted => "failed and was restarted by its provider",
            Cause::Failed => "ended failed",
        }
    }
}

/// The restarts each supervisor made recently, by its path in the tree, and the
/// restart counts the restarts it asked for lead to, by allocation.
#[derive(Debug, Default)]
pub(crate) struct Budgets(BTreeMap<Vec<usize>, VecDeque<Instant>>, BTreeMap<String, u32>);

impl Budgets {
    /// The restart count a restart of `allocation` asked for leads to.
    pub(crate) fn asked(&self, allocation: &str) -> Option<u32> {
        self.1.get(allocation).copied()
    }

    /// Takes one restart from the budget of the supervisor at `path`; false when it is
    /// spent.
    fn take(&mut self, path: &[usize], supervisor: &Supervisor, now: Instant) -> bool {
        let max = supervisor.max_restarts.unwrap_or(MAX_RESTARTS) as usize;
        let window = supervisor.window.map_or(WINDOW, |w| w.to_std());
        let made = self.0.entry(path.to_vec()).or_default();
        while made.front().is_some_and(|t| now.saturating_duration_since(*t) > window) {
            made.pop_front();
        }
        if made.len() >= max {
            return false;
        }
        made.push_back(now);
        true
    }
}

/// The supervisor at `path` (indices into `children`, from the root).
fn at<'a>(root: &'a Supervisor, path: &[usize]) -> &'a Supervisor {
    path.iter().fold(root, |s, i| &s.children[*i])
}

/// The path of the innermost supervisor watching `allocation`.
fn path_of(root: &Supervisor, allocation: &str) -> Option<Vec<usize>> {
    if root.allocations.iter().any(|a| a == allocation) {
        return Some(Vec::new());
    }
    root.children.iter().enumerate().find_map(|(i, child)| {
        path_of(child, allocation).map(|mut rest| {
            rest.insert(0, i);
            rest
        })
    })
}

/// Every allocation under `supervisor`, in order.
fn all_of(supervisor: &Supervisor) -> Vec<String> {
    let mut all = supervisor.allocations.clone();
    for child in &supervisor.children {
        all.extend(all_of(child));
    }
    all
}

/// A child of a supervisor: one of its allocations, or a child supervisor.
#[derive(Clone, Debug)]
enum Member {
    Allocation(String),
    Supervisor(usize),
}

/// The children `strategy` restarts when `failed` fails, as allocation lists.
fn targets(supervisor: &Supervisor, failed: &Member) -> Vec<String> {
    let members: Vec<Member> = supervisor
        .allocations
        .iter()
        .cloned()
        .map(Member::Allocation)
        .chain((0..supervisor.children.len()).map(Member::Supervisor))
        .collect();
    let same = |m: &Member| match (m, failed) {
        (Member::Allocation(a), Member::Allocation(b)) => a == b,
        (Member::Supervisor(a), Member::Supervisor(b)) => a == b,
        _ => false,
    };
    let position = members.iter().position(same).unwrap_or(0);
    let chosen: Vec<&Member> = match supervisor.strategy {
        Strategy::OneForOne => members.iter().filter(|m| same(m)).collect(),
        Strategy::OneForAll => members.iter().collect(),
        Strategy::RestForOne => members.iter().skip(position).collect(),
    };
    chosen
        .into_iter()
        .flat_map(|m| match m {
            Member::Allocation(a) => vec![a.clone()],
            Member::Supervisor(i) => all_of(&supervisor.children[*i]),
        })
        .collect()
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::OneForOne => "one_for_one",
        Strategy::OneForAll => "one_for_all",
        Strategy::RestForOne => "rest_for_one",
    }
}

/// What the supervisors do about one failure.
#[derive(Debug, PartialEq)]
pub(crate) struct Decision {
    /// Supervisors that were out of budget and escalated to their parent, innermost
    /// first, each saying so.
    spent: Vec<String>,
    /// What the first supervisor with budget left does, or the escalation at the top.
    act: Act,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Act {
    /// Restart these allocations (by this supervisor's strategy).
    Restart { strategy: Strategy, targets: Vec<String> },
    /// The top supervisor is out of budget too (why): the ensemble's `escalation`.
    Escalate(String),
}

/// Walks up from the innermost supervisor of `allocation`, taking one restart from the
/// first budget with one left at `now`; `None` when no supervisor watches it.
pub(crate) fn decide(
    root: &Supervisor,
    budgets: &mut Budgets,
    allocation: &str,
    now: Instant,
) -> Option<Decision> {
    let mut path = path_of(root, allocation)?;
    let mut failed = Member::Allocation(allocation.to_string());
    let mut spent = Vec::new();
    loop {
        let supervisor = at(root, &path);
        if budgets.take(&path, supervisor, now) {
            let targets = targets(supervisor, &failed);
            let act = Act::Restart { strategy: supervisor.strategy, targets };
            return Some(Decision { spent, act });
        }
        let out = format!(
            "supervisor ({}) used up its {} restarts within {:?}",
            strategy_name(supervisor.strategy),
            supervisor.max_restarts.unwrap_or(MAX_RESTARTS),
            supervisor.window.map_or(WINDOW, |w| w.to_std())
        );
        match path.pop() {
            Some(index) => {
                spent.push(out);
                failed = Member::Supervisor(index);
            }
            None => return Some(Decision { spent, act: Act::Escalate(out) }),
        }
    }
}

impl Orchestrator {
    /// New copies of the allocations of `nodes` count their restarts afresh: restarts
    /// asked of the old copies no longer apply.
    pub(crate) fn forget_asked<'a>(&self, nodes: impl Iterator<Item = &'a String>) {
        let record = self.snapshot();
        let nodes: BTreeSet<&String> = nodes.collect();
        let mut budgets = self.supervision.lock().expect("budgets lock");
        for (name, view) in &record.allocations {
            if nodes.contains(&view.node) {
                budgets.1.remove(name);
            }
        }
    }

    /// `allocation` failed (`cause`): its supervisors act.
    pub(crate) async fn supervise(self: &Arc<Self>, allocation: String, cause: Cause) {
        // A failure while the deployment still starts is acted on once it runs.
        let started = Instant::now();
        let mut record = self.snapshot();
        while record.state.is_placing() && started.elapsed() < self.shared.settings.start_timeout {
            tokio::time::sleep(Duration::from_millis(100)).await;
            record = self.snapshot();
        }
        let Some(root) = record.ensemble.supervisor.clone() else { return };
        if record.state != DeploymentState::Running {
            return;
        }
        let decision = {
            let mut budgets = self.supervision.lock().expect("budgets lock");
            decide(&root, &mut budgets, &allocation, Instant::now())
        };
        let Some(Decision { spent, act }) = decision else { return };
        for spent in spent {
            self.change(None, format!("{spent}; escalating to its parent"), |_| {});
        }
        match act {
            Act::Restart { strategy, targets } => {
                let why = format!(
                    "supervisor ({}): {allocation} {}",
                    strategy_name(strategy),
                    cause.name()
                );
                self.restart(&record, &targets, &allocation, cause, &why).await;
            }
            Act::Escalate(spent) => self.escalate(&record, &allocation, spent).await,
        }
    }

    /// Restarts `targets` in place where they run, places ended ones again.
    async fn restart(
        self: &Arc<Self>,
        record: &Deployment,
        targets: &[String],
        failed: &str,
        cause: Cause,
        why: &str,
    ) {
        let mut ended = BTreeSet::new();
        // Restarts go out together: one slow or dead provider does not hold the others
        // (or this task, which also watches liveness) for long.
        let mut calls = JoinSet::new();
        for name in targets {
            let Some(view) = record.allocations.get(name) else { continue };
            // The provider already restarted the one that failed.
            if name == failed && cause == Cause::Restarted {
                continue;
            }
            match (&view.handle, view.status.state) {
                (Some(handle), AllocationState::Running) => {
                    let expected = view.status.restarts + 1;
                    self.supervision.lock().expect("budgets lock").1.insert(name.clone(), expected);
                    let ask = Restart { reason: why.to_string() };
                    let (actor, handle, name) = (self.actor.clone(), handle.clone(), name.clone());
                    let timeout = self.shared.settings.start_timeout;
                    calls.spawn(async move { (name, call(&actor, &handle, &ask, timeout).await) });
                }
                (_, AllocationState::Failed) => {
                    ended.insert(name.clone());
                }
                _ => {}
            }
        }
        let mut restarted = Vec::new();
        while let Some(Ok((name, result))) = calls.join_next().await {
            match result {
                Ok(status) => {
                    self.record_status(&name, status);
                    restarted.push(name);
                }
                Err(error) => {
                    self.change(Some(&name), format!("could not restart it: {error}"), |_| {})
                }
            }
        }
        restarted.sort_by_key(|name| targets.iter().position(|t| t == name));
        let mut done: Vec<String> = restarted.clone();
        done.extend(ended.iter().map(|n| format!("{n} (placed again)")));
        let said = if done.is_empty() { "nothing to restart".into() } else { done.join(", ") };
        self.change(None, format!("{why}; restarting {said}"), |_| {});
        self.place_again(&ended, why, BTreeSet::new());
    }

    /// The top supervisor is out of budget: the ensemble's `escalation` decides.
    async fn escalate(self: &Arc<Self>, record: &Deployment, failed: &str, spent: String) {
        if record.ensemble.escalation == Some(Escalation::Teardown) {
            let why = format!("{spent}; escalation is teardown: shutting down");
            self.change(None, why.clone(), |r| r.reason = Some(why.clone()));
            self.clone().shutdown().await;
            return;
        }
        let Some(view) = record.allocations.get(failed) else { return };
        let avoid: BTreeSet<String> = view.peer.iter().cloned().collect();
        let why = format!("{spent}; escalation is redeploy: placing {failed} on another provider");
        self.change(None, why.clone(), |_| {});
        self.place_again(&[failed.to_string()].into(), &why, avoid);
    }

    /// Gives up the copies of `allocations` and places their nodes again (not on
    /// `avoid`), unless a placement runs already.
    fn place_again(
        self: &Arc<Self>,
        allocations: &BTreeSet<String>,
        why: &str,
        avoid: BTreeSet<String>,
    ) {
        if allocations.is_empty() {
            return;
        }
        let record = self.snapshot();
        let nodes: BTreeSet<String> = allocations
            .iter()
            .filter_map(|name| record.allocations.get(name).map(|v| v.node.clone()))
            .collect();
        self.change(
            None,
            format!("placing {} again", nodes.iter().cloned().collect::<Vec<_>>().join(", ")),
            |r| {
                r.placement.retain(|node, _| !nodes.contains(node));
                for view in r.allocations.values_mut() {
                    if nodes.contains(&view.node) {
                        give_up(view, why, AllocationStatus::default());
                    }
                }
            },
        );
        // With a placement under way, the watching task places them once it ends
        // (they are left without a copy).
        if !self.placing_now() {
            self.start_replacing(nodes, avoid);
        }
    }
}

#[cfg(test)]
mod tests;
