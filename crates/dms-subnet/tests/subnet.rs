//! Two providers on loopback, allocations in network namespaces of their own (made with
//! `unshare -n`): TCP between allocations of one deployment crosses the providers'
//! QUIC link or stays on one provider; another deployment's allocation reaches neither.
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and /dev/net/tun, as CI has.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

mod common;

use common::{Namespace, provider};
use dms_subnet::{Route, tun};

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 42, 0, n)
}

fn route(n: u8, allocation: &str, peer: &str, at: SocketAddr) -> Route {
    Route { address: ip(n), allocation: allocation.into(), peer: peer.into(), endpoints: vec![at] }
}

/// A listener inside `ns` on `address:port` that answers every connection with `reply`.
async fn serve(ns: &Namespace, address: Ipv4Addr, reply: &'static [u8]) {
    let listener = tun::in_namespace(ns.pid(), move || TcpListener::bind((address, 7000)))
        .await
        .expect("thread")
        .expect("bind inside the namespace");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(reply);
        }
    });
}

/// What a connection from inside `ns` to `address` reads, or why it failed.
async fn fetch(ns: &Namespace, address: Ipv4Addr) -> Result<String, String> {
    tun::in_namespace(ns.pid(), move || {
        let target = SocketAddr::from((address, 7000));
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream.read_to_string(&mut text).map_err(|e| e.to_string())?;
        Ok(text)
    })
    .await
    .expect("thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_of_a_deployment_reach_each_other_and_no_one_else() {
    let (p1, id1, at1) = provider();
    let (p2, id2, at2) = provider();
    let (db, web, cache, other) =
        (Namespace::new(), Namespace::new(), Namespace::new(), Namespace::new());

    // Deployment d-1: db and cache on p1, web on p2. Deployment d-2: one allocation on p2
    // whose address is web's address in d-1 (ranges of deployments may overlap).
    let d1 = [route(2, "db", &id1, at1), route(3, "web", &id2, at2), route(4, "cache", &id1, at1)];
    for subnet in [&p1, &p2] {
        subnet.set_routes("d-1", &d1);
    }
    p2.set_routes("d-2", &[route(3, "other", &id2, at2)]);
    p1.attach("d-1", "db", ip(2), 16, db.pid()).await.expect("db joins");
    p1.attach("d-1", "cache", ip(4), 16, cache.pid()).await.expect("cache joins");
    p2.attach("d-1", "web", ip(3), 16, web.pid()).await.expect("web joins");
    p2.attach("d-2", "other", ip(3), 16, other.pid()).await.expect("other joins");
    serve(&db, ip(2), b"rows from db").await;
    serve(&other, ip(3), b"other's own").await;

    // Across providers (the first SYN may wait for the dial), and on one provider.
    assert_eq!(fetch(&web, ip(2)).await.as_deref(), Ok("rows from db"));
    assert_eq!(fetch(&cache, ip(2)).await.as_deref(), Ok("rows from db"));
    assert!(p2.counters().sent.load(std::sync::atomic::Ordering::Relaxed) > 0);

    // d-2 reaches only itself: d-1's db address has no route in d-2.
    assert!(fetch(&other, ip(2)).await.is_err(), "another deployment must not reach db");
    assert_eq!(fetch(&other, ip(3)).await.as_deref(), Ok("other's own"));

    // Detached, web's interface is gone from its namespace, and db is unreachable to it.
    p2.detach("d-1", "web");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let links = Command::new("nsenter")
        .args(["-t", &web.pid().to_string(), "-n", "ip", "-o", "link"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(tun::DEVICE), "{links}");
    p1.shutdown();
    p2.shutdown();
}
