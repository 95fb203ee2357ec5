//! The web dashboard: a page the daemon serves at `/dashboard/`, with the same owner-only
//! access as the rest of the API and no new exposure.
//!
//! **Login.** Only a client that may call the API (the CLI of the daemon's user, with the
//! local token) can ask `POST /api/v1/dashboard/login` for a one-time login token, valid
//! for [`LOGIN_TTL`]. `dms dashboard --url` prints it inside the URL's *fragment*
//! (`/dashboard/#login=…`), which browsers never send to a server, so it lands in no log.
//! The page trades it once, `POST /dashboard/session`, for a session token that it keeps
//! in the tab's `sessionStorage` and sends as `Authorization: Bearer` with every read.
//! No cookie is set: cookies are shared by every port of a host, so a page another local
//! user serves on `127.0.0.1` would receive them; `sessionStorage` is per origin, port
//! included. Nothing ambient authorizes a request, so there is nothing to forge (CSRF).
//!
//! **Reads only.** `GET /dashboard/api/call?behavior=…&payload=…` invokes one of the
//! node's read-only behaviors ([`Dashboard::readable`], named by the node) on its root
//! actor, signed by an actor holding the node's key; anything else is refused 403. The
//! page's HTML, script and style are compiled into the binary (no CDN) and carry no data.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use dms_actor::{Actor, Handle};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::same;
use crate::routes::AppState;
use crate::{ApiError, ErrorBody};

/// How long a login token may wait to be used.
pub const LOGIN_TTL: Duration = Duration::from_secs(120);
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most unused login tokens kept (the oldest goes first).
const MAX_LOGINS: usize = 16;
/// Most sessions kept (the oldest goes first).
const MAX_SESSIONS: usize = 64;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// What the dashboard needs from the node.
#[derive(Clone)]
pub struct Dashboard {
    /// Signs the page's reads (holds the node's key; it is the node reading itself).
    pub actor: Actor,
    /// The node's root actor, which answers them.
    pub root: Handle,
    /// The behaviors the page may invoke: read-only ones.
    pub readable: Vec<String>,
    /// Longest wait for an answer.
    pub max_wait: Duration,
}

/// Login tokens and sessions, in memory only: a restart of the daemon logs every page
/// out (it also changes the local token).
#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<Tokens>,
}

#[derive(Default)]
struct Tokens {
    logins: Vec<(String, Instant)>,
    sessions: Vec<(String, Instant)>,
}

fn fresh() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Drops expired entries, then the oldest while there are `max` or more; adds `token`,
/// valid until `until`.
fn admit(
    list: &mut Vec<(String, Instant)>,
    token: String,
    now: Instant,
    until: Instant,
    max: usize,
) {
    list.retain(|(_, expiry)| *expiry > now);
    while list.len() >= max {
        list.remove(0);
    }
    list.push((token, until));
}

impl Sessions {
    /// A new one-time login token.
    pub(crate) fn login(&self, now: Instant) -> String {
        let token = fresh();
        let mut tokens = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        admit(&mut tokens.logins, token.clone(), now, now + LOGIN_TTL, MAX_LOGINS);
        token
    }

    /// Trades a login token, once, for a session token.
    pub(crate) fn redeem(&self, login: &str, now: Instant) -> Option<String> {
        let mut tokens = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let at = tokens.logins.iter().position(|(t, until)| same(t, login) && *until > now)?;
        tokens.logins.remove(at);
        let session = fresh();
        admit(&mut tokens.sessions, session.clone(), now, now + SESSION_TTL, MAX_SESSIONS);
        Some(session)
    }

    /// Whether `session` is a live session.
    pub(crate) fn valid(&self, session: &str, now: Instant) -> bool {
        let tokens = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        !session.is_empty()
            && tokens.sessions.iter().any(|(t, until)| same(t, session) && *until > now)
    }
}

/// Answer of `POST /api/v1/dashboard/login`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Login {
    /// Path and fragment to open on the API's address (`/dashboard/#login=<token>`).
    pub path: String,
    /// Seconds the login token stays usable; it works once.
    pub expires_in_secs: u64,
}

/// A one-time login token for the web dashboard, inside the path to open.
#[utoipa::path(post, path = "/api/v1/dashboard/login", tag = "dashboard",
    responses((status = 200, description = "A one-time login", body = Login),
              (status = 401, description = "No local token", body = ErrorBody),
              (status = 503, description = "This daemon serves no dashboard", body = ErrorBody)))]
pub(crate) async fn login(State(state): State<AppState>) -> Result<Json<Login>, ApiError> {
    dashboard(&state)?;
    let token = state.sessions.login(Instant::now());
    Ok(Json(Login {
        path: format!("/dashboard/#login={token}"),
        expires_in_secs: LOGIN_TTL.as_secs(),
    }))
}

fn dashboard(state: &AppState) -> Result<&Dashboard, ApiError> {
    state.relay.as_ref().and_then(|r| r.dashboard.as_ref()).ok_or_else(|| {
        ApiError::unavailable("this daemon serves no dashboard (its network is disabled)")
    })
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

const LOG_IN_AGAIN: &str = "this dashboard session is missing or expired; run `dms dashboard` \
     (or `dms dashboard --url`) for a new login link";

/// `POST /dashboard/session`: the login token (the body, as text) for a session token.
async fn session(State(state): State<AppState>, body: Bytes) -> Result<Json<Session>, ApiError> {
    let login = std::str::from_utf8(&body).unwrap_or_default().trim();
    match state.sessions.redeem(login, Instant::now()) {
        Some(token) => Ok(Json(Session { token, expires_in_secs: SESSION_TTL.as_secs() })),
        None => Err(unauthorized(
            "this login link was used already or has expired (they work once, for 2 minutes); \
             run `dms dashboard` (or `dms dashboard --url`) for a new one",
        )),
    }
}

/// A dashboard session.
#[derive(Serialize)]
struct Session {
    token: String,
    expires_in_secs: u64,
}

fn check_session(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if state.sessions.valid(presented, Instant::now()) {
        Ok(())
    } else {
        Err(unauthorized(LOG_IN_AGAIN))
    }
}

/// `?behavior=&payload=` of `/dashboard/api/call`.
#[derive(Deserialize)]
struct Call {
    behavior: String,
    #[serde(default)]
    payload: String,
}

/// `GET /dashboard/api/call`: one read-only behavior of the node, answered as JSON.
async fn call(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(call): Query<Call>,
) -> Result<Response, ApiError> {
    check_session(&state, &headers)?;
    let dashboard = dashboard(&state)?;
    if !dashboard.readable.contains(&call.behavior) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the dashboard only reads; {} is not one of its behaviors ({})",
                call.behavior,
                dashboard.readable.join(", ")
            ),
        ));
    }
    let reply = dashboard
        .actor
        .invoke(&dashboard.root, &call.behavior, call.payload.into_bytes(), dashboard.max_wait)
        .await
        .map_err(crate::actor::actor_error)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], reply).into_response())
}

/// `GET /dashboard/api/caps`: the capability contexts (anchors, grants, revocations).
async fn caps(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_session(&state, &headers)?;
    Ok(crate::caps::list(State(state)).await?.into_response())
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// The dashboard's routes (outside the OpenAPI document: a page, not an API; its one
/// API route, the login, is in it). The gate lets `/dashboard` paths through; reads
/// check the session here.
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/dashboard", get(|| async { Redirect::permanent("/dashboard/") }))
        .route("/dashboard/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/dashboard/app.js", get(|| async { asset("text/javascript", SCRIPT) }))
        .route("/dashboard/app.css", get(|| async { asset("text/css", STYLE) }))
        .route("/dashboard/session", post(session))
        .route("/dashboard/api/call", get(call))
        .route("/dashboard/api/caps", get(caps))
}

/// Whether `path` is one of the dashboard's own (which check their session themselves).
pub fn is_dashboard(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_works_once_and_only_in_time() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let login = sessions.login(t0);
        assert!(sessions.redeem("nope", t0).is_none());
        let session = sessions.redeem(&login, t0 + Duration::from_secs(1)).expect("redeemed");
        assert!(sessions.valid(&session, t0 + Duration::from_secs(2)));
        assert!(sessions.redeem(&login, t0 + Duration::from_secs(2)).is_none(), "used once");
        assert!(!sessions.valid(&session, t0 + SESSION_TTL + Duration::from_secs(2)));
        assert!(!sessions.valid("", t0), "an empty token is never a session");

        // Two links asked for one after the other both work.
        let (a, b) = (sessions.login(t0), sessions.login(t0 + Duration::from_secs(1)));
        assert!(sessions.redeem(&a, t0 + Duration::from_secs(2)).is_some());
        assert!(sessions.redeem(&b, t0 + Duration::from_secs(2)).is_some());

        let late = sessions.login(t0);
        assert!(sessions.redeem(&late, t0 + LOGIN_TTL + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn tokens_are_bounded_oldest_first() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.login(t0);
        for _ in 0..MAX_LOGINS {
            sessions.login(t0);
        }
        assert!(sessions.redeem(&first, t0).is_none(), "the oldest login was dropped");
        let tokens = sessions.inner.lock().expect("lock");
        assert_eq!(tokens.logins.len(), MAX_LOGINS);
    }

    #[test]
    fn dashboard_paths() {
        assert!(is_dashboard("/dashboard"));
        assert!(is_dashboard("/dashboard/api/call"));
        assert!(!is_dashboard("/dashboards"));
        assert!(!is_dashboard("/api/v1/dashboard/login"));
    }
}
