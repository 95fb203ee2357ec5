//! The JSON Schema of the format, generated from the model types, and the structural
//! validator that checks a positioned tree against it.
//!
//! Checking against the generated schema (rather than a hand-written decoder) keeps the
//! published schema and the validator from drifting apart: every structural error
//! (unknown key, missing key, wrong type, value not allowed, bad unit) is found by walking
//! the schema, all of them in one pass, each at the position of the offending value.

use std::sync::OnceLock;

use serde_json::{Map, Value as J};

use crate::error::{Diagnostic, did_you_mean};
use crate::model::Ensemble;
use crate::tree::{Kind, Path, Value};
use crate::units;

/// The JSON Schema (draft 2020-12) of an ensemble file.
pub fn json_schema() -> J {
    let settings = schemars::generate::SchemaSettings::draft2020_12();
    let schema = settings.into_generator().into_root_schema_for::<Ensemble>();
    schema.to_value()
}

/// The schema as committed in `docs/ensemble.schema.json`: pretty JSON and a newline.
pub fn json_schema_text() -> String {
    let mut text =
        serde_json::to_string_pretty(&json_schema()).expect("a schema always serializes");
    text.push('\n');
    text
}

fn root() -> &'static J {
    static SCHEMA: OnceLock<J> = OnceLock::new();
    SCHEMA.get_or_init(json_schema)
}

/// Checks `tree` against the ensemble schema; returns every structural error found.
pub fn check(tree: &Value) -> Vec<Diagnostic> {
    let mut walker = Walker { root: root(), out: Vec::new() };
    walker.walk(tree, root(), &Path::default(), tree.pos);
    walker.out
}

struct Walker<'s> {
    root: &'s J,
    out: Vec<Diagnostic>,
}

impl<'s> Walker<'s> {
    /// Follows `$ref`s to the schema that applies.
    fn resolve(&self, mut schema: &'s J) -> &'s J {
        for _ in 0..16 {
            let Some(reference) = schema.get("$ref").and_then(J::as_str) else { break };
            let Some(name) = reference.strip_prefix("#/$defs/") else { break };
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn walk(&mut self, value: &Value, schema: &'s J, path: &Path, pos: crate::Position) {
        let schema = self.resolve(schema);
        if let Some(alternatives) =
            schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(J::as_array)
        {
            self.alternatives(value, alternatives, path, pos);
            return;
        }
        if let Some(allowed) = schema.get("const") {
            self.allowed(value, std::slice::from_ref(allowed), path, pos);
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(J::as_array) {
            self.allowed(value, allowed, path, pos);
            return;
        }
        if !type_matches(value, schema) {
            let expected = expected(schema);
            self.out.push(
                Diagnostic::error(pos, path.to_string(), "wrong type of value")
                    .found(value.describe())
                    .expected(expected),
            );
            return;
        }
        match &value.kind {
            Kind::Map(_) => self.object(value, schema, path),
            Kind::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item, item_schema, &path.index(i), item.pos);
                    }
                }
            }
            Kind::Int(_) | Kind::Float(_) => self.range(value, schema, path, pos),
            Kind::Str(text) => {
                if let Some(format) = schema.get("format").and_then(J::as_str)
                    && let Some(problem) = units::check_format(format, text)
                {
                    self.out.push(
                        Diagnostic::error(
                            pos,
                            path.to_string(),
                            problem.split(" (").next().unwrap_or(&problem).to_string(),
                        )
                        .found(value.describe())
                        .expected(units::describe_format(format).unwrap_or(format)),
                    );
                }
            }
            Kind::Null | Kind::Bool(_) => {}
        }
    }

    fn object(&mut self, value: &Value, schema: &'s J, path: &Path) {
        let entries = value.entries().unwrap_or_default();
        static EMPTY: OnceLock<Map<String, J>> = OnceLock::new();
        let properties = schema
            .get("properties")
            .and_then(J::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new));
        let additional = schema.get("additionalProperties");
        for entry in entries {
            let child = path.key(&entry.key);
            if let Some(property) = properties.get(&entry.key) {
                self.walk(&entry.value, property, &child, entry.key_pos);
            } else if let Some(extra) = additional.filter(|a| a.is_object()) {
                self.walk(&entry.value, extra, &child, entry.key_pos);
            } else if additional == Some(&J::Bool(false)) {
                let names: Vec<&str> = properties.keys().map(String::as_str).collect();
                self.out.push(
                    Diagnostic::error(entry.key_pos, child.to_string(), "unknown key")
                        .found(format!("`{}`", entry.key))
                        .expected(format!("one of: {}", names.join(", ")))
                        .maybe_suggest(did_you_mean(&entry.key, names.iter().copied())),
                );
            }
        }
        let required =
            schema.get("required").and_then(J::as_array).map(Vec::as_slice).unwrap_or_default();
        for name in required.iter().filter_map(J::as_str) {
            if value.get(name).is_none() {
                let mut d = Diagnostic::error(
                    value.pos,
                    path.key(name).to_string(),
                    format!("missing required key `{name}`"),
                );
                if let Some(description) = properties
                    .get(name)
                    .and_then(|p| self.resolve(p).get("description").or(p.get("description")))
                    .and_then(J::as_str)
                {
                    d = d.expected(first_sentence(description));
                }
                self.out.push(d);
            }
        }
    }

    fn range(&mut self, value: &Value, schema: &J, path: &Path, pos: crate::Position) {
        let x = match value.kind {
            Kind::Int(i) => i as f64,
            Kind::Float(x) => x,
            _ => return,
        };
        let min = schema.get("minimum").and_then(J::as_f64);
        let max = schema.get("maximum").and_then(J::as_f64);
        let too_low = min.is_some_and(|m| x < m);
        let too_high = max.is_some_and(|m| x > m);
        if !x.is_finite() || too_low || too_high {
            let expected = match (min, max) {
                (Some(lo), Some(hi)) => format!("a number from {lo} to {hi}"),
                (Some(lo), None) => format!("a number of at least {lo}"),
                (None, Some(hi)) => format!("a number of at most {hi}"),
                (None, None) => "a finite number".into(),
            };
            self.out.push(
                Diagnostic::error(pos, path.to_string(), "number out of range")
                    .found(value.describe())
                    .expected(expected),
            );
        }
    }

    fn allowed(&mut self, value: &Value, allowed: &[J], path: &Path, pos: crate::Position) {
        if allowed.contains(&value.to_json()) {
            return;
        }
        let names: Vec<String> = allowed
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), String::from))
            .collect();
        let suggestion =
            value.as_str().and_then(|s| did_you_mean(s, names.iter().map(String::as_str)));
        self.out.push(
            Diagnostic::error(pos, path.to_string(), "value not allowed")
                .found(value.describe())
                .expected(format!("one of: {}", names.join(", ")))
                .maybe_suggest(suggestion),
        );
    }

    /// `anyOf`/`oneOf`: fine when one alternative fits; otherwise the errors of the
    /// alternative that fits best (fewest errors).
    fn alternatives(
        &mut self,
        value: &Value,
        alternatives: &'s [J],
        path: &Path,
        pos: crate::Position,
    ) {
        // An enum whose variants are documented is a list of `const`s: one message for all.
        let constants: Option<Vec<J>> = alternatives
            .iter()
            .map(|a| {
                let a = self.resolve(a);
                a.get("const")
                    .map(|c| vec![c.clone()])
                    .or_else(|| a.get("enum").and_then(J::as_array).cloned())
            })
            .collect::<Option<Vec<_>>>()
            .map(|lists| lists.concat());
        if let Some(constants) = constants {
            self.allowed(value, &constants, path, pos);
            return;
        }
        let mut best: Option<Vec<Diagnostic>> = None;
        for alternative in alternatives {
            let mut trial = Walker { root: self.root, out: Vec::new() };
            trial.walk(value, alternative, path, pos);
            if trial.out.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| trial.out.len() < b.len()) {
                best = Some(trial.out);
            }
        }
        self.out.extend(best.unwrap_or_default());
    }
}

fn type_matches(value: &Value, schema: &J) -> bool {
    let types: Vec<&str> = match schema.get("type") {
        Some(J::String(t)) => vec![t.as_str()],
        Some(J::Array(ts)) => ts.iter().filter_map(J::as_str).collect(),
        _ => return true,
    };
    types.iter().any(|t| {
        matches!(
            (*t, &value.kind),
            ("null", Kind::Null)
                | ("boolean", Kind::Bool(_))
                | ("string", Kind::Str(_))
                | ("integer", Kind::Int(_))
                | ("number", Kind::Int(_) | Kind::Float(_))
                | ("array", Kind::Seq(_))
                | ("object", Kind::Map(_))
        )
    })
}

fn expected(schema: &J) -> String {
    if let Some(format) = schema.get("format").and_then(J::as_str).and_then(units::describe_format)
    {
        return format.to_string();
    }
    let describe = |t: &str| match t {
        "object" => "a mapping".to_string(),
        "array" => "a list".to_string(),
        "integer" => "an integer".to_string(),
        "number" => "a number".to_string(),
        "string" => "a string".to_string(),
        "boolean" => "true or false".to_string(),
        other => other.to_string(),
    };
    match schema.get("type") {
        Some(J::String(t)) => describe(t),
        Some(J::Array(ts)) => ts
            .iter()
            .filter_map(J::as_str)
            .filter(|t| *t != "null")
            .map(describe)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "something else".into(),
    }
}

fn first_sentence(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    let sentence = line.split_once(". ").map_or(line, |(first, _)| first).trim_end_matches('.');
    let mut chars = sentence.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::parse;

    fn errors(text: &str) -> Vec<String> {
        let (tree, _) = parse(text).expect("parses");
        check(&tree).iter().map(|d| d.render("t.yaml")).collect()
    }

    #[test]
    fn schema_is_generated_from_the_types() {
        let schema = json_schema();
        assert_eq!(schema["title"], "dms ensemble V1");
        assert!(schema["$defs"]["Allocation"]["properties"]["resources"].is_object());
        assert_eq!(schema["$defs"]["ByteSize"]["format"], "byte-size");
    }

    #[test]
    fn reports_wrong_types_and_enums_at_their_positions() {
        let out = errors("version: V2\nallocations: []\nmetadata: {a: 1}\n");
        assert_eq!(out.len(), 3, "{out:#?}");
        assert!(out[0].starts_with("t.yaml:1:1: error: version: value not allowed"), "{}", out[0]);
        assert!(out[1].starts_with("t.yaml:2:1: error: allocations: wrong type of value\n  found:    a list\n  expected: a mapping"), "{}", out[1]);
        assert!(
            out[2].starts_with("t.yaml:3:12: error: metadata.a: wrong type of value"),
            "{}",
            out[2]
        );
    }

    #[test]
    fn unknown_keys_get_suggestions() {
        let out = errors("version: V1\nallocatons: {}\n");
        assert!(
            out.iter().any(|e| e.contains("allocatons: unknown key")
                && e.contains("did you mean `allocations`?")),
            "{out:#?}"
        );
        assert!(out.iter().any(|e| e.contains("missing required key `allocations`")), "{out:#?}");
    }
}
