//! Docker executor against the real engine. Needs `dockerd` running (see `.ci/run`); fails,
//! never skips, without it. Images are built locally (`common::ensure_image`), never pulled.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Cleanup, cgroup_dir, executor, read_first, scope, sh};
use dms_executor::{
    Error, Executor as _, ExitReason, LogOptions, Mount, OutputStream, PullPolicy, State, Workload,
};

/// Patience for events that should happen within seconds.
const PATIENCE: Duration = Duration::from_secs(60);

async fn init_pid(
    executor: &dms_executor::docker::Executor,
    id: &dms_executor::ExecutionId,
) -> i64 {
    let inspect = executor.client().inspect_container(&id.0, None).await.expect("inspect");
    inspect.state.and_then(|s| s.pid).filter(|p| *p > 0).expect("running container has a pid")
}

#[tokio::test]
async fn exits_with_its_code_and_keeps_stdout_and_stderr_apart() {
    let scope = scope("exit");
    let _cleanup = Cleanup(scope.clone());
    let executor = executor(&scope).await;
    let id = executor.start(sh("exit", "echo out; echo err >&2; exit 7")).await.expect("start");
    let status =
        tokio::time::timeout(PATIENCE, executor.wait(&id)).await.expect("exits").expect("wait");
    assert_eq!(status.code, 7);
    assert_eq!(status.reason, ExitReason::Exited);

    let lines = executor
        .logs(&id, LogOptions::default())
        .await
        .expect("logs")
        .collect()
        .await
        .expect("read");
    let of = |s: OutputStream| {
        lines.iter().filter(|l| l.stream == s).map(|l| l.text.clone()).collect::<Vec<_>>()
    };
    assert_eq!(of(OutputStream::Stdout), ["out"]);
    assert_eq!(of(OutputStream::Stderr), ["err"]);
    let only_err = LogOptions { stdout: false, ..LogOptions::default() };
    assert_eq!(
        executor.logs(&id, only_err).await.expect("logs").collect().await.expect("read").len(),
        1
    );

    executor.remove(&id).await.expect("remove");
    assert!(matches!(executor.inspect(&id).await, Err(Error::NotFound(_))));
    let gone = executor.client().inspect_container(&id.0, None).await;
    assert!(gone.is_err(), "the container is gone from the engine");
}

#[tokio::test]
async fn limits_are_set_in_the_container_cgroup() {
    let scope = scope("limits");
    let _cleanup = Cleanup(scope.clone());
    let executor = executor(&scope).await;
    let mut spec = sh("limits", "sleep 300");
    spec.resources.memory_bytes = Some(48 << 20);
    spec.resources.cpu_cores = Some(0.5);
    spec.resources.pids = Some(50);
    let id = executor.start(spec).await.expect("start");

    let host = executor
        .client()
        .inspect_container(&id.0, None)
        .await
        .expect("inspect")
        .host_config
        .expect("host");
    assert_eq!(host.cpu_quota, Some(50_000));
    assert_eq!(host.cpu_period, Some(100_000));
    assert_eq!(host.memory, Some(48 << 20));

    let pid = init_pid(&executor, &id).await;
    let (file, memory) =
        read_first(&cgroup_dir(pid, "memory"), &["memory.limit_in_bytes", "memory.max"]);
    assert_eq!(memory, (48u64 << 20).to_string(), "{file}");
    let (file, cpu) = read_first(&cgroup_dir(pid, "cpu"), &["cpu.cfs_quota_us", "cpu.max"]);
    assert!(cpu == "50000" || cpu == "50000 100000", "{file} = {cpu}");
    let (file, pids) = read_first(&cgroup_dir(pid, "pids"), &["pids.max"]);
    assert_eq!(pids, "50", "{file}");

    let stats = executor.stats(&id).await.expect("stats");
    assert_eq!(stats.memory_limit_bytes, Some(48 << 20));
    assert!(stats.memory_bytes > 0 && stats.pids >= Some(1), "{stats:?}");

    let out = executor
        .exec(&id, vec!["sh".into(), "-c".into(), "echo inside; exit 3".into()])
        .await
        .expect("exec");
    assert_eq!((out.exit_code, out.stdout.as_str()), (3, "inside\n"));

    let status = executor.stop(&id, Duration::from_secs(1)).await.expect("stop");
    assert!(matches!(status.reason, ExitReason::Stopped | ExitReason::Killed), "{status:?}");
    executor.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn exceeding_the_memory_limit_is_an_oom_kill() {
    let scope = scope("oom");
    let _cleanup = Cleanup(scope.clone());
    let executor = executor(&scope).await;
    // busybox tail buffers a newline-free /dev/zero in memory until the limit is hit.
    let mut spec = sh("oom", "tail /dev/zero");
    spec.resources.memory_bytes = Some(32 << 20);
    let id = executor.start(spec).await.expect("start");
    let status =
        tokio::time::timeout(PATIENCE, executor.wait(&id)).await.expect("killed").expect("wait");
    assert_eq!(status.reason, ExitReason::OomKilled, "{status:?}");
    assert_eq!(status.code, 137);
    executor.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn logs_follow_in_real_time() {
    let scope = scope("follow");
    let _cleanup = Cleanup(scope.clone());
    let executor = executor(&scope).await;
    let id =
        executor.start(sh("follow", "echo first; sleep 3; echo second >&2")).await.expect("start");
    let mut logs = executor.logs(&id, LogOptions::follow()).await.expect("logs");

    let first = tokio::time::timeout(PATIENCE, logs.next())
        .await
        .expect("a line")
        .expect("open")
        .expect("ok");
    assert_eq!(first.text, "first");
    assert_eq!(
        executor.inspect(&id).await.expect("inspect").state,
        State::Running,
        "line came before the exit"
    );

    let second = tokio::time::timeout(PATIENCE, logs.next())
        .await
        .expect("a line")
        .expect("open")
        .expect("ok");
    assert_eq!((second.stream, second.text.as_str()), (OutputStream::Stderr, "second"));
    let end = tokio::time::timeout(PATIENCE, logs.next()).await.expect("stream ends");
    assert!(end.is_none(), "follow ends when the container exits");
    assert!(executor.inspect(&id).await.expect("inspect").state.is_exited());
    executor.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn stop_is_graceful_then_escalates_to_kill() {
    let scope = scope("stop");
    let _cleanup = Cleanup(scope.clone());
    let executor = executor(&scope).await;

    let polite = executor
        .start(sh(
            "polite",
            "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ))
        .await
        .expect("start");
    let stubborn = executor
        .start(sh("stubborn", "trap '' TERM; echo ready; sleep 1000"))
        .await
        .expect("start");
    // Signal only once the traps are installed.
    for id in [&polite, &stubborn] {
        let mut logs = executor.logs(id, LogOptions::follow()).await.expect("logs");
        let line = tokio::time::timeout(PATIENCE, logs.next())
            .await
            .expect("ready")
            .expect("open")
            .expect("ok");
        assert_eq!(line.text, "ready");
    }

    let status = executor.stop(&polite, Duration::from_secs(20)).await.expect("stop");
    assert_eq!((status.code, status.reason), (0, ExitReason::Stopped));

    let grace = Duration::from_secs(2);
    let began = Instant::now();
    let status = executor.stop(&stubborn, grace).await.expect("stop");
    assert!(began.elapsed() >= grace, "waited the grace period first");
    assert_eq!((status.code, status.reason.clone()), (137, ExitReason::Killed));
    assert_eq!(executor.wait(&stubborn).await.expect("wait").reason, ExitReason::Killed);
    for id in [polite, stubborn] {
        executor.remove(&id).await.expect("remove");
    }
}

#[tokio::test]
async fn restart_reattaches_known_containers_and_removes_orphans() {
    let scope = scope("reattach");
    let _cleanup = Cleanup(scope.clone());
    let before = executor(&scope).await;
    let known = before.start(sh("known", "echo alive; sleep 1000")).await.expect("start");
    let orphan = before.start(sh("orphan", "sleep 1000")).await.expect("start");
    drop(before); // the daemon goes away; the containers keep running

    let after = executor(&scope).await;
    assert!(
        matches!(after.inspect(&known).await, Err(Error::NotFound(_))),
        "unknown until re-attached"
    );
    let recovery = after.reattach(&HashSet::from(["known".to_owned()])).await.expect("reattach");
    assert_eq!(recovery.reattached.iter().map(|i| &i.id).collect::<Vec<_>>(), [&known]);
    assert_eq!(recovery.reattached[0].state, State::Running);
    assert_eq!(recovery.removed.iter().map(|i| &i.id).collect::<Vec<_>>(), [&orphan]);
    assert!(
        after.client().inspect_container(&orphan.0, None).await.is_err(),
        "orphan removed from the engine"
    );

    let lines = after
        .logs(&known, LogOptions::default())
        .await
        .expect("logs")
        .collect()
        .await
        .expect("read");
    assert_eq!(lines[0].text, "alive");
    assert_eq!(after.list().await.expect("list").len(), 1);
    after.stop(&known, Duration::from_secs(1)).await.expect("stop");
    after.remove(&known).await.expect("remove");
}

#[tokio::test]
async fn env_workdir_mounts_and_ports() {
    let scope = scope("wiring");
    let _cleanup = Cleanup(scope.clone());
    let executor = executor(&scope).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "from the host\n").expect("write");
    let mut spec =
        sh("wiring", "echo \"$GREETING $(pwd)\"; cat index.html; exec httpd -f -p 8080 -h /srv");
    spec.env.insert("GREETING".into(), "hello".into());
    spec.working_dir = Some("/srv".into());
    spec.mounts.push(Mount {
        source: dir.path().to_owned(),
        target: "/srv".into(),
        read_only: true,
        tmpfs: None,
    });
    spec.ports.push(common::loopback_port(8080));
    let id = executor.start(spec).await.expect("start");
    let mut logs = executor.logs(&id, LogOptions::follow()).await.expect("logs");
    let first = tokio::time::timeout(PATIENCE, logs.next())
        .await
        .expect("line")
        .expect("open")
        .expect("ok");
    assert_eq!(first.text, "hello /srv");

    let ports = executor
        .client()
        .inspect_container(&id.0, None)
        .await
        .expect("inspect")
        .network_settings
        .expect("net")
        .ports
        .expect("ports");
    let binding = ports["8080/tcp"].as_ref().expect("bound")[0].clone();
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    let port: u16 = binding.host_port.expect("port").parse().expect("a port number");
    let response = common::get_until(port, "from the host", PATIENCE).await;
    assert!(response.contains("from the host"), "served through the published port: {response:?}");
    executor.stop(&id, Duration::from_secs(1)).await.expect("stop");
    executor.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn policy_and_missing_images_are_refused_without_leftovers() {
    let scope = scope("refuse");
    let _cleanup = Cleanup(scope.clone());
    let executor = executor(&scope).await;
    let mut spec = sh("priv", "true");
    spec.privileged = true;
    assert!(matches!(executor.start(spec).await, Err(Error::Refused(_))));

    let mut spec = sh("absent", "true");
    spec.workload = Workload::Docker {
        image: "dms-test/absent:0".into(),
        entrypoint: None,
        pull: PullPolicy::Never,
    };
    let err = executor.start(spec).await.expect_err("no such image");
    assert!(matches!(err, Error::Image { .. }), "{err}");
    assert!(err.to_string().contains("docker import"), "says what to do: {err}");
    assert!(executor.list().await.expect("list").is_empty());
}
