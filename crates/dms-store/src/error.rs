//! The crate's error type.
//!
//! Every fallible operation in `dms-store` returns [`Error`]. Each variant documents what the
//! caller may assume about the state of the database when it is returned.

use std::path::PathBuf;

/// Errors returned by `dms-store`.
///
/// Unless a variant says otherwise, an error returned from inside [`crate::Store::write`] aborts
/// the transaction: nothing it wrote becomes visible or durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database file is held by another process (or by another [`crate::Store`] of this
    /// process). Nothing was opened or modified; opening again after the other holder exits
    /// succeeds.
    #[error(
        "database {} is locked: another dms may be running on this home (stop it, or use another home)",
        path.display()
    )]
    Locked {
        /// The database file that could not be locked.
        path: PathBuf,
    },

    /// A filesystem operation around opening the database failed (creating its parent
    /// directories, opening or creating the file: permissions, missing mount, disk full). Nothing
    /// was opened.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The path the operation was applied to.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file exists but cannot be opened as a database: it is not a redb file, it is
    /// corrupted beyond repair, or it was written in a file format that needs an upgrade. The
    /// file was not modified by this attempt beyond what redb's own repair does.
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The error reported by redb.
        #[source]
        source: redb::DatabaseError,
    },

    /// The storage engine failed while beginning a transaction, opening a table, reading or
    /// writing. A write transaction in which this happens is aborted, so nothing of it was
    /// committed. I/O errors reported here may make the store refuse further writes until it is
    /// reopened.
    #[error("storage error: {0}")]
    Storage(#[source] redb::Error),

    /// Committing a write transaction failed. The changes were applied atomically (entirely or
    /// not at all) but it is unknown which: they may already be durable, so the caller must not
    /// assume they were rolled back. After this error the store refuses further write
    /// transactions; drop every clone of the [`crate::Store`] and reopen it, which repairs the
    /// file.
    #[error("commit failed: {0}")]
    Commit(#[source] redb::CommitError),

    /// [`crate::Store::write`] was called on a store from inside a write transaction of the same
    /// store on the same thread, which would deadlock. Nothing was done by the inner call; the
    /// outer transaction is unaffected unless the error is propagated out of it.
    #[error("nested write transaction: Store::write called from inside a write of the same store")]
    NestedWrite,

    /// A table or collection name is not acceptable (see [`crate::Repo::new`] and
    /// [`crate::Store::collection`] for the rules). Nothing was read or written.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// What was being named: `"table"` or `"collection"`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A document field path (such as `"spec.resources.cpu"`) is malformed: empty, or with an
    /// empty segment. Nothing was read or written.
    #[error("invalid field path {field:?}: {reason}")]
    InvalidField {
        /// The rejected path.
        field: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A [`crate::Query`] cannot be evaluated: a range bound is an array or an object, or the
    /// two bounds of a range have different JSON types. Nothing was read.
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// Why the query was rejected.
        reason: String,
    },

    /// A value could not be serialized to JSON for storage (for example a map with non-string
    /// keys). Nothing was written for it.
    #[error("cannot encode value for key {key:?} in table {table:?}: {source}")]
    Encode {
        /// The table (or collection) being written.
        table: String,
        /// The key (or document id) being written.
        key: String,
        /// The serialization error.
        #[source]
        source: serde_json::Error,
    },

    /// A stored value could not be deserialized into the requested type: the stored data was
    /// written with an incompatible schema, or a table is being read with the wrong value type.
    /// The stored data is left untouched.
    #[error("cannot decode value for key {key:?} in table {table:?}: {source}")]
    Decode {
        /// The table (or collection) being read.
        table: String,
        /// The key (or document id) whose value failed to decode.
        key: String,
        /// The deserialization error.
        #[source]
        source: serde_json::Error,
    },

    /// An error raised by the caller's own code, typically returned from the closure passed to
    /// [`crate::Store::write`] to abort the transaction with a domain-specific reason. Never
    /// produced by `dms-store` itself. Use [`Error::custom`] to build it and
    /// [`std::error::Error::source`] or a downcast of the inner value to recover it.
    #[error(transparent)]
    Custom(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Wraps a caller-defined error, typically to abort a write transaction with it.
    pub fn custom(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::Custom(error.into())
    }

    /// Whether this error is [`Error::Locked`].
    #[must_use]
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Locked { .. })
    }
}

/// Converts any redb error that has a conversion into [`redb::Error`] into [`Error::Storage`].
pub(crate) fn storage(err: impl Into<redb::Error>) -> Error {
    Error::Storage(err.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn error_is_send_sync_static() {
        assert_send_sync::<Error>();
    }

    #[test]
    fn locked_message_mentions_another_dms() {
        let err = Error::Locked { path: PathBuf::from("/home/x/dms.redb") };
        let msg = err.to_string();
        assert!(msg.contains("/home/x/dms.redb"), "{msg}");
        assert!(msg.contains("another dms may be running on this home"), "{msg}");
        assert!(err.is_locked());
    }

    #[test]
    fn custom_keeps_the_inner_error() {
        let err = Error::custom("device already exists");
        assert_eq!(err.to_string(), "device already exists");
        assert!(!err.is_locked());
    }
}
