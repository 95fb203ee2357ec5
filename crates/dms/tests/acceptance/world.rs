//! The scenario state.

use std::path::{Path, PathBuf};

use cucumber::World;
use tempfile::TempDir;

use super::daemon::{Daemon, Run};

/// One scenario's state: temporary homes, the last command, running daemons.
#[derive(Debug, World)]
#[world(init = Self::new)]
pub struct DmsWorld {
    /// Temporary dms homes; `homes[0]` is "the" home.
    pub homes: Vec<TempDir>,
    /// API address the daemon is started with.
    pub api_addr: String,
    /// The last one-shot command.
    pub last: Option<Run>,
    /// Daemons started in this scenario (killed on drop).
    pub daemons: Vec<Daemon>,
    /// Contents and mtime of a key file, to prove it unchanged.
    pub key_file_before: Option<(Vec<u8>, std::time::SystemTime)>,
    /// A key pair built from a test vector.
    pub vector_did: Option<String>,
    /// The store of store scenarios.
    pub store: Option<(TempDir, dms_store::Store)>,
    /// Ids returned by the last search.
    pub results: Vec<String>,
    /// DIDs of named identities.
    pub dids: std::collections::HashMap<String, String>,
    /// Capability tokens by (issuer, audience).
    pub tokens: std::collections::HashMap<(String, String), String>,
    /// The order tokens were issued in.
    pub token_order: Vec<(String, String)>,
    /// The last revocation issued.
    pub revocation: Option<String>,
    /// The devnet of deployment scenarios (`devnet.json`); brought down on drop.
    pub devnet: Option<serde_json::Value>,
    /// The deployment under test.
    pub deployment: Option<String>,
    /// The devnet node orchestrating it, when not node 0.
    pub orchestrator: usize,
    /// The contract under test (its id).
    pub contract: Option<String>,
    /// Free resources of every devnet node, noted before a deployment.
    pub free_before: Vec<serde_json::Value>,
    /// A devnet node stopped by the scenario, and the peer the service ran on then.
    pub stopped: Option<(usize, String)>,
    /// The peer keeping the service's standby.
    pub standby: Option<String>,
    /// The daemon's resident memory noted before a load, in KiB.
    pub rss_before_kib: Option<u64>,
    /// `/health` latencies while a load ran (`Err`: no answer), in milliseconds.
    pub health_polls: Vec<Result<f64, String>>,
    /// A public port chosen for port scenarios.
    pub public_port: Option<u16>,
    /// The address a published port was shown at.
    pub endpoint: Option<String>,
    /// The S3 server of storage scenarios (killed on drop).
    pub s3: Option<dms_storage::testing::S3Server>,
    /// The network namespaces of the NAT scenario (deleted on drop, after the daemons).
    pub nat: Option<super::steps_nat::NatLab>,
    /// The SSH hosts of the SSH devnet scenario (removed on drop, after `devnet down`).
    pub ssh: Option<super::steps_ssh::SshLab>,
    /// The receiver of telemetry scenarios (Elasticsearch `_bulk`, OTLP/HTTP).
    pub telemetry: Option<dms_telemetry::testing::Receiver>,
    /// The Prometheus server of telemetry scenarios (killed on drop).
    pub prometheus: Option<super::steps_telemetry::Prometheus>,
    /// The HTTP server of the VM images (stopped on drop).
    pub vm_images: Option<super::steps_vm::ImageServer>,
    /// The headless browser of dashboard scenarios (closed on drop).
    pub browser: Option<super::steps_dashboard::Browser>,
    /// The last dashboard login URL.
    pub dashboard_url: Option<String>,
}

impl Drop for DmsWorld {
    fn drop(&mut self) {
        if self.devnet.is_some()
            && let Some(home) = self.homes.first()
        {
            let _ = std::process::Command::new(super::daemon::DMS)
                .arg("--home")
                .arg(home.path().join("home"))
                .args(["devnet", "down"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        // Containers outlive their provider (as in production): remove the ones a
        // killed node left behind, and every other container of this scenario's devnet
        // nodes (each node's Docker scope is `dms-<last 16 characters of its peer id>`),
        // so that scenarios do not leak them.
        let mut filters: Vec<String> =
            self.deployment.iter().map(|id| format!("label=dms.deployment={id}")).collect();
        let nodes = self.devnet.as_ref().and_then(|d| d["nodes"].as_array().cloned());
        for node in nodes.unwrap_or_default() {
            if let Some(peer) = node["peer_id"].as_str() {
                let scope = &peer[peer.len().saturating_sub(16)..];
                filters.push(format!("label=dms.executor=dms-{scope}"));
            }
        }
        for filter in filters {
            remove_containers(&filter);
        }
        // VMs outlive their provider too: kill those of this scenario's nodes.
        for home in &self.homes {
            kill_vms(home.path());
        }
    }
}

/// Kills the hypervisors whose command line names a VM directory under `root`.
fn kill_vms(root: &std::path::Path) {
    let needle = root.display().to_string();
    for pid in live_processes(|cmdline| cmdline.contains(&needle) && cmdline.contains("/vm/vms/")) {
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// PIDs of live (not zombie) processes whose command line (arguments joined by NUL)
/// `matching` accepts.
pub fn live_processes(matching: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path())))
        .filter(|(_, path)| {
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            let zombie = std::fs::read_to_string(path.join("stat"))
                .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
            !zombie && matching(&String::from_utf8_lossy(&cmdline))
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Removes every container matching the `docker ps` filter `filter`.
fn remove_containers(filter: &str) {
    let listed =
        std::process::Command::new("docker").args(["ps", "-aq", "--filter", filter]).output();
    let Ok(listed) = listed else { return };
    let ids: Vec<String> =
        String::from_utf8_lossy(&listed.stdout).split_whitespace().map(String::from).collect();
    if !ids.is_empty() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl DmsWorld {
    fn new() -> Self {
        DmsWorld {
            homes: Vec::new(),
            api_addr: "127.0.0.1:0".into(),
            last: None,
            daemons: Vec::new(),
            key_file_before: None,
            vector_did: None,
            store: None,
            results: Vec::new(),
            dids: Default::default(),
            tokens: Default::default(),
            token_order: Vec::new(),
            revocation: None,
            devnet: None,
            deployment: None,
            orchestrator: 0,
            ssh: None,
            contract: None,
            free_before: Vec::new(),
            stopped: None,
            standby: None,
            rss_before_kib: None,
            health_polls: Vec::new(),
            public_port: None,
            endpoint: None,
            s3: None,
            nat: None,
            telemetry: None,
            prometheus: None,
            vm_images: None,
            browser: None,
            dashboard_url: None,
        }
    }

    /// Adds a fresh temporary home and returns its path.
    pub fn add_home(&mut self) -> PathBuf {
        let dir = tempfile::Builder::new().prefix("dms-accept-").tempdir().expect("tempdir");
        let path = dir.path().join("home");
        self.homes.push(dir);
        path
    }

    /// The path of home `index`.
    pub fn home(&self, index: usize) -> PathBuf {
        self.homes.get(index).expect("scenario created this home").path().join("home")
    }

    /// The last one-shot command; panics when none ran.
    pub fn last(&self) -> &Run {
        self.last.as_ref().expect("a command ran in this scenario")
    }

    /// The key file of `name` in home 0.
    pub fn key_file(&self, name: &str) -> PathBuf {
        key_file(&self.home(0), name)
    }
}

/// The key file of `name` in `home`.
pub fn key_file(home: &Path, name: &str) -> PathBuf {
    home.join("keys").join(format!("{name}.json"))
}
