//! Chains of delegations, root first, and their one-line text form for passing between
//! machines: `dmscap1.` followed by base64url (no padding) of a DAG-CBOR array of the
//! tokens' wire bytes.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;
use crate::token::{DEFAULT_MAX_TOKEN_BYTES, Token};

/// Prefix of the text form.
pub const TEXT_PREFIX: &str = "dmscap1.";
/// Default longest chain accepted.
pub const DEFAULT_MAX_CHAIN_LEN: usize = 16;

/// Delegation tokens from the root (index 0) to the leaf (last). May be empty: a
/// principal that is itself trusted needs no proof.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    tokens: Vec<Token>,
}

/// Size limits applied when decoding.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest token, in bytes.
    pub max_token_bytes: usize,
    /// Longest chain.
    pub max_chain_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_token_bytes: DEFAULT_MAX_TOKEN_BYTES, max_chain_len: DEFAULT_MAX_CHAIN_LEN }
    }
}

impl Chain {
    /// A chain of `tokens`, root first. Structure is checked by the verifier.
    pub fn new(tokens: Vec<Token>) -> Chain {
        Chain { tokens }
    }

    /// The empty chain (for trusted principals).
    pub fn empty() -> Chain {
        Chain::default()
    }

    /// The tokens, root first.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The leaf (last delegation), if any.
    pub fn leaf(&self) -> Option<&Token> {
        self.tokens.last()
    }

    /// The root (first delegation), if any.
    pub fn root(&self) -> Option<&Token> {
        self.tokens.first()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// This chain extended by `child` (which should cite the current leaf).
    pub fn extended(&self, child: Token) -> Chain {
        let mut tokens = self.tokens.clone();
        tokens.push(child);
        Chain { tokens }
    }

    /// Encodes as DAG-CBOR bytes (an array of token byte strings).
    pub fn to_bytes(&self) -> Vec<u8> {
        let parts: Vec<&serde_bytes::Bytes> =
            self.tokens.iter().map(|t| serde_bytes::Bytes::new(t.bytes())).collect();
        serde_ipld_dagcbor::to_vec(&parts).expect("an array of byte strings always encodes")
    }

    /// Decodes bytes from [`Chain::to_bytes`], enforcing `limits` before parsing tokens.
    pub fn from_bytes(bytes: &[u8], limits: Limits) -> Result<Chain, Error> {
        let max_total =
            limits.max_token_bytes.saturating_add(16).saturating_mul(limits.max_chain_len);
        if bytes.len() > max_total {
            return Err(Error::TooLarge { size: bytes.len(), max: max_total });
        }
        let parts: Vec<serde_bytes::ByteBuf> =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        if parts.len() > limits.max_chain_len {
            return Err(Error::ChainTooLong { len: parts.len(), max: limits.max_chain_len });
        }
        let tokens = parts
            .iter()
            .map(|part| Token::decode(part, limits.max_token_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chain { tokens })
    }

    /// The one-line text form.
    pub fn to_text(&self) -> String {
        format!("{TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.to_bytes()))
    }

    /// Parses the text form with `limits`.
    pub fn from_text(text: &str, limits: Limits) -> Result<Chain, Error> {
        let text = text.trim();
        let body = text.strip_prefix(TEXT_PREFIX).ok_or_else(|| {
            Error::Malformed(format!("a capability token starts with {TEXT_PREFIX:?}"))
        })?;
        let max_total =
            limits.max_token_bytes.saturating_add(16).saturating_mul(limits.max_chain_len);
        if body.len() / 4 * 3 > max_total {
            return Err(Error::TooLarge { size: body.len() / 4 * 3, max: max_total });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| Error::Malformed(format!("not base64url: {e}")))?;
        Chain::from_bytes(&bytes, limits)
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for Chain {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Chain::from_text(s, Limits::default())
    }
}

impl Serialize for Chain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for Chain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Chain::from_text(&text, Limits::default()).map_err(serde::de::Error::custom)
    }
}
