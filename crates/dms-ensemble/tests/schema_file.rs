//! The committed JSON Schema (`docs/ensemble.schema.json`) is the one generated from the
//! model types. After changing the model, regenerate it with
//! `DMS_BLESS=1 cargo test -p dms-ensemble --test schema_file` and commit the result.

use std::path::Path;

#[test]
fn committed_schema_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ensemble.schema.json");
    let generated = dms_ensemble::schema::json_schema_text();
    if std::env::var_os("DMS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/ensemble.schema.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("docs/ensemble.schema.json exists");
    assert!(
        committed == generated,
        "docs/ensemble.schema.json is out of date; regenerate it with \
         `DMS_BLESS=1 cargo test -p dms-ensemble --test schema_file`"
    );
}

#[test]
fn every_corpus_ensemble_example_is_described_by_the_schema() {
    // The schema's top level lists exactly the fields of the model.
    let schema = dms_ensemble::schema::json_schema();
    let properties = schema["properties"].as_object().expect("object schema");
    for key in [
        "version",
        "allocations",
        "nodes",
        "edges",
        "supervisor",
        "subnet",
        "scripts",
        "keys",
        "metadata",
        "exclude_peers",
        "contracts",
        "requirements",
        "escalation",
    ] {
        assert!(properties.contains_key(key), "schema lacks {key}");
    }
    assert_eq!(schema["required"], serde_json::json!(["version", "allocations"]));
}
