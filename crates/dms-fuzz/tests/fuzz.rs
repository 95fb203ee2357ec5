//! One test per fuzz target: replay `corpus/<target>/` (regressions included), then
//! random inputs for `DMS_FUZZ_BUDGET_MS` (default 2000 ms). Run one target longer with
//! `DMS_FUZZ_BUDGET_MS=600000 cargo test -p dms-fuzz --release --test fuzz -- --exact <target>`.

use dms_fuzz::targets::{self, actor, crypto, ensemble, network, node, protocol, ucan};
use dms_fuzz::{Target, fuzz};

fn run(target: &Target) {
    let stats = fuzz(target);
    assert!(stats.random > 0, "{}: no random input ran within the budget", target.name);
}

#[test]
fn frame() {
    run(&network::FRAME);
}

#[test]
fn envelope() {
    run(&actor::ENVELOPE);
}

#[test]
fn router() {
    run(&actor::ROUTER);
}

#[test]
fn token() {
    run(&ucan::TOKEN);
}

#[test]
fn chain() {
    run(&ucan::CHAIN);
}

#[test]
fn did() {
    run(&crypto::DID);
}

#[test]
fn request() {
    run(&protocol::REQUEST);
}

#[test]
fn response() {
    run(&protocol::RESPONSE);
}

#[test]
fn ensemble() {
    run(&ensemble::ENSEMBLE);
}

#[test]
fn compose() {
    run(&ensemble::COMPOSE);
}

#[test]
fn kubernetes() {
    run(&ensemble::KUBERNETES);
}

#[test]
fn nomad() {
    run(&ensemble::NOMAD);
}

#[test]
fn keyfile() {
    run(&crypto::KEYFILE);
}

#[test]
fn config() {
    run(&node::CONFIG);
}

/// Every target has a test above (by name) and a corpus directory.
#[test]
fn every_target_is_tested_and_has_a_corpus() {
    let source = include_str!("fuzz.rs");
    for target in targets::ALL {
        assert!(source.contains(&format!("fn {}()", target.name)), "no test for {}", target.name);
        let dir = dms_fuzz::harness::corpus_dir(target);
        assert!(dir.is_dir(), "{}: no corpus directory {}", target.name, dir.display());
    }
    let names: std::collections::BTreeSet<_> = targets::ALL.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), targets::ALL.len(), "target names are unique");
}

/// Writes the generated seeds into `corpus/` (files already there are kept).
#[test]
#[ignore = "writes the seed corpus; run by hand after changing a format"]
fn write_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let written = dms_fuzz::seeds::write(&root).expect("the corpus is writable");
    eprintln!("wrote {written} seed files under {}", root.display());
}
