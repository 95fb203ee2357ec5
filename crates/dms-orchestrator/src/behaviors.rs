//! The deployment behaviors of a node's root actor (what `dms deploy` and `dms
//! deployments` call through the local API).
//!
//! | Behavior | Payload | Answer |
//! |---|---|---|
//! | `/dms/node/deployment/new` | [`NewDeployment`] | `{id}` |
//! | `/dms/node/deployment/plan` | [`NewDeployment`] | [`crate::Plan`]: candidates, rejections, choice |
//! | `/dms/node/deployment/list` | — | [`crate::Summary`] list, newest first |
//! | `/dms/node/deployment/status` | `{id, after?, wait_ms?}` | [`crate::Status`] with events after `after` |
//! | `/dms/node/deployment/manifest` | `{id}` | the whole [`crate::Deployment`] record |
//! | `/dms/node/deployment/logs` | `{id, allocation?, tail?}` | output by allocation |
//! | `/dms/node/deployment/shutdown` | `{id}` | the final record |
//! | `/dms/node/deployment/prune` | — | `{pruned: [id]}` |

use std::sync::Arc;
use std::time::Duration;

use dms_actor::{Actor, ActorError, json_reply};
use serde::Deserialize;

use crate::orchestrator::{NewDeployment, Registry};

/// Longest a status request waits for a new event.
pub const MAX_STATUS_WAIT: Duration = Duration::from_secs(20);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusRequest {
    id: String,
    #[serde(default)]
    after: u64,
    #[serde(default)]
    wait_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsRequest {
    id: String,
    #[serde(default)]
    allocation: Option<String>,
    #[serde(default)]
    tail: Option<usize>,
}

/// Registers the table above on `actor`.
pub fn register(actor: &Actor, registry: &Arc<Registry>) -> Result<(), ActorError> {
    let r = registry.clone();
    actor.behavior("/dms/node/deployment/new", move |message| {
        let r = r.clone();
        async move {
            let request: NewDeployment = message.json()?;
            let id = r.create(request).await?;
            json_reply(&serde_json::json!({ "id": id }))
        }
    })?;
    let r = registry.clone();
    actor.behavior("/dms/node/deployment/plan", move |message| {
        let r = r.clone();
        async move { json_reply(&r.plan(message.json()?).await?) }
    })?;
    let r = registry.clone();
    actor.behavior("/dms/node/deployment/list", move |_| {
        let r = r.clone();
        async move { json_reply(&r.list()) }
    })?;
    let r = registry.clone();
    actor.behavior("/dms/node/deployment/status", move |message| {
        let r = r.clone();
        async move {
            let StatusRequest { id, after, wait_ms } = message.json()?;
            let wait = Duration::from_millis(wait_ms).min(MAX_STATUS_WAIT);
            json_reply(&r.status(&id, after, wait).await?)
        }
    })?;
    let r = registry.clone();
    actor.behavior("/dms/node/deployment/manifest", move |message| {
        let r = r.clone();
        async move {
            let Id { id } = message.json()?;
            json_reply(&r.manifest(&id)?)
        }
    })?;
    let r = registry.clone();
    actor.behavior("/dms/node/deployment/logs", move |message| {
        let r = r.clone();
        async move {
            let LogsRequest { id, allocation, tail } = message.json()?;
            let logs = r.logs(&id, allocation.as_deref(), tail).await?;
            let logs: serde_json::Map<String, serde_json::Value> = logs
                .into_iter()
                .map(|(name, result)| {
                    let value = match result {
                        Ok(logs) => serde_json::to_value(logs).unwrap_or_default(),
                        Err(error) => serde_json::json!({ "error": error }),
                    };
                    (name, value)
                })
                .collect();
            json_reply(&logs)
        }
    })?;
    let r = registry.clone();
    actor.behavior("/dms/node/deployment/shutdown", move |message| {
        let r = r.clone();
        async move {
            let Id { id } = message.json()?;
            json_reply(&r.shutdown(&id).await?)
        }
    })?;
    let r = registry.clone();
    actor.behavior("/dms/node/deployment/prune", move |_| {
        let r = r.clone();
        async move { json_reply(&serde_json::json!({ "pruned": r.prune().await })) }
    })?;
    Ok(())
}
