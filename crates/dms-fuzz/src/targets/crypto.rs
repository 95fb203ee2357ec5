//! `dms-crypto`: `did:key` identifiers (in every envelope, token, handle and protocol
//! message) and key files (read from `$DMS_HOME/keys/` at start-up and by `dms key`).

use std::path::PathBuf;
use std::sync::OnceLock;

use arbtest::arbitrary::{Result, Unstructured};
use dms_crypto::{Did, KeyType, Keystore};
use serde_json::Value;

use crate::Target;
use crate::fixtures::keys;

/// [`Did::parse`], as every decoder of a DID calls it.
pub const DID: Target = Target {
    name: "did",
    check: did,
    generate: Some(generate_did),
    dictionary: &["did:key:", "z", "z6Mk", "zQ3s", "1", "did:web:"],
};

/// [`Keystore::info`], [`Keystore::list`] and [`Keystore::load`] on a key file.
pub const KEYFILE: Target = Target {
    name: "keyfile",
    check: keyfile,
    generate: None,
    dictionary: &["\"version\": ", "\"log_n\": 1", "\"key_type\": \"secp256k1\"", "null", "00"],
};

/// Parses (the bytes as text); an accepted DID is canonical (prints as its input),
/// parses again to itself, and its key type is the one it encodes.
pub fn did(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Ok(did) = Did::parse(&text) else { return false };
    assert_eq!(did.as_str(), text, "a key has exactly one did:key");
    let again = Did::parse(did.as_str()).expect("a DID's own text parses");
    assert_eq!(again, did);
    assert_eq!(again.public_key().key_type(), did.key_type());
    let json = serde_json::to_string(&did).expect("a DID serializes");
    assert_eq!(serde_json::from_str::<Did>(&json).ok(), Some(did), "DIDs survive JSON");
    true
}

/// `did:key:z` and the base58 of a multicodec (Ed25519, secp256k1 or another) and key
/// bytes of about the right length.
pub fn generate_did(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let (codec, len): ([u8; 2], usize) = *u.choose(&[([0xed, 1], 32), ([0xe7, 1], 33)])?;
    let mut bytes = if u.ratio(7u8, 8)? { codec.to_vec() } else { u.bytes(2)?.to_vec() };
    let len = if u.ratio(7u8, 8)? { len } else { u.int_in_range(0..=40)? };
    let mut key = u.bytes(len.min(u.len()))?.to_vec();
    if codec[0] == 0xe7 && u.ratio(3u8, 4)? && !key.is_empty() {
        key[0] = *u.choose(&[2u8, 3])?;
    }
    bytes.extend(key);
    Ok(format!("did:key:z{}", bs58::encode(bytes).into_string()).into_bytes())
}

/// The key name the target's files are stored under.
const NAME: &str = "fuzz";
/// The passphrase [`Keystore::load`] is tried with.
const PASSPHRASE: &str = "correct horse battery staple";

fn keystore() -> &'static (tempfile::TempDir, Keystore) {
    static STORE: OnceLock<(tempfile::TempDir, Keystore)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let keystore = Keystore::open(dir.path().join("keys")).expect("a keystore opens");
        (dir, keystore)
    })
}

/// Stores the bytes as key `fuzz`, reads its public description and lists the store;
/// an accepted file describes itself consistently, and decrypting it (when its scrypt
/// cost is small enough to try on every input) fails cleanly or gives its key.
pub fn keyfile(bytes: &[u8]) -> bool {
    let (_, keystore) = keystore();
    std::fs::write(keystore.path(NAME), bytes).expect("the key file is written");
    let listed = keystore.list();
    let Ok(info) = keystore.info(NAME) else {
        assert!(listed.is_err(), "list() reports an unreadable key file");
        return false;
    };
    assert_eq!(info.name, NAME, "a key file records its own name");
    assert_eq!(info.did.key_type(), info.key_type, "a key file's DID holds its key type");
    let listed = listed.expect("list() reads what info() reads");
    assert_eq!(listed.len(), 1);
    if cheap_kdf(bytes)
        && let Ok(pair) = keystore.load(NAME, PASSPHRASE)
    {
        assert_eq!(pair.did(), info.did, "a decrypted key is the one its file names");
    }
    true
}

/// Whether the file's scrypt parameters cost at most a few hundred KiB and a millisecond.
fn cheap_kdf(bytes: &[u8]) -> bool {
    let Ok(file) = serde_json::from_slice::<Value>(bytes) else { return false };
    let param = |name: &str| file["kdf"][name].as_u64().unwrap_or(u64::MAX);
    param("log_n") <= 10 && param("r") <= 8 && param("p") <= 2
}

/// Seeds: real key files of both key types, and one whose scrypt cost was lowered so
/// the target decrypts its mutations (it fails authentication: the cost is bound in).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let keystore = Keystore::open(dir.path()).expect("a keystore opens");
    let mut files = Vec::new();
    for (file, key) in [("ed25519.json", &keys()[0]), ("secp256k1.json", &keys()[5])] {
        let path: PathBuf = keystore.path(NAME);
        keystore.create(NAME, key, PASSPHRASE).expect("a key file is written");
        files.push((file, std::fs::read(&path).expect("the key file reads")));
        std::fs::remove_file(path).expect("the key file is removed");
    }
    let cheap = String::from_utf8_lossy(&files[0].1).replace("\"log_n\": 15", "\"log_n\": 4");
    files.push(("cheap-kdf.json", cheap.into_bytes()));
    assert_eq!(keys()[5].did().key_type(), KeyType::Secp256k1);
    files
}
