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

/// Most of a non-JSON error body kept as the message.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Longest request target (path and query) served; longer ones get 414. (A request
/// head beyond [`crate::conn::MAX_HEAD_BYTES`] is refused by the HTTP layer itself:
/// 431 with no body, as it is not a request the API could read.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The outermost layer: every error answer has the [`ErrorBody`] shape, also the ones
/// made below the handlers (405 from routing, 413 from the body limit, 408 from the
/// timeout, 400/415/422 from extractor rejections, which answer in plain text or with
/// an empty body). A JSON error passes unchanged; any other becomes `{error, message}`,
/// its text kept as the message.
pub(crate) async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let length = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the request path and query are {length} bytes; at most {MAX_URI_BYTES} are served"
            ),
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let (code, default) = describe(status);
    let message = if text.is_empty() { default.to_string() } else { text };
    let mut shaped = ApiError::new(status, code, message).into_response();
    // Keep what the client needs beside the body (Allow on 405, WWW-Authenticate, …).
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            shaped.headers_mut().append(name.clone(), value.clone());
        }
    }
    shaped
}

/// The stable code of an error status, and what to say when its answer had no text.
fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("bad_request", "the request could not be read"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "the request needs a valid token"),
        StatusCode::FORBIDDEN => ("forbidden", "the request is refused"),
        StatusCode::NOT_FOUND => ("not_found", "no such route; see /api/v1/openapi.json"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method; the Allow header lists the ones it takes",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took longer than api.request_timeout; try again, or raise it",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "the request body is larger than api.max_body_bytes")
        }
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request path is too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "the request body has the wrong Content-Type")
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            ("unprocessable_entity", "the request body does not have the expected fields")
        }
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests; slow down"),
        s if s.is_server_error() => ("internal", "the daemon failed to answer; see its log"),
        _ => ("error", "the request failed"),
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
    /// The Unix socket could not be set up. Nothing is listening.
    #[error("cannot serve the API on the socket {}: {source}", path.display())]
    Socket {
        /// The socket's path (`api.socket`).
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The configuration breaks a rule; the message names the keys.
    #[error("invalid API configuration: {0}")]
    Config(String),
    /// Accepting or serving connections failed; the server has stopped.
    #[error("API server failed: {0}")]
    Serve(#[source] std::io::Error),
}
