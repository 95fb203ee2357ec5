//! The deployment's private network, as its orchestrator keeps it: the addresses were
//! assigned at submission (`ask::subnet`, kept in the record so that a replaced
//! allocation keeps its address); here the providers' endpoints are noted from their
//! allocate answers, and the routes (address → allocation → provider) are sent to
//! every provider hosting an allocation with an address before any starts, and again,
//! one version newer, after every change of placement. The version is written durably
//! (with an event) before it is sent: providers ignore versions older than the newest
//! they applied, and one that has a newer version makes the next round start past it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dms_protocol::subnet::Routes;
use tokio::task::JoinSet;
use tracing::warn;

use super::Orchestrator;
use crate::select;

impl Orchestrator {
    /// Notes where provider `peer`'s subnet endpoint answers.
    pub(crate) fn note_endpoints(&self, peer: &str, endpoints: Vec<std::net::SocketAddr>) {
        if endpoints.is_empty() {
            return;
        }
        self.amend(|r| {
            if let Some(plan) = r.subnet.as_mut() {
                plan.endpoints.insert(peer.to_string(), endpoints);
            }
        });
    }

    /// Sends the current routes, one version newer, to every provider hosting an
    /// allocation with an address. A provider of `placing` (placed by this attempt)
    /// that does not take them fails the attempt (the peer and why); the others are
    /// told again at the next change.
    pub(crate) async fn push_routes(
        self: &Arc<Self>,
        placing: &BTreeSet<String>,
    ) -> Result<(), (String, String)> {
        let (mut failed, mut at_least) = (None, 0);
        // A provider that already has a newer version (one this node lost in a crash)
        // makes the next round start past it.
        for _round in 0..2 {
            let Some((routes, providers)) = self.next_routes(at_least).await else {
                return Ok(());
            };
            let (newest, failures) = self.send_routes(&routes, providers).await;
            for (peer, why) in failures {
                if placing.contains(&peer) {
                    failed.get_or_insert((peer, why));
                } else {
                    warn!(deployment = %routes.deployment, %peer, %why, "Routes not taken.");
                }
            }
            if newest <= routes.version {
                break;
            }
            at_least = newest;
        }
        match failed {
            Some(failed) => Err(failed),
            None => Ok(()),
        }
    }

    /// The next version of the routes (past `at_least`), written durably with an event,
    /// and the providers to tell.
    async fn next_routes(
        &self,
        at_least: u64,
    ) -> Option<(Routes, BTreeMap<String, dms_actor::Handle>)> {
        let version = self.peek(|r| r.subnet.as_ref().map(|p| p.version.max(at_least) + 1))?;
        let mut next = None;
        let message = format!("sending the subnet's routes (version {version}) to its providers");
        let seq = self.change_at(None, message, |r| {
            let Some(plan) = r.subnet.as_mut() else { return };
            plan.version = version;
            let placed: BTreeMap<String, String> = r
                .allocations
                .iter()
                .filter(|(name, _)| plan.addresses.contains_key(*name))
                .filter_map(|(name, view)| Some((name.clone(), view.peer.clone()?)))
                .collect();
            let hosting: BTreeSet<&String> = placed.values().collect();
            let providers = r
                .placement
                .values()
                .filter(|p| hosting.contains(&p.provider.peer))
                .map(|p| (p.provider.peer.clone(), p.provider.clone()))
                .collect();
            next = Some((plan.routes(&r.id, &placed), providers));
        });
        self.durable(seq).await;
        next
    }

    /// Sends `routes` to every provider; the newest version any of them has, and who
    /// did not take them and why.
    async fn send_routes(
        &self,
        routes: &Routes,
        providers: BTreeMap<String, dms_actor::Handle>,
    ) -> (u64, Vec<(String, String)>) {
        let timeout = self.shared.settings.call_timeout;
        let mut calls = JoinSet::new();
        for (peer, provider) in providers {
            let (actor, routes) = (self.actor.clone(), routes.clone());
            calls.spawn(async move {
                (peer, dms_protocol::call(&actor, &provider, &routes, timeout).await)
            });
        }
        let (mut newest, mut failures) = (routes.version, Vec::new());
        while let Some(Ok((peer, result))) = calls.join_next().await {
            match result {
                Ok(applied) => newest = newest.max(applied.version),
                Err(error) => {
                    let why = format!("routes to {} were refused: {error}", select::short(&peer));
                    failures.push((peer, why));
                }
            }
        }
        (newest, failures)
    }
}
