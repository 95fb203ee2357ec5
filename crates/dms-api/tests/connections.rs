//! Connection hygiene over real sockets: a client that never finishes its request head
//! is disconnected after the header timeout, and a flood of half-open connections (more
//! than the cap) leaves `/health` answering.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dms_api::Config;
use dms_api::conn::{HEADER_TIMEOUT, MAX_CONNECTIONS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> SocketAddr {
    common::serve(Config::default()).await
}

async fn health(addr: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("an HTTP status")
}

/// This test process opens thousands of sockets: its soft descriptor limit is raised to
/// the hard one, which must allow them.
fn raise_fd_limit(needed: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "this test needs {needed} file descriptors; the hard limit is {hard} (raise it: ulimit -Hn)"
    );
    let raised = rustix::process::Rlimit { current: Some(hard), maximum: limit.maximum };
    setrlimit(Resource::Nofile, raised).expect("raise the soft limit");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let addr = server().await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: slow").await.expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(HEADER_TIMEOUT * 2, stream.read(&mut buf)).await;
    let took = started.elapsed();
    let read = read.expect("the connection was not closed within twice the header timeout");
    // Closed (0 bytes, or reset), possibly after a 408.
    if let Ok(n) = read {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(took >= HEADER_TIMEOUT - Duration::from_millis(500), "closed early: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_open_connections_beyond_the_cap_leaves_health_answering() {
    let flood = MAX_CONNECTIONS * 3;
    raise_fd_limit(2 * flood as u64 + 512);
    let addr = server().await;
    let mut open = Vec::with_capacity(flood);
    for _ in 0..flood {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: flood").await.expect("write");
        open.push(stream);
    }
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(5), health(addr))
        .await
        .expect("/health answered beside the flood");
    eprintln!(
        "/health answered {status} in {:?} beside {flood} half-open connections",
        started.elapsed()
    );
    assert_eq!(status, 200);
    // The cap held: the oldest connections were closed for the newer ones.
    let mut buf = [0u8; 16];
    let oldest = tokio::time::timeout(Duration::from_secs(1), open[0].read(&mut buf)).await;
    assert!(
        matches!(oldest, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest of {flood} connections is still open: {oldest:?}"
    );
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_being_served_outlives_a_flood_of_silent_connections() {
    let flood = MAX_CONNECTIONS * 2;
    raise_fd_limit(2 * flood as u64 + 512);
    let addr = server().await;
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut served = TcpStream::connect(addr).await.expect("connect");
    served.write_all(request.as_bytes()).await.expect("write");
    let mut buf = [0u8; 512];
    let n = served.read(&mut buf).await.expect("an answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Silent connections, oldest-first eviction would have closed `served` first.
    let started = Instant::now();
    let mut open = Vec::with_capacity(flood);
    for _ in 0..flood {
        open.push(TcpStream::connect(addr).await.expect("connect"));
    }
    assert!(started.elapsed() < HEADER_TIMEOUT, "the flood outlasted the idle timeout");
    served.write_all(request.as_bytes()).await.expect("write again");
    let n = tokio::time::timeout(Duration::from_secs(2), served.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("the served connection is still open");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "kept alive");
    drop(open);
}
