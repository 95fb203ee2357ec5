//! The dms network: a libp2p host split into a cloneable [`Client`] and an
//! [`EventLoop`] that alone owns the `Swarm` (the libp2p file-sharing example's shape).
//!
//! Transports TCP and QUIC (or the memory transport for in-process tests), Noise, Yamux;
//! identify, ping, Kademlia (`/dms/kad/1.0.0`), gossipsub (signed, strict validation,
//! peer scoring, bounded message size), mDNS (optional), AutoNAT (not on the memory
//! transport: no NAT there), relay client (relay
//! service optional), DCUtR hole punching, connection limits, and one direct-message
//! protocol (`/dms/msg/2.0.0`, length-prefixed frames with a maximum size). Inbound
//! messages reach the actor runtime through a bounded queue; the [`Client`] is the
//! runtime's transport.
//!
//! # Module map
//! - [`config`]: the settings.
//! - [`client`]: the handle: send, publish, subscribe, dial, peers, self info.
//! - [`event_loop`]: the swarm owner and [`Inbound`] events.
//! - [`codec`]: the framed direct-message codec.
//! - `behaviour`: the composed `NetworkBehaviour`.

mod behaviour;
pub mod client;
pub mod codec;
pub mod config;
pub mod event_loop;
mod relays;

use libp2p::core::Transport as _;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade;
use libp2p::{SwarmBuilder, identity, noise, tcp, yamux};
use tokio::sync::mpsc;

pub use behaviour::AGENT;
pub use client::{Client, DhtEntry, Path, PeerInfo, PeerScore, SelfInfo};
pub use config::{Config, Transports};
pub use event_loop::{EventLoop, Inbound};
pub use libp2p::{Multiaddr, PeerId};

/// Network failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// The host could not be built (bad key, bad config); nothing runs.
    #[error("network setup: {0}")]
    Setup(String),
    /// An address could not be listened on.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A peer could not be dialled.
    #[error("cannot connect to {addr}: {reason}")]
    Dial {
        /// The address or peer.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A direct message could not be delivered.
    #[error("cannot deliver to {peer}: {reason}")]
    Send {
        /// The peer.
        peer: String,
        /// Why (unreachable, timeout, refused frame).
        reason: String,
    },
    /// The peer received the message but could not queue it.
    #[error("peer refused the message: {reason}")]
    Refused {
        /// Its reason (`busy`).
        reason: String,
    },
    /// Gossip publish or subscribe failed.
    #[error("gossip on {topic}: {reason}")]
    Publish {
        /// The topic.
        topic: String,
        /// Why (e.g. no peers on the topic yet).
        reason: String,
    },
    /// The event loop has stopped.
    #[error("the network has stopped")]
    Stopped,
}

/// The libp2p identity of a dms key (the node key is also its peer identity).
pub fn identity_of(key: &dms_crypto::KeyPair) -> Result<identity::Keypair, NetworkError> {
    let mut secret = key.secret_bytes().to_vec();
    let keypair = match key.key_type() {
        dms_crypto::KeyType::Ed25519 => identity::Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|e| NetworkError::Setup(format!("ed25519 key: {e}")))?,
        dms_crypto::KeyType::Secp256k1 => {
            let secret = identity::secp256k1::SecretKey::try_from_bytes(&mut secret)
                .map_err(|e| NetworkError::Setup(format!("secp256k1 key: {e}")))?;
            identity::secp256k1::Keypair::from(secret).into()
        }
    };
    Ok(keypair)
}

/// The peer id of a DID (a node's DID and peer id name the same key).
pub fn peer_of_did(did: &dms_crypto::Did) -> Result<PeerId, NetworkError> {
    let key = did.public_key();
    let bytes = key.to_bytes();
    let public = match key.key_type() {
        dms_crypto::KeyType::Ed25519 => identity::ed25519::PublicKey::try_from_bytes(&bytes)
            .map(identity::PublicKey::from)
            .map_err(|e| NetworkError::Setup(format!("{did}: {e}")))?,
        dms_crypto::KeyType::Secp256k1 => identity::secp256k1::PublicKey::try_from_bytes(&bytes)
            .map(identity::PublicKey::from)
            .map_err(|e| NetworkError::Setup(format!("{did}: {e}")))?,
    };
    Ok(public.to_peer_id())
}

/// The DID of a peer id, when the id embeds its public key (Ed25519 and secp256k1 ids
/// do); `None` for hashed ids of larger keys.
pub fn did_of_peer(peer: &PeerId) -> Option<dms_crypto::Did> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let public = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let key = if let Ok(ed) = public.clone().try_into_ed25519() {
        dms_crypto::PublicKey::from_bytes(dms_crypto::KeyType::Ed25519, &ed.to_bytes()).ok()?
    } else {
        let k1 = public.try_into_secp256k1().ok()?;
        dms_crypto::PublicKey::from_bytes(dms_crypto::KeyType::Secp256k1, &k1.to_bytes()).ok()?
    };
    Some(key.did())
}

/// Yamux with room for as many streams as request-response may have open on a
/// connection — its inbound limit, and as many outbound, which the event loop holds each
/// peer to — plus the other protocols' (Kademlia, identify, ping, gossip): at yamux's
/// default of 512, a burst over the limit closed the whole connection, and every request
/// on it failed. (A stream's receive window is credit, not memory held.)
fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(2 * behaviour::MAX_CONCURRENT_MESSAGES + 128);
    config
}

/// Builds the host for `key`: a client, the event loop to spawn, and the queue of
/// inbound messages for the runtime. Listening starts when the loop runs.
pub fn build(
    key: &dms_crypto::KeyPair,
    config: Config,
) -> Result<(Client, EventLoop, mpsc::Receiver<Inbound>), NetworkError> {
    let keypair = identity_of(key)?;
    let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(e.to_string());
    let idle = config.idle_timeout;
    let behaviour_config = config.clone();
    let make_behaviour = move |key: &identity::Keypair, relay| {
        behaviour::Behaviour::new(key, relay, &behaviour_config)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    };
    let mut swarm = match config.transports {
        Transports::TcpQuic => SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux_config)
            .map_err(|e| setup(&e))?
            .with_quic()
            .with_dns()
            .map_err(|e| setup(&e))?
            .with_relay_client(noise::Config::new, yamux_config)
            .map_err(|e| setup(&e))?
            .with_behaviour(make_behaviour)
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build(),
        Transports::Memory => SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|key| {
                let noise = noise::Config::new(key)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    MemoryTransport::default()
                        .upgrade(upgrade::Version::V1)
                        .authenticate(noise)
                        .multiplex(yamux_config())
                        .boxed(),
                )
            })
            .map_err(|e| setup(&e))?
            .with_relay_client(noise::Config::new, yamux_config)
            .map_err(|e| setup(&e))?
            .with_behaviour(make_behaviour)
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build(),
    };
    // Reservations on relays are made once connected to them (`relays.rs`).
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen { addr: addr.to_string(), reason: e.to_string() })?;
    }
    let peer_id = *swarm.local_peer_id();
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_queue.max(1));
    let relays = relays::Relays::new(&config.relays, config.relay_service);
    let event_loop = EventLoop::new(
        swarm,
        commands_rx,
        inbound_tx,
        config.bootstrap.clone(),
        config.discovery,
        relays,
    );
    let peer_dids = std::sync::Arc::new(std::sync::Mutex::new(lru::LruCache::new(
        std::num::NonZeroUsize::new(client::PEER_DID_CACHE).expect("non-zero capacity"),
    )));
    Ok((Client { commands: commands_tx, peer_id, peer_dids }, event_loop, inbound_rx))
}

/// Feeds inbound network messages to the actor runtime until the network stops, with
/// at most `concurrency` messages being checked at once (the rest wait in the bounded
/// inbound queue, and senders are told "busy" when it is full).
pub async fn serve(
    mut inbound: mpsc::Receiver<Inbound>,
    router: dms_actor::Router,
    concurrency: usize,
) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    while let Some(message) = inbound.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let router = router.clone();
        tokio::spawn(async move {
            match message {
                Inbound::Message { peer, bytes, respond } => {
                    router.receive_with(&bytes, &peer.to_string(), respond).await;
                }
                Inbound::Broadcast { source, topic, bytes } => {
                    router.receive_broadcast(&bytes, &source.to_string(), &topic).await;
                }
            }
            drop(permit);
        });
    }
}
