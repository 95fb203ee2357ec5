//! Placement's I/O: the driver of the sans-IO [`Placement`] machine, and the steps it
//! carries out — ask for bids (the window closes as [`BidWindow`] says), release the
//! unchosen, commit and allocate on the chosen providers, start in dependency order,
//! revert. What to do when (attempts, back-off, strikes, deadline, cancellation,
//! resume after a restart) is the machine's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dms_actor::Handle;
use dms_actor::envelope::now_ms;
use dms_protocol::*;
use tokio::task::JoinSet;
use tracing::warn;

use super::bidding::Round;
use super::machine::{Effect, Input, Placement};
use super::{Orchestrator, first_failure, identity, standby, with_root_cause};
use crate::ask;
use crate::deployment::{AllocationView, Deployment, DeploymentState, Placed, Replaced};
use crate::select;

impl Orchestrator {
    /// Places and starts the deployment, attempt after attempt, until it runs, fails
    /// or is cancelled: carries out what the [`Placement`] machine decides, feeding it
    /// what came of each step. `start` is [`Input::Start`] for a new deployment and
    /// [`Input::Resume`] for one found placing after a restart.
    pub(crate) async fn place(self: Arc<Self>, start: Input) {
        self.drive(Placement::default(), start).await;
    }

    /// Places `nodes` of the running deployment again (their provider was lost), not on
    /// `avoid`, by `deadline_ms`; `standby` (one per node, or none) takes over first.
    pub(crate) async fn replace(
        self: Arc<Self>,
        nodes: BTreeSet<String>,
        avoid: BTreeSet<String>,
        deadline_ms: u64,
        standby: BTreeMap<String, select::Choice>,
    ) {
        let machine = Placement::replacing(nodes, avoid, deadline_ms).standing_by(standby);
        self.drive(machine, Input::Start).await;
    }

    /// Runs `machine` from `start` until it is done, carrying out its effects.
    async fn drive(self: Arc<Self>, mut machine: Placement, start: Input) {
        let mut input = start;
        loop {
            if self.cancelled() {
                machine.cancel();
            }
            let effects = machine.step(&self.snapshot(), input, now_ms());
            let mut next = None;
            for effect in effects {
                if let Some(produced) = self.clone().carry_out(effect, machine.scope()).await {
                    next = Some(produced);
                }
            }
            match next {
                Some(produced) if !machine.is_done() => input = produced,
                _ => return,
            }
        }
    }

    /// Carries out one effect (of a replacement of `scope`, when given); what came of
    /// it, when the machine waits for that.
    async fn carry_out(
        self: Arc<Self>,
        effect: Effect,
        scope: Option<&BTreeSet<String>>,
    ) -> Option<Input> {
        match effect {
            Effect::Bidding { attempt } => {
                if attempt == 1 {
                    self.note_unchecked_bandwidth(&self.snapshot());
                }
                self.change(None, format!("attempt {attempt}: asking for bids"), |r| {
                    r.state = DeploymentState::Bidding;
                    r.attempts = attempt;
                });
                None
            }
            Effect::Replacing { nodes, attempt } => {
                let nodes = nodes.into_iter().collect::<Vec<_>>().join(", ");
                self.change(None, format!("placing {nodes} again: attempt {attempt}"), |_| {});
                None
            }
            Effect::AskBids { asks, exclude } => {
                let record = self.snapshot();
                Some(Input::Bids(self.bids_excluding(&record, &asks, exclude, Round::Place).await))
            }
            Effect::Release(answers) => {
                self.release(&answers, &BTreeMap::new()).await;
                None
            }
            Effect::Pending(reason) if scope.is_some() => {
                self.change(None, format!("cannot place it again yet: {reason}"), |_| {});
                None
            }
            Effect::Pending(reason) => {
                // A pending deployment says why it is pending (`dms deployments list`).
                self.change(None, format!("cannot place yet: {reason}"), |r| {
                    r.reason = Some(format!("pending: {reason}"));
                });
                None
            }
            Effect::CommitAndStart { answers, choice } => {
                let providers: BTreeMap<String, Handle> = answers
                    .iter()
                    .filter_map(|a| Some((a.peer.clone(), (self.shared.root_of)(&a.peer)?)))
                    .collect();
                let record = self.snapshot();
                for (node, chosen) in &choice {
                    let names = record.ensemble.nodes.get(node).map(|n| &n.allocations);
                    let allocations = names
                        .into_iter()
                        .flatten()
                        .filter_map(|name| record.ensemble.allocations.get(name));
                    self.shared.directory.debit(&chosen.peer, &dms_protocol::total(allocations).0);
                }
                // Unchosen reservations are released beside the commit, not before it.
                let (_, placed) = tokio::join!(
                    self.release(&answers, &choice),
                    self.clone().commit_and_start(&record, &choice, &providers, scope.is_some())
                );
                Some(match placed {
                    Ok(()) => Input::Started,
                    Err((peer, reason)) => Input::ProviderFailed { peer, reason },
                })
            }
            Effect::TakeOver { choice } => {
                let providers: BTreeMap<String, Handle> = choice
                    .values()
                    .filter_map(|c| Some((c.peer.clone(), (self.shared.root_of)(&c.peer)?)))
                    .collect();
                let text: Vec<String> = choice
                    .iter()
                    .map(|(node, c)| format!("{node} on {}", select::short(&c.peer)))
                    .collect();
                let message = format!("standby takes over: {} (no bid round)", text.join(", "));
                self.change(None, message, |r| {
                    for c in choice.values() {
                        standby::drop_standby(r, &c.reservation);
                    }
                });
                let record = self.snapshot();
                let placed =
                    self.clone().commit_and_start(&record, &choice, &providers, true).await;
                Some(match placed {
                    Ok(()) => Input::Started,
                    Err((peer, reason)) => Input::ProviderFailed { peer, reason },
                })
            }
            Effect::Revert(nodes) => {
                self.revert(nodes.as_ref()).await;
                Some(Input::Reverted)
            }
            Effect::ForgetPlacement { peer, reason, nodes } => {
                self.forget_placement(peer.as_deref(), &reason, nodes.as_ref());
                None
            }
            Effect::Wait(pause) => {
                if !self.cancelled() {
                    self.pause(pause).await;
                }
                Some(Input::Due)
            }
            Effect::Fail(why) if scope.is_some() => {
                self.replacement_failed(scope.into_iter().flatten(), &why);
                None
            }
            Effect::Fail(why) => {
                self.fail(why);
                None
            }
            Effect::Done => None,
        }
    }

    /// Nodes that could not be placed again: their allocations fail with the reason,
    /// and the deployment settles (still running while other allocations run).
    fn replacement_failed<'a>(&self, nodes: impl Iterator<Item = &'a String>, why: &str) {
        let nodes: BTreeSet<&String> = nodes.collect();
        let list = nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ");
        self.change(None, format!("could not place {list} again: {why}"), |r| {
            for view in r.allocations.values_mut() {
                if nodes.contains(&view.node) && !view.status.state.is_terminal() {
                    view.status = AllocationStatus {
                        state: AllocationState::Failed,
                        message: Some(format!("could not be placed again: {why}")),
                        version: view.status.version + 1,
                        ..AllocationStatus::default()
                    };
                }
            }
            r.state = r.settled();
            if r.state == DeploymentState::Failed {
                r.reason = Some(with_root_cause(format!("could not place {list} again: {why}"), r));
            }
        });
    }

    /// Says once that edge bandwidth is not checked (rather than ignoring it silently).
    fn note_unchecked_bandwidth(&self, record: &Deployment) {
        for edge in record.ensemble.edges.iter().filter(|e| e.min_bandwidth.is_some()) {
            self.change(
                None,
                format!(
                    "edge {}–{}: min_bandwidth cannot be checked (providers do not \
                     measure bandwidth yet); placing without it",
                    edge.source, edge.target
                ),
                |_| {},
            );
        }
    }

    /// After a failed commit or start (the peer is not asked again), or a restart while
    /// placing: the placement of `nodes` (all when `None`) is forgotten; allocation
    /// actors it had made join their lineage, so that a copy that comes back is told to
    /// stop.
    fn forget_placement(&self, peer: Option<&str>, reason: &str, nodes: Option<&BTreeSet<String>>) {
        let message = match peer {
            Some(peer) => {
                format!("{reason}; reverted, {} will not be asked again", select::short(peer))
            }
            None => format!("{reason}; reverted, placing again"),
        };
        let replacing = nodes.is_some();
        self.change(None, message, |r| {
            if let Some(peer) = peer {
                r.failed_peers.insert(peer.to_string());
                // Kept without the peer's name, so that the same failure on several
                // peers reads as one root cause.
                let cause = reason.replace(&format!(" on {}", select::short(peer)), "");
                r.failures.insert(peer.to_string(), cause);
                if !replacing {
                    r.reason = Some(format!("pending: {reason}"));
                }
            }
            r.placement.retain(|node, _| nodes.is_some_and(|n| !n.contains(node)));
            for view in r.allocations.values_mut() {
                if nodes.is_none_or(|n| n.contains(&view.node)) {
                    give_up(view, reason, AllocationStatus::default());
                }
            }
        });
    }

    /// Commit, allocate, start; on failure, the peer to blame and why.
    /// `replacing`: only the nodes in `choice` are placed, into a running deployment
    /// (the placement of the others stays, and so does the deployment's state).
    pub(crate) async fn commit_and_start(
        self: Arc<Self>,
        record: &Deployment,
        choice: &BTreeMap<String, select::Choice>,
        providers: &BTreeMap<String, Handle>,
        replacing: bool,
    ) -> Result<(), (String, String)> {
        let timeout = self.shared.settings.call_timeout;
        let placement: BTreeMap<String, Placed> = choice
            .iter()
            .filter_map(|(node, c)| {
                Some((
                    node.clone(),
                    Placed {
                        provider: providers.get(&c.peer)?.clone(),
                        reservation: c.reservation.clone(),
                        score: c.score,
                        contract: c.contract.clone(),
                    },
                ))
            })
            .collect();
        let text: Vec<String> = placement
            .iter()
            .map(|(n, p)| format!("{n} → {} ({:.2})", select::short(&p.provider.peer), p.score))
            .collect();
        // Committing is agreeing: every provider keeps its reservation before any
        // allocates, so that a placement is all or nothing. With one ensemble node there
        // is nothing to agree on: its bid's reservation goes straight to allocate (which
        // fails like a commit would if it lapsed meanwhile), two messages fewer.
        let agree = placement.len() > 1;
        let (next, state) = if agree {
            ("committing", DeploymentState::Committing)
        } else {
            ("allocating", DeploymentState::Allocating)
        };
        let chosen = self.change_at(None, format!("chose {}; {next}", text.join(", ")), |r| {
            if !replacing {
                r.state = state;
                r.placement.clear();
            }
            r.placement.extend(placement.clone());
            for view in r.allocations.values_mut() {
                if let Some(placed) = placement.get(&view.node) {
                    view.peer = Some(placed.provider.peer.clone());
                }
            }
        });
        if replacing {
            self.clear_earlier_copies(record, &placement).await;
        }
        let mut calls = JoinSet::new();
        for (node, placed) in placement.iter().filter(|_| agree) {
            let commit = Commit {
                deployment: record.id.clone(),
                node: node.clone(),
                reservation: placed.reservation.clone(),
            };
            let (actor, to) = (self.actor.clone(), placed.provider.clone());
            calls
                .spawn(async move { (to.peer.clone(), call(&actor, &to, &commit, timeout).await) });
        }
        // Every call is waited for, failed or not: a revert must not overtake a commit
        // or an allocate still on its way to a provider.
        let mut failed = None;
        while let Some(Ok((peer, result))) = calls.join_next().await {
            if let Err(error) = result {
                let why = format!("commit on {} failed: {error}", select::short(&peer));
                failed.get_or_insert((peer, why));
            }
        }
        if let Some(failed) = failed {
            return Err(failed);
        }
        if self.cancelled() {
            return Err((String::new(), "cancelled".into()));
        }
        // Allocation actors outlive a crash of this node; the placement must be on disk
        // first, so that a restart knows whom to revert. (Commits need not wait: their
        // reservations lapse on their own.)
        self.durable(chosen).await;
        if agree {
            self.phase(
                replacing,
                DeploymentState::Allocating,
                "every provider committed; allocating",
            );
        }
        let mut calls = JoinSet::new();
        for (node, placed) in &placement {
            let names = &record.ensemble.nodes[node].allocations;
            let allocate = Allocate {
                deployment: record.id.clone(),
                node: node.clone(),
                reservation: placed.reservation.clone(),
                orchestrator: self.actor.handle().clone(),
                allocations: names
                    .iter()
                    .filter_map(|name| {
                        Some(AllocationSpec {
                            name: name.clone(),
                            allocation: record.ensemble.allocations.get(name)?.clone(),
                            module_b64: record.modules.get(name).cloned(),
                            images_b64: dms_protocol::node::images_of(&record.modules, name),
                            port_maps: ask::port_maps(&record.ensemble, node, name),
                            subnet: record
                                .subnet
                                .as_ref()
                                .and_then(|plan| plan.join(&record.ensemble, name)),
                        })
                    })
                    .collect(),
                contract: self.contract_text(placed.contract.as_deref()),
            };
            let (actor, to) = (self.actor.clone(), placed.provider.clone());
            calls.spawn(
                async move { (to.peer.clone(), call(&actor, &to, &allocate, timeout).await) },
            );
        }
        while let Some(Ok((peer, result))) = calls.join_next().await {
            match result {
                Ok(allocated) => {
                    self.note_endpoints(&peer, allocated.subnet_endpoints);
                    // A new copy is as good as heard: its silence counts from now.
                    for name in allocated.allocations.keys() {
                        self.note_heard(name);
                    }
                    self.change(
                        None,
                        format!(
                            "{} allocated {}",
                            select::short(&peer),
                            allocated.allocations.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                        |r| {
                            for (name, handle) in allocated.allocations {
                                if let Some(view) = r.allocations.get_mut(&name) {
                                    view.handle = Some(handle);
                                    view.status.state = AllocationState::Allocated;
                                }
                            }
                        },
                    )
                }
                Err(error) => {
                    let why = format!("allocate on {} failed: {error}", select::short(&peer));
                    failed.get_or_insert((peer, why));
                }
            }
        }
        if let Some(failed) = failed {
            return Err(failed);
        }
        // Every allocation's address must route before any starts and sends.
        let placing = placement.values().map(|p| p.provider.peer.clone()).collect();
        self.push_routes(&placing).await?;
        self.phase(
            replacing,
            DeploymentState::Starting,
            "starting allocations in dependency order",
        );
        for name in ask::start_order(&record.ensemble) {
            let node = record.ensemble.nodes.iter().find(|(_, n)| n.allocations.contains(&name));
            if node.is_none_or(|(node, _)| !placement.contains_key(node)) {
                continue;
            }
            if self.cancelled() {
                return Err((String::new(), "cancelled".into()));
            }
            let Some(view) = self.snapshot().allocations.get(&name).cloned() else { continue };
            let Some(handle) = view.handle else {
                return Err((
                    view.peer.unwrap_or_default(),
                    format!("allocation {name} has no actor"),
                ));
            };
            let grant = identity::update_grant(self.actor.signing_key(), &handle.did);
            let start =
                Start { grant: grant.map(|g| g.to_string()), liveness: Some(self.liveness()) };
            match call(&self.actor, &handle, &start, self.shared.settings.start_timeout).await {
                Ok(status) => {
                    // An update pushed meanwhile (a quick task may have exited) is newer
                    // and wins: record_status keeps the newest.
                    self.record_status(&name, status);
                }
                Err(error) => {
                    return Err((
                        handle.peer.clone(),
                        format!(
                            "allocation {name} did not start on {}: {error}",
                            select::short(&handle.peer)
                        ),
                    ));
                }
            }
        }
        self.change(None, "every allocation started", |r| {
            r.state = r.settled();
            r.reason = (r.state == DeploymentState::Failed).then(|| first_failure(r)).flatten();
        });
        Ok(())
    }

    /// Reverts what providers hold for this deployment: every placed provider and
    /// standby (then forgotten), or (for `nodes`) the providers of those nodes only.
    pub(crate) async fn revert(&self, nodes: Option<&BTreeSet<String>>) {
        let record = self.snapshot();
        let mut peers: BTreeMap<String, Handle> = record
            .placement
            .iter()
            .filter(|(node, _)| nodes.is_none_or(|n| n.contains(*node)))
            .map(|(_, p)| (p.provider.peer.clone(), p.provider.clone()))
            .collect();
        if nodes.is_none() && !record.standby.is_empty() {
            for standby in record.standby.values().flatten() {
                peers.insert(standby.provider.peer.clone(), standby.provider.clone());
            }
            self.change(None, "standbys released", |r| r.standby.clear());
        }
        for view in record.allocations.values() {
            if nodes.is_some_and(|n| !n.contains(&view.node)) {
                continue;
            }
            if let Some(handle) = &view.handle
                && let Some(root) = (self.shared.root_of)(&handle.peer)
            {
                peers.insert(handle.peer.clone(), root);
            }
        }
        let mut calls = JoinSet::new();
        for to in peers.into_values() {
            let revert = Revert { deployment: record.id.clone(), node: None };
            let actor = self.actor.clone();
            let timeout = self.shared.settings.call_timeout;
            calls
                .spawn(async move { (to.peer.clone(), call(&actor, &to, &revert, timeout).await) });
        }
        while let Some(Ok((peer, result))) = calls.join_next().await {
            if let Err(error) = result {
                warn!(%peer, %error, "Could not revert on a provider; its reservation lapses on its own.");
            }
        }
    }

    /// Before a node is placed again on a provider that hosted an earlier copy of it
    /// (lost, then back), that copy is stopped and forgotten there: an allocation id is
    /// taken once per provider. (Only the node's allocations: the fresh reservation of
    /// the bid stays.)
    async fn clear_earlier_copies(
        &self,
        record: &Deployment,
        placement: &BTreeMap<String, Placed>,
    ) {
        for (node, placed) in placement {
            let hosted_before = record.allocations.values().any(|view| {
                view.node == *node
                    && view.lineage.iter().any(|copy| copy.peer == placed.provider.peer)
            });
            if !hosted_before {
                continue;
            }
            let revert = Revert { deployment: record.id.clone(), node: Some(node.clone()) };
            let timeout = self.shared.settings.call_timeout;
            if let Err(error) = call(&self.actor, &placed.provider, &revert, timeout).await {
                warn!(peer = %placed.provider.peer, %error, "Could not clear an earlier copy.");
            }
        }
    }

    /// Records the next phase of a placement (only an event when replacing nodes of a
    /// running deployment).
    fn phase(&self, replacing: bool, state: DeploymentState, message: &str) {
        self.change(None, message, |r| {
            if !replacing {
                r.state = state;
            }
        });
    }
}

/// An allocation copy is given up for `why`: it joins the lineage (when it had an
/// actor), and the view starts over with `status`.
pub(crate) fn give_up(view: &mut AllocationView, why: &str, status: AllocationStatus) {
    if let Some(handle) = view.handle.take() {
        view.lineage.push(Replaced {
            peer: handle.peer,
            did: handle.did,
            at_ms: now_ms(),
            why: why.to_string(),
        });
    }
    view.peer = None;
    view.status = status;
}
