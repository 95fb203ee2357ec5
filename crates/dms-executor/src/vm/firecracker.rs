//! Firecracker through its API socket.
//!
//! The process is started with `--api-sock <dir>/control.sock`; the VM is then described
//! with `PUT` requests (boot source, machine configuration, root drive, serial output to
//! the console file) and started with the `InstanceStart` action. A graceful stop is the
//! `SendCtrlAltDel` action. [`requests`] is a pure function so that its bodies are
//! checked against Firecracker's published OpenAPI description (`tests/firecracker/`),
//! since the binary cannot be installed where this project is tested.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::backend::{Plan, console_path, control_path};

/// One API request: method, path, JSON body.
pub type Request = (&'static str, String, Value);

/// The requests that configure and start the VM of `plan`, in order.
pub fn requests(plan: &Plan) -> Vec<Request> {
    let mut boot = json!({
        "kernel_image_path": plan.kernel.display().to_string(),
        "boot_args": plan.cmdline,
    });
    if let Some(initrd) = &plan.initrd {
        boot["initrd_path"] = json!(initrd.display().to_string());
    }
    let mut requests = vec![
        ("PUT", "/boot-source".to_string(), boot),
        (
            "PUT",
            "/machine-config".into(),
            json!({ "vcpu_count": plan.vcpus, "mem_size_mib": plan.memory_mib, "smt": false }),
        ),
        (
            "PUT",
            "/serial".into(),
            json!({ "serial_out_path": console_path(&plan.dir).display().to_string() }),
        ),
    ];
    if let Some(rootfs) = &plan.rootfs {
        requests.push((
            "PUT",
            "/drives/rootfs".into(),
            json!({
                "drive_id": "rootfs",
                "path_on_host": rootfs.display().to_string(),
                "is_root_device": true,
                "is_read_only": false,
            }),
        ));
    }
    requests.push(action("InstanceStart"));
    requests
}

/// An instance action request.
pub fn action(kind: &str) -> Request {
    ("PUT", "/actions".into(), json!({ "action_type": kind }))
}

/// How long the API socket may take to appear after the process starts.
const SOCKET_WAIT: Duration = Duration::from_secs(5);

/// Sends `requests` over the API socket of the VM in `dir`, stopping at the first refusal.
pub(crate) async fn send(dir: &Path, requests: &[Request]) -> Result<(), String> {
    let socket = control_path(dir);
    let deadline = tokio::time::Instant::now() + SOCKET_WAIT;
    while !socket.exists() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the API socket {} did not appear", socket.display()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = reqwest::Client::builder()
        .unix_socket(socket.as_path())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    for (method, path, body) in requests {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let response = client
            .request(method, format!("http://localhost{path}"))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let fault = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("fault_message").and_then(Value::as_str).map(String::from))
                .unwrap_or(text);
            return Err(format!("{path}: HTTP {status}: {fault}"));
        }
    }
    Ok(())
}

/// Whether `path` holds an uncompressed ELF kernel (`vmlinux`), which Firecracker boots;
/// a compressed `bzImage` it does not.
pub(crate) fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && magic == *b"\x7fELF"
}
