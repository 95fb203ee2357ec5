//! Errors: the JSON body of every failed request, and start-up failures.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every non-2xx answer. `error` is a stable machine-readable code,
/// `message` a sentence for people that says what happened and what to do.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. `forbidden`, `unauthorized`, `not_found`.
    pub error: String,
    /// What happened and what to do about it.
    pub message: String,
    /// Structured detail for programs (the typed actor error, for relay routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

/// A failed request: an HTTP status and an [`ErrorBody`].
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// The JSON body.
    pub body: ErrorBody,
}

impl ApiError {
    /// Builds an error answer with `status`, a stable `code` and a human `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody { error: code.into(), message: message.into(), detail: None },
        }
    }
}

impl ApiError {
    /// 503: this daemon does not serve what the route needs (`message` says what).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Failures to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound. Nothing is listening.
    #[error(
        "cannot listen on {addr}: {source} (is another dms daemon using it? pick another with --api-addr)"
    )]
    Bind {
        /// The address from the configuration.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration breaks a rule; the message names the keys.
    #[error("invalid API configuration: {0}")]
    Config(String),
    /// Accepting or serving connections failed; the server has stopped.
    #[error("API server failed: {0}")]
    Serve(#[source] std::io::Error),
}
