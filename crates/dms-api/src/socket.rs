//! The API's Unix socket (Docker's model): only those who may open the file may talk,
//! so its owner's CLI needs no token.
//!
//! The socket is bound with owner-only permissions (0600) — or 0660 and handed to
//! `api.socket_group`, for an operator who grants a group access. A stale socket left
//! by a crash is replaced; anything else at the path is refused. As a second check,
//! without a group a connecting process must run as the daemon's user (or root): its
//! credentials come from the kernel (`SO_PEERCRED`).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use crate::Error;

/// A bound API socket and who may use it.
pub(crate) struct Socket {
    pub listener: UnixListener,
    pub path: PathBuf,
    /// `None`: only the daemon's user (and root); `Some`: whoever the file admits.
    pub group: Option<u32>,
}

impl Socket {
    /// Binds `path`, owner-only unless `group` names a group to admit.
    pub(crate) fn bind(path: &Path, group: &str) -> Result<Socket, Error> {
        let failed = |source: io::Error| Error::Socket { path: path.to_path_buf(), source };
        let group = resolve_group(group).map_err(failed)?;
        remove_stale(path).map_err(failed)?;
        let listener = UnixListener::bind(path).map_err(failed)?;
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
        if let Some(gid) = group {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| failed(io::Error::from(e)))?;
        }
        Ok(Socket { listener, path: path.to_path_buf(), group })
    }

    /// Whether the process at the other end of `stream` may use the API.
    pub(crate) fn admits(&self, stream: &UnixStream) -> bool {
        if self.group.is_some() {
            return true;
        }
        let me = rustix::process::getuid().as_raw();
        stream.peer_cred().is_ok_and(|cred| cred.uid() == me || cred.uid() == 0)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The group id of `name` (a name or a number); `None` for an empty name.
fn resolve_group(name: &str) -> io::Result<Option<u32>> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Some(gid));
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(Some(group.gid.as_raw())),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no group {name:?} on this machine (api.socket_group)"),
        )),
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// Removes a socket file left at `path` by a daemon that crashed; refuses to remove
/// anything else, or the socket of a daemon that still answers.
fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another dms daemon answers on this socket; stop it, or set api.socket \
                     elsewhere",
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way; move it, or set api.socket elsewhere",
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}
