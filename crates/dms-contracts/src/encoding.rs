//! Canonical encoding, content ids and signing input, the way capability tokens are
//! made (`dms-ucan`): DAG-CBOR, a CIDv1 of its SHA-256, a domain-separated signature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::Error;

/// Content ids as capability tokens have them.
pub(crate) use dms_ucan::token::content_id;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| Error::Encode(e.to_string()))
}

/// What a party signs: a domain (so a signature over a contract is never a valid
/// signature over anything else dms signs) and the canonical bytes.
pub(crate) fn signing_input(domain: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(domain.len() + bytes.len());
    input.extend_from_slice(domain);
    input.extend_from_slice(bytes);
    input
}

/// The text form of a document's canonical bytes (base64url without padding), for files,
/// command lines and JSON messages.
pub(crate) fn to_text(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of a document's text form; surrounding whitespace is ignored.
pub(crate) fn from_text(text: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|e| Error::Malformed(format!("not a document's text form (base64url): {e}")))
}
