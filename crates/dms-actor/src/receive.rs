//! Receiving as an actor: the receive pipeline (rate limit, expiry, signature, replay,
//! behavior, capability chain, mailbox), typed refusals, and running behaviors.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dms_ucan::Request;
use tokio::sync::{Semaphore, mpsc};
use tracing::{Instrument as _, debug};

use crate::ActorError;
use crate::actor::Actor;
use crate::envelope::{Envelope, Handle, now_ms};
use crate::limiter::Class;
use crate::replay::Refusal;
use crate::runtime::{Behavior, Message, REPLY_PREFIX, Responder};

impl Actor {
    /// Checks an incoming envelope and queues it for its behavior.
    pub(crate) async fn incoming(
        &self,
        envelope: Envelope,
        from_peer: &str,
        respond: Option<Responder>,
    ) {
        // Only requests keep the exchange open for their answer; anything else is
        // acknowledged at once.
        let respond = respond.filter(|_| envelope.reply_to.is_some());
        if envelope.behavior.as_str().starts_with(REPLY_PREFIX) {
            let authenticated =
                self.inner.router.channel_authenticates(from_peer, &envelope.from.did);
            self.complete(&envelope, authenticated);
            return;
        }
        if envelope.behavior.as_str() == crate::monitor::PING {
            // Every actor answers its monitors, sequential ones too, without queueing.
            let answer = self.admit(&envelope, from_peer).map(|_| Vec::new());
            if let Some(reply_to) = envelope.reply_to.clone() {
                let to = Handle { peer: from_peer.to_string(), ..envelope.from.clone() };
                self.answer(to, reply_to, answer, respond).await;
            }
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

    pub(crate) async fn refuse(
        &self,
        envelope: &Envelope,
        from_peer: &str,
        error: ActorError,
        respond: Option<Responder>,
    ) {
        debug!(peer = from_peer, behavior = %envelope.behavior, %error, "Refused a message.");
        dms_telemetry::metrics::message_refused(error.code(), crate::error::CODES);
        if let ActorError::Unauthorized { code, reason } = &error {
            let behavior = envelope.behavior.as_str();
            dms_telemetry::event!(WARN, kind: dms_telemetry::event::kind::CAPABILITY, peer: from_peer, reason: code.as_str();
                "Refused {behavior} from {} ({from_peer}): {reason}", envelope.from.did);
        }
        if let Some(reply_to) = envelope.reply_to.clone() {
            let to = Handle { peer: from_peer.to_string(), ..envelope.from.clone() };
            self.answer(to, reply_to, Err(error), respond).await;
        }
    }

    /// The receive pipeline; returns the behavior to run.
    fn check(&self, envelope: &Envelope, from_peer: &str) -> Result<Behavior, ActorError> {
        let (class, now) = self.admit(envelope, from_peer)?;
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

    /// The steps every message passes before its behavior is looked at: stopped, rate
    /// limit, expiry, signature, replay. Its class and the time.
    fn admit(&self, envelope: &Envelope, from_peer: &str) -> Result<(Class, u64), ActorError> {
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
        Ok((class, now))
    }
}

/// Runs queued messages, at most `permits` at once, answering those that asked.
pub(crate) async fn run_mailbox(
    mut rx: mpsc::Receiver<(Message, Behavior, Option<Responder>)>,
    permits: Arc<Semaphore>,
) {
    while let Some((message, behavior, respond)) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        run_behavior(message, behavior, respond, permit);
    }
}

/// Runs one behavior on its own task, holding `permit`, and answers when asked.
pub(crate) fn run_behavior(
    message: Message,
    behavior: Behavior,
    respond: Option<Responder>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let span = message.envelope.span();
    tokio::spawn(async move {
        let actor = message.actor.clone();
        let envelope = message.envelope.clone();
        dms_telemetry::metrics::message_received();
        let reply = behavior(message).instrument(span).await;
        drop(permit);
        if let Some(reply_to) = envelope.reply_to.clone() {
            actor.answer(envelope.from.clone(), reply_to, reply, respond).await;
        }
    });
}
