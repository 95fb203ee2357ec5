//! The API's Unix socket: owner-only, no token needed through it while TCP loopback
//! still asks for one; a stale socket is replaced, a live one or another file is not.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::{Instant, SystemTime};

use dms_api::routes::NodeInfo;
use dms_api::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn node() -> NodeInfo {
    NodeInfo {
        did: "did:key:z6MkTest".into(),
        version: "test".into(),
        started: Instant::now(),
        started_at: SystemTime::now(),
    }
}

fn config(socket: &Path) -> Config {
    Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        local_token: Some("local-secret".into()),
        socket: socket.display().to_string(),
        ..Config::default()
    }
}

/// One request over the socket; the status code and the answer.
async fn get(socket: &Path, path: &str) -> (u16, String) {
    exchange(tokio::net::UnixStream::connect(socket).await.unwrap(), path).await
}

async fn exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    path: &str,
) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn the_socket_is_owner_only_and_needs_no_token_while_tcp_does() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let server = Server::bind(&config(&socket), node(), None, None).await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve(std::future::pending()));

    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "owner-only");

    let (status, body) = get(&socket, "/api/v1/info").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("did:key:z6MkTest"), "{body}");

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, body) = exchange(tcp, "/api/v1/info").await;
    assert_eq!(status, 401, "TCP loopback still needs the token: {body}");
}

#[tokio::test]
async fn a_stale_socket_is_replaced_but_a_live_one_or_another_file_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    // A socket file nobody listens on, as a crashed daemon leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let server = Server::bind(&config(&socket), node(), None, None).await.unwrap();
    tokio::spawn(server.serve(std::future::pending()));
    assert_eq!(get(&socket, "/health").await.0, 200);

    let second = Server::bind(&config(&socket), node(), None, None).await;
    let error = second.err().expect("a live socket is not taken over").to_string();
    assert!(error.contains("another dms daemon answers"), "{error}");

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let error = Server::bind(&config(&file), node(), None, None).await.err().unwrap().to_string();
    assert!(error.contains("not a socket"), "{error}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[tokio::test]
async fn the_socket_is_removed_when_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let server = Server::bind(&config(&socket), node(), None, None).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    assert!(socket.exists());
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    assert!(!socket.exists(), "no stale socket after a clean stop");
}

#[tokio::test]
async fn an_unknown_socket_group_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let config = Config { socket_group: "no-such-group-dms".into(), ..config(&socket) };
    let error = Server::bind(&config, node(), None, None).await.err().unwrap().to_string();
    assert!(error.contains("api.socket_group"), "{error}");
}
