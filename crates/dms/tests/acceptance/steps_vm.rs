//! Steps of `vm.feature`: VM allocations under real QEMU on a devnet, their images (from
//! `scripts/vm-test-images`) served over HTTP by the test with their checksums.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cucumber::{given, then, when};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::steps_deploy::{deploy, restart, status, write};
use super::steps_supervision::index_of;
use super::world::DmsWorld;

/// A static file server of the test VM images; stopped on drop.
#[derive(Debug)]
pub struct ImageServer {
    /// Its base URL.
    pub url: String,
    /// SHA-256 of `vmlinuz` and `initrd.gz`.
    pub sums: (String, String),
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn images() -> PathBuf {
    let dir = std::env::var_os("DMS_VM_TEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/vm-test"));
    assert!(
        dir.join("vmlinuz").is_file() && dir.join("initrd.gz").is_file(),
        "no test VM images in {}: run scripts/vm-test-images (.ci/run does)",
        dir.display()
    );
    dir
}

fn sha256(path: &std::path::Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).expect("image")))
}

/// Answers `GET /<name>` with the file `name` of `dir`, one request per connection.
async fn serve(listener: tokio::net::TcpListener, dir: PathBuf) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { return };
        let dir = dir.clone();
        tokio::spawn(async move {
            let mut request = vec![0u8; 2048];
            let n = conn.read(&mut request).await.unwrap_or(0);
            let line =
                String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or("").to_string();
            let name = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/');
            let body = (!name.contains('/')).then(|| std::fs::read(dir.join(name)).ok()).flatten();
            let response = match body {
                Some(body) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    [head.into_bytes(), body].concat()
                }
                None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
            };
            let _ = conn.write_all(&response).await;
        });
    }
}

#[given("the test VM images are served over HTTP")]
async fn served(world: &mut DmsWorld) {
    let dir = images();
    let sums = (sha256(&dir.join("vmlinuz")), sha256(&dir.join("initrd.gz")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(serve(listener, dir));
    world.vm_images = Some(ImageServer { url, sums, task });
}

fn vm_ensemble(world: &DmsWorld, kind: &str, script: &str, memory: &str) -> String {
    let server = world.vm_images.as_ref().expect("images are served");
    let (kernel, initrd) = &server.sums;
    format!(
        "version: V1\nallocations:\n  guest:\n    type: {kind}\n    executor: vm\n    resources: {{cpu: {{cores: 1}}, ram: 256MiB}}\n    execution:\n      kernel: {url}/vmlinuz\n      initrd: {url}/initrd.gz\n      checksums: {{kernel: \"sha256:{kernel}\", initrd: \"sha256:{initrd}\"}}\n{memory}    environment: {{DMS_RUN: \"{script}\"}}\nnodes:\n  only: {{allocations: [guest]}}\n",
        url = server.url
    )
}

#[when(regex = r#"^the devnet user deploys a VM (task|service) running "([^"]+)"$"#)]
async fn deploy_vm(world: &mut DmsWorld, kind: String, script: String) {
    let file = write(world, "vm.yaml", &vm_ensemble(world, &kind, &script, ""));
    deploy(world, &file, &[]).await;
}

#[when(regex = r#"^the devnet user deploys a VM web service answering "([^"]+)" on port (\d+)$"#)]
async fn deploy_web(world: &mut DmsWorld, text: String, port: u16) {
    let script =
        format!("mkdir -p /www && echo {text} > /www/index.html && httpd -f -p {port} -h /www");
    let extra = format!(
        "    ports: [{{port: {port}}}]\n    healthcheck: {{type: http, port: {port}, path: /}}\n"
    );
    let ensemble =
        vm_ensemble(world, "service", &script, "").replace("nodes:", &format!("{extra}nodes:"));
    let file = write(world, "vm-web.yaml", &ensemble);
    deploy(world, &file, &[]).await;
}

#[when(
    regex = r#"^the devnet user deploys a VM task with the local disk image "([^"]+)" holding "([^"]+)"$"#
)]
async fn deploy_disk(world: &mut DmsWorld, name: String, text: String) {
    let mut disk = text.clone().into_bytes();
    disk.resize(64 << 10, 0);
    write_bytes(world, &name, &disk);
    let script = format!("head -c {} /dev/vda; echo", text.len());
    let ensemble = vm_ensemble(world, "task", &script, "")
        .replace("      checksums:", &format!("      rootfs: ./{name}\n      checksums:"));
    let file = write(world, "vm-disk.yaml", &ensemble);
    deploy(world, &file, &[]).await;
}

/// Writes `bytes` beside the ensembles `write` makes.
fn write_bytes(world: &DmsWorld, name: &str, bytes: &[u8]) {
    let path = world.home(0).parent().expect("home parent").join(name);
    std::fs::write(path, bytes).expect("write file");
}

#[when(
    regex = r"^the devnet user deploys a VM task whose guest asks for (\S+) of a 256MiB allocation$"
)]
async fn deploy_big(world: &mut DmsWorld, memory: String) {
    let memory = format!("      memory: {memory}\n");
    let file = write(world, "vm-big.yaml", &vm_ensemble(world, "task", "true", &memory));
    deploy(world, &file, &[]).await;
}

#[then("nothing was submitted")]
async fn nothing_submitted(world: &mut DmsWorld) {
    assert!(world.deployment.is_none(), "a deployment was submitted: {}", world.last().stdout);
}

/// PIDs of QEMU processes whose command line names the deployment.
fn qemu_of(deployment: &str) -> Vec<u32> {
    super::world::live_processes(|c| c.contains("qemu-system") && c.contains(deployment))
}

#[then("a qemu process runs the deployment")]
async fn qemu_runs(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let pids = qemu_of(&id);
    assert_eq!(pids.len(), 1, "one qemu for {id}: {pids:?}");
    world.results = vec![pids[0].to_string()];
}

#[then("no qemu process of the deployment remains")]
async fn none_left(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    assert_eq!(qemu_of(&id), Vec::<u32>::new(), "qemu processes of {id} remain");
}

#[when("the provider of the VM is killed and restarted")]
async fn provider_restarted(world: &mut DmsWorld) {
    let status = status(world).await;
    let peer = status["allocations"]["guest"]["peer"].as_str().expect("placed").to_string();
    let index = index_of(world, &peer);
    restart(world, index, true).await;
}

#[then("the same qemu process still runs it, and the deployment is running")]
async fn same_qemu(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let before: u32 = world.results[0].parse().expect("pid noted");
    assert_eq!(qemu_of(&id), [before], "the VM was re-attached, not restarted");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = status(world).await;
        let guest = &status["allocations"]["guest"];
        if status["state"] == "running" && guest["status"]["state"] == "running" {
            assert_eq!(guest["status"]["restarts"], 0, "{status:#}");
            return;
        }
        assert!(Instant::now() < deadline, "not running again after the restart: {status:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[then("\"dms doctor\" names the hypervisor and its acceleration")]
async fn doctor(world: &mut DmsWorld) {
    let out = super::steps_deploy::dms(world, &["doctor"]).await;
    let line = out.stdout.lines().find(|l| l.contains("] vm ")).unwrap_or_default().to_string();
    assert!(
        line.contains("qemu-microvm (tcg)")
            || line.contains("qemu-microvm (kvm)")
            || line.contains("firecracker (kvm)"),
        "no hypervisor line in:\n{}",
        out.stdout
    );
}
