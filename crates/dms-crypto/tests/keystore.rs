//! Keystore behaviour through the public API.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use dms_crypto::{Error, KeyPair, KeyType, Keystore};
use serde_json::Value;

const PASS: &str = "correct horse battery staple";

fn store() -> (tempfile::TempDir, Keystore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Keystore::open(dir.path().join("keys")).expect("open");
    (dir, store)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A change to a key file's JSON.
type Edit = Box<dyn Fn(&mut Value)>;

/// Rewrites the JSON of key file `name` with `edit`.
fn edit(store: &Keystore, name: &str, edit: impl FnOnce(&mut Value)) {
    let path = store.path(name);
    let mut json: Value = serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
    edit(&mut json);
    fs::write(&path, serde_json::to_vec_pretty(&json).expect("json")).expect("write");
}

#[test]
fn create_load_round_trip_both_types() {
    let (_tmp, store) = store();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    for (name, kind) in [("ed", KeyType::Ed25519), ("k1", KeyType::Secp256k1)] {
        let pair = KeyPair::generate(kind);
        let info = store.create(name, &pair, PASS).expect("create");
        assert_eq!(info.name, name);
        assert_eq!(info.key_type, kind);
        assert_eq!(info.did, pair.did());
        assert!(info.created_at.abs_diff(now) < 60);
        assert!(store.exists(name));
        assert_eq!(store.info(name).expect("info"), info);

        let loaded = store.load(name, PASS).expect("load");
        assert_eq!(loaded.key_type(), kind);
        assert_eq!(loaded.did(), pair.did());
        assert_eq!(*loaded.secret_bytes(), *pair.secret_bytes());
        let sig = loaded.sign(b"after reload");
        pair.public().verify(b"after reload", sig.as_bytes()).expect("same key");
    }
}

#[test]
fn file_format_is_as_documented() {
    let (_tmp, store) = store();
    let pair = KeyPair::generate(KeyType::Ed25519);
    store.create("dms", &pair, PASS).expect("create");
    let text = fs::read_to_string(store.path("dms")).expect("read");
    assert!(!text.contains(&hex::encode(pair.secret_bytes().as_slice())));
    let json: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["version"], 1);
    assert_eq!(json["name"], "dms");
    assert_eq!(json["key_type"], "ed25519");
    assert_eq!(json["did"], pair.did().as_str());
    assert!(json["created_at"].is_u64());
    assert_eq!(json["kdf"]["alg"], "scrypt");
    assert_eq!(json["kdf"]["log_n"], 15);
    assert_eq!(json["kdf"]["r"], 8);
    assert_eq!(json["kdf"]["p"], 1);
    assert_eq!(json["kdf"]["salt"].as_str().expect("salt").len(), 64);
    assert_eq!(json["cipher"]["alg"], "xchacha20poly1305");
    assert_eq!(json["cipher"]["nonce"].as_str().expect("nonce").len(), 48);
    assert_eq!(json["cipher"]["ciphertext"].as_str().expect("ct").len(), 96);
}

#[test]
fn permissions_are_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a").join("keystore");
    let store = Keystore::open(&dir).expect("open creates missing directories");
    assert_eq!(store.dir(), dir);
    assert_eq!(mode(&dir), 0o700);
    store.create("dms", &KeyPair::generate(KeyType::Secp256k1), PASS).expect("create");
    assert_eq!(mode(&store.path("dms")), 0o600);
    // Only the key file is left behind: the temporary file is gone.
    assert_eq!(dir_names(&dir), vec!["dms.json".to_owned()]);
    // Opening again keeps everything.
    let again = Keystore::open(&dir).expect("reopen");
    assert!(again.exists("dms"));
}

#[test]
fn wrong_passphrase_changes_nothing() {
    let (_tmp, store) = store();
    store.create("dms", &KeyPair::generate(KeyType::Ed25519), PASS).expect("create");
    let path = store.path("dms");
    let bytes = fs::read(&path).expect("read");
    let mtime = fs::metadata(&path).expect("meta").modified().expect("mtime");
    let names = dir_names(store.dir());

    let err = store.load("dms", "not the passphrase").expect_err("wrong");
    assert!(matches!(&err, Error::WrongPassphrase { name } if name == "dms"), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("wrong passphrase for key 'dms'"), "{msg}");
    assert!(msg.contains("the key file was not changed"), "{msg}");
    assert!(store.load("dms", "").is_err());

    assert_eq!(fs::read(&path).expect("read"), bytes);
    assert_eq!(fs::metadata(&path).expect("meta").modified().expect("mtime"), mtime);
    assert_eq!(dir_names(store.dir()), names);
    store.load("dms", PASS).expect("right passphrase still works");
}

#[test]
fn never_overwrites() {
    let (_tmp, store) = store();
    let first = KeyPair::generate(KeyType::Ed25519);
    store.create("dms", &first, PASS).expect("create");
    let bytes = fs::read(store.path("dms")).expect("read");
    let err =
        store.create("dms", &KeyPair::generate(KeyType::Ed25519), "other").expect_err("exists");
    assert!(matches!(err, Error::KeyExists { .. }), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(fs::read(store.path("dms")).expect("read"), bytes);
    assert_eq!(store.load("dms", PASS).expect("load").did(), first.did());
    assert_eq!(dir_names(store.dir()), vec!["dms.json".to_owned()]);
}

#[test]
fn bad_names_are_rejected_everywhere() {
    let (tmp, store) = store();
    let pair = KeyPair::generate(KeyType::Ed25519);
    for name in ["", "../x", ".hidden", "a/b", "x y", &"n".repeat(65)] {
        let is_name_error = |r: Result<(), Error>| matches!(r, Err(Error::InvalidKeyName { .. }));
        assert!(is_name_error(store.create(name, &pair, PASS).map(drop)), "{name}");
        assert!(is_name_error(store.load(name, PASS).map(drop)), "{name}");
        assert!(is_name_error(store.info(name).map(drop)), "{name}");
        assert!(!store.exists(name));
    }
    assert!(dir_names(store.dir()).is_empty());
    assert_eq!(dir_names(tmp.path()), vec!["keys".to_owned()]);
}

#[test]
fn missing_key() {
    let (_tmp, store) = store();
    let err = store.load("nope", PASS).expect_err("missing");
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err}");
    assert!(err.to_string().contains(&store.dir().display().to_string()));
    assert!(matches!(store.info("nope"), Err(Error::KeyNotFound { .. })));
}

#[test]
fn edited_header_or_ciphertext_is_detected() {
    let (_tmp, store) = store();
    let other = KeyPair::generate(KeyType::Ed25519).did();
    let other_k1 = KeyPair::generate(KeyType::Secp256k1).did();

    // Each edit must fail authentication (reported as a wrong passphrase that
    // may be a modified file) without touching the file.
    let auth_failures: Vec<(&str, Edit)> = vec![
        ("did", Box::new(move |j| j["did"] = other.as_str().into())),
        ("created_at", Box::new(|j| j["created_at"] = 1.into())),
        (
            "ciphertext",
            Box::new(|j| {
                let ct = j["cipher"]["ciphertext"].as_str().expect("ct");
                let flipped = if ct.starts_with('0') { "1" } else { "0" };
                j["cipher"]["ciphertext"] = format!("{flipped}{}", &ct[1..]).into();
            }),
        ),
        (
            "nonce",
            Box::new(|j| {
                let n = j["cipher"]["nonce"].as_str().expect("nonce");
                let flipped = if n.ends_with('0') { "1" } else { "0" };
                j["cipher"]["nonce"] = format!("{}{flipped}", &n[..n.len() - 1]).into();
            }),
        ),
        ("salt", Box::new(|j| j["kdf"]["salt"] = "00".repeat(32).into())),
    ];
    for (i, (what, change)) in auth_failures.into_iter().enumerate() {
        let name = format!("k{i}");
        store.create(&name, &KeyPair::generate(KeyType::Ed25519), PASS).expect("create");
        edit(&store, &name, change);
        let before = fs::read(store.path(&name)).expect("read");
        let err = store.load(&name, PASS).expect_err(what);
        assert!(matches!(err, Error::WrongPassphrase { .. }), "{what}: {err}");
        assert!(err.to_string().contains("modified"), "{err}");
        assert_eq!(fs::read(store.path(&name)).expect("read"), before);
    }

    // Structural damage is reported as a corrupt file, naming the file.
    let corruptions: Vec<(&str, Edit, &str)> = vec![
        ("bad did", Box::new(|j| j["did"] = "did:key:zzz".into()), "invalid key file"),
        (
            "did of other type",
            Box::new(move |j| j["did"] = other_k1.as_str().into()),
            "key type is ed25519",
        ),
        ("key_type", Box::new(|j| j["key_type"] = "rsa".into()), "invalid key file"),
        ("name", Box::new(|j| j["name"] = "other".into()), "records the key name 'other'"),
        ("version", Box::new(|j| j["version"] = 2.into()), "unsupported key file version 2"),
        ("kdf alg", Box::new(|j| j["kdf"]["alg"] = "pbkdf2".into()), "key derivation"),
        ("kdf cost", Box::new(|j| j["kdf"]["log_n"] = 40.into()), "scrypt parameters"),
        ("cipher alg", Box::new(|j| j["cipher"]["alg"] = "aes".into()), "cipher"),
        ("short ct", Box::new(|j| j["cipher"]["ciphertext"] = "00ff".into()), "ciphertext"),
        ("hex", Box::new(|j| j["cipher"]["nonce"] = "zz".into()), "not valid hex"),
        ("missing", Box::new(|j| j["cipher"] = Value::Null), "invalid key file"),
    ];
    for (i, (what, change, expected)) in corruptions.into_iter().enumerate() {
        let name = format!("c{i}");
        store.create(&name, &KeyPair::generate(KeyType::Ed25519), PASS).expect("create");
        edit(&store, &name, change);
        let err = store.load(&name, PASS).expect_err(what);
        assert!(matches!(err, Error::CorruptKeyFile { .. }), "{what}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&store.path(&name).display().to_string()), "{msg}");
        assert!(msg.contains(expected), "{what}: {msg}");
    }

    fs::write(store.path("garbage"), b"\x00not json").expect("write");
    let err = store.load("garbage", PASS).expect_err("garbage");
    assert!(matches!(err, Error::CorruptKeyFile { .. }), "{err}");
}

#[test]
fn list_is_sorted_and_skips_leftovers() {
    let (_tmp, store) = store();
    assert!(store.list().expect("empty list").is_empty());
    for (name, kind) in
        [("zeta", KeyType::Ed25519), ("Alpha", KeyType::Secp256k1), ("mid-1", KeyType::Ed25519)]
    {
        store.create(name, &KeyPair::generate(kind), PASS).expect("create");
    }
    // Leftovers that are not keys.
    fs::write(store.dir().join(".mid-1.json.tmp-0123456789abcdef"), b"partial").expect("w");
    fs::write(store.dir().join("notes.txt"), b"hello").expect("w");
    fs::write(store.dir().join("bad name.json"), b"{}").expect("w");
    fs::create_dir(store.dir().join("sub.json")).expect("mkdir");

    let infos = store.list().expect("list");
    let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["Alpha", "mid-1", "zeta"]);
    assert_eq!(infos[0].key_type, KeyType::Secp256k1);
    for info in &infos {
        assert_eq!(store.info(&info.name).expect("info"), *info);
    }

    // A KeyInfo serialises with the DID as a string.
    let json = serde_json::to_value(&infos[0]).expect("json");
    assert_eq!(json["did"], infos[0].did.as_str());
    assert_eq!(json["key_type"], "secp256k1");

    fs::write(store.path("broken"), b"{ not json").expect("w");
    let err = store.list().expect_err("corrupt file");
    assert!(matches!(err, Error::CorruptKeyFile { .. }), "{err}");
    assert!(err.to_string().contains("broken.json"), "{err}");
}
