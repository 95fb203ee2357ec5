//! [`Actor`]: a key, a live capability context, behaviors (or, for a state-owning
//! actor, a sequential mailbox), and what ties it to its router: construction,
//! registration, context access, exit watchers and stop.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dms_crypto::KeyPair;
use dms_ucan::{CapContext, Command, LiveContext, Verifier};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::warn;

use crate::ActorError;
use crate::envelope::Handle;
use crate::limiter::Limiter;
use crate::receive::run_mailbox;
use crate::replay::NonceWindow;
use crate::runtime::{Behavior, Message, Reply, Responder, Router};
use crate::stateful::ExitReason;

/// An actor: a key, a capability context, behaviors and a bounded mailbox.
#[derive(Clone)]
pub struct Actor {
    pub(crate) inner: Arc<ActorInner>,
}

pub(crate) struct ActorInner {
    pub(crate) handle: Handle,
    pub(crate) key: KeyPair,
    pub(crate) router: Router,
    pub(crate) context: LiveContext,
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) behaviors: RwLock<HashMap<Command, Behavior>>,
    pub(crate) pending: Mutex<HashMap<u64, (Handle, oneshot::Sender<Reply>)>>,
    /// Broadcasts waiting for answers, by nonce.
    pub(crate) gathering: Mutex<HashMap<u64, mpsc::Sender<(Handle, Reply)>>>,
    pub(crate) replay: Mutex<NonceWindow>,
    pub(crate) limiter: Limiter,
    pub(crate) mailbox: mpsc::Sender<(Message, Behavior, Option<Responder>)>,
    /// Behaviors running at once (`max_concurrent`).
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) stopped: AtomicBool,
    /// Set when the actor stops (what a state-owning actor's loop waits on).
    pub(crate) stop_signal: watch::Sender<bool>,
    /// For a state-owning actor: its mailbox, in arrival order (see `crate::stateful`).
    pub(crate) sequential: Option<mpsc::Sender<Queued>>,
    /// The receiving end, until the actor's loop takes it.
    pub(crate) sequential_rx: Mutex<Option<mpsc::Receiver<Queued>>>,
    /// Told once when the actor has stopped, with why (linked parents).
    pub(crate) exit_watchers: Mutex<Vec<mpsc::UnboundedSender<(Handle, ExitReason)>>>,
    /// Why it stopped, once it has.
    pub(crate) exit: Mutex<Option<ExitReason>>,
    /// Chains delegated to this actor's own identity (when it is not its node's).
    pub(crate) held: RwLock<Vec<dms_ucan::Chain>>,
    /// Delegates afresh when no held chain serves (expired, revoked, newer anchors).
    pub(crate) renew: RwLock<Option<Renewal>>,
    /// The trace its messages join when no traced span sends them (the deployment's,
    /// for an orchestrator or an allocation).
    pub(crate) trace: RwLock<Option<String>>,
}

/// Fresh chains for an actor with its own identity (see [`Actor::renew_with`]).
pub type Renewal = Arc<dyn Fn() -> Vec<dms_ucan::Chain> + Send + Sync>;

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
                held: RwLock::new(Vec::new()),
                renew: RwLock::new(None),
                trace: RwLock::new(None),
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

    /// Holds `chain`, delegated to this actor's own identity: it is presented when the
    /// actor invokes what it grants (an actor that shares its node's identity presents
    /// the node's provide anchors instead).
    pub fn hold(&self, chain: dms_ucan::Chain) {
        if let Ok(mut held) = self.inner.held.write() {
            held.push(chain);
        }
    }

    /// Sets how this actor gets fresh chains when none of those it holds serves a
    /// message (its delegator's anchors changed, expired or were revoked): `renew`
    /// returns the chains to hold from then on.
    pub fn renew_with(&self, renew: Renewal) {
        if let Ok(mut slot) = self.inner.renew.write() {
            *slot = Some(renew);
        }
    }

    /// Sets the trace (a W3C `traceparent`) this actor's messages join when they are not
    /// sent from a traced span: the work of a long-lived actor stays one trace across
    /// its tasks and restarts.
    pub fn set_trace(&self, traceparent: Option<String>) {
        if let Ok(mut slot) = self.inner.trace.write() {
            *slot = traceparent;
        }
    }

    /// The trace set with [`Actor::set_trace`].
    pub fn trace(&self) -> Option<String> {
        self.inner.trace.read().ok().and_then(|t| t.clone())
    }

    /// Whether both are the same actor (not merely the same inbox).
    pub fn same(&self, other: &Actor) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
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
        // Under the exit lock, so that an exit cannot fall between the look and the
        // registration (`exited` takes the same lock first).
        let Ok(exit) = self.inner.exit.lock() else { return };
        match exit.clone() {
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
        let Ok(mut exit) = self.inner.exit.lock() else { return };
        if exit.is_some() {
            return;
        }
        *exit = Some(reason.clone());
        let watchers = self.inner.exit_watchers.lock().map(|mut w| std::mem::take(&mut *w));
        drop(exit);
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
            // Only this actor: a newer one may hold the inbox by now.
            let mine = actors.get(&self.inner.handle.inbox).is_some_and(|a| a.same(self));
            if mine {
                actors.remove(&self.inner.handle.inbox);
            }
        }
    }
}
