//! Shared helpers of the Docker tests and benchmarks: a locally built image, an executor
//! per test scope, cgroup readers. Nothing here pulls from a registry.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use dms_executor::{PortBinding, Protocol, PullPolicy, Spec, Workload, docker};

/// The test image: a busybox root filesystem imported with `docker import`.
pub const IMAGE: &str = "dms-test/busybox:1";

const HOW_TO_START: &str = "these tests need a running Docker engine: install it \
    (apt-get install -y --no-install-recommends docker.io busybox-static) and start it \
    (dockerd >/tmp/dockerd.log 2>&1 &); .ci/run does both";

/// An executor scoped to one test (label `dms.executor=<scope>`), with the test image built.
/// Panics — the test fails, it is never skipped — when Docker is unavailable.
pub async fn executor(scope: &str) -> docker::Executor {
    let config = docker::Config { scope: scope.to_owned(), ..docker::Config::default() };
    let executor = match docker::Executor::connect(config).await {
        Ok(executor) => executor,
        Err(e) => panic!("Docker is unavailable ({e}); {HOW_TO_START}"),
    };
    ensure_image();
    executor
}

/// A unique scope name for a test.
pub fn scope(test: &str) -> String {
    format!("test-{test}-{}", std::process::id())
}

/// A spec running `sh -c script` in the test image, never pulling.
pub fn sh(allocation: &str, script: &str) -> Spec {
    let mut spec = Spec::new(
        allocation,
        "dep-test",
        Workload::Docker { image: IMAGE.into(), entrypoint: None, pull: PullPolicy::Never },
    );
    spec.args = vec!["sh".into(), "-c".into(), script.into()];
    spec
}

/// Builds [`IMAGE`] from the host's static busybox when the engine does not have it.
pub fn ensure_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let present = Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .output()
            .unwrap_or_else(|e| panic!("cannot run the docker CLI ({e}); {HOW_TO_START}"));
        if present.status.success() {
            return;
        }
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "no /bin/busybox: apt-get install -y busybox-static");
        let root = tempfile::tempdir().expect("temporary directory for the rootfs");
        for dir in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("rootfs directory");
        }
        std::fs::copy(busybox, root.path().join("bin/busybox")).expect("copy busybox");
        let list = Command::new(busybox).arg("--list").output().expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = root.path().join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).expect("applet symlink");
            }
        }
        let script = format!("tar -C '{}' -c . | docker import - {IMAGE}", root.path().display());
        let status =
            Command::new("sh").args(["-c", &script]).status().expect("run tar | docker import");
        assert!(status.success(), "docker import of the busybox rootfs failed");
    });
}

/// Removes every container of a scope when dropped, so a failing test leaves nothing behind.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let script = format!(
            "ids=$(docker ps -aq --filter label=dms.executor={}); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null",
            self.0
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}

/// The host path of a container's cgroup for `controller` (v1) or its unified cgroup (v2),
/// found through the container's init process.
pub fn cgroup_dir(pid: i64, controller: &str) -> PathBuf {
    let table =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    for line in table.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) =
            (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == controller) {
            let joined = Path::new("/sys/fs/cgroup").join(controllers).join(path);
            if joined.exists() {
                return joined;
            }
            return Path::new("/sys/fs/cgroup").join(controller).join(path);
        }
        if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return Path::new("/sys/fs/cgroup").join(path);
        }
    }
    panic!("no {controller} cgroup for pid {pid} in:\n{table}");
}

/// Reads the first existing file of `names` in `dir`, trimmed.
pub fn read_first(dir: &Path, names: &[&str]) -> (String, String) {
    for name in names {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            return ((*name).to_owned(), text.trim().to_owned());
        }
    }
    panic!("none of {names:?} in {}", dir.display());
}

/// Container port `port` (TCP) published on a free port of 127.0.0.1.
pub fn loopback_port(port: u16) -> PortBinding {
    PortBinding {
        container_port: port,
        protocol: Protocol::Tcp,
        host_ip: Some("127.0.0.1".parse().expect("ip")),
        host_port: None,
    }
}

/// `GET /index.html` on 127.0.0.1:`port`, retried until the answer contains `text` or
/// `patience` runs out; the last answer.
pub async fn get_until(port: u16, text: &str, patience: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let deadline = std::time::Instant::now() + patience;
    let mut response = String::new();
    while !response.contains(text) && std::time::Instant::now() < deadline {
        response.clear();
        if let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").await.expect("send");
            let _ = conn.read_to_string(&mut response).await;
        }
        if !response.contains(text) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    response
}

/// A one-shot HTTP server answering its first request with `body`: its URL ending in
/// `/name`, and the task that ends once it answered. A second request finds no server.
pub async fn serve_once(name: &str, body: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/{name}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request).await;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.expect("head");
        conn.write_all(&body).await.expect("body");
    });
    (url, server)
}
