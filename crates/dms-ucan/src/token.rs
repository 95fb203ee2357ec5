//! Tokens: payload, canonical encoding, signature and content id.
//!
//! Wire form: the DAG-CBOR array `[signature, payload]`. The signature is over
//! `"dms-ucan/1\0"` followed by the DAG-CBOR encoding of the payload, with the key of the
//! issuer's DID (Ed25519, or ECDSA secp256k1 over SHA-256). The content id is a CIDv1
//! (codec dag-cbor, SHA-256 multihash) of the wire bytes. Decoding re-encodes and
//! refuses any input that is not in canonical form, so every token has one encoding
//! and one id.

use std::fmt;
use std::sync::Arc;

use cid::Cid;
use dms_crypto::{Did, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::command::Command;
use crate::policy::Predicate;
use crate::{Error, now};

/// Domain separation prefix of every signed payload.
pub const SIGNING_DOMAIN: &[u8] = b"dms-ucan/1\0";
/// Default largest encoded token accepted, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Multicodec of DAG-CBOR.
const DAG_CBOR: u64 = 0x71;
/// Multihash code of SHA2-256.
const SHA2_256: u64 = 0x12;

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Grants the audience the commands and topics in it (from its proof, or as root).
    #[serde(rename = "dlg")]
    Delegation,
    /// The issuer exercises a command on the subject, citing a delegation as proof.
    #[serde(rename = "inv")]
    Invocation,
    /// The issuer revokes the token named in `rev`.
    #[serde(rename = "rev")]
    Revocation,
}

/// The signed content of a token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Kind of token.
    pub typ: Kind,
    /// Who signs it.
    pub iss: Did,
    /// Who it is for (the delegate, or the executor of an invocation).
    pub aud: Did,
    /// The principal whose resources are concerned; `None` means any (a "powerline").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<Did>,
    /// Command paths granted (delegation) or exercised (invocation, exactly one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<Command>,
    /// Broadcast topics granted; attenuable like commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<Command>,
    /// Predicates every invocation's arguments must satisfy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pol: Vec<Predicate>,
    /// Invocation arguments.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub args: Option<Value>,
    /// Not valid before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Not valid after (Unix seconds); `None` never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// How many further delegations may follow this one; `None` inherits the parent's
    /// (or the verifier's maximum at the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Random bytes making every token unique.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The parent delegation (its content id); `None` for a root delegation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<Cid>,
    /// For a revocation, the content id of the revoked token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<Cid>,
}

/// Deserializes a field that is present as `Some`, even when it is `null`: `args:
/// Some(Value::Null)` is encoded as an explicit `null`, and must decode back to itself
/// for the token to be in canonical form.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Payload {
    /// A payload of `typ` from `iss` to `aud` with a fresh 16-byte nonce and nothing else.
    pub fn new(typ: Kind, iss: Did, aud: Did) -> Payload {
        Payload {
            typ,
            iss,
            aud,
            sub: None,
            cmd: Vec::new(),
            topics: Vec::new(),
            pol: Vec::new(),
            args: None,
            nbf: None,
            exp: None,
            depth: None,
            nonce: rand::random::<[u8; 16]>().to_vec(),
            prf: None,
            rev: None,
        }
    }

    /// Whether `at` lies in `[nbf, exp]`.
    pub fn valid_at(&self, at: u64) -> bool {
        self.nbf.is_none_or(|nbf| nbf <= at) && self.exp.is_none_or(|exp| at <= exp)
    }
}

/// A signed token. Cheap to clone.
#[derive(Clone)]
pub struct Token {
    inner: Arc<Inner>,
}

struct Inner {
    payload: Payload,
    signature: Vec<u8>,
    bytes: Vec<u8>,
    cid: Cid,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| Error::Encode(e.to_string()))
}

/// The content id of canonical DAG-CBOR `bytes`: a CIDv1 of their SHA-256 (how tokens
/// are named; contracts and receipts are named the same way).
pub fn content_id(bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    let hash = cid::multihash::Multihash::<64>::wrap(SHA2_256, &digest)
        .expect("a 32-byte digest fits a 64-byte multihash");
    Cid::new_v1(DAG_CBOR, hash)
}

fn signing_input(payload_bytes: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(SIGNING_DOMAIN.len() + payload_bytes.len());
    input.extend_from_slice(SIGNING_DOMAIN);
    input.extend_from_slice(payload_bytes);
    input
}

impl Token {
    /// Signs `payload` with `key`, which must be the key of `payload.iss`.
    pub fn sign(payload: Payload, key: &KeyPair) -> Result<Token, Error> {
        if key.did() != payload.iss {
            return Err(Error::IssuerKey {
                iss: payload.iss.to_string(),
                key: key.did().to_string(),
            });
        }
        let payload_bytes = encode(&payload)?;
        let signature = key.sign(&signing_input(&payload_bytes)).into_bytes();
        let bytes = encode(&(serde_bytes::Bytes::new(&signature), &payload))?;
        let cid = content_id(&bytes);
        Ok(Token { inner: Arc::new(Inner { payload, signature, bytes, cid }) })
    }

    /// Decodes wire bytes, refusing anything over `max_bytes` before parsing, and
    /// anything not in canonical form. The signature is not checked here
    /// ([`Token::verify_signature`]).
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Token, Error> {
        if bytes.len() > max_bytes {
            return Err(Error::TooLarge { size: bytes.len(), max: max_bytes });
        }
        let (signature, payload): (serde_bytes::ByteBuf, Payload) =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        let signature = signature.into_vec();
        let canonical = encode(&(serde_bytes::Bytes::new(&signature), &payload))?;
        if canonical != bytes {
            return Err(Error::Malformed("not in canonical DAG-CBOR form".into()));
        }
        let cid = content_id(bytes);
        Ok(Token { inner: Arc::new(Inner { payload, signature, bytes: bytes.to_vec(), cid }) })
    }

    /// Checks the signature against the issuer's DID.
    pub fn verify_signature(&self) -> Result<(), Error> {
        let payload_bytes = encode(&self.inner.payload)?;
        self.inner
            .payload
            .iss
            .public_key()
            .verify(&signing_input(&payload_bytes), &self.inner.signature)
            .map_err(|_| Error::BadSignature)
    }

    /// The signed content.
    pub fn payload(&self) -> &Payload {
        &self.inner.payload
    }

    /// The content id.
    pub fn cid(&self) -> Cid {
        self.inner.cid
    }

    /// The wire bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.inner.bytes
    }

    /// Whether the token is valid now.
    pub fn valid_now(&self) -> bool {
        self.inner.payload.valid_at(now())
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.inner.cid == other.inner.cid
    }
}

impl Eq for Token {}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.inner.payload;
        f.debug_struct("Token")
            .field("cid", &self.inner.cid.to_string())
            .field("typ", &p.typ)
            .field("iss", &p.iss.to_string())
            .field("aud", &p.aud.to_string())
            .field("cmd", &p.cmd)
            .field("exp", &p.exp)
            .finish()
    }
}
