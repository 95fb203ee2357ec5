//! Real third-party files (`tests/corpus/real/`, listed with their sources and licenses
//! in `tests/corpus/real/SOURCES.md`, kept unmodified): every file is translated and the
//! result validated; the success rate of each format is reported and must stay at or above
//! its floor. Compose files get the `.env` beside them and no other variables (the
//! process environment is not read, so the result does not depend on the machine).
//!
//! A file is **in scope** when it holds something the translator is meant to run:
//! - compose: a non-empty `services` mapping;
//! - Kubernetes: at least one workload (Pod, Deployment, StatefulSet, DaemonSet,
//!   ReplicaSet, ReplicationController, Job, CronJob), also inside a `List`;
//! - Nomad: at least one task with the `docker` or `podman` driver.
//!
//! Out of scope, besides: a file holding only comments, and a Kubernetes "manifest" that
//! is a template for a script to render (it does not parse as YAML and holds `{{`). A
//! file that does not parse otherwise is in scope, and fails. Files out of scope are
//! counted and listed separately, never silently, and the translator must refuse them
//! (the report shows with what message).
//!
//! The report is written to stderr directly (not through `eprintln!`), so `cargo test`
//! shows it even when the test passes. `DMS_CORPUS_VERBOSE=1` adds every warning.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use dms_ensemble::Error;
use dms_ensemble::translate::{Options, Source, translate_with};
use dms_ensemble::tree::{self, Value};

/// Lowest share of in-scope files that must translate into a valid ensemble: what was
/// reached when the corpus was set up (70/71, 125/126, 82/84), so that any file that stops
/// translating fails the test. Raise a floor when a fix lifts the rate.
const FLOORS: [(&str, Source, f64); 3] = [
    ("compose", Source::Compose, 0.985),
    ("kubernetes", Source::Kubernetes, 0.99),
    ("nomad", Source::Nomad, 0.975),
];

/// Kubernetes kinds the translator runs.
const WORKLOADS: [&str; 8] = [
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/real")
}

/// Every input file under `dir`, recursively, sorted (`.env` files are inputs of their
/// neighbours, not files of their own).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("corpus directory") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != ".env") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Why a file is out of scope, or `None` when it is in scope.
fn out_of_scope(source: Source, text: &str) -> Option<String> {
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with(['#', '/'])) {
        return Some("no content: comments only".into());
    }
    match source {
        Source::Compose => {
            let (doc, _) = tree::parse(text).ok()?;
            let services = doc.get("services").and_then(Value::entries).map_or(0, <[_]>::len);
            (services == 0).then(|| "no services".to_string())
        }
        Source::Kubernetes => {
            let Ok((docs, _)) = tree::parse_documents(text) else {
                return text.contains("{{").then(|| {
                    "a template for a script to render (`{{…}}`), not a manifest".to_string()
                });
            };
            let kinds = kinds(&docs);
            (!kinds.iter().any(|k| WORKLOADS.contains(&k.as_str())))
                .then(|| format!("no workload kind (found: {})", kinds.join(", ")))
        }
        Source::Nomad => {
            let doc: hcl::Value = hcl::from_str(text).ok()?;
            let drivers = drivers(&doc);
            (!drivers.iter().any(|d| d == "docker" || d == "podman"))
                .then(|| format!("no docker or podman task (drivers: {})", drivers.join(", ")))
        }
    }
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for doc in docs {
        if let Some(items) = doc.get("items").and_then(Value::items) {
            out.extend(kinds(items));
        }
        if let Some(kind) = doc.get("kind").and_then(Value::as_str) {
            out.push(kind.to_string());
        }
    }
    out
}

/// The drivers of every task of every job (blocks may repeat, as lists).
fn drivers(doc: &hcl::Value) -> Vec<String> {
    fn each(value: Option<&hcl::Value>) -> Vec<&hcl::Value> {
        match value {
            Some(hcl::Value::Object(map)) => map.values().flat_map(|v| each(Some(v))).collect(),
            Some(hcl::Value::Array(items)) => items.iter().collect(),
            _ => Vec::new(),
        }
    }
    fn blocks<'v>(value: &'v hcl::Value, key: &str) -> Vec<&'v hcl::Value> {
        match value {
            hcl::Value::Object(map) => match map.get(key) {
                Some(hcl::Value::Object(labelled)) => labelled
                    .values()
                    .flat_map(|v| match v {
                        hcl::Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    })
                    .collect(),
                other => each(other),
            },
            hcl::Value::Array(items) => items.iter().flat_map(|i| blocks(i, key)).collect(),
            _ => Vec::new(),
        }
    }
    let mut out = Vec::new();
    for job in blocks(doc, "job") {
        // A task may sit straight under the job (a group of its own).
        for group in blocks(job, "group").into_iter().chain([job]) {
            for task in blocks(group, "task") {
                if let Some(hcl::Value::String(driver)) =
                    task.as_object().and_then(|t| t.get("driver"))
                {
                    out.push(driver.clone());
                }
            }
        }
    }
    out
}

/// What became of one file.
enum Outcome {
    Valid,
    Failed(String),
    OutOfScope(String),
}

fn run(source: Source, file: &Path) -> Outcome {
    let text = std::fs::read_to_string(file).expect("corpus file is UTF-8");
    let name = file.strip_prefix(root()).unwrap_or(file).display().to_string();
    let dot_env =
        file.parent().map(|d| d.join(".env")).and_then(|p| std::fs::read_to_string(p).ok());
    let options = Options { from: Some(source), environment: BTreeMap::new(), dot_env };
    let result = translate_with(&text, &name, &options);
    if std::env::var_os("DMS_CORPUS_VERBOSE").is_some() {
        let diagnostics = match &result {
            Ok(t) => t.warnings.iter().chain(&t.errors).cloned().collect(),
            Err(e) => e.diagnostics(),
        };
        let _ =
            writeln!(std::io::stderr(), "{}", dms_ensemble::error::render_all(&diagnostics, &name));
    }
    if let Some(why) = out_of_scope(source, &text) {
        return match result {
            Err(Error::Untranslatable(message)) => {
                Outcome::OutOfScope(format!("{why}; refused: {message}"))
            }
            Err(other) => Outcome::OutOfScope(format!("{why}; refused: {other}")),
            Ok(_) => Outcome::Failed(format!("out of scope ({why}) but translated")),
        };
    }
    match result {
        Ok(t) if t.errors.is_empty() => Outcome::Valid,
        Ok(t) => Outcome::Failed(format!(
            "{} error(s), first: {}: {}",
            t.errors.len(),
            t.errors[0].path,
            t.errors[0].message
        )),
        Err(Error::Syntax(d)) => Outcome::Failed(format!(
            "syntax at {}: {}{}",
            d.position,
            d.message,
            d.found
                .as_deref()
                .map(|f| format!(" ({})", f.lines().next().unwrap_or("")))
                .unwrap_or_default()
        )),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// The report of one format and its in-scope success rate.
fn measure(dir: &str, source: Source) -> (String, usize, f64) {
    let mut report = String::new();
    let (mut valid, mut failed, mut out) = (0, Vec::new(), Vec::new());
    let files = files(&root().join(dir));
    for file in &files {
        let name = file.strip_prefix(root()).unwrap_or(file).display().to_string();
        match run(source, file) {
            Outcome::Valid => valid += 1,
            Outcome::Failed(why) => failed.push(format!("  FAIL {name}: {why}")),
            Outcome::OutOfScope(why) => out.push(format!("  out of scope {name}: {why}")),
        }
    }
    let in_scope = valid + failed.len();
    let rate = if in_scope == 0 { 0.0 } else { valid as f64 / in_scope as f64 };
    report.push_str(&format!(
        "{dir}: {valid}/{in_scope} in-scope files translate and validate ({:.1} %); {} file(s) out of scope; {} file(s) in all\n",
        rate * 100.0,
        out.len(),
        files.len()
    ));
    for line in failed.iter().chain(&out) {
        report.push_str(line);
        report.push('\n');
    }
    (report, files.len(), rate)
}

#[test]
fn real_files_translate_and_validate() {
    let mut report = String::from("\n== real-world translator corpus ==\n");
    let mut total = 0;
    let mut below = Vec::new();
    for (dir, source, floor) in FLOORS {
        let (text, count, rate) = measure(dir, source);
        report.push_str(&text);
        total += count;
        if rate < floor {
            below.push(format!(
                "{dir}: {:.1} % is below the floor of {:.1} %",
                rate * 100.0,
                floor * 100.0
            ));
        }
    }
    // Straight to the stream: the test harness captures `eprintln!`, not this.
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(total >= 100, "the real corpus holds {total} files; it must hold at least 100");
    assert!(below.is_empty(), "{}\n{report}", below.join("\n"));
}
