//! The deployment's private network, as its orchestrator keeps it: the addresses were
//! assigned at submission (`ask::subnet`, kept in the record so that a replaced
//! allocation keeps its address); here the providers' endpoints are noted from their
//! allocate answers, and the routes (address → allocation → provider) are sent to
//! every provider hosting an allocation before any starts, and again, one version
//! newer, after every change of placement.

use std::collections::BTreeMap;
use std::sync::Arc;

use dms_protocol::subnet::Routes;
use tokio::task::JoinSet;

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
    /// allocation; the first provider that does not take them, and why.
    pub(crate) async fn push_routes(self: &Arc<Self>) -> Result<(), (String, String)> {
        let mut routes: Option<Routes> = None;
        let mut providers = BTreeMap::new();
        self.amend(|r| {
            let Some(plan) = r.subnet.as_mut() else { return };
            plan.version += 1;
            let placed: BTreeMap<String, String> = r
                .allocations
                .iter()
                .filter_map(|(name, view)| Some((name.clone(), view.peer.clone()?)))
                .collect();
            routes = Some(plan.routes(&r.id, &placed));
            for placed in r.placement.values() {
                providers.insert(placed.provider.peer.clone(), placed.provider.clone());
            }
        });
        let Some(routes) = routes else { return Ok(()) };
        let timeout = self.shared.settings.call_timeout;
        let mut calls = JoinSet::new();
        for (peer, provider) in providers {
            let (actor, routes) = (self.actor.clone(), routes.clone());
            calls.spawn(async move {
                (peer, dms_protocol::call(&actor, &provider, &routes, timeout).await)
            });
        }
        let mut failed = None;
        while let Some(Ok((peer, result))) = calls.join_next().await {
            if let Err(error) = result {
                let why = format!("routes to {} were refused: {error}", select::short(&peer));
                failed.get_or_insert((peer, why));
            }
        }
        match failed {
            Some(failed) => Err(failed),
            None => Ok(()),
        }
    }
}
