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
//! The heartbeats run on one task the actor owns, apart from the actor's own work: an
//! allocation busy for a while (pulling an image, stopping a workload that ignores
//! SIGTERM) keeps beating with its latest status, which the actor publishes on a
//! watch channel after every change; once that status is final, one last beat carries
//! it and the task ends. The task reports back only a verdict.

use std::time::Duration;

use dms_actor::envelope::now_ms;
use dms_actor::stateful::Context;
use dms_actor::{Actor, Handle};
use dms_protocol::{Ack, AllocationStatus, Liveness, Update};
use tokio::sync::watch;
use tracing::{info, warn};

use super::machine::Input;
use super::{Allocation, Internal};

/// The heartbeats of one allocation.
#[derive(Debug)]
pub(crate) struct Beats {
    /// The status as last published (what the next heartbeat carries).
    status: watch::Sender<AllocationStatus>,
    /// The heartbeat task runs.
    running: bool,
}

impl Beats {
    pub(crate) fn new(status: AllocationStatus) -> Beats {
        Beats { status: watch::Sender::new(status), running: false }
    }

    /// Publishes the status the next heartbeat carries.
    pub(crate) fn publish(&self, status: &AllocationStatus) {
        self.status.send_if_modified(|current| {
            let changed = current != status;
            if changed {
                *current = status.clone();
            }
            changed
        });
    }
}

impl Allocation {
    /// Starts the heartbeat task unless it runs or the allocation has ended or not
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
        self.beats.publish(&self.hosted.status);
        let beating = Beating {
            actor: ctx.actor().clone(),
            to: self.hosted.orchestrator.clone(),
            deployment: self.hosted.deployment.clone(),
            allocation: self.hosted.spec.name.clone(),
            status: self.beats.status.subscribe(),
            liveness: self.liveness(),
        };
        ctx.spawn(beating.run());
    }

    /// The heartbeat task's verdict: the orchestrator said stop, or stayed silent.
    pub(crate) async fn beaten(
        &mut self,
        ctx: &mut Context<Internal>,
        answer: Result<Ack, String>,
    ) {
        self.beats.running = false;
        let reason = match answer {
            Ok(Ack { keep: true }) => return,
            Ok(Ack { keep: false }) => {
                let reason = "stopped: its orchestrator placed it elsewhere while this provider \
                              was unreachable (or the deployment ended)";
                info!(allocation = %self.hosted.id, "{reason}");
                reason.to_string()
            }
            Err(reason) => {
                warn!(allocation = %self.hosted.id, "{reason}");
                reason
            }
        };
        self.apply(ctx, Input::Abandon { reason }).await;
    }
}

/// What the heartbeat task needs.
struct Beating {
    actor: Actor,
    to: Handle,
    deployment: String,
    allocation: String,
    status: watch::Receiver<AllocationStatus>,
    liveness: Liveness,
}

impl Beating {
    /// Beats until the allocation ends (`None`), or until there is a verdict for the
    /// actor.
    async fn run(self) -> Option<Internal> {
        let interval = Duration::from_millis(self.liveness.heartbeat_ms.max(50));
        let timeout = (interval * 3).clamp(Duration::from_secs(1), Duration::from_secs(5));
        let mut last_answer = now_ms();
        loop {
            tokio::time::sleep(interval).await;
            let status = self.status.borrow().clone();
            let last = status.state.is_terminal();
            let update = Update {
                deployment: self.deployment.clone(),
                allocation: self.allocation.clone(),
                status,
                heartbeat: true,
            };
            if last {
                // The end, carried at once: the actor may be busy for a while yet
                // (stopping a workload that ignores SIGTERM) before it tells it, and
                // silence meanwhile would look like a lost provider. Its answer changes
                // nothing: the allocation has ended.
                let _ = dms_protocol::call(&self.actor, &self.to, &update, timeout).await;
                return None;
            }
            match dms_protocol::call(&self.actor, &self.to, &update, timeout).await {
                Ok(ack) if ack.keep => last_answer = now_ms(),
                // The orchestrator's node refused it as late or too many: it is there.
                Err(error) if error.is_busy_peer() => last_answer = now_ms(),
                Ok(ack) => return Some(Internal::Beaten(Ok(ack))),
                Err(error) => {
                    let silent = now_ms().saturating_sub(last_answer);
                    if silent >= self.liveness.stop_after_ms {
                        let reason = format!(
                            "stopped: its orchestrator has not answered for {} s (last: \
                             {error}); nothing is left running unowned",
                            silent / 1000
                        );
                        return Some(Internal::Beaten(Err(reason)));
                    }
                }
            }
        }
    }
}
