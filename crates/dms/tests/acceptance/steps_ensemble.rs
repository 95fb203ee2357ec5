//! Steps for ensemble files: `dms validate`, `dms scaffold`, `dms translate`.

use std::path::PathBuf;

use cucumber::{gherkin::Step, given, then, when};

use super::daemon::run;
use super::world::DmsWorld;

/// Where scenario files live: beside the scenario's first home, in its temporary dir.
fn file(world: &DmsWorld, name: &str) -> PathBuf {
    world.homes.first().expect("the scenario created a home").path().join(name)
}

fn corpus(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dms-ensemble/tests/corpus").join(relative)
}

#[given(expr = "an ensemble file {string} with:")]
async fn ensemble_file(world: &mut DmsWorld, name: String, step: &Step) {
    let text = step.docstring.as_ref().expect("the step has a doc string");
    std::fs::write(file(world, &name), text.trim_start_matches('\n')).expect("write the file");
}

#[when(expr = "I validate {string}")]
async fn validate(world: &mut DmsWorld, name: String) {
    let path = file(world, &name);
    let home = world.home(0);
    world.last = Some(run(&home, &["validate", path.to_str().expect("utf-8 path")], &[]).await);
}

#[when(expr = "I scaffold an ensemble for {string} into {string}")]
async fn scaffold(world: &mut DmsWorld, executor: String, name: String) {
    let path = file(world, &name);
    let home = world.home(0);
    let out = run(
        &home,
        &["scaffold", "--executor", &executor, "--out", path.to_str().expect("utf-8 path")],
        &[],
    )
    .await;
    assert!(out.status.success(), "scaffold failed: {}", out.stderr);
}

#[when(expr = "I translate the corpus file {string}")]
async fn translate_corpus(world: &mut DmsWorld, relative: String) {
    let path = corpus(&relative);
    let home = world.home(0);
    world.last = Some(run(&home, &["translate", path.to_str().expect("utf-8 path")], &[]).await);
}

#[when(expr = "I translate {string}")]
async fn translate_file(world: &mut DmsWorld, name: String) {
    let path = file(world, &name);
    let home = world.home(0);
    world.last = Some(run(&home, &["translate", path.to_str().expect("utf-8 path")], &[]).await);
}

#[then("the translation validates")]
async fn translation_validates(world: &mut DmsWorld) {
    let output = world.last().stdout.clone();
    let path = file(world, "translated.yaml");
    std::fs::write(&path, output).expect("write the translation");
    let home = world.home(0);
    let out = run(&home, &["validate", path.to_str().expect("utf-8 path")], &[]).await;
    assert!(out.status.success(), "the translation does not validate:\n{}", out.stderr);
}
