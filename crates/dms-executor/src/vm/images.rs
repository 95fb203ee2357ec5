//! Kernels, ramdisks and disk images: checked by SHA-256 and kept in a cache by checksum.
//!
//! A host file is used in place (its checksum checked when one is given). Bytes sent with
//! the deployment and downloads land in `<cache>/<sha256>`: a download goes to a partial
//! file, is hashed as it streams, checked, then renamed, so a crash or a wrong checksum
//! never leaves a half image under a checksum's name. An image whose checksum is given and
//! already cached is not downloaded again.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::spec::{ModuleSource, VmImage};

/// The image cache.
pub(crate) struct Images {
    dir: PathBuf,
    http: reqwest::Client,
    max_bytes: u64,
}

impl Images {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Images {
        // A server that stops sending fails the start instead of holding it forever.
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Images { dir, http, max_bytes }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes partial files a crashed download left.
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".partial-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// A local path holding `image`, named `what` (`kernel`, `initrd`, `rootfs`) in errors.
    pub async fn resolve(&self, what: &str, image: &VmImage) -> Result<PathBuf> {
        let expected = match &image.sha256 {
            Some(sum) => Some(checksum_arg(what, sum)?),
            None => None,
        };
        let fail =
            |name: &str, reason: String| Error::Image { image: format!("{what} {name}"), reason };
        match &image.source {
            ModuleSource::File(path) => {
                let name = path.display().to_string();
                if let Some(expected) = expected {
                    let actual = hash_file(path).await.map_err(|e| fail(&name, e))?;
                    check(&expected, &actual).map_err(|e| fail(&name, e))?;
                } else if !path.is_file() {
                    return Err(fail(&name, "no such file on this host".into()));
                }
                Ok(path.clone())
            }
            ModuleSource::Bytes(bytes) => {
                let actual = hex::encode(Sha256::digest(bytes));
                if let Some(expected) = &expected {
                    check(expected, &actual).map_err(|e| fail("<sent with the deployment>", e))?;
                }
                let path = self.dir.join(&actual);
                if !path.is_file() {
                    self.store(bytes, &actual).await.map_err(|e| fail("<bytes>", e))?;
                }
                Ok(path)
            }
            ModuleSource::Url(url) => {
                if let Some(cached) = expected.as_ref().map(|s| self.dir.join(s))
                    && cached.is_file()
                {
                    return Ok(cached);
                }
                self.download(url, expected.as_deref()).await.map_err(|e| fail(url, e))
            }
        }
    }

    async fn store(&self, bytes: &[u8], sum: &str) -> Result<(), String> {
        let partial = self.partial()?;
        tokio::fs::write(&partial, bytes).await.map_err(|e| format!("cannot cache it: {e}"))?;
        self.keep(&partial, sum).await.map(drop)
    }

    async fn download(&self, url: &str, expected: Option<&str>) -> Result<PathBuf, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("only http:// and https:// URLs can be downloaded".into());
        }
        let mut response =
            self.http.get(url).send().await.map_err(|e| format!("download failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("download failed: HTTP {}", response.status()));
        }
        let partial = self.partial()?;
        let result = async {
            let mut file = tokio::fs::File::create(&partial).await.map_err(|e| e.to_string())?;
            let (mut hasher, mut size) = (Sha256::new(), 0u64);
            while let Some(chunk) =
                response.chunk().await.map_err(|e| format!("download failed: {e}"))?
            {
                size += chunk.len() as u64;
                if size > self.max_bytes {
                    return Err(format!(
                        "larger than the {} MiB a VM image may be on this provider",
                        self.max_bytes >> 20
                    ));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(|e| format!("cannot cache it: {e}"))?;
            }
            file.sync_all().await.map_err(|e| format!("cannot cache it: {e}"))?;
            let actual = hex::encode(hasher.finalize());
            if let Some(expected) = expected {
                check(expected, &actual)?;
            }
            self.keep(&partial, &actual).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// A fresh partial file name in the cache (created with the directory).
    fn partial(&self) -> Result<PathBuf, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create the image cache {}: {e}", self.dir.display()))?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.dir.join(format!(".partial-{}-{n}", std::process::id())))
    }

    /// Renames a complete partial file to its checksum's name.
    async fn keep(&self, partial: &Path, sum: &str) -> Result<PathBuf, String> {
        let path = self.dir.join(sum);
        tokio::fs::rename(partial, &path).await.map_err(|e| format!("cannot cache it: {e}"))?;
        Ok(path)
    }
}

/// A checksum as given: 64 hex digits, optionally after `sha256:`.
fn checksum_arg(what: &str, sum: &str) -> Result<String> {
    let hex = sum.trim().trim_start_matches("sha256:").to_ascii_lowercase();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(Error::InvalidSpec(format!("{what}: {sum:?} is not a SHA-256 (64 hex digits)")))
    }
}

fn check(expected: &str, actual: &str) -> Result<(), String> {
    if expected == actual {
        Ok(())
    } else {
        Err(format!("its SHA-256 is {actual}, not the {expected} the deployment asks for"))
    }
}

async fn hash_file(path: &Path) -> Result<String, String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path).map_err(|e| format!("cannot read it: {e}"))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut file, &mut buffer)
                .map_err(|e| format!("cannot read it: {e}"))?;
            if n == 0 {
                return Ok(hex::encode(hasher.finalize()));
            }
            hasher.update(&buffer[..n]);
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_are_cached_by_checksum_and_a_wrong_checksum_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let images = Images::new(dir.path().join("cache"), 1 << 20);
        let sum = hex::encode(Sha256::digest(b"kernel"));
        let image = |sha256: Option<String>| VmImage {
            source: ModuleSource::Bytes(b"kernel".to_vec()),
            sha256,
        };
        let path = images.resolve("kernel", &image(Some(format!("sha256:{sum}")))).await;
        assert_eq!(path.expect("cached"), dir.path().join("cache").join(&sum));
        let wrong = "0".repeat(64);
        let error = images.resolve("kernel", &image(Some(wrong))).await.expect_err("refused");
        assert!(error.to_string().contains("its SHA-256 is"), "{error}");
        let error = images.resolve("kernel", &image(Some("abc".into()))).await.expect_err("bad");
        assert!(error.to_string().contains("not a SHA-256"), "{error}");
        let file = VmImage { source: ModuleSource::File(dir.path().join("none")), sha256: None };
        let error = images.resolve("initrd", &file).await.expect_err("missing");
        assert!(error.to_string().contains("initrd"), "{error}");
    }
}
