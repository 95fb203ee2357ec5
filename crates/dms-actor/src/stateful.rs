//! State-owning actors: one message at a time, in arrival order, on state the actor owns
//! (ractor/Akka semantics), beside the runtime's concurrent handlers.
//!
//! A [`Stateful`] actor is spawned with [`spawn`]. Its envelopes go through the same
//! receive pipeline as any actor's (binding, rate limit, expiry, signature, replay,
//! behavior, capability chain); authorized ones are queued in its bounded mailbox and
//! handed to [`Stateful::handle`] one by one, on a single task that owns the state.
//! Besides network messages the actor hears:
//! - **internal messages** it sends itself ([`Context::spawn`] runs a future and delivers
//!   its output; [`Context::after`] delivers a message after a delay);
//! - **exits of linked children** and of **watched actors**, local or remote
//!   ([`Stateful::child_exited`], with the reason; [`Context::link`], [`Context::watch`]).
//!
//! Every task started through the [`Context`] belongs to the actor and is aborted when
//! it stops. When it stops — [`Context::stop`], [`Actor::stop`], or a panic in a
//! handler — [`Stateful::stopping`] runs, queued messages are answered `Closed`, and the
//! parent it is linked to is told why. The contract is `docs/actor-semantics.md`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{Instrument as _, debug, warn};

use crate::ActorError;
use crate::actor::Actor;
use crate::envelope::Handle;
use crate::runtime::{Message, Reply, Responder};

/// Why an actor stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// It finished its work or was told to stop.
    Normal,
    /// It failed; the sentence says how (a handler panicked, ...).
    Failed(String),
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("stopped normally"),
            ExitReason::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// What a state-owning actor does. Every method runs on the actor's own task, one at a
/// time; while one runs, nothing else touches the state.
pub trait Stateful: Send + 'static {
    /// Messages the actor sends itself (results of its tasks, timers).
    type Internal: Send + 'static;

    /// The behaviors it answers (exact paths); others are refused `UnknownBehavior`
    /// before they reach the mailbox.
    fn behaviors(&self) -> Vec<String>;

    /// An authorized message; the reply goes back to the sender when it asked for one.
    fn handle(
        &mut self,
        ctx: &mut Context<Self::Internal>,
        message: Message,
    ) -> impl Future<Output = Reply> + Send;

    /// A message the actor sent itself.
    fn internal(
        &mut self,
        ctx: &mut Context<Self::Internal>,
        message: Self::Internal,
    ) -> impl Future<Output = ()> + Send;

    /// A linked child stopped (see [`Context::link`]), or a watched actor is down (see
    /// [`Context::watch`]).
    fn child_exited(
        &mut self,
        ctx: &mut Context<Self::Internal>,
        child: Handle,
        reason: ExitReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, child, reason);
        async {}
    }

    /// The actor is stopping for `reason`; its tasks are still running. Last chance to
    /// persist or tell others.
    fn stopping(
        &mut self,
        ctx: &mut Context<Self::Internal>,
        reason: &ExitReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, reason);
        async {}
    }
}

/// What a handler may do besides changing its state.
pub struct Context<I> {
    actor: Actor,
    tasks: JoinSet<Option<I>>,
    stop: Option<ExitReason>,
    children: mpsc::UnboundedSender<(Handle, ExitReason)>,
}

impl<I: Send + 'static> Context<I> {
    /// The actor itself (to invoke, send, broadcast as it).
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Runs `task` as the actor's own: its output comes back as an internal message
    /// (`None`: nothing to say). It is aborted if the actor stops first.
    pub fn spawn(&mut self, task: impl Future<Output = Option<I>> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Delivers `message` to the actor after `delay` (dropped if it stops first).
    pub fn after(&mut self, delay: Duration, message: I) {
        self.tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            Some(message)
        });
    }

    /// Links `child` to this actor: when the child stops, this actor hears
    /// [`Stateful::child_exited`] with its reason.
    pub fn link(&self, child: &Actor) {
        child.on_exit(self.children.clone());
    }

    /// Watches any actor by its handle, on this node or another (a monitor, see
    /// [`crate::monitor`]): when it is down this actor hears [`Stateful::child_exited`]
    /// with its reason — a lost peer as `Failed("lost: …")`. The watch is one of the
    /// actor's tasks: it ends when the actor stops.
    pub fn watch(&mut self, target: Handle, liveness: crate::Liveness) {
        let mut monitor = self.actor.monitor(target.clone(), liveness);
        let exits = self.children.clone();
        self.tasks.spawn(async move {
            let reason = match monitor.down().await {
                crate::Down::Exited(reason) => reason,
                lost @ crate::Down::Lost { .. } => ExitReason::Failed(lost.to_string()),
            };
            let _ = exits.send((target, reason));
            None
        });
    }

    /// Stops the actor once the current message is handled.
    pub fn stop(&mut self, reason: ExitReason) {
        self.stop.get_or_insert(reason);
    }

    /// How many of the actor's tasks are running.
    pub fn tasks(&self) -> usize {
        self.tasks.len()
    }
}

/// Messages queued for the actor at most (its mailbox; `Busy` beyond).
const INTERNAL_QUEUE: usize = 256;

/// Spawns a state-owning actor: `actor` (made by [`Actor::spawn_sequential`]) receives,
/// `state` handles. Returns the actor.
pub fn spawn<S: Stateful>(actor: Actor, state: S) -> Actor {
    spawn_with_sender(actor, state).0
}

/// Like [`spawn`], also returning a sender of internal messages: how the code that
/// created the actor (its owner on this node) controls it without a network message.
pub fn spawn_with_sender<S: Stateful>(
    actor: Actor,
    state: S,
) -> (Actor, mpsc::Sender<S::Internal>) {
    let mailbox = actor.take_sequential_mailbox().expect("a sequential actor, spawned once");
    actor.declare(state.behaviors());
    let (internal, internal_rx) = mpsc::channel(INTERNAL_QUEUE);
    let (children, children_rx) = mpsc::unbounded_channel();
    let ctx = Context { actor: actor.clone(), tasks: JoinSet::new(), stop: None, children };
    let running = actor.clone();
    let task = tokio::spawn(run(state, ctx, mailbox, internal_rx, children_rx));
    tokio::spawn(async move {
        let reason = match task.await {
            Ok(reason) => reason,
            Err(error) if error.is_panic() => {
                let why = panic_text(error.into_panic().as_ref());
                warn!(actor = %running.handle().inbox, %why, "An actor failed.");
                ExitReason::Failed(format!("the actor panicked: {why}"))
            }
            Err(_) => ExitReason::Failed("the actor's task was cancelled".into()),
        };
        running.stop();
        running.exited(reason);
    });
    (actor, internal)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

type Queued = (Message, Option<Responder>);

/// The actor's loop: one message at a time until it stops.
async fn run<S: Stateful>(
    mut state: S,
    mut ctx: Context<S::Internal>,
    mut mailbox: mpsc::Receiver<Queued>,
    mut internal: mpsc::Receiver<S::Internal>,
    mut children: mpsc::UnboundedReceiver<(Handle, ExitReason)>,
) -> ExitReason {
    let mut stopped = ctx.actor.stopped_signal();
    let reason = loop {
        if let Some(reason) = ctx.stop.take() {
            break reason;
        }
        if *stopped.borrow_and_update() {
            break ExitReason::Normal;
        }
        tokio::select! {
            biased;
            // The sender lives as long as the actor: this only wakes on a change.
            _ = stopped.changed() => continue,
            Some((child, reason)) = children.recv() => {
                state.child_exited(&mut ctx, child, reason).await;
            }
            Some(message) = internal.recv() => state.internal(&mut ctx, message).await,
            Some(done) = ctx.tasks.join_next(), if !ctx.tasks.is_empty() => match done {
                Ok(Some(message)) => state.internal(&mut ctx, message).await,
                Ok(None) => {}
                Err(error) if error.is_panic() => {
                    let why = panic_text(error.into_panic().as_ref());
                    break ExitReason::Failed(format!("a task of the actor panicked: {why}"));
                }
                Err(_) => {}
            },
            Some((message, respond)) = mailbox.recv() => {
                let envelope = message.envelope.clone();
                dms_telemetry::metrics::message_received();
                let handled = AssertUnwindSafe(state.handle(&mut ctx, message))
                    .catch_unwind()
                    .instrument(envelope.span())
                    .await;
                let (reply, failed) = match handled {
                    Ok(reply) => (reply, None),
                    Err(panic) => {
                        let why = panic_text(panic.as_ref());
                        let error = ActorError::Internal { reason: format!("the actor failed: {why}") };
                        (Err(error), Some(ExitReason::Failed(format!("a handler panicked: {why}"))))
                    }
                };
                if let Some(reply_to) = envelope.reply_to.clone() {
                    ctx.actor.answer_to(envelope.from.clone(), reply_to, reply, respond).await;
                }
                if let Some(reason) = failed {
                    // The state may be half changed: nothing more runs on it.
                    warn!(actor = %ctx.actor.handle().inbox, %reason, "An actor failed.");
                    return finish(state, ctx, mailbox, reason, false).await;
                }
            }
        }
    };
    finish(state, ctx, mailbox, reason, true).await
}

/// Ends the actor: `stopping` (unless its state cannot be trusted), tasks aborted, queued
/// messages answered `Closed`.
async fn finish<S: Stateful>(
    mut state: S,
    mut ctx: Context<S::Internal>,
    mut mailbox: mpsc::Receiver<Queued>,
    reason: ExitReason,
    healthy: bool,
) -> ExitReason {
    debug!(actor = %ctx.actor.handle().inbox, %reason, "Actor stopping.");
    ctx.actor.stop();
    if healthy {
        state.stopping(&mut ctx, &reason).await;
    }
    ctx.tasks.shutdown().await;
    mailbox.close();
    while let Some((message, respond)) = mailbox.recv().await {
        let envelope = message.envelope;
        if let Some(reply_to) = envelope.reply_to.clone() {
            ctx.actor
                .answer_to(envelope.from.clone(), reply_to, Err(ActorError::Closed), respond)
                .await;
        }
    }
    reason
}
