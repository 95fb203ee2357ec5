//! Property tests: signatures and DIDs.

use dms_crypto::{Did, KeyPair, KeyType};
use proptest::prelude::*;

fn key_type() -> impl Strategy<Value = KeyType> {
    prop_oneof![Just(KeyType::Ed25519), Just(KeyType::Secp256k1)]
}

/// A key pair from an arbitrary 32-byte secret (the rare secp256k1 scalars
/// that are out of range are filtered out).
fn key_pair() -> impl Strategy<Value = KeyPair> {
    (key_type(), any::<[u8; 32]>()).prop_filter_map("valid secret", |(kind, secret)| {
        KeyPair::from_secret_bytes(kind, &secret).ok()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sign_verify_round_trip(pair in key_pair(), msg in proptest::collection::vec(any::<u8>(), 0..512)) {
        let sig = pair.sign(&msg);
        prop_assert_eq!(sig.as_bytes().len(), 64);
        prop_assert!(pair.public().verify(&msg, sig.as_bytes()).is_ok());
        // Verification through the DID gives the same answer.
        let did = Did::parse(pair.did().as_str()).expect("own DID parses");
        prop_assert!(did.public_key().verify(&msg, sig.as_bytes()).is_ok());
    }

    #[test]
    fn flipped_message_bit_fails(
        pair in key_pair(),
        msg in proptest::collection::vec(any::<u8>(), 1..256),
        bit in any::<prop::sample::Index>(),
    ) {
        let sig = pair.sign(&msg);
        let mut altered = msg.clone();
        let i = bit.index(altered.len() * 8);
        altered[i / 8] ^= 1 << (i % 8);
        prop_assert!(pair.public().verify(&altered, sig.as_bytes()).is_err());
    }

    #[test]
    fn flipped_signature_bit_fails(
        pair in key_pair(),
        msg in proptest::collection::vec(any::<u8>(), 0..256),
        bit in 0usize..512,
    ) {
        let mut sig = pair.sign(&msg).into_bytes();
        sig[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(pair.public().verify(&msg, &sig).is_err());
    }

    #[test]
    fn did_display_parse_round_trip(pair in key_pair()) {
        let did = pair.did();
        let text = did.to_string();
        let parsed: Did = text.parse().expect("own DID parses");
        prop_assert_eq!(&parsed, &did);
        prop_assert_eq!(parsed.as_str(), text.as_str());
        prop_assert_eq!(parsed.public_key(), &pair.public());
        prop_assert_eq!(parsed.key_type(), pair.key_type());
    }

    #[test]
    fn parse_never_panics(input in "did:key:z[1-9A-HJ-NP-Za-km-z]{0,60}") {
        if let Ok(did) = Did::parse(&input) {
            prop_assert_eq!(did.as_str(), input.as_str());
        }
    }
}
