//! Fuzz targets for every dms decoder reachable from the network or a file, run on
//! stable Rust as ordinary `cargo test` integration tests with a time budget.
//!
//! A [`Target`] calls one public decode entry point exactly as production code calls it
//! on inbound bytes, asserts that decoding never panics, and checks a cheap round-trip
//! property where one exists (`decode(encode(x)) == x`, or decode → encode → decode
//! stable). [`fuzz`] runs a target: it first replays every file of the target's corpus
//! (`corpus/<target>/`, regressions included), then feeds it inputs made by
//! [`arbtest`] for the budget (`DMS_FUZZ_BUDGET_MS`, 2000 ms by default): raw random
//! bytes, mutations of corpus files (bit flips, inserted, deleted and duplicated runs,
//! fragments of the format, splices), and, for the binary formats, structurally valid
//! inputs built from the randomness (signed tokens, chains, envelopes).
//!
//! An input that makes a target panic is written to
//! `target/tmp/dms-fuzz/<target>/crash-<hash>` and the arbtest seed is printed; moving
//! that file into `corpus/<target>/regressions/` makes it a regression test that every
//! run replays (see the README).
//!
//! # Module map
//! - [`harness`]: corpus replay, the budgeted random phase, crash files.
//! - [`mutate`]: how one random input is made from the corpus and the randomness.
//! - [`fixtures`]: named deterministic keys (alice, bob, …), the time, the capability
//!   context of the node under test, random JSON values and policies.
//! - [`targets`]: the targets, one module per crate decoded:
//!   [`targets::actor`] (envelopes, the receive pipeline), [`targets::ucan`] (tokens,
//!   chains), [`targets::ensemble`] (ensembles, translators), [`targets::protocol`]
//!   (protocol messages), [`targets::crypto`] (`did:key`, key files),
//!   [`targets::network`] (direct-message frames), [`targets::node`] (the
//!   configuration file).
//! - [`seeds`]: the generator of the binary seed files of the corpus.

pub mod fixtures;
pub mod harness;
pub mod mutate;
pub mod seeds;
pub mod targets;

pub use harness::{Stats, budget, fuzz};

/// Builds a structurally valid input from the randomness.
pub type Generate =
    fn(&mut arbtest::arbitrary::Unstructured<'_>) -> arbtest::arbitrary::Result<Vec<u8>>;

/// One fuzz target: a decoder and the properties checked on what it accepts.
#[derive(Clone, Copy)]
pub struct Target {
    /// The name: the test's name, and the corpus directory `corpus/<name>/`.
    pub name: &'static str,
    /// Decodes one input the way production does and asserts the properties; returns
    /// whether the input was accepted (decoded). Panics on a violated property.
    pub check: fn(&[u8]) -> bool,
    /// Builds a structurally valid input from the randomness, for formats (binary,
    /// signed) that mutations and noise rarely get through.
    pub generate: Option<Generate>,
    /// Fragments of the format that mutations insert (keys, prefixes, numbers).
    pub dictionary: &'static [&'static str],
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish_non_exhaustive()
    }
}
