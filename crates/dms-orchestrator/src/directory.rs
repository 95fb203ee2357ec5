//! What providers advertise, and the few worth asking.
//!
//! Providers broadcast a capacity [`Advert`] now and then and soon after their free
//! resources change (`dms_provider::advertise`). The orchestrating node keeps the latest
//! advert per provider here, and a placement asks only a **shortlist** — the best `k`
//! advertised providers per ensemble node, by the same [`score`] providers bid with —
//! for binding bids, instead of broadcasting to the whole network. The cost of a
//! placement is then bounded by `k`, not by the size of the network.
//!
//! An advert is a hint: it may be stale by up to its provider's advertising interval,
//! and a bid (which reserves) is what counts. A shortlisted provider that has filled up
//! refuses; the orchestrator widens to the next `2k`, then `4k`, and falls back to a
//! broadcast when the adverts run out ([`crate::orchestrator`], `bidding.rs`).
//! Near-equal candidates are taken in random order, so orchestrators placing at once
//! spread over providers rather than all asking the same best one first; and what this
//! node chose a provider for is taken off its advert ([`Directory::debit`]) until the
//! next one counts it, so a provider it filled is not asked again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dms_protocol::{Advert, NodeAsk};
use dms_types::capability::{Machine, score};
use dms_types::resources::Resources;

/// Most providers remembered; beyond, the advert closest to expiry is dropped.
pub const MAX_PROVIDERS: usize = 20_000;
/// Scores closer than this count as equal (taken in random order).
const TIE: f64 = 0.02;

/// The latest advert of every provider heard from.
#[derive(Default)]
pub struct Directory {
    adverts: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    machine: Machine,
    at_ms: u64,
    until: Instant,
}

impl Directory {
    /// Notes `peer`'s advert, received at `now` (an older one than kept is ignored).
    pub fn note(&self, peer: &str, advert: Advert, now: Instant) {
        let valid = Duration::from_millis(advert.valid_ms.min(600_000));
        let mut adverts = self.adverts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kept) = adverts.get(peer)
            && kept.at_ms >= advert.at_ms
            && kept.until > now
        {
            return;
        }
        if adverts.len() >= MAX_PROVIDERS && !adverts.contains_key(peer) {
            adverts.retain(|_, e| e.until > now);
            if adverts.len() >= MAX_PROVIDERS
                && let Some(oldest) =
                    adverts.iter().min_by_key(|(_, e)| e.until).map(|(p, _)| p.clone())
            {
                adverts.remove(&oldest);
            }
        }
        let entry = Entry { machine: advert.machine, at_ms: advert.at_ms, until: now + valid };
        adverts.insert(peer.to_string(), entry);
    }

    /// Takes `used` off what `peer`'s advert says is free: this node just chose it for
    /// that much. Until the provider's next advert (which counts it), later placements
    /// from here see the provider as it now is: still first while it is the tightest
    /// fit (the score packs), and no longer asked once it is full — a refusal and a
    /// round trip saved. GPUs are not debited. Placements already bidding when the
    /// debit is made do not see it.
    pub fn debit(&self, peer: &str, used: &Resources) {
        let mut adverts = self.adverts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = adverts.get_mut(peer) {
            entry.machine.free = entry.machine.free.saturating_sub(used);
        }
    }

    /// Forgets `peer` (it went away, or refused what its advert promised).
    pub fn forget(&self, peer: &str) {
        self.adverts.lock().unwrap_or_else(|e| e.into_inner()).remove(peer);
    }

    /// Providers with a live advert.
    pub fn len(&self, now: Instant) -> usize {
        self.adverts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| e.until > now)
            .count()
    }

    /// Whether no provider has a live advert.
    pub fn is_empty(&self, now: Instant) -> bool {
        self.len(now) == 0
    }

    /// The providers to ask for `asks`: per ensemble node, the `k` best live adverts
    /// that fit it, leaving out `skip` (excluded or already asked). `None` when some
    /// node has no candidate left: then only a broadcast can find one.
    pub fn shortlist(
        &self,
        asks: &[NodeAsk],
        skip: &BTreeSet<String>,
        k: usize,
        now: Instant,
    ) -> Option<BTreeSet<String>> {
        let adverts = self.adverts.lock().unwrap_or_else(|e| e.into_inner());
        let mut chosen = BTreeSet::new();
        for ask in asks {
            let mut fits: Vec<(f64, &String)> = adverts
                .iter()
                .filter(|(peer, e)| e.until > now && !skip.contains(*peer))
                .filter_map(|(peer, e)| fits(ask, peer, &e.machine).map(|s| (s, peer)))
                .collect();
            if fits.is_empty() {
                return None;
            }
            // Best first; near-equal scores in random order (a random key breaks ties).
            let mut keyed: Vec<(i64, u32, &String)> = fits
                .drain(..)
                .map(|(s, p)| (-((s / TIE).floor() as i64), rand::random::<u32>(), p))
                .collect();
            keyed.sort_unstable();
            chosen.extend(keyed.into_iter().take(k.max(1)).map(|(_, _, p)| p.clone()));
        }
        Some(chosen)
    }
}

/// The score of `ask` on `peer`'s advertised machine, when it could take it: the
/// executors, pin, places and [`score`]'s own checks (resources, GPUs, price,
/// duration, attributes, ports).
fn fits(ask: &NodeAsk, peer: &str, machine: &Machine) -> Option<f64> {
    if ask.pinned.as_deref().is_some_and(|p| p != peer) {
        return None;
    }
    if !ask.executors.iter().all(|e| machine.executors.contains(e)) {
        return None;
    }
    let place = machine.location.clone().unwrap_or_default();
    if !ask.accept.is_empty() && !ask.accept.iter().any(|a| a.includes(&place)) {
        return None;
    }
    if ask.reject.iter().any(|r| machine.location.is_some() && r.includes(&place)) {
        return None;
    }
    score(&ask.requirements, machine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dms_types::capability::Requirements;

    fn advert(cpu: u64, executors: &[&str], at_ms: u64) -> Advert {
        let mut machine = Machine {
            executors: executors.iter().map(|e| e.to_string()).collect(),
            ..Machine::default()
        };
        machine.free.cpu_millicores = cpu;
        machine.free.ram_bytes = 8 << 30;
        machine.free.disk_bytes = 8 << 30;
        Advert { machine, at_ms, valid_ms: 10_000 }
    }

    fn ask(cpu: u64) -> NodeAsk {
        NodeAsk {
            node: "n".into(),
            requirements: Requirements { cpu_millicores: cpu, ..Requirements::default() },
            executors: vec!["wasm".into()],
            pinned: None,
            accept: Vec::new(),
            reject: Vec::new(),
            binds: Vec::new(),
            subnet: false,
        }
    }

    #[test]
    fn shortlists_the_best_fitting_live_adverts() {
        let directory = Directory::default();
        let now = Instant::now();
        directory.note("small", advert(1_000, &["wasm"], 1), now);
        directory.note("tight", advert(2_000, &["wasm"], 1), now);
        directory.note("huge", advert(64_000, &["wasm"], 1), now);
        directory.note("docker-only", advert(64_000, &["docker"], 1), now);
        let list = directory.shortlist(&[ask(1_500)], &BTreeSet::new(), 1, now).expect("one");
        assert_eq!(list, BTreeSet::from(["tight".to_string()]), "the tightest fit first");
        let skip = BTreeSet::from(["tight".to_string()]);
        let list = directory.shortlist(&[ask(1_500)], &skip, 3, now).expect("widened");
        assert_eq!(list, BTreeSet::from(["huge".to_string()]), "small is too small");
        let skip = BTreeSet::from(["tight".to_string(), "huge".to_string()]);
        assert!(directory.shortlist(&[ask(1_500)], &skip, 3, now).is_none(), "none left");
    }

    #[test]
    fn adverts_expire_and_newer_ones_replace_older_ones() {
        let directory = Directory::default();
        let now = Instant::now();
        directory.note("p", advert(4_000, &["wasm"], 5), now);
        directory.note("p", advert(500, &["wasm"], 4), now);
        assert!(directory.shortlist(&[ask(1_000)], &BTreeSet::new(), 1, now).is_some(), "kept");
        directory.note("p", advert(500, &["wasm"], 6), now);
        assert!(directory.shortlist(&[ask(1_000)], &BTreeSet::new(), 1, now).is_none(), "full");
        let later = now + Duration::from_secs(11);
        assert_eq!(directory.len(later), 0, "expired");
        directory.forget("p");
        assert!(directory.is_empty(now));
    }

    #[test]
    fn a_debit_counts_until_the_next_advert() {
        let directory = Directory::default();
        let now = Instant::now();
        directory.note("p", advert(2_000, &["wasm"], 1), now);
        let used = Resources { cpu_millicores: 1_500, ..Resources::default() };
        directory.debit("p", &used);
        assert!(directory.shortlist(&[ask(1_000)], &BTreeSet::new(), 1, now).is_none(), "full");
        directory.debit("unknown", &used);
        directory.note("p", advert(2_000, &["wasm"], 2), now);
        assert!(directory.shortlist(&[ask(1_000)], &BTreeSet::new(), 1, now).is_some(), "reset");
    }

    #[test]
    fn near_equal_providers_are_asked_in_random_order() {
        let directory = Directory::default();
        let now = Instant::now();
        for i in 0..10 {
            directory.note(&format!("p{i}"), advert(64_000, &["wasm"], 1), now);
        }
        let firsts: BTreeSet<String> = (0..50)
            .filter_map(|_| directory.shortlist(&[ask(1_000)], &BTreeSet::new(), 1, now))
            .flatten()
            .collect();
        assert!(firsts.len() > 3, "always the same few: {firsts:?}");
    }
}
