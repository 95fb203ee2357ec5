//! Property test: for random documents, random upserts and deletes, and random equality and
//! range queries, `find` through an index, `find` by full scan, and a naive filter written
//! independently here all return the same documents.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

use dms_store::{Collection, Plan, Query, Store, WriteTx};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A number: small integers, fractions and negatives, with many collisions.
fn number() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        (-20i64..20).prop_map(|i| json!(i)),
        (-20i32..20).prop_map(|i| json!(f64::from(i) + 0.5)),
        (-20.0f64..20.0).prop_map(|f| json!(f)),
        Just(json!(-0.0)),
    ]
}

/// A string over a tiny alphabet, so equal and prefix-related strings are common.
fn string() -> impl Strategy<Value = Value> + Clone {
    "[ab]{0,3}".prop_map(Value::String)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => number(),
        4 => string(),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ]
}

/// A field value: usually a scalar, sometimes an array (never indexed) or absent.
fn field() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        8 => scalar().prop_map(Some),
        1 => scalar().prop_map(|v| Some(json!([v]))),
        2 => Just(None),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    (field(), field(), field()).prop_map(|(n, s, nested)| {
        let mut doc = serde_json::Map::new();
        if let Some(n) = n {
            doc.insert("n".into(), n);
        }
        if let Some(s) = s {
            doc.insert("s".into(), s);
        }
        if let Some(x) = nested {
            doc.insert("m".into(), json!({ "x": x }));
        }
        Value::Object(doc)
    })
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, Value),
    Delete(String),
}

fn op() -> impl Strategy<Value = Op> {
    let id = (0u8..24).prop_map(|i| format!("d{i:02}"));
    prop_oneof![
        5 => (id.clone(), document()).prop_map(|(id, doc)| Op::Insert(id, doc)),
        1 => id.prop_map(Op::Delete),
    ]
}

const FIELDS: [&str; 3] = ["n", "s", "m.x"];

fn bound(value: impl Strategy<Value = Value> + Clone) -> impl Strategy<Value = Bound<Value>> {
    prop_oneof![
        value.clone().prop_map(Bound::Included),
        value.prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

#[derive(Debug, Clone)]
enum Cond {
    Eq(&'static str, Value),
    Range(&'static str, Bound<Value>, Bound<Value>),
}

fn condition() -> impl Strategy<Value = Cond> {
    let field = prop::sample::select(FIELDS.to_vec());
    prop_oneof![
        (field.clone(), scalar()).prop_map(|(f, v)| Cond::Eq(f, v)),
        (field.clone(), bound(number()), bound(number()))
            .prop_map(|(f, l, u)| Cond::Range(f, l, u)),
        (field, bound(string()), bound(string())).prop_map(|(f, l, u)| Cond::Range(f, l, u)),
    ]
}

fn query() -> impl Strategy<Value = (Vec<Cond>, Option<usize>)> {
    (
        prop::collection::vec(condition(), 1..3),
        prop_oneof![3 => Just(None), 1 => (0usize..5).prop_map(Some)],
    )
}

fn build(conds: &[Cond], limit: Option<usize>) -> Query {
    let mut q = Query::new();
    for c in conds {
        q = match c.clone() {
            Cond::Eq(f, v) => q.eq(f, v),
            Cond::Range(f, l, u) => q.range(f, l, u),
        };
    }
    match limit {
        Some(n) => q.limit(n),
        None => q,
    }
}

// ---- The naive model, independent of the crate's encoding ----

fn lookup<'a>(doc: &'a Value, field: &str) -> Option<&'a Value> {
    field.split('.').try_fold(doc, |v, seg| v.as_object()?.get(seg))
}

/// Compares two scalars of the same JSON type; `None` for different types or non-scalars.
fn compare_same_type(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

fn naive_matches(doc: &Value, cond: &Cond) -> bool {
    match cond {
        Cond::Eq(f, v) => {
            lookup(doc, f).and_then(|x| compare_same_type(x, v)).is_some_and(Ordering::is_eq)
        }
        Cond::Range(f, lower, upper) => {
            let Some(x) = lookup(doc, f) else {
                return false;
            };
            let lower_ok = match lower {
                Bound::Included(l) => compare_same_type(x, l).is_some_and(Ordering::is_ge),
                Bound::Excluded(l) => compare_same_type(x, l).is_some_and(Ordering::is_gt),
                Bound::Unbounded => true,
            };
            let upper_ok = match upper {
                Bound::Included(u) => compare_same_type(x, u).is_some_and(Ordering::is_le),
                Bound::Excluded(u) => compare_same_type(x, u).is_some_and(Ordering::is_lt),
                Bound::Unbounded => true,
            };
            // Both unbounded: any scalar.
            let scalar = !matches!(x, Value::Array(_) | Value::Object(_));
            lower_ok && upper_ok && scalar
        }
    }
}

fn apply(tx: &WriteTx, c: &Collection, op: &Op) -> Result<(), dms_store::Error> {
    match op {
        Op::Insert(id, doc) => c.insert(tx, id, doc),
        Op::Delete(id) => c.delete(tx, id).map(|_| ()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn indexed_scan_and_naive_agree(
        before in prop::collection::vec(op(), 0..40),
        after in prop::collection::vec(op(), 0..40),
        queries in prop::collection::vec(query(), 1..25),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("db.redb")).expect("open");
        let plain = store.collection("plain");
        let indexed = store.collection("indexed");
        let mut model: BTreeMap<String, Value> = BTreeMap::new();
        store.write(|tx| {
            // Ops before the index exists exercise building it over existing data; ops after
            // exercise maintaining it on upsert and delete.
            for op in &before {
                apply(tx, &plain, op)?;
                apply(tx, &indexed, op)?;
            }
            for f in FIELDS {
                indexed.ensure_index(tx, f)?;
            }
            for op in &after {
                apply(tx, &plain, op)?;
                apply(tx, &indexed, op)?;
            }
            Ok(())
        }).expect("write");
        for op in before.iter().chain(&after) {
            match op {
                Op::Insert(id, doc) => { model.insert(id.clone(), doc.clone()); }
                Op::Delete(id) => { model.remove(id); }
            }
        }

        let tx = store.read().expect("read");
        for (conds, limit) in &queries {
            let q = build(conds, *limit);
            let uses_index = matches!(indexed.explain(&tx, &q).expect("explain"), Plan::Index { .. });
            prop_assert!(uses_index, "indexed collection must use an index");
            prop_assert_eq!(plain.explain(&tx, &q).expect("explain"), Plan::FullScan);
            let by_index = indexed.find(&tx, &q).expect("indexed find");
            let by_scan = plain.find(&tx, &q).expect("plain find");
            let naive: Vec<(String, Value)> = model
                .iter()
                .filter(|(_, d)| conds.iter().all(|c| naive_matches(d, c)))
                .take(limit.unwrap_or(usize::MAX))
                .map(|(id, d)| (id.clone(), d.clone()))
                .collect();
            prop_assert_eq!(&by_scan, &naive, "full scan vs naive for {:?}", q);
            prop_assert_eq!(&by_index, &naive, "index vs naive for {:?}", q);
        }
    }
}
