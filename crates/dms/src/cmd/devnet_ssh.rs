//! Devnet nodes on other machines (`dms devnet up --hosts hosts.toml`): each host is
//! reached over SSH (the system's `ssh`, key authentication only), gets a copy of this
//! dms binary and of the devnet user's home under its work directory, and runs its node
//! there; every command for that node (`cli`, `deploy`, the set-up, the collection at
//! `down`) runs on its host, where the node's API listens on loopback.
//!
//! ```toml
//! [ssh]                                # defaults for every host (all optional)
//! user = "root"
//! port = 22
//! identity = "/root/.ssh/id_ed25519"
//! options = ["StrictHostKeyChecking=accept-new"]
//!
//! [[host]]                             # one per node, node 0 first
//! address = "203.0.113.10"             # where ssh connects and the node listens
//! location = "eu-west"                 # optional: its deployment.location
//! workdir = "/var/tmp/dms-devnet"      # optional: default /tmp/dms-devnet-<tag>-n<i>
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// `hosts.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    #[serde(default)]
    ssh: SshOptions,
    host: Vec<HostEntry>,
}

/// SSH settings for every host.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SshOptions {
    user: Option<String>,
    port: Option<u16>,
    identity: Option<PathBuf>,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    address: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    workdir: Option<String>,
    user: Option<String>,
    port: Option<u16>,
    identity: Option<PathBuf>,
    #[serde(default)]
    options: Vec<String>,
}

/// One host of the devnet and how to reach it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Remote {
    /// Where ssh connects, and the address the node listens on.
    pub address: String,
    /// The login.
    pub user: String,
    /// The SSH port.
    pub port: u16,
    /// The private key, when not ssh's default.
    #[serde(default)]
    pub identity: Option<PathBuf>,
    /// More `-o` options.
    #[serde(default)]
    pub options: Vec<String>,
    /// Its work directory: the binary, the node's home, the devnet user's home.
    pub workdir: String,
    /// Its location label.
    #[serde(default)]
    pub location: Option<String>,
}

/// Reads `hosts.toml`: one [`Remote`] per node, in order. `tag` names the default work
/// directories.
pub fn load_hosts(file: &Path, tag: &str) -> anyhow::Result<Vec<Remote>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let hosts: HostsFile =
        toml::from_str(&text).with_context(|| format!("{} is not a hosts file", file.display()))?;
    if hosts.host.is_empty() || hosts.host.len() > 16 {
        bail!(
            "{}: a devnet has 1 to 16 hosts ([[host]] entries), not {}",
            file.display(),
            hosts.host.len()
        );
    }
    Ok(hosts
        .host
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let mut options = hosts.ssh.options.clone();
            options.extend(h.options);
            Remote {
                address: h.address,
                user: h.user.or(hosts.ssh.user.clone()).unwrap_or_else(|| "root".into()),
                port: h.port.or(hosts.ssh.port).unwrap_or(22),
                identity: h.identity.or(hosts.ssh.identity.clone()),
                options,
                workdir: h.workdir.unwrap_or_else(|| format!("/tmp/dms-devnet-{tag}-n{i}")),
                location: h.location,
            }
        })
        .collect())
}

/// `s` quoted for the remote shell.
pub(super) fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", s.replace('\'', "")))
}

impl Remote {
    /// `ssh` with this host's options, up to the destination.
    pub fn ssh(&self) -> Command {
        let mut command = Command::new("ssh");
        command.args([
            "-p",
            &self.port.to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ]);
        if let Some(identity) = &self.identity {
            command.arg("-i").arg(identity);
        }
        for option in &self.options {
            command.args(["-o", option]);
        }
        command.arg(format!("{}@{}", self.user, self.address)).stdin(Stdio::null());
        command
    }

    /// The remote path of `relative` under the work directory.
    pub fn path(&self, relative: &str) -> String {
        format!("{}/{relative}", self.workdir.trim_end_matches('/'))
    }

    /// The command that runs this host's dms copy with `args` and `env`.
    pub fn dms(&self, args: &[String], env: &[(String, String)]) -> Command {
        let mut words = vec!["env".to_string()];
        words.extend(env.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
        words.push(quote(&self.path("dms")));
        words.extend(args.iter().map(|a| quote(a)));
        let mut command = self.ssh();
        command.arg(words.join(" "));
        command
    }

    /// Runs `script` on the host; its stdout.
    pub fn run(&self, script: &str) -> anyhow::Result<String> {
        let out = self
            .ssh()
            .arg(script)
            .output()
            .context("cannot run ssh (apt-get install openssh-client)")?;
        if !out.status.success() {
            bail!(
                "on {}: `{script}` failed ({}): {}",
                self.address,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Copies the local file `from` to `to` on the host (through a temporary name, then
    /// renamed: a file being replaced is never seen half-written), with `mode`.
    pub fn copy(&self, from: &Path, to: &str, mode: &str) -> anyhow::Result<()> {
        let bytes =
            std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
        let tmp = format!("{to}.part");
        let script = format!(
            "mkdir -p {dir} && cat > {t} && chmod {mode} {t} && mv -f {t} {to}",
            dir = quote(Path::new(to).parent().map_or("/", |p| p.to_str().unwrap_or("/"))),
            t = quote(&tmp),
            to = quote(to),
        );
        let mut child =
            self.ssh().arg(script).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        child.stdin.take().map(|mut s| s.write_all(&bytes)).transpose()?;
        let out = child.wait_with_output()?;
        self.copied(out.status.success(), from, to, &out.stderr)
    }

    /// The content of a file on the host (`None` when it cannot be read).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let out = self.ssh().arg(format!("cat {}", quote(path))).output().ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// Whether process `pid` runs on the host.
    pub fn alive(&self, pid: u32) -> bool {
        self.run(&format!("kill -0 {pid}")).is_ok()
    }

    /// Sends `signal` (`TERM`, `KILL`) to process `pid` on the host.
    pub fn signal(&self, pid: u32, signal: &str) {
        let _ = self.run(&format!("kill -{signal} {pid}"));
    }

    /// Starts this host's dms detached (`nohup`, its own session), appending to `log`;
    /// its pid.
    pub fn spawn(
        &self,
        args: &[String],
        env: &[(String, String)],
        log: &str,
    ) -> anyhow::Result<u32> {
        let mut words = vec!["env".to_string()];
        words.extend(env.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
        words.push(quote(&self.path("dms")));
        words.extend(args.iter().map(|a| quote(a)));
        let script = format!(
            "setsid nohup {} >> {} 2>&1 < /dev/null & echo $!",
            words.join(" "),
            quote(log)
        );
        let pid = self.run(&script)?;
        pid.trim()
            .parse()
            .with_context(|| format!("on {}: no pid from the start of dms: {pid:?}", self.address))
    }
}

/// A local port forwarded to a port on a host's loopback (`ssh -N -L`), closed on drop.
pub struct Tunnel {
    child: std::process::Child,
    /// The local end, `127.0.0.1:PORT`.
    pub local: String,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Remote {
    /// Forwards a free local port to `port` on the host's loopback; returns once the
    /// local end accepts connections.
    pub fn tunnel(&self, port: u16) -> anyhow::Result<Tunnel> {
        let local_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let local = format!("127.0.0.1:{local_port}");
        let mut command = self.ssh();
        command.args([
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            &format!("{local}:127.0.0.1:{port}"),
        ]);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run ssh")?;
        let mut tunnel = Tunnel { child, local };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(&tunnel.local).is_ok() {
                return Ok(tunnel);
            }
            if let Some(status) = tunnel.child.try_wait()? {
                let mut err = String::new();
                if let Some(mut stderr) = tunnel.child.stderr.take() {
                    use std::io::Read as _;
                    let _ = stderr.read_to_string(&mut err);
                }
                bail!("the SSH tunnel to {}:{port} ended ({status}): {}", self.address, err.trim());
            }
            if std::time::Instant::now() > deadline {
                bail!("the SSH tunnel to {}:{port} did not open within 15 s", self.address);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Copies the local folder `from` into `to` on the host (tar over ssh).
    pub fn copy_dir(&self, from: &Path, to: &str) -> anyhow::Result<()> {
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(from)
            .args(["-cf", "-", "."])
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run tar")?;
        let out = self
            .ssh()
            .arg(format!("mkdir -p {to} && tar -C {to} -xf -", to = quote(to)))
            .stdin(tar.stdout.take().context("tar's output")?)
            .output()
            .context("cannot run ssh")?;
        let tarred = tar.wait()?;
        self.copied(out.status.success() && tarred.success(), from, to, &out.stderr)
    }

    /// The outcome of a copy to the host, with ssh's error output when it failed.
    fn copied(&self, ok: bool, from: &Path, to: &str, stderr: &[u8]) -> anyhow::Result<()> {
        if !ok {
            bail!(
                "copying {} to {}:{to} failed: {}",
                from.display(),
                self.address,
                String::from_utf8_lossy(stderr).trim()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_take_defaults_and_their_own_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hosts.toml");
        std::fs::write(
            &file,
            "[ssh]\nuser = \"dms\"\nidentity = \"/k\"\noptions = [\"A=1\"]\n\n[[host]]\naddress = \"10.0.0.1\"\n\n\
             [[host]]\naddress = \"10.0.0.2\"\nport = 2222\nlocation = \"eu\"\noptions = [\"B=2\"]\n",
        )
        .expect("write");
        let hosts = load_hosts(&file, "abc").expect("hosts");
        assert_eq!(hosts.len(), 2);
        assert_eq!((hosts[0].user.as_str(), hosts[0].port), ("dms", 22));
        assert_eq!(hosts[0].workdir, "/tmp/dms-devnet-abc-n0");
        assert_eq!(hosts[1].port, 2222);
        assert_eq!(hosts[1].options, ["A=1", "B=2"]);
        assert_eq!(hosts[1].location.as_deref(), Some("eu"));
        std::fs::write(&file, "[[host]]\naddres = \"x\"\n").expect("write");
        assert!(load_hosts(&file, "t").is_err(), "a misspelt key is refused");
    }

    #[test]
    fn remote_commands_are_quoted_for_the_shell() {
        let remote = Remote {
            address: "h".into(),
            user: "root".into(),
            port: 22,
            identity: None,
            options: vec![],
            workdir: "/w d".into(),
            location: None,
        };
        let command =
            remote.dms(&["--home".into(), "/w d/node-0".into()], &[("K".into(), "a b".into())]);
        let last =
            command.get_args().last().expect("the remote command").to_string_lossy().into_owned();
        assert_eq!(last, "env 'K=a b' '/w d/dms' --home '/w d/node-0'");
    }
}
