//! Allocation statuses arrive at the orchestrator in any order — pushed updates, answers
//! to `start`, status polls after a restart, answers to `shutdown` — and possibly more
//! than once. Whatever the interleaving, the recorded status only moves forward and a
//! terminal state is never left.

use dms_protocol::{AllocationState, AllocationStatus};
use proptest::prelude::*;

fn status(state: AllocationState, version: u64) -> AllocationStatus {
    AllocationStatus { state, version, ..AllocationStatus::default() }
}

/// One allocation's life as its provider writes it: allocated, running, any number of
/// restarts, then an end (or still running).
fn life() -> impl Strategy<Value = Vec<AllocationStatus>> {
    let end = prop_oneof![
        Just(None),
        Just(Some(AllocationState::Completed)),
        Just(Some(AllocationState::Failed)),
        Just(Some(AllocationState::Stopped)),
    ];
    (0usize..4, end).prop_map(|(restarts, end)| {
        let mut states = vec![AllocationState::Allocated, AllocationState::Running];
        for _ in 0..restarts {
            states.extend([AllocationState::Starting, AllocationState::Running]);
        }
        states.extend(end);
        states.into_iter().enumerate().map(|(v, s)| status(s, v as u64)).collect()
    })
}

/// The life, and the order the orchestrator hears it in: a random selection of the
/// statuses (some twice, some never), shuffled.
fn heard() -> impl Strategy<Value = (Vec<AllocationStatus>, Vec<AllocationStatus>)> {
    life().prop_flat_map(|life| {
        let n = life.len();
        let picks = proptest::collection::vec(0..n, 0..3 * n);
        (Just(life), picks).prop_map(|(life, picks)| {
            let heard = picks.into_iter().map(|i| life[i].clone()).collect();
            (life, heard)
        })
    })
}

proptest! {
    #[test]
    fn the_record_only_moves_forward_and_never_leaves_an_end((life, heard) in heard()) {
        // The orchestrator records "allocated" itself when the provider answers allocate.
        let mut recorded = life[0].clone();
        let mut ended = false;
        for status in &heard {
            let before = recorded.clone();
            if status.supersedes(&recorded) {
                recorded = status.clone();
            }
            prop_assert!(recorded.version >= before.version, "moved back: {before:?} → {recorded:?}");
            if ended {
                prop_assert!(recorded.state.is_terminal(), "left an end: {before:?} → {recorded:?}");
            }
            ended |= recorded.state.is_terminal();
        }
        // The newest status heard is what is recorded.
        let newest = heard.iter().map(|s| s.version).max().unwrap_or(0);
        prop_assert_eq!(recorded.version, newest);
        prop_assert_eq!(recorded.state, life[newest as usize].state);
    }
}

#[test]
fn a_late_running_does_not_overwrite_completed() {
    let completed = status(AllocationState::Completed, 2);
    let running = status(AllocationState::Running, 1);
    assert!(!running.supersedes(&completed));
    assert!(completed.supersedes(&running));
    // Even a buggy provider that bumps the version cannot revive an ended allocation.
    assert!(!status(AllocationState::Running, 9).supersedes(&completed));
}
