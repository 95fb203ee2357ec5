use super::*;
use crate::key::KeyPair;

const ED_DID: &str = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
const K1_DID: &str = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme";

fn did_from_payload(payload: &[u8]) -> String {
    format!("did:key:z{}", bs58::encode(payload).into_string())
}

fn with_codec(codec: &[u8], key: &[u8]) -> String {
    let mut payload = codec.to_vec();
    payload.extend_from_slice(key);
    did_from_payload(&payload)
}

#[test]
fn parses_valid_dids() {
    let ed = Did::parse(ED_DID).expect("valid");
    assert_eq!(ed.key_type(), KeyType::Ed25519);
    assert_eq!(ed.as_str(), ED_DID);
    assert_eq!(ed.to_string(), ED_DID);
    let k1: Did = K1_DID.parse().expect("valid");
    assert_eq!(k1.key_type(), KeyType::Secp256k1);
    assert_eq!(k1.public_key().to_bytes().len(), 33);
    assert!(ed < k1 || k1 < ed);
    assert_eq!(format!("{ed:?}"), format!("Did(\"{ED_DID}\")"));
}

#[test]
fn rejects_wrong_prefix() {
    for input in [
        "",
        "did:web:example.com",
        "DID:KEY:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        " did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
    ] {
        let err = Did::parse(input).expect_err(input);
        assert!(matches!(err, Error::DidPrefix { .. }), "{input}: {err}");
        assert!(err.to_string().contains("must start with 'did:key:'"));
    }
}

#[test]
fn rejects_non_base58btc_multibase() {
    for input in ["did:key:", "did:key:f01ed", "did:key:Z6Mk", "did:key:u7QE"] {
        let err = Did::parse(input).expect_err(input);
        assert!(matches!(err, Error::DidMultibase { .. }), "{input}: {err}");
        assert!(err.to_string().contains("base58btc"));
    }
}

#[test]
fn rejects_bad_base58() {
    for input in [
        "did:key:z",
        "did:key:z6Mk0OIl",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp#z6Mk",
    ] {
        let err = Did::parse(input).expect_err(input);
        assert!(matches!(err, Error::DidBase58 { .. }), "{input}: {err}");
        assert!(err.to_string().contains("invalid base58btc"));
    }
}

#[test]
fn rejects_unknown_multicodec() {
    let key = [9u8; 33];
    // p256-pub (0x1200), x25519-pub (0xec), a non-minimal 0xed, a truncated varint.
    let cases: [(&[u8], &str); 4] = [
        (&[0x80, 0x24], "0x1200"),
        (&[0xec, 0x01], "0xec"),
        (&[0xed, 0x81, 0x00], "non-minimal"),
        (&[0xff], "unreadable"),
    ];
    for (codec, expected) in cases {
        let input = with_codec(codec, if codec.len() == 1 { &[] } else { &key });
        let err = Did::parse(&input).expect_err(&input);
        assert!(matches!(err, Error::DidMulticodec { .. }), "{input}: {err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    // Leading '1's decode to leading zero bytes: not a multicodec we know.
    let err = Did::parse(&format!("did:key:z1{}", &ED_DID[9..])).expect_err("leading zero");
    assert!(matches!(err, Error::DidMulticodec { .. }), "{err}");
}

#[test]
fn rejects_wrong_key_length() {
    let cases = [
        with_codec(&[0xed, 0x01], &[1u8; 31]),
        with_codec(&[0xed, 0x01], &[1u8; 33]),
        with_codec(&[0xed, 0x01], &[]),
        with_codec(&[0xe7, 0x01], &[2u8; 32]),
        // An uncompressed secp256k1 point is not a valid did:key encoding.
        with_codec(&[0xe7, 0x01], &[4u8; 65]),
    ];
    for input in cases {
        let err = Did::parse(&input).expect_err(&input);
        assert!(matches!(err, Error::DidKeyLength { .. }), "{input}: {err}");
        assert!(err.to_string().contains("expected"));
    }
}

#[test]
fn rejects_invalid_points() {
    let mut bad_k1 = [0xffu8; 33];
    bad_k1[0] = 0x02; // x >= p
    let mut bad_tag = [0x11u8; 33];
    bad_tag[0] = 0x05;
    let mut identity = [0u8; 32];
    identity[0] = 1; // Ed25519 identity point: small order
    let mut cases = vec![
        with_codec(&[0xe7, 0x01], &bad_k1),
        with_codec(&[0xe7, 0x01], &bad_tag),
        with_codec(&[0xed, 0x01], &identity),
    ];
    // About half of all y coordinates are not on the Edwards curve.
    let off_curve = (2u8..=255)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|b| {
            PublicKey::from_bytes(KeyType::Ed25519, b)
                .is_err_and(|e| e.to_string().contains("not a point"))
        })
        .expect("some small y is off the curve");
    cases.push(with_codec(&[0xed, 0x01], &off_curve));
    for input in cases {
        let err = Did::parse(&input).expect_err(&input);
        assert!(matches!(err, Error::DidInvalidKey { .. }), "{input}: {err}");
        assert!(err.to_string().contains("does not hold a valid"));
    }
}

#[test]
fn error_messages_are_distinct_per_layer() {
    let inputs = [
        "did:web:x".to_owned(),
        "did:key:f00".to_owned(),
        "did:key:z0".to_owned(),
        with_codec(&[0xec, 0x01], &[1u8; 32]),
        with_codec(&[0xed, 0x01], &[1u8; 3]),
        with_codec(&[0xe7, 0x01], &[0xffu8; 33]),
    ];
    let messages: std::collections::HashSet<String> = inputs
        .iter()
        .map(|i| {
            let msg = Did::parse(i).expect_err(i).to_string();
            // Strip the input so only the wording is compared.
            msg.replace(i.as_str(), "")
        })
        .collect();
    assert_eq!(messages.len(), inputs.len());
}

#[test]
fn public_key_did_round_trip() {
    for kind in KeyType::ALL {
        let pair = KeyPair::generate(kind);
        let did = pair.did();
        assert_eq!(did, pair.public().did());
        assert_eq!(did, Did::from(&pair.public()));
        let parsed = Did::parse(did.as_str()).expect("own DID parses");
        assert_eq!(parsed, did);
        assert_eq!(parsed.public_key(), &pair.public());
        let prefix = match kind {
            KeyType::Ed25519 => "did:key:z6Mk",
            KeyType::Secp256k1 => "did:key:zQ3s",
        };
        assert!(did.as_str().starts_with(prefix), "{did}");
    }
}
