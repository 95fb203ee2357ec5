//! The single error type of the crate.
//!
//! Every message says what happened and, where there is something to do, what
//! to do about it. Messages never mention commands of any front end: callers
//! (the CLI, the node) add their own hints on top.

use std::path::PathBuf;

use crate::key::KeyType;

/// Everything that can go wrong in `dms-crypto`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key type name was not recognised (see [`KeyType`]'s `FromStr`).
    #[error("unknown key type '{input}' (accepted values: ed25519, secp256k1)")]
    UnknownKeyType {
        /// The rejected input.
        input: String,
    },

    /// Secret key bytes were of the wrong length or not a valid secret for the curve.
    #[error("invalid {key_type} secret key: {reason}")]
    InvalidSecretKey {
        /// The key type the secret was meant for.
        key_type: KeyType,
        /// Why the bytes were rejected.
        reason: String,
    },

    /// Public key bytes were of the wrong length or not a valid curve point.
    #[error("invalid {key_type} public key: {reason}")]
    InvalidPublicKey {
        /// The key type the public key was meant for.
        key_type: KeyType,
        /// Why the bytes were rejected.
        reason: String,
    },

    /// A signature did not verify: it is malformed, was made by another key,
    /// or covers another message.
    #[error("signature verification failed (malformed signature, wrong key or altered message)")]
    BadSignature,

    /// A DID does not start with `did:key:`.
    #[error("'{did}' is not a did:key identifier: it must start with 'did:key:'")]
    DidPrefix {
        /// The rejected input.
        did: String,
    },

    /// The multibase prefix of a did:key is not `z` (base58btc).
    #[error(
        "unsupported multibase encoding in '{did}': the key must be base58btc, \
         i.e. start with 'z' right after 'did:key:' (found {found})"
    )]
    DidMultibase {
        /// The rejected input.
        did: String,
        /// A description of what was found instead of `z`.
        found: String,
    },

    /// The base58btc payload of a did:key does not decode.
    #[error("'{did}' has an invalid base58btc key encoding: {reason}")]
    DidBase58 {
        /// The rejected input.
        did: String,
        /// The decoder's complaint.
        reason: String,
    },

    /// The multicodec prefix of a did:key names a key type this crate does not support.
    #[error(
        "'{did}' uses multicodec {codec}, which is not supported \
         (supported: 0xed ed25519-pub, 0xe7 secp256k1-pub)"
    )]
    DidMulticodec {
        /// The rejected input.
        did: String,
        /// The multicodec found, as hex, or a description of why it could not be read.
        codec: String,
    },

    /// The key inside a did:key has the wrong number of bytes for its type.
    #[error("'{did}' holds a {key_type} key of {found} bytes, expected {expected} bytes")]
    DidKeyLength {
        /// The rejected input.
        did: String,
        /// The key type announced by the multicodec.
        key_type: KeyType,
        /// The length the key type requires.
        expected: usize,
        /// The length found.
        found: usize,
    },

    /// The key inside a did:key has the right length but is not a valid curve point.
    #[error("'{did}' does not hold a valid {key_type} public key: {reason}")]
    DidInvalidKey {
        /// The rejected input.
        did: String,
        /// The key type announced by the multicodec.
        key_type: KeyType,
        /// Why the key was rejected.
        reason: String,
    },

    /// A key name breaks the naming rule.
    #[error(
        "invalid key name '{name}': a key name is 1 to 64 characters from A-Z, a-z, 0-9, \
         '.', '_' and '-', and must not start with '.'"
    )]
    InvalidKeyName {
        /// The rejected name.
        name: String,
    },

    /// A key of that name is already in the keystore; it is never overwritten.
    #[error(
        "a key named '{name}' already exists at {} (it was left untouched; \
         choose another name or remove the existing key first)",
        path.display()
    )]
    KeyExists {
        /// The key name.
        name: String,
        /// The existing key file.
        path: PathBuf,
    },

    /// No key of that name is in the keystore.
    #[error("no key named '{name}' in the keystore at {}", dir.display())]
    KeyNotFound {
        /// The key name.
        name: String,
        /// The keystore directory that was searched.
        dir: PathBuf,
    },

    /// The key file could not be decrypted with the given passphrase.
    ///
    /// Because the header is authenticated together with the secret, a key file
    /// whose header or ciphertext was altered is reported the same way.
    #[error(
        "wrong passphrase for key '{name}' (the key file was not changed); \
         if the passphrase is right, the key file has been modified or damaged"
    )]
    WrongPassphrase {
        /// The key name.
        name: String,
    },

    /// A key file exists but cannot be used: it is not valid JSON, has an
    /// unsupported version or algorithm, inconsistent fields, or does not match
    /// the key it claims to hold.
    #[error(
        "key file {} is corrupt: {reason} (restore it from a backup; the file was not changed)",
        path.display()
    )]
    CorruptKeyFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being attempted, e.g. "create the keystore directory".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {reason}")]
    Randomness {
        /// The underlying error.
        reason: String,
    },

    /// A cryptographic primitive failed in a way that should not happen with
    /// valid inputs (a bug or an exhausted resource).
    #[error("internal cryptographic failure: {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::CorruptKeyFile { path: path.into(), reason: reason.into() }
    }
}
