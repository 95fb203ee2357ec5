//! In-process multi-node harness.
//!
//! [`Net::start`] runs N real dms nodes in one process: each has its own key, store (in
//! a temporary directory), libp2p host and root actor with the node behaviors, started
//! by the same `dms_node::start_network` that `dms run` uses. Hosts talk over the libp2p
//! memory transport (or TCP on loopback, see [`Options::tcp`]), so whole-network tests
//! run in milliseconds, with no ports and no flakiness from the machine's network.
//!
//! [`Node::serve_deployments`] makes a node a provider and orchestrator, with its
//! allocations run by an executor the test passes (usually one fake executor shared by
//! every node); [`settle`] follows a deployment until it runs or ends.
//!
//! [`Net::partition`] splits the network by blocking every peer across the cut (their
//! connections close and new ones are refused); [`Net::heal`] lifts the blocks and
//! reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use dms_actor::{Actor, Handle, Reply};
use dms_crypto::{Did, KeyPair, KeyType};
use dms_network::{Client, Multiaddr, PeerId, Transports};
use dms_node::NetworkRuntime;
use dms_store::Store;
use dms_ucan::{CapContext, Contexts, Verifier};

/// How long harness waits may take.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The submitter the tests create deployments for (a `did:key` nobody holds; quotas
/// count deployments per submitter).
pub fn submitter() -> String {
    "did:key:z6MkTestSubmitter".to_string()
}

/// Memory-transport ports are process-wide: hand out distinct ones.
static NEXT_PORT: AtomicU64 = AtomicU64::new(4_000_000);

/// How the nodes are built.
#[derive(Clone, Debug)]
pub struct Options {
    /// The actor runtime settings of every node (rate limits, message size, ...).
    pub runtime: dms_actor::Config,
    /// Hosts on TCP loopback instead of the memory transport.
    pub tcp: bool,
    /// Largest direct message, in bytes.
    pub max_message_bytes: usize,
    /// Who connects to whom before [`Net::start`] returns.
    pub topology: Topology,
}

/// The connections [`Net::start`] waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Topology {
    /// Every node to every other (at most a couple of hundred nodes: each connection
    /// costs both ends a ping every 10 s and a share of gossip).
    #[default]
    Mesh,
    /// Every node to node 0 (the bootstrap node) only — nodes after the first run no
    /// DHT discovery (`dms_network::Config::discovery`): how a large network looks
    /// from the node everyone bootstraps from, without the other nodes' connections
    /// among themselves, which a real network spreads over N machines but one process
    /// would pay for on its few cores. For simulations of hundreds or thousands of
    /// nodes.
    Star,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runtime: dms_actor::Config::default(),
            tcp: false,
            max_message_bytes: dms_actor::envelope::DEFAULT_MAX_ENVELOPE_BYTES,
            topology: Topology::Mesh,
        }
    }
}

/// One node of the harness.
pub struct Node {
    /// The node key (its DID and peer id).
    pub key: KeyPair,
    /// The running host, router and root actor.
    pub runtime: NetworkRuntime,
    /// Where it listens (with `/p2p/<peer id>`).
    pub addr: Multiaddr,
    /// Its store.
    pub store: Store,
    /// Its capability contexts (the one write path; live in every actor).
    pub contexts: Arc<Contexts>,
    /// Its resource accounts, once it serves deployments.
    resources: std::sync::OnceLock<dms_provider::resources::ResourceManager>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// The network client.
    pub fn client(&self) -> &Client {
        &self.runtime.client
    }

    /// The root actor.
    pub fn actor(&self) -> &Actor {
        &self.runtime.actor
    }

    /// The root actor's handle.
    pub fn handle(&self) -> &Handle {
        self.runtime.actor.handle()
    }

    /// The node's DID.
    pub fn did(&self) -> Did {
        self.key.did()
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.runtime.client.peer_id()
    }

    /// Trusts `did` fully (adds it as a root of the node's context, stored and in force
    /// in every running actor).
    pub fn trust(&self, did: &Did) {
        self.contexts
            .change::<_, dms_ucan::Error>(dms_node::NODE_CONTEXT, |c| Ok(c.add_root(did.clone())))
            .expect("the node context takes a root");
    }

    /// A grant from this node to `audience` for `commands` and broadcast `topics`.
    pub fn grant(&self, audience: &Did, commands: &[&str], topics: &[&str]) -> dms_ucan::Chain {
        let path = |p: &&str| dms_ucan::Command::parse(p).expect("a command path");
        let spec = dms_ucan::Spec {
            commands: commands.iter().map(path).collect(),
            topics: topics.iter().map(path).collect(),
            ..Default::default()
        };
        self.actor().context().grant(&self.key, audience.clone(), &spec).expect("grant")
    }

    /// Adds `chain` (delegated to this node) to the node's provide anchors, stored and in
    /// force in every running actor.
    pub fn provide(&self, chain: &dms_ucan::Chain) {
        let verifier = self.contexts.verifier().clone();
        self.contexts
            .change::<_, dms_ucan::Error>(dms_node::NODE_CONTEXT, |c| {
                c.add_provide(chain.clone(), &verifier, dms_ucan::now())
            })
            .expect("the node context takes the provide anchor");
    }

    /// Invokes `behavior` on `to` with a JSON payload.
    pub async fn invoke(&self, to: &Handle, behavior: &str, payload: serde_json::Value) -> Reply {
        let bytes = if payload.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&payload)
                .map_err(|e| dms_actor::ActorError::Internal { reason: e.to_string() })?
        };
        self.runtime.actor.invoke(to, behavior, bytes, PATIENCE).await
    }

    /// Makes this node a provider and an orchestrator, as `dms run` does: onboards
    /// `offer`, runs every allocation (`wasm` and `docker`) on `executor`, and registers
    /// the deployment behaviors. Returns the node's deployment registry.
    pub async fn serve_deployments(
        &self,
        executor: Arc<dyn dms_executor::Executor>,
        offer: dms_types::resources::Resources,
    ) -> Arc<dms_orchestrator::Registry> {
        self.serve_deployments_with(executor, offer, &dms_node::Config::default()).await
    }

    /// [`Node::serve_deployments`] with the deployment settings of `config` (e.g. short
    /// heartbeats for supervision tests).
    pub async fn serve_deployments_with(
        &self,
        executor: Arc<dyn dms_executor::Executor>,
        offer: dms_types::resources::Resources,
        config: &dms_node::Config,
    ) -> Arc<dms_orchestrator::Registry> {
        let manager = dms_provider::resources::ResourceManager::open(
            self.store.clone(),
            dms_provider::resources::system_clock(),
        )
        .expect("resource accounts open");
        manager.onboard(offer.clone(), &offer).expect("onboarding");
        let _ = self.resources.set(manager.clone());
        use dms_ensemble::model::Executor as Kind;
        let executors = dms_provider::Executors::new()
            .with(Kind::Wasm, executor.clone())
            .with(Kind::Docker, executor);
        dms_node::start_deployments(&self.runtime, manager, &self.store, config, executors)
            .await
            .expect("deployments start")
            .registry
    }

    /// Its resource accounts now (it must serve deployments).
    pub fn accounts(&self) -> dms_protocol::onboarding::Accounts {
        self.resources.get().expect("the node serves deployments").status()
    }

    /// The peer ids this node is connected to.
    pub async fn connected(&self) -> Vec<PeerId> {
        self.runtime
            .client
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.peer_id.parse().ok())
            .collect()
    }
}

/// N nodes in one process.
pub struct Net {
    /// The nodes, in start order.
    pub nodes: Vec<Node>,
}

impl Net {
    /// Starts `n` nodes; node `i > 0` bootstraps from node 0 (as a real network does),
    /// and the call returns once every node is connected to every other
    /// ([`Topology::Mesh`]) or to node 0 ([`Topology::Star`]).
    pub async fn start(n: usize, options: Options) -> Net {
        let first = start_node(&options, Vec::new(), n).await;
        let bootstrap = vec![first.addr.clone()];
        let mut nodes = vec![first];
        // A mesh forms best one node at a time (each finds the earlier ones through the
        // DHT); a star's nodes start a few at a time (a start is mostly waiting: the
        // store's first flush, the listener).
        let at_once = if options.topology == Topology::Star { 16 } else { 1 };
        let mut starting =
            futures::stream::iter((1..n).map(|_| start_node(&options, bootstrap.clone(), n)))
                .buffered(at_once);
        while let Some(node) = starting.next().await {
            nodes.push(node);
        }
        let net = Net { nodes };
        match options.topology {
            Topology::Mesh => net.wait_full_mesh().await,
            Topology::Star => net.wait_star().await,
        }
        net
    }

    /// Waits until every node is connected to node 0.
    pub async fn wait_star(&self) {
        let started = Instant::now();
        let Some((hub, rest)) = self.nodes.split_first() else { return };
        let patience = PATIENCE.max(Duration::from_millis(50) * rest.len() as u32);
        loop {
            let connected = hub.connected().await;
            let missing: Vec<&Node> =
                rest.iter().filter(|n| !connected.contains(&n.peer_id())).collect();
            if missing.is_empty() {
                return;
            }
            for node in missing {
                let _ = node.client().dial(hub.addr.clone()).await;
            }
            assert!(started.elapsed() < patience, "the nodes did not all connect to node 0");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node is connected to every other (discovery through the DHT).
    pub async fn wait_full_mesh(&self) {
        let started = Instant::now();
        loop {
            let mut complete = true;
            for (i, node) in self.nodes.iter().enumerate() {
                let connected = node.connected().await;
                let missing = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(j, other)| *j != i && !connected.contains(&other.peer_id()))
                    .count();
                if missing > 0 {
                    complete = false;
                    // Speed discovery up where the DHT has not done it yet.
                    for (j, other) in self.nodes.iter().enumerate() {
                        if j != i && !connected.contains(&other.peer_id()) {
                            let _ = node.client().dial(other.addr.clone()).await;
                        }
                    }
                }
            }
            if complete {
                return;
            }
            assert!(started.elapsed() < PATIENCE, "the nodes did not all connect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Every node trusts every other node's DID as a root (one change of each node's
    /// context: N writes, not N²).
    pub fn trust_all(&self) {
        let dids: Vec<Did> = self.nodes.iter().map(Node::did).collect();
        for a in &self.nodes {
            let me = a.did();
            a.contexts
                .change::<_, dms_ucan::Error>(dms_node::NODE_CONTEXT, |c| {
                    let mut added = false;
                    for did in dids.iter().filter(|d| **d != me) {
                        added |= c.add_root(did.clone());
                    }
                    Ok(added)
                })
                .expect("the node context takes the roots");
        }
    }

    /// Cuts the network between the nodes in `side` and all the others: every peer
    /// across the cut is blocked both ways, so connections close and stay closed.
    pub async fn partition(&self, side: &[usize]) {
        for (i, a) in self.nodes.iter().enumerate() {
            for (j, b) in self.nodes.iter().enumerate() {
                if side.contains(&i) != side.contains(&j) {
                    let _ = a.client().block(b.peer_id()).await;
                }
            }
        }
        // Wait for the connections across the cut to close.
        let started = Instant::now();
        loop {
            let mut open = false;
            for (i, a) in self.nodes.iter().enumerate() {
                let connected = a.connected().await;
                for (j, b) in self.nodes.iter().enumerate() {
                    if side.contains(&i) != side.contains(&j) && connected.contains(&b.peer_id()) {
                        open = true;
                    }
                }
            }
            if !open {
                return;
            }
            assert!(started.elapsed() < PATIENCE, "connections across the cut stayed open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lifts every block and waits for the full mesh again.
    pub async fn heal(&self) {
        for a in &self.nodes {
            for b in &self.nodes {
                if a.peer_id() != b.peer_id() {
                    let _ = a.client().unblock(b.peer_id()).await;
                }
            }
        }
        self.wait_full_mesh().await;
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for node in self.nodes {
            node.runtime.shutdown().await;
        }
    }
}

/// Follows deployment `id` on `registry` (long-polling its events) until it runs — with
/// `until_finished`, until it has ended — or has ended; returns its status then.
pub async fn settle(
    registry: &dms_orchestrator::Registry,
    id: &str,
    until_finished: bool,
) -> dms_orchestrator::Status {
    let mut after = 0;
    loop {
        let status = registry.status(id, after, Duration::from_secs(5)).await.expect("status");
        after = status.events.last().map_or(after, |e| e.seq);
        let running = status.state == dms_orchestrator::DeploymentState::Running;
        if (running && !until_finished) || status.state.is_terminal() {
            return status;
        }
    }
}

/// Waits until `check` holds, polling every 50 ms; fails the test with `what` after
/// [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts one node with a fresh key and store, in a network of `size` nodes (its
/// connection limit leaves room for all of them).
pub async fn start_node(options: &Options, bootstrap: Vec<Multiaddr>, size: usize) -> Node {
    let key = KeyPair::generate(KeyType::Ed25519);
    let dir = tempfile::Builder::new().prefix("dms-testkit-").tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("dms.redb")).expect("store opens");
    let contexts = Arc::new(Contexts::new(
        dms_node::caps::StoreContexts(store.clone()),
        Arc::new(Verifier::default()),
    ));
    let context = CapContext::new(dms_node::NODE_CONTEXT, key.did());
    contexts.save(context, None).expect("context saved");
    let listen: Multiaddr = if options.tcp {
        "/ip4/127.0.0.1/tcp/0".parse().expect("tcp multiaddr")
    } else {
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        format!("/memory/{port}").parse().expect("memory multiaddr")
    };
    let discovery = options.topology == Topology::Mesh || bootstrap.is_empty();
    let network = dms_network::Config {
        listen: vec![listen],
        bootstrap,
        transports: if options.tcp { Transports::TcpQuic } else { Transports::Memory },
        max_message_bytes: options.max_message_bytes,
        discovery,
        max_connections: dms_network::Config::default()
            .max_connections
            .max(u32::try_from(size + 16).unwrap_or(u32::MAX)),
        ..dms_network::Config::default()
    };
    let mut runtime = options.runtime.clone();
    runtime.max_envelope_bytes = options.max_message_bytes;
    let runtime = dms_node::start_network(&key, network, runtime, &contexts, Instant::now())
        .await
        .expect("node starts");
    let addr = listen_addr(&runtime.client).await;
    Node { key, runtime, addr, store, contexts, resources: Default::default(), _dir: dir }
}

async fn listen_addr(client: &Client) -> Multiaddr {
    let started = Instant::now();
    loop {
        if let Ok(info) = client.self_info().await
            && let Some(addr) = info.listen.first()
        {
            return addr.parse().expect("listen multiaddr");
        }
        assert!(started.elapsed() < PATIENCE, "the host did not start listening");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
