//! Golden tests over `tests/corpus/`:
//! - `compose/`, `kubernetes/`, `nomad/`: every file translates into an ensemble that
//!   validates (also after writing it out and reading it back); the YAML and the warnings
//!   are pinned in `<file>.golden`.
//! - `invalid/*.yaml`: every error, with its position, is pinned in `<file>.errors`.
//! - `valid/*.yaml`: each loads without errors; warnings are pinned in `<file>.errors`.
//!
//! After an intended change, regenerate with `DMS_BLESS=1 cargo test -p dms-ensemble --test corpus`
//! and review the diff.

use std::path::{Path, PathBuf};

use dms_ensemble::error::render_all;
use dms_ensemble::translate::{Source, translate};

fn corpus(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("corpus directory exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !name.ends_with(".golden") && !name.ends_with(".errors")
        })
        .collect();
    files.sort();
    files
}

fn golden(actual: &str, path: &Path) {
    if std::env::var_os("DMS_BLESS").is_some() {
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!("{} is missing; run with DMS_BLESS=1 to create it", path.display())
    });
    assert_eq!(
        actual,
        expected,
        "{} differs; run with DMS_BLESS=1 to update it after review",
        path.display()
    );
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn label(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).expect("file name").to_string()
}

fn translates(dir: &str, source: Source, at_least: usize) {
    let files = corpus(dir);
    assert!(files.len() >= at_least, "{dir} corpus has {} files, wants {at_least}", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("corpus file");
        let name = label(&file);
        let translation =
            translate(&text, Some(source), &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            translation.errors.is_empty(),
            "{name} translates into an invalid ensemble:\n{}",
            render_all(&translation.errors, &name)
        );
        // Detection agrees with the directory.
        assert_eq!(
            dms_ensemble::translate::detect(&text, &name),
            Some(source),
            "{name}: detected format"
        );
        let yaml = dms_ensemble::to_yaml(&translation.ensemble);
        let loaded = dms_ensemble::load(&yaml).unwrap_or_else(|e| {
            panic!("{name}: output does not load:\n{}", render_all(&e.diagnostics(), &name))
        });
        assert_eq!(loaded.ensemble, translation.ensemble, "{name}: YAML round trip");
        let warnings: Vec<String> =
            render_all(&translation.warnings, &name).lines().map(|l| format!("# {l}")).collect();
        golden(
            &format!("{yaml}\n# warnings:\n{}\n", warnings.join("\n")),
            &with_suffix(&file, ".golden"),
        );
    }
}

#[test]
fn compose_corpus_translates_into_valid_ensembles() {
    translates("compose", Source::Compose, 10);
}

#[test]
fn kubernetes_corpus_translates_into_valid_ensembles() {
    translates("kubernetes", Source::Kubernetes, 10);
}

#[test]
fn nomad_corpus_translates_into_valid_ensembles() {
    translates("nomad", Source::Nomad, 5);
}

#[test]
fn invalid_ensembles_report_every_error_with_its_position() {
    let files = corpus("invalid");
    assert!(files.len() >= 5);
    for file in files {
        let name = label(&file);
        let text = std::fs::read_to_string(&file).expect("corpus file");
        let error = dms_ensemble::load(&text)
            .err()
            .unwrap_or_else(|| panic!("{name} is valid but should not be"));
        let diagnostics = error.diagnostics();
        assert!(
            diagnostics.iter().all(|d| d.position.line > 0),
            "{name}: every error has a position"
        );
        golden(&format!("{}\n", render_all(&diagnostics, &name)), &with_suffix(&file, ".errors"));
    }
}

#[test]
fn valid_ensembles_load() {
    let files = corpus("valid");
    assert!(files.len() >= 2);
    for file in files {
        let name = label(&file);
        let text = std::fs::read_to_string(&file).expect("corpus file");
        let loaded = dms_ensemble::load(&text)
            .unwrap_or_else(|e| panic!("{name}:\n{}", render_all(&e.diagnostics(), &name)));
        golden(
            &format!("{}\n", render_all(&loaded.warnings, &name)),
            &with_suffix(&file, ".errors"),
        );
    }
}
