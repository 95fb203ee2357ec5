//! Unit tests of [`super::Collection`].

use std::ops::Bound;

use serde_json::{Value, json};

use super::*;
use crate::Store;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("db.redb")).expect("open");
    (dir, store)
}

fn ids(found: &[(String, Value)]) -> Vec<&str> {
    found.iter().map(|(id, _)| id.as_str()).collect()
}

/// Inserts a small set of pods into `pods`.
fn seed(store: &Store, pods: &Collection) {
    store
        .write(|tx| {
            pods.insert(tx, "p1", &json!({"status": "running", "resources": {"cpu": 2}}))?;
            pods.insert(tx, "p2", &json!({"status": "running", "resources": {"cpu": 0.5}}))?;
            pods.insert(tx, "p3", &json!({"status": "stopped", "resources": {"cpu": 4}}))?;
            pods.insert(tx, "p4", &json!({"status": "running", "resources": {"cpu": "lots"}}))?;
            pods.insert(tx, "p5", &json!({"status": "running"}))?;
            pods.insert(tx, "p6", &json!({"status": "running", "resources": {"cpu": -3}}))?;
            Ok(())
        })
        .expect("seed");
}

/// The index entries of `field`, as `(encoded value, id)`.
fn index_entries(store: &Store, pods: &Collection, field: &str) -> Vec<(Vec<u8>, String)> {
    let t = pods.tables().expect("tables");
    let tx = store.read().expect("read");
    let view = tx.open_view(index_def(&t)).expect("open");
    let mut out = Vec::new();
    view.for_each_all(|(f, v, id), ()| {
        if f == field {
            out.push((v.to_vec(), id.to_owned()));
        }
        Ok(ControlFlow::Continue(()))
    })
    .expect("scan");
    out
}

#[test]
fn insert_get_delete() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    let tx = store.read().expect("read");
    assert_eq!(pods.get(&tx, "p1").expect("get"), None, "never-written collection");
    assert!(pods.find(&tx, &Query::new()).expect("find").is_empty());
    drop(tx);

    let doc = json!({"status": "running", "tags": ["a"], "n": null});
    store.write(|tx| pods.insert(tx, "p1", &doc)).expect("insert");
    let tx = store.read().expect("read");
    assert_eq!(pods.get(&tx, "p1").expect("get"), Some(doc));
    drop(tx);

    assert!(store.write(|tx| pods.delete(tx, "p1")).expect("delete"));
    assert!(!store.write(|tx| pods.delete(tx, "p1")).expect("delete again"));
    let tx = store.read().expect("read");
    assert_eq!(pods.get(&tx, "p1").expect("get"), None);
}

#[test]
fn upsert_replaces_the_document() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    store
        .write(|tx| {
            pods.insert(tx, "p1", &json!({"v": 1}))?;
            pods.insert(tx, "p1", &json!({"v": 2}))
        })
        .expect("write");
    let tx = store.read().expect("read");
    assert_eq!(pods.get(&tx, "p1").expect("get"), Some(json!({"v": 2})));
    assert_eq!(pods.find(&tx, &Query::new()).expect("find").len(), 1);
}

#[test]
fn eq_and_range_with_and_without_index_agree() {
    let (_dir, store) = store();
    let plain = store.collection("plain");
    let indexed = store.collection("indexed");
    store
        .write(|tx| {
            indexed.ensure_index(tx, "status")?;
            indexed.ensure_index(tx, "resources.cpu")
        })
        .expect("index");
    seed(&store, &plain);
    seed(&store, &indexed);

    let queries = [
        (Query::new().eq("status", json!("running")), vec!["p1", "p2", "p4", "p5", "p6"]),
        (Query::new().eq("resources.cpu", json!(2.0)), vec!["p1"]),
        (
            Query::new().range(
                "resources.cpu",
                Bound::Included(json!(0.5)),
                Bound::Excluded(json!(4)),
            ),
            vec!["p1", "p2"],
        ),
        (
            Query::new().range("resources.cpu", Bound::Unbounded, Bound::Included(json!(2))),
            vec!["p1", "p2", "p6"],
        ),
        (
            Query::new().range("resources.cpu", Bound::Excluded(json!(0.5)), Bound::Unbounded),
            vec!["p1", "p3"],
        ),
        (
            Query::new().range("resources.cpu", Bound::Included(json!("a")), Bound::Unbounded),
            vec!["p4"],
        ),
        (
            Query::new().range("resources.cpu", Bound::Unbounded, Bound::Unbounded),
            vec!["p1", "p2", "p3", "p4", "p6"],
        ),
        (
            Query::new().eq("status", json!("running")).range(
                "resources.cpu",
                Bound::Included(json!(1)),
                Bound::Unbounded,
            ),
            vec!["p1"],
        ),
        (Query::new().eq("status", json!("running")).limit(2), vec!["p1", "p2"]),
        (Query::new().eq("status", json!("gone")), vec![]),
        (Query::new().eq("resources", json!({"cpu": 4})), vec!["p3"]),
        (Query::new().limit(0), vec![]),
    ];
    let tx = store.read().expect("read");
    for (query, expected) in queries {
        let a = plain.find(&tx, &query).expect("plain find");
        let b = indexed.find(&tx, &query).expect("indexed find");
        assert_eq!(ids(&a), expected, "plain {query:?}");
        assert_eq!(a, b, "indexed {query:?}");
    }
}

#[test]
fn explain_picks_eq_then_range_then_scan() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    store
        .write(|tx| {
            pods.ensure_index(tx, "status")?;
            pods.ensure_index(tx, "cpu")
        })
        .expect("index");
    let tx = store.read().expect("read");
    let plan = |q: Query| pods.explain(&tx, &q).expect("explain");
    let index = |f: &str| Plan::Index { field: f.to_owned() };
    let range = || (Bound::Included(json!(1)), Bound::Unbounded);
    assert_eq!(plan(Query::new()), Plan::FullScan);
    assert_eq!(plan(Query::new().eq("other", json!(1))), Plan::FullScan);
    assert_eq!(plan(Query::new().eq("status", json!("x"))), index("status"));
    let (lo, hi) = range();
    assert_eq!(plan(Query::new().range("cpu", lo, hi)), index("cpu"));
    let (lo, hi) = range();
    assert_eq!(
        plan(Query::new().range("cpu", lo, hi).eq("status", json!("x"))),
        index("status"),
        "eq is preferred over range"
    );
    assert_eq!(
        plan(Query::new().eq("status", json!(["x"]))),
        Plan::FullScan,
        "array equality cannot use the index"
    );
}

#[test]
fn index_follows_upsert_and_delete() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    store.write(|tx| pods.ensure_index(tx, "status")).expect("index");
    let running = Query::new().eq("status", json!("running"));
    let stopped = Query::new().eq("status", json!("stopped"));
    let find = |q: &Query| {
        let tx = store.read().expect("read");
        assert!(matches!(pods.explain(&tx, q).expect("explain"), Plan::Index { .. }));
        ids(&pods.find(&tx, q).expect("find")).into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    store.write(|tx| pods.insert(tx, "p1", &json!({"status": "running"}))).expect("insert");
    assert_eq!(find(&running), ["p1"]);

    store.write(|tx| pods.insert(tx, "p1", &json!({"status": "stopped"}))).expect("upsert");
    assert_eq!(find(&running), [""; 0]);
    assert_eq!(find(&stopped), ["p1"]);

    store
        .write(|tx| pods.insert(tx, "p1", &json!({"status": ["not", "scalar"]})))
        .expect("upsert to array");
    assert_eq!(find(&stopped), [""; 0]);
    assert!(index_entries(&store, &pods, "status").is_empty());

    store.write(|tx| pods.insert(tx, "p1", &json!({"status": "running"}))).expect("upsert back");
    assert_eq!(index_entries(&store, &pods, "status").len(), 1);

    store.write(|tx| pods.delete(tx, "p1")).expect("delete");
    assert_eq!(find(&running), [""; 0]);
    assert!(index_entries(&store, &pods, "status").is_empty());
}

#[test]
fn ensure_index_builds_over_existing_data_and_is_idempotent() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    seed(&store, &pods);
    store.write(|tx| pods.ensure_index(tx, "resources.cpu")).expect("index");
    // p5 has no cpu: five entries.
    assert_eq!(index_entries(&store, &pods, "resources.cpu").len(), 5);
    store.write(|tx| pods.ensure_index(tx, "resources.cpu")).expect("again");
    assert_eq!(index_entries(&store, &pods, "resources.cpu").len(), 5);

    let tx = store.read().expect("read");
    assert_eq!(pods.indexes(&tx).expect("indexes"), ["resources.cpu"]);
    let q = Query::new().range("resources.cpu", Bound::Included(json!(1)), Bound::Unbounded);
    assert_eq!(
        pods.explain(&tx, &q).expect("explain"),
        Plan::Index { field: "resources.cpu".to_owned() }
    );
    assert_eq!(ids(&pods.find(&tx, &q).expect("find")), ["p1", "p3"]);
}

#[test]
fn index_definitions_persist_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.redb");
    {
        let store = Store::open(&path).expect("open");
        let pods = store.collection("pods");
        store.write(|tx| pods.ensure_index(tx, "status")).expect("index");
    }
    let store = Store::open(&path).expect("reopen");
    let pods = store.collection("pods");
    store.write(|tx| pods.insert(tx, "p1", &json!({"status": "running"}))).expect("insert");
    assert_eq!(index_entries(&store, &pods, "status").len(), 1);
    let tx = store.read().expect("read");
    assert_eq!(pods.indexes(&tx).expect("indexes"), ["status"]);
}

#[test]
fn drop_index_removes_entries_and_falls_back_to_scan() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    seed(&store, &pods);
    store
        .write(|tx| {
            pods.ensure_index(tx, "resources.cpu")?;
            pods.ensure_index(tx, "status")?;
            pods.ensure_index(tx, "z")
        })
        .expect("index");
    assert!(store.write(|tx| pods.drop_index(tx, "resources.cpu")).expect("drop"));
    assert!(!store.write(|tx| pods.drop_index(tx, "resources.cpu")).expect("drop again"));
    assert!(index_entries(&store, &pods, "resources.cpu").is_empty());
    assert_eq!(index_entries(&store, &pods, "status").len(), 6, "other indexes kept");
    let tx = store.read().expect("read");
    assert_eq!(pods.indexes(&tx).expect("indexes"), ["status", "z"]);
    let q = Query::new().eq("resources.cpu", json!(2));
    assert_eq!(pods.explain(&tx, &q).expect("explain"), Plan::FullScan);
    assert_eq!(ids(&pods.find(&tx, &q).expect("find")), ["p1"]);
}

#[test]
fn collection_writes_are_atomic_with_the_transaction() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    let result: Result<(), Error> = store.write(|tx| {
        pods.ensure_index(tx, "status")?;
        pods.insert(tx, "p1", &json!({"status": "running"}))?;
        Err(Error::custom("abort"))
    });
    assert!(result.is_err());
    let tx = store.read().expect("read");
    assert_eq!(pods.get(&tx, "p1").expect("get"), None);
    assert!(pods.indexes(&tx).expect("indexes").is_empty());
}

#[test]
fn reads_in_a_write_transaction_see_its_writes() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    store
        .write(|tx| {
            pods.ensure_index(tx, "status")?;
            pods.insert(tx, "p1", &json!({"status": "running"}))?;
            assert_eq!(pods.get(tx, "p1")?, Some(json!({"status": "running"})));
            let found = pods.find(tx, &Query::new().eq("status", json!("running")))?;
            assert_eq!(ids(&found), ["p1"]);
            Ok(())
        })
        .expect("write");
}

#[test]
fn invalid_names_fields_and_queries_are_errors() {
    let (_dir, store) = store();
    let bad = store.collection("no spaces");
    let tx = store.read().expect("read");
    assert!(matches!(bad.get(&tx, "x"), Err(Error::InvalidName { kind: "collection", .. })));
    drop(tx);
    let pods = store.collection("pods");
    assert!(matches!(
        store.write(|tx| pods.ensure_index(tx, "a..b")),
        Err(Error::InvalidField { .. })
    ));
    let tx = store.read().expect("read");
    let mixed = Query::new().range("a", Bound::Included(json!(1)), Bound::Included(json!("b")));
    assert!(matches!(pods.find(&tx, &mixed), Err(Error::InvalidQuery { .. })));
    assert!(matches!(
        pods.find(&tx, &Query::new().eq("", json!(1))),
        Err(Error::InvalidField { .. })
    ));
}

#[test]
fn collections_do_not_share_data() {
    let (_dir, store) = store();
    let a = store.collection("a");
    let b = store.collection("b");
    store.write(|tx| a.insert(tx, "x", &json!(1))).expect("insert");
    let tx = store.read().expect("read");
    assert_eq!(b.get(&tx, "x").expect("get"), None);
    assert_eq!(a.name(), "a");
}

#[test]
fn floats_round_trip_exactly_and_match_their_index_entries() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    // Parsed one ulp off without serde_json's float_roundtrip feature.
    let x = -13.684_050_572_924_383_f64;
    let doc = json!({ "x": x });
    store
        .write(|tx| {
            pods.insert(tx, "p1", &doc)?;
            pods.ensure_index(tx, "x")
        })
        .expect("write");
    let tx = store.read().expect("read");
    assert_eq!(pods.get(&tx, "p1").expect("get"), Some(doc));
    let q = Query::new().eq("x", json!(x));
    assert!(matches!(pods.explain(&tx, &q).expect("explain"), Plan::Index { .. }));
    assert_eq!(ids(&pods.find(&tx, &q).expect("find")), ["p1"]);
}

#[test]
fn newest_first_orders_by_descending_id_with_and_without_index() {
    let (_dir, store) = store();
    let pods = store.collection("pods");
    seed(&store, &pods);
    let all = Query::new().newest_first();
    let tx = store.read().expect("read");
    let mut ascending = ids(&pods.find(&tx, &Query::new()).expect("find"))
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    ascending.reverse();
    assert_eq!(ids(&pods.find(&tx, &all).expect("find")), ascending);
    let last_two = pods.find(&tx, &all.clone().limit(2)).expect("find");
    assert_eq!(ids(&last_two), ascending[..2].to_vec());
    drop(tx);
    store.write(|tx| pods.ensure_index(tx, "status")).expect("index");
    let tx = store.read().expect("read");
    let q = Query::new().eq("status", json!("running"));
    let mut running: Vec<String> =
        ids(&pods.find(&tx, &q).expect("find")).iter().map(|s| s.to_string()).collect();
    running.reverse();
    assert!(running.len() >= 2, "{running:?}");
    assert_eq!(
        ids(&pods.find(&tx, &q.newest_first().limit(1)).expect("find")),
        running[..1].to_vec()
    );
}
