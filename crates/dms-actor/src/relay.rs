//! Relaying envelopes signed elsewhere.
//!
//! The daemon never holds the user's key: the CLI signs an envelope whose `from` is
//! `{ did: <user>, peer: <this node>, inbox: <one of its own> }` and hands the bytes to
//! the node's local API, which relays them through the [`Router`]. Receivers bind
//! `from.peer` to the connection, so the reply comes back to this node, addressed to the
//! client's inbox; the router matches it to the waiting relay by inbox and nonce and
//! checks it like any reply (signature; from the actor asked, or an error from its
//! node). Broadcast relays collect every reply until the envelope expires.
//!
//! What the node checks before relaying: canonical encoding and size, the signature,
//! that `from.peer` is this node, that the inbox is not one of its actors', and the
//! expiry window. Authorization is the receiver's job, as for every envelope.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use dms_ucan::{Chain, Command};
use tokio::sync::mpsc;
use tracing::debug;

use crate::ActorError;
use crate::envelope::{Envelope, Handle, now_ms};
use crate::runtime::{REPLY_PREFIX, Reply, Router};
use crate::send::{read_reply, reply_nonce};

/// Relays waiting for replies at once, per node; more are refused with `Busy`.
pub const MAX_WAITING: usize = 1024;

/// What a reply is matched with: the client's inbox and the request nonce.
type Key = (String, u64);

struct Wait {
    /// The client DID the replies are addressed to.
    did: dms_crypto::Did,
    /// For an invocation, the actor asked; `None` for a broadcast.
    expected: Option<Handle>,
    replies: mpsc::Sender<(Handle, Reply)>,
}

/// The relays waiting for replies (owned by the router).
#[derive(Default)]
pub(crate) struct Waiting {
    waits: Mutex<HashMap<Key, Wait>>,
}

impl Waiting {
    fn register(&self, key: Key, wait: Wait) -> Result<(), ActorError> {
        let mut waits =
            self.waits.lock().map_err(|_| ActorError::Internal { reason: "relay lock".into() })?;
        if waits.contains_key(&key) {
            return Err(ActorError::Replayed { nonce: key.1 });
        }
        if waits.len() >= MAX_WAITING {
            return Err(ActorError::Busy);
        }
        waits.insert(key, wait);
        Ok(())
    }

    fn remove(&self, key: &Key) {
        if let Ok(mut waits) = self.waits.lock() {
            waits.remove(key);
        }
    }

    /// Hands a reply envelope to the relay waiting for it; false when none waits (the
    /// router then treats the envelope as addressed to a missing actor).
    pub(crate) fn complete(&self, envelope: &Envelope, authenticated: bool) -> bool {
        let (Some(to), Some(nonce)) = (&envelope.to, reply_nonce(envelope)) else {
            return false;
        };
        let found = self.waits.lock().ok().and_then(|waits| {
            waits
                .get(&(to.inbox.clone(), nonce))
                .filter(|w| w.did == to.did)
                .map(|w| (w.expected.clone(), w.replies.clone()))
        });
        let Some((expected, replies)) = found else { return false };
        if let Some(reply) = read_reply(envelope, expected.as_ref(), authenticated)
            && replies.try_send((envelope.from.clone(), reply)).is_err()
        {
            debug!(from = %envelope.from.did, "Dropped a reply: the relay has all it waits for.");
        }
        true
    }
}

/// Removes the registration when the relay ends, however it ends.
struct Registration<'a> {
    router: &'a Router,
    key: Key,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.router.inner.relays.remove(&self.key);
    }
}

/// One answer to a relayed broadcast.
#[derive(Debug)]
pub struct BroadcastReply {
    /// Who answered.
    pub from: Handle,
    /// What it answered.
    pub reply: Reply,
}

impl Router {
    /// Checks an envelope signed by a local client before it is relayed.
    fn admit(&self, bytes: &[u8]) -> Result<Envelope, ActorError> {
        let envelope = Envelope::decode(bytes, self.inner.config.max_envelope_bytes)?;
        envelope.verify_signature()?;
        if envelope.from.peer != self.inner.peer {
            return Err(ActorError::malformed(format!(
                "from.peer is {} but this node is {}; take the peer id from \
                 GET /api/v1/actor/handle",
                envelope.from.peer, self.inner.peer
            )));
        }
        if self.actor(&envelope.from.inbox).is_some() {
            return Err(ActorError::malformed(format!(
                "inbox {:?} belongs to an actor of this node; sign with an inbox of your own",
                envelope.from.inbox
            )));
        }
        let now = now_ms();
        if envelope.expiry <= now {
            return Err(ActorError::Expired { expiry: envelope.expiry, now });
        }
        let max_ttl = u64::try_from(self.inner.config.max_ttl.as_millis()).unwrap_or(u64::MAX);
        if envelope.expiry > now.saturating_add(max_ttl) {
            return Err(ActorError::malformed(format!("expiry more than {max_ttl} ms ahead")));
        }
        Ok(envelope)
    }

    /// How long to wait for replies: until the envelope expires, at most `max_wait`.
    fn wait_for(envelope: &Envelope, max_wait: Duration) -> Duration {
        Duration::from_millis(envelope.expiry.saturating_sub(now_ms())).min(max_wait)
    }

    /// Relays a one-way message (no reply is awaited).
    pub async fn relay_send(&self, bytes: &[u8]) -> Result<(), ActorError> {
        let envelope = self.admit(bytes)?;
        if envelope.to.is_none() {
            return Err(ActorError::malformed("a message without recipient is a broadcast"));
        }
        self.deliver(&envelope).await
    }

    /// Relays an invocation and waits for its reply until the envelope expires (at most
    /// `max_wait`). `reply_to` must be `/dms/actor/reply/<nonce>`.
    pub async fn relay_invoke(&self, bytes: &[u8], max_wait: Duration) -> Reply {
        let envelope = self.admit(bytes)?;
        let Some(to) = envelope.to.clone() else {
            return Err(ActorError::malformed("an invocation needs a recipient"));
        };
        check_reply_to(&envelope)?;
        let key = (envelope.from.inbox.clone(), envelope.nonce);
        let (tx, mut rx) = mpsc::channel(1);
        let wait = Wait { did: envelope.from.did.clone(), expected: Some(to), replies: tx };
        self.inner.relays.register(key.clone(), wait)?;
        let _registration = Registration { router: self, key };
        self.deliver(&envelope).await?;
        let wait = Router::wait_for(&envelope, max_wait);
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some((_, reply))) => reply,
            Ok(None) => Err(ActorError::Closed),
            Err(_) => Err(ActorError::Timeout {
                after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// Relays a broadcast. When it asks for replies (`reply_to` set), collects them until
    /// the envelope expires (at most `max_wait`) or `max_replies` have come.
    pub async fn relay_broadcast(
        &self,
        bytes: &[u8],
        max_wait: Duration,
        max_replies: usize,
    ) -> Result<Vec<BroadcastReply>, ActorError> {
        let envelope = self.admit(bytes)?;
        if envelope.to.is_some() || envelope.topic.is_none() {
            return Err(ActorError::malformed("a broadcast has a topic and no recipient"));
        }
        if envelope.reply_to.is_none() {
            self.deliver(&envelope).await?;
            return Ok(Vec::new());
        }
        check_reply_to(&envelope)?;
        let key = (envelope.from.inbox.clone(), envelope.nonce);
        let (tx, mut rx) = mpsc::channel(max_replies.max(1));
        let wait = Wait { did: envelope.from.did.clone(), expected: None, replies: tx };
        self.inner.relays.register(key.clone(), wait)?;
        let _registration = Registration { router: self, key };
        self.deliver(&envelope).await?;
        let deadline = tokio::time::Instant::now() + Router::wait_for(&envelope, max_wait);
        let mut replies = Vec::new();
        while replies.len() < max_replies {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((from, reply))) => replies.push(BroadcastReply { from, reply }),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(replies)
    }
}

/// Builds the unsigned envelope a client relays: a fresh nonce, expiry `ttl` from now,
/// `reply_to` set to the nonce's reply behavior, and `chain` attached. Sign it with the
/// key of `from.did` and hand the encoding to the node's API.
pub fn client_request(
    from: Handle,
    to: Option<Handle>,
    behavior: Command,
    topic: Option<Command>,
    payload: Vec<u8>,
    chain: &Chain,
    ttl: Duration,
) -> Result<Envelope, ActorError> {
    let nonce: u64 = rand::random();
    let reply_to = Some(
        Command::parse(&format!("{REPLY_PREFIX}{nonce}"))
            .map_err(|e| ActorError::Internal { reason: e.to_string() })?,
    );
    Ok(Envelope {
        to,
        from,
        behavior,
        nonce,
        expiry: now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        reply_to,
        topic,
        trace: dms_telemetry::propagate::current(),
        payload,
        capabilities: if chain.is_empty() { Vec::new() } else { chain.to_bytes() },
        signature: Vec::new(),
    })
}

fn check_reply_to(envelope: &Envelope) -> Result<(), ActorError> {
    let expected = format!("{REPLY_PREFIX}{}", envelope.nonce);
    match &envelope.reply_to {
        Some(reply_to) if reply_to.as_str() == expected => Ok(()),
        _ => Err(ActorError::malformed(format!("reply_to must be {expected}"))),
    }
}
