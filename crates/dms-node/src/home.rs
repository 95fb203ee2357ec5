//! The dms home directory and what lives in it.
//!
//! ```text
//! $DMS_HOME/            (default ~/.dms, mode 0700)
//! ├── config.toml       configuration, created with comments on first use
//! ├── keys/             encrypted keystore, one 0600 file per key
//! └── db/dms.redb       embedded database (path set by store.path)
//! ```

use std::path::{Path, PathBuf};

/// A dms home directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home at `root` (not created until [`Home::ensure`]).
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// `~/.dms`, when the user's home directory is known.
    pub fn default_root() -> Option<PathBuf> {
        std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".dms"))
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The keystore directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// `daemon.json`: written by a running daemon once its API listens (its pid and API
    /// address), removed when it stops. The CLI reads it to tell "the daemon of this home
    /// holds the store" (use its API) from "another CLI command holds it" (wait).
    pub fn daemon_path(&self) -> PathBuf {
        self.root.join("daemon.json")
    }

    /// The running daemon of this home as `daemon.json` records it, if the file is there
    /// and its process is alive.
    pub fn daemon(&self) -> Option<Daemon> {
        let text = std::fs::read_to_string(self.daemon_path()).ok()?;
        let daemon: Daemon = serde_json::from_str(&text).ok()?;
        let alive = std::path::Path::new(&format!("/proc/{}", daemon.pid)).exists();
        alive.then_some(daemon)
    }

    /// Records the running daemon (atomically: written aside, then renamed).
    pub fn write_daemon(&self, daemon: &Daemon) -> std::io::Result<()> {
        let path = self.daemon_path();
        let aside = path.with_extension("json.tmp");
        std::fs::write(&aside, serde_json::to_vec(daemon).map_err(std::io::Error::other)?)?;
        std::fs::rename(aside, path)
    }

    /// The API's Unix socket for the configured `api.socket`: `$DMS_HOME/api.sock` when
    /// it is empty, `None` when it is `off`.
    pub fn socket_path(&self, api: &dms_api::Config) -> Option<PathBuf> {
        match api.socket.trim() {
            "" => Some(self.root.join("api.sock")),
            _ => api.socket_path(),
        }
    }

    /// `api.token`: the token the daemon's local API asks of loopback clients, written
    /// by the daemon at each start, readable by this home's user only (0600).
    pub fn token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }

    /// The local API token, if a daemon of this home wrote one.
    pub fn token(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.token_path()).ok()?;
        let token = text.trim();
        (!token.is_empty()).then(|| token.to_string())
    }

    /// Writes a fresh local API token (0600 from the start, then renamed into place).
    pub fn write_token(&self, token: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.token_path();
        let aside = path.with_extension("token.tmp");
        let _ = std::fs::remove_file(&aside);
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&aside)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(aside, path)
    }

    /// Forgets the daemon record (the daemon stopped).
    pub fn remove_daemon(&self) {
        let _ = std::fs::remove_file(self.daemon_path());
    }

    /// Creates the home directory (mode 0700) if it is missing.
    pub fn ensure(&self) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !self.root.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.root)?;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
}

/// What `daemon.json` records of a running daemon.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Daemon {
    /// Its process id.
    pub pid: u32,
    /// Where its API listens.
    pub api: std::net::SocketAddr,
}
