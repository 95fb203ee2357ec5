//! Capability contexts through the API: while the daemon runs it holds the store, so
//! `dms cap ...` reads and writes contexts here. The CLI signs (it holds the user's
//! keys); the API relays every change to the node's one write path
//! ([`dms_ucan::Contexts`]), which stores it with optimistic concurrency and puts it in
//! force in every running actor before the request is answered.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use dms_ucan::{CapContext, Contexts};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::routes::AppState;
use crate::{ApiError, ErrorBody};

/// What the capability routes need from the node.
#[derive(Clone)]
pub struct Caps {
    /// The node's capability contexts: the one write path to them.
    pub contexts: Arc<Contexts>,
}

fn internal(error: dms_ucan::Error) -> ApiError {
    match error {
        dms_ucan::Error::Conflict(message) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", message)
        }
        error => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", error.to_string()),
    }
}

/// Runs a blocking store operation off the async threads.
async fn blocking<T: Send + 'static>(
    caps: &Caps,
    op: impl FnOnce(&Contexts) -> Result<T, dms_ucan::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let contexts = caps.contexts.clone();
    tokio::task::spawn_blocking(move || op(&contexts))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(internal)
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
    blocking(caps, |c| c.list()).await.map(Json)
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
    let key = name.clone();
    blocking(caps, move |c| c.load(&key)).await?.map(Json).ok_or_else(|| {
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
    let expected = expected.expected_version;
    blocking(caps, move |c| c.save(context, expected)).await?;
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
    let key = name.clone();
    if blocking(caps, move |c| c.remove(&key)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no capability context '{name}'"),
        ))
    }
}
