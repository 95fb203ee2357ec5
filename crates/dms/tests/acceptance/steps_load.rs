//! Steps for load on the local API: a connection flood beside `/health` polls, and
//! the daemon's memory before and after.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cucumber::{then, when};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::daemon::patience;
use super::world::DmsWorld;

/// The daemon's resident memory (`VmRSS`), in KiB.
fn rss_kib(world: &DmsWorld) -> u64 {
    let pid = world.daemons.first().expect("a daemon runs").pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// This process holds thousands of sockets: raises its soft descriptor limit to the
/// hard one and returns how many it may hold beside what it already uses.
fn raise_fd_limit() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(1 << 20).min(1 << 20);
    let raised = rustix::process::Rlimit { current: Some(hard), ..limit };
    setrlimit(Resource::Nofile, raised).expect("raise the soft open-file limit");
    usize::try_from(hard).unwrap_or(usize::MAX).saturating_sub(1024)
}

/// Most client sockets held at once: four times the daemon's cap, so that the daemon
/// (not this process) decides which connections close.
const CLIENT_WINDOW: usize = 4 * dms_api::conn::MAX_CONNECTIONS;

/// One `GET /health`: its latency, or why it failed (5 s at most).
async fn health(addr: SocketAddr) -> Result<f64, String> {
    let started = Instant::now();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(answer)) if answer.starts_with(b"HTTP/1.1 200") => {
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        }
        Ok(Ok(answer)) => Err(format!("answered {:?}", String::from_utf8_lossy(&answer))),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

#[when("I note the daemon's memory")]
async fn note_memory(world: &mut DmsWorld) {
    // Let start-up work (benchmarks, first gossip) settle first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.rss_before_kib = Some(rss_kib(world));
}

#[when(
    expr = "{int} connections are attempted on the API, each sending half a request, while \\/health is polled"
)]
async fn flood(world: &mut DmsWorld, count: usize) {
    let window = CLIENT_WINDOW.min(raise_fd_limit());
    assert!(window > dms_api::conn::MAX_CONNECTIONS, "too few descriptors for this: {window}");
    let addr = world.daemons.first().expect("a daemon runs").ready().api;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polling = tokio::spawn({
        let done = done.clone();
        async move {
            let mut polls = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                polls.push(health(addr).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            polls
        }
    });
    let started = Instant::now();
    let (mut open, mut refused) = (std::collections::VecDeque::with_capacity(window), 0usize);
    for _ in 0..count {
        if open.len() >= window {
            open.pop_front();
        }
        match TcpStream::connect(addr).await {
            Ok(mut stream) => {
                let _ = stream.write_all(b"GET /api/v1/info HTTP/1.1\r\nHost: flood").await;
                open.push_back(stream);
            }
            Err(_) => refused += 1,
        }
    }
    let took = started.elapsed();
    // One more poll once every connection was attempted.
    let after = health(addr).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut polls = polling.await.expect("the poller");
    polls.push(after);
    eprintln!(
        "flood: {count} connection attempts in {:.1} s ({refused} refused by this machine), \
         {} /health polls beside them",
        took.as_secs_f64(),
        polls.len()
    );
    drop(open);
    world.health_polls = polls;
}

#[then("/health answered every poll during the flood")]
async fn health_answered(world: &mut DmsWorld) {
    let failed: Vec<&String> = world.health_polls.iter().filter_map(|p| p.as_ref().err()).collect();
    assert!(failed.is_empty(), "/health failed {} times: {failed:?}", failed.len());
    let mut ms: Vec<f64> =
        world.health_polls.iter().filter_map(|p| p.as_ref().ok().copied()).collect();
    assert!(ms.len() >= 2, "/health was polled during the flood");
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "/health beside the flood: {} polls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Waits as long as any wait may ([`patience`]) for the memory to come back.
#[then(expr = "the daemon's memory comes back within {int} % of what was noted")]
async fn memory_returns(world: &mut DmsWorld, percent: u64) {
    let before = world.rss_before_kib.expect("memory was noted");
    let bound = before + before * percent / 100;
    let started = Instant::now();
    let mut now = rss_kib(world);
    let mut peak = now;
    while now > bound && started.elapsed() < patience() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = rss_kib(world);
        peak = peak.max(now);
    }
    eprintln!(
        "daemon RSS: {before} KiB before the flood, {now} KiB {:.1} s after it ({:+.1} %)",
        started.elapsed().as_secs_f64(),
        (now as f64 / before as f64 - 1.0) * 100.0
    );
    assert!(now <= bound, "RSS {now} KiB stayed above {bound} KiB ({percent} % over {before} KiB)");
}
