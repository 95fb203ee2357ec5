//! Sending as an actor: envelopes with the chain the actor holds, invoke/reply, send,
//! broadcast and gather, and the matching of replies to what is pending.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dms_ucan::{Chain, Command};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::ActorError;
use crate::actor::Actor;
use crate::envelope::{Envelope, Handle, now_ms};
use crate::runtime::{REPLY_PREFIX, Reply, ReplyBody, Responder};

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

impl Actor {
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
        let (now, verifier) = (now_ms() / 1000, &self.inner.verifier);
        let context = self.inner.context.read();
        let me = &self.inner.handle.did;
        // An actor with its own identity presents the chains delegated to it; one that
        // shares its node's identity, the node's.
        let chain = if *me == context.did {
            context.chain_for(verifier, &behavior, &subject, now)
        } else {
            let held = self.inner.held.read();
            let held = held.as_deref().map(Vec::as_slice).unwrap_or_default();
            context.chain_among(held, me, verifier, &behavior, &subject, now)
        };
        drop(context);
        let renew = self.inner.renew.read().ok().and_then(|r| r.clone());
        let chain = match (chain, renew) {
            (None, Some(renew)) if !behavior.as_str().starts_with("/public/") => {
                let fresh = renew();
                let chain = self
                    .inner
                    .context
                    .read()
                    .chain_among(&fresh, me, verifier, &behavior, &subject, now);
                if let Ok(mut held) = self.inner.held.write() {
                    *held = fresh;
                }
                chain
            }
            (chain, _) => chain,
        };
        let chain = chain.unwrap_or_else(Chain::empty);
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
        dms_telemetry::metrics::message_sent();
        Envelope {
            to,
            from: self.inner.handle.clone(),
            behavior,
            nonce: rand::random(),
            expiry: now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            reply_to: None,
            topic: None,
            trace: dms_telemetry::propagate::current().or_else(|| self.trace()),
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
    pub(crate) async fn answer(
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
        let Some(mut signed) = self.reply_envelope(&to, &reply_to, &body) else { return };
        // An answer over the message limit would be dropped by the receiver and its
        // caller would wait out its timeout: say at once that it is too large.
        let max = self.inner.router.config().max_envelope_bytes;
        let size = signed.as_ref().map_or(0, |e| e.encode().len());
        if size > max {
            let too_large = ReplyBody::Err(ActorError::TooLarge { size, max });
            let Some(smaller) = self.reply_envelope(&to, &reply_to, &too_large) else { return };
            signed = smaller;
        }
        match signed {
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

    /// The signed reply envelope carrying `body` (`None` when it cannot be encoded).
    fn reply_envelope(
        &self,
        to: &Handle,
        reply_to: &Command,
        body: &ReplyBody,
    ) -> Option<Result<Envelope, ActorError>> {
        let payload = serde_ipld_dagcbor::to_vec(body).ok()?;
        let envelope = self.bare_envelope(
            Some(to.clone()),
            reply_to.clone(),
            payload,
            Duration::from_secs(30),
            &Chain::empty(),
        );
        Some(envelope.sign(&self.inner.key))
    }

    /// Completes a pending invocation with a reply envelope. The answer must come from
    /// the actor asked; an error may also come from another actor of the same node
    /// (e.g. `NoSuchActor`) — the router has already checked that the peer is genuine.
    pub(crate) fn complete(&self, envelope: &Envelope, authenticated: bool) {
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
