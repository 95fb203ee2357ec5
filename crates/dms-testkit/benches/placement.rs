//! Placement at scale: 100 in-process nodes (memory transport, one fake engine), every
//! one a provider. Node 0 orchestrates one-allocation services:
//! - one at a time: submit → running latency (p50, p99) with 100 bidders;
//! - many at once: how many are placed per second.
//!
//! `cargo bench -p dms-testkit --bench placement` (`DMS_BENCH_NODES`, default 100;
//! `DMS_BENCH_SHORTLIST`, default `deployment.shortlist`'s (1), 0 = broadcast every bid
//! request as before;
//! `DMS_BENCH_ADVERTISE_SECS`, default 10, 0 = no capacity adverts;
//! `DMS_BENCH_CONCURRENT`, default 50, how many are submitted at once;
//! `DMS_BENCH_BURSTS`, default 5, how many times (the rate of each and their median:
//! one burst lasts a fifth of a second, which one scheduling hiccup moves by a third);
//! `DMS_BENCH_TOPOLOGY`, `star` (default: every node connected to node 0 only) or `mesh`:
//! every node connected to every other, each node's upkeep of its connections charged
//! to this process's cores).
//!
//! Beside the times it prints messages and bytes per placement (actor messages sent and
//! received, direct bytes written; whole process: every node's), the process's resident
//! memory per node, the idle network's cost over one advert interval (messages, CPU), and
//! the runtime's longest stall (how late a 10 ms timer woke). It checks every provider's
//! accounts at the peak of the burst (nothing over-committed) and after the shutdowns
//! (nothing left reserved or allocated), and fails otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dms_executor::fake;
use dms_orchestrator::{DeploymentState, NewDeployment, Registry};
use dms_testkit::{Net, Options, Topology};
use dms_types::resources::Resources;
use futures::StreamExt;

/// The daemon's allocator (crates/dms/src/main.rs): the simulated nodes allocate as
/// real ones do (the C library's allocator took about a tenth of the CPU here).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SEQUENTIAL: usize = 30;

fn request() -> NewDeployment {
    let text = "version: V1\nallocations:\n  s:\n    type: service\n    executor: wasm\n    resources: {cpu: {cores: 0.1}, ram: 16MiB}\n    execution: {module: https://example.invalid/s.wasm}\nnodes:\n  n: {allocations: [s]}\n";
    let ensemble = dms_ensemble::load(text).expect("valid").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(60_000),
        credentials: None,
    }
}

/// The process's traffic counters (every node's): actor messages sent, actor
/// messages received and run, and bytes of direct messages written (framed;
/// broadcasts are not counted, and with a shortlist the measured placements make none).
#[derive(Clone, Copy, Default)]
struct Traffic {
    sent: f64,
    received: f64,
    bytes: f64,
}

impl Traffic {
    fn now() -> Traffic {
        let text = dms_telemetry::metrics::render();
        let total = |name: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Traffic {
            sent: total("dms_messages_sent_total"),
            received: total("dms_messages_received_total"),
            bytes: total("dms_network_sent_bytes_total"),
        }
    }

    /// `self` minus `before`, each counter scaled by `scale`.
    fn since(self, before: Traffic, scale: f64) -> Traffic {
        Traffic {
            sent: (self.sent - before.sent) * scale,
            received: (self.received - before.received) * scale,
            bytes: (self.bytes - before.bytes) * scale,
        }
    }

    /// `self` and `more` added up.
    fn plus(self, more: Traffic) -> Traffic {
        Traffic {
            sent: self.sent + more.sent,
            received: self.received + more.received,
            bytes: self.bytes + more.bytes,
        }
    }

    /// Per second over `secs` since `before`.
    fn rate(self, before: Traffic, secs: f64) -> Traffic {
        self.since(before, 1.0 / secs)
    }

    /// Per placement of `count` over `secs` since `before`, the `background` rate
    /// taken out.
    fn per(self, before: Traffic, background: Traffic, secs: f64, count: usize) -> String {
        let each = |now: f64, then: f64, idle: f64| (now - then - idle * secs) / count as f64;
        format!(
            "{:.0} messages sent, {:.0} received, {:.1} KiB on the wire",
            each(self.sent, before.sent, background.sent),
            each(self.received, before.received, background.received),
            each(self.bytes, before.bytes, background.bytes) / 1024.0,
        )
    }
}

/// CPU time this process has used (user and system), in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and
    // 13th of those, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 =
        rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<f64>().ok()).sum();
    ticks / 100.0
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn running(registry: &Registry, id: &str) {
    let mut after = 0;
    loop {
        let status = registry.status(id, after, Duration::from_secs(10)).await.expect("status");
        after = status.events.last().map_or(after, |e| e.seq);
        match status.state {
            DeploymentState::Running => return,
            state if state.is_terminal() => {
                panic!("deployment {id} ended {state:?}: {:?}", status.reason)
            }
            _ => {}
        }
    }
}

/// Wakes every 10 ms and reports each wake-up more than 200 ms late (seconds since
/// `start`, how late): the runtime's workers were all busy or blocked that long.
/// Returns the longest lateness seen, in ms, when asked.
fn watchdog(start: Instant) -> Arc<std::sync::atomic::AtomicU64> {
    let worst = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = worst.clone();
    tokio::spawn(async move {
        let tick = Duration::from_millis(10);
        loop {
            let t = Instant::now();
            tokio::time::sleep(tick).await;
            let late =
                u64::try_from(t.elapsed().saturating_sub(tick).as_millis()).unwrap_or(u64::MAX);
            seen.fetch_max(late, std::sync::atomic::Ordering::Relaxed);
            if late > 200 {
                eprintln!("stall: woke {late} ms late at {:.1} s", start.elapsed().as_secs_f64());
            }
        }
    });
    worst
}

/// Every node's resource accounts, checked: what is reserved and allocated fits in what
/// was onboarded, and (`empty`) nothing is held any more.
struct AccountsCheck {
    allocations: usize,
    problems: Vec<String>,
}

fn accounts_check(net: &Net, empty: bool) -> AccountsCheck {
    let mut check = AccountsCheck { allocations: 0, problems: Vec::new() };
    for (i, node) in net.nodes.iter().enumerate() {
        let accounts = node.accounts();
        check.allocations += accounts.allocations.len();
        let offered = accounts.onboarded.as_ref().map(|o| o.resources.clone()).unwrap_or_default();
        let held = accounts.allocated.checked_add(&accounts.committed);
        if !held.as_ref().is_some_and(|held| held.fits_in(&offered)) {
            check.problems.push(format!("node {i} over-committed: {held:?} of {offered:?}"));
        }
        if empty && !(accounts.reservations.is_empty() && accounts.allocations.is_empty()) {
            check.problems.push(format!(
                "node {i} still holds {} reservations, {} allocations",
                accounts.reservations.len(),
                accounts.allocations.len()
            ));
        }
    }
    check
}

/// Submits `concurrent` deployments at once and waits until every one runs.
async fn burst(orchestrator: &Arc<Registry>, concurrent: usize) -> Vec<String> {
    let mut submitting = tokio::task::JoinSet::new();
    for _ in 0..concurrent {
        let orchestrator = orchestrator.clone();
        submitting.spawn(async move {
            orchestrator.create(request(), dms_testkit::submitter()).await.expect("submitted")
        });
    }
    let ids: Vec<String> = submitting.join_all().await;
    for id in &ids {
        running(orchestrator, id).await;
    }
    ids
}

/// Waits (30 s at most) until no node holds a reservation or an allocation; returns
/// what is still wrong then.
async fn released(net: &Net) -> Vec<String> {
    let waited = Instant::now();
    loop {
        let check = accounts_check(net, true);
        if check.problems.is_empty() || waited.elapsed() > Duration::from_secs(30) {
            return check.problems;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

#[tokio::main]
async fn main() {
    // Metrics are counted once telemetry is installed (logs: errors only).
    let telemetry = dms_telemetry::init(&dms_telemetry::Settings {
        log_level: "error".into(),
        ..Default::default()
    })
    .expect("telemetry");
    let n: usize =
        std::env::var("DMS_BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let started = Instant::now();
    let worst_stall = watchdog(started);
    let shortlist: usize = std::env::var("DMS_BENCH_SHORTLIST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(dms_node::Config::default().deployment.shortlist);
    let concurrent: usize =
        std::env::var("DMS_BENCH_CONCURRENT").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let advertise: u64 =
        std::env::var("DMS_BENCH_ADVERTISE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut config = dms_node::Config::default();
    config.deployment.shortlist = shortlist;
    config.deployment.advertise_every = Duration::from_secs(advertise);
    // The bench measures placement, not the node's quotas.
    config.quotas.deployments_per_user = usize::MAX;
    config.quotas.deployments = usize::MAX;
    config.quotas.reservations_per_peer = usize::MAX;
    // A star by default: every provider connected to the orchestrating node, as a
    // placement sees the network. A mesh (`mesh`) adds every other node's upkeep of its
    // N−1 connections, which a real network spreads over N machines and this process pays
    // on its cores (0.4 of 2 cores idle at 100 nodes).
    let topology = match std::env::var("DMS_BENCH_TOPOLOGY").as_deref() {
        Ok("mesh") => Topology::Mesh,
        Ok("star") | Err(_) => Topology::Star,
        Ok(other) => panic!("DMS_BENCH_TOPOLOGY is star or mesh, not {other:?}"),
    };
    let net = Net::start(n, Options { topology, ..Options::default() }).await;
    eprintln!("{n} nodes connected ({topology:?}) after {:.1} s", started.elapsed().as_secs_f64());
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let offer = Resources {
        cpu_millicores: 64_000,
        ram_bytes: 64 << 30,
        disk_bytes: 100 << 30,
        gpus: Vec::new(),
    };
    // A few at a time: a node's start is mostly waiting (store flushes, first adverts).
    let registries: Vec<Arc<Registry>> = futures::stream::iter(&net.nodes)
        .map(|node| node.serve_deployments_with(engine.clone(), offer.clone(), &config))
        .buffered(16)
        .collect()
        .await;
    eprintln!("every node serves deployments after {:.1} s", started.elapsed().as_secs_f64());
    // Let gossip learn every node's subscription to the bid topic, and (with a
    // shortlist) the orchestrator hear every provider's advert.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let orchestrator = registries[0].clone();
    // Warm-up; the first bid round is a broadcast (no adverts yet), after which every
    // provider sends node 0 its advert.
    for _ in 0..3 {
        let id = orchestrator.create(request(), dms_testkit::submitter()).await.expect("submitted");
        running(&orchestrator, &id).await;
        orchestrator.shutdown(&id).await.expect("shutdown");
    }
    let directory = orchestrator.directory();
    let waited = Instant::now();
    while shortlist > 0
        && advertise > 0
        && directory.len(Instant::now()) < n
        && waited.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{n} nodes up ({topology:?}) in {:.1} s, {} adverts known, shortlist {shortlist}, {:.1} MiB resident ({:.2} MiB per node)",
        started.elapsed().as_secs_f64(),
        directory.len(Instant::now()),
        rss_mib(),
        rss_mib() / n as f64
    );

    // Background traffic (adverts, pings, gossip) over an idle while, to tell apart
    // what the placements themselves cost.
    // Over a whole advert interval and more (each repeat comes 0.9 to 1.1 intervals
    // after the last): every provider repeats its advert about once. Stalls are counted
    // from here on: start-up is not what the bench measures.
    worst_stall.store(0, std::sync::atomic::Ordering::Relaxed);
    let idle_start = Traffic::now();
    let idle_cpu = cpu_secs();
    let idle = Instant::now();
    tokio::time::sleep(config.deployment.advertise_every.mul_f64(1.2).max(Duration::from_secs(3)))
        .await;
    let idle_secs = idle.elapsed().as_secs_f64();
    let background = Traffic::now().rate(idle_start, idle_secs);
    println!(
        "background (no placements, {idle_secs:.0} s): {:.0} messages/s sent, {:.0} received, {:.1} KiB/s, {:.2} cores busy",
        background.sent,
        background.received,
        background.bytes / 1024.0,
        (cpu_secs() - idle_cpu) / idle_secs
    );
    let mut latencies = Vec::new();
    let before = Traffic::now();
    let phase = Instant::now();
    let mut slowest = (0.0, String::new());
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        let id = orchestrator.create(request(), dms_testkit::submitter()).await.expect("submitted");
        running(&orchestrator, &id).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        latencies.push(ms);
        orchestrator.shutdown(&id).await.expect("shutdown");
        if ms > slowest.0 {
            slowest = (ms, id);
        }
    }
    if std::env::var_os("DMS_BENCH_EXPLAIN").is_some() {
        let status = orchestrator.status(&slowest.1, 0, Duration::ZERO).await.expect("status");
        println!("the slowest ({:.1} ms), event by event:", slowest.0);
        for e in status.events {
            println!("  {} {}", e.at_ms, e.message);
        }
    }
    let after = Traffic::now();
    let phase_secs = phase.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "one at a time ({SEQUENTIAL} runs, {n} providers): submit → running p50 {:.1} ms, p99 {:.1} ms; per placement (with its shutdown, background taken out) {}",
        pct(&latencies, 50.0),
        pct(&latencies, 99.0),
        after.per(before, background, phase_secs, SEQUENTIAL),
    );

    let bursts: usize =
        std::env::var("DMS_BENCH_BURSTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let mut rates = Vec::new();
    // What the bursts themselves counted (not the shutdowns between them), and how long.
    let (mut counted, mut counted_secs) = (Traffic::default(), 0.0);
    let mut problems = Vec::new();
    let mut peak_allocations = usize::MAX;
    for _ in 0..bursts {
        let before = Traffic::now();
        let t = Instant::now();
        let ids = burst(&orchestrator, concurrent).await;
        let took = t.elapsed().as_secs_f64();
        counted = counted.plus(Traffic::now().since(before, 1.0));
        counted_secs += took;
        rates.push(concurrent as f64 / took);
        eprintln!("burst {}: {:.0} placements/s", rates.len(), concurrent as f64 / took);
        // At the peak, then once the shutdowns are through on every provider.
        let peak = accounts_check(&net, false);
        peak_allocations = peak_allocations.min(peak.allocations);
        problems.extend(peak.problems);
        for id in &ids {
            orchestrator.shutdown(id).await.expect("shutdown");
        }
        problems.extend(released(&net).await);
    }
    let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "{concurrent} at once, {bursts} bursts: {} placements/s, median {:.1}; per placement (background taken out) {}",
        list.join(", "),
        pct(&rates, 50.0),
        counted.per(Traffic::default(), background, counted_secs, concurrent * bursts),
    );
    println!(
        "longest runtime stall while measuring: {} ms (a 10 ms timer's lateness)",
        worst_stall.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "accounts: at each peak at least {peak_allocations} allocations on {n} providers, none over-committed, and after each burst's shutdowns every reservation and allocation released: {}",
        problems.is_empty()
    );
    assert!(problems.is_empty(), "accounts wrong under load: {problems:#?}");
    net.shutdown().await;
    telemetry.shutdown().await;
}
