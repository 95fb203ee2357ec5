//! Policies: predicates over an invocation's arguments, after the UCAN 1.0 policy
//! language (a subset: comparisons, glob `like`, `not`, `and`, `or`, with `.a.b[0]`
//! selectors).
//!
//! Every policy of every token in a chain must hold for an invocation, so a delegate can
//! only add constraints: policies tighten along a chain and can never loosen.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// One predicate. Selectors are `.`, `.field`, `.field.sub`, `.list[2]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Predicate {
    /// The selected value equals `value`.
    Eq(String, Value),
    /// The selected value differs from `value` (or is absent).
    Ne(String, Value),
    /// The selected number is less than the number.
    Lt(String, f64),
    /// The selected number is at most the number.
    Le(String, f64),
    /// The selected number is greater than the number.
    Gt(String, f64),
    /// The selected number is at least the number.
    Ge(String, f64),
    /// The selected string matches a glob where `*` matches any run of characters.
    Like(String, String),
    /// The inner predicate does not hold.
    Not(Box<Predicate>),
    /// Every inner predicate holds.
    And(Vec<Predicate>),
    /// At least one inner predicate holds (an empty `or` holds).
    Or(Vec<Predicate>),
}

/// Deepest nesting of `not`/`and`/`or` accepted.
pub const MAX_DEPTH: usize = 16;

fn select<'a>(value: &'a Value, selector: &str) -> Result<Option<&'a Value>, Error> {
    let bad = |reason: &str| Error::InvalidPolicy(format!("selector {selector:?}: {reason}"));
    let Some(mut rest) = selector.strip_prefix('.') else {
        return Err(bad("must start with '.'"));
    };
    // The whole selector is parsed even once the value is missing, so that a malformed
    // selector is an error whatever the arguments.
    let mut current = Some(value);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| bad("unclosed '['"))?;
            let index: usize = after[..end].parse().map_err(|_| bad("index is not a number"))?;
            current = current.and_then(|v| v.get(index));
            rest = &after[end + 1..];
        } else {
            let rest_field = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_field.find(['.', '[']).unwrap_or(rest_field.len());
            let field = &rest_field[..end];
            if field.is_empty() {
                return Err(bad("empty field name"));
            }
            current = current.and_then(|v| v.get(field));
            rest = &rest_field[end..];
        }
    }
    Ok(current)
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut middle = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part) {
            Some(at) => middle = &middle[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn compare(value: Option<&Value>, bound: f64) -> Option<Ordering> {
    value?.as_f64()?.partial_cmp(&bound)
}

impl Predicate {
    /// Whether the predicate holds for `args`. Malformed selectors are errors.
    pub fn holds(&self, args: &Value) -> Result<bool, Error> {
        self.holds_at(args, 0)
    }

    fn holds_at(&self, args: &Value, depth: usize) -> Result<bool, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::InvalidPolicy(format!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(match self {
            Predicate::Eq(sel, v) => select(args, sel)? == Some(v),
            Predicate::Ne(sel, v) => select(args, sel)? != Some(v),
            Predicate::Lt(sel, n) => compare(select(args, sel)?, *n) == Some(Ordering::Less),
            Predicate::Le(sel, n) => {
                matches!(compare(select(args, sel)?, *n), Some(Ordering::Less | Ordering::Equal))
            }
            Predicate::Gt(sel, n) => compare(select(args, sel)?, *n) == Some(Ordering::Greater),
            Predicate::Ge(sel, n) => {
                matches!(compare(select(args, sel)?, *n), Some(Ordering::Greater | Ordering::Equal))
            }
            Predicate::Like(sel, pattern) => {
                select(args, sel)?.and_then(Value::as_str).is_some_and(|s| glob(pattern, s))
            }
            Predicate::Not(inner) => !inner.holds_at(args, depth + 1)?,
            Predicate::And(all) => {
                for p in all {
                    if !p.holds_at(args, depth + 1)? {
                        return Ok(false);
                    }
                }
                true
            }
            Predicate::Or(any) => {
                if any.is_empty() {
                    return Ok(true);
                }
                for p in any {
                    if p.holds_at(args, depth + 1)? {
                        return Ok(true);
                    }
                }
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn predicates_evaluate_against_arguments() {
        let args =
            json!({"cpu": 4, "image": "registry.local/app:1", "tags": ["a", "b"], "n": {"x": 1}});
        let holds = |p: Predicate| p.holds(&args).expect("valid");
        assert!(holds(Predicate::Le(".cpu".into(), 4.0)));
        assert!(!holds(Predicate::Lt(".cpu".into(), 4.0)));
        assert!(holds(Predicate::Like(".image".into(), "registry.local/*".into())));
        assert!(!holds(Predicate::Like(".image".into(), "docker.io/*".into())));
        assert!(holds(Predicate::Eq(".tags[1]".into(), json!("b"))));
        assert!(holds(Predicate::Eq(".n.x".into(), json!(1))));
        assert!(!holds(Predicate::Eq(".missing".into(), json!(1))));
        assert!(holds(Predicate::Ne(".missing".into(), json!(1))));
        assert!(holds(Predicate::Not(Box::new(Predicate::Gt(".cpu".into(), 8.0)))));
        assert!(holds(Predicate::Or(vec![
            Predicate::Eq(".cpu".into(), json!(1)),
            Predicate::Eq(".cpu".into(), json!(4)),
        ])));
        assert!(!holds(Predicate::And(vec![
            Predicate::Ge(".cpu".into(), 1.0),
            Predicate::Gt(".cpu".into(), 4.0),
        ])));
    }

    #[test]
    fn bad_selectors_are_errors() {
        for sel in ["cpu", ".a[", ".a[x]", ".."] {
            assert!(Predicate::Eq(sel.into(), json!(1)).holds(&json!({})).is_err(), "{sel}");
        }
    }

    #[test]
    fn glob_matches_runs() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("a*b*c", "a-c-b"));
        assert!(!glob("ab*ba", "aba"));
    }
}
