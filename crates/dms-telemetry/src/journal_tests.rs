//! Journal tests: field queries, newest-first pages, cursors, retention, the writer's
//! drain at stop.

use std::sync::Arc;
use std::time::Duration;

use dms_store::Store;
use dms_types::event::{Event, kind};

use super::*;

fn event(n: u64, kind: &str, deployment: Option<&str>) -> Shared {
    let at_ms = 1_700_000_000_000 + n * 1000;
    Arc::new(Event {
        id: format!("{at_ms:013}-{n:08}"),
        at_ms,
        kind: kind.into(),
        message: format!("event {n}"),
        deployment: deployment.map(String::from),
        ..Event::default()
    })
}

fn commit(retention: Retention, sweep: bool) -> Commit {
    Commit { retention, sweep, durable: true }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("db")).expect("store");
    (dir, store)
}

fn messages(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.message.as_str()).collect()
}

#[test]
fn finds_by_field_newest_last_and_after_a_cursor() {
    let (_dir, store) = open();
    let events: Vec<_> = (0..6)
        .map(|n| {
            let (k, d) =
                if n % 2 == 0 { (kind::DEPLOYMENT, Some("d1")) } else { (kind::PEER, None) };
            event(n, k, d)
        })
        .collect();
    write(&store, &events, commit(Retention::default(), false)).expect("write");

    let all = query(&store, &EventQuery::default()).expect("query");
    assert_eq!(messages(&all), ["event 0", "event 1", "event 2", "event 3", "event 4", "event 5"]);

    let of_d1 = EventQuery { deployment: Some("d1".into()), ..EventQuery::default() };
    assert_eq!(messages(&query(&store, &of_d1).expect("q")), ["event 0", "event 2", "event 4"]);

    let peers = EventQuery { kind: Some(kind::PEER.into()), limit: 2, ..EventQuery::default() };
    assert_eq!(messages(&query(&store, &peers).expect("q")), ["event 3", "event 5"]);

    let since = EventQuery { since_ms: Some(events[4].at_ms), ..EventQuery::default() };
    assert_eq!(messages(&query(&store, &since).expect("q")), ["event 4", "event 5"]);

    let after = EventQuery { after: Some(events[1].id.clone()), limit: 3, ..EventQuery::default() };
    assert_eq!(messages(&query(&store, &after).expect("q")), ["event 2", "event 3", "event 4"]);
    let peers_since = EventQuery {
        kind: Some(kind::PEER.into()),
        since_ms: Some(events[2].at_ms),
        ..EventQuery::default()
    };
    assert_eq!(messages(&query(&store, &peers_since).expect("q")), ["event 3", "event 5"]);
    let peers_after = EventQuery {
        kind: Some(kind::PEER.into()),
        after: Some(events[0].id.clone()),
        ..EventQuery::default()
    };
    assert_eq!(
        messages(&query(&store, &peers_after).expect("q")),
        ["event 1", "event 3", "event 5"]
    );

    let caught_up = EventQuery { after: Some(events[5].id.clone()), ..EventQuery::default() };
    assert!(query(&store, &caught_up).expect("q").is_empty());
}

#[test]
fn keeps_at_most_max_events_dropping_the_oldest() {
    let (_dir, store) = open();
    let retention = Retention { max_events: 3, max_age: Duration::from_secs(3600 * 24 * 365 * 50) };
    for n in 0..5 {
        write(&store, &[event(n, kind::NODE, None)], commit(retention, false)).expect("write");
    }
    let kept = query(&store, &EventQuery::default()).expect("query");
    assert_eq!(messages(&kept), ["event 2", "event 3", "event 4"]);
}

#[test]
fn a_sweep_removes_events_older_than_max_age() {
    let (_dir, store) = open();
    // Events from 2023 are older than a day.
    let retention = Retention { max_events: 100, max_age: Duration::from_secs(24 * 3600) };
    write(
        &store,
        &[event(0, kind::NODE, None), event(1, kind::NODE, None)],
        commit(retention, false),
    )
    .expect("write");
    assert_eq!(query(&store, &EventQuery::default()).expect("q").len(), 2);
    write(&store, &[], commit(retention, true)).expect("sweep");
    assert!(query(&store, &EventQuery::default()).expect("q").is_empty());
    // The count followed: new events are not removed early.
    let tight = Retention { max_events: 2, ..retention };
    let fresh: Vec<_> = (0..2)
        .map(|n| {
            let mut e = (*event(10 + n, kind::NODE, None)).clone();
            e.at_ms = now_ms();
            Arc::new(e)
        })
        .collect();
    write(&store, &fresh, commit(tight, false)).expect("write");
    assert_eq!(query(&store, &EventQuery::default()).expect("q").len(), 2);
}

#[tokio::test]
async fn the_writer_drains_its_queue_before_stopping() {
    let (_dir, store) = open();
    let (tx, rx) = mpsc::channel(16);
    let journal = Journal::start(store.clone(), rx, Retention::default()).expect("start");
    for n in 0..10 {
        tx.send(event(n, kind::BID, Some("d2"))).await.expect("send");
    }
    journal.stop().await;
    let of_d2 = EventQuery { deployment: Some("d2".into()), ..EventQuery::default() };
    assert_eq!(query(&store, &of_d2).expect("q").len(), 10);
}
