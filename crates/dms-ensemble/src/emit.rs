//! Writing a value tree as block-style YAML that [`crate::tree::parse`] reads back to the
//! same tree: strings that would read as something else are double-quoted.

use crate::tree::{Kind, Value, resolve};

/// The YAML text of `value` (a mapping at the top, as ensembles are).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match &value.kind {
        Kind::Map(entries) if !entries.is_empty() => map(value, 0, &mut out),
        Kind::Seq(items) if !items.is_empty() => seq(value, 0, &mut out),
        _ => {
            out.push_str(&scalar(value));
            out.push('\n');
        }
    }
    out
}

fn map(value: &Value, indent: usize, out: &mut String) {
    let Kind::Map(entries) = &value.kind else { return };
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&string(&entry.key));
        out.push(':');
        nested(&entry.value, indent + 2, out);
    }
}

fn seq(value: &Value, indent: usize, out: &mut String) {
    let Kind::Seq(items) = &value.kind else { return };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match &item.kind {
            Kind::Map(entries) if !entries.is_empty() => map(item, indent + 2, out),
            Kind::Seq(inner) if !inner.is_empty() => seq(item, indent + 2, out),
            _ => {
                out.push_str(&scalar(item));
                out.push('\n');
            }
        }
    }
}

/// The value after `key:` — on the same line for scalars and empty collections, else on
/// the next lines, indented.
fn nested(value: &Value, indent: usize, out: &mut String) {
    match &value.kind {
        Kind::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            map(value, indent, out);
        }
        Kind::Seq(items) if !items.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            seq(value, indent, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar(value));
            out.push('\n');
        }
    }
}

fn scalar(value: &Value) -> String {
    match &value.kind {
        Kind::Null => "null".into(),
        Kind::Bool(b) => b.to_string(),
        Kind::Int(i) => i.to_string(),
        Kind::Float(x) if x.is_nan() => ".nan".into(),
        Kind::Float(x) if x.is_infinite() => if *x > 0.0 { ".inf" } else { "-.inf" }.into(),
        Kind::Float(x) => format!("{x:?}"),
        Kind::Str(s) => string(s),
        Kind::Seq(_) => "[]".into(),
        Kind::Map(_) => "{}".into(),
    }
}

/// A string plain when that reads back as the same string, else double-quoted.
pub fn string(s: &str) -> String {
    let plain_chars = s.chars().all(|c| c.is_ascii_alphanumeric() || "._/-:@+=".contains(c));
    let starts_well =
        s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || "./_".contains(c));
    let plain =
        plain_chars && starts_well && !s.ends_with(':') && matches!(resolve(s), Kind::Str(_));
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string always serializes to JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::parse;

    fn round_trip(text: &str) {
        let (tree, problems) = parse(text).expect("parses");
        assert!(problems.is_empty());
        let emitted = to_yaml(&tree);
        let (again, _) = parse(&emitted).expect("emitted YAML parses");
        assert_eq!(tree.to_json(), again.to_json(), "{emitted}");
    }

    #[test]
    fn nested_structures_round_trip() {
        round_trip(
            "a:\n  b: [1, 2.5, {c: d}]\n  e: []\n  f: {}\nlist:\n  - - x\n    - y\n  - z: 1\n    w: null\n",
        );
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        assert_eq!(string("true"), "\"true\"");
        assert_eq!(string("8080"), "\"8080\"");
        assert_eq!(string("nginx:1.27"), "nginx:1.27");
        assert_eq!(string("has space"), "\"has space\"");
        assert_eq!(string(""), "\"\"");
        assert_eq!(string("-x"), "\"-x\"");
        assert_eq!(string("a:"), "\"a:\"");
        round_trip("s: \"line\\nbreak # not a comment\"\nt: \"~\"\nu: \".inf\"\n");
    }

    /// Only a plain `<<` merges: a key named "<<" (quoted) is written and read back as
    /// a key (found by the property test `write_then_read_is_identity`).
    #[test]
    fn a_quoted_merge_key_is_a_plain_key() {
        round_trip("metadata:\n  \"<<\": \"\"\n  x: 1\n");
        let (tree, problems) = parse("base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n").expect("parses");
        assert!(problems.is_empty(), "{problems:?}");
        let m = tree.get("m").expect("m");
        assert!(m.get("x").is_some() && m.get("<<").is_none(), "a plain << still merges");
    }
}
