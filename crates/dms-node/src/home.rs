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
