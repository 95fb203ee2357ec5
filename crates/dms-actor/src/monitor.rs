//! Monitors: one actor watching another, with the same API whether the watched actor
//! lives on this node or on a remote one, and a typed reason when it is down.
//!
//! - **Local** target: the monitor hears the actor's exit at once, with its
//!   [`ExitReason`]; one that is not registered counts as already gone.
//! - **Remote** target: the monitor sends a [`PING`] every `heartbeat` (answered by the
//!   receive pipeline of any actor: signature, expiry and replay checked, no capability
//!   needed, rate-limited as a public behavior). An answer means alive; an answer
//!   from its node that the actor does not exist ([`ActorError::NoSuchActor`] or
//!   `Closed`) means it stopped; no answer is silence.
//!
//! Silence is judged by [`Judge`], sans-IO: `healthy` while answered within
//! `lost_after`, `unknown` after that, and `lost` only on **positive evidence** — the
//! node still reaches some other peer ([`Transport::reaches`]). A node whose own network
//! is down sees every peer silent and reaches nobody: it stays `unknown` and never tears
//! down work that may be healthy. A peer heard from again is `healthy` again.
//!
//! What each side may assume is in `docs/actor-semantics.md` (Monitors).
//!
//! [`Transport::reaches`]: crate::Transport::reaches

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::actor::Actor;
use crate::envelope::Handle;
use crate::error::ActorError;
use crate::stateful::ExitReason;

/// The liveness probe every actor answers.
pub const PING: &str = "/public/actor/ping";

/// How often to probe and how long a silence may last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// Time between probes (and the probe's own timeout).
    pub heartbeat: Duration,
    /// Silence after which the peer is `unknown`, and `lost` given positive evidence.
    pub lost_after: Duration,
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness { heartbeat: Duration::from_secs(1), lost_after: Duration::from_secs(5) }
    }
}

/// What a monitor believes of the watched actor's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Heard from within `lost_after`.
    Healthy,
    /// Silent for `lost_after` or more, but this node reaches nobody else either: it
    /// cannot tell who is cut off.
    Unknown {
        /// How long it has been silent.
        silent_for: Duration,
    },
    /// Silent for `lost_after` or more while this node reaches other peers.
    Lost {
        /// How long it had been silent.
        silent_for: Duration,
    },
}

/// Why a monitored actor is down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Down {
    /// It stopped, and its node said why (local actors) or that it is gone (remote).
    Exited(ExitReason),
    /// Its peer is lost (see [`PeerState::Lost`]).
    Lost {
        /// How long it had been silent.
        silent_for: Duration,
    },
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Down::Exited(reason) => write!(f, "exited: {reason}"),
            Down::Lost { silent_for } => write!(
                f,
                "lost: silent for {:.1} s while this node reaches other peers",
                silent_for.as_secs_f64()
            ),
        }
    }
}

/// The sans-IO liveness judgement of one peer: fed when it was heard from and, at
/// each check, whether this node reaches any other peer.
#[derive(Debug)]
pub struct Judge {
    lost_after: Duration,
    last_heard: Instant,
    state: PeerState,
}

impl Judge {
    /// A peer just heard from (or just started being watched) at `now`.
    pub fn new(liveness: Liveness, now: Instant) -> Judge {
        Judge { lost_after: liveness.lost_after, last_heard: now, state: PeerState::Healthy }
    }

    /// The peer answered at `now`.
    pub fn heard(&mut self, now: Instant) -> PeerState {
        self.last_heard = self.last_heard.max(now);
        self.state = PeerState::Healthy;
        self.state
    }

    /// A check at `now`; `reaches_others`: this node reaches some other peer.
    pub fn check(&mut self, now: Instant, reaches_others: bool) -> PeerState {
        let silent_for = now.saturating_duration_since(self.last_heard);
        self.state = if silent_for < self.lost_after {
            PeerState::Healthy
        } else if reaches_others {
            PeerState::Lost { silent_for }
        } else {
            PeerState::Unknown { silent_for }
        };
        self.state
    }

    /// The state after the last input.
    pub fn state(&self) -> PeerState {
        self.state
    }
}

/// A running monitor; dropping it stops watching.
pub struct Monitor {
    state: watch::Receiver<PeerState>,
    down: watch::Receiver<Option<Down>>,
    task: JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Monitor {
    /// The watched peer's state now.
    pub fn state(&self) -> PeerState {
        *self.state.borrow()
    }

    /// Why the watched actor is down, once it is.
    pub fn down_now(&self) -> Option<Down> {
        self.down.borrow().clone()
    }

    /// Waits until the watched actor is down; why.
    pub async fn down(&mut self) -> Down {
        loop {
            if let Some(down) = self.down.borrow_and_update().clone() {
                return down;
            }
            if self.down.changed().await.is_err() {
                // The task ended without a verdict: only an abort does that.
                return Down::Exited(ExitReason::Failed("the monitor was stopped".into()));
            }
        }
    }
}

impl Actor {
    /// Watches `target` (on this node or another) until it is down; see the module
    /// docs for what counts.
    pub fn monitor(&self, target: Handle, liveness: Liveness) -> Monitor {
        let (state_tx, state) = watch::channel(PeerState::Healthy);
        let (down_tx, down) = watch::channel(None);
        let local = target.peer == self.inner.router.peer();
        let task = if local {
            // Registered now, so that a stop right after this call is heard.
            let (exits, rx) = mpsc::unbounded_channel();
            match self.inner.router.actor(&target.inbox).filter(|a| a.handle() == &target) {
                Some(actor) => actor.on_exit(exits),
                None => {
                    let gone = ExitReason::Failed("no such actor".into());
                    down_tx.send_replace(Some(Down::Exited(gone)));
                }
            }
            tokio::spawn(watch_local(rx, down_tx))
        } else {
            tokio::spawn(watch_remote(self.clone(), target, liveness, state_tx, down_tx))
        };
        Monitor { state, down, task }
    }
}

async fn watch_local(
    mut exits: mpsc::UnboundedReceiver<(Handle, ExitReason)>,
    down: watch::Sender<Option<Down>>,
) {
    if let Some((_, reason)) = exits.recv().await {
        down.send_replace(Some(Down::Exited(reason)));
    }
}

async fn watch_remote(
    me: Actor,
    target: Handle,
    liveness: Liveness,
    state: watch::Sender<PeerState>,
    down: watch::Sender<Option<Down>>,
) {
    let mut judge = Judge::new(liveness, Instant::now());
    let mut ticks = tokio::time::interval(liveness.heartbeat);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let answer = me.invoke(&target, PING, Vec::new(), liveness.heartbeat).await;
        if me.exit_reason().is_some() || me.inner.stopped.load(Ordering::SeqCst) {
            // The watcher itself stopped: no verdict about the target.
            return;
        }
        let verdict = match answer {
            Err(ActorError::NoSuchActor { .. } | ActorError::Closed) => {
                let gone = ExitReason::Failed(format!("its node {} says it is gone", target.peer));
                down.send_replace(Some(Down::Exited(gone)));
                return;
            }
            // Only no answer at all is silence.
            Err(ActorError::Timeout { .. } | ActorError::Transport { .. }) => {
                let reaches = me.inner.router.reaches_others(&target.peer).await;
                judge.check(Instant::now(), reaches)
            }
            // Any other answer (busy, rate limited, …) came from the target's node.
            Ok(_) | Err(_) => judge.heard(Instant::now()),
        };
        state.send_replace(verdict);
        if let PeerState::Lost { silent_for } = verdict {
            down.send_replace(Some(Down::Lost { silent_for }));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge() -> (Judge, Instant) {
        let now = Instant::now();
        let liveness =
            Liveness { heartbeat: Duration::from_millis(200), lost_after: Duration::from_secs(1) };
        (Judge::new(liveness, now), now)
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_healthy_until_lost_after_then_lost_only_with_evidence() {
        let (mut judge, start) = judge();
        assert_eq!(judge.check(start + Duration::from_millis(900), true), PeerState::Healthy);
        let later = start + Duration::from_millis(1500);
        let silent_for = Duration::from_millis(1500);
        assert_eq!(judge.check(later, false), PeerState::Unknown { silent_for });
        assert_eq!(judge.check(later, true), PeerState::Lost { silent_for });
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_heard_again_is_healthy_and_its_silence_starts_over() {
        let (mut judge, start) = judge();
        judge.check(start + Duration::from_secs(2), false);
        assert_eq!(judge.heard(start + Duration::from_secs(2)), PeerState::Healthy);
        assert_eq!(judge.check(start + Duration::from_millis(2900), true), PeerState::Healthy);
        assert!(matches!(
            judge.check(start + Duration::from_secs(3), true),
            PeerState::Lost { silent_for } if silent_for == Duration::from_secs(1)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_answer_does_not_move_the_last_heard_back() {
        let (mut judge, start) = judge();
        judge.heard(start + Duration::from_secs(5));
        judge.heard(start + Duration::from_secs(4));
        assert_eq!(judge.check(start + Duration::from_millis(5900), true), PeerState::Healthy);
    }
}
