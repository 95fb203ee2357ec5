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
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dms_ucan::{Command, Limits};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::ActorError;
use crate::actor::Actor;
use crate::envelope::{DEFAULT_MAX_ENVELOPE_BYTES, Envelope};
use crate::limiter::Rates;

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
    /// The peers this node reaches now (connected). Monitors count a silent peer as
    /// lost only while this node reaches another one. Default: none, so nothing is
    /// ever declared lost (a transport that cannot tell must not tear work down).
    fn reaches(&self) -> BoxFuture<Vec<String>> {
        Box::pin(async { Vec::new() })
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
    pub(crate) actors: RwLock<HashMap<String, Actor>>,
    pub(crate) subscriptions: RwLock<HashMap<String, Vec<String>>>,
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

    /// Whether this node reaches some peer other than `peer` (see
    /// [`Transport::reaches`]).
    pub async fn reaches_others(&self, peer: &str) -> bool {
        self.inner.transport.reaches().await.iter().any(|p| p != peer)
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
