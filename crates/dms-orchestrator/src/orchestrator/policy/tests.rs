use std::time::Duration;

use tokio::time::{Instant, advance};

use super::*;

fn settings() -> Settings {
    Settings {
        bid_window: Duration::from_secs(3),
        bid_grace: Duration::from_millis(200),
        ..Settings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn the_window_closes_when_every_peer_answered() {
    let mut window = BidWindow::open(Instant::now(), &settings(), 3);
    advance(Duration::from_millis(10)).await;
    assert!(!window.answered(Instant::now(), false));
    assert!(!window.answered(Instant::now(), false));
    assert!(window.answered(Instant::now(), false), "the third of three closes it");
    assert_eq!(window.answers(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_placeable_answer_leaves_only_a_short_grace() {
    let opened = Instant::now();
    let mut window = BidWindow::open(opened, &settings(), 100);
    assert_eq!(window.closes_at(), opened + Duration::from_secs(3));
    advance(Duration::from_millis(50)).await;
    assert!(!window.answered(Instant::now(), true));
    assert_eq!(window.closes_at(), opened + Duration::from_millis(250), "grace after placeable");
    advance(Duration::from_millis(100)).await;
    assert!(!window.answered(Instant::now(), true));
    assert_eq!(window.closes_at(), opened + Duration::from_millis(250), "the grace is not renewed");
    advance(Duration::from_millis(200)).await;
    assert!(window.answered(Instant::now(), true), "an answer after the grace finds it closed");
}

#[tokio::test(start_paused = true)]
async fn without_answers_the_window_lasts_its_longest() {
    let opened = Instant::now();
    let window = BidWindow::open(opened, &settings(), 0);
    assert_eq!(window.expected(), 1, "this node at least");
    assert_eq!(window.closes_at(), opened + Duration::from_secs(3));
}

#[test]
fn back_off_doubles_to_five_seconds_and_never_passes_the_deadline() {
    let mut attempts = Attempts::default();
    let long = Duration::from_secs(60);
    let pauses: Vec<Duration> = (0..7)
        .map(|i| match attempts.unplaceable(&format!("reason {i}"), false, long) {
            Next::Retry(pause) => pause,
            Next::Fail(why) => panic!("a transient reason never fails early: {why}"),
        })
        .collect();
    let ms: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [250, 500, 1000, 2000, 4000, 5000, 5000]);
    assert_eq!(
        attempts.unplaceable("x", false, Duration::from_millis(30)),
        Next::Retry(Duration::from_millis(30)),
        "the pause ends at the deadline"
    );
}

#[test]
fn the_same_lasting_reason_three_times_fails_at_once() {
    let mut attempts = Attempts::default();
    let left = Duration::from_secs(60);
    assert!(matches!(attempts.unplaceable("no gpu", true, left), Next::Retry(_)));
    assert!(matches!(attempts.unplaceable("no gpu", true, left), Next::Retry(_)));
    assert_eq!(
        attempts.unplaceable("no gpu", true, left),
        Next::Fail("cannot be placed: no gpu".into())
    );
}

#[test]
fn transient_or_changing_reasons_do_not_count_as_strikes() {
    let mut attempts = Attempts::default();
    let left = Duration::from_secs(60);
    for _ in 0..5 {
        assert!(matches!(attempts.unplaceable("cpu in use", false, left), Next::Retry(_)));
    }
    assert!(matches!(attempts.unplaceable("a", true, left), Next::Retry(_)));
    assert!(matches!(attempts.unplaceable("b", true, left), Next::Retry(_)));
    assert!(matches!(attempts.unplaceable("a", true, left), Next::Retry(_)));
    // A provider failure changes who is asked: counting starts over.
    assert!(matches!(attempts.unplaceable("c", true, left), Next::Retry(_)));
    assert!(matches!(attempts.unplaceable("c", true, left), Next::Retry(_)));
    assert!(matches!(attempts.provider_failed("commit failed", left), Next::Retry(_)));
    assert!(matches!(attempts.unplaceable("c", true, left), Next::Retry(_)));
}

#[test]
fn the_deadline_names_the_last_reason() {
    let mut attempts = Attempts::default();
    assert_eq!(
        attempts.past_deadline(10, 10, 0).as_deref(),
        Some("deadline passed after 0 attempts: no attempt finished")
    );
    let _ = attempts.unplaceable("insufficient_ram", false, Duration::from_secs(1));
    assert_eq!(
        attempts.past_deadline(11, 10, 4).as_deref(),
        Some("deadline passed after 4 attempts: insufficient_ram")
    );
    assert_eq!(attempts.past_deadline(9, 10, 4), None);
}
