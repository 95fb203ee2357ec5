//! The ensemble specification: what a dms user asks to run.
//!
//! An ensemble (YAML or JSON, `version: V1`) names its **allocations** (workloads on the
//! docker, wasm or vm executor, with resources, ports, volumes, environment, health check,
//! dependencies and restart policy), the **nodes** (machines) they are placed on, network
//! **edges** between nodes, a **supervisor** tree, the **subnet**, **scripts**, **keys**,
//! **contracts** and soft **requirements** (price, budget, duration). Quantities use human
//! units (`512MiB`, `2.5GHz`, `100Mbps`, `30s`).
//!
//! [`load`] parses and validates in three passes, reporting *every* problem with its
//! file position, path, what was found, what was expected and a suggestion:
//! 1. syntax ([`tree`]): a positioned tree, with duplicate keys reported;
//! 2. structure ([`schema`]): the tree against the JSON Schema generated from [`model`];
//! 3. meaning ([`semantic`]): placement, references, cycles, ports, executor parameters.
//!
//! # Module map
//! - [`model`]: the V1 types (the format itself; the schema is generated from them).
//! - [`units`]: sizes, frequencies, bandwidths and durations with human units.
//! - [`tree`]: the positioned YAML/JSON tree and its parser; [`emit`] writes YAML back.
//! - [`schema`]: JSON Schema generation and the structural validator.
//! - [`semantic`]: cross-field checks.
//! - [`scaffold`]: commented starter files (`dms scaffold`).
//! - [`translate`]: docker-compose, Kubernetes and Nomad to ensembles, with warnings for
//!   everything that cannot be represented.
//! - [`error`]: [`Diagnostic`] and [`Error`].

pub mod emit;
pub mod error;
pub mod model;
pub mod scaffold;
pub mod schema;
pub mod semantic;
pub mod translate;
pub mod tree;
pub mod units;

pub use error::{Diagnostic, Error, Position, Severity};
pub use model::Ensemble;

/// A valid ensemble, with the warnings found while checking it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The ensemble.
    pub ensemble: Ensemble,
    /// Things that are allowed but probably not meant (never errors).
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates an ensemble from YAML or JSON text.
///
/// # Errors
/// [`Error::Syntax`] when the text is not YAML/JSON; [`Error::Invalid`] with every
/// structural and semantic error (and the warnings) otherwise.
pub fn load(source: &str) -> Result<Loaded, Error> {
    let (tree, mut diagnostics) = tree::parse(source).map_err(Error::Syntax)?;
    diagnostics.extend(schema::check(&tree));
    if !diagnostics.iter().any(Diagnostic::is_error) {
        match serde_json::from_value::<Ensemble>(tree.to_json()) {
            Ok(ensemble) => diagnostics.extend(semantic::check(&ensemble, &tree)),
            // The schema pass accepts only what the types accept; this is a safety net
            // that keeps a gap between the two an error rather than a panic.
            Err(error) => diagnostics.push(Diagnostic::error(
                tree.pos,
                "",
                format!("cannot read the ensemble: {error}"),
            )),
        }
    }
    error::sort(&mut diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(Error::Invalid(diagnostics));
    }
    let ensemble = serde_json::from_value(tree.to_json()).map_err(|e| {
        Error::Invalid(vec![Diagnostic::error(
            tree.pos,
            "",
            format!("cannot read the ensemble: {e}"),
        )])
    })?;
    Ok(Loaded { ensemble, warnings: diagnostics })
}

/// Checks an ensemble value (not text): structure and meaning, without positions.
pub fn check(ensemble: &Ensemble) -> Vec<Diagnostic> {
    match tree::Value::from_serialize(ensemble) {
        Ok(tree) => {
            let mut diagnostics = schema::check(&tree);
            diagnostics.extend(semantic::check(ensemble, &tree));
            error::sort(&mut diagnostics);
            diagnostics
        }
        Err(error) => vec![Diagnostic::error(
            Position::default(),
            "",
            format!("cannot serialize the ensemble: {error}"),
        )],
    }
}

/// The ensemble as YAML, fields in the order of the format.
pub fn to_yaml(ensemble: &Ensemble) -> String {
    let tree = tree::Value::from_serialize(ensemble).expect("an ensemble always serializes");
    emit::to_yaml(&tree)
}

/// The ensemble as pretty JSON, fields in the order of the format.
pub fn to_json(ensemble: &Ensemble) -> String {
    let value = hcl::to_value(ensemble).expect("an ensemble always serializes");
    serde_json::to_string_pretty(&value).expect("a value always serializes")
}
