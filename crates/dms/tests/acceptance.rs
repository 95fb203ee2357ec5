//! Acceptance scenarios: the Gherkin features under `tests/features/` at the
//! repository root, run by cucumber-rs against the real `dms` binary and libraries.
//!
//! Prints a summary with the count of passed scenarios and writes a JUnit report to
//! `target/cucumber/junit.xml`. `DMS_TEST_PATIENCE_SECS` (default 30) bounds every wait.

mod acceptance {
    pub mod daemon;
    pub mod http;
    pub mod steps_access;
    pub mod steps_cap;
    pub mod steps_cli;
    pub mod steps_deploy;
    pub mod steps_devnet;
    pub mod steps_ensemble;
    pub mod steps_p2p;
    pub mod steps_resources;
    pub mod steps_store;
    pub mod steps_supervision;
    pub mod world;
}

use std::path::PathBuf;

use acceptance::world::DmsWorld;
use cucumber::{World as _, WriterExt as _, writer};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

#[tokio::main]
async fn main() {
    let features = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/features");
    let report_dir = target_dir().join("cucumber");
    std::fs::create_dir_all(&report_dir).expect("create target/cucumber");
    let junit = std::fs::File::create(report_dir.join("junit.xml")).expect("create junit.xml");
    DmsWorld::cucumber()
        .max_concurrent_scenarios(4)
        .with_writer(
            writer::Basic::raw(std::io::stdout(), writer::Coloring::Never, 0)
                .summarized()
                .tee::<DmsWorld, _>(writer::JUnit::for_tee(junit, 0))
                .normalized(),
        )
        .fail_on_skipped()
        .run_and_exit(features)
        .await;
}
