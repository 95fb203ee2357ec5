//! Decoding hostile bytes and text: garbage, truncation, non-canonical encodings and
//! oversized inputs are refused as `Malformed` / `TooLarge` (and `ChainTooLong`) through
//! `Token::decode`, `Chain::from_bytes` and `Chain::from_text`.

#[macro_use]
mod common;

use common::*;
use dms_ucan::chain::{DEFAULT_MAX_CHAIN_LEN, TEXT_PREFIX};
use dms_ucan::token::DEFAULT_MAX_TOKEN_BYTES;
use dms_ucan::{Chain, Denial, Error, Limits, Reason, Token, Verifier};
use serde_json::json;

const MAX: usize = DEFAULT_MAX_TOKEN_BYTES;

fn cbor<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).expect("encodes")
}

fn sample() -> Chain {
    grant(&alice(), &bob(), &spec_topics(&["/dms/node"], &["/public"]))
}

fn malformed<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Malformed(why)) => why,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn garbage_is_malformed() {
    for garbage in [&b""[..], b"garbage", &[0xFF; 64], &[0x82, 0x00, 0x00], &[0xA0]] {
        malformed(Token::decode(garbage, MAX));
        malformed(Chain::from_bytes(garbage, Limits::default()));
    }
    // A chain whose parts are not tokens.
    malformed(Chain::from_bytes(&cbor(&[serde_bytes::Bytes::new(b"nope")]), Limits::default()));
    // A token where a chain is expected (an array, but of the wrong things).
    malformed(Chain::from_bytes(sample().tokens()[0].bytes(), Limits::default()));

    for text in ["", "dmscap1", "hello", "dmscap2.AAAA", "dmscap1.!!!!", "dmscap1.=", "dmscap1.gg"]
    {
        malformed(Chain::from_text(text, Limits::default()));
    }
    let denial = Denial::from(Chain::from_text("hello", Limits::default()).expect_err("no prefix"));
    assert!(matches!(denial.reason, Reason::Malformed(_)));
    assert_eq!((denial.link, denial.code()), (None, "malformed"));
}

#[test]
fn every_truncation_is_malformed() {
    let chain = sample();
    let token = chain.tokens()[0].bytes();
    for len in 0..token.len() {
        malformed(Token::decode(&token[..len], MAX));
    }
    let bytes = chain.to_bytes();
    for len in 0..bytes.len() {
        malformed(Chain::from_bytes(&bytes[..len], Limits::default()));
    }
    let text = chain.to_text();
    for len in [TEXT_PREFIX.len(), TEXT_PREFIX.len() + 1, text.len() / 2, text.len() - 1] {
        malformed(Chain::from_text(&text[..len], Limits::default()));
    }
}

#[test]
fn trailing_bytes_and_unknown_fields_are_malformed() {
    let chain = sample();
    let mut trailing = chain.tokens()[0].bytes().to_vec();
    trailing.push(0x00);
    malformed(Token::decode(&trailing, MAX));

    // An extra field in the payload, validly signed over by alice.
    let (_, payload) = unwire(&chain.tokens()[0]);
    let mut value: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_value(json!({"typ": "dlg", "extra": 1})).expect("map");
    value.insert("iss".into(), json!(payload.iss.to_string()));
    let bytes = cbor(&(serde_bytes::Bytes::new(&[0u8; 64]), &value));
    malformed(Token::decode(&bytes, MAX));
}

#[test]
fn non_canonical_encoding_is_malformed() {
    let (alice, bob) = (alice(), bob());
    let token = raw(&alice, &bob.did(), &["/dms"], None, |_| {});
    let (signature, p) = unwire(&token);
    let entry = |key: &str, value: Vec<u8>| [cbor(key), value].concat();
    let aud = entry("aud", cbor(&p.aud));
    let cmd = entry("cmd", cbor(&p.cmd));
    let iss = entry("iss", cbor(&p.iss));
    let typ = entry("typ", cbor(&p.typ));
    let nonce = entry("nonce", cbor(serde_bytes::Bytes::new(&p.nonce)));
    let encode = |entries: &[&Vec<u8>]| {
        let mut out = vec![0x82];
        out.extend(cbor(serde_bytes::Bytes::new(&signature)));
        out.push(0xA0 | u8::try_from(entries.len()).expect("few entries"));
        for e in entries {
            out.extend_from_slice(e);
        }
        out
    };
    // Sanity: in DAG-CBOR order (shorter keys first, then bytewise) it is the token.
    let canonical = encode(&[&aud, &cmd, &iss, &typ, &nonce]);
    assert_eq!(canonical, token.bytes());
    assert_eq!(Token::decode(&canonical, MAX).expect("canonical").cid(), token.cid());

    // The same map in other orders: same content, other bytes, refused.
    for order in [
        [&nonce, &aud, &cmd, &iss, &typ],
        [&typ, &iss, &cmd, &aud, &nonce],
        [&aud, &cmd, &iss, &nonce, &typ],
    ] {
        malformed(Token::decode(&encode(&order), MAX));
    }

    // A non-minimal length (the outer array's 2 written in one extra byte).
    let mut long_head = vec![0x98, 0x02];
    long_head.extend_from_slice(&token.bytes()[1..]);
    malformed(Token::decode(&long_head, MAX));
    // The signature as an array of integers instead of a byte string.
    let ints: Vec<u8> = signature.clone();
    let as_array = cbor(&(ints, &p));
    malformed(Token::decode(&as_array, MAX));
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    // Garbage over the limit is TooLarge, not Malformed: it was never parsed.
    let big = vec![0xFF; MAX + 1];
    assert_eq!(
        Token::decode(&big, MAX).map(|_| ()),
        Err(Error::TooLarge { size: MAX + 1, max: MAX })
    );
    assert!(Token::decode(&vec![0xFF; MAX], MAX).is_err_and(|e| matches!(e, Error::Malformed(_))));

    // A genuine, validly signed token that is too big.
    let (alice, bob) = (alice(), bob());
    let token = raw(&alice, &bob.did(), &["/dms"], None, |p| p.args = Some(json!("x".repeat(MAX))));
    let size = token.bytes().len();
    assert!(size > MAX);
    assert_eq!(
        Token::decode(token.bytes(), MAX).map(|_| ()),
        Err(Error::TooLarge { size, max: MAX })
    );
    assert!(Token::decode(token.bytes(), size).is_ok(), "a larger limit accepts it");
    let chain = Chain::new(vec![token]);
    assert_eq!(
        Chain::from_bytes(&chain.to_bytes(), Limits::default()),
        Err(Error::TooLarge { size, max: MAX })
    );
    assert_eq!(
        Chain::from_text(&chain.to_text(), Limits::default()),
        Err(Error::TooLarge { size, max: MAX })
    );
    // Built in memory rather than decoded, the verifier still refuses it, at its index.
    assert_denied!(
        Verifier::default().verify(&chain, NOW),
        Some(0),
        Reason::TooLarge { size: s, max: MAX } if s == size
    );
    let denial = Denial::from(Error::TooLarge { size, max: MAX });
    assert_eq!(denial.reason, Reason::TooLarge { size, max: MAX });
    assert_eq!(denial.code(), "too_large");
}

#[test]
fn oversized_chains_are_refused_before_parsing() {
    let limits = Limits::default();
    let max_total = (MAX + 16) * DEFAULT_MAX_CHAIN_LEN;
    let huge = vec![0xFF; max_total + 1];
    assert_eq!(
        Chain::from_bytes(&huge, limits),
        Err(Error::TooLarge { size: max_total + 1, max: max_total })
    );
    let text = format!("{TEXT_PREFIX}{}", "A".repeat(max_total / 3 * 4 + 8));
    assert!(matches!(Chain::from_text(&text, limits), Err(Error::TooLarge { .. })));
    // Too many parts, however small, are counted before any token is parsed.
    let parts = vec![serde_bytes::ByteBuf::from(vec![0u8]); DEFAULT_MAX_CHAIN_LEN + 1];
    assert_eq!(
        Chain::from_bytes(&cbor(&parts), limits),
        Err(Error::ChainTooLong { len: DEFAULT_MAX_CHAIN_LEN + 1, max: DEFAULT_MAX_CHAIN_LEN })
    );
}

#[test]
fn chain_text_form_round_trips() {
    let verifier = Verifier::default();
    let chain = three_links(&["/dms"], &verifier);
    let text = chain.to_text();
    assert!(text.starts_with("dmscap1."));
    assert!(!text.contains(['=', '+', '/', ' ', '\n']), "one url-safe line");
    assert_eq!(Chain::from_text(&text, Limits::default()), Ok(chain.clone()));
    assert_eq!(Chain::from_text(&format!("  {text}\n"), Limits::default()), Ok(chain.clone()));
    assert_eq!(text.parse::<Chain>(), Ok(chain.clone()));
    assert_eq!(chain.to_string(), text);
    assert_eq!(Chain::from_bytes(&chain.to_bytes(), Limits::default()), Ok(chain.clone()));
    // serde: a JSON string holding the text form.
    let json = serde_json::to_string(&chain).expect("serialize");
    assert_eq!(json, format!("\"{text}\""));
    assert_eq!(serde_json::from_str::<Chain>(&json).expect("deserialize"), chain);
    assert!(serde_json::from_str::<Chain>("\"dmscap1.AAAA\"").is_err());
    // The empty chain too.
    assert_eq!(Chain::from_text(&Chain::empty().to_text(), Limits::default()), Ok(Chain::empty()));
    // A decoded chain still verifies to the same thing.
    let decoded = Chain::from_text(&text, Limits::default()).expect("decode");
    assert_eq!(verify(&decoded), verify(&chain));
}

#[test]
fn token_round_trips_keep_cid_and_payload() {
    let chain = sample();
    let token = &chain.tokens()[0];
    let again = Token::decode(token.bytes(), MAX).expect("decode");
    assert_eq!(again.cid(), token.cid());
    assert_eq!(again.payload(), token.payload());
    assert!(again.verify_signature().is_ok());
    // The content id is a CIDv1, dag-cbor, sha2-256 of the wire bytes.
    let cid = token.cid();
    assert_eq!((cid.version(), cid.codec(), cid.hash().code()), (cid::Version::V1, 0x71, 0x12));
    assert!(cid.to_string().starts_with("bafyrei"), "{cid}");
    // Two grants of the same thing differ by their nonce.
    let other = sample();
    assert_ne!(other.tokens()[0].cid(), token.cid());
}
