//! Handles and signed envelopes.
//!
//! An envelope is encoded as canonical DAG-CBOR. Its signature covers the prefix
//! `"dms-actor/1\0"` followed by the encoding of the envelope with an empty signature,
//! made with the key of `from.did`. Decoding refuses oversized input before parsing and
//! any input that does not re-encode to the same bytes.

use dms_crypto::{Did, KeyPair};
use dms_ucan::{Chain, Command, Limits};
use serde::{Deserialize, Serialize};

use crate::ActorError;

/// Domain separation prefix of envelope signatures.
pub const SIGNING_DOMAIN: &[u8] = b"dms-actor/1\0";
/// Default largest encoded envelope accepted, in bytes (1 MiB).
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// Where an actor lives and who it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Handle {
    /// The actor's DID: it signs what the actor sends and holds its capabilities.
    pub did: Did,
    /// The network peer hosting the actor (opaque to the runtime; a libp2p peer id).
    pub peer: String,
    /// The actor's inbox on that peer (`root` for a node's own actor).
    pub inbox: String,
}

/// A signed message from one actor to another (or to a broadcast topic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The recipient; `None` for a broadcast.
    pub to: Option<Handle>,
    /// The sender.
    pub from: Handle,
    /// The behavior to run, named by its capability path.
    pub behavior: Command,
    /// Unique per sender within the replay window.
    pub nonce: u64,
    /// Not valid after (Unix milliseconds).
    pub expiry: u64,
    /// Behavior the answer should be sent to (request/reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Command>,
    /// Broadcast topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<Command>,
    /// The W3C `traceparent` of the span that sent it, so that the receiver's work joins
    /// the sender's trace (signed like the rest; absent when nothing is traced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The message body (JSON by convention).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The capability chain authorizing `from.did` to run `behavior` on the recipient
    /// (empty when the sender is trusted as a root).
    #[serde(with = "serde_bytes")]
    pub capabilities: Vec<u8>,
    /// Signature by `from.did`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Whether `t` is a W3C `traceparent` of version 00: `00-<32 hex>-<16 hex>-<2 hex>`.
pub fn is_traceparent(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).expect("envelopes always encode")
}

impl Envelope {
    fn signing_input(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = Vec::new();
        let mut input = SIGNING_DOMAIN.to_vec();
        input.extend_from_slice(&encode(&unsigned));
        input
    }

    /// Signs the envelope with `key`, which must be the key of `from.did`.
    pub fn sign(mut self, key: &KeyPair) -> Result<Envelope, ActorError> {
        if key.did() != self.from.did {
            return Err(ActorError::Internal {
                reason: format!(
                    "envelope from {} cannot be signed with the key of {}",
                    self.from.did,
                    key.did()
                ),
            });
        }
        self.signature = key.sign(&self.signing_input()).into_bytes();
        Ok(self)
    }

    /// Signs the envelope through `sign`, which holds the key of `from.did` elsewhere (a
    /// key agent): it gets the bytes to sign and returns the signature, checked here.
    pub fn sign_by(
        mut self,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
    ) -> Result<Envelope, ActorError> {
        self.signature =
            sign(&self.signing_input()).map_err(|reason| ActorError::Internal { reason })?;
        self.verify_signature()?;
        Ok(self)
    }

    /// Checks the signature against `from.did`.
    pub fn verify_signature(&self) -> Result<(), ActorError> {
        self.from
            .did
            .public_key()
            .verify(&self.signing_input(), &self.signature)
            .map_err(|_| ActorError::BadSignature)
    }

    /// Wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes wire bytes, refusing more than `max_bytes` before parsing and anything not
    /// in canonical form.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Envelope, ActorError> {
        if bytes.len() > max_bytes {
            return Err(ActorError::TooLarge { size: bytes.len(), max: max_bytes });
        }
        let envelope: Envelope = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ActorError::malformed(e.to_string()))?;
        if envelope.encode() != bytes {
            return Err(ActorError::malformed("not in canonical DAG-CBOR form"));
        }
        if envelope.trace.as_deref().is_some_and(|t| !is_traceparent(t)) {
            return Err(ActorError::malformed(
                "trace is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
            ));
        }
        Ok(envelope)
    }

    /// The capability chain carried.
    pub fn chain(&self, limits: Limits) -> Result<Chain, ActorError> {
        if self.capabilities.is_empty() {
            return Ok(Chain::empty());
        }
        Chain::from_bytes(&self.capabilities, limits).map_err(|e| ActorError::Unauthorized {
            code: "malformed".into(),
            reason: e.to_string(),
        })
    }

    /// Whether this is a broadcast.
    pub fn is_broadcast(&self) -> bool {
        self.to.is_none()
    }

    /// The span a behavior runs in: named after the message, a child of the sender's
    /// span when the envelope carries its trace context.
    pub fn span(&self) -> tracing::Span {
        let span = tracing::info_span!("message", behavior = %self.behavior, from = %self.from.did);
        if let Some(traceparent) = &self.trace {
            dms_telemetry::propagate::adopt(&span, traceparent);
        }
        span
    }

    /// The payload decoded as JSON (`null` when empty).
    pub fn json(&self) -> Result<serde_json::Value, ActorError> {
        if self.payload.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.payload)
            .map_err(|e| ActorError::BadPayload { reason: e.to_string() })
    }
}
