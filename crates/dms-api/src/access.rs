//! The gate in front of every route: loopback peers pass; others are refused unless
//! remote access is enabled, and then must present the bearer token.

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
}

/// Why a request was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The peer is not on loopback and remote access is off.
    RemoteDisabled(IpAddr),
    /// The peer is remote and presented no token or a wrong one.
    BadToken(IpAddr),
}

impl Policy {
    /// Decides whether a request from `peer` with the given `Authorization` header
    /// value may proceed.
    pub fn check(&self, peer: IpAddr, authorization: Option<&str>) -> Result<(), Denial> {
        if is_loopback(peer) {
            return Ok(());
        }
        if !self.allow_remote {
            return Err(Denial::RemoteDisabled(peer));
        }
        let presented = authorization.and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
        let ok =
            !self.token.is_empty() && bool::from(presented.as_bytes().ct_eq(self.token.as_bytes()));
        if ok { Ok(()) } else { Err(Denial::BadToken(peer)) }
    }
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
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match policy.check(peer.ip(), authorization) {
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
        Policy { allow_remote, token: Arc::from("0123456789abcdef") }
    }

    #[test]
    fn loopback_always_passes() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().expect("test address");
            assert_eq!(policy(false).check(ip, None), Ok(()), "{ip}");
        }
    }

    #[test]
    fn remote_refused_unless_enabled_and_token_matches() {
        let ip: IpAddr = "192.0.2.7".parse().expect("test address");
        assert_eq!(policy(false).check(ip, None), Err(Denial::RemoteDisabled(ip)));
        assert_eq!(
            policy(false).check(ip, Some("Bearer 0123456789abcdef")),
            Err(Denial::RemoteDisabled(ip))
        );
        assert_eq!(policy(true).check(ip, None), Err(Denial::BadToken(ip)));
        assert_eq!(policy(true).check(ip, Some("Bearer wrong")), Err(Denial::BadToken(ip)));
        assert_eq!(policy(true).check(ip, Some("0123456789abcdef")), Err(Denial::BadToken(ip)));
        assert_eq!(policy(true).check(ip, Some("Bearer 0123456789abcdef")), Ok(()));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("test address");
        assert_eq!(policy(false).check(mapped, None), Err(Denial::RemoteDisabled(mapped)));
    }

    #[test]
    fn empty_token_never_matches() {
        let ip: IpAddr = "192.0.2.7".parse().expect("test address");
        let open = Policy { allow_remote: true, token: Arc::from("") };
        assert_eq!(open.check(ip, Some("Bearer ")), Err(Denial::BadToken(ip)));
    }
}
