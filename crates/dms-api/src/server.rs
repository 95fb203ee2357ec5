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
    socket: Option<crate::socket::Socket>,
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
        let socket = match config.socket_path() {
            Some(path) => Some(crate::socket::Socket::bind(&path, &config.socket_group)?),
            None => None,
        };
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
        Ok(Server { listener, socket, app, addr })
    }

    /// The address actually bound (useful when the configured port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Unix socket served besides the address, if any.
    pub fn socket_path(&self) -> Option<&std::path::Path> {
        self.socket.as_ref().map(|s| s.path.as_path())
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
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopping = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let tcp = crate::conn::serve(self.listener, self.app.clone(), stopping(stopped.clone()));
        let unix = async {
            if let Some(socket) = self.socket {
                crate::conn::serve(socket, self.app, stopping(stopped)).await;
            }
        };
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        tokio::join!(signal, tcp, unix);
        Ok(())
    }
}
