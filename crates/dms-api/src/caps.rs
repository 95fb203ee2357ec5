//! Capability contexts through the API: while the daemon runs it holds the store, so
//! `dms cap ...` reads and writes contexts here. The CLI signs (it holds the user's
//! keys); the API only stores, with optimistic concurrency, and drops the daemon's
//! verified-chain cache when trust changes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use dms_store::Store;
use dms_ucan::{CapContext, Verifier, persist};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::routes::AppState;
use crate::{ApiError, ErrorBody};

/// Called after a context is stored, so the node can apply it to its running actors.
pub type OnChange = Arc<dyn Fn(&CapContext) + Send + Sync>;

/// What the capability routes need from the node.
#[derive(Clone)]
pub struct Caps {
    /// The node's store (contexts live in it).
    pub store: Store,
    /// The node's verifier, whose cache is cleared when a context changes.
    pub verifier: Arc<Verifier>,
    /// Told about every stored context.
    pub on_change: Option<OnChange>,
}

fn internal(error: dms_ucan::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", error.to_string())
}

fn caps(state: &AppState) -> Result<&Caps, ApiError> {
    state
        .caps
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("capability contexts are not served by this daemon"))
}

/// All capability contexts (as JSON; tokens in their `dmscap1.` text form).
#[utoipa::path(get, path = "/api/v1/cap/contexts", tag = "cap",
    responses((status = 200, description = "Every context"), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<CapContext>>, ApiError> {
    let caps = caps(&state)?;
    persist::list(&caps.store).map(Json).map_err(internal)
}

/// One capability context.
#[utoipa::path(get, path = "/api/v1/cap/contexts/{name}", tag = "cap",
    params(("name" = String, Path, description = "Context name")),
    responses((status = 200, description = "The context"), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CapContext>, ApiError> {
    let caps = caps(&state)?;
    persist::load(&caps.store, &name).map_err(internal)?.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no capability context '{name}'; create it with `dms cap new {name}`"),
        )
    })
}

/// The version the writer started from; absent when creating.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct Expected {
    /// Version of the context the change is based on.
    expected_version: Option<u64>,
}

/// Stores a context if it still has the expected version (409 otherwise).
#[utoipa::path(put, path = "/api/v1/cap/contexts/{name}", tag = "cap",
    params(("name" = String, Path, description = "Context name"), Expected),
    request_body(content = serde_json::Value, description = "The context, as `dms cap list --output json` shows it"),
    responses((status = 204, description = "Stored"), (status = 409, body = ErrorBody)))]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(expected): Query<Expected>,
    Json(body): Json<serde_json::Value>,
) -> Result<StatusCode, ApiError> {
    let caps = caps(&state)?;
    let context: CapContext = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("not a capability context: {e}"),
        )
    })?;
    if context.name != name {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("body is context '{}', path says '{name}'", context.name),
        ));
    }
    persist::save(&caps.store, &context, expected.expected_version)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()))?;
    caps.verifier.clear();
    if let Some(on_change) = &caps.on_change {
        on_change(&context);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a context.
#[utoipa::path(delete, path = "/api/v1/cap/contexts/{name}", tag = "cap",
    params(("name" = String, Path, description = "Context name")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caps = caps(&state)?;
    if persist::remove(&caps.store, &name).map_err(internal)? {
        caps.verifier.clear();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no capability context '{name}'"),
        ))
    }
}
