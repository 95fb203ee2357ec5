//! `dms-protocol`: the payloads of requests (decoded by [`dms_protocol::handle`] before
//! a typed behavior runs) and of answers (decoded by [`dms_protocol::call`]), for every
//! request type, plus what the receiving behaviors decode further: the ensemble of a
//! submitted deployment, the capability tokens of anchors and revocations.

use dms_protocol::{Request, allocation, cap, deployment, node, onboarding, peers};
use dms_ucan::{Chain, Limits};
use serde_json::Value;

use crate::Target;
use crate::targets::ucan;

/// [`dms_protocol::decode`] for every request type.
pub const REQUEST: Target =
    Target { name: "request", check: requests, generate: None, dictionary: DICTIONARY };

/// [`dms_protocol::decode_response`] for every request type.
pub const RESPONSE: Target =
    Target { name: "response", check: responses, generate: None, dictionary: DICTIONARY };

const DICTIONARY: &[&str] = &[
    "\"v\": 1, ",
    "\"v\": 2, ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "null",
    "true",
    "1e308",
    "-0",
    "18446744073709551616",
    "\"deployment\": \"d-1\"",
    "\"id\": \"d-1\"",
    "\"state\": ",
    "\"dmscap1.",
    "\"did:key:z6Mk",
    "\"\\u0000\"",
    "\"Ok\": ",
    "\"Err\": \"x\"",
];

/// Decodes `bytes` as a request `R` as [`dms_protocol::handle`] does; a decoded request
/// encodes, and decoding that encoding and encoding again gives the same JSON.
fn request<R: Request>(bytes: &[u8]) -> bool {
    let Ok(decoded) = dms_protocol::decode::<R>(bytes) else { return false };
    let wire = dms_protocol::encode(&decoded).expect("a decoded request encodes");
    let again = dms_protocol::decode::<R>(&wire)
        .unwrap_or_else(|e| panic!("{}: its own wire form does not decode: {e}", R::BEHAVIOR));
    let wire_again = dms_protocol::encode(&again).expect("a decoded request encodes");
    assert_eq!(json(&wire), json(&wire_again), "{}: decode → encode is stable", R::BEHAVIOR);
    true
}

/// Decodes `bytes` as the answer to `R` as [`dms_protocol::call`] does; the same
/// stability as [`request`].
fn response<R: Request>(bytes: &[u8]) -> bool {
    let Ok(decoded) = dms_protocol::decode_response::<R>(bytes) else { return false };
    let wire = dms_protocol::respond::<R>(&decoded).expect("a decoded answer encodes");
    let again = dms_protocol::decode_response::<R>(&wire)
        .unwrap_or_else(|e| panic!("answer to {}: its own form does not decode: {e}", R::BEHAVIOR));
    let wire_again = dms_protocol::respond::<R>(&again).expect("a decoded answer encodes");
    assert_eq!(json(&wire), json(&wire_again), "answer to {}: stable", R::BEHAVIOR);
    true
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("an encoding is JSON")
}

macro_rules! every_request {
    ($($request:ty),* $(,)?) => {
        /// Every request type, decoded as a request.
        fn each_request(bytes: &[u8]) -> bool {
            let mut accepted = false;
            $(accepted |= request::<$request>(bytes);)*
            accepted
        }

        /// Every request type's answer, decoded as an answer.
        fn each_response(bytes: &[u8]) -> bool {
            let mut accepted = false;
            $(accepted |= response::<$request>(bytes);)*
            accepted
        }
    };
}

every_request!(
    allocation::Restart,
    allocation::Start,
    allocation::StatusRequest,
    allocation::LogsRequest,
    allocation::Shutdown,
    allocation::Update,
    cap::ListContext,
    cap::Anchor,
    cap::Revoke,
    cap::Revocation,
    deployment::BidRequest,
    deployment::Commit,
    deployment::Allocate,
    deployment::Revert,
    node::NewDeployment,
    node::PlanDeployment,
    node::ListDeployments,
    node::DeploymentStatus,
    node::Manifest,
    node::DeploymentLogs,
    node::ShutdownDeployment,
    node::Prune,
    onboarding::Onboard,
    onboarding::Offboard,
    onboarding::GetOnboarding,
    onboarding::OnboardedResources,
    onboarding::FreeResources,
    onboarding::AllocatedResources,
    onboarding::HardwareSpec,
    onboarding::HardwareUsage,
    onboarding::Benchmark,
    peers::ListPeers,
    peers::SelfInfoRequest,
    peers::Connect,
    peers::Ping,
    peers::Dht,
    peers::Scores,
    peers::Hello,
    peers::BroadcastHello,
    peers::PublicStatus,
);

/// Every request decoder; then, for the requests whose behaviors decode more, that:
/// the submitted ensemble is checked (as the orchestrator does), the anchors' and the
/// revocation's tokens are parsed and used (as the node's capability behaviors do).
pub fn requests(bytes: &[u8]) -> bool {
    let accepted = each_request(bytes);
    if let Ok(submitted) = dms_protocol::decode::<node::NewDeployment>(bytes) {
        let _ = dms_ensemble::check(&submitted.ensemble);
    }
    if let Ok(anchor) = dms_protocol::decode::<cap::Anchor>(bytes) {
        for text in [anchor.require, anchor.provide].into_iter().flatten() {
            if let Ok(chain) = Chain::from_text(&text, Limits::default()) {
                ucan::exercise(&chain);
            }
        }
    }
    if let Ok(revocation) = dms_protocol::decode::<cap::Revocation>(bytes)
        && let Ok(chain) = Chain::from_text(&revocation.token, Limits::default())
    {
        ucan::exercise(&chain);
    }
    accepted
}

/// Every answer decoder.
pub fn responses(bytes: &[u8]) -> bool {
    each_response(bytes)
}
