//! VM boot to first output, through the executor beside QEMU run by hand.
//!
//! Each round boots the test initramfs (`scripts/vm-test-images`) twice, interleaved:
//! - `executor`: [`vm::Executor::start`] → the first line of the guest's workload read
//!   from the followed console log → exit → remove;
//! - `qemu`: `qemu-system-x86_64 -M microvm` with the same acceleration, kernel, initramfs
//!   and command line, its console on stdout, read until the same line.
//!
//! It prints the medians of boot-to-first-output and boot-to-exit and the executor/QEMU
//! ratios. `DMS_VM_BENCH_ROUNDS` (default 5) sets the rounds. Run with
//! `cargo bench -p dms-executor --bench vm_boot`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dms_executor::vm::{self, Accel, Hypervisor};
use dms_executor::{Executor as _, LogOptions, ModuleSource, Spec, VmImage, Workload};
use tokio::io::{AsyncBufReadExt, BufReader};

const LINE: &str = "first output";

fn images() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/vm-test");
    assert!(dir.join("vmlinuz").is_file(), "run scripts/vm-test-images first");
    dir
}

fn spec(dir: &std::path::Path) -> Spec {
    let file = |name: &str| VmImage { source: ModuleSource::File(dir.join(name)), sha256: None };
    let mut spec = Spec::new(
        "bench",
        "bench",
        Workload::Vm {
            kernel: file("vmlinuz"),
            initrd: Some(file("initrd.gz")),
            rootfs: None,
            kernel_args: None,
            memory_bytes: None,
        },
    );
    spec.env = BTreeMap::from([("DMS_RUN".to_string(), format!("echo {LINE}"))]);
    spec.resources.memory_bytes = Some(256 << 20);
    spec
}

/// One boot through the executor: (first output, exit).
async fn executor_round(executor: &vm::Executor, spec: Spec) -> (Duration, Duration) {
    let started = Instant::now();
    let id = executor.start(spec).await.expect("start");
    let mut logs = executor.logs(&id, LogOptions::follow()).await.expect("logs");
    let mut first = None;
    while let Some(line) = logs.next().await {
        if first.is_none() && line.expect("line").text == LINE {
            first = Some(started.elapsed());
        }
    }
    let status = executor.wait(&id).await.expect("wait");
    let exit = started.elapsed();
    assert!(status.success(), "{status:?}");
    executor.remove(&id).await.expect("remove");
    (first.expect("the guest printed its line"), exit)
}

/// One boot of QEMU run by hand with the same machine: (first output, exit).
async fn qemu_round(backend: &vm::Backend, dir: &std::path::Path) -> (Duration, Duration) {
    let (accel, cpu) = match backend.accel {
        Accel::Kvm => ("kvm".to_string(), "host"),
        Accel::Tcg => ("tcg,tb-size=32".to_string(), "max"),
    };
    let mut cmdline = "console=ttyS0 reboot=t panic=-1 pci=off loglevel=3".to_string();
    if let Some(khz) = backend.tsc_khz {
        cmdline.push_str(&format!(" tsc_early_khz={khz} tsc=reliable"));
    }
    cmdline.push_str(&format!(" DMS_RUN=\"echo {LINE}\""));
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&backend.binary)
        .args(["-M", "microvm", "-accel", &accel, "-cpu", cpu, "-smp", "1", "-m", "176M"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
        .args(["-serial", "stdio", "-kernel"])
        .arg(dir.join("vmlinuz"))
        .arg("-initrd")
        .arg(dir.join("initrd.gz"))
        .args(["-append", &cmdline])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("qemu");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut first = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if first.is_none() && line.trim_end_matches('\r') == LINE {
            first = Some(started.elapsed());
        }
    }
    assert!(child.wait().await.expect("wait").success());
    (first.expect("the guest printed its line"), started.elapsed())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rounds: usize =
        std::env::var("DMS_VM_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let dir = images();
        let state = tempfile::tempdir().expect("tempdir");
        let config = vm::Config::new(state.path().to_path_buf(), "bench");
        let executor = vm::Executor::new(config).await.expect("a hypervisor");
        let backend = executor.backend().clone();
        assert_eq!(backend.hypervisor, Hypervisor::Qemu, "the baseline runs QEMU");
        println!("backend: {} ({rounds} rounds)", backend.describe());
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            ours.push(executor_round(&executor, spec(&dir)).await);
            raw.push(qemu_round(&backend, &dir).await);
            println!("round {}: executor {:?}, qemu {:?}", round + 1, ours[round], raw[round]);
        }
        for (what, pick) in [("first output", 0), ("exit", 1)] {
            let pick = |s: &[(Duration, Duration)]| -> Vec<Duration> {
                s.iter().map(|p| if pick == 0 { p.0 } else { p.1 }).collect()
            };
            let (a, b) = (median(pick(&ours)), median(pick(&raw)));
            println!(
                "boot to {what}: executor {:.2} s, qemu by hand {:.2} s, ratio {:.2}",
                a.as_secs_f64(),
                b.as_secs_f64(),
                a.as_secs_f64() / b.as_secs_f64()
            );
        }
    });
}
