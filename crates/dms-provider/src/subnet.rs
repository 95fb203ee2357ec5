//! This provider's part of deployments' private networks (`dms-subnet`): the routes
//! behavior (`/dms/deployment/subnet`, from the orchestrator that allocated here
//! only), the network a Docker allocation joins when it starts, leaving it when the
//! allocation ends, and restoring both after a restart (routes are kept in the store,
//! table `subnet_routes`; interfaces are given again through each sandbox's process).

use std::net::SocketAddr;
use std::sync::Arc;

use dms_actor::ActorError;
use dms_executor::{ExecutionInfo, Network};
use dms_protocol::subnet::{Routes, RoutesApplied};
use dms_store::Repo;
use tracing::{info, warn};

use crate::Shared;
use crate::hosted::Hosted;

/// The routes last applied, by deployment.
const ROUTES: Repo<Routes> = Repo::new("subnet_routes");

/// Whether allocations here can join subnets.
#[derive(Clone, Debug)]
pub enum SubnetHost {
    /// They can, through this runtime, whose endpoint answers at these addresses.
    Ready {
        /// The runtime.
        subnet: dms_subnet::Subnet,
        /// Where other providers reach it.
        endpoints: Vec<SocketAddr>,
    },
    /// They cannot, for this reason (said in bid refusals).
    Unavailable(String),
}

impl SubnetHost {
    /// Why allocations cannot join here, if they cannot.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            SubnetHost::Ready { .. } => None,
            SubnetHost::Unavailable(why) => Some(why),
        }
    }

    /// Where other providers reach this one (empty when unavailable).
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        match self {
            SubnetHost::Ready { endpoints, .. } => endpoints.clone(),
            SubnetHost::Unavailable(_) => Vec::new(),
        }
    }

    fn runtime(&self) -> Option<&dms_subnet::Subnet> {
        match self {
            SubnetHost::Ready { subnet, .. } => Some(subnet),
            SubnetHost::Unavailable(_) => None,
        }
    }
}

/// Registers the routes behavior on the root actor (after recovery: the allocations it
/// checks the sender against are known then).
pub(crate) fn register(shared: &Arc<Shared>) -> Result<(), ActorError> {
    let s = shared.clone();
    dms_protocol::handle::<Routes, _, _>(&s.root.clone(), move |message, routes| {
        let s = s.clone();
        let from = message.envelope.from.did.clone();
        async move {
            // Only the orchestrator of every allocation of the deployment here (one
            // orchestrator per deployment id on a provider: `allocate` refuses others).
            let ours = s.running(&routes.deployment, None);
            if ours.is_empty() || ours.iter().any(|r| r.orchestrator != from) {
                return Err(ActorError::Unauthorized {
                    code: "not_the_orchestrator".into(),
                    reason: format!(
                        "{from} is not the orchestrator of {}'s allocations here",
                        routes.deployment
                    ),
                });
            }
            apply(&s, routes).await
        }
    })
}

async fn apply(shared: &Shared, routes: Routes) -> Result<RoutesApplied, ActorError> {
    let subnet = match &shared.subnet {
        SubnetHost::Ready { subnet, .. } => subnet,
        SubnetHost::Unavailable(why) => {
            return Err(crate::failed(format!("this provider cannot join subnets: {why}")));
        }
    };
    // One deployment's routes at a time: compare, apply and store as one step.
    let _applying = shared.routes_lock.lock().await;
    let (store, deployment) = (shared.store.clone(), routes.deployment.clone());
    let kept = tokio::task::spawn_blocking(move || ROUTES.get_now(&store, &deployment))
        .await
        .map_err(crate::failed)?
        .map_err(crate::failed)?;
    if let Some(kept) = kept.filter(|k| k.version > routes.version) {
        return Ok(RoutesApplied { version: kept.version });
    }
    subnet.set_routes(&routes.deployment, &runtime_routes(&routes));
    let version = routes.version;
    let store = shared.store.clone();
    let key = routes.deployment.clone();
    tokio::task::spawn_blocking(move || ROUTES.put_now(&store, &key, &routes))
        .await
        .map_err(crate::failed)?
        .map_err(crate::failed)?;
    Ok(RoutesApplied { version })
}

fn runtime_routes(routes: &Routes) -> Vec<dms_subnet::Route> {
    routes
        .routes
        .iter()
        .map(|r| dms_subnet::Route {
            address: r.address,
            allocation: r.allocation.clone(),
            peer: r.peer.clone(),
            endpoints: r.endpoints.clone(),
        })
        .collect()
}

/// The network a Docker allocation joins, when it has an address; why it cannot.
pub(crate) fn network(shared: &Shared, hosted: &Hosted) -> Result<Option<Network>, String> {
    let Some(join) = &hosted.spec.subnet else { return Ok(None) };
    let subnet = shared.subnet.runtime().cloned().ok_or_else(|| {
        let why = shared.subnet.unavailable().unwrap_or_default();
        format!("this provider cannot join the deployment's subnet: {why}")
    })?;
    let (deployment, name) = (hosted.deployment.clone(), hosted.spec.name.clone());
    let (address, prefix) = (join.address, join.prefix);
    let attach: dms_executor::Attach = Arc::new(move |pid| {
        let (subnet, deployment, name) = (subnet.clone(), deployment.clone(), name.clone());
        Box::pin(async move {
            subnet.attach(&deployment, &name, address, prefix, pid).await.map_err(|e| e.to_string())
        })
    });
    let hosts = join.hosts.iter().map(|(name, ip)| (name.clone(), (*ip).into())).collect();
    Ok(Some(Network { hosts, attach }))
}

/// The allocation ended: its interface goes; with the last allocation record of the
/// deployment here, its routes go too (from the runtime and the store).
pub(crate) async fn leave(shared: &Shared, hosted: &Hosted) {
    if hosted.spec.subnet.is_none() {
        return;
    }
    let subnet = shared.subnet.runtime();
    if let Some(subnet) = subnet {
        subnet.detach(&hosted.deployment, &hosted.spec.name);
    }
    let prefix = format!("{}.", hosted.deployment);
    let others = {
        let allocations = shared.allocations.lock().expect("allocations lock");
        allocations.keys().any(|id| id.starts_with(&prefix) && *id != hosted.id)
    };
    if others {
        return;
    }
    let _applying = shared.routes_lock.lock().await;
    if let Some(subnet) = subnet {
        subnet.forget(&hosted.deployment);
    }
    let (store, key) = (shared.store.clone(), hosted.deployment.clone());
    let deleted = tokio::task::spawn_blocking(move || ROUTES.delete_now(&store, &key)).await;
    if let Ok(Err(error)) = deleted {
        warn!(deployment = %hosted.deployment, %error, "Could not forget the routes.");
    }
}

/// After a restart: the kept routes of deployments still hosted here, and the
/// interfaces of re-attached containers (which lost theirs with the old process).
pub(crate) async fn restore(shared: &Shared, records: &[Hosted], reattached: &[ExecutionInfo]) {
    let Some(subnet) = shared.subnet.runtime() else { return };
    let store = shared.store.clone();
    let kept = tokio::task::spawn_blocking(move || ROUTES.list_now(&store)).await;
    let kept = kept.ok().and_then(Result::ok).unwrap_or_default();
    for (deployment, routes) in kept {
        if records.iter().any(|h| h.deployment == deployment && !h.status.state.is_terminal()) {
            subnet.set_routes(&deployment, &runtime_routes(&routes));
        } else if !records.iter().any(|h| h.deployment == deployment) {
            // Its allocations are gone (a crash between their end and this delete).
            let store = shared.store.clone();
            let _ =
                tokio::task::spawn_blocking(move || ROUTES.delete_now(&store, &deployment)).await;
        }
    }
    for info in reattached {
        let Some(pid) = info.network_pid else { continue };
        let Some(hosted) = records.iter().find(|h| h.id == info.allocation) else { continue };
        let Some(join) = &hosted.spec.subnet else { continue };
        let attached =
            subnet.attach(&hosted.deployment, &hosted.spec.name, join.address, join.prefix, pid);
        match attached.await {
            Ok(()) => info!(allocation = %hosted.id, "Interface given again after the restart."),
            Err(error) => {
                warn!(allocation = %hosted.id, %error, "Cannot give the interface again.")
            }
        }
    }
}
