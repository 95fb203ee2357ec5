//! A Docker execution on a deployment network: its sandbox holds the namespace, which has
//! its interface (a real TUN, made by dms-subnet) before the workload runs; names are in
//! its `/etc/hosts`; ports are published by the sandbox; removal and re-attachment take
//! the sandbox along. Needs Docker and root (see `.ci/run`).

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cleanup, executor, scope, sh};
use dms_executor::{Executor as _, LogOptions, Network, State};
use dms_subnet::tun;

const PATIENCE: Duration = Duration::from_secs(60);

/// A network whose attach makes `dms0` (10.9.0.2/24) in the namespace and keeps it.
fn network(devices: Arc<Mutex<Vec<tun::Device>>>) -> Network {
    let attach: dms_executor::Attach = Arc::new(move |pid| {
        let devices = devices.clone();
        Box::pin(async move {
            let interface =
                tun::Interface { address: Ipv4Addr::new(10, 9, 0, 2), prefix: 24, mtu: 1400 };
            let device = tun::create_in(pid, interface).await.map_err(|e| e.to_string())?;
            devices.lock().expect("lock").push(device);
            Ok(())
        })
    });
    let db: IpAddr = Ipv4Addr::new(10, 9, 0, 3).into();
    Network { hosts: vec![("db.internal".into(), db), ("db".into(), db)], attach }
}

#[tokio::test]
async fn the_workload_starts_with_its_interface_names_and_ports_and_leaves_nothing() {
    assert!(tun::probe().is_ok(), "needs root and /dev/net/tun: {:?}", tun::probe());
    let scope = scope("sandbox");
    let _cleanup = Cleanup(scope.clone());
    let executor = executor(&scope).await;
    let devices = Arc::new(Mutex::new(Vec::new()));
    let mut spec = sh(
        "web",
        "ip -o -4 addr show dms0 | awk '{print $4}'; grep -c db.internal /etc/hosts; \
         echo served > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
    );
    spec.network = Some(network(devices.clone()));
    spec.ports.push(common::loopback_port(8080));
    let id = executor.start(spec).await.expect("start");
    let mut logs = executor.logs(&id, LogOptions::follow()).await.expect("logs");
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let line = tokio::time::timeout(PATIENCE, logs.next()).await.expect("line");
        lines.push(line.expect("open").expect("ok").text);
    }
    assert_eq!(
        lines,
        ["10.9.0.2/24", "1"],
        "dms0 and the names exist before the first instruction"
    );

    // The sandbox publishes the port; inspect reports it and the namespace's process.
    let info = executor.inspect(&id).await.expect("inspect");
    let port = info.published.first().expect("published").host_port;
    assert!(info.network_pid.is_some());
    let response = common::get_until(port, "served", PATIENCE).await;
    assert!(response.contains("served"), "{response:?}");

    // A restarted executor re-attaches the workload with its sandbox; an orphan sandbox
    // (its workload unknown) would be removed.
    drop(executor);
    let executor = common::executor(&scope).await;
    let recovery = executor.reattach(&HashSet::from(["web".to_owned()])).await.expect("reattach");
    assert_eq!(recovery.reattached.len(), 1);
    assert_eq!(recovery.reattached[0].state, State::Running);
    assert!(recovery.reattached[0].network_pid.is_some(), "the sandbox is found again");

    executor.stop(&id, Duration::from_secs(1)).await.expect("stop");
    executor.remove(&id).await.expect("remove");
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=dms.executor={scope}")])
        .output()
        .expect("docker ps");
    assert!(left.stdout.is_empty(), "workload and sandbox are gone");
}
