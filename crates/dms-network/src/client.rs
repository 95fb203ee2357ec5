//! The cloneable handle to the network: commands to the event loop, answered on
//! oneshot channels. Also the actor runtime's [`dms_actor::Transport`].

use std::sync::{Arc, Mutex};

use libp2p::{Multiaddr, PeerId};
use lru::LruCache;
use tokio::sync::{mpsc, oneshot};

use crate::NetworkError;

pub use dms_types::peers::{DhtEntry, Path, PeerInfo, PeerScore, SelfInfo};

pub(crate) enum Command {
    Send {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Option<Vec<u8>>, NetworkError>>,
    },
    Publish {
        topic: String,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Subscribe {
        topic: String,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    SelfInfo {
        reply: oneshot::Sender<SelfInfo>,
    },
    Dht {
        reply: oneshot::Sender<Vec<DhtEntry>>,
    },
    Block {
        peer: PeerId,
        blocked: bool,
        reply: oneshot::Sender<()>,
    },
    Scores {
        reply: oneshot::Sender<Vec<PeerScore>>,
    },
}

/// A handle to the network; cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) peer_id: PeerId,
    /// Peer id text → the DID of its key (decoding one costs a point decompression).
    pub(crate) peer_dids: Arc<Mutex<LruCache<String, Option<dms_crypto::Did>>>>,
}

/// Peer ids whose DID is remembered.
pub(crate) const PEER_DID_CACHE: usize = 4096;

impl Client {
    /// This host's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| NetworkError::Stopped)?;
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Sends `bytes` to `peer` as one direct message; resolves when the peer accepted it
    /// (`None`) or answered on the same exchange (`Some(answer)`: a reply envelope).
    pub async fn send(
        &self,
        peer: PeerId,
        bytes: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, NetworkError> {
        self.ask(|reply| Command::Send { peer, bytes, reply }).await?
    }

    /// Publishes `bytes` on a gossip topic.
    pub async fn publish(&self, topic: &str, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Publish { topic: topic.into(), bytes, reply }).await?
    }

    /// Subscribes to a gossip topic.
    pub async fn subscribe(&self, topic: &str) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Subscribe { topic: topic.into(), reply }).await?
    }

    /// Dials an address (with `/p2p/<peer id>`); resolves once connected or failed.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetworkError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// The DHT routing table.
    pub async fn dht(&self) -> Result<Vec<DhtEntry>, NetworkError> {
        self.ask(|reply| Command::Dht { reply }).await
    }

    /// Blocks a peer: closes its connections and refuses new ones until unblocked
    /// (operators' deny list; the test harness partitions networks with it).
    pub async fn block(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Block { peer, blocked: true, reply }).await
    }

    /// Lifts a [`Client::block`].
    pub async fn unblock(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Block { peer, blocked: false, reply }).await
    }

    /// Gossipsub scores of the connected peers.
    pub async fn scores(&self) -> Result<Vec<PeerScore>, NetworkError> {
        self.ask(|reply| Command::Scores { reply }).await
    }

    /// This host's id, addresses and NAT status.
    pub async fn self_info(&self) -> Result<SelfInfo, NetworkError> {
        self.ask(|reply| Command::SelfInfo { reply }).await
    }
}

impl dms_actor::Transport for Client {
    fn send(
        &self,
        peer: &str,
        bytes: Vec<u8>,
    ) -> dms_actor::BoxFuture<Result<Option<Vec<u8>>, dms_actor::ActorError>> {
        let client = self.clone();
        let peer = peer.parse::<PeerId>();
        Box::pin(async move {
            let peer = peer.map_err(|e| dms_actor::ActorError::Transport {
                reason: format!("bad peer id: {e}"),
            })?;
            client
                .send(peer, bytes)
                .await
                .map_err(|e| dms_actor::ActorError::Transport { reason: e.to_string() })
        })
    }

    fn peer_did(&self, peer: &str) -> Option<dms_crypto::Did> {
        if let Some(known) = self.peer_dids.lock().ok().and_then(|mut c| c.get(peer).cloned()) {
            return known;
        }
        let did = peer.parse::<PeerId>().ok().and_then(|id| crate::did_of_peer(&id));
        if let Ok(mut cache) = self.peer_dids.lock() {
            cache.put(peer.to_string(), did.clone());
        }
        did
    }

    fn reaches(&self) -> dms_actor::BoxFuture<Vec<String>> {
        let client = self.clone();
        Box::pin(async move {
            let peers = client.peers().await.unwrap_or_default();
            peers.into_iter().map(|p| p.peer_id).collect()
        })
    }

    fn publish(
        &self,
        topic: &str,
        bytes: Vec<u8>,
    ) -> dms_actor::BoxFuture<Result<(), dms_actor::ActorError>> {
        let client = self.clone();
        let topic = topic.to_string();
        Box::pin(async move {
            client
                .publish(&topic, bytes)
                .await
                .map_err(|e| dms_actor::ActorError::Transport { reason: e.to_string() })
        })
    }
}
