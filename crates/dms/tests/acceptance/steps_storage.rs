//! Steps for storage: a real S3 server (`s3s-fs`, which checks SigV4 against one key),
//! tasks that upper-case a staged input into a published output, and the places the
//! secret key and the volumes must not be left.

use cucumber::{given, then, when};
use serde_json::Value;
use sha2::Digest as _;

use super::daemon::run;
use super::steps_deploy::{IMAGE, deployment_id, devnet_cli, node, write};
use super::world::DmsWorld;

fn server(world: &DmsWorld) -> &dms_storage::testing::S3Server {
    world.s3.as_ref().expect("an S3 server is up")
}

#[given(regex = r#"^an S3 server with bucket "([^"]+)" holding "([^"]+)" = "([^"]+)"$"#)]
async fn s3_server(world: &mut DmsWorld, bucket: String, key: String, text: String) {
    let dir = world.home(0).parent().expect("home parent").join("s3");
    let server = dms_storage::testing::S3Server::start(&dir, &[&bucket]).expect("s3s-fs runs");
    let file = dir.join(&bucket).join(&key);
    std::fs::create_dir_all(file.parent().expect("a directory")).expect("mkdir");
    std::fs::write(file, text).expect("object written");
    world.s3 = Some(server);
}

/// The upper-casing task on `executor`, reading `input` from the store.
fn upper(world: &DmsWorld, executor: &str, input: &str) -> String {
    let endpoint = &server(world).endpoint;
    let execution = match executor {
        "wasm" => {
            let module = format!("{}/../../examples/upper.wat", env!("CARGO_MANIFEST_DIR"));
            format!("{{module: \"{module}\"}}")
        }
        _ => format!(
            "{{image: \"{IMAGE}\", command: [sh, -c, \"mkdir -p /data/out && tr a-z A-Z < /data/in/input.txt > /data/out/result.txt\"]}}"
        ),
    };
    format!(
        "version: V1\nstorage:\n  lake: {{type: s3, endpoint: \"{endpoint}\", bucket: data}}\n\
         allocations:\n  upper:\n    type: task\n    executor: {executor}\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {execution}\n    \
         volumes: [{{source: work, target: /data, size: 64MiB}}]\n    \
         inputs: [{{from: \"lake:{input}\", to: /data/in/input.txt}}]\n    \
         outputs: [{{from: /data/out/, to: \"lake:results/\"}}]\n\
         nodes:\n  only: {{allocations: [upper]}}\n"
    )
}

#[given(regex = r#"^the test VM images are in bucket "([^"]+)" under "([^"]+)"$"#)]
async fn vm_images_in_bucket(world: &mut DmsWorld, bucket: String, prefix: String) {
    let dir = world.home(0).parent().expect("home parent").join("s3").join(&bucket).join(&prefix);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let images = super::steps_vm::images();
    for name in ["vmlinuz", "initrd.gz"] {
        std::fs::copy(images.join(name), dir.join(name)).expect("image copied into the bucket");
    }
}

#[when(
    "the devnet user deploys a VM upper-caser booted from images in the store, with the S3 credentials"
)]
async fn deploy_vm_upper(world: &mut DmsWorld) {
    let endpoint = &server(world).endpoint;
    let script = "mkdir -p /data/out && tr a-z A-Z < /data/in/input.txt > /data/out/result.txt";
    let text = format!(
        "version: V1\nstorage:\n  lake: {{type: s3, endpoint: \"{endpoint}\", bucket: data}}\n\
         allocations:\n  upper:\n    type: task\n    executor: vm\n    \
         resources: {{cpu: {{cores: 1}}, ram: 256MiB}}\n    \
         execution: {{kernel: /boot/vmlinuz, initrd: /boot/initrd.gz}}\n    \
         environment: {{DMS_RUN: \"{script}\"}}\n    \
         volumes: [{{source: boot, target: /boot, size: 64MiB}}, {{source: work, target: /data, size: 64MiB}}]\n    \
         inputs: [{{from: \"lake:images/\", to: /boot/}}, {{from: \"lake:in/input.txt\", to: /data/in/input.txt}}]\n    \
         outputs: [{{from: /data/out/, to: \"lake:results/\"}}]\n\
         nodes:\n  only: {{allocations: [upper]}}\n"
    );
    let secret = server(world).credentials.secret_access_key.clone();
    deploy_with(world, &text, &secret, &[]).await;
}

/// `dms devnet deploy <text> <extra>` with the server's access key and `secret`.
async fn deploy_with(world: &mut DmsWorld, text: &str, secret: &str, extra: &[&str]) {
    let file = write(world, "upper.yaml", text);
    let key = server(world).credentials.access_key_id.clone();
    let env = [("AWS_ACCESS_KEY_ID", key.as_str()), ("AWS_SECRET_ACCESS_KEY", secret)];
    let mut args = vec!["devnet", "deploy", &file];
    args.extend_from_slice(extra);
    let out = run(&world.home(0), &args, &env).await;
    world.deployment = deployment_id(&out);
    world.last = Some(out);
}

#[when(
    regex = r"^the devnet user deploys the (WebAssembly|Docker) upper-caser with the S3 credentials$"
)]
async fn deploy_upper(world: &mut DmsWorld, kind: String) {
    let executor = if kind == "Docker" { "docker" } else { "wasm" };
    let text = upper(world, executor, "in/input.txt");
    let secret = server(world).credentials.secret_access_key.clone();
    deploy_with(world, &text, &secret, &[]).await;
}

#[when(
    regex = r#"^the devnet user deploys the WebAssembly upper-caser reading "([^"]+)" with the S3 credentials$"#
)]
async fn deploy_missing(world: &mut DmsWorld, key: String) {
    let text = upper(world, "wasm", &key);
    let secret = server(world).credentials.secret_access_key.clone();
    deploy_with(world, &text, &secret, &[]).await;
}

#[when("the devnet user deploys the WebAssembly upper-caser with a wrong secret key")]
async fn deploy_wrong(world: &mut DmsWorld) {
    let text = upper(world, "wasm", "in/input.txt");
    deploy_with(world, &text, "not-the-secret-key", &[]).await;
}

#[then(regex = r#"^the deployment is refused with "([^"]+)"$"#)]
async fn refused(world: &mut DmsWorld, text: String) {
    let out = world.last();
    assert!(!out.status.success(), "deploy succeeded:\n{}", out.stdout);
    let last = out.stderr.trim_end().lines().last().unwrap_or_default();
    assert!(out.stderr.contains(&text), "{text:?} not in:\n{}", out.stderr);
    assert!(!last.is_empty(), "no error line in:\n{}", out.stderr);
}

#[then("no allocation was started anywhere")]
async fn nothing_started(world: &mut DmsWorld) {
    let out = devnet_cli(world, 0, &["deployments", "list", "-o", "json"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(list.as_array().map_or(0, Vec::len), 0, "nothing was created: {list}");
}

#[then(regex = r#"^the bucket holds "([^"]+)" = "([^"]+)"$"#)]
async fn bucket_holds(world: &mut DmsWorld, key: String, text: String) {
    let path = server(world).dir.join("data").join(&key);
    let content = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{key} is not in the bucket ({e}):\n{}", world.last().stdout));
    assert_eq!(content.trim_end(), text);
}

#[then(regex = r#"^"dms deployments outputs" lists "([^"]+)" with its size and sha256$"#)]
async fn outputs_listed(world: &mut DmsWorld, object: String) {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "outputs", &id, "-o", "json"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let rows: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let row = rows
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["object"] == object.as_str())
        .unwrap_or_else(|| panic!("{object} not listed: {rows}"));
    let key = object.split_once(':').expect("store:key").1;
    let content = std::fs::read(server(world).dir.join("data").join(key)).expect("object");
    assert_eq!(row["size"], content.len() as u64, "{row}");
    assert_eq!(row["sha256"], hex::encode(sha2::Sha256::digest(&content)), "{row}");
}

/// Every devnet node's home.
fn homes(world: &DmsWorld) -> Vec<std::path::PathBuf> {
    let count = world.devnet.as_ref().expect("devnet")["nodes"].as_array().map_or(0, Vec::len);
    (0..count).map(|i| node(world, i)["home"].as_str().expect("home").into()).collect()
}

#[then("no provider keeps a volume of the deployment")]
async fn no_volumes(world: &mut DmsWorld) {
    // A volume goes once its workload is stopped, which may follow the reported end by
    // the workload's stop grace (10 s for one that ignores SIGTERM).
    let id = world.deployment.clone().expect("a deployment");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let kept: Vec<_> = homes(world)
            .iter()
            .flat_map(|home| walk(home))
            .filter(|p| p.to_string_lossy().contains(&format!("volumes/{id}")))
            .collect();
        if kept.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "volumes kept: {kept:?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[then("the secret key appears nowhere in any node's home")]
async fn secret_nowhere(world: &mut DmsWorld) {
    let secret = server(world).credentials.secret_access_key.clone();
    let mut searched = 0;
    for home in homes(world) {
        for file in walk(&home) {
            let Ok(bytes) = std::fs::read(&file) else { continue };
            searched += 1;
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "the secret key is in {}", file.display());
        }
    }
    assert!(searched > 3, "only {searched} files searched");
}

/// Every file and directory under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => {
                    out.push(path.clone());
                    stack.push(path);
                }
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// A Docker allocation of `kind` running `script` with the volume `/data` of `size`,
/// publishing `/data/out/` to `lake:results/`.
fn docker_with_volume(world: &DmsWorld, kind: &str, script: &str, size: &str) -> String {
    let endpoint = &server(world).endpoint;
    format!(
        "version: V1\nstorage:\n  lake: {{type: s3, endpoint: \"{endpoint}\", bucket: data}}\n\
         allocations:\n  work:\n    type: {kind}\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    \
         execution: {{image: \"{IMAGE}\", command: [sh, -c, \"{script}\"]}}\n    \
         volumes: [{{source: work, target: /data, size: {size}}}]\n    \
         outputs: [{{from: /data/out/, to: \"lake:results/\"}}]\n\
         nodes:\n  only: {{allocations: [work]}}\n"
    )
}

#[when(
    regex = r#"^the devnet user deploys a Docker service writing "([^"]+)" to /data/out/report.txt$"#
)]
async fn deploy_service_report(world: &mut DmsWorld, text: String) {
    let script = format!("mkdir -p /data/out && echo {text} > /data/out/report.txt && sleep 3600");
    let ensemble = docker_with_volume(world, "service", &script, "16MiB");
    let secret = server(world).credentials.secret_access_key.clone();
    deploy_with(world, &ensemble, &secret, &[]).await;
}

#[when(regex = r"^the devnet user deploys a Docker task writing (\d+) MiB into a volume of (\S+)$")]
async fn deploy_filler(world: &mut DmsWorld, mib: u32, size: String) {
    let script = format!("dd if=/dev/zero of=/data/fill bs=1048576 count={mib} && sleep 60");
    let ensemble = docker_with_volume(world, "task", &script, &size);
    let secret = server(world).credentials.secret_access_key.clone();
    deploy_with(world, &ensemble, &secret, &["--detach"]).await;
    let out = world.last();
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
}

#[when(r#"the devnet user runs "dms deployments outputs --publish" for the deployment"#)]
async fn publish_now(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, 0, &["deployments", "outputs", &id, "--publish"]).await;
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    world.last = Some(out);
}
