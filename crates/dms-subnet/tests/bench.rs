//! End-to-end benchmark: TCP between two allocations on different providers over the
//! subnet (TUN → QUIC datagrams on loopback → TUN), beside raw TCP between the same two
//! namespaces over a veth pair, in the same run. Root only; run with
//! `cargo test --release -p dms-subnet --test bench -- --ignored --nocapture`.
//! Prints throughput, round-trip latency and their ratios (the table in the README).

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Instant;

use common::{Namespace, provider};
use dms_subnet::{Route, tun};

const BYTES: usize = 256 << 20;
const ROUND_TRIPS: usize = 5_000;

/// Throughput (MiB/s) and median round trip (µs) of TCP from namespace `a` to `server`
/// in namespace `b`.
async fn measure(a: &Namespace, b: &Namespace, server: Ipv4Addr, port: u16) -> (f64, f64) {
    let listener = tun::in_namespace(b.pid(), move || TcpListener::bind((server, port)))
        .await
        .expect("thread")
        .expect("bind");
    let serving = std::thread::spawn(move || {
        // First connection: drain; second: echo one byte at a time.
        let (mut bulk, _) = listener.accept().expect("accept bulk");
        let mut buffer = vec![0u8; 1 << 16];
        while bulk.read(&mut buffer).is_ok_and(|n| n > 0) {}
        // Closing tells the sender that everything arrived.
        drop(bulk);
        let (mut echo, _) = listener.accept().expect("accept echo");
        echo.set_nodelay(true).expect("nodelay");
        let mut byte = [0u8; 1];
        while echo.read_exact(&mut byte).is_ok() {
            echo.write_all(&byte).expect("echo");
        }
    });
    let target = SocketAddr::from((server, port));
    let results = tun::in_namespace(a.pid(), move || {
        let mut bulk = TcpStream::connect(target).expect("connect bulk");
        let chunk = vec![7u8; 1 << 16];
        let started = Instant::now();
        for _ in 0..BYTES / chunk.len() {
            bulk.write_all(&chunk).expect("send");
        }
        bulk.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut rest = [0u8; 1];
        let _ = bulk.read(&mut rest);
        let mib_s = (BYTES as f64 / (1 << 20) as f64) / started.elapsed().as_secs_f64();

        let mut echo = TcpStream::connect(target).expect("connect echo");
        echo.set_nodelay(true).expect("nodelay");
        let mut times = Vec::with_capacity(ROUND_TRIPS);
        let mut byte = [1u8; 1];
        for _ in 0..ROUND_TRIPS {
            let sent = Instant::now();
            echo.write_all(&byte).expect("ping");
            echo.read_exact(&mut byte).expect("pong");
            times.push(sent.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        (mib_s, times[times.len() / 2])
    })
    .await
    .expect("thread");
    serving.join().expect("server");
    results
}

/// `ip` inside the network namespace of process `pid`.
fn in_ns(pid: u32, command: &str) {
    let script = format!("nsenter -t {pid} -n ip {command}");
    let status = Command::new("sh").args(["-c", &script]).status().expect("nsenter");
    assert!(status.success(), "{script}");
}

fn ip(command: &str) {
    let status = Command::new("sh").args(["-c", &format!("ip {command}")]).status().expect("ip");
    assert!(status.success(), "ip {command}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark (root): run with --ignored --nocapture in release"]
async fn subnet_beside_raw_tcp() {
    let (p1, id1, at1) = provider();
    let (p2, id2, at2) = provider();
    let (a, b) = (Namespace::new(), Namespace::new());
    let (ip_a, ip_b) = (Ipv4Addr::new(10, 42, 0, 2), Ipv4Addr::new(10, 42, 0, 3));
    let routes = [
        Route { address: ip_a, allocation: "a".into(), peer: id1.clone(), endpoints: vec![at1] },
        Route { address: ip_b, allocation: "b".into(), peer: id2.clone(), endpoints: vec![at2] },
    ];
    p1.set_routes("bench", &routes);
    p2.set_routes("bench", &routes);
    p1.attach("bench", "a", ip_a, 16, a.pid()).await.expect("a joins");
    p2.attach("bench", "b", ip_b, 16, b.pid()).await.expect("b joins");

    // The raw path: a veth pair straight between the same two namespaces.
    let link = format!("dmsb{}", std::process::id() % 10_000);
    ip(&format!(
        "link add {link}a netns {} type veth peer name {link}b netns {}",
        a.pid(),
        b.pid()
    ));
    for (ns, dev, addr) in [(&a, "a", "192.168.77.1/24"), (&b, "b", "192.168.77.2/24")] {
        let pid = ns.pid();
        in_ns(pid, &format!("addr add {addr} dev {link}{dev}"));
        in_ns(pid, &format!("link set {link}{dev} up"));
    }
    let raw = measure(&a, &b, Ipv4Addr::new(192, 168, 77, 2), 7101).await;
    let subnet = measure(&a, &b, ip_b, 7102).await;

    println!("| path | throughput | median round trip |");
    println!("|---|---|---|");
    println!("| raw TCP over veth | {:.0} MiB/s | {:.0} µs |", raw.0, raw.1);
    println!("| subnet (TUN + QUIC datagrams) | {:.0} MiB/s | {:.0} µs |", subnet.0, subnet.1);
    println!("| ratio | {:.2}× of raw | +{:.0} µs |", subnet.0 / raw.0, subnet.1 - raw.1);
    let counters = p2.counters();
    println!(
        "provider b: delivered {}, sent {}, dropped {}",
        counters.delivered.load(std::sync::atomic::Ordering::Relaxed),
        counters.sent.load(std::sync::atomic::Ordering::Relaxed),
        counters.dropped.load(std::sync::atomic::Ordering::Relaxed)
    );
    p1.shutdown();
    p2.shutdown();
}
