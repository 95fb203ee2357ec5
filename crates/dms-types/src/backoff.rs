//! The one back-off of dms: a pause that doubles each time it is taken, up to a ceiling.
//! Used by the orchestrator's placement attempts and standby upkeep, and by the subnet's
//! dials to providers.

use std::time::Duration;

/// A pause that doubles each time it is taken, from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `first`, doubles up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, next: first, max }
    }

    /// The pause to take now (never more than `left`); the next one doubles.
    pub fn take(&mut self, left: Duration) -> Duration {
        let pause = self.next.min(left);
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// Starts over from the first pause (the thing backed off from worked).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_ceiling_and_start_over_on_reset() {
        let s = Duration::from_secs;
        let mut backoff = Backoff::new(s(1), s(5));
        let taken: Vec<Duration> = (0..5).map(|_| backoff.take(s(60))).collect();
        assert_eq!(taken, [s(1), s(2), s(4), s(5), s(5)]);
        assert_eq!(backoff.take(s(3)), s(3), "never more than what is left");
        backoff.reset();
        assert_eq!(backoff.take(s(60)), s(1));
    }
}
