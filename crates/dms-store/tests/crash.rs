//! Crash safety: a child process commits one transaction per key and reports each key on
//! stdout only after its commit returned; the parent kills it with SIGKILL at a varying point,
//! reopens the database and checks that every reported key is there, in the repository and in
//! the indexed collection written by the same transactions.
//!
//! The child is this test binary itself, re-executed to run only [`crash_child_writer`], which
//! does nothing unless `DMS_CRASH_CHILD_DB` is set. This works under `cargo test` and
//! `cargo nextest run` alike, since both run libtest binaries.
//!
//! `DMS_CRASH_ITERATIONS` overrides the number of kill/reopen cycles (default 20).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::ops::Bound;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use dms_store::{Plan, Query, Repo, Store};
use serde_json::json;

const CHILD_TEST: &str = "crash_child_writer";
const CHILD_DB_ENV: &str = "DMS_CRASH_CHILD_DB";
const CHILD_START_ENV: &str = "DMS_CRASH_CHILD_START";
const ITERATIONS_ENV: &str = "DMS_CRASH_ITERATIONS";
const DEFAULT_ITERATIONS: u64 = 20;
const REPORT_PREFIX: &str = "COMMITTED ";
/// The child stops on its own after this many keys, in case nobody kills it.
const CHILD_MAX_KEYS: u64 = 100_000;

const KEYS: Repo<String> = Repo::new("crash_keys");
const DOCS: &str = "crash_docs";

fn key_for(i: u64) -> String {
    format!("k{i:08}")
}

/// A deterministic value of varying size (up to a few pages), so commits touch varying
/// numbers of pages.
fn value_for(i: u64) -> String {
    let len = usize::try_from((i * 7919) % 9000).unwrap_or(0);
    format!("value-{i}-{}", "x".repeat(len))
}

/// The child: writes keys from `DMS_CRASH_CHILD_START` on, one durable transaction each,
/// printing each key after its commit returned, until killed.
#[test]
#[ignore = "child process of crash_recovery_keeps_every_reported_commit; does nothing on its own"]
fn crash_child_writer() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else {
        return;
    };
    let start: u64 = std::env::var(CHILD_START_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let store = Store::open(&path).expect("child: open");
    let docs = store.collection(DOCS);
    store.write(|tx| docs.ensure_index(tx, "n")).expect("child: ensure_index");
    let stdout = std::io::stdout();
    for i in start..start + CHILD_MAX_KEYS {
        let key = key_for(i);
        let value = value_for(i);
        store
            .write(|tx| {
                KEYS.put(tx, &key, &value)?;
                docs.insert(tx, &key, &json!({ "n": i, "v": value }))
            })
            .expect("child: write");
        // Written straight to stdout (not through the test harness capture), after commit.
        let mut out = stdout.lock();
        if writeln!(out, "{REPORT_PREFIX}{key}").and_then(|()| out.flush()).is_err() {
            // The parent is gone.
            return;
        }
    }
}

fn spawn_child(db: &Path, start: u64, stderr_log: &Path) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let stderr = std::fs::File::create(stderr_log).expect("stderr log");
    Command::new(exe)
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB_ENV, db)
        .env(CHILD_START_ENV, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn child")
}

/// Small deterministic generator (SplitMix64), so a failing run can be reproduced.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs one child, kills it after `kill_after` reported keys, and returns the indices of all
/// keys it reported (including those still in the pipe when it died).
fn run_and_kill(db: &Path, start: u64, kill_after: u64, stderr_log: &Path) -> Vec<u64> {
    let mut child = spawn_child(db, start, stderr_log);
    let mut stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut reported = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        let n = stdout.read_line(&mut line).expect("read child stdout");
        if n == 0 {
            break;
        }
        // A line cut short by the kill was not fully reported: ignore it. The report may
        // follow the harness's own "test crash_child_writer ... " on the same line.
        let Some(key) = line
            .strip_suffix('\n')
            .and_then(|l| l.find(REPORT_PREFIX).map(|at| &l[at + REPORT_PREFIX.len()..]))
        else {
            continue;
        };
        let i: u64 = key
            .strip_prefix('k')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad report line {line:?}"));
        reported.push(i);
        if !killed && reported.len() as u64 >= kill_after {
            // SIGKILL on unix: no destructors, no flush, no clean close of the database.
            child.kill().expect("kill child");
            killed = true;
        }
    }
    let status = child.wait().expect("wait child");
    if !killed {
        let stderr = std::fs::read_to_string(stderr_log).unwrap_or_default();
        panic!(
            "child exited ({status}) after reporting {} of {kill_after} keys; stderr:\n{stderr}",
            reported.len()
        );
    }
    reported
}

#[test]
fn crash_recovery_keeps_every_reported_commit() {
    let iterations = std::env::var(ITERATIONS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("home").join("dms.redb");
    let stderr_log = dir.path().join("child-stderr.log");
    let mut rng = 0x5EED_u64;
    let mut all_reported: Vec<u64> = Vec::new();
    let mut next_start = 0;
    let started = Instant::now();
    let mut reopen_total = std::time::Duration::ZERO;
    let mut unreported = 0;

    for iteration in 0..iterations {
        let kill_after = 20 + next_random(&mut rng) % 281; // 20..=300
        let reported = run_and_kill(&db, next_start, kill_after, &stderr_log);
        assert!(reported.len() as u64 >= kill_after);
        next_start = reported.last().map_or(next_start, |last| last + 1);
        all_reported.extend(reported);

        let t = Instant::now();
        let store = Store::open(&db)
            .unwrap_or_else(|e| panic!("iteration {iteration}: reopen after SIGKILL: {e}"));
        reopen_total += t.elapsed();
        let stored = verify(&store, &all_reported, iteration);
        // The child may have committed one more key than it reported (killed between commit
        // and print), but never anything else.
        let reported_keys: BTreeSet<String> = all_reported.iter().map(|&i| key_for(i)).collect();
        let extra: Vec<&String> = stored.iter().filter(|k| !reported_keys.contains(*k)).collect();
        assert!(
            extra.is_empty() || extra == [&key_for(next_start)],
            "iteration {iteration}: unexpected keys {extra:?}"
        );
        unreported += extra.len();
    }
    eprintln!(
        "crash test: {iterations} kills, {} reported commits verified, {unreported} found \
         committed-but-unreported, {:.2?} total, {:.2?} spent reopening",
        all_reported.len(),
        started.elapsed(),
        reopen_total
    );
}

/// Every reported key is present with its value, in the repository and in the collection, and
/// the collection's index agrees with its documents. Returns the stored keys.
fn verify(store: &Store, reported: &[u64], iteration: u64) -> Vec<String> {
    let tx = store.read().expect("read");
    let docs = store.collection(DOCS);
    for &i in reported {
        let key = key_for(i);
        let value = value_for(i);
        assert_eq!(
            KEYS.get(&tx, &key).expect("get").as_deref(),
            Some(value.as_str()),
            "iteration {iteration}: reported key {key} lost from the repository"
        );
        assert_eq!(
            docs.get(&tx, &key).expect("get doc"),
            Some(json!({ "n": i, "v": value })),
            "iteration {iteration}: reported key {key} lost from the collection"
        );
    }
    // Atomicity across tables: the repository and the collection hold the same keys, and the
    // index lists exactly the stored documents.
    let repo_keys: Vec<String> =
        KEYS.list(&tx).expect("list").into_iter().map(|(k, _)| k).collect();
    let all = Query::new().range("n", Bound::Unbounded, Bound::Unbounded);
    assert_eq!(docs.explain(&tx, &all).expect("explain"), Plan::Index { field: "n".to_owned() });
    let indexed: Vec<String> =
        docs.find(&tx, &all).expect("find").into_iter().map(|(k, _)| k).collect();
    let scanned: Vec<String> =
        docs.find(&tx, &Query::new()).expect("scan").into_iter().map(|(k, _)| k).collect();
    assert_eq!(repo_keys, scanned, "iteration {iteration}: repository and collection diverged");
    assert_eq!(indexed, scanned, "iteration {iteration}: index and documents diverged");
    scanned
}
