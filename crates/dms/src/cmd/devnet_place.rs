//! Where a devnet node runs — this machine's loopback, a network namespace of an
//! isolated devnet, or another host over SSH — and how a dms command, a signal or a
//! liveness check reaches it there.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use rustix::process::Signal;

use super::devnet_ssh::Remote;

/// Where a node runs.
#[derive(Clone, Debug)]
pub(super) enum Place {
    /// On this machine, on loopback.
    Here,
    /// In a network namespace of this machine (`ip netns exec`).
    Netns(String),
    /// On another host, over SSH.
    Host(Remote),
}

impl Place {
    /// A command running dms with `args` and `env` at this place.
    pub fn command(&self, args: &[String], env: &[(String, String)]) -> anyhow::Result<Command> {
        let exe = || std::env::current_exe().context("cannot find the dms binary");
        let mut command = match self {
            Place::Here => Command::new(exe()?),
            Place::Netns(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(exe()?);
                command
            }
            Place::Host(remote) => return Ok(remote.dms(args, env)),
        };
        command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        // The caller's own settings are not the node's.
        for key in ["DMS_API_ADDR", "DMS_API_TOKEN"] {
            if !env.iter().any(|(k, _)| k == key) {
                command.env_remove(key);
            }
        }
        Ok(command)
    }

    /// The local API token the daemon of `home` wrote, read where it runs.
    pub fn token(&self, home: &Path) -> Option<String> {
        match self {
            Place::Host(remote) => {
                let path = dms_node::home::Home::new(home).token_path();
                let text = remote.read(&path.to_string_lossy())?;
                let token = String::from_utf8_lossy(&text).trim().to_string();
                (!token.is_empty()).then_some(token)
            }
            _ => dms_node::home::Home::new(home).token(),
        }
    }

    /// Whether process `pid` runs there.
    pub fn alive(&self, pid: u32) -> bool {
        match self {
            Place::Host(remote) => remote.alive(pid),
            _ => alive(pid),
        }
    }

    /// Sends `signal` to process `pid` there.
    pub fn signal(&self, pid: u32, signal: Signal) {
        match self {
            Place::Host(remote) => {
                remote.signal(pid, if signal == Signal::KILL { "KILL" } else { "TERM" })
            }
            _ => {
                if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, signal);
                }
            }
        }
    }

    /// Runs dms as the owner of `home` with `args`, with the local API token of the
    /// daemon of `daemon_home` when it has one; its stdout on success.
    pub fn dms(
        &self,
        home: &Path,
        args: &[&str],
        passphrase: &str,
        daemon_home: &Path,
    ) -> anyhow::Result<String> {
        let mut full = vec!["--home".to_string(), home.to_string_lossy().into_owned()];
        full.extend(args.iter().map(|a| a.to_string()));
        let mut env = vec![("DMS_PASSPHRASE".to_string(), passphrase.to_string())];
        if let Some(token) = self.token(daemon_home) {
            env.push(("DMS_API_TOKEN".into(), token));
        }
        let output =
            self.command(&full, &env)?.stdin(Stdio::null()).output().context("cannot run dms")?;
        if !output.status.success() {
            bail!(
                "`dms --home {} {}` failed: {}",
                home.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

/// Whether process `pid` runs on this machine. A node this process started and that
/// has exited is reaped first (a zombie still answers signals, and would look alive).
pub(super) fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    // Not our child: ECHILD, nothing to reap.
    let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
    rustix::process::test_kill_process(pid).is_ok()
}
