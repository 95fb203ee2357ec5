//! Binding, serving and graceful shutdown of the API.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::access::{Policy, gate};
use crate::routes::{NodeInfo, router};
use crate::{Config, Error};

/// A bound, not yet serving, API server.
pub struct Server {
    listener: TcpListener,
    app: axum::Router,
    addr: SocketAddr,
}

impl Server {
    /// Validates `config` and binds its address. Nothing is served until [`Server::serve`].
    pub async fn bind(
        config: &Config,
        node: NodeInfo,
        caps: Option<crate::caps::Caps>,
        relay: Option<crate::actor::Relay>,
    ) -> Result<Server, Error> {
        config.validate().map_err(Error::Config)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind { addr: config.addr, source })?;
        let addr = listener.local_addr().map_err(Error::Serve)?;
        let policy = Policy {
            allow_remote: config.allow_remote,
            token: Arc::from(config.token.as_str()),
            local_token: config.local_token.as_deref().map(Arc::from),
        };
        let app = router(Arc::new(node), addr, caps, relay)
            .layer(axum::middleware::from_fn_with_state(policy, gate))
            .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                config.request_timeout,
            ))
            .layer(axum::middleware::from_fn(crate::error::json_errors))
            .layer(TraceLayer::new_for_http());
        Ok(Server { listener, app, addr })
    }

    /// The address actually bound (useful when the configured port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight
    /// requests finish (at most [`crate::conn::DRAIN`]) before returning. Connection
    /// limits and timeouts: [`crate::conn`].
    ///
    /// Cancel safety: dropping this future drops open connections; await it to drain.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        crate::conn::serve(self.listener, self.app, shutdown).await;
        Ok(())
    }
}
