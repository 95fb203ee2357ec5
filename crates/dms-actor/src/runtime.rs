//! The runtime: a [`Router`] per node receives envelopes from the transport and hands
//! them to its [`Actor`]s, which check and dispatch them to behaviors.
//!
//! Receive pipeline of an actor, cheapest checks first, each refusal answered with a
//! typed [`ActorError`] when the sender asked for a reply: sender-peer binding (router) →
//! rate limit by peer and class → expiry → signature → replay window → behavior lookup
//! → capability chain (skipped for `/public/...`) → bounded mailbox (`Busy` when full).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dms_crypto::KeyPair;
use dms_ucan::{CapContext, Chain, Command, Limits, LiveContext, Request, Verifier};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::ActorError;
use crate::envelope::{DEFAULT_MAX_ENVELOPE_BYTES, Envelope, Handle, now_ms};
use crate::limiter::{Class, Limiter, Rates};
use crate::replay::{NonceWindow, Refusal};
use crate::stateful::ExitReason;

/// A boxed future, as transports and behaviors return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What behaviors return: the reply payload, or a typed error.
pub type Reply = Result<Vec<u8>, ActorError>;

/// A behavior: runs on an authorized message.
pub type Behavior = Arc<dyn Fn(Message) -> BoxFuture<Reply> + Send + Sync>;

/// Prefix of the one-shot reply behaviors (`/dms/actor/reply/<nonce>`).
pub const REPLY_PREFIX: &str = "/dms/actor/reply/";

/// Answers a message on the exchange it arrived on (the transport's response), with a
/// reply envelope's bytes. Dropping it answers with a plain acknowledgement.
pub type Responder = oneshot::Sender<Vec<u8>>;

/// Moves envelope bytes between nodes. Implemented over libp2p by the network crate
/// and in memory by tests.
pub trait Transport: Send + Sync + 'static {
    /// Sends envelope bytes to `peer`. `Ok(Some(bytes))`: the recipient answered on the
    /// same exchange with an envelope (the reply, when its behavior answered quickly);
    /// `Ok(None)`: accepted, any reply comes as its own message.
    fn send(&self, peer: &str, bytes: Vec<u8>) -> BoxFuture<Result<Option<Vec<u8>>, ActorError>>;
    /// Publishes envelope bytes on a broadcast topic.
    fn publish(&self, topic: &str, bytes: Vec<u8>) -> BoxFuture<Result<(), ActorError>>;
    /// The DID whose key the transport itself authenticated for `peer` (libp2p: the
    /// peer id's key, proven by the Noise handshake), if any. An envelope from that DID
    /// arriving from that peer is already authenticated and integrity-protected by the
    /// connection, so its signature is not checked again. Default: none (always check).
    fn peer_did(&self, _peer: &str) -> Option<dms_crypto::Did> {
        None
    }
}

/// Runtime settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest envelope accepted.
    pub max_envelope_bytes: usize,
    /// Longest validity an envelope may claim (bounds the replay window).
    pub max_ttl: Duration,
    /// Messages queued per actor before `Busy`.
    pub mailbox: usize,
    /// Behaviors running at once per actor.
    pub max_concurrent: usize,
    /// Nonces remembered per actor.
    pub replay_capacity: usize,
    /// Rate limits.
    pub rates: Rates,
    /// Capability chain limits.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_envelope_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
            max_ttl: Duration::from_secs(300),
            mailbox: 1024,
            max_concurrent: 64,
            replay_capacity: 100_000,
            rates: Rates::default(),
            limits: Limits::default(),
        }
    }
}

/// An authorized message handed to a behavior.
#[derive(Clone)]
pub struct Message {
    /// The envelope.
    pub envelope: Envelope,
    /// The actor running the behavior.
    pub actor: Actor,
}

impl Message {
    /// The payload decoded from JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ActorError> {
        if self.envelope.payload.is_empty() {
            return serde_json::from_value(serde_json::Value::Null)
                .map_err(|e| ActorError::BadPayload { reason: e.to_string() });
        }
        serde_json::from_slice(&self.envelope.payload)
            .map_err(|e| ActorError::BadPayload { reason: e.to_string() })
    }
}

/// Encodes `value` as a JSON reply payload.
pub fn json_reply<T: Serialize>(value: &T) -> Reply {
    serde_json::to_vec(value).map_err(|e| ActorError::Internal { reason: e.to_string() })
}

#[derive(Serialize, Deserialize)]
pub(crate) enum ReplyBody {
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    Err(ActorError),
}

/// Receives envelopes for the actors of one node.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<RouterInner>,
}

pub(crate) struct RouterInner {
    pub(crate) peer: String,
    transport: Arc<dyn Transport>,
    pub(crate) config: Config,
    actors: RwLock<HashMap<String, Actor>>,
    subscriptions: RwLock<HashMap<String, Vec<String>>>,
    pub(crate) relays: crate::relay::Waiting,
}

impl Router {
    /// A router for the node at `peer`, sending through `transport`.
    pub fn new(peer: impl Into<String>, transport: Arc<dyn Transport>, config: Config) -> Router {
        Router {
            inner: Arc::new(RouterInner {
                peer: peer.into(),
                transport,
                config,
                actors: RwLock::new(HashMap::new()),
                subscriptions: RwLock::new(HashMap::new()),
                relays: crate::relay::Waiting::default(),
            }),
        }
    }

    /// This node's peer id.
    pub fn peer(&self) -> &str {
        &self.inner.peer
    }

    /// The runtime settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether the connection from `peer` already proves that `did` sent the message
    /// (the transport authenticated `peer` as the key of `did`).
    pub(crate) fn channel_authenticates(&self, peer: &str, did: &dms_crypto::Did) -> bool {
        self.inner.transport.peer_did(peer).is_some_and(|d| d == *did)
    }

    pub(crate) fn actor(&self, inbox: &str) -> Option<Actor> {
        self.inner.actors.read().ok()?.get(inbox).cloned()
    }

    /// Receives a unicast envelope that arrived from `from_peer`.
    pub async fn receive(&self, bytes: &[u8], from_peer: &str) {
        self.receive_with(bytes, from_peer, None).await;
    }

    /// Receives a unicast envelope that arrived from `from_peer`; a reply or refusal is
    /// sent through `respond` (the same exchange) while it is open, else as a message.
    pub async fn receive_with(&self, bytes: &[u8], from_peer: &str, respond: Option<Responder>) {
        let envelope = match Envelope::decode(bytes, self.inner.config.max_envelope_bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                warn!(peer = from_peer, %error, "Dropped an undecodable message.");
                return;
            }
        };
        let Some(to) = envelope.to.clone() else {
            self.refuse(
                &envelope,
                from_peer,
                ActorError::malformed("unicast message without recipient"),
                respond,
            )
            .await;
            return;
        };
        if envelope.from.peer != from_peer {
            let error = ActorError::Spoofed {
                claimed: envelope.from.peer.clone(),
                actual: from_peer.into(),
            };
            self.refuse(&envelope, from_peer, error, respond).await;
            return;
        }
        match self.actor(&to.inbox).filter(|a| a.handle().did == to.did) {
            Some(actor) => actor.incoming(envelope, from_peer, respond).await,
            None if self
                .inner
                .relays
                .complete(&envelope, self.channel_authenticates(from_peer, &envelope.from.did)) => {
            }
            None => {
                let error = ActorError::NoSuchActor { inbox: to.inbox };
                self.refuse(&envelope, from_peer, error, respond).await
            }
        }
    }

    /// Receives a broadcast published by `from_peer` on `topic`.
    pub async fn receive_broadcast(&self, bytes: &[u8], from_peer: &str, topic: &str) {
        let envelope = match Envelope::decode(bytes, self.inner.config.max_envelope_bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                warn!(peer = from_peer, %error, "Dropped an undecodable broadcast.");
                return;
            }
        };
        if envelope.from.peer != from_peer
            || envelope.topic.as_ref().map(Command::as_str) != Some(topic)
        {
            warn!(peer = from_peer, topic, "Dropped a broadcast with a wrong sender or topic.");
            return;
        }
        let inboxes = self
            .inner
            .subscriptions
            .read()
            .ok()
            .and_then(|s| s.get(topic).cloned())
            .unwrap_or_default();
        for inbox in inboxes {
            if let Some(actor) = self.actor(&inbox) {
                actor.incoming(envelope.clone(), from_peer, None).await;
            }
        }
    }

    /// Answers `envelope` with `error` when it asked for a reply, sent to the peer it
    /// actually came from.
    /// (Any actor of this node may sign the refusal; see `Actor::complete`.)
    async fn refuse(
        &self,
        envelope: &Envelope,
        from_peer: &str,
        error: ActorError,
        respond: Option<Responder>,
    ) {
        let actor = self.inner.actors.read().ok().and_then(|a| a.values().next().cloned());
        match actor {
            Some(actor) => actor.refuse(envelope, from_peer, error, respond).await,
            None => debug!(peer = from_peer, %error, "Refused a message; no actor left to answer."),
        }
    }

    /// Sends an envelope: locally when the recipient is on this node, else through the
    /// transport. (Boxed: local delivery re-enters `receive`, and the explicit `Send`
    /// type breaks that cycle for the compiler.)
    pub(crate) fn deliver(&self, envelope: &Envelope) -> BoxFuture<Result<(), ActorError>> {
        let bytes = envelope.encode();
        match &envelope.to {
            Some(to) if to.peer == self.inner.peer => {
                let router = self.clone();
                let from = self.inner.peer.clone();
                tokio::spawn(async move { router.receive(&bytes, &from).await });
                Box::pin(std::future::ready(Ok(())))
            }
            Some(to) => {
                // A reply that came back on the same exchange is received like one
                // that came as its own message from that peer.
                let (router, peer) = (self.clone(), to.peer.clone());
                let sent = self.inner.transport.send(&to.peer, bytes);
                Box::pin(async move {
                    if let Some(answer) = sent.await? {
                        router.receive(&answer, &peer).await;
                    }
                    Ok(())
                })
            }
            None => {
                // Subscribers on this node hear the broadcast too (gossip does not
                // deliver to the publisher).
                let topic = envelope.topic.as_ref().map(Command::as_str).unwrap_or_default();
                let router = self.clone();
                let (local, from, local_topic) =
                    (bytes.clone(), self.inner.peer.clone(), topic.to_string());
                tokio::spawn(async move {
                    router.receive_broadcast(&local, &from, &local_topic).await;
                });
                self.inner.transport.publish(topic, bytes)
            }
        }
    }
}

/// The answers to a broadcast sent with [`Actor::gather`], in arrival order.
pub struct Answers {
    rx: mpsc::Receiver<(Handle, Reply)>,
    nonce: u64,
    actor: Actor,
    deadline: tokio::time::Instant,
}

impl Answers {
    /// The next answer, or `None` once the broadcast expired.
    pub async fn next(&mut self) -> Option<(Handle, Reply)> {
        tokio::time::timeout_at(self.deadline, self.rx.recv()).await.ok().flatten()
    }

    /// The next answer arriving before `until` (capped by the broadcast's expiry).
    pub async fn next_until(&mut self, until: tokio::time::Instant) -> Option<(Handle, Reply)> {
        tokio::time::timeout_at(until.min(self.deadline), self.rx.recv()).await.ok().flatten()
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        if let Ok(mut gathering) = self.actor.inner.gathering.lock() {
            gathering.remove(&self.nonce);
        }
    }
}

/// An actor: a key, a capability context, behaviors and a bounded mailbox.
#[derive(Clone)]
pub struct Actor {
    inner: Arc<ActorInner>,
}

struct ActorInner {
    handle: Handle,
    key: KeyPair,
    router: Router,
    context: LiveContext,
    verifier: Arc<Verifier>,
    behaviors: RwLock<HashMap<Command, Behavior>>,
    pending: Mutex<HashMap<u64, (Handle, oneshot::Sender<Reply>)>>,
    /// Broadcasts waiting for answers, by nonce.
    gathering: Mutex<HashMap<u64, mpsc::Sender<(Handle, Reply)>>>,
    replay: Mutex<NonceWindow>,
    limiter: Limiter,
    mailbox: mpsc::Sender<(Message, Behavior, Option<Responder>)>,
    /// Behaviors running at once (`max_concurrent`).
    permits: Arc<Semaphore>,
    stopped: AtomicBool,
    /// Set when the actor stops (what a state-owning actor's loop waits on).
    stop_signal: watch::Sender<bool>,
    /// For a state-owning actor: its mailbox, in arrival order (see `crate::stateful`).
    sequential: Option<mpsc::Sender<Queued>>,
    /// The receiving end, until the actor's loop takes it.
    sequential_rx: Mutex<Option<mpsc::Receiver<Queued>>>,
    /// Told once when the actor has stopped, with why (linked parents).
    exit_watchers: Mutex<Vec<mpsc::UnboundedSender<(Handle, ExitReason)>>>,
    /// Why it stopped, once it has.
    exit: Mutex<Option<ExitReason>>,
}

/// A message waiting in a state-owning actor's mailbox.
pub(crate) type Queued = (Message, Option<Responder>);

impl Actor {
    /// Creates an actor in `inbox` on `router`'s node, signing with `key`, authorizing
    /// with `context` (shared: every change to it is in force for the next message),
    /// and registers it. Its mailbox worker runs until [`Actor::stop`].
    pub fn spawn(
        router: &Router,
        inbox: &str,
        key: KeyPair,
        context: LiveContext,
        verifier: Arc<Verifier>,
    ) -> Actor {
        Actor::build(router, inbox, key, context, verifier, false)
    }

    /// Like [`Actor::spawn`], for a state-owning actor: authorized messages queue in its
    /// mailbox in arrival order for [`crate::stateful::spawn`], which must be called
    /// next; behaviors registered with [`Actor::behavior`] are not used.
    pub fn spawn_sequential(
        router: &Router,
        inbox: &str,
        key: KeyPair,
        context: LiveContext,
        verifier: Arc<Verifier>,
    ) -> Actor {
        Actor::build(router, inbox, key, context, verifier, true)
    }

    fn build(
        router: &Router,
        inbox: &str,
        key: KeyPair,
        context: LiveContext,
        verifier: Arc<Verifier>,
        sequential: bool,
    ) -> Actor {
        let config = router.config().clone();
        let (sequential, sequential_rx) = if sequential {
            let (tx, rx) = mpsc::channel(config.mailbox.max(1));
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (mailbox, rx) = mpsc::channel(config.mailbox.max(1));
        let handle =
            Handle { did: key.did(), peer: router.peer().to_string(), inbox: inbox.to_string() };
        let actor = Actor {
            inner: Arc::new(ActorInner {
                handle,
                key,
                router: router.clone(),
                context,
                verifier,
                behaviors: RwLock::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                gathering: Mutex::new(HashMap::new()),
                replay: Mutex::new(NonceWindow::new(config.replay_capacity)),
                limiter: Limiter::new(config.rates),
                mailbox,
                permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
                stopped: AtomicBool::new(false),
                stop_signal: watch::channel(false).0,
                sequential,
                sequential_rx: Mutex::new(sequential_rx),
                exit_watchers: Mutex::new(Vec::new()),
                exit: Mutex::new(None),
            }),
        };
        tokio::spawn(run_mailbox(rx, actor.inner.permits.clone()));
        if let Ok(mut actors) = router.inner.actors.write() {
            actors.insert(inbox.to_string(), actor.clone());
        }
        actor
    }

    /// The actor's handle.
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }

    /// The key the actor signs with (to issue capabilities as this actor).
    pub fn signing_key(&self) -> &KeyPair {
        &self.inner.key
    }

    /// Registers `behavior` under `path` (exact match).
    pub fn behavior<F, Fut>(&self, path: &str, behavior: F) -> Result<(), ActorError>
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let path =
            Command::parse(path).map_err(|e| ActorError::Internal { reason: e.to_string() })?;
        let behavior: Behavior = Arc::new(move |message| Box::pin(behavior(message)));
        if let Ok(mut behaviors) = self.inner.behaviors.write() {
            behaviors.insert(path, behavior);
        }
        Ok(())
    }

    /// Receives broadcasts on `topic`.
    pub fn subscribe(&self, topic: &str) {
        if let Ok(mut subscriptions) = self.inner.router.inner.subscriptions.write() {
            let inboxes = subscriptions.entry(topic.to_string()).or_default();
            if !inboxes.contains(&self.inner.handle.inbox) {
                inboxes.push(self.inner.handle.inbox.clone());
            }
        }
    }

    /// Changes the capability context (anchors, revocations); the verifier cache is
    /// cleared so the change applies to the next message.
    /// It changes the live context in memory only, for every actor sharing it; a node
    /// changes contexts through `dms_ucan::Contexts`, which also stores them.
    pub fn update_context<T>(&self, change: impl FnOnce(&mut CapContext) -> T) -> T {
        let result = self.inner.context.update(change);
        self.inner.verifier.clear();
        result
    }

    /// A copy of the capability context in force.
    pub fn context(&self) -> CapContext {
        self.inner.context.snapshot()
    }

    /// The live capability context this actor authorizes with (shared).
    pub fn live_context(&self) -> &LiveContext {
        &self.inner.context
    }

    /// The verifier this actor checks chains with.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.inner.verifier
    }

    /// The mailbox of a state-owning actor, once.
    pub(crate) fn take_sequential_mailbox(&self) -> Option<mpsc::Receiver<Queued>> {
        self.inner.sequential_rx.lock().ok()?.take()
    }

    /// Declares the behaviors a state-owning actor answers (for the behavior check).
    pub(crate) fn declare(&self, paths: Vec<String>) {
        for path in paths {
            let registered = self.behavior(&path, |_| async {
                Err(ActorError::Internal { reason: "a sequential actor's behavior ran".into() })
            });
            if let Err(error) = registered {
                warn!(%path, %error, "A state-owning actor declared a bad behavior path.");
            }
        }
    }

    /// Turns true when the actor stops.
    pub(crate) fn stopped_signal(&self) -> watch::Receiver<bool> {
        self.inner.stop_signal.subscribe()
    }

    /// Tells `watcher` (once) when this actor has stopped, and why; at once if it has.
    pub fn on_exit(&self, watcher: mpsc::UnboundedSender<(Handle, ExitReason)>) {
        let exit = self.inner.exit.lock().ok().and_then(|e| e.clone());
        match exit {
            Some(reason) => {
                let _ = watcher.send((self.inner.handle.clone(), reason));
            }
            None => {
                if let Ok(mut watchers) = self.inner.exit_watchers.lock() {
                    watchers.push(watcher);
                }
            }
        }
    }

    /// Records why the actor stopped and tells its watchers.
    pub(crate) fn exited(&self, reason: ExitReason) {
        if let Ok(mut exit) = self.inner.exit.lock() {
            if exit.is_some() {
                return;
            }
            *exit = Some(reason.clone());
        }
        let watchers = self.inner.exit_watchers.lock().map(|mut w| std::mem::take(&mut *w));
        for watcher in watchers.unwrap_or_default() {
            let _ = watcher.send((self.inner.handle.clone(), reason.clone()));
        }
    }

    /// Why the actor stopped, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.inner.exit.lock().ok().and_then(|e| e.clone())
    }

    /// Answers a request (for state-owning actors' loops).
    pub(crate) async fn answer_to(
        &self,
        to: Handle,
        reply_to: Command,
        reply: Reply,
        respond: Option<Responder>,
    ) {
        self.answer(to, reply_to, reply, respond).await;
    }

    /// Stops the actor: new messages are refused with `Closed`, waiting invocations end
    /// with `Closed`, behaviors already running finish. A state-owning actor's loop
    /// ends after the message it is handling.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.stop_signal.send_replace(true);
        if self.inner.sequential.is_none() {
            self.exited(ExitReason::Normal);
        }
        if let Ok(mut pending) = self.inner.pending.lock() {
            for (_, (_, tx)) in pending.drain() {
                let _ = tx.send(Err(ActorError::Closed));
            }
        }
        if let Ok(mut gathering) = self.inner.gathering.lock() {
            gathering.clear();
        }
        if let Ok(mut actors) = self.inner.router.inner.actors.write() {
            actors.remove(&self.inner.handle.inbox);
        }
    }

    /// An unsigned envelope carrying the chain this actor holds for `behavior` on the
    /// recipient (or on itself, for broadcasts).
    fn envelope(
        &self,
        to: Option<Handle>,
        behavior: Command,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Envelope {
        let subject = to.as_ref().map_or(&self.inner.handle.did, |t| &t.did).clone();
        let chain = self
            .inner
            .context
            .read()
            .chain_for(&self.inner.verifier, &behavior, &subject, now_ms() / 1000)
            .unwrap_or_else(Chain::empty);
        self.bare_envelope(to, behavior, payload, ttl, &chain)
    }

    /// An unsigned envelope with `chain` (replies carry none: the pending request is
    /// their authorization).
    fn bare_envelope(
        &self,
        to: Option<Handle>,
        behavior: Command,
        payload: Vec<u8>,
        ttl: Duration,
        chain: &Chain,
    ) -> Envelope {
        let now = now_ms();
        Envelope {
            to,
            from: self.inner.handle.clone(),
            behavior,
            nonce: rand::random(),
            expiry: now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            reply_to: None,
            topic: None,
            payload,
            capabilities: if chain.is_empty() { Vec::new() } else { chain.to_bytes() },
            signature: Vec::new(),
        }
    }

    /// Invokes `behavior` on `to` and waits up to `timeout` for the reply.
    pub async fn invoke(
        &self,
        to: &Handle,
        behavior: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Reply {
        self.invoke_with(to, behavior, payload, timeout, |_| ()).await
    }

    /// Like [`Actor::invoke`], with `tweak` applied to the envelope before it is signed
    /// (for tools and adversarial tests: fixed nonces, odd expiries, other claims).
    pub async fn invoke_with(
        &self,
        to: &Handle,
        behavior: &str,
        payload: Vec<u8>,
        timeout: Duration,
        tweak: impl FnOnce(&mut Envelope),
    ) -> Reply {
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(ActorError::Closed);
        }
        let behavior = path(behavior)?;
        let mut envelope = self.envelope(Some(to.clone()), behavior, payload, timeout);
        tweak(&mut envelope);
        let reply_to = Command::parse(&format!("{REPLY_PREFIX}{}", envelope.nonce))
            .map_err(|e| ActorError::Internal { reason: e.to_string() })?;
        envelope.reply_to = Some(reply_to);
        let envelope = envelope.sign(&self.inner.key)?;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.inner.pending.lock() {
            pending.insert(envelope.nonce, (to.clone(), tx));
        }
        if let Err(error) = self.inner.router.deliver(&envelope).await {
            self.forget(envelope.nonce);
            return Err(error);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(ActorError::Closed),
            Err(_) => {
                self.forget(envelope.nonce);
                Err(ActorError::Timeout {
                    after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// Sends `behavior` to `to` without waiting for an answer.
    pub async fn send(
        &self,
        to: &Handle,
        behavior: &str,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), ActorError> {
        let behavior = path(behavior)?;
        let envelope =
            self.envelope(Some(to.clone()), behavior, payload, ttl).sign(&self.inner.key)?;
        self.inner.router.deliver(&envelope).await
    }

    /// Publishes `behavior` on `topic`.
    pub async fn broadcast(
        &self,
        topic: &str,
        behavior: &str,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), ActorError> {
        let behavior = path(behavior)?;
        let mut envelope = self.envelope(None, behavior, payload, ttl);
        envelope.topic = Some(path(topic)?);
        let envelope = envelope.sign(&self.inner.key)?;
        self.inner.router.deliver(&envelope).await
    }

    /// Publishes `behavior` on `topic` asking for answers: every subscriber that runs it
    /// (this node's included) replies, and the replies arrive on the returned
    /// [`Answers`] until `ttl` passes or it is dropped. At most `max` answers are kept;
    /// later ones are dropped.
    pub async fn gather(
        &self,
        topic: &str,
        behavior: &str,
        payload: Vec<u8>,
        ttl: Duration,
        max: usize,
    ) -> Result<Answers, ActorError> {
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(ActorError::Closed);
        }
        let behavior = path(behavior)?;
        let mut envelope = self.envelope(None, behavior, payload, ttl);
        envelope.topic = Some(path(topic)?);
        envelope.reply_to = Some(
            Command::parse(&format!("{REPLY_PREFIX}{}", envelope.nonce))
                .map_err(|e| ActorError::Internal { reason: e.to_string() })?,
        );
        let envelope = envelope.sign(&self.inner.key)?;
        let (tx, rx) = mpsc::channel(max.max(1));
        if let Ok(mut gathering) = self.inner.gathering.lock() {
            gathering.insert(envelope.nonce, tx);
        }
        let answers = Answers {
            rx,
            nonce: envelope.nonce,
            actor: self.clone(),
            deadline: tokio::time::Instant::now() + ttl,
        };
        self.inner.router.deliver(&envelope).await?;
        Ok(answers)
    }

    fn forget(&self, nonce: u64) {
        if let Ok(mut pending) = self.inner.pending.lock() {
            pending.remove(&nonce);
        }
    }

    /// Sends `reply` to `to` as behavior `reply_to`: on the request's own exchange while
    /// it is open (`respond`), else as a message.
    async fn answer(
        &self,
        to: Handle,
        reply_to: Command,
        reply: Reply,
        respond: Option<Responder>,
    ) {
        let body = match reply {
            Ok(bytes) => ReplyBody::Ok(bytes),
            Err(error) => ReplyBody::Err(error),
        };
        let Ok(payload) = serde_ipld_dagcbor::to_vec(&body) else { return };
        let envelope = self.bare_envelope(
            Some(to),
            reply_to,
            payload,
            Duration::from_secs(30),
            &Chain::empty(),
        );
        match envelope.sign(&self.inner.key) {
            Ok(envelope) => {
                if let Some(respond) = respond
                    && respond.send(envelope.encode()).is_ok()
                {
                    return;
                }
                if let Err(error) = self.inner.router.deliver(&envelope).await {
                    debug!(%error, "Could not deliver a reply.");
                }
            }
            Err(error) => warn!(%error, "Could not sign a reply."),
        }
    }

    /// Completes a pending invocation with a reply envelope. The answer must come from
    /// the actor asked; an error may also come from another actor of the same node
    /// (e.g. `NoSuchActor`) — the router has already checked that the peer is genuine.
    fn complete(&self, envelope: &Envelope, authenticated: bool) {
        let Some(nonce) = reply_nonce(envelope) else { return };
        let gathering = self.inner.gathering.lock().ok().and_then(|g| g.get(&nonce).cloned());
        if let Some(answers) = gathering {
            if let Some(reply) = read_reply(envelope, None, authenticated)
                && answers.try_send((envelope.from.clone(), reply)).is_err()
            {
                debug!(from = %envelope.from.did, "Dropped an answer to a broadcast: enough came.");
            }
            return;
        }
        let expected =
            self.inner.pending.lock().ok().and_then(|p| p.get(&nonce).map(|(h, _)| h.clone()));
        let Some(expected) = expected else {
            debug!(from = %envelope.from.did, "Dropped a reply to no pending request (late or unknown).");
            return;
        };
        let Some(reply) = read_reply(envelope, Some(&expected), authenticated) else { return };
        if let Some((_, tx)) = self.inner.pending.lock().ok().and_then(|mut p| p.remove(&nonce)) {
            let _ = tx.send(reply);
        }
    }

    /// Checks an incoming envelope and queues it for its behavior.
    async fn incoming(&self, envelope: Envelope, from_peer: &str, respond: Option<Responder>) {
        // Only requests keep the exchange open for their answer; anything else is
        // acknowledged at once.
        let respond = respond.filter(|_| envelope.reply_to.is_some());
        if envelope.behavior.as_str().starts_with(REPLY_PREFIX) {
            let authenticated =
                self.inner.router.channel_authenticates(from_peer, &envelope.from.did);
            self.complete(&envelope, authenticated);
            return;
        }
        match self.check(&envelope, from_peer) {
            Ok(_) if self.inner.sequential.is_some() => {
                let message = Message { envelope: envelope.clone(), actor: self.clone() };
                let queue = self.inner.sequential.as_ref().expect("checked above");
                if let Err(error) = queue.try_send((message, respond)) {
                    let (error, respond) = match error {
                        mpsc::error::TrySendError::Full((_, r)) => (ActorError::Busy, r),
                        mpsc::error::TrySendError::Closed((_, r)) => (ActorError::Closed, r),
                    };
                    self.refuse(&envelope, from_peer, error, respond).await;
                }
            }
            Ok(behavior) => {
                let message = Message { envelope: envelope.clone(), actor: self.clone() };
                // Nothing queued and a permit free: run at once, without the mailbox hop.
                let idle = self.inner.mailbox.capacity() == self.inner.mailbox.max_capacity();
                if idle && let Ok(permit) = self.inner.permits.clone().try_acquire_owned() {
                    run_behavior(message, behavior, respond, permit);
                    return;
                }
                if let Err(error) = self.inner.mailbox.try_send((message, behavior, respond)) {
                    let (error, respond) = match error {
                        mpsc::error::TrySendError::Full((_, _, r)) => (ActorError::Busy, r),
                        mpsc::error::TrySendError::Closed((_, _, r)) => (ActorError::Closed, r),
                    };
                    self.refuse(&envelope, from_peer, error, respond).await;
                }
            }
            Err(error) => self.refuse(&envelope, from_peer, error, respond).await,
        }
    }

    async fn refuse(
        &self,
        envelope: &Envelope,
        from_peer: &str,
        error: ActorError,
        respond: Option<Responder>,
    ) {
        debug!(peer = from_peer, behavior = %envelope.behavior, %error, "Refused a message.");
        if let Some(reply_to) = envelope.reply_to.clone() {
            let to = Handle { peer: from_peer.to_string(), ..envelope.from.clone() };
            self.answer(to, reply_to, Err(error), respond).await;
        }
    }

    /// The receive pipeline; returns the behavior to run.
    fn check(&self, envelope: &Envelope, from_peer: &str) -> Result<Behavior, ActorError> {
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(ActorError::Closed);
        }
        let class = Class::of(envelope.behavior.as_str());
        if !self.inner.limiter.allow(from_peer, class) {
            return Err(ActorError::RateLimited { class: class.name().into() });
        }
        let now = now_ms();
        if envelope.expiry < now {
            return Err(ActorError::Expired { expiry: envelope.expiry, now });
        }
        let max_ttl =
            u64::try_from(self.inner.router.config().max_ttl.as_millis()).unwrap_or(u64::MAX);
        if envelope.expiry > now.saturating_add(max_ttl) {
            return Err(ActorError::malformed(format!("expiry more than {max_ttl} ms ahead")));
        }
        if !self.inner.router.channel_authenticates(from_peer, &envelope.from.did) {
            envelope.verify_signature()?;
        }
        self.inner
            .replay
            .lock()
            .map_err(|_| ActorError::Internal { reason: "replay window lock poisoned".into() })?
            .accept(&envelope.from.did, envelope.nonce, envelope.expiry, now)
            .map_err(|refusal| match refusal {
                Refusal::Replayed => ActorError::Replayed { nonce: envelope.nonce },
                Refusal::Full => ActorError::Busy,
            })?;
        let behavior = self
            .inner
            .behaviors
            .read()
            .ok()
            .and_then(|b| b.get(&envelope.behavior).cloned())
            .ok_or_else(|| ActorError::UnknownBehavior {
                behavior: envelope.behavior.to_string(),
            })?;
        if class != Class::Public {
            let chain = envelope.chain(self.inner.router.config().limits)?;
            self.inner.context.read().authorize(
                &self.inner.verifier,
                Request {
                    invoker: &envelope.from.did,
                    subject: &self.inner.handle.did,
                    behavior: &envelope.behavior,
                    topic: envelope.topic.as_ref(),
                    args: None,
                    chain: &chain,
                },
                now / 1000,
            )?;
        }
        Ok(behavior)
    }
}

/// The nonce a reply envelope answers (`/dms/actor/reply/<nonce>`).
pub(crate) fn reply_nonce(envelope: &Envelope) -> Option<u64> {
    envelope.behavior.as_str().strip_prefix(REPLY_PREFIX).and_then(|n| n.parse::<u64>().ok())
}

/// Reads a reply envelope: signature checked (unless the connection already
/// `authenticated` its sender), body decoded. With `expected` (the actor that was asked),
/// the answer must come from it, or be an error from its node (the router there answers
/// for missing actors); replies to broadcasts come from anyone.
pub(crate) fn read_reply(
    envelope: &Envelope,
    expected: Option<&Handle>,
    authenticated: bool,
) -> Option<Reply> {
    if !authenticated && envelope.verify_signature().is_err() {
        warn!(from = %envelope.from.did, "Dropped a reply with a bad signature.");
        return None;
    }
    let reply = match serde_ipld_dagcbor::from_slice::<ReplyBody>(&envelope.payload) {
        Ok(ReplyBody::Ok(bytes)) => Ok(bytes),
        Ok(ReplyBody::Err(error)) => Err(error),
        Err(e) => Err(ActorError::malformed(format!("reply: {e}"))),
    };
    if let Some(expected) = expected {
        let from_asked = envelope.from.did == expected.did;
        let error_from_its_node = reply.is_err() && envelope.from.peer == expected.peer;
        if !from_asked && !error_from_its_node {
            warn!(from = %envelope.from.did, "Dropped a reply from an actor that was not asked.");
            return None;
        }
    }
    Some(reply)
}

/// Parses a behavior or topic given by the caller.
fn path(text: &str) -> Result<Command, ActorError> {
    Command::parse(text).map_err(|e| ActorError::malformed(e.to_string()))
}

/// Runs queued messages, at most `permits` at once, answering those that asked.
async fn run_mailbox(
    mut rx: mpsc::Receiver<(Message, Behavior, Option<Responder>)>,
    permits: Arc<Semaphore>,
) {
    while let Some((message, behavior, respond)) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        run_behavior(message, behavior, respond, permit);
    }
}

/// Runs one behavior on its own task, holding `permit`, and answers when asked.
fn run_behavior(
    message: Message,
    behavior: Behavior,
    respond: Option<Responder>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let actor = message.actor.clone();
        let envelope = message.envelope.clone();
        let reply = behavior(message).await;
        drop(permit);
        if let Some(reply_to) = envelope.reply_to.clone() {
            actor.answer(envelope.from.clone(), reply_to, reply, respond).await;
        }
    });
}
