//! [`Subnet`]: one provider's part of every deployment network it hosts. It owns the
//! QUIC endpoint, the interfaces of its local allocations, a connection (and a dial task)
//! per remote provider, and the [`Switch`] that decides where each packet goes.
//!
//! Tasks and who stops them: the accept loop and the peer tasks are aborted by
//! [`Subnet::shutdown`] (peer tasks also when no route names their peer any more); a
//! local interface's reader is aborted when the allocation is detached; a connection's
//! reader ends when the connection closes (the endpoint closes them all on shutdown).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dms_protocol::subnet::tag;
use dms_types::backoff::Backoff;
use libp2p_identity::{Keypair, PeerId};
use quinn::{Connection, Endpoint};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};
use tun_rs::AsyncDevice;

use crate::switch::Switch;
use crate::{forward, link, tun};

/// Settings (the node's `[subnet]` section).
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the endpoint listens (UDP).
    pub listen: SocketAddr,
    /// The MTU of allocations' interfaces: what a frame carries on a 1500-byte path.
    pub mtu: u16,
}

impl Default for Config {
    fn default() -> Config {
        Config { listen: SocketAddr::from(([0, 0, 0, 0], 0)), mtu: 1400 }
    }
}

/// One allocation's address on its deployment's network and the provider hosting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The allocation's address.
    pub address: Ipv4Addr,
    /// The allocation's name.
    pub allocation: String,
    /// The hosting provider's peer id.
    pub peer: String,
    /// Where that provider's subnet endpoint answers.
    pub endpoints: Vec<SocketAddr>,
}

/// Packets dropped, by reason (see [`crate::switch::Drop`]), and carried.
#[derive(Debug, Default)]
pub struct Counters {
    /// Packets written to a local interface.
    pub delivered: AtomicU64,
    /// Packets sent to another provider.
    pub sent: AtomicU64,
    /// Packets dropped.
    pub dropped: AtomicU64,
}

/// This provider's part of every deployment network it hosts.
#[derive(Clone)]
pub struct Subnet {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    me: String,
    keypair: Keypair,
    endpoint: Endpoint,
    pub(crate) mtu: u16,
    state: Mutex<State>,
    pub(crate) counters: Counters,
}

pub(crate) struct State {
    pub(crate) switch: Switch,
    /// (deployment tag, allocation name) → its interface and reader.
    pub(crate) local: HashMap<([u8; 8], String), Local>,
    /// Peer id → its connection, endpoints and dial task.
    pub(crate) peers: HashMap<String, Peer>,
    accept: Option<AbortHandle>,
}

pub(crate) struct Local {
    pub(crate) device: Arc<AsyncDevice>,
    reader: AbortHandle,
}

#[derive(Default)]
pub(crate) struct Peer {
    pub(crate) connection: Option<Connection>,
    /// The connection is the one the lower peer id dialed.
    preferred: bool,
    endpoints: Vec<SocketAddr>,
    task: Option<AbortHandle>,
}

impl std::fmt::Debug for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subnet").field("me", &self.inner.me).finish_non_exhaustive()
    }
}

impl Subnet {
    /// Binds the endpoint and starts accepting providers' connections.
    pub fn start(keypair: &Keypair, config: &Config) -> Result<Subnet, link::Error> {
        let endpoint = link::endpoint(keypair, config.listen)?;
        let me = keypair.public().to_peer_id().to_string();
        let state = State {
            switch: Switch::new(me.clone()),
            local: HashMap::new(),
            peers: HashMap::new(),
            accept: None,
        };
        let inner = Arc::new(Inner {
            me,
            keypair: keypair.clone(),
            endpoint,
            mtu: config.mtu,
            state: Mutex::new(state),
            counters: Counters::default(),
        });
        let accept = tokio::spawn(accept(inner.clone())).abort_handle();
        inner.state().accept = Some(accept);
        info!(listen = ?inner.endpoint.local_addr().ok(), "Subnet endpoint listening.");
        Ok(Subnet { inner })
    }

    /// The UDP address the endpoint is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// The interface MTU.
    pub fn mtu(&self) -> u16 {
        self.inner.mtu
    }

    /// Packets carried and dropped so far.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Creates the interface of `allocation` (deployment `deployment`) inside the network
    /// namespace of process `pid`, with `address`/`prefix`, and starts carrying its packets.
    pub async fn attach(
        &self,
        deployment: &str,
        allocation: &str,
        address: Ipv4Addr,
        prefix: u8,
        pid: u32,
    ) -> std::io::Result<()> {
        let interface = tun::Interface { address, prefix, mtu: self.inner.mtu };
        let device = Arc::new(tun::create_in(pid, interface).await?);
        let tag = tag(deployment);
        let reader = tokio::spawn(forward::read_local(
            self.inner.clone(),
            tag,
            allocation.to_string(),
            device.clone(),
        ))
        .abort_handle();
        let key = (tag, allocation.to_string());
        if let Some(old) = self.inner.state().local.insert(key, Local { device, reader }) {
            old.reader.abort();
        }
        info!(deployment, allocation, %address, pid, "Allocation joined its subnet.");
        Ok(())
    }

    /// Removes the interface of `allocation`; once no allocation of the deployment is
    /// left here, its routes go too.
    pub fn detach(&self, deployment: &str, allocation: &str) {
        let tag = tag(deployment);
        let mut state = self.inner.state();
        if let Some(local) = state.local.remove(&(tag, allocation.to_string())) {
            local.reader.abort();
            debug!(deployment, allocation, "Allocation left its subnet.");
        }
    }

    /// Forgets `deployment`: its routes, and the connections no other deployment needs
    /// (when none of its allocations is hosted here any more).
    pub fn forget(&self, deployment: &str) {
        let tag = tag(deployment);
        let mut state = self.inner.state();
        state.local.retain(|(t, _), local| {
            let keep = *t != tag;
            if !keep {
                local.reader.abort();
            }
            keep
        });
        state.switch.remove(&tag);
        prune_peers(&mut state);
    }

    /// Replaces the routes of `deployment` and starts connecting to the providers they
    /// name.
    pub fn set_routes(&self, deployment: &str, routes: &[Route]) {
        let tag = tag(deployment);
        let mut state = self.inner.state();
        state.switch.set_routes(
            tag,
            routes.iter().map(|r| (r.address, r.allocation.clone(), r.peer.clone())),
        );
        for route in routes.iter().filter(|r| r.peer != self.inner.me) {
            let Ok(peer_id) = route.peer.parse::<PeerId>() else {
                warn!(peer = %route.peer, "A route names a provider that is not a peer id.");
                continue;
            };
            let peer = state.peers.entry(route.peer.clone()).or_default();
            // The newest routes say where the provider is now (its port changes when it
            // restarts on a free one).
            if !route.endpoints.is_empty() {
                peer.endpoints.clone_from(&route.endpoints);
            }
            if peer.task.is_none() {
                peer.task =
                    Some(tokio::spawn(keep_connected(self.inner.clone(), peer_id)).abort_handle());
            }
        }
        prune_peers(&mut state);
    }

    /// Stops every task, removes every interface and closes every connection.
    pub fn shutdown(&self) {
        let mut state = self.inner.state();
        for (_, local) in state.local.drain() {
            local.reader.abort();
        }
        for (_, peer) in state.peers.drain() {
            peer.task.inspect(AbortHandle::abort);
        }
        state.accept.take().inspect(AbortHandle::abort);
        self.inner.endpoint.close(0u32.into(), b"shutdown");
    }
}

/// Stops the peer tasks of providers no route names any more.
fn prune_peers(state: &mut State) {
    let wanted = state.switch.peers();
    state.peers.retain(|peer, p| {
        let keep = wanted.contains(peer);
        if !keep {
            p.task.take().inspect(AbortHandle::abort);
            if let Some(c) = p.connection.take() {
                c.close(0u32.into(), b"no shared deployment");
            }
        }
        keep
    });
}

impl Inner {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert or remove: a panic cannot leave it half made.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `connection` as the way to its peer and starts reading its frames.
    /// Keeps `connection` (dialed by this side when `dialed`) as the way to `peer` and
    /// starts reading its frames. When both sides dialed at once, both keep the one the
    /// lower peer id dialed and close the other.
    fn adopt(self: &Arc<Self>, peer: String, connection: Connection, dialed: bool) {
        let preferred = dialed == (self.me < peer);
        {
            let mut state = self.state();
            let slot = state.peers.entry(peer.clone()).or_default();
            let live = slot.connection.as_ref().filter(|c| c.close_reason().is_none());
            if live.is_some_and(|_| slot.preferred && !preferred) {
                connection.close(0u32.into(), b"duplicate");
                return;
            }
            if let Some(old) = slot.connection.replace(connection.clone()) {
                old.close(0u32.into(), b"replaced");
            }
            slot.preferred = preferred;
        }
        tokio::spawn(forward::read_remote(self.clone(), peer, connection));
    }
}

async fn accept(inner: Arc<Inner>) {
    while let Some(incoming) = inner.endpoint.accept().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => match link::remote_peer(&connection) {
                    // Only providers some route names: a deployment shared with them.
                    Some(peer) if inner.state().switch.peers().contains(&peer.to_string()) => {
                        debug!(%peer, %remote, "Subnet connection accepted.");
                        inner.adopt(peer.to_string(), connection, false);
                    }
                    Some(peer) => {
                        debug!(%peer, %remote, "Subnet connection from a stranger closed.");
                        connection.close(2u32.into(), b"no shared deployment");
                    }
                    None => connection.close(1u32.into(), b"no peer identity"),
                },
                Err(e) => debug!(%remote, error = %e, "Subnet handshake failed."),
            }
        });
    }
}

/// How long a dial to one endpoint may take before the next is tried.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// Dials `peer` whenever there is no live connection to it, backing off between failed
/// rounds over its endpoints.
async fn keep_connected(inner: Arc<Inner>, peer: PeerId) {
    let key = peer.to_string();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let (connection, endpoints) = {
            let state = inner.state();
            let p = state.peers.get(&key);
            (
                p.and_then(|p| p.connection.clone()).filter(|c| c.close_reason().is_none()),
                p.map(|p| p.endpoints.clone()).unwrap_or_default(),
            )
        };
        if let Some(connection) = connection {
            backoff.reset();
            connection.closed().await;
            continue;
        }
        match dial(&inner, peer, &endpoints).await {
            Some(connection) => inner.adopt(key.clone(), connection, true),
            None => tokio::time::sleep(backoff.take(Duration::MAX)).await,
        }
    }
}

async fn dial(inner: &Inner, peer: PeerId, endpoints: &[SocketAddr]) -> Option<Connection> {
    let config = link::client(&inner.keypair, peer).ok()?;
    for address in endpoints {
        let connecting = match inner.endpoint.connect_with(config.clone(), *address, "dms") {
            Ok(c) => c,
            Err(e) => {
                debug!(%peer, %address, error = %e, "Cannot dial.");
                continue;
            }
        };
        match tokio::time::timeout(HANDSHAKE, connecting)
            .await
            .unwrap_or_else(|_| Err(quinn::ConnectionError::TimedOut))
        {
            Ok(connection) => {
                debug!(%peer, %address, "Subnet connection made.");
                return Some(connection);
            }
            Err(e) => debug!(%peer, %address, error = %e, "Subnet dial failed."),
        }
    }
    None
}
