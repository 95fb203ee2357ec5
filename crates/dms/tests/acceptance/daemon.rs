//! Running the real `dms` binary: one-shot commands and daemons.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The binary under test.
pub const DMS: &str = env!("CARGO_BIN_EXE_dms");

/// How long any wait may take (`DMS_TEST_PATIENCE_SECS`, default 30 s).
pub fn patience() -> Duration {
    let secs = std::env::var("DMS_TEST_PATIENCE_SECS").ok().and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(30))
}

/// The result of a one-shot command.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `dms --home HOME <args>` to completion with extra environment variables.
pub async fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_in(None, home, args, env).await
}

/// [`run`] inside network namespace `netns` when given (`ip netns exec`).
pub async fn run_in(netns: Option<&str>, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns, DMS]);
            command
        }
        None => Command::new(DMS),
    };
    command.arg("--home").arg(home).args(args).stdin(Stdio::null()).kill_on_drop(true);
    command.env_remove("DMS_PASSPHRASE").env_remove("DMS_API_ADDR").env_remove("RUST_LOG");
    command.env_remove("DMS_API_SOCKET").env_remove("DMS_API_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(patience(), command.output())
        .await
        .expect("dms command timed out")
        .expect("dms binary runs");
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What a daemon said when it became ready.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Its DID.
    pub did: String,
    /// Where its API listens.
    pub api: SocketAddr,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its listen multiaddrs (with `/p2p/<peer id>`).
    pub addrs: Vec<String>,
}

/// A `dms run` process.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    line_rx: mpsc::UnboundedReceiver<String>,
    /// Set once the daemon logged "dms ready".
    pub ready: Option<Ready>,
    /// Set once the process exited.
    pub exit: Option<ExitStatus>,
}

fn field(line: &str, name: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .map(|v| v.trim_matches('"').to_string())
}

impl Daemon {
    /// Starts `dms --home HOME --api-addr API run` with the passphrase in the environment.
    pub fn start(home: &Path, api_addr: &str, passphrase: &str) -> Daemon {
        Daemon::start_with(home, api_addr, passphrase, &[])
    }

    /// Like [`Daemon::start`], with more `dms run` arguments (e.g. `--bootstrap`).
    pub fn start_with(home: &Path, api_addr: &str, passphrase: &str, extra: &[&str]) -> Daemon {
        let mut command = Command::new(DMS);
        command.args(["--home"]).arg(home).args(["--api-addr", api_addr, "run"]);
        command.args(["--listen", "/ip4/127.0.0.1/tcp/0"]).args(extra);
        Daemon::spawn(command, passphrase)
    }

    /// `dms run` inside network namespace `netns` (`ip netns exec`), listening on `listen`.
    pub fn start_in(
        netns: &str,
        home: &Path,
        listen: &str,
        passphrase: &str,
        extra: &[&str],
    ) -> Daemon {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns, DMS, "--home"]).arg(home);
        command.args(["--api-addr", "127.0.0.1:0", "run", "--listen", listen]).args(extra);
        Daemon::spawn(command, passphrase)
    }

    fn spawn(mut command: Command, passphrase: &str) -> Daemon {
        let mut child = command
            .env("DMS_PASSPHRASE", passphrase)
            .env("RUST_LOG", "info")
            .env("DMS_NETWORK_MDNS", "false")
            // Scenarios that onboard would each start a background benchmark; the
            // benchmarking feature runs `dms benchmark` itself.
            .env("DMS_NODE_BENCHMARK_BUDGET", "0s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("dms binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, line_rx) = mpsc::unbounded_channel();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().expect("log lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        Daemon { child, lines, line_rx, ready: None, exit: None }
    }

    /// Waits until the daemon is ready or has exited, whichever comes first.
    pub async fn wait_ready_or_exit(&mut self) {
        let deadline = tokio::time::Instant::now() + patience();
        while self.ready.is_none() && self.exit.is_none() {
            tokio::select! {
                line = self.line_rx.recv() => match line {
                    Some(line) if line.contains("dms ready") => {
                        let did = field(&line, "did").expect("ready line has did=");
                        let api = field(&line, "api").expect("ready line has api=");
                        let peer_id = field(&line, "peer_id").unwrap_or_default();
                        let addrs = field(&line, "addrs")
                            .map(|a| a.split(',').filter(|a| !a.is_empty()).map(String::from).collect())
                            .unwrap_or_default();
                        self.ready = Some(Ready {
                            did,
                            api: api.parse().expect("api= is HOST:PORT"),
                            peer_id,
                            addrs,
                        });
                    }
                    Some(_) => {}
                    None => {
                        self.exit = Some(self.child.wait().await.expect("wait for dms"));
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    panic!("dms neither became ready nor exited within {:?}; log:\n{}", patience(), self.log());
                }
            }
        }
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let status = tokio::time::timeout(patience(), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("dms did not exit; log:\n{}", self.log()))
            .expect("wait for dms");
        // Let the reader drain the last lines.
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(200), self.line_rx.recv()).await
        {}
        self.exit = Some(status);
        status
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id().expect("daemon is running") as i32;
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -{signal} {pid} failed");
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("daemon is running")
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().expect("log lock").join("\n")
    }

    /// The ready information; panics with the log if the daemon is not ready.
    pub fn ready(&self) -> &Ready {
        self.ready.as_ref().unwrap_or_else(|| panic!("daemon not ready; log:\n{}", self.log()))
    }
}
