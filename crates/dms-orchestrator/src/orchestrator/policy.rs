//! Placement decisions, sans-IO: when a bid window closes, how long to wait between
//! attempts, and when to stop trying. The orchestrator feeds them what happened and
//! the time; they do no I/O and never sleep, so they are tested with paused time.

use std::time::Duration;

use tokio::time::Instant;

use super::Settings;

/// First pause between attempts; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Attempts in a row blocked by the same lasting reason before the deployment fails.
pub const STRIKES: u32 = 3;

/// One bid window: open until every expected peer answered, a short grace after the
/// answers first allow a placement, or the longest window — whichever comes first.
#[derive(Debug)]
pub struct BidWindow {
    close: Instant,
    grace: Duration,
    expected: usize,
    answered: usize,
    placeable: bool,
}

impl BidWindow {
    /// A window opened at `now`, expecting answers from `expected` peers.
    pub fn open(now: Instant, settings: &Settings, expected: usize) -> BidWindow {
        BidWindow {
            close: now + settings.bid_window,
            grace: settings.bid_grace,
            expected: expected.max(1),
            answered: 0,
            placeable: false,
        }
    }

    /// When the window closes unless more answers come.
    pub fn closes_at(&self) -> Instant {
        self.close
    }

    /// An answer arrived at `now`; `placeable`: the answers so far allow a placement.
    /// Whether the window is closed now.
    pub fn answered(&mut self, now: Instant, placeable: bool) -> bool {
        self.answered += 1;
        if placeable && !self.placeable {
            self.placeable = true;
            self.close = self.close.min(now + self.grace);
        }
        self.answered >= self.expected || now >= self.close
    }

    /// How many peers answered.
    pub fn answers(&self) -> usize {
        self.answered
    }

    /// How many peers were expected to.
    pub fn expected(&self) -> usize {
        self.expected
    }
}

/// What to do after an attempt that did not place the deployment.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again after this pause.
    Retry(Duration),
    /// Give up: the deployment fails with this reason.
    Fail(String),
}

pub use dms_types::backoff::Backoff;

/// The attempts of one placement: back-off, and the reason that keeps blocking.
#[derive(Debug)]
pub struct Attempts {
    backoff: Backoff,
    last_reason: String,
    same_reason: u32,
}

impl Default for Attempts {
    fn default() -> Attempts {
        Attempts {
            backoff: Backoff::new(FIRST_BACKOFF, MAX_BACKOFF),
            last_reason: String::new(),
            same_reason: 0,
        }
    }
}

impl Attempts {
    /// The deadline check before an attempt: `Some(reason)` when it has passed.
    pub fn past_deadline(&self, now_ms: u64, deadline_ms: u64, attempts: u32) -> Option<String> {
        (now_ms >= deadline_ms).then(|| {
            let why = if self.last_reason.is_empty() {
                "no attempt finished"
            } else {
                self.last_reason.as_str()
            };
            format!("deadline passed after {attempts} attempts: {why}")
        })
    }

    /// The bids allowed no placement, for `reason`; `lasting`: no refusal may pass
    /// (nothing is only in use for now). The same lasting reason [`STRIKES`] times in a
    /// row ends the deployment at once instead of at its deadline.
    pub fn unplaceable(&mut self, reason: &str, lasting: bool, left: Duration) -> Next {
        self.same_reason = if reason == self.last_reason { self.same_reason + 1 } else { 1 };
        self.last_reason = reason.to_string();
        if lasting && self.same_reason >= STRIKES {
            return Next::Fail(format!("cannot be placed: {reason}"));
        }
        Next::Retry(self.backoff.take(left))
    }

    /// A chosen provider failed to commit, allocate or start, for `reason` (it is not
    /// asked again, so the next attempt differs: the strikes start over).
    pub fn provider_failed(&mut self, reason: &str, left: Duration) -> Next {
        self.last_reason = reason.to_string();
        self.same_reason = 0;
        Next::Retry(self.backoff.take(left))
    }
}

#[cfg(test)]
mod tests;
