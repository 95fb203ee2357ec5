//! Heartbeats: once started, an allocation tells its orchestrator every
//! `heartbeat_ms` that it is alive and how it is (an [`Update`] with `heartbeat`). The
//! answer is evidence both ways:
//!
//! - `keep: false` — the orchestrator placed this allocation elsewhere meanwhile (this
//!   provider was lost to it), or the deployment is over: the allocation stops and frees
//!   its resources at once, so that exactly one copy runs.
//! - no answer for `stop_after_ms` — its orchestrator is gone: the allocation stops and
//!   frees its resources rather than run unowned. A provider restart counts the silence
//!   afresh (a grace, not a verdict).
//!
//! One heartbeat is in flight at a time; the timer and the call are tasks the actor
//! owns, so they end with it.

use std::time::Duration;

use dms_actor::envelope::now_ms;
use dms_actor::stateful::Context;
use dms_protocol::{Ack, Update};
use tracing::{info, warn};

use super::machine::Input;
use super::{Allocation, Internal};

/// The heartbeats of one allocation.
#[derive(Debug)]
pub(crate) struct Beats {
    /// When the orchestrator last answered (or the actor started: the grace).
    last_answer_ms: u64,
    /// The timer runs.
    running: bool,
    /// A heartbeat is on its way.
    in_flight: bool,
}

impl Beats {
    pub(crate) fn new() -> Beats {
        Beats { last_answer_ms: now_ms(), running: false, in_flight: false }
    }
}

impl Allocation {
    fn interval(&self) -> Duration {
        Duration::from_millis(self.liveness().heartbeat_ms.max(50))
    }

    /// Starts the heartbeat timer unless it runs or the allocation has ended or not
    /// started.
    pub(crate) fn beat_soon(&mut self, ctx: &mut Context<Internal>) {
        let state = self.hosted.status.state;
        if self.beats.running
            || state.is_terminal()
            || state == dms_protocol::AllocationState::Allocated
        {
            return;
        }
        self.beats.running = true;
        ctx.after(self.interval(), Internal::Beat);
    }

    /// The timer fired: send one heartbeat (unless one is on its way) and set the next.
    pub(crate) fn beat(&mut self, ctx: &mut Context<Internal>) {
        if self.hosted.status.state.is_terminal() {
            self.beats.running = false;
            return;
        }
        if !self.beats.in_flight {
            self.beats.in_flight = true;
            let actor = ctx.actor().clone();
            let to = self.hosted.orchestrator.clone();
            let update = Update {
                deployment: self.hosted.deployment.clone(),
                allocation: self.hosted.spec.name.clone(),
                status: self.hosted.status.clone(),
                heartbeat: true,
            };
            let timeout =
                (self.interval() * 3).clamp(Duration::from_secs(1), Duration::from_secs(5));
            ctx.spawn(async move {
                let answer = dms_protocol::call(&actor, &to, &update, timeout).await;
                Some(Internal::Beaten(answer.map_err(|e| e.to_string())))
            });
        }
        ctx.after(self.interval(), Internal::Beat);
    }

    /// What came of a heartbeat.
    pub(crate) async fn beaten(
        &mut self,
        ctx: &mut Context<Internal>,
        answer: Result<Ack, String>,
    ) {
        self.beats.in_flight = false;
        let now = now_ms();
        match answer {
            Ok(Ack { keep: true }) => self.beats.last_answer_ms = now,
            Ok(Ack { keep: false }) => {
                let reason = "stopped: its orchestrator placed it elsewhere while this provider \
                              was unreachable (or the deployment ended)";
                info!(allocation = %self.hosted.id, "{reason}");
                self.apply(ctx, Input::Abandon { reason: reason.into() }).await;
            }
            Err(error) => {
                let silent = now.saturating_sub(self.beats.last_answer_ms);
                if silent < self.liveness().stop_after_ms {
                    return;
                }
                let reason = format!(
                    "stopped: its orchestrator has not answered for {} s (last: {error}); \
                     nothing is left running unowned",
                    silent / 1000
                );
                warn!(allocation = %self.hosted.id, "{reason}");
                self.apply(ctx, Input::Abandon { reason }).await;
            }
        }
    }
}
