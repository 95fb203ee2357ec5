//! Every request/response pair between the CLI and its node, orchestrators and
//! providers, and orchestrators and allocation actors, in one neutral place every side
//! uses: none imports another.
//!
//! A message type implements [`Request`]: the behavior it is sent to, its protocol
//! version and the type of its answer (Garage `src/net/message.rs` style). [`call`]
//! sends one and reads the typed answer; [`handle`] registers a typed behavior. On the
//! wire a request is its JSON object with one more key, `"v"`, its version; a receiver
//! that does not speak that version answers [`ActorError::UnsupportedVersion`] instead
//! of guessing. A request without `"v"` (a person's `dms actor cmd`) is version 1.
//!
//! # Module map
//! - [`deployment`]: orchestrator → provider: bid requests and bids, commit, allocate,
//!   revert.
//! - [`allocation`]: orchestrator ↔ allocation actor: start, status, logs, shutdown,
//!   and the updates an allocation pushes.
//! - [`node`]: CLI → node: submit, plan, list, follow, inspect, read the logs of, shut
//!   down and prune deployments.
//! - [`record`]: the deployment record those answers carry (and the orchestrating node
//!   persists): states, placement, allocation views, events.
//! - [`peers`]: CLI → node: peers, DHT, gossip scores; the public greetings.
//! - [`onboarding`]: CLI → node: onboarding, resources, hardware, benchmarks; the
//!   provider's accounts.
//! - [`contract`]: contracts (make, sign, list, revoke; revocations over gossip), the
//!   usage receipts providers send orchestrators, a deployment's usage.
//! - [`cap`]: remote capability management and the revocations spread over gossip.
//! - [`storage`]: allocation actor → orchestrator: presigned URLs for its inputs and
//!   outputs (the credentials stay on the orchestrating node).
//! - [`subnet`]: a deployment's private network: the address plan, packet tags.
//! - [`telemetry`]: CLI → node: the event journal (`dms events`) and the log level.
//! - [`catalog`]: every behavior above with its version, types and the capability a
//!   caller needs (the docs site's behaviors reference is generated from it).
//!
//! `dms actor cmd` stays untyped on purpose: it sends any behavior a person names.

pub mod allocation;
pub mod cap;
pub mod catalog;
pub mod contract;
pub mod deployment;
pub mod node;
pub mod onboarding;
pub mod peers;
pub mod record;
pub mod storage;
pub mod subnet;
pub mod telemetry;

use std::future::Future;
use std::time::Duration;

use dms_actor::{Actor, ActorError, Handle, Message, Reply};
use dms_ensemble::model::Allocation;
use dms_types::resources::Resources;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use allocation::*;
pub use deployment::*;

/// A message with a typed answer.
pub trait Request: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The behavior it is sent to.
    const BEHAVIOR: &'static str;
    /// Its version on the wire; bumped when its meaning changes incompatibly.
    const VERSION: u32 = 1;
    /// What the receiver answers.
    type Response: Serialize + DeserializeOwned + Send + 'static;
}

/// A request on the wire: its fields and its version.
#[derive(Serialize)]
struct Versioned<'a, R> {
    v: u32,
    #[serde(flatten)]
    body: &'a R,
}

/// Just the version of a request on the wire.
#[derive(Deserialize)]
struct Version {
    #[serde(default)]
    v: Option<u32>,
}

/// The wire form of `request`.
pub fn encode<R: Request>(request: &R) -> Result<Vec<u8>, ActorError> {
    serde_json::to_vec(&Versioned { v: R::VERSION, body: request })
        .map_err(|e| ActorError::Internal { reason: format!("{}: {e}", R::BEHAVIOR) })
}

/// Reads a request from its wire form: the version first (refused typed when it is not
/// the one spoken here), then the fields. An empty payload is an empty object.
pub fn decode<R: Request>(payload: &[u8]) -> Result<R, ActorError> {
    let payload: &[u8] = if payload.is_empty() { b"{}" } else { payload };
    let version: Version = serde_json::from_slice(payload)
        .map_err(|e| ActorError::BadPayload { reason: format!("{}: {e}", R::BEHAVIOR) })?;
    let version = version.v.unwrap_or(1);
    if version != R::VERSION {
        return Err(ActorError::UnsupportedVersion {
            behavior: R::BEHAVIOR.into(),
            version,
            supported: R::VERSION,
        });
    }
    serde_json::from_slice(payload)
        .map_err(|e| ActorError::BadPayload { reason: format!("{}: {e}", R::BEHAVIOR) })
}

/// Reads the answer to a request of type `R`.
pub fn decode_response<R: Request>(bytes: &[u8]) -> Result<R::Response, ActorError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ActorError::malformed(format!("answer to {}: {e}", R::BEHAVIOR)))
}

/// The reply payload of an answer.
pub fn respond<R: Request>(response: &R::Response) -> Reply {
    serde_json::to_vec(response).map_err(|e| ActorError::Internal { reason: e.to_string() })
}

/// Sends `request` to `to` as `actor` and waits up to `timeout` for the typed answer.
pub async fn call<R: Request>(
    actor: &Actor,
    to: &Handle,
    request: &R,
    timeout: Duration,
) -> Result<R::Response, ActorError> {
    let reply = actor.invoke(to, R::BEHAVIOR, encode(request)?, timeout).await?;
    decode_response::<R>(&reply)
}

/// Registers `handler` for requests of type `R` on `actor` (a concurrent behavior).
pub fn handle<R, F, Fut>(actor: &Actor, handler: F) -> Result<(), ActorError>
where
    R: Request,
    F: Fn(Message, R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Response, ActorError>> + Send + 'static,
{
    let handler = std::sync::Arc::new(handler);
    actor.behavior(R::BEHAVIOR, move |message| {
        let handler = handler.clone();
        async move {
            let request = decode::<R>(&message.envelope.payload)?;
            let response = handler(message, request).await?;
            respond::<R>(&response)
        }
    })
}

/// What `allocations` need together: CPU (millicores, each rounded up), memory and disk
/// in `Resources` (no GPUs), and how many GPUs. Orchestrators ask for it; providers
/// allocate it: one definition for both.
pub fn total<'a>(allocations: impl IntoIterator<Item = &'a Allocation>) -> (Resources, u32) {
    let mut sum = Resources::default();
    let mut gpus = 0u32;
    for allocation in allocations {
        let r = &allocation.resources;
        let millicores = (r.cpu.cores * 1000.0).ceil();
        sum.cpu_millicores = sum.cpu_millicores.saturating_add(if millicores.is_finite() {
            millicores as u64
        } else {
            0
        });
        sum.ram_bytes = sum.ram_bytes.saturating_add(r.ram.0);
        sum.disk_bytes = sum.disk_bytes.saturating_add(r.disk.map_or(0, |d| d.0));
        // Volumes take the provider's disk (tmpfs its memory) beside the workload's own.
        for volume in &allocation.volumes {
            let size = volume.size.map_or(0, |s| s.0);
            match volume.kind {
                dms_ensemble::model::VolumeKind::Volume => {
                    sum.disk_bytes = sum.disk_bytes.saturating_add(size)
                }
                dms_ensemble::model::VolumeKind::Tmpfs => {
                    sum.ram_bytes = sum.ram_bytes.saturating_add(size)
                }
                dms_ensemble::model::VolumeKind::Bind => {}
            }
        }
        gpus = gpus.saturating_add(r.gpus.iter().map(|g| g.count).sum::<u32>());
    }
    (sum, gpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_their_version_and_other_versions_are_refused_typed() {
        let revert = Revert { deployment: "d-1".into(), node: None };
        let wire = encode(&revert).expect("encodes");
        let text = String::from_utf8(wire.clone()).expect("JSON");
        assert!(text.contains("\"v\":1"), "{text}");
        assert_eq!(decode::<Revert>(&wire).expect("decodes").deployment, "d-1");
        let newer = br#"{"v": 2, "deployment": "d-1"}"#;
        match decode::<Revert>(newer) {
            Err(ActorError::UnsupportedVersion { behavior, version, supported }) => {
                assert_eq!((behavior.as_str(), version, supported), (REVERT, 2, 1));
            }
            other => panic!("expected a typed refusal, got {other:?}"),
        }
        // People's `dms actor cmd` sends no version: that is version 1.
        assert!(decode::<Revert>(br#"{"deployment": "d-1"}"#).is_ok());
        assert!(decode::<Start>(b"").is_ok(), "an empty payload is an empty request");
    }
}
