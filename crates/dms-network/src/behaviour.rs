//! The composed libp2p behaviour.

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify,
    identity, kad, mdns, ping, relay, request_response,
};

use crate::codec::{FrameCodec, PROTOCOL};
use crate::{Config, NetworkError};

/// Kademlia protocol name (the `/dms` prefix keeps dms DHTs apart from others).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/dms/kad/1.0.0");
/// Direct messages in flight per connection (the libp2p default of 100 made busy peers
/// fail sends with "max sub-streams reached").
pub const MAX_CONCURRENT_MESSAGES: usize = 1024;
/// Identify protocol version.
pub const IDENTIFY_VERSION: &str = "/dms/id/1.0.0";
/// The agent this node names itself as to peers (identify's `agentVersion`).
pub const AGENT: &str = concat!("dms/", env!("CARGO_PKG_VERSION"));
/// How often each connection is pinged (its RTT in `dms peers list`). Each ping costs
/// both ends some 90 µs of CPU (a yamux frame, Noise, task wake-ups): at 5 s, the 9,900
/// connections of a 100-node in-process mesh kept a third of a core busy.
pub const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// A ping unanswered this long fails. libp2p lets the first failure of a connection
/// pass; on the second in a row the connection is closed as a cut link, so a peer whose
/// link is cut stops being listed within 2 × (interval + timeout): 40 s. (Generous: a
/// node busy for seconds must not lose healthy connections.)
pub const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every protocol the host speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) autonat: Toggle<autonat::Behaviour>,
    pub(crate) relay_client: relay::client::Behaviour,
    pub(crate) relay: Toggle<relay::Behaviour>,
    pub(crate) dcutr: dcutr::Behaviour,
    pub(crate) messages: request_response::Behaviour<FrameCodec>,
}

impl Behaviour {
    pub(crate) fn new(
        key: &identity::Keypair,
        relay_client: relay::client::Behaviour,
        config: &Config,
    ) -> Result<Behaviour, NetworkError> {
        let peer_id = key.public().to_peer_id();
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(config.max_connections / 2 + 1));
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(config.max_message_bytes)
            .build()
            .map_err(|e| NetworkError::Setup(format!("gossipsub: {e}")))?;
        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| NetworkError::Setup(format!("gossipsub: {e}")))?;
        gossipsub
            .with_peer_score(
                gossipsub::PeerScoreParams::default(),
                gossipsub::PeerScoreThresholds::default(),
            )
            .map_err(|e| NetworkError::Setup(format!("gossipsub scoring: {e}")))?;
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        if !config.discovery {
            // No periodic bootstrap, and no peer in the routing table unless added by
            // hand (the event loop adds none): libp2p bootstraps on its own whenever a
            // peer enters a table of fewer than 20, and each leaf of a 300-node star
            // doing so dialed the others it heard of, over and over (58,000 connections
            // in 100 s, the whole process busy with handshakes).
            kad_config.set_periodic_bootstrap_interval(None);
            kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
        }
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        kad.set_mode(Some(kad::Mode::Server));
        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| NetworkError::Setup(format!("mdns: {e}")))?,
            )
        } else {
            None
        };
        let relay = config.relay_service.then(|| {
            let mut relay = relay::Behaviour::new(peer_id, relay_limits());
            // libp2p serves as a relay only once some external address of this node is
            // confirmed (AutoNAT), which a node on a network of its own may never get; an
            // operator who enabled the service wants it served now.
            relay.set_status(Some(relay::Status::Enable));
            relay
        });
        let messages = request_response::Behaviour::with_codec(
            FrameCodec { max_bytes: config.max_message_bytes },
            [(PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(MAX_CONCURRENT_MESSAGES),
        );
        Ok(Behaviour {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                    .with_agent_version(AGENT.into()),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new().with_interval(PING_INTERVAL).with_timeout(PING_TIMEOUT),
            ),
            kad,
            gossipsub,
            mdns: mdns.into(),
            // On the in-process memory transport there is no NAT to find, and its dial-backs
            // (a connection and a Noise handshake each) are what kept simulations of
            // hundreds of nodes busy.
            autonat: (config.transports != crate::Transports::Memory)
                .then(|| autonat::Behaviour::new(peer_id, autonat::Config::default()))
                .into(),
            relay_client,
            relay: relay.into(),
            dcutr: dcutr::Behaviour::new(peer_id),
            messages,
        })
    }
}

/// What a relay gives each circuit: libp2p's defaults (2 minutes, 128 KiB) end a circuit
/// within a few actor messages; these carry a deployment's control traffic while hole
/// punching is tried, and still bound what one peer may make a relay carry. Reservations
/// and circuits per peer keep libp2p's limits.
fn relay_limits() -> relay::Config {
    relay::Config {
        max_circuit_duration: std::time::Duration::from_secs(10 * 60),
        max_circuit_bytes: 16 << 20,
        ..relay::Config::default()
    }
}
