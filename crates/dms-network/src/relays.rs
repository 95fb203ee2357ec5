//! Staying reachable through relays (`network.relays`) from behind NAT: a reservation
//! is kept on each relay, i.e. the node listens on `<relay>/p2p-circuit` — but only once
//! it is connected to the relay (asking while the first dial is still on its way makes
//! libp2p's relay client drop the request), and again on the next tick whenever the
//! reservation's listener closed (the relay went away or refused); relays not connected
//! are dialed again on every tick.

use std::collections::HashMap;

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Swarm};
use tracing::{debug, info, warn};

use crate::behaviour::Behaviour;

/// How often relays that are not connected are dialed again.
pub(crate) const REDIAL: std::time::Duration = std::time::Duration::from_secs(10);

struct Relay {
    addr: Multiaddr,
    listener: Option<ListenerId>,
    connected: bool,
}

/// The relays of this node and its reservation listener on each.
#[derive(Default)]
pub(crate) struct Relays {
    by_peer: HashMap<PeerId, Relay>,
    /// This node is a relay itself (`network.relay_service`).
    pub(crate) serving: bool,
}

impl Relays {
    /// The relays at `addrs` (each with `/p2p/<peer id>`; others are skipped, warned);
    /// `serving`: this node is a relay itself.
    pub(crate) fn new(addrs: &[Multiaddr], serving: bool) -> Relays {
        let mut by_peer = HashMap::new();
        for addr in addrs {
            match crate::event_loop::peer_of(addr) {
                Some(peer) => {
                    by_peer.insert(
                        peer,
                        Relay { addr: addr.clone(), listener: None, connected: false },
                    );
                }
                None => warn!(%addr, "A relay address needs /p2p/<peer id>; skipped."),
            }
        }
        Relays { by_peer, serving }
    }

    /// This node listens at `addr`: a relay tells the peers it serves where it is (a
    /// reservation without the relay's addresses is refused by the client), so its
    /// listen addresses other machines can reach are its external ones — the operator
    /// who enabled the service made them reachable.
    pub(crate) fn listening(&self, addr: &Multiaddr, swarm: &mut Swarm<Behaviour>) {
        // Never loopback or link-local ones: no other machine reaches those.
        let usable = addr.iter().all(|p| match p {
            Protocol::P2pCircuit => false,
            Protocol::Ip4(ip) => !ip.is_loopback() && !ip.is_link_local(),
            Protocol::Ip6(ip) => !ip.is_loopback() && !ip.is_unicast_link_local(),
            _ => true,
        });
        if self.serving && usable {
            swarm.add_external_address(addr.clone());
        }
    }

    /// Dials every relay not connected, and asks those connected without a reservation
    /// for one.
    pub(crate) fn tick(&mut self, swarm: &mut Swarm<Behaviour>) {
        let mut ask = Vec::new();
        for (peer, relay) in &self.by_peer {
            if relay.connected {
                if relay.listener.is_none() {
                    ask.push(*peer);
                }
            } else if let Err(error) = swarm.dial(relay.addr.clone()) {
                debug!(addr = %relay.addr, %error, "Cannot dial a relay.");
            }
        }
        for peer in ask {
            self.connected(&peer, swarm);
        }
    }

    /// A direct connection to `peer` is up: make the reservation if it is a relay.
    pub(crate) fn connected(&mut self, peer: &PeerId, swarm: &mut Swarm<Behaviour>) {
        let Some(relay) = self.by_peer.get_mut(peer) else { return };
        relay.connected = true;
        if relay.listener.is_some() {
            return;
        }
        let circuit = relay.addr.clone().with(Protocol::P2pCircuit);
        match swarm.listen_on(circuit.clone()) {
            Ok(id) => {
                info!(%circuit, "Asking the relay for a reservation.");
                relay.listener = Some(id);
            }
            Err(error) => warn!(%circuit, %error, "Cannot listen through the relay."),
        }
    }

    /// The last connection to `peer` closed.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        if let Some(relay) = self.by_peer.get_mut(peer) {
            relay.connected = false;
        }
    }

    /// A listener closed: if it was a relay's reservation, it is asked for again on the
    /// next tick (not at once: a relay that refuses would be asked in a loop).
    pub(crate) fn listener_closed(&mut self, id: ListenerId, why: &dyn std::fmt::Debug) {
        let Some((peer, relay)) = self.by_peer.iter_mut().find(|(_, r)| r.listener == Some(id))
        else {
            return;
        };
        warn!(relay = %peer, reason = ?why, "The relay reservation ended; asking again soon.");
        relay.listener = None;
    }
}
