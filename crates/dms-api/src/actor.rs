//! The actor relay: `/api/v1/actor/{handle,send,invoke,broadcast}`.
//!
//! The CLI signs envelopes with the user's key (the daemon never sees it) and posts
//! their canonical encoding (`application/cbor`); the node relays them through its
//! router and hands back what came back. The API adds no authority of its own: the
//! receivers authorize every envelope by the capability chain inside it.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dms_actor::{ActorError, Handle, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::routes::AppState;
use crate::{ApiError, ErrorBody};

/// What the relay routes need from the node.
#[derive(Clone)]
pub struct Relay {
    /// The node's router.
    pub router: Router,
    /// The node's root actor (what `dms actor cmd` talks to by default).
    pub root: Handle,
    /// Longest wait for replies; below the API's request timeout so that a slow peer is
    /// reported as a relay timeout, not a cut connection.
    pub max_wait: Duration,
    /// The root actor of a node named by peer id or DID (the node knows how the network
    /// derives one from the other; the CLI does not).
    pub resolve: Resolve,
    /// What the web dashboard reads through (none: no dashboard).
    pub dashboard: Option<crate::dashboard::Dashboard>,
}

/// Names a node's root actor from a peer id or a DID; the error says what is wrong.
pub type Resolve = std::sync::Arc<dyn Fn(&str) -> Result<Handle, String> + Send + Sync>;

/// `?dest=` of `/api/v1/actor/resolve`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(crate) struct Dest {
    /// A peer id or a `did:key` DID.
    dest: String,
}

/// Most replies one relayed broadcast collects.
pub const MAX_BROADCAST_REPLIES: usize = 1024;

fn relay(state: &AppState) -> Result<&Relay, ApiError> {
    state.relay.as_ref().ok_or_else(|| {
        ApiError::unavailable("this daemon runs no actor runtime (network disabled)")
    })
}

/// The HTTP status that says what an actor error means.
fn status_of(error: &ActorError) -> StatusCode {
    match error {
        ActorError::Unauthorized { .. } => StatusCode::FORBIDDEN,
        ActorError::UnknownBehavior { .. } | ActorError::NoSuchActor { .. } => {
            StatusCode::NOT_FOUND
        }
        ActorError::RateLimited { .. } | ActorError::Quota { .. } => StatusCode::TOO_MANY_REQUESTS,
        ActorError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ActorError::Replayed { .. } => StatusCode::CONFLICT,
        ActorError::Expired { .. }
        | ActorError::Spoofed { .. }
        | ActorError::BadSignature
        | ActorError::Malformed { .. }
        | ActorError::BadPayload { .. }
        | ActorError::UnsupportedVersion { .. } => StatusCode::BAD_REQUEST,
        ActorError::Busy | ActorError::Closed => StatusCode::SERVICE_UNAVAILABLE,
        ActorError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        ActorError::Transport { .. } => StatusCode::BAD_GATEWAY,
        ActorError::Handler { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ActorError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An actor error as an API error: the stable code, the sentence, and the typed error
/// in `detail` for clients that want it.
pub fn actor_error(error: ActorError) -> ApiError {
    let mut api = ApiError::new(status_of(&error), error.code(), error.to_string());
    api.body.detail = serde_json::to_value(&error).ok();
    api
}

/// The handle of the node's root actor: sign envelopes `from` this node's peer.
#[utoipa::path(get, path = "/api/v1/actor/handle", tag = "actor",
    responses((status = 200, description = "`{did, peer, inbox}` of the root actor"),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn handle(State(state): State<AppState>) -> Result<Json<Handle>, ApiError> {
    Ok(Json(relay(&state)?.root.clone()))
}

/// The root actor of the node named by `dest` (a peer id or a DID).
#[utoipa::path(get, path = "/api/v1/actor/resolve", tag = "actor", params(Dest),
    responses((status = 200, description = "`{did, peer, inbox}` of that node's root actor"),
              (status = 400, body = ErrorBody)))]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    axum::extract::Query(dest): axum::extract::Query<Dest>,
) -> Result<Json<Handle>, ApiError> {
    let relay = relay(&state)?;
    (relay.resolve)(&dest.dest)
        .map(Json)
        .map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", reason))
}

/// Relays a signed envelope without waiting for an answer.
#[utoipa::path(post, path = "/api/v1/actor/send", tag = "actor",
    request_body(content = Vec<u8>, content_type = "application/cbor",
        description = "A signed envelope in canonical DAG-CBOR"),
    responses((status = 202, description = "Handed to the recipient's node"),
              (status = 400, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(crate) async fn send(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    relay(&state)?.router.relay_send(&body).await.map_err(actor_error)?;
    Ok(StatusCode::ACCEPTED)
}

/// Relays a signed invocation and answers with the reply payload (JSON by convention),
/// or with the typed refusal (`unauthorized`, `expired`, `unknown_behavior`, ...).
#[utoipa::path(post, path = "/api/v1/actor/invoke", tag = "actor",
    request_body(content = Vec<u8>, content_type = "application/cbor",
        description = "A signed envelope with reply_to /dms/actor/reply/<nonce>"),
    responses((status = 200, description = "The reply payload"),
              (status = 403, description = "Refused by the recipient: not authorized", body = ErrorBody),
              (status = 404, description = "No such behavior or actor", body = ErrorBody),
              (status = 429, description = "Rate limited", body = ErrorBody),
              (status = 504, description = "No reply before the envelope expired", body = ErrorBody)))]
pub(crate) async fn invoke(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let relay = relay(&state)?;
    let payload = relay.router.relay_invoke(&body, relay.max_wait).await.map_err(actor_error)?;
    Ok(payload_response(payload))
}

fn payload_response(payload: Vec<u8>) -> Response {
    let kind =
        if payload.is_empty() || serde_json::from_slice::<serde_json::Value>(&payload).is_ok() {
            "application/json"
        } else {
            "application/octet-stream"
        };
    ([(header::CONTENT_TYPE, kind)], payload).into_response()
}

/// One answer to a relayed broadcast.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastAnswer {
    /// Who answered (`{did, peer, inbox}`).
    #[schema(value_type = Object)]
    pub from: Handle,
    /// The reply payload, when it is JSON and the behavior succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub reply: Option<serde_json::Value>,
    /// The typed refusal or failure, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<ActorError>,
}

/// Relays a signed broadcast; when it asks for replies, collects them until it expires.
#[utoipa::path(post, path = "/api/v1/actor/broadcast", tag = "actor",
    request_body(content = Vec<u8>, content_type = "application/cbor",
        description = "A signed envelope with a topic and no recipient"),
    responses((status = 200, description = "Every reply that came back in time", body = Vec<BroadcastAnswer>),
              (status = 400, body = ErrorBody)))]
pub(crate) async fn broadcast(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Vec<BroadcastAnswer>>, ApiError> {
    let relay = relay(&state)?;
    let replies = relay
        .router
        .relay_broadcast(&body, relay.max_wait, MAX_BROADCAST_REPLIES)
        .await
        .map_err(actor_error)?;
    let answers = replies
        .into_iter()
        .map(|r| match r.reply {
            Ok(bytes) => BroadcastAnswer {
                from: r.from,
                reply: Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    serde_json::Value::String(format!("{} bytes", bytes.len()))
                })),
                error: None,
            },
            Err(error) => BroadcastAnswer { from: r.from, reply: None, error: Some(error) },
        })
        .collect();
    Ok(Json(answers))
}
