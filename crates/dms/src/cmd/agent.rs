//! `dms agent start | status | lock`: the key agent ([`crate::agent`]).
//!
//! `start` reads each key's passphrase here (from `DMS_PASSPHRASE` or the terminal) and
//! hands them, over a pipe, to a detached `dms agent serve` that unlocks the keys and
//! answers on `<home>/agent.sock`; it returns once the agent is ready (or says which key
//! did not unlock). Signed commands then ask the agent instead of unlocking the key.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use dms_crypto::Keystore;
use zeroize::Zeroizing;

use super::Ctx;
use crate::agent::{self, Request};
use crate::cli::AgentCommand;

/// Runs a `dms agent` command.
pub async fn agent(ctx: &Ctx, command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Start { lifetime, keys } => start(ctx, lifetime_of(&lifetime)?, &keys),
        AgentCommand::Status => status(ctx),
        AgentCommand::Lock => lock(ctx),
        AgentCommand::Serve { lifetime } => serve(ctx, lifetime_of(&lifetime)?).await,
    }
}

fn lifetime_of(text: &str) -> anyhow::Result<Duration> {
    let lifetime = dms_types::units::parse_duration(text)
        .map_err(|e| anyhow!("--for {text:?}: {e} (e.g. 15m or 2h)"))?;
    if lifetime.is_zero() || lifetime > Duration::from_secs(24 * 3600) {
        bail!("--for {text}: between 1s and 24h");
    }
    Ok(lifetime)
}

fn start(ctx: &Ctx, lifetime: Duration, names: &[String]) -> anyhow::Result<()> {
    let home = ctx.home.root();
    if let Some(Ok(answer)) = agent::ask(home, &Request::Status) {
        bail!(
            "a key agent already runs here (locks in {}); `dms agent lock` stops it",
            dms_types::units::format_duration(Duration::from_secs(answer.locks_in_s.unwrap_or(0)))
        );
    }
    let keystore = Keystore::open(ctx.home.keys_dir())?;
    let mut infos = keystore.list()?;
    for name in names {
        if !infos.iter().any(|k| &k.name == name) {
            bail!("no key '{name}' in {} (see `dms key list`)", keystore.dir().display());
        }
    }
    infos.retain(|k| names.is_empty() || names.contains(&k.name));
    if infos.is_empty() {
        bail!("no key in {} to keep unlocked", keystore.dir().display());
    }
    let mut passphrases: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    for info in &infos {
        passphrases.insert(info.name.clone(), crate::passphrase::read(&info.name, false)?);
    }
    let exe = std::env::current_exe().context("cannot find the dms binary")?;
    let mut child = std::process::Command::new(exe)
        .arg("--home")
        .arg(home)
        .args(["agent", "serve", "--for", &format!("{}s", lifetime.as_secs())])
        .env_remove(crate::passphrase::ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C in this terminal does not stop it.
        .process_group(0)
        .spawn()
        .context("cannot start the key agent")?;
    let plain: BTreeMap<&str, &str> =
        passphrases.iter().map(|(n, p)| (n.as_str(), p.as_str())).collect();
    let mut line = Zeroizing::new(serde_json::to_vec(&plain)?);
    line.push(b'\n');
    let mut stdin = child.stdin.take().context("the agent's input")?;
    stdin.write_all(&line).context("cannot hand the passphrases to the agent")?;
    drop(stdin);
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().context("the agent's output")?);
    stdout.read_line(&mut first)?;
    match first.trim() {
        "ready" => {}
        "" => bail!("the key agent exited before it was ready"),
        other => bail!("{}", other.trim_start_matches("error: ")),
    }
    let names: Vec<&str> = infos.iter().map(|k| k.name.as_str()).collect();
    println!(
        "key agent started: {} ({}) unlocked for {}; `dms agent lock` forgets them now",
        names.join(", "),
        agent::socket_path(home).display(),
        dms_types::units::format_duration(lifetime)
    );
    Ok(())
}

fn status(ctx: &Ctx) -> anyhow::Result<()> {
    match agent::ask(ctx.home.root(), &Request::Status) {
        None => println!("no key agent runs here (`dms agent start` starts one)"),
        Some(answer) => {
            let answer = answer?;
            let left = Duration::from_secs(answer.locks_in_s.unwrap_or(0));
            println!(
                "key agent: {} key(s), locks in {}",
                answer.dids.len(),
                dms_types::units::format_duration(left)
            );
            for did in answer.dids {
                println!("  {did}");
            }
        }
    }
    Ok(())
}

fn lock(ctx: &Ctx) -> anyhow::Result<()> {
    match agent::ask(ctx.home.root(), &Request::Lock) {
        None => println!("no key agent runs here"),
        Some(answer) => {
            answer?;
            println!("key agent locked: its keys are forgotten");
        }
    }
    Ok(())
}

/// The agent process: passphrases on stdin, `ready` (or `error: …`) on stdout, then
/// serving until it locks.
async fn serve(ctx: &Ctx, lifetime: Duration) -> anyhow::Result<()> {
    let mut input = Zeroizing::new(String::new());
    std::io::stdin().read_to_string(&mut input)?;
    let given: BTreeMap<String, String> = serde_json::from_str(&input)?;
    let passphrases: Vec<(String, Zeroizing<String>)> =
        given.into_iter().map(|(name, p)| (name, Zeroizing::new(p))).collect();
    let keystore = Keystore::open(ctx.home.keys_dir())?;
    let mut keys = Vec::new();
    let mut out = std::io::stdout();
    for (name, passphrase) in passphrases.iter() {
        match keystore.load(name, passphrase) {
            Ok(key) => keys.push(key),
            Err(e) => {
                writeln!(out, "error: key '{name}': {e}")?;
                return Ok(());
            }
        }
    }
    drop(passphrases);
    let socket = agent::socket_path(ctx.home.root());
    let listener = match agent::bind(&socket) {
        Ok(listener) => listener,
        Err(e) => {
            writeln!(out, "error: {e:#}")?;
            return Ok(());
        }
    };
    writeln!(out, "ready")?;
    out.flush()?;
    agent::serve(listener, &socket, keys, lifetime).await
}

/// `dms bench signed-calls`: `dms devnet cli peers list` timed without, then with, the key
/// agent (started and locked here).
pub fn bench(ctx: &Ctx, runs: usize, devnet: &std::path::Path) -> anyhow::Result<()> {
    let home = ctx.home.root();
    if agent::ask(home, &Request::Status).is_some() {
        bail!("a key agent already runs here: `dms agent lock` first, so both sides are measured");
    }
    let exe = std::env::current_exe().context("cannot find the dms binary")?;
    let call = || -> anyhow::Result<f64> {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(&exe)
            .arg("devnet")
            .arg("cli")
            .arg("--dir")
            .arg(devnet)
            .args(["peers", "list"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        if !out.status.success() {
            bail!("dms devnet cli peers list failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    let measure = |label: &str| -> anyhow::Result<Vec<f64>> {
        call()?; // warm-up
        let mut times = (0..runs).map(|_| call()).collect::<anyhow::Result<Vec<f64>>>()?;
        times.sort_by(f64::total_cmp);
        println!(
            "{label}: p50 {:.1} ms, p90 {:.1} ms",
            super::bench::percentile(&times, 50.0),
            super::bench::percentile(&times, 90.0)
        );
        Ok(times)
    };
    let without = measure("without the agent")?;
    start(ctx, Duration::from_secs(600), &[])?;
    let with = measure("with the agent");
    lock(ctx)?;
    let with = with?;
    let (a, b) = (super::bench::percentile(&with, 50.0), super::bench::percentile(&without, 50.0));
    println!(
        "signed call `dms devnet cli peers list`, {runs} runs each: with/without agent p50 ratio {:.2} ({a:.1} ms vs {b:.1} ms)",
        a / b
    );
    Ok(())
}
