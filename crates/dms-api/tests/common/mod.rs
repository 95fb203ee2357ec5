//! A served API for the integration tests: no capability routes, no relay.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use dms_api::routes::NodeInfo;
use dms_api::{Config, Server};

/// Serves the API with `config` (its address made `127.0.0.1:0`) until the test ends.
pub async fn serve(config: Config) -> SocketAddr {
    let config = Config { addr: "127.0.0.1:0".parse().expect("address"), ..config };
    let node = NodeInfo {
        did: "did:key:z6MkTest".into(),
        version: "test".into(),
        started: Instant::now(),
        started_at: SystemTime::now(),
    };
    let server = Server::bind(&config, node, None, None).await.expect("bound");
    let addr = server.local_addr();
    tokio::spawn(server.serve(std::future::pending()));
    addr
}
