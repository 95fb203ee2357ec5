//! The VM executor against real QEMU (`microvm`, KVM where it works, TCG otherwise).
//!
//! The images come from `scripts/vm-test-images` (Debian's kernel and a busybox initramfs
//! whose init runs `sh -c "$DMS_RUN"`, reports its status and powers off); `.ci/run`
//! builds them. These tests fail, never skip, without QEMU or the images.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dms_executor::{
    Error, Executor as _, ExitReason, ModuleSource, Spec, State, VmImage, Workload, vm,
};

/// Where `scripts/vm-test-images` put the images.
fn images() -> PathBuf {
    let dir = std::env::var_os("DMS_VM_TEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/vm-test"));
    assert!(
        dir.join("vmlinuz").is_file() && dir.join("initrd.gz").is_file(),
        "no test VM images in {}: run scripts/vm-test-images (needs qemu-system-x86, \
         busybox-static, cpio; .ci/run installs them)",
        dir.display()
    );
    dir
}

fn file(path: PathBuf) -> VmImage {
    VmImage { source: ModuleSource::File(path), sha256: None }
}

/// A VM running `script` under the test initramfs, with 256 MiB for guest and QEMU.
fn spec(allocation: &str, script: &str) -> Spec {
    let dir = images();
    let mut spec = Spec::new(
        allocation,
        "dep-vm",
        Workload::Vm {
            kernel: file(dir.join("vmlinuz")),
            initrd: Some(file(dir.join("initrd.gz"))),
            rootfs: None,
            kernel_args: None,
            memory_bytes: None,
        },
    );
    spec.env = BTreeMap::from([("DMS_RUN".to_string(), script.to_string())]);
    spec.resources.memory_bytes = Some(256 << 20);
    spec.resources.cpu_cores = Some(1.0);
    spec
}

async fn executor(state: &std::path::Path, scope: &str) -> vm::Executor {
    match vm::Executor::new(vm::Config::new(state.to_path_buf(), scope)).await {
        Ok(executor) => executor,
        Err(e) => panic!("{e}: install qemu-system-x86 (.ci/run does)"),
    }
}

/// Hypervisor processes whose command line names `dir`.
fn processes_under(dir: &std::path::Path) -> usize {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(&needle))
        .count()
}

async fn texts(executor: &vm::Executor, id: &dms_executor::ExecutionId) -> Vec<String> {
    let logs = executor.logs(id, Default::default()).await.expect("logs");
    logs.collect().await.expect("lines").into_iter().map(|l| l.text).collect()
}

#[tokio::test]
async fn a_task_boots_prints_and_its_exit_code_comes_back() {
    let state = tempfile::tempdir().expect("tempdir");
    let executor = executor(state.path(), "task").await;
    println!("backend: {}", executor.backend().describe());
    let started = Instant::now();
    let id = executor
        .start(spec("task", "echo hello from the guest; echo FOO is $FOO; exit 3"))
        .await
        .expect("start");
    let status = executor.wait(&id).await.expect("wait");
    println!("boot to exit: {:?}", started.elapsed());
    assert_eq!((status.code, status.reason), (3, ExitReason::Exited));
    let lines = texts(&executor, &id).await;
    assert!(lines.iter().any(|l| l == "hello from the guest"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains(vm::EXIT_MARKER)), "the marker is not shown");
    executor.remove(&id).await.expect("remove");
    assert!(std::fs::read_dir(state.path().join("vms")).expect("vms").next().is_none());
}

#[tokio::test]
async fn volumes_are_shared_with_the_guest_read_write_or_read_only() {
    let state = tempfile::tempdir().expect("tempdir");
    let executor = executor(state.path(), "volumes").await;
    let (data, config) = (tempfile::tempdir().expect("data"), tempfile::tempdir().expect("config"));
    std::fs::write(config.path().join("in.txt"), "from the host\n").expect("input");
    let mut spec = spec(
        "volumes",
        "cat /config/in.txt; echo written > /data/out.txt; echo x > /config/no.txt || echo read-only",
    );
    let mount = |dir: &tempfile::TempDir, target: &str, read_only| dms_executor::Mount {
        source: dir.path().to_owned(),
        target: target.into(),
        read_only,
        tmpfs: None,
    };
    spec.mounts = vec![mount(&data, "/data", false), mount(&config, "/config", true)];
    let id = executor.start(spec).await.expect("start");
    assert!(executor.wait(&id).await.expect("wait").success());
    let lines = texts(&executor, &id).await;
    assert!(lines.iter().any(|l| l == "from the host"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "read-only"), "{lines:?}");
    let written = std::fs::read_to_string(data.path().join("out.txt")).expect("the guest wrote");
    assert_eq!(written, "written\n");
    assert!(!config.path().join("no.txt").exists());
}

#[tokio::test]
async fn a_published_port_reaches_the_guest() {
    let state = tempfile::tempdir().expect("tempdir");
    let executor = executor(state.path(), "ports").await;
    let script =
        "mkdir -p /www && echo hello from a VM > /www/index.html && httpd -f -p 8080 -h /www";
    let mut spec = spec("web", script);
    spec.ports = vec![dms_executor::PortBinding {
        container_port: 8080,
        protocol: dms_executor::Protocol::Tcp,
        host_ip: Some([127, 0, 0, 1].into()),
        host_port: None,
    }];
    let id = executor.start(spec).await.expect("start");
    let published = executor.inspect(&id).await.expect("inspect").published;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].port, 8080);
    let url = format!("http://127.0.0.1:{}/", published[0].host_port);
    let deadline = Instant::now() + Duration::from_secs(90);
    let body = loop {
        match reqwest::get(&url).await {
            Ok(response) if response.status().is_success() => {
                break response.text().await.expect("body");
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("{url} did not answer: {other:?}"),
        }
    };
    assert_eq!(body, "hello from a VM\n");
    executor.stop(&id, Duration::from_millis(200)).await.expect("stop");
    executor.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn a_service_is_followed_measured_and_stopped_with_nothing_left() {
    let state = tempfile::tempdir().expect("tempdir");
    let executor = executor(state.path(), "service").await;
    let script = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done";
    let id = executor.start(spec("service", script)).await.expect("start");
    let mut follow = executor.logs(&id, dms_executor::LogOptions::follow()).await.expect("logs");
    let line = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = follow.next().await.expect("still running").expect("line");
            if line.text.starts_with("tick") {
                return line.text;
            }
        }
    })
    .await
    .expect("a tick within a minute");
    assert_eq!(line, "tick 1");
    assert!(matches!(executor.inspect(&id).await.expect("inspect").state, State::Running));
    let stats = executor.stats(&id).await.expect("stats");
    assert!(stats.memory_bytes > 0 && stats.cpu_time_ns.unwrap_or(0) > 0, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, Some(256 << 20));
    let status = executor.stop(&id, Duration::from_secs(1)).await.expect("stop");
    // The test init has no ACPI handler: the power button is ignored and the VM killed.
    assert_eq!((status.code, status.reason), (137, ExitReason::Killed));
    assert_eq!(processes_under(state.path()), 0, "no qemu process remains");
    executor.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn a_new_executor_reattaches_known_vms_and_removes_orphans() {
    let state = tempfile::tempdir().expect("tempdir");
    let first = executor(state.path(), "reattach").await;
    let forever = "while true; do echo up; sleep 1; done";
    let known = first.start(spec("known", forever)).await.expect("start known");
    let orphan = first.start(spec("orphan", forever)).await.expect("start orphan");
    drop(first); // dms stopped: its VMs run on.
    assert_eq!(processes_under(state.path()), 2);

    let second = executor(state.path(), "reattach").await;
    let recovery = second.reattach(&HashSet::from(["known".to_string()])).await.expect("reattach");
    let ids = |infos: &[dms_executor::ExecutionInfo]| -> Vec<String> {
        infos.iter().map(|i| i.id.0.clone()).collect()
    };
    assert_eq!(ids(&recovery.reattached), std::slice::from_ref(&known.0));
    assert_eq!(ids(&recovery.removed), std::slice::from_ref(&orphan.0));
    assert!(matches!(recovery.reattached[0].state, State::Running));
    assert_eq!(processes_under(state.path()), 1, "the orphan was killed");
    let status = second.stop(&known, Duration::from_millis(500)).await.expect("stop");
    assert_eq!(status.reason, ExitReason::Killed);
    second.remove(&known).await.expect("remove");
    assert_eq!(processes_under(state.path()), 0);
}

#[tokio::test]
async fn too_little_memory_bad_kernels_and_panics_are_told() {
    let state = tempfile::tempdir().expect("tempdir");
    let executor = executor(state.path(), "errors").await;
    let mut small = spec("small", "true");
    small.resources.memory_bytes = Some(64 << 20);
    let error = executor.start(small).await.expect_err("too little memory");
    assert!(matches!(error, Error::InvalidSpec(_)), "{error}");
    assert!(error.to_string().contains("do not fit the allocation's 64 MiB"), "{error}");

    let junk = state.path().join("not-a-kernel");
    std::fs::write(&junk, b"junk").expect("write");
    let mut bad = spec("bad", "true");
    bad.workload = Workload::Vm {
        kernel: file(junk),
        initrd: None,
        rootfs: None,
        kernel_args: None,
        memory_bytes: None,
    };
    let error = executor.start(bad).await.expect_err("not a kernel");
    assert!(error.to_string().contains("start the VM"), "{error}");
    assert_eq!(processes_under(state.path()), 0);

    let mut panics = spec("panics", "true");
    if let Workload::Vm { kernel_args, .. } = &mut panics.workload {
        *kernel_args = Some("rdinit=/nonexistent".into());
    }
    let id = executor.start(panics).await.expect("start");
    let status = executor.wait(&id).await.expect("wait");
    let ExitReason::Failed(why) = &status.reason else { panic!("{status:?}") };
    assert!(why.contains("kernel panicked"), "{why}");
}

#[tokio::test]
async fn images_download_once_and_are_checked() {
    let dir = images();
    let initrd = std::fs::read(dir.join("initrd.gz")).expect("initrd");
    let sum = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&initrd))
    };
    // One answer only: a second download would find no server.
    let (url, server) = common::serve_once("initrd.gz", initrd).await;
    let state = tempfile::tempdir().expect("tempdir");
    let executor = executor(state.path(), "images").await;
    for round in 0..2 {
        let mut spec = spec("downloaded", "exit 0");
        if let Workload::Vm { initrd, .. } = &mut spec.workload {
            *initrd = Some(VmImage {
                source: ModuleSource::Url(url.clone()),
                sha256: Some(format!("sha256:{sum}")),
            });
        }
        if round == 1 {
            // The cache answers: no second request reaches the (finished) server.
            assert!(state.path().join("images").join(&sum).is_file());
            spec.env.insert("DMS_RUN".into(), "exit 7".into());
        }
        let id = executor.start(spec).await.expect("start");
        assert_eq!(executor.wait(&id).await.expect("wait").code, [0, 7][round]);
    }
    server.await.expect("server");
}
