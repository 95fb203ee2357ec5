//! The deployment's stores, opened with the credentials `dms deploy` sent (held in
//! memory here, never written or sent on), and the storage behaviors its allocations
//! call (`dms_protocol::storage`): each answers only the named allocation's own actor,
//! and signs only what the ensemble declares for it.

use std::sync::{Arc, Weak};

use dms_actor::{ActorError, Message};
use dms_ensemble::model::Allocation;
use dms_protocol::storage::{CompleteRequest, Completed, InputsRequest, PutRequest};
use dms_storage::Stores;
use tracing::warn;

use super::Orchestrator;

impl Orchestrator {
    /// Holds the deployment's opened stores (from its submission).
    pub(crate) fn hold_stores(&self, stores: Option<Stores>) {
        *self.stores.lock().expect("stores lock") = stores.map(Arc::new);
    }

    /// Registers the storage behaviors on the orchestrator's actor.
    pub(crate) fn register_storage(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let inputs = dms_protocol::handle(&self.actor, move |message, r: InputsRequest| {
            let weak = weak.clone();
            async move {
                let (stores, allocation) = caller(&weak, &message, &r.deployment, &r.allocation)?;
                stores.inputs(&allocation, r.from).await.map_err(refused)
            }
        });
        let weak = Arc::downgrade(self);
        let put = dms_protocol::handle(&self.actor, move |message, r: PutRequest| {
            let weak = weak.clone();
            async move {
                let (stores, allocation) = caller(&weak, &message, &r.deployment, &r.allocation)?;
                stores.put(&allocation, &r.files).await.map_err(refused)
            }
        });
        let weak = Arc::downgrade(self);
        let complete = dms_protocol::handle(&self.actor, move |message, r: CompleteRequest| {
            let weak = weak.clone();
            async move {
                let (stores, allocation) = caller(&weak, &message, &r.deployment, &r.allocation)?;
                stores.complete(&allocation, r).await.map_err(refused)?;
                Ok(Completed {})
            }
        });
        for result in [inputs, put, complete] {
            if let Err(error) = result {
                warn!(%error, "Could not register a storage behavior.");
            }
        }
    }
}

/// The stores and the allocation's definition, when `message` comes from the actor of
/// allocation `name` of this deployment.
fn caller(
    weak: &Weak<Orchestrator>,
    message: &Message,
    deployment: &str,
    name: &str,
) -> Result<(Arc<Stores>, Allocation), ActorError> {
    let orchestrator = weak.upgrade().ok_or(ActorError::Closed)?;
    let from = &message.envelope.from.did;
    let allocation = orchestrator.peek(|r| {
        let view = r.allocations.get(name).filter(|_| r.id == deployment);
        let own = view.and_then(|v| v.handle.as_ref()).is_some_and(|h| h.did == *from);
        own.then(|| r.ensemble.allocations.get(name).cloned()).flatten()
    });
    let Some(allocation) = allocation else {
        return Err(ActorError::Unauthorized {
            code: "not_the_allocation".into(),
            reason: format!(
                "only the actor of allocation {name} of deployment {deployment} may ask for its \
                 storage, not {from}"
            ),
        });
    };
    let stores = orchestrator.stores.lock().expect("stores lock").clone().ok_or_else(|| {
        ActorError::handler(
            "this node no longer holds the deployment's storage credentials (they are kept in \
             memory only, and the node restarted); submit the deployment again",
        )
    })?;
    Ok((stores, allocation))
}

fn refused(error: dms_storage::Error) -> ActorError {
    match error {
        dms_storage::Error::Outside { .. } => {
            ActorError::Unauthorized { code: "outside_outputs".into(), reason: error.to_string() }
        }
        other => ActorError::handler(other.to_string()),
    }
}
