//! The `[api]` section of the node configuration.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the local API listens and whom it admits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the API listens on. Loopback by default; other daemons on the same
    /// machine pick another port.
    pub addr: SocketAddr,
    /// Admit clients that are not on loopback. Off by default: even when `addr` is a
    /// public address, non-loopback peers are refused unless this is on.
    pub allow_remote: bool,
    /// Bearer token that non-loopback clients must present when `allow_remote` is on.
    /// Loopback clients never need it.
    pub token: String,
    /// Longest time one request may take before it is answered with 408.
    #[serde(with = "dms_types::units::serde_duration")]
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The Unix socket the API also serves, owner-only (empty: `$DMS_HOME/api.sock`,
    /// filled in by the daemon; `off`: none). Its clients need no token.
    pub socket: String,
    /// A group (name or id) whose members may use the socket too (mode 0660); empty:
    /// the daemon's user only.
    pub socket_group: String,
    /// The token loopback clients must present; set by the daemon at start (and written
    /// 0600 to its home), never read from the file. `None`: loopback is trusted.
    #[serde(skip)]
    pub local_token: Option<String>,
}

/// Shortest bearer token accepted for remote access.
pub const MIN_TOKEN_LEN: usize = 16;

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: default_addr(),
            allow_remote: false,
            token: String::new(),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            socket: String::new(),
            socket_group: String::new(),
            local_token: None,
        }
    }
}

/// The default listen address, `127.0.0.1:9999`.
pub fn default_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9999))
}

impl Config {
    /// The socket to serve, `None` when `socket` is empty (not filled in) or `off`.
    pub fn socket_path(&self) -> Option<std::path::PathBuf> {
        let socket = self.socket.trim();
        (!socket.is_empty() && socket != "off").then(|| socket.into())
    }

    /// Checks the rules that span several keys. Returns a sentence naming the keys.
    pub fn validate(&self) -> Result<(), String> {
        if self.allow_remote && self.token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "api.allow_remote is true but api.token is {}: set api.token to a secret of at \
                 least {MIN_TOKEN_LEN} characters, or set api.allow_remote to false",
                if self.token.is_empty() { "empty" } else { "too short" }
            ));
        }
        if self.max_body_bytes == 0 {
            return Err("api.max_body_bytes must be greater than 0".into());
        }
        Ok(())
    }
}
