use super::*;

#[test]
fn name_rule() {
    let long = "a".repeat(MAX_NAME_LEN);
    for ok in ["dms", "a", "node-1", "my_key.v2", "A.b-C_9", "x..y", long.as_str()] {
        assert!(validate_name(ok).is_ok(), "{ok}");
    }
    let too_long = "a".repeat(MAX_NAME_LEN + 1);
    for bad in [
        "",
        ".hidden",
        "..",
        "../x",
        "a/b",
        "a\\b",
        "with space",
        "nul\0",
        "é",
        "key:1",
        too_long.as_str(),
    ] {
        let err = validate_name(bad).expect_err(bad);
        assert!(matches!(err, Error::InvalidKeyName { .. }));
        assert!(err.to_string().contains("1 to 64 characters"), "{err}");
    }
}

#[test]
fn temp_file_is_private_and_removed_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = {
        let temp = TempFile::create(dir.path(), "k").expect("create");
        let mode = temp.file.metadata().expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        let name = temp.path.file_name().and_then(|n| n.to_str()).expect("utf-8");
        assert!(name.starts_with(".k.json.tmp-"), "{name}");
        temp.path.clone()
    };
    assert!(!path.exists());
}

#[test]
fn open_rejects_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain");
    fs::write(&file, b"x").expect("write");
    let err = Keystore::open(&file).expect_err("not a directory");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn path_and_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Keystore::open(dir.path()).expect("open");
    assert_eq!(store.path("dms"), dir.path().join("dms.json"));
    assert!(!store.exists("dms"));
    assert!(!store.exists("../dms"));
    fs::write(store.path("dms"), b"{}").expect("write");
    assert!(store.exists("dms"));
}
