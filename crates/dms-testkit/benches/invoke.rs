//! Authorized invoke between two dms nodes on TCP loopback, beside a raw libp2p
//! request-response baseline measured in the same process.
//!
//! The invoke path is the whole actor path: sign, encode, send over `/dms/msg/2.0.0`,
//! decode, rate limit, expiry, signature, replay window, capability chain (a real
//! grant, verified once and then served from the verifier cache), mailbox, behavior,
//! signed reply back. The baseline is a request and its acknowledgement over the same
//! libp2p stack (TCP, Noise, Yamux, the same codec) with no actor layer.
//!
//! Round trips are sampled alternately (baseline, invoke, baseline, ...) so that both
//! see the same machine conditions; throughput is measured for each in turn.
//!
//! `cargo bench -p dms-testkit --bench invoke` (set `DMS_BENCH_SECS` to lengthen the
//! throughput runs; default 3 s each).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dms_crypto::{KeyPair, KeyType};
use dms_network::{Client, Config, Multiaddr, PeerId};
use dms_testkit::{Net, Options};

const PAYLOAD: usize = 64;
const SEQUENTIAL: usize = 3_000;
const CONCURRENCY: usize = 128;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

struct Figures {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

/// Round-trip samples of two calls taken alternately, so that both see the same
/// machine conditions (this machine's load drifts by tens of percent over seconds).
async fn latencies<A, AF, B, BF>(a: &A, b: &B) -> (Vec<Duration>, Vec<Duration>)
where
    A: Fn() -> AF,
    AF: std::future::Future<Output = bool>,
    B: Fn() -> BF,
    BF: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        assert!(a().await && b().await, "warm-up call failed");
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        assert!(a().await, "call failed");
        first.push(started.elapsed());
        let started = Instant::now();
        assert!(b().await, "call failed");
        second.push(started.elapsed());
    }
    first.sort();
    second.sort();
    (first, second)
}

/// Calls completed per second by `CONCURRENCY` callers for `secs`.
async fn throughput<F, Fut>(call: F, secs: u64) -> f64
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (call, done) = (call.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if call().await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn figures(samples: &[Duration], per_sec: f64) -> Figures {
    Figures { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), per_sec }
}

/// Two bare hosts: requests acknowledged by the event loop, nothing above it. The
/// receiving host's client is returned too: a host stops when its last client drops.
async fn raw_pair() -> (Client, PeerId, Client) {
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let key = KeyPair::generate(KeyType::Ed25519);
        let config = Config {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")],
            ..Config::default()
        };
        let (client, event_loop, mut inbound) = dms_network::build(&key, config).expect("host");
        tokio::spawn(event_loop.run(std::future::pending()));
        tokio::spawn(async move { while inbound.recv().await.is_some() {} });
        hosts.push(client);
    }
    let addr: Multiaddr = loop {
        let info = hosts[1].self_info().await.expect("self");
        if let Some(addr) = info.listen.first() {
            break addr.parse().expect("multiaddr");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    hosts[0].dial(addr).await.expect("connected");
    (hosts[0].clone(), hosts[1].peer_id(), hosts[1].clone())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let secs = std::env::var("DMS_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let (raw, peer, _receiver) = raw_pair().await;
        let raw_call = move || {
            let raw = raw.clone();
            async move {
                let sent = raw.send(peer, vec![7; PAYLOAD]).await;
                if let Err(error) = &sent {
                    eprintln!("raw send: {error}");
                }
                sent.is_ok()
            }
        };

        let mut options = Options { tcp: true, ..Options::default() };
        let unlimited = dms_actor::limiter::Rate { per_second: 1_000_000, burst: 1_000_000 };
        options.runtime.rates.default = unlimited;
        let net = Net::start(2, options).await;
        let (a, b) = (net.node(0), net.node(1));
        b.actor()
            .behavior("/bench/echo", |message| async move { Ok(message.envelope.payload) })
            .expect("behavior");
        let spec = dms_ucan::Spec {
            commands: vec![dms_ucan::Command::parse("/bench").expect("path")],
            ..Default::default()
        };
        let grant =
            b.actor().context().grant(b.actor().signing_key(), a.did(), &spec).expect("grant");
        let verifier = dms_ucan::Verifier::default();
        a.actor()
            .update_context(|c| c.add_provide(grant, &verifier, dms_ucan::now()))
            .expect("provide anchor");
        let (actor, to) = (a.actor().clone(), b.handle().clone());
        let invoke_call = move || {
            let (actor, to) = (actor.clone(), to.clone());
            async move {
                let reply = actor
                    .invoke(&to, "/bench/echo", vec![7; PAYLOAD], Duration::from_secs(10))
                    .await;
                if let Err(error) = &reply {
                    eprintln!("invoke: {error}");
                }
                reply.is_ok()
            }
        };
        let (raw_samples, invoke_samples) = latencies(&raw_call, &invoke_call).await;
        let baseline = figures(&raw_samples, throughput(raw_call, secs).await);
        let invoke = figures(&invoke_samples, throughput(invoke_call, secs).await);
        // One-way authorized messages: the same checks on every message, no reply;
        // counted where the behavior runs.
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        b.actor()
            .behavior("/bench/sink", move |_| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    Ok(Vec::new())
                }
            })
            .expect("behavior");
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let senders: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (actor, to) = (a.actor().clone(), b.handle().clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let ttl = Duration::from_secs(10);
                        if let Err(error) =
                            actor.send(&to, "/bench/sink", vec![7; PAYLOAD], ttl).await
                        {
                            eprintln!("send: {error}");
                        }
                    }
                })
            })
            .collect();
        for sender in senders {
            let _ = sender.await;
        }
        let one_way = received.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        net.shutdown().await;

        println!(
            "authorized invoke vs raw libp2p request-response, TCP loopback, {PAYLOAD}-byte payload"
        );
        println!("{:<32} {:>12} {:>12} {:>14}", "", "p50", "p99", "msgs/s");
        for (name, f) in
            [("raw request-response (baseline)", &baseline), ("authorized invoke", &invoke)]
        {
            println!("{name:<32} {:>12} {:>12} {:>14.0}", ms(f.p50), ms(f.p99), f.per_sec);
        }
        println!("{:<32} {:>12} {:>12} {:>14.0}", "authorized one-way messages", "-", "-", one_way);
        println!(
            "authorized messages/s: {:.0} in invokes (request + reply), {one_way:.0} one-way",
            invoke.per_sec * 2.0
        );
        println!(
            "ratio invoke/baseline: p50 {:.2}x, p99 {:.2}x, throughput {:.2}x",
            invoke.p50.as_secs_f64() / baseline.p50.as_secs_f64(),
            invoke.p99.as_secs_f64() / baseline.p99.as_secs_f64(),
            invoke.per_sec / baseline.per_sec,
        );
    });
}
