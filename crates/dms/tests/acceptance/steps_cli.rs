//! Steps for one-shot CLI commands: identity, keystore and configuration.

use std::os::unix::fs::PermissionsExt;

use cucumber::{given, then, when};
use dms_crypto::{KeyPair, KeyType};

use super::daemon::run;
use super::world::DmsWorld;

fn words(command: &str) -> Vec<&str> {
    command.split_whitespace().skip_while(|w| *w == "dms").collect()
}

#[given("a fresh dms home")]
async fn fresh_home(world: &mut DmsWorld) {
    world.add_home();
}

#[given(expr = "a dms home with a node key protected by {string}")]
async fn home_with_key(world: &mut DmsWorld, passphrase: String) {
    let home = world.add_home();
    let out = run(&home, &["key", "new"], &[("DMS_PASSPHRASE", &passphrase)]).await;
    assert!(out.status.success(), "key new failed: {}", out.stderr);
}

#[given(expr = "a second dms home with a node key protected by {string}")]
async fn second_home_with_key(world: &mut DmsWorld, passphrase: String) {
    home_with_key(world, passphrase).await;
}

#[when(expr = "I run {string}")]
async fn run_plain(world: &mut DmsWorld, command: String) {
    let home = world.home(0);
    world.last = Some(run(&home, &words(&command), &[]).await);
}

#[when(expr = "I run {string} with passphrase {string}")]
async fn run_with_passphrase(world: &mut DmsWorld, command: String, passphrase: String) {
    let home = world.home(0);
    world.last = Some(run(&home, &words(&command), &[("DMS_PASSPHRASE", &passphrase)]).await);
}

#[when(expr = "I run {string} with environment {string}")]
async fn run_with_env(world: &mut DmsWorld, command: String, assignment: String) {
    let (key, value) = assignment.split_once('=').expect("NAME=value");
    let home = world.home(0);
    world.last = Some(run(&home, &words(&command), &[(key, value)]).await);
}

#[then("the command succeeds")]
async fn succeeds(world: &mut DmsWorld) {
    let last = world.last();
    assert!(last.status.success(), "command failed: {}\n{}", last.stderr, last.stdout);
}

#[then(expr = "the command fails with {string}")]
async fn fails_with(world: &mut DmsWorld, needle: String) {
    let last = world.last();
    assert!(!last.status.success(), "command succeeded: {}", last.stdout);
    assert!(last.stderr.contains(&needle), "stderr lacks {needle:?}: {}", last.stderr);
}

#[then(expr = "the error contains {string}")]
async fn error_contains(world: &mut DmsWorld, needle: String) {
    let stderr = &world.last().stderr;
    assert!(stderr.contains(&needle), "stderr lacks {needle:?}: {stderr}");
}

#[then(expr = "the output contains {string}")]
async fn output_contains(world: &mut DmsWorld, needle: String) {
    let stdout = &world.last().stdout;
    assert!(stdout.contains(&needle), "stdout lacks {needle:?}: {stdout}");
}

#[then(expr = "the key file {string} has mode {int}")]
async fn key_file_mode(world: &mut DmsWorld, name: String, mode: u32) {
    let meta = std::fs::metadata(world.key_file(&name)).expect("key file exists");
    let octal = u32::from_str_radix(&mode.to_string(), 8).expect("octal mode");
    assert_eq!(meta.permissions().mode() & 0o777, octal);
}

#[then(expr = "{string} prints the DID of key {string}")]
async fn prints_did(world: &mut DmsWorld, command: String, name: String) {
    let home = world.home(0);
    let out = run(&home, &words(&command), &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let did = out.stdout.trim();
    assert!(did.starts_with("did:key:z"), "{did}");
    let file = std::fs::read_to_string(world.key_file(&name)).expect("key file");
    assert!(file.contains(did), "key file does not hold {did}");
    assert!(world.last().stdout.contains(did), "key new printed another DID");
}

#[then(expr = "{string} lists the key {string} of type {string}")]
async fn lists_key(world: &mut DmsWorld, command: String, name: String, key_type: String) {
    let home = world.home(0);
    let out = run(&home, &words(&command), &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let row = out.stdout.lines().find(|l| l.starts_with(&name)).expect("key listed");
    assert!(row.contains(&key_type), "{row}");
    let json = run(&home, &["key", "list", "--output", "json"], &[]).await;
    let keys: serde_json::Value = serde_json::from_str(&json.stdout).expect("json list");
    assert_eq!(keys[0]["name"], name.as_str());
}

#[then(expr = "the key file {string} is unchanged")]
async fn key_file_unchanged(world: &mut DmsWorld, name: String) {
    let (bytes, mtime) = world.key_file_before.clone().expect("key file was recorded");
    let path = world.key_file(&name);
    assert_eq!(std::fs::read(&path).expect("key file"), bytes);
    assert_eq!(std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime"), mtime);
}

#[given(expr = "the {word} secret key {word}")]
async fn vector_key(world: &mut DmsWorld, key_type: String, seed: String) {
    let key_type: KeyType = key_type.parse().expect("key type");
    let seed = hex_decode(&seed);
    let pair = KeyPair::from_secret_bytes(key_type, &seed).expect("vector seed is valid");
    world.vector_did = Some(pair.did().to_string());
}

#[then(expr = "its DID is {string}")]
async fn vector_did(world: &mut DmsWorld, did: String) {
    assert_eq!(world.vector_did.as_deref(), Some(did.as_str()));
    let parsed: dms_crypto::Did = did.parse().expect("vector DID parses");
    assert_eq!(parsed.to_string(), did);
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[then("the config file documents every key with a comment")]
async fn config_documented(world: &mut DmsWorld) {
    let text = std::fs::read_to_string(world.home(0).join("config.toml")).expect("config file");
    let lines: Vec<&str> = text.lines().collect();
    let mut keys = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" = ") && !line.starts_with('#') {
            keys += 1;
            assert!(i > 0 && lines[i - 1].starts_with("# "), "no comment above {line:?}");
        }
    }
    assert_eq!(keys, dms_node::config::KEYS.len(), "every key is in the file");
}

#[then(expr = "{string} prints {string}")]
async fn command_prints(world: &mut DmsWorld, command: String, expected: String) {
    let home = world.home(0);
    let out = run(&home, &words(&command), &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), expected);
}

#[then(expr = "the config file contains {string}")]
async fn config_contains(world: &mut DmsWorld, needle: String) {
    let text = std::fs::read_to_string(world.home(0).join("config.toml")).expect("config file");
    assert!(text.contains(&needle), "{text}");
}
