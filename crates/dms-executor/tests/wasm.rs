//! WebAssembly executor: real WASI modules (written as WAT in `tests/wasm/`) run by wasmtime.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use dms_executor::{
    Error, Executor as _, ExitReason, LogOptions, ModuleSource, Mount, OutputStream, Spec, State,
    Workload, wasm,
};

const PATIENCE: Duration = Duration::from_secs(60);

fn module(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/wasm").join(name)
}

fn spec(allocation: &str, source: ModuleSource) -> Spec {
    Spec::new(allocation, "dep-test", Workload::Wasm { module: source, cpu_time: None, fuel: None })
}

fn executor() -> wasm::Executor {
    wasm::Executor::new(wasm::Config::default()).expect("wasm engine")
}

#[tokio::test]
async fn prints_reads_env_writes_a_preopened_file_and_exits_with_its_code() {
    let executor = executor();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec("hello", ModuleSource::File(module("hello.wat")));
    spec.env.insert("GREETING".into(), "hello".into());
    spec.mounts.push(Mount {
        source: dir.path().to_owned(),
        target: "/data".into(),
        read_only: false,
        tmpfs: None,
    });

    let id = executor.start(spec).await.expect("start");
    let status =
        tokio::time::timeout(PATIENCE, executor.wait(&id)).await.expect("exits").expect("wait");
    assert_eq!((status.code, status.reason), (3, ExitReason::Exited));

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
    assert_eq!(of(OutputStream::Stdout), ["hello from wasm", "GREETING=hello"]);
    assert_eq!(of(OutputStream::Stderr), ["oops on stderr"]);
    let written =
        std::fs::read_to_string(dir.path().join("out.txt")).expect("file written by the module");
    assert_eq!(written, "written by wasm\n");
    assert!(matches!(executor.exec(&id, vec!["ls".into()]).await, Err(Error::Unsupported { .. })));
    executor.remove(&id).await.expect("remove");
    assert!(matches!(executor.inspect(&id).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn read_only_preopen_refuses_writes() {
    let executor = executor();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec("ro", ModuleSource::File(module("hello.wat")));
    spec.mounts.push(Mount {
        source: dir.path().to_owned(),
        target: "/data".into(),
        read_only: true,
        tmpfs: None,
    });
    let id = executor.start(spec).await.expect("start");
    let status = executor.wait(&id).await.expect("wait");
    assert_eq!((status.code, status.reason), (99, ExitReason::Exited), "path_open was refused");
    assert!(!dir.path().join("out.txt").exists());
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_cpu_time_limit() {
    let executor = executor();
    let mut spec = spec("spin", ModuleSource::File(module("spin.wat")));
    spec.workload = Workload::Wasm {
        module: ModuleSource::File(module("spin.wat")),
        cpu_time: Some(Duration::from_millis(300)),
        fuel: None,
    };
    let id = executor.start(spec).await.expect("start");
    let status =
        tokio::time::timeout(PATIENCE, executor.wait(&id)).await.expect("limited").expect("wait");
    assert_eq!(status.reason, ExitReason::CpuTimeLimit);
    let used = executor.stats(&id).await.expect("stats").cpu_time_ns.expect("cpu time");
    assert!(used >= 300_000_000, "stopped only after its CPU time: {used} ns");
}

/// The measurement: a spinning module given 0.1 core used 0.91 of a core. Now
/// its thread is paused at epoch ticks while ahead of its share: measured over 3 s of
/// wall time, it uses at most 0.12 core (the share plus one tick of slack).
#[tokio::test]
async fn a_spinning_module_uses_no_more_than_its_share_of_a_core() {
    let executor = executor();
    let mut spec = spec("share", ModuleSource::File(module("spin.wat")));
    spec.resources.cpu_cores = Some(0.1);
    let started = std::time::Instant::now();
    let id = executor.start(spec).await.expect("start");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = executor.stats(&id).await.expect("stats").cpu_time_ns.expect("cpu time");
    let wall = started.elapsed();
    executor.stop(&id, Duration::ZERO).await.expect("stop");
    let cores = used as f64 / wall.as_nanos() as f64;
    eprintln!("0.1-core spinner: {:.3} cores over {:.1} s", cores, wall.as_secs_f64());
    assert!(cores <= 0.12, "used {cores:.3} cores");
    assert!(cores >= 0.05, "it still runs: {cores:.3} cores");
}

#[tokio::test]
async fn fuel_is_a_deterministic_budget() {
    let executor = executor();
    let spec = Spec::new(
        "fuel",
        "dep-test",
        Workload::Wasm {
            module: ModuleSource::File(module("spin.wat")),
            cpu_time: None,
            fuel: Some(1_000_000),
        },
    );
    let id = executor.start(spec).await.expect("start");
    let status =
        tokio::time::timeout(PATIENCE, executor.wait(&id)).await.expect("limited").expect("wait");
    assert_eq!(status.reason, ExitReason::FuelExhausted);
}

#[tokio::test]
async fn stop_interrupts_a_running_module() {
    let executor = executor();
    let id =
        executor.start(spec("stop", ModuleSource::File(module("spin.wat")))).await.expect("start");
    assert_eq!(executor.inspect(&id).await.expect("inspect").state, State::Running);
    let status = executor.stop(&id, Duration::from_secs(5)).await.expect("stop");
    assert_eq!(status.reason, ExitReason::Stopped);
    assert_eq!(executor.list().await.expect("list").len(), 1);
}

#[tokio::test]
async fn growing_memory_past_the_limit_fails_cleanly() {
    let executor = executor();
    let mut spec = spec("grow", ModuleSource::File(module("grow.wat")));
    spec.resources.memory_bytes = Some(1 << 20);
    let id = executor.start(spec).await.expect("start");
    let status =
        tokio::time::timeout(PATIENCE, executor.wait(&id)).await.expect("ends").expect("wait");
    assert_eq!(status.reason, ExitReason::MemoryLimit, "{status:?}");
    let stats = executor.stats(&id).await.expect("stats");
    assert_eq!(stats.memory_limit_bytes, Some(1 << 20));
    assert!(stats.memory_bytes <= 1 << 20 && stats.memory_bytes >= 64 << 10, "{stats:?}");
}

#[tokio::test]
async fn modules_load_from_bytes_and_http_urls() {
    let executor = executor();
    let wat = std::fs::read(module("hello.wat")).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");

    let (url, server) = common::serve_once("hello.wat", wat.clone()).await;

    for source in [ModuleSource::Bytes(wat), ModuleSource::Url(url)] {
        let mut spec = spec("load", source);
        spec.mounts.push(Mount {
            source: dir.path().to_owned(),
            target: "/".into(),
            read_only: false,
            tmpfs: None,
        });
        let id = executor.start(spec).await.expect("start");
        assert_eq!(executor.wait(&id).await.expect("wait").code, 3);
    }
    server.await.expect("server");
}

#[tokio::test]
async fn bad_modules_are_refused_at_start() {
    let executor = executor();
    let not_wasm = executor.start(spec("bad", ModuleSource::Bytes(b"not a module".to_vec()))).await;
    assert!(matches!(not_wasm, Err(Error::Module { .. })), "{not_wasm:?}");
    let no_start = executor.start(spec("lib", ModuleSource::Bytes(b"(module)".to_vec()))).await;
    let err = no_start.expect_err("no _start");
    assert!(err.to_string().contains("_start"), "{err}");
    let missing =
        executor.start(spec("missing", ModuleSource::File("/nonexistent.wasm".into()))).await;
    assert!(matches!(missing, Err(Error::Module { .. })));
    let mut docker_only = spec("ports", ModuleSource::File(module("spin.wat")));
    docker_only.privileged = true;
    assert!(matches!(executor.start(docker_only).await, Err(Error::InvalidSpec(_))));
    assert!(executor.list().await.expect("list").is_empty(), "nothing left behind");
}

#[tokio::test]
async fn output_is_followed_live() {
    let executor = executor();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec("follow", ModuleSource::File(module("hello.wat")));
    spec.mounts.push(Mount {
        source: dir.path().to_owned(),
        target: "/d".into(),
        read_only: false,
        tmpfs: None,
    });
    let id = executor.start(spec).await.expect("start");
    let mut logs = executor.logs(&id, LogOptions::follow()).await.expect("logs");
    let mut texts = Vec::new();
    while let Some(line) = tokio::time::timeout(PATIENCE, logs.next()).await.expect("line or end") {
        texts.push(line.expect("ok").text);
    }
    assert_eq!(texts, ["hello from wasm", "oops on stderr"], "env is empty, stream ended at exit");
}
