//! Allocation actor → its orchestrator: what lets a provider move a deployment's data
//! without holding the user's credentials. The orchestrating node (the user's) holds
//! them; a provider asks it for URLs presigned for exactly the declared objects.
//!
//! | Behavior | Request → answer |
//! |---|---|
//! | `/dms/deployment/storage/inputs` | [`InputsRequest`] → [`InputPlan`]: a GET URL per object to stage |
//! | `/dms/deployment/storage/put` | [`PutRequest`] → [`PutPlan`]: PUT URLs (one, or one per part) per file |
//! | `/dms/deployment/storage/complete` | [`CompleteRequest`] → [`Completed`]: finishes or aborts a multipart upload |
//!
//! The orchestrator grants an allocation `/dms/deployment/storage` with
//! `/dms/deployment/update`, answers only the allocation's own actor, and maps each
//! file to its key itself from the ensemble's `outputs` (a path outside them is refused).

use serde::{Deserialize, Serialize};

use crate::Request;

/// The storage behaviors' common prefix (what the orchestrator grants).
pub const STORAGE: &str = "/dms/deployment/storage";
/// Behavior: presigned GETs of an allocation's inputs.
pub const STORAGE_INPUTS: &str = "/dms/deployment/storage/inputs";
/// Behavior: presigned PUTs of an allocation's output files.
pub const STORAGE_PUT: &str = "/dms/deployment/storage/put";
/// Behavior: complete or abort a multipart upload.
pub const STORAGE_COMPLETE: &str = "/dms/deployment/storage/complete";

/// How an allocation's status message begins while it publishes on request, and once
/// it has (anything else after a request is the reason it could not).
pub const PUBLISHING: &str = "publishing outputs";
/// See [`PUBLISHING`].
pub const PUBLISHED: &str = "published";

/// Most files one [`InputPlan`] carries (a presigned URL is about 1 KiB; an answer
/// must stay well within one message).
pub const INPUT_PAGE: usize = 256;

/// The inputs of `allocation`, as URLs to fetch, a page at a time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputsRequest {
    /// The deployment.
    pub deployment: String,
    /// The allocation's name.
    pub allocation: String,
    /// The first file wanted (0, then an earlier answer's `next`).
    #[serde(default)]
    pub from: usize,
}

/// What to fetch before the workload starts: up to [`INPUT_PAGE`] files.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InputPlan {
    /// The objects from `from` on, prefixes expanded.
    pub files: Vec<Fetch>,
    /// Where the next page starts, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<usize>,
}

/// One object to fetch.
#[derive(Clone, Serialize, Deserialize)]
pub struct Fetch {
    /// `<store>:<key>`, for messages.
    pub object: String,
    /// A presigned GET URL (a secret for its lifetime: not logged).
    pub url: String,
    /// The path inside the workload to write it to.
    pub to: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MD5, hex, when the store's ETag is one (not for multipart uploads).
    #[serde(default)]
    pub md5: Option<String>,
}

/// URLs to upload `files` of `allocation` (a provider asks for one file at a time, so
/// that an answer stays within one message and its URLs are fresh when used).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PutRequest {
    /// The deployment.
    pub deployment: String,
    /// The allocation's name.
    pub allocation: String,
    /// The files, by their path inside the workload.
    pub files: Vec<PutFile>,
}

/// A file to publish.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PutFile {
    /// Its path inside the workload (under one of the allocation's `outputs`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// How to upload each file, in the order asked.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PutPlan {
    /// One per file.
    pub uploads: Vec<Upload>,
}

impl std::fmt::Debug for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetch")
            .field("object", &self.object)
            .field("url", &"<presigned>")
            .field("to", &self.to)
            .field("size", &self.size)
            .field("md5", &self.md5)
            .finish()
    }
}

/// How to upload one file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Upload {
    /// The file's path inside the workload.
    pub path: String,
    /// `<store>:<key>` it is published as.
    pub object: String,
    /// One PUT, or parts.
    pub method: UploadMethod,
}

/// One PUT, or a multipart upload. Debug output leaves the URLs out.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMethod {
    /// PUT the whole file to `url`.
    Single {
        /// Presigned PUT.
        url: String,
    },
    /// PUT part `i` (bytes `i * part_size ..`) to `urls[i]`, then complete.
    Multipart {
        /// The store's id of the upload.
        upload_id: String,
        /// Bytes per part (the last one is shorter).
        part_size: u64,
        /// Presigned part PUTs.
        urls: Vec<String>,
    },
}

impl std::fmt::Debug for UploadMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadMethod::Single { .. } => f.write_str("Single { url: <presigned> }"),
            UploadMethod::Multipart { upload_id, part_size, urls } => f
                .debug_struct("Multipart")
                .field("upload_id", upload_id)
                .field("part_size", part_size)
                .field("urls", &format!("<{} presigned>", urls.len()))
                .finish(),
        }
    }
}

/// Finish (with the parts' ETags) or abort a multipart upload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// The deployment.
    pub deployment: String,
    /// The allocation's name.
    pub allocation: String,
    /// The file's path inside the workload (as in its [`Upload`]).
    pub path: String,
    /// The upload.
    pub upload_id: String,
    /// The ETag each part's PUT answered, in order; ignored by an abort.
    #[serde(default)]
    pub etags: Vec<String>,
    /// Abort instead.
    #[serde(default)]
    pub abort: bool,
}

/// A multipart upload was completed or aborted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Completed {}

/// One published object, as the deployment record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// `<store>:<key>`.
    pub object: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

impl Request for InputsRequest {
    const BEHAVIOR: &'static str = STORAGE_INPUTS;
    type Response = InputPlan;
}

impl Request for PutRequest {
    const BEHAVIOR: &'static str = STORAGE_PUT;
    type Response = PutPlan;
}

impl Request for CompleteRequest {
    const BEHAVIOR: &'static str = STORAGE_COMPLETE;
    type Response = Completed;
}

/// S3 credentials, sent by `dms deploy` to its own node only (the environment's
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and held there in
/// memory. Debug output redacts the secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
