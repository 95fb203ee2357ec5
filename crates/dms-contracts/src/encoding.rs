//! Canonical encoding, content ids and signing input, the way capability tokens are
//! made (`dms-ucan`): DAG-CBOR, a CIDv1 of its SHA-256, a domain-separated signature.

use cid::Cid;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

/// Multicodec of DAG-CBOR.
const DAG_CBOR: u64 = 0x71;
/// Multihash code of SHA2-256.
const SHA2_256: u64 = 0x12;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| Error::Encode(e.to_string()))
}

pub(crate) fn content_id(bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    let hash = cid::multihash::Multihash::<64>::wrap(SHA2_256, &digest)
        .expect("a 32-byte digest fits a 64-byte multihash");
    Cid::new_v1(DAG_CBOR, hash)
}

/// What a party signs: a domain (so a signature over a contract is never a valid
/// signature over anything else dms signs) and the canonical bytes.
pub(crate) fn signing_input(domain: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(domain.len() + bytes.len());
    input.extend_from_slice(domain);
    input.extend_from_slice(bytes);
    input
}
