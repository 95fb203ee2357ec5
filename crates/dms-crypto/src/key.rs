//! Key types, key pairs, public keys and signatures.
//!
//! Two algorithms are supported:
//!
//! * **Ed25519** (RFC 8032). The secret is the 32-byte seed; signatures are the
//!   64-byte `R || S` encoding and are verified with the strict rules
//!   (`verify_strict`: canonical `S`, no small-order keys or `R`).
//! * **secp256k1 ECDSA** over SHA-256 with deterministic nonces (RFC 6979).
//!   The secret is the 32-byte big-endian scalar; signatures are the 64-byte
//!   compact `r || s` encoding, always low-S normalised when made, and high-S
//!   signatures are rejected when verified (no malleability).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::did::Did;
use crate::error::Error;

/// Length of an Ed25519 public key.
pub(crate) const ED25519_PUBLIC_LEN: usize = 32;
/// Length of a compressed SEC1 secp256k1 public key.
pub(crate) const SECP256K1_COMPRESSED_LEN: usize = 33;
/// Length of an uncompressed SEC1 secp256k1 public key.
const SECP256K1_UNCOMPRESSED_LEN: usize = 65;
/// Length of the secret of either key type.
pub(crate) const SECRET_LEN: usize = 32;
/// Length of a signature of either key type.
const SIGNATURE_LEN: usize = 64;

/// The signature algorithm of a key.
///
/// Serialised (serde, [`Display`](fmt::Display)) as `"ed25519"` or
/// `"secp256k1"`; parsed case-insensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// Ed25519 (EdDSA over Curve25519).
    Ed25519,
    /// ECDSA over secp256k1 with SHA-256.
    Secp256k1,
}

impl KeyType {
    /// Every supported key type.
    pub const ALL: [KeyType; 2] = [KeyType::Ed25519, KeyType::Secp256k1];

    /// The canonical lower-case name (`"ed25519"` or `"secp256k1"`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Secp256k1 => "secp256k1",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::UnknownKeyType { input: s.to_owned() })
    }
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    use rand::TryRng as _;
    rand::rngs::SysRng.try_fill_bytes(buf).map_err(|e| Error::Randomness { reason: e.to_string() })
}

/// A signature, as raw bytes.
///
/// Ed25519 signatures are 64 bytes (`R || S`); secp256k1 signatures are the
/// 64-byte compact `r || s` encoding. A `Signature` is only a container: it is
/// checked when verified ([`PublicKey::verify`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature(Vec<u8>);

impl Signature {
    /// Wraps raw signature bytes (not validated until verified).
    pub fn from_bytes(bytes: &[u8]) -> Signature {
        Signature(bytes.to_vec())
    }

    /// The raw signature bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the signature, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Signature {
    fn from(bytes: Vec<u8>) -> Self {
        Signature(bytes)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(&self.0))
    }
}

/// A public key of either supported type.
///
/// Equality and hashing use the key type and the canonical encoding
/// ([`PublicKey::to_bytes`]).
#[derive(Clone)]
pub struct PublicKey {
    inner: PublicInner,
}

#[derive(Clone)]
enum PublicInner {
    Ed25519(ed25519_dalek::VerifyingKey),
    Secp256k1 { key: k256::ecdsa::VerifyingKey, compressed: [u8; SECP256K1_COMPRESSED_LEN] },
}

impl PublicKey {
    /// Parses a public key.
    ///
    /// Ed25519 keys are 32 bytes. secp256k1 keys are 33-byte compressed SEC1
    /// points; 65-byte uncompressed points are accepted too and normalised to
    /// the compressed form. The bytes must encode a valid point; Ed25519
    /// non-canonical encodings and small-order ("weak") points are rejected.
    ///
    /// # Errors
    /// [`Error::InvalidPublicKey`] if the length is wrong or the bytes are not a
    /// valid point.
    pub fn from_bytes(kind: KeyType, bytes: &[u8]) -> Result<PublicKey, Error> {
        let invalid = |reason: String| Error::InvalidPublicKey { key_type: kind, reason };
        match kind {
            KeyType::Ed25519 => {
                let array: &[u8; ED25519_PUBLIC_LEN] = bytes.try_into().map_err(|_| {
                    invalid(format!("expected {ED25519_PUBLIC_LEN} bytes, got {}", bytes.len()))
                })?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(array)
                    .map_err(|_| invalid("the bytes are not a point on the curve".into()))?;
                if key.to_edwards().compress().as_bytes() != array {
                    return Err(invalid("non-canonical point encoding".into()));
                }
                if key.is_weak() {
                    return Err(invalid("the point has small order (weak key)".into()));
                }
                Ok(PublicKey { inner: PublicInner::Ed25519(key) })
            }
            KeyType::Secp256k1 => {
                let tag_ok = match (bytes.len(), bytes.first()) {
                    (SECP256K1_COMPRESSED_LEN, Some(0x02 | 0x03)) => true,
                    (SECP256K1_UNCOMPRESSED_LEN, Some(0x04)) => true,
                    (SECP256K1_COMPRESSED_LEN | SECP256K1_UNCOMPRESSED_LEN, _) => false,
                    (len, _) => {
                        return Err(invalid(format!(
                            "expected {SECP256K1_COMPRESSED_LEN} bytes (compressed SEC1) or \
                             {SECP256K1_UNCOMPRESSED_LEN} bytes (uncompressed SEC1), got {len}"
                        )));
                    }
                };
                if !tag_ok {
                    return Err(invalid(
                        "bad SEC1 tag byte (expected 0x02 or 0x03 for 33 bytes, 0x04 for 65 bytes)"
                            .into(),
                    ));
                }
                let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                    .map_err(|_| invalid("the bytes are not a point on the curve".into()))?;
                Ok(Self::from_secp256k1(key))
            }
        }
    }

    fn from_secp256k1(key: k256::ecdsa::VerifyingKey) -> PublicKey {
        let compressed: k256::CompressedPoint = (&key).into();
        PublicKey { inner: PublicInner::Secp256k1 { key, compressed: compressed.into() } }
    }

    /// The canonical encoding: 32 bytes (Ed25519) or 33 bytes (compressed secp256k1).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    /// The canonical encoding, borrowed.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.inner {
            PublicInner::Ed25519(key) => key.as_bytes(),
            PublicInner::Secp256k1 { compressed, .. } => compressed,
        }
    }

    /// The key's algorithm.
    pub fn key_type(&self) -> KeyType {
        match self.inner {
            PublicInner::Ed25519(_) => KeyType::Ed25519,
            PublicInner::Secp256k1 { .. } => KeyType::Secp256k1,
        }
    }

    /// Verifies `sig` over `msg`.
    ///
    /// # Errors
    /// [`Error::BadSignature`] if the signature is malformed (wrong length,
    /// out-of-range values, high-S for secp256k1) or does not match.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        if sig.len() != SIGNATURE_LEN {
            return Err(Error::BadSignature);
        }
        match &self.inner {
            PublicInner::Ed25519(key) => {
                let sig =
                    ed25519_dalek::Signature::from_slice(sig).map_err(|_| Error::BadSignature)?;
                key.verify_strict(msg, &sig).map_err(|_| Error::BadSignature)
            }
            PublicInner::Secp256k1 { key, .. } => {
                use k256::ecdsa::signature::Verifier as _;
                let sig =
                    k256::ecdsa::Signature::from_slice(sig).map_err(|_| Error::BadSignature)?;
                key.verify(msg, &sig).map_err(|_| Error::BadSignature)
            }
        }
    }

    /// The did:key identifier of this key.
    pub fn did(&self) -> Did {
        Did::from_public_key(self.clone())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.key_type() == other.key_type() && self.as_bytes() == other.as_bytes()
    }
}

impl Eq for PublicKey {}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key_type().hash(state);
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_type", &self.key_type())
            .field("bytes", &hex::encode(self.as_bytes()))
            .finish()
    }
}

/// A secret key together with its public key.
///
/// The secret is wiped from memory when the pair is dropped. `Debug` shows
/// only the key type and the DID, never secret material.
#[derive(Clone)]
pub struct KeyPair {
    inner: SecretInner,
}

// Both signing key types zeroize themselves on drop.
#[derive(Clone)]
enum SecretInner {
    Ed25519(ed25519_dalek::SigningKey),
    Secp256k1(k256::ecdsa::SigningKey),
}

impl KeyPair {
    /// Generates a new key pair from the operating system's randomness.
    ///
    /// # Panics
    /// Only if the operating system's random number generator fails, which
    /// leaves no safe way to make a key. Use [`KeyPair::try_generate`] to
    /// handle that case as an error.
    pub fn generate(kind: KeyType) -> KeyPair {
        match Self::try_generate(kind) {
            Ok(pair) => pair,
            Err(e) => panic!("cannot generate a {kind} key: {e}"),
        }
    }

    /// Generates a new key pair, reporting a failure of the operating
    /// system's random number generator as an error.
    ///
    /// # Errors
    /// [`Error::Randomness`] if the OS random number generator fails.
    pub fn try_generate(kind: KeyType) -> Result<KeyPair, Error> {
        let mut seed = Zeroizing::new([0u8; SECRET_LEN]);
        // A random 32-byte string is a valid secp256k1 scalar except with
        // probability ~2^-128; retry on the off chance.
        for _ in 0..64 {
            fill_random(seed.as_mut_slice())?;
            if let Ok(pair) = Self::from_secret_bytes(kind, seed.as_slice()) {
                return Ok(pair);
            }
        }
        Err(Error::Randomness { reason: "the generator kept producing invalid secret keys".into() })
    }

    /// Rebuilds a key pair from its secret (see [`KeyPair::secret_bytes`]).
    ///
    /// Ed25519 takes the 32-byte seed; secp256k1 takes the 32-byte big-endian
    /// scalar, which must be non-zero and below the curve order.
    ///
    /// # Errors
    /// [`Error::InvalidSecretKey`] if the length or value is wrong.
    pub fn from_secret_bytes(kind: KeyType, secret: &[u8]) -> Result<KeyPair, Error> {
        let invalid = |reason: String| Error::InvalidSecretKey { key_type: kind, reason };
        if secret.len() != SECRET_LEN {
            return Err(invalid(format!("expected {SECRET_LEN} bytes, got {}", secret.len())));
        }
        let inner = match kind {
            KeyType::Ed25519 => {
                let seed: &[u8; SECRET_LEN] =
                    secret.try_into().map_err(|_| invalid("expected 32 bytes".into()))?;
                SecretInner::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
            }
            KeyType::Secp256k1 => {
                SecretInner::Secp256k1(k256::ecdsa::SigningKey::from_slice(secret).map_err(
                    |_| invalid("the scalar is zero or not below the curve order".into()),
                )?)
            }
        };
        Ok(KeyPair { inner })
    }

    /// The secret as hex, for keys kept outside the keystore (actors' own keys, stored
    /// beside their records). The returned text is wiped when dropped.
    pub fn secret_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.secret_bytes().as_slice()))
    }

    /// A key pair from [`KeyPair::secret_hex`]'s text.
    ///
    /// # Errors
    /// [`Error::InvalidSecretKey`] if the text is not hex of a valid secret.
    pub fn from_secret_hex(kind: KeyType, text: &str) -> Result<KeyPair, Error> {
        let bytes = Zeroizing::new(hex::decode(text).map_err(|e| Error::InvalidSecretKey {
            key_type: kind,
            reason: format!("not hex: {e}"),
        })?);
        KeyPair::from_secret_bytes(kind, &bytes)
    }

    /// The secret: the Ed25519 seed or the secp256k1 scalar (32 bytes).
    /// The returned buffer is wiped when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        match &self.inner {
            SecretInner::Ed25519(key) => Zeroizing::new(key.as_bytes().to_vec()),
            SecretInner::Secp256k1(key) => {
                let mut bytes = key.to_bytes();
                let out = Zeroizing::new(bytes.to_vec());
                bytes.as_mut_slice().zeroize();
                out
            }
        }
    }

    /// The key's algorithm.
    pub fn key_type(&self) -> KeyType {
        match self.inner {
            SecretInner::Ed25519(_) => KeyType::Ed25519,
            SecretInner::Secp256k1(_) => KeyType::Secp256k1,
        }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        match &self.inner {
            SecretInner::Ed25519(key) => {
                PublicKey { inner: PublicInner::Ed25519(key.verifying_key()) }
            }
            SecretInner::Secp256k1(key) => PublicKey::from_secp256k1(*key.verifying_key()),
        }
    }

    /// The did:key identifier of the public half.
    pub fn did(&self) -> Did {
        Did::from_public_key(self.public())
    }

    /// Signs `msg`.
    ///
    /// Ed25519: the 64-byte RFC 8032 signature. secp256k1: ECDSA over
    /// SHA-256(msg) with an RFC 6979 nonce, 64-byte compact `r || s`, low-S.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        match &self.inner {
            SecretInner::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                Signature(key.sign(msg).to_bytes().to_vec())
            }
            SecretInner::Secp256k1(key) => {
                use k256::ecdsa::signature::Signer as _;
                let sig: k256::ecdsa::Signature = key.sign(msg);
                Signature(sig.to_vec())
            }
        }
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("key_type", &self.key_type())
            .field("did", &self.did().as_str())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
