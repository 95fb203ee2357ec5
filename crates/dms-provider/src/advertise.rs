//! Capacity adverts: while onboarded, the provider broadcasts what its machine offers
//! now ([`Advert`] on [`DEPLOYMENT_TOPIC`]: free resources, executors, place, price,
//! benchmarks, attributes) every `deployment.advertise_every`, and within about a
//! second of a change — so orchestrators can ask only the few providers likely to take
//! a deployment (`dms_orchestrator::directory`) instead of the whole network.
//!
//! Adverts are hints: a bid, which reserves, is what counts. Changes closer together
//! than [`MIN_GAP`] go out as one advert, so a burst of placements does not become a
//! burst of broadcasts. An advert holds for three intervals.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dms_protocol::{ADVERT, Advert, DEPLOYMENT_TOPIC};
use dms_types::capability::Machine;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::{Shared, offer};

/// How often the accounts are looked at.
const LOOK: Duration = Duration::from_millis(500);
/// Least time between two adverts.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// Starts the advertiser (none when `advertise_every` is zero). The provider owns the
/// task and stops it at shutdown.
pub(crate) fn start(shared: &Arc<Shared>) -> Option<JoinHandle<()>> {
    let every = shared.settings.advertise_every;
    if every.is_zero() {
        return None;
    }
    let weak = Arc::downgrade(shared);
    Some(tokio::spawn(async move {
        let mut last: Option<(Machine, Instant)> = None;
        let mut tick = tokio::time::interval(LOOK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let Some(shared) = weak.upgrade() else { return };
            let status = shared.manager.status();
            if status.onboarded.is_none() {
                last = None;
                continue;
            }
            let machine = offer::machine(&shared, &status);
            let now = Instant::now();
            if !due(last.as_ref(), &machine, now, every) {
                continue;
            }
            let advert = Advert {
                machine: machine.clone(),
                at_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                valid_ms: u64::try_from(every.as_millis().saturating_mul(3)).unwrap_or(u64::MAX),
            };
            let sent = match dms_protocol::encode(&advert) {
                Ok(payload) => {
                    shared.root.broadcast(DEPLOYMENT_TOPIC, ADVERT, payload, every).await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = sent {
                debug!(%error, "Could not advertise the machine's capacity.");
            }
            last = Some((machine, now));
        }
    }))
}

/// Whether to advertise `machine` now: never within [`MIN_GAP`] of the last advert;
/// then when it changed, or when `every` has passed since the last.
fn due(
    last: Option<&(Machine, Instant)>,
    machine: &Machine,
    now: Instant,
    every: Duration,
) -> bool {
    let Some((sent, at)) = last else { return true };
    let since = now.saturating_duration_since(*at);
    since >= MIN_GAP && (sent != machine || since >= every)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_changes_at_most_once_a_gap_and_repeats_every_interval() {
        let t0 = Instant::now();
        let every = Duration::from_secs(10);
        let machine = Machine::default();
        let mut changed = Machine::default();
        changed.free.cpu_millicores = 500;
        assert!(due(None, &machine, t0, every), "the first advert goes at once");
        let last = (machine.clone(), t0);
        assert!(!due(Some(&last), &changed, t0 + Duration::from_millis(400), every), "too soon");
        assert!(due(Some(&last), &changed, t0 + MIN_GAP, every), "a change after the gap");
        assert!(!due(Some(&last), &machine, t0 + Duration::from_secs(5), every), "unchanged");
        assert!(due(Some(&last), &machine, t0 + every, every), "repeated every interval");
    }
}
