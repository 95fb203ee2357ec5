//! `dms-ensemble`: ensemble files (YAML or JSON, read by `dms deploy` and `dms ensemble
//! check`) and the translators from docker-compose, Kubernetes and Nomad (HCL or JSON)
//! files (`dms ensemble translate`).

use dms_ensemble::model::Ensemble;
use dms_ensemble::translate::{self, Source};
use dms_ensemble::{Diagnostic, Loaded};

use crate::Target;

/// [`dms_ensemble::load`], as `dms deploy` calls it on a file.
pub const ENSEMBLE: Target = Target {
    name: "ensemble",
    check: ensemble,
    generate: None,
    dictionary: &[
        "version: V1\n",
        "allocations:\n",
        "nodes:\n",
        "  ",
        "- ",
        ": ",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "&a ",
        "*a",
        "!!str ",
        "|\n",
        "<<: ",
        "512MiB",
        "2.5GHz",
        "30s",
        "1e400",
        "executor: wasm",
        "type: service",
        "ports: [",
        "depends_on: [",
        "supervisor:",
    ],
};

/// [`translate::translate`] from docker-compose.
pub const COMPOSE: Target = Target {
    name: "compose",
    check: compose,
    generate: None,
    dictionary: &[
        "services:\n",
        "  ",
        "- ",
        ": ",
        "image: ",
        "ports:\n",
        "- \"8080:80\"",
        "deploy:",
        "volumes:",
        "environment:",
        "depends_on:",
        "healthcheck:",
        "${X:-y}",
        "0.5",
        "1g",
    ],
};

/// [`translate::translate`] from Kubernetes manifests (one or many documents).
pub const KUBERNETES: Target = Target {
    name: "kubernetes",
    check: kubernetes,
    generate: None,
    dictionary: &[
        "---\n",
        "apiVersion: v1\n",
        "kind: Pod\n",
        "kind: Deployment\n",
        "containers:",
        "resources:",
        "limits:",
        "cpu: 500m",
        "memory: 1Gi",
        "nvidia.com/gpu: 1",
        "  ",
        "- ",
    ],
};

/// [`translate::translate`] from Nomad job files in HCL or JSON.
pub const NOMAD: Target = Target {
    name: "nomad",
    check: nomad,
    generate: None,
    dictionary: &[
        "job \"a\" {\n",
        "group \"g\" {\n",
        "task \"t\" {\n",
        "}\n",
        "driver = \"docker\"",
        "config {",
        "resources {",
        "cpu = 500",
        "memory = 256",
        "count = 3",
        "${",
        "\"Job\"",
        "<<EOF\nx\nEOF\n",
        "[",
        "]",
        "=",
    ],
};

/// Loads (the bytes as text, as a file read as UTF-8 would be); an accepted ensemble
/// written back as YAML and as JSON loads again to itself, and checking the value (as
/// the orchestrator checks a submitted one) finds no error.
pub fn ensemble(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let _ = dms_ensemble::tree::parse_documents(&text);
    let Ok(Loaded { ensemble, .. }) = dms_ensemble::load(&text) else { return false };
    round_trip(&ensemble);
    true
}

/// Writing `ensemble` out as YAML and as JSON and loading it back gives it again, and
/// [`dms_ensemble::check`] agrees that it is valid.
pub fn round_trip(ensemble: &Ensemble) {
    let yaml = dms_ensemble::to_yaml(ensemble);
    match dms_ensemble::load(&yaml) {
        Ok(loaded) => assert_eq!(&loaded.ensemble, ensemble, "YAML round trip:\n{yaml}"),
        Err(error) => panic!("a valid ensemble's YAML does not load: {error}\n{yaml}"),
    }
    let json = dms_ensemble::to_json(ensemble);
    match dms_ensemble::load(&json) {
        Ok(loaded) => assert_eq!(&loaded.ensemble, ensemble, "JSON round trip:\n{json}"),
        Err(error) => panic!("a valid ensemble's JSON does not load: {error}\n{json}"),
    }
    let errors: Vec<Diagnostic> =
        dms_ensemble::check(ensemble).into_iter().filter(Diagnostic::is_error).collect();
    assert!(errors.is_empty(), "a loaded ensemble fails check(): {errors:?}\n{yaml}");
}

fn compose(bytes: &[u8]) -> bool {
    translated(bytes, Source::Compose, "docker-compose.yml")
}

fn kubernetes(bytes: &[u8]) -> bool {
    translated(bytes, Source::Kubernetes, "manifest.yaml")
}

fn nomad(bytes: &[u8]) -> bool {
    translated(bytes, Source::Nomad, "job.nomad.hcl")
}

/// Translates from `source` (and with the format detected, as without `--from`); a
/// translation without errors is a valid ensemble that survives [`round_trip`].
fn translated(bytes: &[u8], source: Source, file_name: &str) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let _ = translate::detect(&text, file_name);
    let _ = translate::translate(&text, None, "input");
    let Ok(translation) = translate::translate(&text, Some(source), file_name) else {
        return false;
    };
    if translation.errors.is_empty() {
        round_trip(&translation.ensemble);
    }
    true
}
