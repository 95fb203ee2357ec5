//! Starting one devnet node where it runs (here, in a namespace, on a host): its log
//! (appended to, so a restart keeps the evidence of a crash), the `dms run` process,
//! its limits from the first step, and the wait for its ready line.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

use super::devnet::DevnetNode;
use super::devnet_net::Isolation;
use super::devnet_place::Place;

/// How long a node may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn field(line: &str, name: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .map(|v| v.trim_matches('"').to_string())
}

/// Where a node runs: its place (this machine, a namespace, a host), the address it
/// listens on there, its location label.
#[derive(Clone, Debug)]
pub(super) struct Spot {
    /// Where it runs.
    pub place: Place,
    /// The address it listens on.
    pub ip: String,
    /// Its `deployment.location`.
    pub location: Option<String>,
    /// The CPU and memory limits it runs under (an isolated devnet's, as node `i`).
    pub limit: Option<(Isolation, usize)>,
}

impl Spot {
    /// The spot a node had (to start it again the same way).
    pub(super) fn of(node: &DevnetNode) -> Spot {
        let ip = match &node.remote {
            Some(remote) => remote.address.clone(),
            None => node
                .addrs
                .first()
                .and_then(|a| a.split('/').nth(2))
                .filter(|_| node.netns.is_some())
                .unwrap_or("127.0.0.1")
                .to_string(),
        };
        Spot { place: node.place(), ip, location: node.location.clone(), limit: None }
    }
}

/// The log of a node being started: where it is, and how far it was before this start.
struct StartLog {
    place: Place,
    path: PathBuf,
    start: usize,
}

impl StartLog {
    /// Opens (makes) the log at `place`, notes its length, and appends a line saying
    /// when `name` starts again.
    fn open(place: &Place, home: &Path, name: &str) -> anyhow::Result<StartLog> {
        let path = home.join("dms.log");
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let line = format!("=== dms devnet: {name} starting at {now} ===");
        let start = match place {
            Place::Host(remote) => {
                let log = path.to_string_lossy();
                let size = remote.run(&format!(
                    "mkdir -p '{dir}' && touch '{log}' && stat -c %s '{log}' && echo '{line}' >> '{log}'",
                    dir = home.display()
                ))?;
                size.trim()
                    .parse()
                    .with_context(|| format!("size of {log} on {}: {size:?}", remote.address))?
            }
            _ => {
                use std::io::Write as _;
                let mut log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let start = log.metadata().map(|m| m.len() as usize).unwrap_or(0);
                writeln!(log, "{line}")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                start
            }
        };
        Ok(StartLog { place: place.clone(), path, start })
    }

    /// This start's lines so far.
    fn text(&self) -> String {
        let bytes = match &self.place {
            Place::Host(remote) => remote.read(&self.path.to_string_lossy()).unwrap_or_default(),
            _ => std::fs::read(&self.path).unwrap_or_default(),
        };
        String::from_utf8_lossy(bytes.get(self.start..).unwrap_or_default()).into_owned()
    }
}

/// Starts `dms run` for `home` at `spot`, detached (its own process group or session),
/// appending to `<home>/dms.log` (a restarted node keeps its earlier log, the evidence
/// of a crash, after a line saying when it started again); waits for its ready line.
pub(super) fn start_node(
    name: &str,
    home: &Path,
    spot: &Spot,
    bootstrap: Option<&str>,
    passphrase: &str,
) -> anyhow::Result<DevnetNode> {
    let log = StartLog::open(&spot.place, home, name)?;
    let mut args: Vec<String> = vec!["--home".into(), home.to_string_lossy().into_owned()];
    args.extend(["--api-addr", "127.0.0.1:0", "run", "--listen"].map(String::from));
    args.push(format!("/ip4/{}/tcp/0", spot.ip));
    if let Some(bootstrap) = bootstrap {
        args.extend(["--bootstrap".to_string(), bootstrap.to_string()]);
    }
    let mut env: Vec<(String, String)> = vec![
        ("DMS_PASSPHRASE".into(), passphrase.into()),
        ("DMS_NETWORK_MDNS".into(), "false".into()),
        ("RUST_LOG".into(), std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())),
        ("NO_COLOR".into(), "1".into()),
    ];
    if let Some(location) = &spot.location {
        env.push(("DMS_DEPLOYMENT_LOCATION".into(), location.clone()));
    }
    // The nodes share one machine: benchmarking it once per node, all at once, measures
    // contention and writes a disk test file per node (up to 1 GiB each). Skipped
    // unless the user asks for it with DMS_NODE_BENCHMARK_BUDGET.
    let budget = std::env::var("DMS_NODE_BENCHMARK_BUDGET").unwrap_or_else(|_| "0s".into());
    env.push(("DMS_NODE_BENCHMARK_BUDGET".into(), budget));
    let pid = spawn(&spot.place, &args, &env, &log.path)?;
    // Limited from its first steps, not from when it is ready.
    if let Some((isolation, i)) = &spot.limit
        && let Err(error) = isolation.limit(*i, pid)
    {
        spot.place.signal(pid, rustix::process::Signal::KILL);
        return Err(error);
    }
    let started = Instant::now();
    loop {
        // Only this start's lines: an earlier run's ready line is not this one's.
        let text = log.text();
        if let Some(line) = text.lines().find(|l| l.contains("dms ready")) {
            let get =
                |n: &str| field(line, n).ok_or_else(|| anyhow!("{name}: ready line without {n}="));
            return Ok(DevnetNode {
                name: name.into(),
                home: home.to_path_buf(),
                pid,
                api: get("api")?,
                did: get("did")?,
                peer_id: get("peer_id")?,
                addrs: get("addrs")?.split(',').map(String::from).collect(),
                netns: match &spot.place {
                    Place::Netns(ns) => Some(ns.clone()),
                    _ => None,
                },
                location: spot.location.clone(),
                remote: match &spot.place {
                    Place::Host(remote) => Some(remote.clone()),
                    _ => None,
                },
            });
        }
        if !spot.place.alive(pid) || started.elapsed() > READY_TIMEOUT {
            spot.place.signal(pid, rustix::process::Signal::KILL);
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            bail!(
                "{name} did not become ready (log {}):\n{}",
                log.path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(if matches!(spot.place, Place::Host(_)) {
            300
        } else {
            100
        }));
    }
}

/// Starts `dms args` at `place` in the background, its output appended to `log`; its pid.
fn spawn(
    place: &Place,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt as _;
    if let Place::Host(remote) = place {
        return remote.spawn(args, env, &log.to_string_lossy());
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let child = place
        .command(args, env)?
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .context("cannot start dms run")?;
    Ok(child.id())
}
