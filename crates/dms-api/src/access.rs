//! The gate in front of every route. Clients on the Unix socket pass (the socket's
//! permissions admitted them, see [`crate::socket`]). Loopback peers must present the daemon's local
//! token (kept 0600 in its home, so only its user's CLI can read it) — except for the
//! public routes `/health` and `/api/v1/openapi.json`, and the dashboard's `/dashboard`
//! paths, which check their own session ([`crate::dashboard`]); other local users are
//! refused 401. Non-loopback peers are refused unless remote access is enabled, and then must
//! present the remote bearer token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::ApiError;

/// What the gate needs from the configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Admit non-loopback peers that present `token`.
    pub allow_remote: bool,
    /// The bearer token for remote peers.
    pub token: Arc<str>,
    /// The token loopback peers must present (none: loopback is trusted, as in tests
    /// that serve the API alone).
    pub local_token: Option<Arc<str>>,
}

/// Marks a request that came through the API's Unix socket: the socket's file
/// permissions (and the peer's credentials) admitted it, so it needs no token.
#[derive(Clone, Copy, Debug)]
pub struct LocalSocket;

/// Routes anyone who reaches the API may call: liveness and the API's description.
pub const PUBLIC_ROUTES: [&str; 2] = ["/health", "/api/v1/openapi.json"];

/// Why a request was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The peer is not on loopback and remote access is off.
    RemoteDisabled(IpAddr),
    /// The peer is remote and presented no token or a wrong one.
    BadToken(IpAddr),
    /// The peer is on this machine but did not present the local token.
    NoLocalToken,
}

impl Policy {
    /// Decides whether a request from `peer` with the given `Authorization` header
    /// value may proceed.
    pub fn check(
        &self,
        peer: IpAddr,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<(), Denial> {
        let presented = authorization.and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
        let remote_ok = self.allow_remote && same(presented, &self.token);
        if is_loopback(peer) {
            let local_ok = self.local_token.as_deref().is_none_or(|t| same(presented, t));
            let public = PUBLIC_ROUTES.contains(&path) || crate::dashboard::is_dashboard(path);
            return if public || local_ok || remote_ok {
                Ok(())
            } else {
                Err(Denial::NoLocalToken)
            };
        }
        if !self.allow_remote {
            return Err(Denial::RemoteDisabled(peer));
        }
        // The dashboard's paths check their own session (remote access being on).
        if remote_ok || crate::dashboard::is_dashboard(path) {
            Ok(())
        } else {
            Err(Denial::BadToken(peer))
        }
    }
}

/// Whether `presented` is `token` (never for an empty token), in constant time.
pub(crate) fn same(presented: &str, token: &str) -> bool {
    !token.is_empty() && bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

/// True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (`::ffff:127.0.0.1`).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        match self {
            Denial::RemoteDisabled(ip) => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "requests from {ip} are refused: the dms API serves loopback clients only; \
                     enable api.allow_remote (with api.token) on the daemon to allow remote access"
                ),
            )
            .into_response(),
            Denial::NoLocalToken => {
                let mut response = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "local clients need `Authorization: Bearer <token>` with the token the \
                     daemon keeps in $DMS_HOME/api.token (readable by its user only); the dms \
                     CLI of that user sends it, or set DMS_API_TOKEN",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                response
            }
            Denial::BadToken(ip) => {
                let mut response = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    format!(
                        "requests from {ip} need `Authorization: Bearer <api.token>`; the token \
                         was missing or wrong"
                    ),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                response
            }
        }
    }
}

/// Axum middleware applying [`Policy`] to every request.
pub async fn gate(
    State(policy): State<Policy>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if request.extensions().get::<LocalSocket>().is_some() {
        return next.run(request).await;
    }
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match policy.check(peer.ip(), request.uri().path(), authorization) {
        Ok(()) => next.run(request).await,
        Err(denial) => {
            tracing::warn!(peer = %peer, ?denial, "API request refused.");
            denial.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_remote: bool) -> Policy {
        Policy { allow_remote, token: Arc::from("0123456789abcdef"), local_token: None }
    }

    #[test]
    fn loopback_passes_without_a_local_token_configured() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().expect("test address");
            assert_eq!(policy(false).check(ip, "/api/v1/info", None), Ok(()), "{ip}");
        }
    }

    #[test]
    fn loopback_needs_the_local_token_except_for_public_routes() {
        let ip: IpAddr = "127.0.0.1".parse().expect("test address");
        let local = Policy { local_token: Some(Arc::from("local-secret")), ..policy(false) };
        assert_eq!(local.check(ip, "/api/v1/info", None), Err(Denial::NoLocalToken));
        assert_eq!(local.check(ip, "/api/v1/info", Some("Bearer nope")), Err(Denial::NoLocalToken));
        assert_eq!(local.check(ip, "/api/v1/info", Some("Bearer local-secret")), Ok(()));
        assert_eq!(local.check(ip, "/health", None), Ok(()));
        assert_eq!(local.check(ip, "/api/v1/openapi.json", None), Ok(()));
        // With remote access on, the remote token serves on loopback too.
        let both = Policy { allow_remote: true, ..local };
        assert_eq!(both.check(ip, "/api/v1/info", Some("Bearer 0123456789abcdef")), Ok(()));
    }

    #[test]
    fn remote_refused_unless_enabled_and_token_matches() {
        let ip: IpAddr = "192.0.2.7".parse().expect("test address");
        assert_eq!(policy(false).check(ip, "/health", None), Err(Denial::RemoteDisabled(ip)));
        assert_eq!(
            policy(false).check(ip, "/health", Some("Bearer 0123456789abcdef")),
            Err(Denial::RemoteDisabled(ip))
        );
        assert_eq!(policy(true).check(ip, "/health", None), Err(Denial::BadToken(ip)));
        assert_eq!(
            policy(true).check(ip, "/health", Some("Bearer wrong")),
            Err(Denial::BadToken(ip))
        );
        assert_eq!(
            policy(true).check(ip, "/health", Some("0123456789abcdef")),
            Err(Denial::BadToken(ip))
        );
        assert_eq!(policy(true).check(ip, "/health", Some("Bearer 0123456789abcdef")), Ok(()));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("test address");
        assert_eq!(
            policy(false).check(mapped, "/health", None),
            Err(Denial::RemoteDisabled(mapped))
        );
    }

    #[test]
    fn empty_token_never_matches() {
        let ip: IpAddr = "192.0.2.7".parse().expect("test address");
        let open = Policy { allow_remote: true, token: Arc::from(""), local_token: None };
        assert_eq!(open.check(ip, "/health", Some("Bearer ")), Err(Denial::BadToken(ip)));
    }
}
