//! `did:key` identifiers.
//!
//! A did:key is `did:key:` followed by a multibase string: the prefix `z`
//! (base58btc) and the base58btc encoding of a multicodec-tagged public key:
//!
//! | key type  | multicodec            | varint bytes | key bytes                 |
//! |-----------|-----------------------|--------------|---------------------------|
//! | Ed25519   | `0xed` ed25519-pub    | `ed 01`      | 32                        |
//! | secp256k1 | `0xe7` secp256k1-pub  | `e7 01`      | 33 (compressed SEC1)      |
//!
//! See <https://w3c-ccg.github.io/did-method-key/>. Parsing validates every
//! layer, and the key must be a valid point, so a [`Did`] always holds a usable
//! [`PublicKey`]. The encoding is canonical: a key has exactly one did:key.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::{LazyLock, Mutex};

use lru::LruCache;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::key::{ED25519_PUBLIC_LEN, KeyType, PublicKey, SECP256K1_COMPRESSED_LEN};

/// The method prefix every did:key starts with.
pub const DID_KEY_PREFIX: &str = "did:key:";

/// Multicodec `ed25519-pub` (0xed) as an unsigned varint.
const ED25519_CODEC: [u8; 2] = [0xed, 0x01];
/// Multicodec `secp256k1-pub` (0xe7) as an unsigned varint.
const SECP256K1_CODEC: [u8; 2] = [0xe7, 0x01];

/// Recently parsed DIDs. Every envelope and token names several DIDs, mostly the same
/// few peers; decoding a key is a curve point decompression (tens of microseconds), so
/// parsing a DID seen recently is a cache hit. Only valid DIDs are cached.
static PARSED: LazyLock<Mutex<LruCache<String, Did>>> = LazyLock::new(|| {
    Mutex::new(LruCache::new(NonZeroUsize::new(4096).expect("non-zero capacity")))
});

/// A validated `did:key` identifier and the public key it encodes.
///
/// Displayed and serialised (serde) as the `did:key:z…` string. Equality,
/// hashing and ordering use that string.
#[derive(Clone)]
pub struct Did {
    repr: String,
    key: PublicKey,
}

impl Did {
    /// Parses and fully validates a did:key: the `did:key:` prefix, the `z`
    /// multibase prefix, the base58btc payload, the multicodec, the key length
    /// and the key itself (it must be a valid curve point).
    ///
    /// # Errors
    /// One distinct variant per layer: [`Error::DidPrefix`],
    /// [`Error::DidMultibase`], [`Error::DidBase58`], [`Error::DidMulticodec`],
    /// [`Error::DidKeyLength`], [`Error::DidInvalidKey`].
    pub fn parse(input: &str) -> Result<Did, Error> {
        if let Some(did) = PARSED.lock().ok().and_then(|mut cache| cache.get(input).cloned()) {
            return Ok(did);
        }
        let parsed = Did::parse_uncached(input)?;
        if let Ok(mut cache) = PARSED.lock() {
            cache.put(input.to_owned(), parsed.clone());
        }
        Ok(parsed)
    }

    fn parse_uncached(input: &str) -> Result<Did, Error> {
        let did = || input.to_owned();
        let multibase =
            input.strip_prefix(DID_KEY_PREFIX).ok_or_else(|| Error::DidPrefix { did: did() })?;
        let encoded = match multibase.chars().next() {
            Some('z') => &multibase[1..],
            Some(other) => {
                return Err(Error::DidMultibase { did: did(), found: format!("'{other}'") });
            }
            None => {
                return Err(Error::DidMultibase { did: did(), found: "nothing".into() });
            }
        };
        if encoded.is_empty() {
            return Err(Error::DidBase58 { did: did(), reason: "the encoded key is empty".into() });
        }
        let bytes = bs58::decode(encoded)
            .into_vec()
            .map_err(|e| Error::DidBase58 { did: did(), reason: e.to_string() })?;

        let (kind, key_bytes) = if let Some(rest) = bytes.strip_prefix(&ED25519_CODEC) {
            (KeyType::Ed25519, rest)
        } else if let Some(rest) = bytes.strip_prefix(&SECP256K1_CODEC) {
            (KeyType::Secp256k1, rest)
        } else {
            return Err(Error::DidMulticodec { did: did(), codec: describe_codec(&bytes) });
        };

        let expected = match kind {
            KeyType::Ed25519 => ED25519_PUBLIC_LEN,
            KeyType::Secp256k1 => SECP256K1_COMPRESSED_LEN,
        };
        if key_bytes.len() != expected {
            return Err(Error::DidKeyLength {
                did: did(),
                key_type: kind,
                expected,
                found: key_bytes.len(),
            });
        }

        let key = PublicKey::from_bytes(kind, key_bytes).map_err(|e| match e {
            Error::InvalidPublicKey { reason, .. } => {
                Error::DidInvalidKey { did: did(), key_type: kind, reason }
            }
            other => other,
        })?;
        Ok(Did::from_public_key(key))
    }

    /// Builds the did:key of a public key.
    pub(crate) fn from_public_key(key: PublicKey) -> Did {
        let codec = match key.key_type() {
            KeyType::Ed25519 => ED25519_CODEC,
            KeyType::Secp256k1 => SECP256K1_CODEC,
        };
        let mut payload = Vec::with_capacity(codec.len() + SECP256K1_COMPRESSED_LEN);
        payload.extend_from_slice(&codec);
        payload.extend_from_slice(key.as_bytes());
        let repr = format!("{DID_KEY_PREFIX}z{}", bs58::encode(&payload).into_string());
        Did { repr, key }
    }

    /// The public key this DID encodes.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The `did:key:z…` string.
    pub fn as_str(&self) -> &str {
        &self.repr
    }

    /// The type of the encoded key.
    pub fn key_type(&self) -> KeyType {
        self.key.key_type()
    }
}

/// Describes the (unsupported) multicodec at the start of `bytes`, for error messages.
fn describe_codec(bytes: &[u8]) -> String {
    // Unsigned LEB128, at most 9 bytes (multiformats unsigned-varint).
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(9).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let minimal = i == 0 || *byte != 0;
            return if minimal {
                format!("0x{value:x}")
            } else {
                format!("0x{value:x} (non-minimal varint encoding)")
            };
        }
    }
    "an unreadable varint".into()
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Did").field(&self.repr).finish()
    }
}

impl FromStr for Did {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Did::parse(s)
    }
}

impl PartialEq for Did {
    fn eq(&self, other: &Self) -> bool {
        self.repr == other.repr
    }
}

impl Eq for Did {}

impl Hash for Did {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.repr.hash(state);
    }
}

impl PartialOrd for Did {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Did {
    fn cmp(&self, other: &Self) -> Ordering {
        self.repr.cmp(&other.repr)
    }
}

impl AsRef<str> for Did {
    fn as_ref(&self) -> &str {
        &self.repr
    }
}

impl From<&PublicKey> for Did {
    fn from(key: &PublicKey) -> Self {
        Did::from_public_key(key.clone())
    }
}

impl Serialize for Did {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.repr)
    }
}

impl<'de> Deserialize<'de> for Did {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Did::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
