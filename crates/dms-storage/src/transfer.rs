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
    if already_there(&file.dest, *size, md5.as_deref()).await {
        done.fetch_add(*size, Ordering::Relaxed);
        return Ok(());
    }
    let failed = |reason: String| Error::Transfer { object: object.clone(), reason };
    let partial = partial_path(&file.dest);
    // A partial file left by a crash goes first (removing a link removes the link).
    let _ = tokio::fs::remove_file(&partial).await;
    let result = async {
        let response = http.get(url).send().await.map_err(|e| failed(reqwest_reason(e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(failed("the object is gone (404)".into()));
        }
        if !status.is_success() {
            return Err(failed(refused(status)));
        }
        let mut out = create_new(&partial)
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

/// A regular file (not a link) of `size` bytes is at `dest` already, with MD5 `md5`
/// where one is known: staged before a restart of the same allocation.
async fn already_there(dest: &Path, size: u64, md5: Option<&str>) -> bool {
    let meta = tokio::fs::symlink_metadata(dest).await;
    if !meta.is_ok_and(|m| m.is_file() && m.len() == size) {
        return false;
    }
    let Some(expected) = md5 else { return true };
    let Ok(mut file) = open_nofollow(dest).await else { return false };
    let mut hash = md5::Md5::new();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        match file.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => hash.update(&buffer[..n]),
            Err(_) => return false,
        }
    }
    hex::encode(hash.finalize()) == expected
}

/// Creates `path`, which must not exist (not through a link).
async fn create_new(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .await
}

/// Opens `path` for reading, refusing a link.
async fn open_nofollow(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).await
}

/// A store's refusal of a presigned request, with what it most likely means.
fn refused(status: reqwest::StatusCode) -> String {
    if status == reqwest::StatusCode::FORBIDDEN {
        return format!(
            "the store answered {status}: the presigned URL was refused (it lasts {} min from \
             when the orchestrating node signed it, and the credentials must still be valid)",
            crate::plan::URL_TTL.as_secs() / 60
        );
    }
    format!("the store answered {status}")
}

/// Uploads the first `size` bytes of the file at `source` (the size the plan was made
/// for) as `upload` says, streaming and hashing them; also the ETag of each PUT (a
/// multipart upload's parts, which the caller completes or aborts). A link at `source`
/// is refused; a file that shrank fails the upload.
pub async fn upload(
    http: &reqwest::Client,
    source: &Path,
    size: u64,
    upload: &Upload,
    done: &Arc<AtomicU64>,
) -> Result<(Published, Vec<String>), Error> {
    let failed = |reason: String| Error::Transfer { object: upload.object.clone(), reason };
    let parts: Vec<(&str, u64, u64)> = match &upload.method {
        UploadMethod::Single { url } => vec![(url.as_str(), 0, size)],
        UploadMethod::Multipart { part_size, urls, .. } => {
            if (urls.len() as u64).saturating_mul(*part_size) < size {
                return Err(failed(format!(
                    "{} parts of {part_size} B cannot hold {size} B",
                    urls.len()
                )));
            }
            let part = |i: usize| {
                let start = i as u64 * part_size;
                (start, (*part_size).min(size.saturating_sub(start)))
            };
            urls.iter().enumerate().map(|(i, url)| (url.as_str(), part(i).0, part(i).1)).collect()
        }
    };
    let hash = Arc::new(std::sync::Mutex::new(sha2::Sha256::new()));
    let mut etags = Vec::with_capacity(parts.len());
    for (url, start, length) in parts {
        let mut file = open_nofollow(source)
            .await
            .map_err(|e| failed(format!("{}: {e}", source.display())))?;
        file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| failed(e.to_string()))?;
        let body = hashing_body(file, length, &hash, done);
        etags.push(put(http, url, body, length).await.map_err(failed)?);
    }
    let hash = hash.lock().map(|h| h.clone()).map_err(|_| failed("hash lost".into()))?;
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
        return Err(refused(status));
    }
    let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok());
    Ok(etag.unwrap_or_default().to_string())
}

/// A streamed body of the next `length` bytes of `file`, read a chunk at a time (memory
/// stays at one chunk whatever the part size), added to `hash` and counted into `done`.
fn hashing_body(
    file: tokio::fs::File,
    length: u64,
    hash: &Arc<std::sync::Mutex<sha2::Sha256>>,
    done: &Arc<AtomicU64>,
) -> reqwest::Body {
    let (hashing, done) = (hash.clone(), done.clone());
    let stream = futures::stream::try_unfold((file, length), move |(mut file, left)| {
        let (hashing, done) = (hashing.clone(), done.clone());
        async move {
            if left == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            let mut chunk = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
            let read = file.read(&mut chunk).await?;
            if read == 0 {
                let eof = "the file shrank while it was published";
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, eof));
            }
            chunk.truncate(read);
            if let Ok(mut h) = hashing.lock() {
                h.update(&chunk);
            }
            done.fetch_add(read as u64, Ordering::Relaxed);
            Ok(Some((Bytes::from(chunk), (file, left - read as u64))))
        }
    });
    reqwest::Body::wrap_stream(stream)
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
