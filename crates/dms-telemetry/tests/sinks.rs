//! The Elasticsearch sink against a receiver speaking the `_bulk` API: batches with the
//! index template first, retries that index nothing twice, and a dead server that never
//! blocks whoever publishes.

use std::sync::Arc;
use std::time::Duration;

use dms_telemetry::elastic::{BATCH, Sink, Target};
use dms_telemetry::hub::{QUEUE, Shared};
use dms_telemetry::testing::Receiver;
use dms_types::event::{Event, kind};
use tokio::sync::mpsc;

fn event(n: usize) -> Shared {
    Arc::new(Event {
        id: format!("{:013}-{n:08}", 1_700_000_000_000u64 + n as u64),
        timestamp: "2026-11-30T12:00:00.000Z".into(),
        node: "did:key:z6MkTest".into(),
        kind: kind::DEPLOYMENT.into(),
        level: "info".into(),
        message: format!("event {n}"),
        deployment: Some(format!("d-{}", n % 3)),
        ..Event::default()
    })
}

/// Waits (at most 20 s) until the receiver holds `n` documents.
async fn documents(receiver: &Receiver, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let held = receiver.received().documents.len();
        if held >= n || tokio::time::Instant::now() > deadline {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn target(url: &str) -> Target {
    Target { url: url.to_string(), index: "dms-events".into() }
}

#[tokio::test]
async fn events_reach_the_bulk_api_in_batches_after_the_index_template() {
    let receiver = Receiver::start().await.expect("receiver");
    let (tx, rx) = mpsc::channel(QUEUE);
    let sink = Sink::start(target(&receiver.url), rx);
    let n = BATCH * 2 + 7;
    for i in 0..n {
        tx.send(event(i)).await.expect("queued");
    }
    assert_eq!(documents(&receiver, n).await, n);
    sink.stop().await;
    let received = receiver.received();
    let template = &received.templates["dms-events"];
    assert_eq!(template["index_patterns"], serde_json::json!(["dms-events*"]));
    assert!(received.bulk_requests >= 3, "{} requests for {n} events", received.bulk_requests);
    for (i, doc) in received.documents.iter().enumerate() {
        assert_eq!(doc["message"], format!("event {i}"), "in order");
        assert_eq!(doc["deployment"], format!("d-{}", i % 3));
        assert_eq!(doc["kind"], "deployment");
    }
}

#[tokio::test]
async fn an_overloaded_server_gets_the_batch_again_and_indexes_it_once() {
    let receiver = Receiver::start().await.expect("receiver");
    receiver.fail_bulk(2);
    let (tx, rx) = mpsc::channel(QUEUE);
    let sink = Sink::start(target(&receiver.url), rx);
    for i in 0..10 {
        tx.send(event(i)).await.expect("queued");
    }
    assert_eq!(documents(&receiver, 10).await, 10);
    // The same ids sent again (a lost answer) are conflicts, not copies.
    for i in 0..10 {
        tx.send(event(i)).await.expect("queued");
    }
    tx.send(event(10)).await.expect("queued");
    assert_eq!(documents(&receiver, 11).await, 11);
    sink.stop().await;
    let received = receiver.received();
    assert_eq!(received.documents.len(), 11);
    assert!(received.bulk_requests >= 4, "{} requests", received.bulk_requests);
}

#[tokio::test]
async fn a_dead_server_never_blocks_publishing_and_holds_a_bounded_queue() {
    // A port nobody listens on.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let (tx, rx) = mpsc::channel(QUEUE);
    let sink = Sink::start(target(&url), rx);
    let offered = QUEUE * 3;
    let mut refused = 0;
    for i in 0..offered {
        if tx.try_send(event(i)).is_err() {
            refused += 1;
        }
    }
    // The queue and the batch in hand hold the rest; nothing waited.
    assert!(refused >= offered - QUEUE - BATCH, "{refused} of {offered} refused");
    let stopping = tokio::time::Instant::now();
    sink.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(10), "stopped in {:?}", stopping.elapsed());
}

#[tokio::test]
async fn a_server_that_never_answers_is_left_within_the_stop_grace() {
    // Connections are taken (the kernel's backlog) and never answered.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel(QUEUE);
    let sink = Sink::start(target(&url), rx);
    for i in 0..10 {
        tx.send(event(i)).await.expect("queued");
    }
    // The first request is waiting for its answer when the stop comes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = tokio::time::Instant::now();
    sink.stop().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "stopped in {took:?} (grace 3 s)");
    drop(silent);
}
