//! Capacity adverts: while onboarded, the provider sends what its machine offers now
//! ([`Advert`]: free resources, executors, place, price, benchmarks, attributes) to the
//! orchestrating nodes that asked it for bids lately (its [`Audience`]), so that they
//! ask only the few providers likely to take a deployment
//! (`dms_orchestrator::directory`) instead of the whole network.
//!
//! Adverts go **directly** to those nodes, not by gossip: a broadcast would reach every
//! node of the network, N² deliveries for N providers, while few nodes orchestrate. A
//! node new to orchestrating hears adverts after its first bid round (a broadcast, since
//! its directory is empty): every provider that received it adds it to its audience and
//! sends it an advert at once.
//!
//! When: to a new member at once; to all every `deployment.advertise_every` (± 10 %) and within
//! about a second of a change (changes closer than [`MIN_GAP`] go out as one advert).
//! Adverts are hints: a bid, which reserves, is what counts. An advert holds for three
//! intervals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dms_protocol::{ADVERT, Advert};
use dms_types::capability::Machine;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::{Shared, offer};

/// How often the accounts are looked at.
const LOOK: Duration = Duration::from_millis(500);
/// Least time between two adverts.
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// How long an orchestrating node stays in the audience after its last bid request.
pub const STAY: Duration = Duration::from_secs(600);
/// Most orchestrating nodes in the audience (the least recent goes first).
pub const MAX_AUDIENCE: usize = 256;

/// The orchestrating nodes that asked for bids lately, and whether each has had an
/// advert yet.
#[derive(Default)]
pub struct Audience {
    members: Mutex<HashMap<String, (Instant, bool)>>,
}

impl Audience {
    /// `peer` asked for bids at `now`.
    pub fn heard(&self, peer: &str, now: Instant) {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(member) = members.get_mut(peer) {
            member.0 = now;
            return;
        }
        members.retain(|_, (last, _)| now.saturating_duration_since(*last) < STAY);
        if members.len() >= MAX_AUDIENCE
            && let Some(oldest) = members.iter().min_by_key(|(_, m)| m.0).map(|(p, _)| p.clone())
        {
            members.remove(&oldest);
        }
        members.insert(peer.to_string(), (now, false));
    }

    /// Whether nobody is in the audience.
    pub fn is_empty(&self) -> bool {
        self.members.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// The members to send to now: all of them (`everyone`), or only those that never
    /// had an advert; marks them served.
    fn take(&self, everyone: bool, now: Instant) -> Vec<String> {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.retain(|_, (last, _)| now.saturating_duration_since(*last) < STAY);
        members
            .iter_mut()
            .filter(|(_, (_, served))| everyone || !*served)
            .map(|(peer, (_, served))| {
                *served = true;
                peer.clone()
            })
            .collect()
    }
}

/// Starts the advertiser (none when `advertise_every` is zero). The provider owns the
/// task and stops it at shutdown; it also ends once the provider is gone.
pub(crate) fn start(shared: &Arc<Shared>) -> Option<JoinHandle<()>> {
    let every = shared.settings.advertise_every;
    if every.is_zero() {
        return None;
    }
    let weak = Arc::downgrade(shared);
    Some(tokio::spawn(async move {
        let mut last: Option<(Machine, Instant)> = None;
        // Each repeat waits `every` ± 10 %, drawn anew: providers that heard the same
        // warm-up at the same instant drift apart instead of advertising in bursts.
        let mut period = jittered(every);
        let mut tick = tokio::time::interval(LOOK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let Some(shared) = weak.upgrade() else { return };
            // Nobody orchestrates through this provider: no snapshot, no store read.
            if shared.audience.is_empty() {
                continue;
            }
            let status = shared.manager.status();
            if status.onboarded.is_none() {
                last = None;
                continue;
            }
            let machine = offer::machine(&shared, &status);
            let now = Instant::now();
            let everyone = due(last.as_ref(), &machine, now, period);
            let to = shared.audience.take(everyone, now);
            if everyone {
                last = Some((machine.clone(), now));
                period = jittered(every);
            }
            if !to.is_empty() {
                send(&shared, machine, every, &to).await;
            }
        }
    }))
}

/// `every` varied by up to ± 10 %.
fn jittered(every: Duration) -> Duration {
    every.mul_f64(rand::random_range(0.9..=1.1))
}

/// Sends the advert of `machine` to the root actors of `peers`.
async fn send(shared: &Shared, machine: Machine, every: Duration, peers: &[String]) {
    let advert = Advert {
        machine,
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        valid_ms: u64::try_from(every.as_millis().saturating_mul(3)).unwrap_or(u64::MAX),
    };
    let Ok(payload) = dms_protocol::encode(&advert) else { return };
    for peer in peers {
        let Some(to) = (shared.root_of)(peer) else { continue };
        if let Err(error) = shared.root.send(&to, ADVERT, payload.clone(), every).await {
            debug!(%error, %peer, "Could not send the capacity advert.");
        }
    }
}

/// Whether to advertise `machine` to everyone now: never within [`MIN_GAP`] of the last
/// advert; then when it changed, or when `every` has passed since the last.
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

    #[test]
    fn new_members_are_served_at_once_and_old_ones_leave() {
        let audience = Audience::default();
        let t0 = Instant::now();
        audience.heard("a", t0);
        assert_eq!(audience.take(false, t0), vec!["a".to_string()], "a new member");
        assert!(audience.take(false, t0).is_empty(), "served already");
        audience.heard("b", t0);
        let mut all = audience.take(true, t0);
        all.sort();
        assert_eq!(all, vec!["a".to_string(), "b".to_string()]);
        assert!(audience.take(true, t0 + STAY).is_empty(), "silent for too long");
        for i in 0..MAX_AUDIENCE + 5 {
            audience.heard(&format!("p{i}"), t0 + STAY + Duration::from_millis(i as u64));
        }
        assert_eq!(audience.members.lock().expect("lock").len(), MAX_AUDIENCE);
    }
}
