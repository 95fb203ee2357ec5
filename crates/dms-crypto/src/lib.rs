//! Key pairs, `did:key` identifiers and the encrypted keystore of dms.
//!
//! # Module map
//!
//! | module       | contents                                                               |
//! |--------------|------------------------------------------------------------------------|
//! | [`key`]      | [`KeyType`], [`KeyPair`] (generate, sign), [`PublicKey`] (verify), [`Signature`] |
//! | [`did`]      | [`Did`]: encoding and full validation of `did:key` identifiers          |
//! | [`keystore`] | [`Keystore`], [`KeyInfo`]: one passphrase-encrypted JSON file per key  |
//! | [`error`]    | [`Error`], the single error type                                        |
//!
//! # Algorithms
//!
//! * Ed25519 (RFC 8032) and ECDSA over secp256k1 with SHA-256 (RFC 6979
//!   nonces, 64-byte compact `r || s`, low-S).
//! * `did:key` with multicodecs `ed25519-pub` (0xed) and `secp256k1-pub`
//!   (0xe7, compressed point), base58btc multibase.
//! * Key files: scrypt (N = 2^15, r = 8, p = 1) and XChaCha20-Poly1305 with
//!   the header as associated data; atomic writes, modes 0700/0600.
//!
//! # Example
//!
//! ```
//! use dms_crypto::{Did, KeyPair, KeyType};
//!
//! let pair = KeyPair::generate(KeyType::Ed25519);
//! let sig = pair.sign(b"hello");
//! let did: Did = pair.did().as_str().parse()?;
//! did.public_key().verify(b"hello", sig.as_bytes())?;
//! # Ok::<(), dms_crypto::Error>(())
//! ```
//!
//! Secrets ([`KeyPair`], [`KeyPair::secret_bytes`], derived keys, decrypted
//! plaintext) are wiped from memory when dropped, and never appear in `Debug`
//! output.

#![forbid(unsafe_code)]

pub mod did;
pub mod error;
pub mod key;
pub mod keystore;

pub use did::Did;
pub use error::Error;
pub use key::{KeyPair, KeyType, PublicKey, Signature};
pub use keystore::{KeyInfo, Keystore};
