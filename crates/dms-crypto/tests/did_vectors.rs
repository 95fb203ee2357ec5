//! did:key test vectors from the W3C CCG did:key method specification.

use dms_crypto::{Did, KeyPair, KeyType, PublicKey};
use serde::Deserialize;

#[derive(Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    key_type: KeyType,
    did: String,
    seed: String,
    #[serde(rename = "publicKeyBase58")]
    public_key_base58: String,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("data/did-key-vectors.json");
    let file: VectorFile = serde_json::from_str(text).expect("vector file parses");
    file.vectors
}

#[test]
fn vector_file_covers_both_key_types() {
    let vectors = vectors();
    for kind in KeyType::ALL {
        assert_eq!(vectors.iter().filter(|v| v.key_type == kind).count(), 5, "{kind}");
    }
}

#[test]
fn seed_gives_vector_did_and_public_key() {
    for v in vectors() {
        let seed = hex::decode(&v.seed).expect("seed is hex");
        let pair = KeyPair::from_secret_bytes(v.key_type, &seed).expect("valid seed");
        assert_eq!(pair.key_type(), v.key_type);
        assert_eq!(pair.did().as_str(), v.did, "DID of seed {}", v.seed);
        assert_eq!(pair.did().to_string(), v.did);

        let expected =
            bs58::decode(&v.public_key_base58).into_vec().expect("publicKeyBase58 decodes");
        assert_eq!(pair.public().to_bytes(), expected, "public key of {}", v.did);
        assert_eq!(pair.secret_bytes().as_slice(), seed.as_slice());
    }
}

#[test]
fn vector_did_parses_to_the_same_public_key() {
    for v in vectors() {
        let did = Did::parse(&v.did).expect("vector DID parses");
        assert_eq!(did.as_str(), v.did);
        assert_eq!(did.key_type(), v.key_type);
        let expected =
            bs58::decode(&v.public_key_base58).into_vec().expect("publicKeyBase58 decodes");
        assert_eq!(did.public_key().to_bytes(), expected);
        let key = PublicKey::from_bytes(v.key_type, &expected).expect("public key parses");
        assert_eq!(did.public_key(), &key);
        assert_eq!(key.did(), did);

        let seed = hex::decode(&v.seed).expect("seed is hex");
        let pair = KeyPair::from_secret_bytes(v.key_type, &seed).expect("valid seed");
        let sig = pair.sign(v.did.as_bytes());
        did.public_key()
            .verify(v.did.as_bytes(), sig.as_bytes())
            .expect("signature by the vector key verifies against the parsed DID");
    }
}

#[test]
fn did_serde_is_the_string() {
    for v in vectors() {
        let did = Did::parse(&v.did).expect("vector DID parses");
        let json = serde_json::to_string(&did).expect("serialises");
        assert_eq!(json, format!("\"{}\"", v.did));
        let back: Did = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, did);
    }
    let bad = serde_json::from_str::<Did>("\"did:web:example.com\"");
    assert!(bad.is_err());
}
