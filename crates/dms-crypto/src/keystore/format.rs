//! The on-disk format of a key file (version 1) and its encryption.
//!
//! ```json
//! {
//!   "version": 1,
//!   "name": "dms",
//!   "key_type": "ed25519",
//!   "did": "did:key:z6Mk…",
//!   "created_at": 1700000000,
//!   "kdf": { "alg": "scrypt", "log_n": 15, "r": 8, "p": 1, "salt": "<hex, 32 bytes>" },
//!   "cipher": { "alg": "xchacha20poly1305", "nonce": "<hex, 24 bytes>", "ciphertext": "<hex, 48 bytes>" }
//! }
//! ```
//!
//! The 32-byte secret is encrypted with XChaCha20-Poly1305 under a key derived
//! by scrypt from the passphrase. The header (format version, name, key type,
//! DID, creation time) is the AEAD associated data, so any edit to it, to the
//! nonce or to the ciphertext makes decryption fail.

use std::path::Path;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::did::Did;
use crate::error::Error;
use crate::key::{KeyPair, KeyType, SECRET_LEN, fill_random};

/// The only format version this crate reads and writes.
pub(super) const FORMAT_VERSION: u32 = 1;
/// Largest key file accepted when reading (real files are under 1 KiB).
pub(super) const MAX_FILE_LEN: u64 = 64 * 1024;

const KDF_ALG: &str = "scrypt";
const CIPHER_ALG: &str = "xchacha20poly1305";
/// Domain separation for the associated data.
const AAD_DOMAIN: &[u8] = b"dms-keystore/v1";

/// scrypt cost written into new files: N = 2^15, r = 8, p = 1 (32 MiB).
const LOG_N: u8 = 15;
const R: u32 = 8;
const P: u32 = 1;
/// Bounds on the cost parameters accepted when reading, so that a crafted
/// file cannot make the reader allocate or compute without limit.
const MAX_LOG_N: u8 = 20;
const MAX_R: u32 = 32;
const MAX_P: u32 = 16;
const MAX_KDF_MEMORY: u64 = 1 << 30;

const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// A key file as stored on disk.
#[derive(Serialize, Deserialize, Debug)]
pub(super) struct KeyFile {
    pub(super) version: u32,
    pub(super) name: String,
    pub(super) key_type: KeyType,
    pub(super) did: Did,
    pub(super) created_at: u64,
    pub(super) kdf: KdfSection,
    pub(super) cipher: CipherSection,
}

/// The key derivation parameters.
#[derive(Serialize, Deserialize, Debug)]
pub(super) struct KdfSection {
    alg: String,
    log_n: u8,
    r: u32,
    p: u32,
    salt: String,
}

/// The encrypted secret.
#[derive(Serialize, Deserialize, Debug)]
pub(super) struct CipherSection {
    alg: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

impl KeyFile {
    /// Encrypts `pair` under `passphrase` into a new key file.
    pub(super) fn seal(
        name: &str,
        pair: &KeyPair,
        passphrase: &str,
        created_at: u64,
    ) -> Result<KeyFile, Error> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut salt)?;
        fill_random(&mut nonce)?;

        let key_type = pair.key_type();
        let did = pair.did();
        let aad = associated_data(name, key_type, &did, created_at);
        let key = derive_key(passphrase, &salt, LOG_N, R, P)?;
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice()).map_err(|_| {
            Error::Internal { reason: "XChaCha20-Poly1305 rejected a 32-byte key".into() }
        })?;
        let secret = pair.secret_bytes();
        let ciphertext = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: secret.as_slice(), aad: &aad })
            .map_err(|_| Error::Internal {
                reason: "XChaCha20-Poly1305 encryption failed".into(),
            })?;

        Ok(KeyFile {
            version: FORMAT_VERSION,
            name: name.to_owned(),
            key_type,
            did,
            created_at,
            kdf: KdfSection {
                alg: KDF_ALG.into(),
                log_n: LOG_N,
                r: R,
                p: P,
                salt: hex::encode(salt),
            },
            cipher: CipherSection {
                alg: CIPHER_ALG.into(),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(ciphertext),
            },
        })
    }

    /// Parses a key file and checks its header: the version, that it records
    /// the key name `expected_name`, and that the DID matches the key type.
    /// Nothing is decrypted.
    pub(super) fn parse(path: &Path, bytes: &[u8], expected_name: &str) -> Result<KeyFile, Error> {
        let probe: VersionProbe = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(path, format!("not a key file: {e}")))?;
        if probe.version != FORMAT_VERSION {
            return Err(Error::corrupt(
                path,
                format!(
                    "unsupported key file version {} (this build reads version {FORMAT_VERSION})",
                    probe.version
                ),
            ));
        }
        let file: KeyFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(path, format!("invalid key file: {e}")))?;
        if file.name != expected_name {
            return Err(Error::corrupt(
                path,
                format!("the file records the key name '{}', not '{expected_name}'", file.name),
            ));
        }
        if file.did.key_type() != file.key_type {
            return Err(Error::corrupt(
                path,
                format!(
                    "the key type is {} but the DID holds a {} key",
                    file.key_type,
                    file.did.key_type()
                ),
            ));
        }
        Ok(file)
    }

    /// Decrypts the secret and rebuilds the key pair.
    ///
    /// Fails with [`Error::WrongPassphrase`] if authentication fails, and with
    /// [`Error::CorruptKeyFile`] if the file is malformed or the decrypted key
    /// does not match the recorded DID.
    pub(super) fn open(&self, path: &Path, passphrase: &str) -> Result<KeyPair, Error> {
        let kdf = &self.kdf;
        if kdf.alg != KDF_ALG {
            return Err(Error::corrupt(
                path,
                format!("unsupported key derivation '{}' (expected '{KDF_ALG}')", kdf.alg),
            ));
        }
        check_kdf_cost(path, kdf.log_n, kdf.r, kdf.p)?;
        let salt = decode_hex(path, "kdf.salt", &kdf.salt)?;
        if !(16..=64).contains(&salt.len()) {
            return Err(Error::corrupt(
                path,
                format!("kdf.salt has {} bytes, expected 16 to 64", salt.len()),
            ));
        }
        let cipher_section = &self.cipher;
        if cipher_section.alg != CIPHER_ALG {
            return Err(Error::corrupt(
                path,
                format!("unsupported cipher '{}' (expected '{CIPHER_ALG}')", cipher_section.alg),
            ));
        }
        let nonce = decode_hex(path, "cipher.nonce", &cipher_section.nonce)?;
        let nonce = <&XNonce>::try_from(nonce.as_slice()).map_err(|_| {
            Error::corrupt(
                path,
                format!("cipher.nonce has {} bytes, expected {NONCE_LEN}", nonce.len()),
            )
        })?;
        let ciphertext = decode_hex(path, "cipher.ciphertext", &cipher_section.ciphertext)?;
        if ciphertext.len() != SECRET_LEN + TAG_LEN {
            return Err(Error::corrupt(
                path,
                format!(
                    "cipher.ciphertext has {} bytes, expected {}",
                    ciphertext.len(),
                    SECRET_LEN + TAG_LEN
                ),
            ));
        }

        let aad = associated_data(&self.name, self.key_type, &self.did, self.created_at);
        let key = derive_key(passphrase, &salt, kdf.log_n, kdf.r, kdf.p)?;
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice()).map_err(|_| {
            Error::Internal { reason: "XChaCha20-Poly1305 rejected a 32-byte key".into() }
        })?;
        let secret = Zeroizing::new(
            cipher
                .decrypt(nonce, Payload { msg: &ciphertext, aad: &aad })
                .map_err(|_| Error::WrongPassphrase { name: self.name.clone() })?,
        );

        let pair = KeyPair::from_secret_bytes(self.key_type, &secret)
            .map_err(|e| Error::corrupt(path, format!("the decrypted secret is unusable: {e}")))?;
        if pair.did() != self.did {
            return Err(Error::corrupt(
                path,
                format!("the decrypted key is {}, not the recorded {}", pair.did(), self.did),
            ));
        }
        Ok(pair)
    }
}

/// The associated data binding the header to the ciphertext: a domain tag,
/// then each field length-prefixed (u32 big-endian) so that field boundaries
/// are unambiguous.
fn associated_data(name: &str, key_type: KeyType, did: &Did, created_at: u64) -> Vec<u8> {
    let fields: [&[u8]; 4] = [
        name.as_bytes(),
        key_type.as_str().as_bytes(),
        did.as_str().as_bytes(),
        &created_at.to_be_bytes(),
    ];
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 160);
    aad.extend_from_slice(AAD_DOMAIN);
    for field in fields {
        // Fields are short (names ≤ 64 bytes, DIDs < 64 bytes), so the
        // length always fits; saturate rather than panic regardless.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad
}

fn check_kdf_cost(path: &Path, log_n: u8, r: u32, p: u32) -> Result<(), Error> {
    let memory = 128u64.saturating_mul(u64::from(r)).saturating_mul(1u64 << log_n.min(63));
    let ok = (1..=MAX_LOG_N).contains(&log_n)
        && (1..=MAX_R).contains(&r)
        && (1..=MAX_P).contains(&p)
        && memory <= MAX_KDF_MEMORY;
    if ok {
        Ok(())
    } else {
        Err(Error::corrupt(
            path,
            format!(
                "unsupported scrypt parameters log_n={log_n}, r={r}, p={p} \
                 (accepted: log_n ≤ {MAX_LOG_N}, r ≤ {MAX_R}, p ≤ {MAX_P}, at most 1 GiB of memory)"
            ),
        ))
    }
}

fn derive_key(
    passphrase: &str,
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    let params = scrypt::Params::new(log_n, r, p).map_err(|_| Error::Internal {
        reason: format!("scrypt rejected log_n={log_n}, r={r}, p={p}"),
    })?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(passphrase.as_bytes(), salt, &params, key.as_mut_slice())
        .map_err(|_| Error::Internal { reason: "scrypt rejected a 32-byte output".into() })?;
    Ok(key)
}

fn decode_hex(path: &Path, field: &str, value: &str) -> Result<Vec<u8>, Error> {
    hex::decode(value).map_err(|e| Error::corrupt(path, format!("{field} is not valid hex: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_separates_fields() {
        let did = KeyPair::from_secret_bytes(KeyType::Ed25519, &[7; 32]).expect("valid seed").did();
        let a = associated_data("ab", KeyType::Ed25519, &did, 1);
        let b = associated_data("ab", KeyType::Ed25519, &did, 2);
        assert_ne!(a, b);
        assert!(a.starts_with(AAD_DOMAIN));
    }

    #[test]
    fn kdf_cost_bounds() {
        let p = Path::new("k.json");
        assert!(check_kdf_cost(p, LOG_N, R, P).is_ok());
        assert!(check_kdf_cost(p, 0, R, P).is_err());
        assert!(check_kdf_cost(p, 21, R, P).is_err());
        assert!(check_kdf_cost(p, 20, 32, 1).is_err()); // 4 GiB
        assert!(check_kdf_cost(p, 15, 0, 1).is_err());
        assert!(check_kdf_cost(p, 15, 8, 0).is_err());
        assert!(check_kdf_cost(p, 15, 8, 17).is_err());
    }
}
