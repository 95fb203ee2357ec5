//! Document queries ([`Query`]) and their evaluation against a document.

use std::ops::Bound;

use serde_json::Value;

use crate::Error;
use crate::encoding::{FieldPath, encode_scalar};

/// A conjunction of field conditions over JSON documents, with an optional result limit.
///
/// ```
/// use std::ops::Bound;
/// use dms_store::Query;
/// use serde_json::json;
///
/// let q = Query::new()
///     .eq("status", json!("running"))
///     .range("resources.cpu", Bound::Included(json!(2)), Bound::Unbounded)
///     .limit(10);
/// assert_eq!(q.conditions().len(), 2);
/// ```
///
/// Semantics:
/// - A document matches when every condition matches. An empty query matches every document.
/// - A condition on a field the document does not have never matches (a present `null` is not
///   missing: `eq(f, null)` matches it).
/// - Scalars compare by the order-preserving encoding of the index: numbers compare
///   numerically as `f64` (so `2 == 2.0`), strings by their UTF-8 bytes.
/// - `eq` with an array or object compares JSON structurally; such a condition cannot use an
///   index.
/// - A range matches only values of the JSON type of its bounds: a numeric range matches only
///   numbers, a string range only strings. Its bounds must be scalars of one type. A range with
///   both bounds unbounded matches any scalar (not arrays or objects).
/// - Results are ordered by document id, ascending unless [`Query::newest_first`] asks for
///   descending; `limit` keeps the first `n` of them in that order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    conditions: Vec<Condition>,
    limit: Option<usize>,
    descending: bool,
}

/// One condition of a [`Query`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// The field equals `value`.
    Eq {
        /// Dotted field path.
        field: String,
        /// The value to compare with.
        value: Value,
    },
    /// The field lies between `lower` and `upper`, and has their JSON type.
    Range {
        /// Dotted field path.
        field: String,
        /// Lower bound.
        lower: Bound<Value>,
        /// Upper bound.
        upper: Bound<Value>,
    },
}

impl Condition {
    /// The dotted field path the condition applies to.
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            Condition::Eq { field, .. } | Condition::Range { field, .. } => field,
        }
    }
}

impl Query {
    /// A query matching every document.
    #[must_use]
    pub fn new() -> Self {
        Query::default()
    }

    /// Adds the condition `field == value`.
    #[must_use]
    pub fn eq(mut self, field: impl Into<String>, value: Value) -> Self {
        self.conditions.push(Condition::Eq { field: field.into(), value });
        self
    }

    /// Adds the condition `lower <= / < field <= / < upper`, restricted to the bounds' type.
    #[must_use]
    pub fn range(
        mut self,
        field: impl Into<String>,
        lower: Bound<Value>,
        upper: Bound<Value>,
    ) -> Self {
        self.conditions.push(Condition::Range { field: field.into(), lower, upper });
        self
    }

    /// Returns at most `n` documents (the first `n` by id).
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Orders the results by descending id (with ids that sort by time, the newest
    /// first), so that `limit(n)` keeps the last `n`.
    #[must_use]
    pub fn newest_first(mut self) -> Self {
        self.descending = true;
        self
    }

    /// The conditions, in the order they were added.
    #[must_use]
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The limit, if any.
    #[must_use]
    pub fn max_results(&self) -> Option<usize> {
        self.limit
    }

    /// Validates the query and prepares it for evaluation.
    pub(crate) fn compile(&self) -> Result<Compiled, Error> {
        let conditions =
            self.conditions.iter().map(CompiledCondition::new).collect::<Result<_, _>>()?;
        Ok(Compiled { conditions, limit: self.limit, descending: self.descending })
    }
}

/// A validated query.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub conditions: Vec<CompiledCondition>,
    pub limit: Option<usize>,
    pub descending: bool,
}

impl Compiled {
    /// Whether `doc` satisfies every condition.
    pub(crate) fn matches(&self, doc: &Value) -> bool {
        self.conditions.iter().all(|c| c.matches(doc))
    }
}

/// A validated condition.
#[derive(Debug)]
pub(crate) struct CompiledCondition {
    pub path: FieldPath,
    pub test: Test,
}

/// What a condition tests the field's value against.
#[derive(Debug)]
pub(crate) enum Test {
    /// Equal to this scalar encoding (can use an index).
    EqScalar(Vec<u8>),
    /// Structurally equal to this array or object (full scan only).
    EqJson(Value),
    /// Within this encoded range (can use an index).
    Range(EncodedRange),
}

impl CompiledCondition {
    fn new(condition: &Condition) -> Result<CompiledCondition, Error> {
        let path = FieldPath::parse(condition.field())?;
        let test = match condition {
            Condition::Eq { value, .. } => match encode_scalar(value) {
                Some(encoded) => Test::EqScalar(encoded),
                None => Test::EqJson(value.clone()),
            },
            Condition::Range { lower, upper, .. } => {
                Test::Range(EncodedRange::new(path.as_str(), lower, upper)?)
            }
        };
        Ok(CompiledCondition { path, test })
    }

    /// Whether `doc` satisfies the condition.
    pub(crate) fn matches(&self, doc: &Value) -> bool {
        let Some(value) = self.path.lookup(doc) else {
            return false;
        };
        match &self.test {
            Test::EqScalar(expected) => encode_scalar(value).is_some_and(|e| e == *expected),
            Test::EqJson(expected) => value == expected,
            Test::Range(range) => encode_scalar(value).is_some_and(|e| range.contains(&e)),
        }
    }
}

/// A range over scalar encodings, restricted to one type tag (or to all scalars when both
/// bounds are unbounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedRange {
    /// The only type tag the range admits; `None` admits every scalar.
    pub tag: Option<u8>,
    pub lower: Bound<Vec<u8>>,
    pub upper: Bound<Vec<u8>>,
}

impl EncodedRange {
    fn new(field: &str, lower: &Bound<Value>, upper: &Bound<Value>) -> Result<Self, Error> {
        let encode = |bound: &Bound<Value>| -> Result<Bound<Vec<u8>>, Error> {
            let encode_one = |v: &Value| {
                encode_scalar(v).ok_or_else(|| Error::InvalidQuery {
                    reason: format!(
                        "range bound on {field:?} must be null, a boolean, a number or a string, not {v}"
                    ),
                })
            };
            Ok(match bound {
                Bound::Included(v) => Bound::Included(encode_one(v)?),
                Bound::Excluded(v) => Bound::Excluded(encode_one(v)?),
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        let (lower, upper) = (encode(lower)?, encode(upper)?);
        let tag_of = |b: &Bound<Vec<u8>>| match b {
            Bound::Included(e) | Bound::Excluded(e) => e.first().copied(),
            Bound::Unbounded => None,
        };
        let tag = match (tag_of(&lower), tag_of(&upper)) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::InvalidQuery {
                    reason: format!("range bounds on {field:?} have different JSON types"),
                });
            }
            (a, b) => a.or(b),
        };
        Ok(EncodedRange { tag, lower, upper })
    }

    /// Whether the scalar encoding `e` lies in the range.
    pub(crate) fn contains(&self, e: &[u8]) -> bool {
        self.tag.is_none_or(|tag| e.first() == Some(&tag))
            && self.above_lower(e)
            && !self.beyond_upper(e)
    }

    /// Whether `e` satisfies the lower bound.
    pub(crate) fn above_lower(&self, e: &[u8]) -> bool {
        match &self.lower {
            Bound::Included(l) => e >= l.as_slice(),
            Bound::Excluded(l) => e > l.as_slice(),
            Bound::Unbounded => true,
        }
    }

    /// Whether `e` sorts after every encoding in the range (so an ordered scan can stop).
    pub(crate) fn beyond_upper(&self, e: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(u) => e > u.as_slice(),
            Bound::Excluded(u) => e >= u.as_slice(),
            Bound::Unbounded => self.tag.is_some_and(|tag| e.first() > Some(&tag)),
        }
    }

    /// The smallest encoding an ordered scan must start from.
    pub(crate) fn scan_start(&self) -> Vec<u8> {
        match &self.lower {
            Bound::Included(l) | Bound::Excluded(l) => l.clone(),
            Bound::Unbounded => self.tag.map(|t| vec![t]).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn matches(q: Query, doc: Value) -> bool {
        q.compile().expect("valid query").matches(&doc)
    }

    #[test]
    fn empty_query_matches_everything() {
        assert!(matches(Query::new(), json!({})));
        assert!(matches(Query::new(), json!(42)));
    }

    #[test]
    fn eq_on_scalars() {
        let doc = json!({"status": "running", "cpu": 2, "on": true, "gone": null});
        assert!(matches(Query::new().eq("status", json!("running")), doc.clone()));
        assert!(!matches(Query::new().eq("status", json!("stopped")), doc.clone()));
        assert!(matches(Query::new().eq("cpu", json!(2.0)), doc.clone()));
        assert!(!matches(Query::new().eq("cpu", json!("2")), doc.clone()));
        assert!(matches(Query::new().eq("on", json!(true)), doc.clone()));
        assert!(matches(Query::new().eq("gone", json!(null)), doc.clone()));
        assert!(!matches(Query::new().eq("missing", json!(null)), doc));
    }

    #[test]
    fn eq_on_arrays_and_objects_is_structural() {
        let doc = json!({"tags": ["a", "b"], "meta": {"x": 1}});
        assert!(matches(Query::new().eq("tags", json!(["a", "b"])), doc.clone()));
        assert!(!matches(Query::new().eq("tags", json!(["b", "a"])), doc.clone()));
        assert!(matches(Query::new().eq("meta", json!({"x": 1})), doc));
    }

    #[test]
    fn range_matches_only_its_type() {
        let q = || Query::new().range("v", Bound::Included(json!(1)), Bound::Excluded(json!(3)));
        assert!(matches(q(), json!({"v": 1})));
        assert!(matches(q(), json!({"v": 2.9})));
        assert!(!matches(q(), json!({"v": 3})));
        assert!(!matches(q(), json!({"v": 0.5})));
        assert!(!matches(q(), json!({"v": "2"})));
        assert!(!matches(q(), json!({"v": [2]})));
        assert!(!matches(q(), json!({})));

        let above = Query::new().range("v", Bound::Excluded(json!(-1)), Bound::Unbounded);
        assert!(matches(above.clone(), json!({"v": 1e300})));
        assert!(!matches(above.clone(), json!({"v": "zzz"})), "no spill into strings");
        assert!(!matches(above, json!({"v": -1})));

        let below = Query::new().range("v", Bound::Unbounded, Bound::Included(json!("m")));
        assert!(matches(below.clone(), json!({"v": ""})));
        assert!(matches(below.clone(), json!({"v": "m"})));
        assert!(!matches(below.clone(), json!({"v": "ma"})));
        assert!(!matches(below, json!({"v": 1})), "no spill into numbers");
    }

    #[test]
    fn unbounded_range_matches_any_scalar() {
        let q = || Query::new().range("v", Bound::Unbounded, Bound::Unbounded);
        for v in [json!(null), json!(false), json!(1), json!("x")] {
            assert!(matches(q(), json!({ "v": v })));
        }
        assert!(!matches(q(), json!({"v": [1]})));
        assert!(!matches(q(), json!({})));
    }

    #[test]
    fn invalid_ranges_are_rejected() {
        let mixed = Query::new().range("v", Bound::Included(json!(1)), Bound::Included(json!("z")));
        assert!(matches!(mixed.compile(), Err(Error::InvalidQuery { .. })));
        let array = Query::new().range("v", Bound::Included(json!([1])), Bound::Unbounded);
        assert!(matches!(array.compile(), Err(Error::InvalidQuery { .. })));
        let bad_field = Query::new().eq("a..b", json!(1));
        assert!(matches!(bad_field.compile(), Err(Error::InvalidField { .. })));
    }

    #[test]
    fn conditions_are_conjunctive() {
        let q = Query::new().eq("status", json!("running")).range(
            "cpu",
            Bound::Included(json!(2)),
            Bound::Unbounded,
        );
        assert!(matches(q.clone(), json!({"status": "running", "cpu": 4})));
        assert!(!matches(q.clone(), json!({"status": "running", "cpu": 1})));
        assert!(!matches(q, json!({"status": "stopped", "cpu": 4})));
    }

    #[test]
    fn builder_records_conditions_and_limit() {
        let q = Query::new().eq("a", json!(1)).limit(3);
        assert_eq!(q.conditions()[0].field(), "a");
        assert_eq!(q.max_results(), Some(3));
        assert_eq!(Query::new().max_results(), None);
    }
}
