//! An encrypted keystore: one directory, one JSON file per named key.
//!
//! * Key `<name>` lives in `<dir>/<name>.json`, a JSON object (format
//!   version 1) with `version`, `name`, `key_type`, `did`, `created_at`
//!   (Unix seconds), `kdf` (`{"alg":"scrypt","log_n":15,"r":8,"p":1,"salt":<hex>}`)
//!   and `cipher` (`{"alg":"xchacha20poly1305","nonce":<hex>,"ciphertext":<hex>}`).
//!   The 32-byte secret is encrypted with XChaCha20-Poly1305 under a key
//!   derived by scrypt from the passphrase; the header (name, key type, DID,
//!   creation time) is the associated data, so editing it is detected.
//!   Names match `[A-Za-z0-9._-]{1,64}` and do not start with `.`, so a name
//!   can never escape the directory or collide with a temporary file.
//! * The directory is created with mode `0700`, key files with mode `0600`.
//! * Files are written atomically: the content goes to a temporary file
//!   (`.<name>.json.tmp-<random>`, mode `0600`) in the same directory, which
//!   is fsynced and then published under its final name without ever
//!   replacing an existing file; finally the directory is fsynced. A crash
//!   leaves either no key or the complete key, never a partial file.
//! * Reading never writes: a wrong passphrase or a corrupt file leaves the
//!   directory untouched.
//! * The public part (name, key type, DID, creation time) is stored in clear,
//!   so [`Keystore::info`] and [`Keystore::list`] need no passphrase. It is
//!   authenticated when the key is loaded.

mod format;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::did::Did;
use crate::error::Error;
use crate::key::{KeyPair, KeyType, fill_random};

use format::{KeyFile, MAX_FILE_LEN};

/// Mode of the keystore directory when this crate creates it.
const DIR_MODE: u32 = 0o700;
/// Mode of every key file.
const FILE_MODE: u32 = 0o600;
/// Extension of key files.
const EXTENSION: &str = ".json";
/// Longest key name.
const MAX_NAME_LEN: usize = 64;

/// The public description of a stored key (no secret, no passphrase needed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's name in the keystore.
    pub name: String,
    /// The key's algorithm.
    pub key_type: KeyType,
    /// The key's did:key.
    pub did: Did,
    /// When the key was stored, in seconds since the Unix epoch.
    pub created_at: u64,
}

/// A directory of passphrase-encrypted keys.
#[derive(Clone, Debug)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// Opens the keystore in `dir`, creating the directory (and missing
    /// parents) with mode `0700` if it does not exist. An existing directory's
    /// permissions are left as they are.
    ///
    /// # Errors
    /// [`Error::Io`] if the path exists but is not a directory, or cannot be
    /// inspected or created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Keystore, Error> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::io(
                    "use as the keystore directory",
                    dir,
                    io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "the path exists but is not a directory",
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(&dir)
                    .map_err(|e| Error::io("create the keystore directory", &dir, e))?;
                // The umask may have removed bits; make the mode exact.
                fs::set_permissions(&dir, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(|e| Error::io("set permissions on the keystore directory", &dir, e))?;
            }
            Err(e) => return Err(Error::io("access the keystore directory", dir, e)),
        }
        Ok(Keystore { dir })
    }

    /// The keystore directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) key `name`: `<dir>/<name>.json`.
    ///
    /// This only computes a path; it does not validate `name`. Every other
    /// method rejects invalid names before touching the file system.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{EXTENSION}"))
    }

    /// Whether a key named `name` is stored. Invalid names are never stored.
    pub fn exists(&self, name: &str) -> bool {
        validate_name(name).is_ok() && fs::symlink_metadata(self.path(name)).is_ok()
    }

    /// Encrypts `pair` under `passphrase` and stores it as `name`.
    ///
    /// # Errors
    /// [`Error::InvalidKeyName`]; [`Error::KeyExists`] if the name is taken
    /// (an existing key is never overwritten, even by a concurrent writer);
    /// [`Error::Io`] or [`Error::Randomness`] on system failures.
    pub fn create(&self, name: &str, pair: &KeyPair, passphrase: &str) -> Result<KeyInfo, Error> {
        validate_name(name)?;
        let path = self.path(name);
        if fs::symlink_metadata(&path).is_ok() {
            return Err(key_exists(name, path));
        }
        let created_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let file = KeyFile::seal(name, pair, passphrase, created_at)?;
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| Error::Internal {
            reason: format!("cannot serialise the key file: {e}"),
        })?;
        bytes.push(b'\n');
        self.write_new(name, &path, &bytes)?;
        Ok(KeyInfo { name: name.to_owned(), key_type: file.key_type, did: file.did, created_at })
    }

    /// Decrypts and returns key `name`. Never modifies any file.
    ///
    /// # Errors
    /// [`Error::InvalidKeyName`]; [`Error::KeyNotFound`];
    /// [`Error::WrongPassphrase`] if decryption fails (wrong passphrase, or an
    /// edited header or ciphertext); [`Error::CorruptKeyFile`] if the file is
    /// malformed or holds another key than its DID says; [`Error::Io`].
    pub fn load(&self, name: &str, passphrase: &str) -> Result<KeyPair, Error> {
        let (path, file) = self.read(name)?;
        file.open(&path, passphrase)
    }

    /// The public description of key `name`, read without decrypting.
    ///
    /// # Errors
    /// [`Error::InvalidKeyName`]; [`Error::KeyNotFound`];
    /// [`Error::CorruptKeyFile`]; [`Error::Io`].
    pub fn info(&self, name: &str) -> Result<KeyInfo, Error> {
        let (_, file) = self.read(name)?;
        Ok(KeyInfo {
            name: file.name,
            key_type: file.key_type,
            did: file.did,
            created_at: file.created_at,
        })
    }

    /// All stored keys, sorted by name.
    ///
    /// Hidden files (including leftover temporary files), files not ending in
    /// `.json`, files whose stem is not a valid key name, and directories are
    /// skipped.
    ///
    /// # Errors
    /// [`Error::CorruptKeyFile`] naming the first unreadable key file;
    /// [`Error::Io`] if the directory cannot be read.
    pub fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| Error::io("read the keystore directory", &self.dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::io("read the keystore directory", &self.dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(EXTENSION)) else {
                continue;
            };
            if validate_name(name).is_err() {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            names.push(name.to_owned());
        }
        names.sort();

        let mut infos = Vec::with_capacity(names.len());
        for name in names {
            match self.info(&name) {
                Ok(info) => infos.push(info),
                // Removed between listing and reading: not a key any more.
                Err(Error::KeyNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(infos)
    }

    /// Reads and parses the key file of `name` (header checked, not decrypted).
    fn read(&self, name: &str) -> Result<(PathBuf, KeyFile), Error> {
        validate_name(name)?;
        let path = self.path(name);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::KeyNotFound { name: name.to_owned(), dir: self.dir.clone() });
            }
            Err(e) => return Err(Error::io("open the key file", path, e)),
        };
        let meta = file.metadata().map_err(|e| Error::io("inspect the key file", &path, e))?;
        if !meta.is_file() {
            return Err(Error::corrupt(&path, "it is not a regular file"));
        }
        let mut bytes = Vec::new();
        (&mut file)
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read the key file", &path, e))?;
        if bytes.len() as u64 > MAX_FILE_LEN {
            return Err(Error::corrupt(&path, format!("it is larger than {MAX_FILE_LEN} bytes")));
        }
        let key_file = KeyFile::parse(&path, &bytes, name)?;
        Ok((path, key_file))
    }

    /// Atomically publishes `bytes` as the new file `path` (key `name`).
    fn write_new(&self, name: &str, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let mut temp = TempFile::create(&self.dir, name)?;
        temp.file
            .write_all(bytes)
            .and_then(|()| temp.file.sync_all())
            .map_err(|e| Error::io("write the temporary key file", &temp.path, e))?;

        // A hard link publishes the complete file under its final name and,
        // unlike rename, fails instead of replacing a file that appeared
        // meanwhile. File systems without hard links fall back to rename.
        match fs::hard_link(&temp.path, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(key_exists(name, path.to_owned()));
            }
            Err(_) => {
                if fs::symlink_metadata(path).is_ok() {
                    return Err(key_exists(name, path.to_owned()));
                }
                fs::rename(&temp.path, path)
                    .map_err(|e| Error::io("move the key file into place", path, e))?;
                temp.published = true;
            }
        }
        drop(temp); // removes the temporary name if it is still there
        sync_dir(&self.dir)
    }
}

/// Checks the key name rule: `[A-Za-z0-9._-]{1,64}`, not starting with `.`.
pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid { Ok(()) } else { Err(Error::InvalidKeyName { name: name.to_owned() }) }
}

fn key_exists(name: &str, path: PathBuf) -> Error {
    Error::KeyExists { name: name.to_owned(), path }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync the keystore directory", dir, e))
}

/// A freshly created temporary file, removed on drop unless it was renamed
/// into place.
struct TempFile {
    path: PathBuf,
    file: File,
    published: bool,
}

impl TempFile {
    fn create(dir: &Path, name: &str) -> Result<TempFile, Error> {
        let mut suffix = [0u8; 8];
        fill_random(&mut suffix)?;
        let path = dir.join(format!(".{name}{EXTENSION}.tmp-{}", hex::encode(suffix)));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| Error::io("create a temporary key file in", dir, e))?;
        let temp = TempFile { path, file, published: false };
        // The umask may have removed bits; make the mode exact.
        temp.file
            .set_permissions(fs::Permissions::from_mode(FILE_MODE))
            .map_err(|e| Error::io("set permissions on", &temp.path, e))?;
        Ok(temp)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.published {
            // Best effort: a leftover hidden temp file is ignored by `list`.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests;
