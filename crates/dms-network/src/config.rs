//! Network settings.

use std::time::Duration;

use libp2p::Multiaddr;

/// Which transports the host uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transports {
    /// TCP and QUIC (production).
    TcpQuic,
    /// The in-process memory transport (tests and the in-process harness).
    Memory,
}

/// How the host listens, finds peers and bounds its resources.
#[derive(Clone, Debug)]
pub struct Config {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start (with `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Look for more peers through the DHT (a bootstrap query on the first connection
    /// and every 5 minutes). Off, the node keeps to the peers it dials or that dial it,
    /// its DHT routing table stays empty (it answers others' DHT queries with no peers,
    /// and libp2p's own bootstrap on a new peer never starts): for leaf nodes of large
    /// simulations.
    pub discovery: bool,
    /// Act as a relay for other peers.
    pub relay_service: bool,
    /// Relays to stay reachable through (with `/p2p/<peer id>`): a reservation is kept on
    /// each, and peers dial `<relay>/p2p-circuit/p2p/<this peer>`.
    pub relays: Vec<Multiaddr>,
    /// Largest direct message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most established connections.
    pub max_connections: u32,
    /// Most established connections per peer.
    pub max_connections_per_peer: u32,
    /// How long a direct message may take to be delivered.
    pub request_timeout: Duration,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
    /// Inbound messages queued for the runtime before senders are told "busy".
    pub inbound_queue: usize,
    /// Transports.
    pub transports: Transports,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr"),
                "/ip4/0.0.0.0/udp/0/quic-v1".parse().expect("valid multiaddr"),
            ],
            bootstrap: Vec::new(),
            mdns: false,
            discovery: true,
            relay_service: false,
            relays: Vec::new(),
            max_message_bytes: 1024 * 1024,
            max_connections: 256,
            max_connections_per_peer: 4,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            inbound_queue: 1024,
            transports: Transports::TcpQuic,
        }
    }
}
