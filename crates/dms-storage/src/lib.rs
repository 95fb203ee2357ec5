//! Storage for deployments: volumes every executor mounts, inputs staged in from
//! S3-compatible stores before a workload starts, outputs published to them when it
//! ends — with the user's credentials kept on the user's own node.
//!
//! # Module map
//! - [`s3`]: one bucket through `object_store`, with credentials: check, list, head,
//!   presign, multipart create/complete/abort (the orchestrating node).
//! - [`plan`]: the ensemble's stores ([`Stores`]): verified at submission; the plans a
//!   provider is given — presigned GETs of its inputs, presigned PUTs at the keys the
//!   ensemble's `outputs` give its files (nothing else is signed).
//! - [`transfer`]: the provider's side: all-or-nothing staging with size and MD5
//!   checks, uploads hashed with SHA-256 (multipart for large files).
//! - [`volume`]: volume directories on the provider's disk, workload paths mapped to
//!   them, removal when the allocation ends and after a crash.
//!
//! - [`testing`]: a real S3 server (`s3s-fs`) for tests and benchmarks.
//!
//! Threat model: see the crate README.

pub mod plan;
pub mod s3;
pub mod testing;
pub mod transfer;
pub mod volume;

pub use plan::Stores;
pub use s3::Bucket;
pub use volume::{Placed, Volumes};

/// What went wrong with storage, worded for the user who must act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ensemble uses stores but no credentials came with it.
    #[error(
        "the ensemble uses storage ({stores}) but no credentials came with it: set \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment of `dms deploy` \
         (or storage.access_key_id and storage.secret_access_key in the node's config)"
    )]
    NoCredentials {
        /// The stores named.
        stores: String,
    },
    /// The store refused the credentials.
    #[error(
        "{store} refused the credentials: {reason}; check AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY in the environment of `dms deploy`"
    )]
    Credentials {
        /// Which store.
        store: String,
        /// What it said.
        reason: String,
    },
    /// An input names an object (or a prefix with no objects) that is not there.
    #[error("input {object}: {} in {bucket}", if *prefix { "no object under this prefix" } else { "no such object" })]
    Missing {
        /// `<store>:<key>`.
        object: String,
        /// Which store.
        bucket: String,
        /// It was a prefix.
        prefix: bool,
    },
    /// The store failed otherwise.
    #[error("{store}: {reason}")]
    Store {
        /// Which store.
        store: String,
        /// What it said.
        reason: String,
    },
    /// A transfer failed.
    #[error("{object}: {reason}")]
    Transfer {
        /// `<store>:<key>`.
        object: String,
        /// Why.
        reason: String,
    },
    /// A staged object's content does not match its checksum.
    #[error(
        "{object}: MD5 {got} does not match the store's ETag {expected}; not staged (a bucket \
         that encrypts with SSE-KMS or SSE-C has ETags that are not MD5s)"
    )]
    Checksum {
        /// `<store>:<key>`.
        object: String,
        /// The store's.
        expected: String,
        /// Received.
        got: String,
    },
    /// A path the ensemble does not allow to be read or written.
    #[error("{path}: {reason}")]
    Outside {
        /// The path or reference.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A volume cannot be placed or is over its size.
    #[error("volume: {0}")]
    Volume(String),
}
