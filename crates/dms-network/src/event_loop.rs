//! The event loop: the only owner of the `Swarm`. It runs client commands, turns swarm
//! events into inbound messages for the runtime (through a bounded queue), and keeps
//! the per-peer view (connections, direct or relayed, round-trip times, NAT status).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, gossipsub, identify, kad, mdns, ping};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::NetworkError;
use crate::behaviour::{Behaviour, BehaviourEvent, MAX_CONCURRENT_MESSAGES};
use crate::client::{Command, DhtEntry, Path, PeerInfo, PeerScore, SelfInfo};

/// What the network hands to the runtime.
#[derive(Debug)]
pub enum Inbound {
    /// A direct message from `peer`.
    Message {
        /// The sending peer (authenticated by the connection).
        peer: PeerId,
        /// The envelope bytes.
        bytes: Vec<u8>,
        /// Answers on the same exchange (a reply envelope) while it is open; dropping
        /// it acknowledges. The exchange waits at most [`RESPONSE_WAIT`].
        respond: Option<oneshot::Sender<Vec<u8>>>,
    },
    /// A gossip message originally published by `source` on `topic`.
    Broadcast {
        /// The publisher (signed gossip).
        source: PeerId,
        /// The topic.
        topic: String,
        /// The envelope bytes.
        bytes: Vec<u8>,
    },
}

/// Acknowledgement meaning "queued for the runtime".
const ACCEPTED: &[u8] = b"";
/// Acknowledgement meaning "the inbound queue is full".
const BUSY: &[u8] = b"busy";
/// Most peers whose dialed addresses a node without discovery keeps.
const MAX_DIALED: usize = 1024;
/// How long an inbound request's exchange stays open for the runtime to answer on it;
/// after that it is acknowledged and the answer travels as its own message.
pub const RESPONSE_WAIT: Duration = Duration::from_secs(1);

type Responding = futures::future::BoxFuture<'static, (u64, Vec<u8>)>;
type SendReply = oneshot::Sender<Result<Option<Vec<u8>>, NetworkError>>;

/// Owns the swarm; run it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<Inbound>,
    bootstrap: Vec<Multiaddr>,
    /// Run a DHT bootstrap query on the first connection and learn peers' addresses into
    /// the routing table (`Config::discovery`).
    discovery: bool,
    /// Sends awaiting their answer, and how many per peer (at most
    /// [`MAX_CONCURRENT_MESSAGES`]: request-response opens a stream for each at once, and
    /// yamux closes the whole connection when its stream limit is passed).
    pending_sends: HashMap<OutboundRequestId, (PeerId, SendReply)>,
    in_flight: HashMap<PeerId, usize>,
    /// Addresses this node dialed (bootstrap peers, `dial` commands) on a node whose DHT
    /// table stays empty (`discovery` off), for redials by peer id: identify's cache
    /// holds only what peers announce, and forgets an address on a failed dial.
    dialed: HashMap<PeerId, Vec<Multiaddr>>,
    responding: futures::stream::FuturesUnordered<Responding>,
    open_exchanges: HashMap<u64, request_response::ResponseChannel<Vec<u8>>>,
    next_exchange: u64,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NetworkError>>>>,
    connections: HashMap<PeerId, Vec<(ConnectionId, Multiaddr)>>,
    rtt: HashMap<PeerId, Duration>,
    listen: Vec<Multiaddr>,
    nat: autonat::NatStatus,
    relays: crate::relays::Relays,
}

/// The peer an address leads to: its last `/p2p/` (through a relay,
/// `…/p2p/<relay>/p2p-circuit/p2p/<peer>`, that is the peer, not the relay).
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter()
        .filter_map(|p| match p {
            Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .last()
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<Inbound>,
        bootstrap: Vec<Multiaddr>,
        discovery: bool,
        relays: crate::relays::Relays,
    ) -> EventLoop {
        EventLoop {
            swarm,
            commands,
            inbound,
            bootstrap,
            discovery,
            pending_sends: HashMap::new(),
            in_flight: HashMap::new(),
            dialed: HashMap::new(),
            responding: futures::stream::FuturesUnordered::new(),
            open_exchanges: HashMap::new(),
            next_exchange: 0,
            pending_dials: HashMap::new(),
            connections: HashMap::new(),
            rtt: HashMap::new(),
            listen: Vec::new(),
            nat: autonat::NatStatus::Unknown,
            relays,
        }
    }

    /// Runs until `shutdown` resolves or every client is dropped.
    ///
    /// Cancel safety: dropping the future drops the swarm and every connection.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        for addr in std::mem::take(&mut self.bootstrap) {
            if let Some(peer) = peer_of(&addr) {
                self.dialing(&peer, addr.clone());
            }
            if let Err(error) = self.swarm.dial(addr.clone()) {
                warn!(%addr, %error, "Cannot dial bootstrap peer.");
            }
        }
        let mut redial = tokio::time::interval(crate::relays::REDIAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = redial.tick() => self.relays.tick(&mut self.swarm),
                Some((id, answer)) = self.responding.next(), if !self.responding.is_empty() => {
                    if let Some(channel) = self.open_exchanges.remove(&id) {
                        // The requester may have gone; then there is no one to tell.
                        let _ = self.swarm.behaviour_mut().messages.send_response(channel, answer);
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                () = &mut shutdown => break,
            }
        }
        for (_, (_, reply)) in self.pending_sends.drain() {
            let _ = reply.send(Err(NetworkError::Stopped));
        }
        debug!("Network event loop stopped.");
    }

    fn self_info(&self) -> SelfInfo {
        let peer_id = *self.swarm.local_peer_id();
        let listen = self
            .listen
            .iter()
            .map(|a| a.clone().with(Protocol::P2p(peer_id)).to_string())
            .collect();
        let nat = match self.nat {
            autonat::NatStatus::Public(_) => "public",
            autonat::NatStatus::Private => "private",
            autonat::NatStatus::Unknown => "unknown",
        };
        SelfInfo { peer_id: peer_id.to_string(), listen, nat: nat.into() }
    }

    fn peers(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .connections
            .iter()
            .map(|(peer, conns)| PeerInfo {
                peer_id: peer.to_string(),
                addrs: conns.iter().map(|(_, a)| a.to_string()).collect(),
                path: if conns.iter().any(|(_, a)| !is_relayed(a)) {
                    Path::Direct
                } else {
                    Path::Relayed
                },
                rtt_ms: self
                    .rtt
                    .get(peer)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        peers
    }

    fn dht(&mut self) -> Vec<DhtEntry> {
        let mut entries = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                entries.push(DhtEntry {
                    peer_id: peer.to_string(),
                    addrs: entry.node.value.iter().map(ToString::to_string).collect(),
                    connected: self.connections.contains_key(&peer),
                });
            }
        }
        entries.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        entries
    }

    fn scores(&self) -> Vec<PeerScore> {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let mut topics: HashMap<PeerId, Vec<String>> = HashMap::new();
        for (peer, peer_topics) in gossipsub.all_peers() {
            topics.insert(*peer, peer_topics.iter().map(ToString::to_string).collect());
        }
        let mut scores: Vec<PeerScore> = self
            .connections
            .keys()
            .map(|peer| PeerScore {
                peer_id: peer.to_string(),
                score: gossipsub.peer_score(peer),
                topics: topics.remove(peer).unwrap_or_default(),
            })
            .collect();
        scores.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        scores
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send { peer, bytes, reply } => {
                let in_flight = self.in_flight.entry(peer).or_default();
                if *in_flight >= MAX_CONCURRENT_MESSAGES {
                    let _ = reply.send(Err(NetworkError::Send {
                        peer: peer.to_string(),
                        reason: format!(
                            "{MAX_CONCURRENT_MESSAGES} messages to it are awaiting their answers \
                             already, the most one connection carries; send again once some \
                             are answered"
                        ),
                    }));
                    return;
                }
                *in_flight += 1;
                let addrs = self.dialed.get(&peer).cloned().unwrap_or_default();
                let messages = &mut self.swarm.behaviour_mut().messages;
                let id = messages.send_request_with_addresses(&peer, bytes, addrs);
                self.pending_sends.insert(id, (peer, reply));
            }
            Command::Publish { topic, bytes, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(gossipsub::IdentTopic::new(topic.clone()), bytes);
                let result = match result {
                    Ok(_) => Ok(()),
                    // Nobody else subscribes to the topic (yet): the broadcast reached
                    // every remote subscriber there is, which is none.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                        debug!(%topic, "Published to no remote subscriber.");
                        Ok(())
                    }
                    Err(e) => Err(NetworkError::Publish { topic, reason: e.to_string() }),
                };
                let _ = reply.send(result);
            }
            Command::Subscribe { topic, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&gossipsub::IdentTopic::new(topic.clone()))
                    .map(drop)
                    .map_err(|e| NetworkError::Publish { topic, reason: e.to_string() });
                let _ = reply.send(result);
            }
            Command::Dial { addr, reply } => {
                let Some(peer) = peer_of(&addr) else {
                    let _ = reply.send(Err(NetworkError::Dial {
                        addr: addr.to_string(),
                        reason: "the address needs /p2p/<peer id>".into(),
                    }));
                    return;
                };
                if self.connections.contains_key(&peer) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                self.dialing(&peer, addr.clone());
                match self.swarm.dial(addr.clone()) {
                    Ok(()) => self.pending_dials.entry(peer).or_default().push(reply),
                    Err(e) => {
                        let _ = reply.send(Err(NetworkError::Dial {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peers());
            }
            Command::SelfInfo { reply } => {
                let _ = reply.send(self.self_info());
            }
            Command::Dht { reply } => {
                let _ = reply.send(self.dht());
            }
            Command::Scores { reply } => {
                let _ = reply.send(self.scores());
            }
            Command::Block { peer, blocked, reply } => {
                let list = &mut self.swarm.behaviour_mut().blocked;
                if blocked {
                    list.block_peer(peer);
                } else {
                    list.unblock_peer(peer);
                }
                let _ = reply.send(());
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<crate::behaviour::BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "Listening.");
                self.relays.listening(&address, &mut self.swarm);
                self.listen.push(address);
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                let addr = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                debug!(peer = %peer_id, %addr, relayed = is_relayed(&addr), "Connected.");
                if !is_relayed(&addr) {
                    self.relays.connected(&peer_id, &mut self.swarm);
                }
                let conns = self.connections.entry(peer_id).or_default();
                if conns.is_empty() {
                    let how = if is_relayed(&addr) { "through a relay" } else { "directly" };
                    let peer = peer_id.to_string();
                    dms_telemetry::event!(INFO, kind: dms_telemetry::event::kind::PEER, peer: peer.as_str(), state: "connected";
                        "Peer {peer} connected {how} ({addr}).");
                }
                conns.push((connection_id, addr));
                peers_gauge(self.connections.len());
                for reply in self.pending_dials.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(()));
                }
                if self.connections.len() == 1 && self.discovery {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, .. } => {
                if let Some(conns) = self.connections.get_mut(&peer_id) {
                    conns.retain(|(id, _)| *id != connection_id);
                    if !conns.iter().any(|(_, addr)| !is_relayed(addr)) {
                        self.relays.disconnected(&peer_id);
                    }
                    if conns.is_empty() {
                        self.connections.remove(&peer_id);
                        self.rtt.remove(&peer_id);
                        let peer = peer_id.to_string();
                        dms_telemetry::event!(INFO, kind: dms_telemetry::event::kind::PEER, peer: peer.as_str(), state: "disconnected";
                            "Peer {peer} disconnected.");
                        peers_gauge(self.connections.len());
                    }
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen.retain(|a| *a != address);
            }
            SwarmEvent::ListenerClosed { listener_id, addresses, reason } => {
                self.listen.retain(|a| !addresses.contains(a));
                self.relays.listener_closed(listener_id, &reason);
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                for reply in self.pending_dials.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(Err(NetworkError::Dial {
                        addr: peer.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => {}
        }
    }

    /// Puts `peer`'s address in the DHT routing table, on a node that looks for peers
    /// (`Config::discovery`); a node that does not keeps its table empty, so that
    /// libp2p never bootstraps from it (it does whenever a peer enters a table of fewer
    /// than 20). Its dials by peer id find the addresses it dialed (`dialing`) and those
    /// identify heard peers announce.
    fn learn_address(&mut self, peer: &PeerId, addr: Multiaddr) {
        if self.discovery {
            self.swarm.behaviour_mut().kad.add_address(peer, addr);
        }
    }

    /// `peer` is being dialed at `addr`: learned into the DHT table on a node that looks
    /// for peers, else kept for redials (at most [`MAX_DIALED`] peers, 4 addresses each).
    fn dialing(&mut self, peer: &PeerId, addr: Multiaddr) {
        if self.discovery {
            self.learn_address(peer, addr);
            return;
        }
        if self.dialed.len() >= MAX_DIALED && !self.dialed.contains_key(peer) {
            return;
        }
        let addrs = self.dialed.entry(*peer).or_default();
        if !addrs.contains(&addr) {
            if addrs.len() == 4 {
                addrs.remove(0);
            }
            addrs.push(addr);
        }
    }

    /// The reply of send `id`, which is over: no longer counted in flight.
    fn answered(&mut self, id: OutboundRequestId) -> Option<SendReply> {
        let (peer, reply) = self.pending_sends.remove(&id)?;
        if let Some(count) = self.in_flight.get_mut(&peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight.remove(&peer);
            }
        }
        Some(reply)
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in info.listen_addrs {
                    self.learn_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. }) => {
                self.rtt.insert(peer, rtt);
            }
            // A connection whose pings go unanswered is a cut link (libp2p keeps it open
            // since ping 0.44): closed, so that the peer is not listed as connected with
            // the last RTT it had, and the next message to it dials afresh.
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(failure @ (ping::Failure::Timeout | ping::Failure::Other { .. })),
            }) => {
                info!(%peer, error = %failure, "No ping answer: closing the connection.");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.learn_address(&peer, addr.clone());
                    if !self.connections.contains_key(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                info!(nat = ?new, "NAT status changed.");
                self.nat = new;
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => {
                debug!(%peer, "DHT routing updated.");
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            }) => {
                let source = message.source.unwrap_or(propagation_source);
                let inbound = Inbound::Broadcast {
                    source,
                    topic: message.topic.to_string(),
                    bytes: message.data,
                };
                if self.inbound.try_send(inbound).is_err() {
                    warn!(%source, "Inbound queue full: dropped a broadcast.");
                }
            }
            BehaviourEvent::Messages(request_response::Event::Message {
                peer, message, ..
            }) => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let (respond, answer) = oneshot::channel();
                    let message = Inbound::Message { peer, bytes: request, respond: Some(respond) };
                    if self.inbound.try_send(message).is_err() {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .messages
                            .send_response(channel, BUSY.to_vec());
                        return;
                    }
                    let id = self.next_exchange;
                    self.next_exchange = self.next_exchange.wrapping_add(1);
                    self.open_exchanges.insert(id, channel);
                    self.responding.push(Box::pin(async move {
                        match tokio::time::timeout(RESPONSE_WAIT, answer).await {
                            Ok(Ok(envelope)) => (id, envelope),
                            _ => (id, ACCEPTED.to_vec()),
                        }
                    }));
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.answered(request_id) {
                        let result = if response.is_empty() {
                            Ok(None)
                        } else if response == BUSY {
                            Err(NetworkError::Refused {
                                reason: "the peer's inbound queue is full".into(),
                            })
                        } else {
                            Ok(Some(response))
                        };
                        let _ = reply.send(result);
                    }
                }
            },
            BehaviourEvent::Messages(request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            }) => {
                if let Some(reply) = self.answered(request_id) {
                    let _ = reply.send(Err(NetworkError::Send {
                        peer: peer.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            BehaviourEvent::Messages(request_response::Event::InboundFailure {
                peer,
                error,
                ..
            }) => {
                debug!(%peer, %error, "Inbound message failed (oversized or broken frame).");
            }
            _ => {}
        }
    }
}

/// `dms_peers_connected`: peers with at least one connection.
fn peers_gauge(peers: usize) {
    dms_telemetry::metrics::set(
        "dms_peers_connected",
        "Peers this node has at least one connection to.",
        &[],
        peers as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_through_a_relay_leads_to_the_peer_not_the_relay() {
        let relay: PeerId =
            "12D3KooWNeJRJMppZAGmfvKb5PT3YYPiyginQVCkXucjoSDvsBnS".parse().expect("id");
        let peer: PeerId =
            "12D3KooWQnGvMjGBR3z3pm3NTn5CeAFym63cXqj5aReVtcksGwXw".parse().expect("id");
        let direct: Multiaddr =
            format!("/ip4/10.0.0.1/tcp/4001/p2p/{relay}").parse().expect("addr");
        let circuit: Multiaddr = format!("{direct}/p2p-circuit/p2p/{peer}").parse().expect("addr");
        assert_eq!(peer_of(&direct), Some(relay));
        assert_eq!(peer_of(&circuit), Some(peer));
        assert!(is_relayed(&circuit) && !is_relayed(&direct));
        assert_eq!(peer_of(&"/ip4/10.0.0.1/tcp/1".parse().expect("addr")), None);
    }
}
