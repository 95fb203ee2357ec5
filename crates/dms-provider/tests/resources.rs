//! The resource manager: exact accounts under concurrency, reservations that expire on
//! their own, state that survives a restart, and refusals that name the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dms_provider::resources::{Clock, ResourceError, ResourceManager};
use dms_store::Store;
use dms_types::resources::Resources;
use proptest::prelude::*;

const GIB: u64 = 1024 * 1024 * 1024;

fn machine() -> Resources {
    Resources { cpu_millicores: 8000, ram_bytes: 32 * GIB, disk_bytes: 500 * GIB, gpus: vec![] }
}

fn res(cpu: u64, ram_gib: u64, disk_gib: u64) -> Resources {
    Resources {
        cpu_millicores: cpu,
        ram_bytes: ram_gib * GIB,
        disk_bytes: disk_gib * GIB,
        gpus: vec![],
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    now: Arc<AtomicU64>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dms.redb");
        Fixture { _dir: dir, path, now: Arc::new(AtomicU64::new(1_000_000)) }
    }

    fn clock(&self) -> Clock {
        let now = self.now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    }

    fn open(&self) -> ResourceManager {
        let store = Store::open(&self.path).expect("store");
        ResourceManager::open(store, self.clock()).expect("manager")
    }

    fn advance(&self, by: Duration) {
        self.now.fetch_add(u64::try_from(by.as_millis()).expect("small"), Ordering::SeqCst);
    }
}

#[test]
fn over_asks_name_the_machine_limit() {
    let f = Fixture::new();
    let m = f.open();
    let error = m.onboard(res(64_000, 1, 1), &machine()).expect_err("too many cores");
    assert!(matches!(error, ResourceError::OverAsk { .. }));
    assert_eq!(
        error.to_string(),
        "cannot onboard 64 CPU cores: this machine has 8 cores; ask for at most that"
    );
    let error = m.onboard(res(1000, 64, 1), &machine()).expect_err("too much RAM");
    assert!(error.to_string().contains("this machine has 32.0 GiB RAM"), "{error}");
}

#[test]
fn reonboarding_changes_amounts_but_never_below_what_is_in_use() {
    let f = Fixture::new();
    let m = f.open();
    m.onboard(res(4000, 8, 100), &machine()).expect("onboard");
    m.reserve("job", res(3000, 4, 10), Duration::from_secs(60)).expect("reserve");
    m.onboard(res(6000, 16, 100), &machine()).expect("grow");
    let error = m.onboard(res(2000, 16, 100), &machine()).expect_err("below use");
    assert!(matches!(error, ResourceError::BelowUse { .. }), "{error}");
    assert_eq!(m.status().free, res(3000, 12, 90));
}

#[test]
fn an_expired_reservation_returns_its_resources() {
    let f = Fixture::new();
    let m = f.open();
    m.onboard(res(4000, 8, 100), &machine()).expect("onboard");
    m.reserve("bid-1", res(4000, 8, 100), Duration::from_secs(30)).expect("reserve all");
    assert!(m.reserve("bid-2", res(1000, 1, 1), Duration::from_secs(30)).is_err(), "nothing free");
    f.advance(Duration::from_secs(31));
    assert_eq!(m.status().free, res(4000, 8, 100), "expired: everything free again");
    m.reserve("bid-2", res(1000, 1, 1), Duration::from_secs(30)).expect("free again");
    assert!(matches!(m.allocate("bid-1"), Err(ResourceError::NoReservation { .. })));
}

#[test]
fn accounts_survive_a_restart_and_expiries_while_down_are_dropped() {
    let f = Fixture::new();
    {
        let m = f.open();
        m.onboard(res(4000, 8, 100), &machine()).expect("onboard");
        m.reserve("running", res(1000, 2, 10), Duration::from_secs(30)).expect("reserve");
        m.allocate("running").expect("allocate");
        m.reserve("short", res(1000, 1, 1), Duration::from_secs(5)).expect("reserve");
        m.reserve("long", res(1000, 1, 1), Duration::from_secs(600)).expect("reserve");
    }
    f.advance(Duration::from_secs(10));
    let m = f.open();
    let status = m.status();
    assert_eq!(status.allocated, res(1000, 2, 10));
    assert_eq!(status.committed, res(1000, 1, 1), "only the long reservation is left");
    assert_eq!(status.reservations.len(), 1);
    assert!(matches!(m.offboard(), Err(ResourceError::Busy { count: 1 })));
    assert!(m.release("running").expect("release"));
    m.offboard().expect("offboard once nothing runs");
    assert!(m.status().onboarded.is_none());
}

#[test]
fn concurrent_reservations_never_exceed_what_was_onboarded() {
    let f = Fixture::new();
    let m = f.open();
    m.onboard(res(8000, 32, 500), &machine()).expect("onboard");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut won = 0;
                for i in 0..20 {
                    let id = format!("t{t}-{i}");
                    if m.reserve(&id, res(300, 1, 10), Duration::from_secs(60)).is_ok() {
                        won += 1;
                    }
                }
                won
            })
        })
        .collect();
    let won: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    // 8000 millicores / 300 = 26 reservations fit; RAM (32) and disk (50) allow more.
    assert_eq!(won, 26);
    let status = m.status();
    assert!(status.committed.fits_in(&res(8000, 32, 500)));
    assert_eq!(status.free.cpu_millicores, 8000 - 26 * 300);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of reserve / allocate / release / time passing keeps
    /// committed + allocated within what was onboarded, and free = onboarded - used.
    #[test]
    fn accounts_stay_exact(
        ops in proptest::collection::vec((0u8..4, 0u64..4000, 0u64..12, 1u64..120), 1..40)
    ) {
        let f = Fixture::new();
        let m = f.open();
        let offered = res(8000, 32, 500);
        m.onboard(offered.clone(), &machine()).expect("onboard");
        for (i, (op, cpu, ram, secs)) in ops.into_iter().enumerate() {
            match op {
                0 => {
                    let _ = m.reserve(&format!("r{i}"), res(cpu, ram, 1), Duration::from_secs(secs));
                }
                1 => {
                    if let Some(r) = m.status().reservations.first() {
                        let _ = m.allocate(&r.id.clone());
                    }
                }
                2 => {
                    if let Some(id) = m.status().allocations.keys().next() {
                        let _ = m.release(&id.clone());
                    }
                }
                _ => f.advance(Duration::from_secs(secs)),
            }
            let s = m.status();
            let used = s.committed.checked_add(&s.allocated).expect("no overflow");
            prop_assert!(used.fits_in(&offered));
            prop_assert_eq!(s.free.checked_add(&used).expect("no overflow"), offered.clone());
        }
    }
}

#[test]
fn a_reservation_can_become_a_smaller_allocation_and_frees_the_rest() {
    let f = Fixture::new();
    let m = f.open();
    m.onboard(res(4000, 8, 100), &machine()).expect("onboard");
    m.reserve("d-1/a", res(2000, 4, 10), Duration::from_secs(30)).expect("reserve");
    m.extend("d-1/a", Duration::from_secs(60)).expect("commit extends");
    let taken = m.allocate_as("d-1/a", res(500, 1, 0), 0).expect("allocate part");
    assert_eq!(taken, res(500, 1, 0));
    assert_eq!(m.status().free, res(3500, 7, 100), "the rest of the reservation is free");
    m.reserve("d-2/a", res(1000, 1, 1), Duration::from_secs(30)).expect("reserve");
    let error = m.allocate_as("d-2/a", res(2000, 1, 1), 0).expect_err("more than reserved");
    assert!(matches!(error, ResourceError::Insufficient { .. }), "{error}");
    assert!(m.status().reservations.iter().any(|r| r.id == "d-2/a"), "a refusal keeps it");
    f.advance(Duration::from_secs(31));
    let error = m.extend("d-2/a", Duration::from_secs(60)).expect_err("lapsed");
    assert!(matches!(error, ResourceError::NoReservation { .. }), "{error}");
}
