//! Handlers and the OpenAPI document generated from them.
//!
//! Every route is declared with `#[utoipa::path]` and registered through
//! [`utoipa_axum::router::OpenApiRouter`], so the document at `/api/v1/openapi.json` is
//! built from the same code that serves the requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, ErrorBody};

/// What the node tells the API about itself at start-up.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node's DID (`did:key:...`).
    pub did: String,
    /// The dms version string.
    pub version: String,
    /// When the node started (monotonic, for uptime).
    pub started: Instant,
    /// When the node started (wall clock, for display).
    pub started_at: SystemTime,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) node: Arc<NodeInfo>,
    pub(crate) api_addr: SocketAddr,
    pub(crate) openapi: Arc<str>,
    pub(crate) caps: Option<crate::caps::Caps>,
    pub(crate) relay: Option<crate::actor::Relay>,
    pub(crate) sessions: Arc<crate::dashboard::Sessions>,
}

/// Answer of `GET /health`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the daemon answers.
    pub status: String,
}

/// Answer of `GET /api/v1/info`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Info {
    /// The dms version of the daemon.
    pub version: String,
    /// The node's DID.
    pub did: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// When the daemon started, in seconds since the Unix epoch.
    pub started_at: u64,
    /// The address the API listens on.
    pub api_addr: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dms local API",
        description = "The local REST API of the dms daemon. \
        Served on its owner-only Unix socket ($DMS_HOME/api.sock, no token), and on \
        loopback TCP to clients presenting the daemon's local token; remote clients only \
        when remote access is enabled, with a bearer token. \
        Every error answer, whatever its status (400, 401, 403, 404, 405, 408, 413, 414, \
        415, 422, 429, 5xx), has the JSON body ErrorBody: a stable `error` code and a \
        `message` saying what happened and what to do. A request target over 8 KiB is \
        answered 414. Only a request head the HTTP layer cannot read at all (over 64 KiB, \
        or not HTTP/1.1) is answered by it with 431 or 400 and no body, then closed; a \
        head not complete within 5 s, or an idle kept-alive connection after 5 s, is \
        closed without an answer."
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// Liveness probe: answers as soon as the daemon serves requests.
#[utoipa::path(get, path = "/health", tag = "node",
    responses((status = 200, description = "The daemon is up", body = Health),
              (status = 403, description = "Non-loopback client", body = ErrorBody)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Version, DID and uptime of the daemon.
#[utoipa::path(get, path = "/api/v1/info", tag = "node",
    responses((status = 200, description = "Node information", body = Info),
              (status = 403, description = "Non-loopback client", body = ErrorBody)))]
async fn info(State(state): State<AppState>) -> Json<Info> {
    let node = &state.node;
    let started_at =
        node.started_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    Json(Info {
        version: node.version.clone(),
        did: node.did.clone(),
        uptime_secs: node.started.elapsed().as_secs(),
        started_at,
        api_addr: state.api_addr.to_string(),
    })
}

/// The node's metrics in the Prometheus text format (version 0.0.4): resources,
/// deployments and allocations by state, bids, messages, events and their sinks. Access
/// as for every other route: Prometheus on this machine presents the local token
/// (`authorization: {credentials_file: <home>/api.token}` in its scrape config).
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
              (status = 401, description = "No local token", body = ErrorBody)))]
async fn metrics() -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", dms_telemetry::metrics::CONTENT_TYPE)], dms_telemetry::metrics::render())
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API")))]
async fn openapi_json(
    State(state): State<AppState>,
) -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "application/json")], state.openapi.to_string())
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {uri}; the routes are listed at /api/v1/openapi.json"),
    )
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(info))
        .routes(routes!(openapi_json))
        .routes(routes!(metrics))
        .routes(routes!(crate::caps::list))
        .routes(routes!(crate::caps::get, crate::caps::put, crate::caps::delete))
        .routes(routes!(crate::actor::handle))
        .routes(routes!(crate::actor::resolve))
        .routes(routes!(crate::actor::send))
        .routes(routes!(crate::actor::invoke))
        .routes(routes!(crate::actor::broadcast))
        .routes(routes!(crate::dashboard::login))
}

/// The OpenAPI document of the API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_router().into_openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// Builds the axum router with its state; access control and limits are layered on by
/// the server.
pub(crate) fn router(
    node: Arc<NodeInfo>,
    api_addr: SocketAddr,
    caps: Option<crate::caps::Caps>,
    relay: Option<crate::actor::Relay>,
) -> axum::Router {
    let (router, mut doc) = api_router().split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let openapi: Arc<str> = doc.to_pretty_json().unwrap_or_else(|_| "{}".into()).into();
    let sessions = Arc::default();
    router.merge(crate::dashboard::routes()).fallback(not_found).with_state(AppState {
        node,
        api_addr,
        openapi,
        caps,
        relay,
        sessions,
    })
}
