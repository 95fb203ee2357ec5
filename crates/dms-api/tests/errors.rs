//! Every error status the API can answer has the JSON shape `{error, message}`: those
//! of the handlers, and those made below them — 404 and 405 from routing, 413 from the
//! body limit, 408 from the request timeout, 400 from a body that is not JSON, 414 from
//! a request target over `MAX_URI_BYTES`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use dms_api::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> SocketAddr {
    let config = Config {
        request_timeout: Duration::from_millis(300),
        max_body_bytes: 64,
        ..Config::default()
    };
    common::serve(config).await
}

/// Sends `head` (request line and headers, no final blank line), then `body`, and
/// reads the whole answer: status, headers, body.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer).to_string();
    let (headers, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let json = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, headers.to_ascii_lowercase(), json)
}

fn shaped(json: &serde_json::Value, code: &str) {
    assert_eq!(json["error"], code, "{json}");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
}

#[tokio::test]
async fn routing_errors_are_json() {
    let addr = server().await;
    let (status, _, json) = exchange(addr, "GET /nowhere HTTP/1.1", b"").await;
    assert_eq!(status, 404);
    shaped(&json, "not_found");
    let (status, headers, json) = exchange(addr, "DELETE /health HTTP/1.1", b"").await;
    assert_eq!(status, 405);
    shaped(&json, "method_not_allowed");
    assert!(headers.contains("allow: get"), "the Allow header is kept: {headers}");
    assert!(headers.contains("content-type: application/json"), "{headers}");
}

#[tokio::test]
async fn body_errors_are_json() {
    let addr = server().await;
    let put = "PUT /api/v1/cap/contexts/x HTTP/1.1\r\nContent-Type: application/json";
    // Over api.max_body_bytes (64).
    let big = vec![b'a'; 1000];
    let head = format!("{put}\r\nContent-Length: {}", big.len());
    let (status, _, json) = exchange(addr, &head, &big).await;
    assert_eq!(status, 413);
    shaped(&json, "payload_too_large");
    // Not JSON.
    let (status, _, json) = exchange(addr, &format!("{put}\r\nContent-Length: 5"), b"{nope").await;
    assert_eq!(status, 400);
    shaped(&json, "bad_request");
    assert!(json["message"].as_str().unwrap_or_default().contains("JSON"), "{json}");
    // The wrong media type.
    let head =
        "PUT /api/v1/cap/contexts/x HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2";
    let (status, _, json) = exchange(addr, head, b"{}").await;
    assert_eq!(status, 415);
    shaped(&json, "unsupported_media_type");
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_is_answered_408_in_json() {
    let addr = server().await;
    // Ten bytes announced, two sent: the body never completes.
    let head = "PUT /api/v1/cap/contexts/x HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 10";
    let (status, _, json) = exchange(addr, head, b"{}").await;
    assert_eq!(status, 408);
    shaped(&json, "request_timeout");
}

#[tokio::test]
async fn a_request_path_too_long_is_answered_414_in_json() {
    let addr = server().await;
    let long = format!("GET /api/v1/{} HTTP/1.1", "a".repeat(dms_api::error::MAX_URI_BYTES));
    let (status, _, json) = exchange(addr, &long, b"").await;
    assert_eq!(status, 414);
    shaped(&json, "uri_too_long");
    let query = format!("GET /health?{} HTTP/1.1", "q".repeat(dms_api::error::MAX_URI_BYTES));
    assert_eq!(exchange(addr, &query, b"").await.0, 414, "the query counts too");
}
