use std::collections::BTreeSet;

use super::*;

fn leaf_keys(table: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (section, body) in table {
        for name in body.as_table().expect("sections are tables").keys() {
            keys.insert(format!("{section}.{name}"));
        }
    }
    keys
}

#[test]
fn keys_table_matches_config_struct() {
    let defaults = toml::Table::try_from(Config::default()).expect("serializes");
    let documented: BTreeSet<String> = KEYS.iter().map(|k| k.key.to_string()).collect();
    assert_eq!(leaf_keys(&defaults), documented);
}

#[test]
fn default_file_documents_every_key_and_parses_to_defaults() {
    let text = default_file();
    let parsed: Config = toml::from_str(&text).expect("default file parses");
    assert_eq!(parsed, Config::default());
    let lines: Vec<&str> = text.lines().collect();
    for doc in KEYS {
        let name = doc.key.split_once('.').expect("dotted").1;
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{} missing from default file", doc.key));
        assert!(lines[at - 1].starts_with("# Expected: "), "{} lacks its comment", doc.key);
        assert!(lines[at - 2].starts_with("# "), "{} lacks its doc line", doc.key);
    }
}

#[test]
fn env_overrides_win_and_bad_env_names_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    let config = load_with_env(&path, |var| match var {
        "DMS_API_ADDR" => Some("127.0.0.1:7000".into()),
        "DMS_API_ALLOW_REMOTE" => Some("true".into()),
        "DMS_NODE_SHUTDOWN_TIMEOUT" => Some("3s".into()),
        _ => None,
    })
    .expect("loads");
    assert_eq!(config.api.addr.port(), 7000);
    assert!(config.api.allow_remote);
    assert_eq!(config.node.shutdown_timeout, std::time::Duration::from_secs(3));

    let err = load_with_env(&path, |var| (var == "DMS_API_ADDR").then(|| "nope".into()))
        .expect_err("bad env value");
    let message = err.to_string();
    assert!(message.contains("DMS_API_ADDR"), "{message}");
    assert!(message.contains("api.addr"), "{message}");
    assert!(message.contains("nope"), "{message}");
}

#[test]
fn set_rejects_bad_values_naming_key_value_and_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    init(&path).expect("init");
    let before = std::fs::read_to_string(&path).expect("read");
    for (key, value, needle) in [
        ("api.addr", "localhost", "HOST:PORT"),
        ("api.allow_remote", "yes", "true or false"),
        ("api.max_body_bytes", "-5", "positive whole number"),
        ("node.shutdown_timeout", "soon", "duration"),
        ("log.format", "xml", "text or json"),
    ] {
        let message = set(&path, key, value).expect_err(key).to_string();
        assert!(message.contains(key), "{message}");
        assert!(message.contains(value), "{message}");
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(std::fs::read_to_string(&path).expect("read"), before, "file untouched");
}

#[test]
fn set_keeps_comments_and_checks_cross_key_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    init(&path).expect("init");
    let config = set(&path, "api.addr", "127.0.0.1:9100").expect("set");
    assert_eq!(config.api.addr.port(), 9100);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("addr = \"127.0.0.1:9100\""), "{text}");
    assert!(text.contains("# Address of the local REST API"), "comment kept: {text}");

    let message = set(&path, "api.allow_remote", "true").expect_err("needs token").to_string();
    assert!(message.contains("api.token"), "{message}");
    set(&path, "api.token", "s3cret-s3cret-s3cret").expect("token");
    set(&path, "api.allow_remote", "true").expect("now allowed");
    let loaded = load_with_env(&path, |_| None).expect("load");
    assert!(loaded.api.allow_remote);
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let message = lookup("api.adr").expect_err("unknown").to_string();
    assert!(message.contains("did you mean `api.addr`"), "{message}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[api]\nadress = \"x\"\n").expect("write");
    let message = load_with_env(&path, |_| None).expect_err("unknown key").to_string();
    assert!(message.contains("api.adress"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn bad_value_in_file_is_reported_with_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[api]\naddr = \"127.0.0.1\"\n").expect("write");
    let message = load_with_env(&path, |_| None).expect_err("bad addr").to_string();
    assert!(message.contains("`api.addr`") && message.contains("HOST:PORT"), "{message}");
}
