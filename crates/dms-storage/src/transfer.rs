//! The provider's side: moving bytes through presigned URLs, without credentials.
//!
//! Staging ([`stage`]) is all-or-nothing per file: each object is written to a
//! `.dms-partial` file beside its destination, its size and (where the store gave one)
//! MD5 checked, and only then renamed into place; any failure removes the partial file
//! and fails the whole staging, so a workload never starts on half its inputs.
//! Publishing ([`upload`]) streams each file up once, hashing it (SHA-256) as it goes;
//! large files go in parts, and their upload is completed or aborted by the caller.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use dms_protocol::storage::{Fetch, Published, Upload, UploadMethod};
use futures::{StreamExt, TryStreamExt};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::Error;

/// Files fetched at once.
const PARALLEL: usize = 4;
/// Bytes read from disk per chunk of an upload.
const CHUNK: usize = 1 << 20;

/// One object to fetch, and the host file it goes to.
#[derive(Clone, Debug)]
pub struct Staging {
    /// What the orchestrator signed.
    pub fetch: Fetch,
    /// Where on the provider's disk.
    pub dest: PathBuf,
}

/// Fetches every file, [`PARALLEL`] at a time, adding the bytes received to `done` as
/// they arrive. A file already in place with the right size (a restart of the same
/// allocation) is not fetched again.
pub async fn stage(
    http: &reqwest::Client,
    files: Vec<Staging>,
    done: Arc<AtomicU64>,
) -> Result<(), Error> {
    futures::stream::iter(files.into_iter().map(|file| {
        let (http, done) = (http.clone(), done.clone());
        async move { fetch(&http, &file, &done).await }
    }))
    .buffer_unordered(PARALLEL)
    .try_collect::<Vec<()>>()
    .await
    .map(|_| ())
}

async fn fetch(http: &reqwest::Client, file: &Staging, done: &AtomicU64) -> Result<(), Error> {
    let Fetch { object, url, size, md5, .. } = &file.fetch;
    if tokio::fs::metadata(&file.dest).await.is_ok_and(|m| m.len() == *size) {
        done.fetch_add(*size, Ordering::Relaxed);
        return Ok(());
    }
    let failed = |reason: String| Error::Transfer { object: object.clone(), reason };
    if let Some(dir) = file.dest.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    }
    let partial = partial_path(&file.dest);
    let result = async {
        let response = http.get(url).send().await.map_err(|e| failed(reqwest_reason(e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(failed("the object is gone (404)".into()));
        }
        if !status.is_success() {
            return Err(failed(format!("the store answered {status}")));
        }
        let mut out = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| failed(format!("{}: {e}", partial.display())))?;
        let mut hash = md5::Md5::new();
        let mut received = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| failed(reqwest_reason(e)))?;
            received += chunk.len() as u64;
            if received > *size {
                return Err(failed(format!("more than the {size} bytes listed")));
            }
            hash.update(&chunk);
            out.write_all(&chunk).await.map_err(|e| failed(format!("writing: {e}")))?;
            done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        out.sync_all().await.map_err(|e| failed(format!("writing: {e}")))?;
        if received != *size {
            return Err(failed(format!("{received} bytes received of {size}")));
        }
        let got = hex::encode(hash.finalize());
        if let Some(expected) = md5
            && *expected != got
        {
            return Err(Error::Checksum {
                object: object.clone(),
                expected: expected.clone(),
                got,
            });
        }
        tokio::fs::rename(&partial, &file.dest).await.map_err(|e| failed(format!("{e}")))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

/// Uploads the file at `source` as `upload` says, hashing it; for a multipart upload,
/// also the parts' ETags (the caller completes or aborts it).
pub async fn upload(
    http: &reqwest::Client,
    source: &Path,
    upload: &Upload,
    done: &Arc<AtomicU64>,
) -> Result<(Published, Vec<String>), Error> {
    let failed = |reason: String| Error::Transfer { object: upload.object.clone(), reason };
    let mut file = tokio::fs::File::open(source)
        .await
        .map_err(|e| failed(format!("{}: {e}", source.display())))?;
    let size = file.metadata().await.map_err(|e| failed(e.to_string()))?.len();
    let mut hash = sha2::Sha256::new();
    let mut etags = Vec::new();
    match &upload.method {
        UploadMethod::Single { url } => {
            let (body, hashed) = hashing_body(file, size, done);
            put(http, url, body, size).await.map_err(failed)?;
            hash = hashed.lock().map(|h| h.clone()).map_err(|_| failed("hash lost".into()))?;
        }
        UploadMethod::Multipart { part_size, urls, .. } => {
            for (i, url) in urls.iter().enumerate() {
                let start = i as u64 * part_size;
                let length = (*part_size).min(size.saturating_sub(start));
                let mut part = vec![0u8; length as usize];
                file.seek(std::io::SeekFrom::Start(start))
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                file.read_exact(&mut part).await.map_err(|e| failed(e.to_string()))?;
                hash.update(&part);
                let etag =
                    put(http, url, reqwest::Body::from(part), length).await.map_err(failed)?;
                done.fetch_add(length, Ordering::Relaxed);
                etags.push(etag);
            }
        }
    }
    let sha256 = hex::encode(hash.finalize());
    Ok((Published { object: upload.object.clone(), size, sha256 }, etags))
}

/// One PUT; the ETag answered.
async fn put(
    http: &reqwest::Client,
    url: &str,
    body: reqwest::Body,
    length: u64,
) -> Result<String, String> {
    let response = http
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, length)
        .body(body)
        .send()
        .await
        .map_err(reqwest_reason)?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!(
            "the store answered {status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok());
    Ok(etag.unwrap_or_default().to_string())
}

/// A streamed body of `file` that hashes what it sends and counts it into `done`.
fn hashing_body(
    file: tokio::fs::File,
    size: u64,
    done: &Arc<AtomicU64>,
) -> (reqwest::Body, Arc<std::sync::Mutex<sha2::Sha256>>) {
    let hash = Arc::new(std::sync::Mutex::new(sha2::Sha256::new()));
    let (hashing, done) = (hash.clone(), done.clone());
    let stream = futures::stream::try_unfold((file, size), move |(mut file, left)| {
        let (hashing, done) = (hashing.clone(), done.clone());
        async move {
            if left == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            let mut chunk = vec![0u8; CHUNK.min(left as usize)];
            let read = file.read(&mut chunk).await?;
            if read == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank"));
            }
            chunk.truncate(read);
            if let Ok(mut h) = hashing.lock() {
                h.update(&chunk);
            }
            done.fetch_add(read as u64, Ordering::Relaxed);
            Ok(Some((Bytes::from(chunk), (file, left - read as u64))))
        }
    });
    (reqwest::Body::wrap_stream(stream), hash)
}

/// `<dest>.dms-partial`, where a file is fetched before it is complete.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".dms-partial");
    dest.with_file_name(name)
}

/// What went wrong with a request, without its URL (a presigned URL is a secret while it
/// lasts, and reqwest puts it in its messages).
fn reqwest_reason(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
