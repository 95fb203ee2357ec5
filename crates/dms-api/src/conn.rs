//! Connections: the accept loop in front of the router, so that no client — careless
//! or hostile, on this machine — can exhaust the daemon.
//!
//! - **Header timeout**: a client that has not sent a whole request head within
//!   [`HEADER_TIMEOUT`] is disconnected (half-sent headers used to stay open for
//!   minutes); the head may be at most [`MAX_HEAD_BYTES`].
//! - **Idle connections** are closed after [`HEADER_TIMEOUT`] too: the timer also runs
//!   while a kept-alive connection waits for its next request.
//! - **A cap with eviction**: at most [`MAX_CONNECTIONS`] connections are open; a new
//!   one beyond that closes the oldest that has not yet had a request answered (a
//!   half-open or silent one), or else the oldest, so a flood of idle or half-open
//!   connections cannot lock out the next client (`/health` keeps answering) and
//!   clients that are being served are closed last.
//! - **Accept errors** (no file descriptors left) pause accepting for
//!   [`ACCEPT_PAUSE`] instead of ending the server.
//! - Every connection is a task of the loop's own set: stopping the server drains the
//!   requests in flight (at most [`DRAIN`]) and aborts what is left.
//!
//! The same loop serves the TCP listener and the Unix socket ([`Accept`]); a Unix
//! client whose credentials the socket does not admit is closed at once, and the
//! others' requests carry [`crate::access::LocalSocket`].

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};
use tower::Service as _;
use tracing::{debug, warn};

/// Most connections open at once; the oldest is closed for a new one beyond.
pub const MAX_CONNECTIONS: usize = 1024;
/// Longest time a client may take to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Pause after a failed accept (e.g. `EMFILE`).
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// Longest wait for requests in flight at shutdown.
pub const DRAIN: Duration = Duration::from_secs(10);

/// A source of connections.
pub(crate) trait Accept: Send + 'static {
    /// The connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection with the address the handlers see and whether it came
    /// through the Unix socket; `Ok(None)`: one was refused (and closed).
    fn next(&self)
    -> impl Future<Output = io::Result<Option<(Self::Io, SocketAddr, bool)>>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn next(&self) -> io::Result<Option<(Self::Io, SocketAddr, bool)>> {
        let (stream, peer) = self.accept().await?;
        Ok(Some((stream, peer, false)))
    }
}

impl Accept for crate::socket::Socket {
    type Io = tokio::net::UnixStream;
    async fn next(&self) -> io::Result<Option<(Self::Io, SocketAddr, bool)>> {
        let (stream, _) = self.listener.accept().await?;
        if !self.admits(&stream) {
            warn!(socket = %self.path.display(), "A process of another user was refused on the API socket.");
            return Ok(None);
        }
        // Handlers see a loopback address; the gate sees the socket.
        Ok(Some((stream, SocketAddr::from(([127, 0, 0, 1], 0)), true)))
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub(crate) async fn serve(
    listener: impl Accept,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let mut open: JoinSet<u64> = JoinSet::new();
    // Open connections by sequence number: the first is the oldest.
    let mut by_age: BTreeMap<u64, Open> = BTreeMap::new();
    let mut next = 0u64;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = open.join_next(), if !open.is_empty() => {
                if let Ok(seq) = done {
                    by_age.remove(&seq);
                }
            }
            accepted = listener.next() => match accepted {
                Ok(None) => {}
                Ok(Some((stream, peer, local))) => {
                    while by_age.len() >= MAX_CONNECTIONS {
                        evict(&mut by_age);
                    }
                    next += 1;
                    let seq = next;
                    let served = Arc::new(AtomicBool::new(false));
                    let connection =
                        connection(&graceful, stream, peer, local, served.clone(), app.clone());
                    let handle = open.spawn(async move {
                        if let Err(error) = connection.await {
                            debug!(%peer, %error, "A connection ended with an error.");
                        }
                        seq
                    });
                    by_age.insert(seq, Open { handle, served });
                }
                Err(error) => {
                    warn!(%error, "Could not accept a connection; pausing accepts briefly.");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        warn!("Requests still in flight after {DRAIN:?}; closing their connections.");
    }
    open.shutdown().await;
}

/// An open connection: its task, and whether a request of it was answered.
struct Open {
    handle: AbortHandle,
    served: Arc<AtomicBool>,
}

/// Closes one connection to make room: the oldest never served, else the oldest.
fn evict(by_age: &mut BTreeMap<u64, Open>) {
    let silent = by_age.iter().find(|(_, o)| !o.served.load(Ordering::Relaxed)).map(|(s, _)| *s);
    let victim = silent.or_else(|| by_age.keys().next().copied());
    if let Some(open) = victim.and_then(|seq| by_age.remove(&seq)) {
        debug!(
            served = open.served.load(Ordering::Relaxed),
            "Connection cap reached; closing one."
        );
        open.handle.abort();
    }
}

/// One HTTP/1.1 connection, its peer address given to the handlers as `ConnectInfo`.
fn connection<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    graceful: &GracefulShutdown,
    stream: Io,
    peer: SocketAddr,
    local: bool,
    served: Arc<AtomicBool>,
    app: axum::Router,
) -> impl Future<Output = Result<(), hyper::Error>> + Send + 'static {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if local {
            request.extensions_mut().insert(crate::access::LocalSocket);
        }
        let (mut app, served) = (app.clone(), served.clone());
        async move {
            let response = app.call(request).await;
            served.store(true, Ordering::Relaxed);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    graceful.watch(builder.serve_connection(TokioIo::new(stream), service))
}
