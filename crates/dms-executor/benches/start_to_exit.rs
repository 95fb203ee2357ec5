//! Start-to-exit latency.
//!
//! - `docker/executor`: start → wait → remove of `true` in the local busybox image through
//!   [`docker::Executor`], beside `docker/docker_run_cli`: `docker run --rm` of the same image
//!   and command, measured in the same run. After criterion, an interleaved run of both prints
//!   the medians and the executor/CLI ratio (target: ≤ 1.10).
//! - `wasm/instantiate_to_exit`: start (compile + instantiate) → wait of the smallest WASI
//!   command through [`wasm::Executor`].
//!
//! Needs a running Docker engine (see `.ci/run`). Run with
//! `cargo bench -p dms-executor --bench start_to_exit -- --warm-up-time 1 --measurement-time 3`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dms_executor::{Executor, ModuleSource, Spec, Workload, docker, wasm};

fn docker_cycle(rt: &tokio::runtime::Runtime, executor: &docker::Executor) {
    rt.block_on(async {
        let id = executor.start(common::sh("bench", "true")).await.expect("start");
        let status = executor.wait(&id).await.expect("wait");
        assert!(status.success(), "{status:?}");
        executor.remove(&id).await.expect("remove");
    });
}

fn docker_cli() {
    let status = Command::new("docker")
        .args(["run", "--rm", common::IMAGE, "sh", "-c", "true"])
        .status()
        .expect("docker run");
    assert!(status.success());
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    let scope = common::scope("bench");
    let _cleanup = common::Cleanup(scope.clone());
    let docker = rt.block_on(common::executor(&scope));

    let mut group = criterion.benchmark_group("docker");
    group.bench_function("executor", |b| b.iter(|| docker_cycle(&rt, &docker)));
    group.bench_function("docker_run_cli", |b| b.iter(docker_cli));
    group.finish();

    let wasm = wasm::Executor::new(wasm::Config::default()).expect("engine");
    let module =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/exit.wat")).expect("module");
    let mut group = criterion.benchmark_group("wasm");
    group.sample_size(50);
    group.bench_function("instantiate_to_exit", |b| {
        b.iter(|| {
            rt.block_on(async {
                let spec = Spec::new(
                    "bench",
                    "bench",
                    Workload::Wasm {
                        module: ModuleSource::Bytes(module.clone()),
                        cpu_time: None,
                        fuel: None,
                    },
                );
                let id = wasm.start(spec).await.expect("start");
                assert!(wasm.wait(&id).await.expect("wait").success());
                wasm.remove(&id).await.expect("remove");
            })
        })
    });
    group.finish();
    criterion.final_summary();

    // Same run, interleaved so both see the same engine and machine load.
    let rounds = 15;
    let (mut ours, mut cli) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        docker_cycle(&rt, &docker);
        ours.push(t.elapsed());
        let t = Instant::now();
        docker_cli();
        cli.push(t.elapsed());
    }
    let (ours, cli) = (median(ours), median(cli));
    println!(
        "start-to-exit, median of {rounds} interleaved rounds: executor {ours:.1?}, docker run --rm {cli:.1?}, ratio {:.2}",
        ours.as_secs_f64() / cli.as_secs_f64()
    );
}
