//! Acceptance scenarios: the Gherkin features under `tests/features/` at the
//! repository root, run by cucumber-rs against the real `dms` binary and libraries.
//!
//! Prints a summary with the count of passed scenarios and writes a JUnit report to
//! `target/cucumber/junit.xml`. When a scenario fails, its failed steps are printed once
//! more after the summary and written to `target/cucumber/failures.txt` (which
//! `scripts/test` prints last), so the root cause is the last thing a reader sees.
//! `DMS_TEST_PATIENCE_SECS` (default 30) bounds every wait.
//!
//! `DMS_ACCEPTANCE_STAGE` picks a CI stage's share (see `docs/test-matrix.md`):
//! `functional` runs the scenarios without a network of nodes, `integration` those
//! tagged `@integration` (on the scenario or its Feature: several nodes, devnets,
//! faults); unset runs all. With a stage the report files are named after it
//! (`junit-functional.xml`, `failures-functional.txt`).

mod acceptance {
    pub mod daemon;
    pub mod http;
    pub mod steps_access;
    pub mod steps_agent;
    pub mod steps_cap;
    pub mod steps_cleanup;
    pub mod steps_cli;
    pub mod steps_contracts;
    pub mod steps_dashboard;
    pub mod steps_deploy;
    pub mod steps_devnet;
    pub mod steps_ensemble;
    pub mod steps_hardening;
    pub mod steps_isolated;
    pub mod steps_load;
    pub mod steps_nat;
    pub mod steps_p2p;
    pub mod steps_ports;
    pub mod steps_resources;
    pub mod steps_ssh;
    pub mod steps_storage;
    pub mod steps_store;
    pub mod steps_subnet;
    pub mod steps_supervision;
    pub mod steps_telemetry;
    pub mod steps_vm;
    pub mod world;
}

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use acceptance::world::DmsWorld;
use cucumber::writer::Stats as _;
use cucumber::{World as _, WriterExt as _, writer};

/// Standard output that also keeps a copy of what was written, to digest failures.
#[derive(Clone, Default)]
struct Transcript(Arc<Mutex<Vec<u8>>>);

impl Write for Transcript {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("transcript lock").extend_from_slice(buf);
        std::io::stdout().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// Every failed step with its feature, scenario and the message under it.
fn failures(transcript: &str) -> String {
    let lines: Vec<&str> = transcript.lines().collect();
    let (mut feature, mut scenario) = ("", "");
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("Feature:") {
            feature = trimmed;
        } else if trimmed.starts_with("Scenario") {
            scenario = trimmed;
        } else if trimmed.starts_with('✘') {
            out.push_str(&format!("{feature}\n  {scenario}\n{line}\n"));
            let detail = lines[i + 1..].iter().take_while(|l| {
                let t = l.trim_start();
                !(t.starts_with('✔') || t.starts_with('✘') || t.starts_with("Scenario"))
            });
            for l in detail.take(40) {
                out.push_str(l);
                out.push('\n');
            }
            out.push('\n');
        }
    }
    out
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The share of the scenarios one CI stage runs.
#[derive(Clone, Copy)]
enum Stage {
    All,
    Functional,
    Integration,
}

impl Stage {
    fn from_env() -> Stage {
        match std::env::var("DMS_ACCEPTANCE_STAGE").as_deref() {
            Err(_) | Ok("" | "all") => Stage::All,
            Ok("functional") => Stage::Functional,
            Ok("integration") => Stage::Integration,
            Ok(other) => panic!(
                "DMS_ACCEPTANCE_STAGE={other:?} is not a stage: use functional, integration or all"
            ),
        }
    }

    /// The suffix of this stage's report files.
    fn suffix(self) -> &'static str {
        match self {
            Stage::All => "",
            Stage::Functional => "-functional",
            Stage::Integration => "-integration",
        }
    }

    fn runs(
        self,
        feature: &cucumber::gherkin::Feature,
        rule: Option<&cucumber::gherkin::Rule>,
        scenario: &cucumber::gherkin::Scenario,
    ) -> bool {
        let rule_tags = rule.map(|r| r.tags.as_slice()).unwrap_or_default();
        let mut tags = feature.tags.iter().chain(rule_tags).chain(&scenario.tags);
        let integration = tags.any(|t| t == "integration");
        match self {
            Stage::All => true,
            Stage::Functional => !integration,
            Stage::Integration => integration,
        }
    }
}

#[tokio::main]
async fn main() {
    let features = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/features");
    let stage = Stage::from_env();
    let report_dir = target_dir().join("cucumber");
    std::fs::create_dir_all(&report_dir).expect("create target/cucumber");
    let junit_path = report_dir.join(format!("junit{}.xml", stage.suffix()));
    let junit = std::fs::File::create(&junit_path).expect("create the JUnit report");
    let failures_file = report_dir.join(format!("failures{}.txt", stage.suffix()));
    let _ = std::fs::remove_file(&failures_file);
    let transcript = Transcript::default();
    let writer = DmsWorld::cucumber()
        .max_concurrent_scenarios(4)
        .with_writer(
            writer::Basic::raw(transcript.clone(), writer::Coloring::Never, 0)
                .summarized()
                .tee::<DmsWorld, _>(writer::JUnit::for_tee(junit, 0))
                .normalized(),
        )
        .fail_on_skipped()
        .filter_run(features, move |feature, rule, scenario| stage.runs(feature, rule, scenario))
        .await;
    if writer.execution_has_failed() {
        let text =
            String::from_utf8_lossy(&transcript.0.lock().expect("transcript lock")).into_owned();
        let digest = format!(
            "{} failed step(s), {} parsing error(s), {} hook error(s):\n\n{}",
            writer.failed_steps(),
            writer.parsing_errors(),
            writer.hook_errors(),
            failures(&text)
        );
        std::fs::write(&failures_file, &digest).expect("write failures.txt");
        eprintln!("\n[acceptance] {digest}");
        std::process::exit(1);
    }
}
