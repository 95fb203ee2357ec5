//! A real S3-compatible server for tests and benchmarks: `s3s-fs` (installed by
//! `.ci/run`; `DMS_S3S_FS` names another binary), on a free loopback port, serving a
//! temporary directory (one sub-directory per bucket), with SigV4 checked against one
//! access key. It is killed when dropped. A missing binary is an error, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dms_protocol::storage::Credentials;

/// A running `s3s-fs`.
pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The credentials it accepts.
    pub credentials: Credentials,
    /// The directory it serves (buckets are its sub-directories).
    pub dir: PathBuf,
    child: Child,
}

impl S3Server {
    /// Starts a server on `dir` with the buckets `buckets` created (empty).
    pub fn start(dir: &Path, buckets: &[&str]) -> Result<S3Server, String> {
        for bucket in buckets {
            std::fs::create_dir_all(dir.join(bucket)).map_err(|e| e.to_string())?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let credentials = Credentials {
            access_key_id: "DMSTESTACCESSKEY".into(),
            secret_access_key: format!(
                "dms-test-secret-{:016x}",
                std::process::id() as u64 * 7919 + port as u64
            ),
            session_token: None,
        };
        let binary = std::env::var("DMS_S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &credentials.access_key_id])
            .args(["--secret-key", &credentials.secret_access_key])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot run {binary}: {e} (install it: cargo install s3s-fs --version 0.14.1 --features binary --locked)")
            })?;
        let server = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            credentials,
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{binary} did not listen on port {port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// The store of an ensemble for `bucket` on this server.
    pub fn store(&self, bucket: &str) -> dms_ensemble::model::Store {
        dms_ensemble::model::Store {
            kind: dms_ensemble::model::StoreKind::S3,
            endpoint: Some(self.endpoint.clone()),
            bucket: bucket.into(),
            region: None,
        }
    }
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
