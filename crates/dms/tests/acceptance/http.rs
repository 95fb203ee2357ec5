//! A minimal HTTP/1.1 GET over a socket bound to a chosen source address, so a test can
//! be a non-loopback client of a daemon on the same machine.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Sends `GET path` to `server` from `source` (any port) and returns the status code.
pub async fn get_status(
    source: Option<IpAddr>,
    server: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> std::io::Result<u16> {
    let socket = if server.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let mut stream = socket.connect(server).await?;
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))
}

/// Sends `GET path` and returns the body.
pub async fn get_body(server: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).to_string();
    Ok(text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// A non-loopback IPv4 address of this machine. Panics with what to do when there is
/// none: the scenario cannot be tested without one, and must not pass silently.
pub fn non_loopback_ipv4() -> IpAddr {
    let output = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .expect("the `ip` command (iproute2) is needed to find a non-loopback address");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| line.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|cidr| cidr.split('/').next()?.parse::<IpAddr>().ok())
        .find(|ip| !ip.is_loopback())
        .expect(
            "this machine has no non-loopback IPv4 address; add one for the test, e.g. \
             `ip link add dms0 type dummy && ip addr add 198.18.0.1/32 dev dms0 && ip link set dms0 up`",
        )
}
