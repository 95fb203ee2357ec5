use super::*;

/// secp256k1 group order n, big-endian.
const ORDER: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
/// floor(n / 2), big-endian: the largest low-S value.
const HALF_ORDER: &str = "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0";

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("valid hex")
}

#[test]
fn key_type_names() {
    for kind in KeyType::ALL {
        assert_eq!(kind.to_string().parse::<KeyType>().expect("round trip"), kind);
        let json = serde_json::to_string(&kind).expect("serialises");
        assert_eq!(json, format!("\"{kind}\""));
        assert_eq!(serde_json::from_str::<KeyType>(&json).expect("parses"), kind);
    }
    assert_eq!("ED25519".parse::<KeyType>().expect("case"), KeyType::Ed25519);
    assert_eq!("Secp256K1".parse::<KeyType>().expect("case"), KeyType::Secp256k1);
    let err = "rsa".parse::<KeyType>().expect_err("unknown");
    assert!(matches!(err, Error::UnknownKeyType { .. }));
    assert!(err.to_string().contains("ed25519, secp256k1"), "{err}");
    assert!(serde_json::from_str::<KeyType>("\"Ed25519\"").is_err());
}

#[test]
fn rfc8032_test_vector_1() {
    let pair = KeyPair::from_secret_bytes(
        KeyType::Ed25519,
        &unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
    )
    .expect("valid seed");
    assert_eq!(
        pair.public().to_bytes(),
        unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    );
    let sig = pair.sign(b"");
    assert_eq!(
        sig.as_bytes(),
        unhex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        )
    );
    pair.public().verify(b"", sig.as_ref()).expect("verifies");
}

#[test]
fn secret_bytes_round_trip() {
    for kind in KeyType::ALL {
        let pair = KeyPair::generate(kind);
        let secret = pair.secret_bytes();
        assert_eq!(secret.len(), 32);
        let again = KeyPair::from_secret_bytes(kind, &secret).expect("own secret");
        assert_eq!(again.public(), pair.public());
        assert_eq!(again.key_type(), kind);
    }
}

#[test]
fn generated_keys_differ() {
    for kind in KeyType::ALL {
        assert_ne!(KeyPair::generate(kind).public(), KeyPair::generate(kind).public());
    }
}

#[test]
fn rejects_bad_secrets() {
    for kind in KeyType::ALL {
        for len in [0, 31, 33, 64] {
            let err = KeyPair::from_secret_bytes(kind, &vec![1u8; len]).expect_err("length");
            assert!(matches!(err, Error::InvalidSecretKey { .. }), "{err}");
            assert!(err.to_string().contains("expected 32 bytes"), "{err}");
        }
    }
    for scalar in [vec![0u8; 32], unhex(ORDER), vec![0xff; 32]] {
        let err = KeyPair::from_secret_bytes(KeyType::Secp256k1, &scalar).expect_err("range");
        assert!(err.to_string().contains("curve order"), "{err}");
    }
}

#[test]
fn debug_hides_secrets() {
    for kind in KeyType::ALL {
        let pair = KeyPair::generate(kind);
        let debug = format!("{pair:?}");
        let secret = hex::encode(pair.secret_bytes().as_slice());
        assert!(!debug.contains(&secret), "{debug}");
        assert!(!debug.contains(&secret.to_uppercase()));
        assert!(debug.contains(pair.did().as_str()), "{debug}");
        let bytes = format!("{:?}", pair.secret_bytes().as_slice());
        assert!(!debug.contains(&bytes[1..bytes.len() - 1]));
    }
}

#[test]
fn secp256k1_signatures_are_low_s_and_deterministic() {
    let pair = KeyPair::from_secret_bytes(KeyType::Secp256k1, &[0x42; 32]).expect("valid");
    let half = unhex(HALF_ORDER);
    for i in 0..64u8 {
        let msg = [i; 17];
        let sig = pair.sign(&msg);
        assert_eq!(sig.as_bytes().len(), 64);
        assert!(sig.as_bytes()[32..] <= half[..], "high S for message {i}");
        assert_eq!(pair.sign(&msg), sig, "RFC 6979 is deterministic");
        pair.public().verify(&msg, sig.as_bytes()).expect("verifies");
    }
}

#[test]
fn secp256k1_high_s_is_rejected() {
    let pair = KeyPair::from_secret_bytes(KeyType::Secp256k1, &[0x24; 32]).expect("valid");
    let sig = pair.sign(b"msg");
    let parsed = k256::ecdsa::Signature::from_slice(sig.as_bytes()).expect("valid");
    let (r, s) = parsed.split_scalars();
    let high_s = -*s.as_ref();
    let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), high_s.to_bytes())
        .expect("valid scalars");
    let err = pair.public().verify(b"msg", &high.to_bytes()).expect_err("high S must be rejected");
    assert!(matches!(err, Error::BadSignature));
}

#[test]
fn ecdsa_is_over_sha256() {
    use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
    use k256::sha2::Digest as _;
    let pair = KeyPair::from_secret_bytes(KeyType::Secp256k1, &[0x11; 32]).expect("valid");
    let sig = pair.sign(b"payload");
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&pair.public().to_bytes()).expect("key");
    let parsed = k256::ecdsa::Signature::from_slice(sig.as_bytes()).expect("sig");
    key.verify_prehash(&k256::sha2::Sha256::digest(b"payload"), &parsed)
        .expect("signature is over SHA-256(msg)");
}

#[test]
fn verify_rejects_malformed_and_foreign_signatures() {
    let ed = KeyPair::generate(KeyType::Ed25519);
    let k1 = KeyPair::generate(KeyType::Secp256k1);
    for pair in [&ed, &k1] {
        let public = pair.public();
        let sig = pair.sign(b"m");
        for bad in [&[][..], &sig.as_bytes()[..63], &[0u8; 64][..], &[0u8; 65][..]] {
            assert!(matches!(public.verify(b"m", bad), Err(Error::BadSignature)));
        }
        assert!(public.verify(b"other", sig.as_bytes()).is_err());
    }
    assert!(k1.public().verify(b"m", ed.sign(b"m").as_bytes()).is_err());
    assert!(ed.public().verify(b"m", k1.sign(b"m").as_bytes()).is_err());
}

#[test]
fn public_key_parsing() {
    let pair = KeyPair::generate(KeyType::Secp256k1);
    let compressed = pair.public().to_bytes();
    assert_eq!(compressed.len(), 33);
    let uncompressed = k256::ecdsa::VerifyingKey::from_sec1_bytes(&compressed)
        .expect("valid")
        .to_sec1_point(false);
    let from_uncompressed =
        PublicKey::from_bytes(KeyType::Secp256k1, uncompressed.as_bytes()).expect("65 bytes ok");
    assert_eq!(from_uncompressed, pair.public());
    assert_eq!(from_uncompressed.to_bytes(), compressed);

    let mut wrong_tag = uncompressed.as_bytes().to_vec();
    wrong_tag[0] = 0x02;
    assert!(PublicKey::from_bytes(KeyType::Secp256k1, &wrong_tag).is_err());
    for len in [0, 32, 34, 64] {
        let err = PublicKey::from_bytes(KeyType::Secp256k1, &vec![2u8; len]).expect_err("len");
        assert!(matches!(err, Error::InvalidPublicKey { .. }), "{err}");
    }
    for len in [0, 31, 33] {
        assert!(PublicKey::from_bytes(KeyType::Ed25519, &vec![2u8; len]).is_err());
    }
    // Non-canonical Ed25519 encoding: y = p + 1 (canonically 1).
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    assert!(PublicKey::from_bytes(KeyType::Ed25519, &non_canonical).is_err());

    let ed = KeyPair::generate(KeyType::Ed25519).public();
    assert_ne!(
        PublicKey::from_bytes(KeyType::Ed25519, &ed.to_bytes()).expect("own key"),
        pair.public()
    );
    let debug = format!("{ed:?}");
    assert!(debug.contains(&hex::encode(ed.to_bytes())), "{debug}");
}

#[test]
fn signature_container() {
    let sig = Signature::from_bytes(&[1, 2, 3]);
    assert_eq!(sig.as_bytes(), &[1, 2, 3]);
    assert_eq!(sig.as_ref(), &[1, 2, 3]);
    assert_eq!(Signature::from(vec![1, 2, 3]), sig);
    assert_eq!(format!("{sig:?}"), "Signature(010203)");
    assert_eq!(sig.into_bytes(), vec![1, 2, 3]);
}

#[test]
fn secret_hex_round_trips_and_refuses_garbage() {
    for kind in [KeyType::Ed25519, KeyType::Secp256k1] {
        let key = KeyPair::generate(kind);
        let back = KeyPair::from_secret_hex(kind, &key.secret_hex()).expect("round trip");
        assert_eq!(back.did(), key.did());
    }
    assert!(KeyPair::from_secret_hex(KeyType::Ed25519, "not hex").is_err());
    assert!(KeyPair::from_secret_hex(KeyType::Ed25519, "abcd").is_err(), "too short");
}
