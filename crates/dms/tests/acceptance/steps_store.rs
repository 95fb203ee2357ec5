//! Steps for the embedded store (library level: the store has no CLI of its own).

use std::ops::Bound;

use cucumber::gherkin::Step;
use cucumber::{given, then, when};
use dms_store::{Error, Query, Repo, Store};
use serde_json::{Value, json};

use super::world::DmsWorld;

const RECORDS: Repo<String> = Repo::new("acceptance_records");
const DOCS: &str = "machines";

fn store(world: &DmsWorld) -> &Store {
    &world.store.as_ref().expect("a store was opened").1
}

#[given("an empty store")]
async fn empty_store(world: &mut DmsWorld) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("db.redb")).expect("store opens");
    world.store = Some((dir, store));
}

#[given("the documents")]
async fn documents(world: &mut DmsWorld, step: &Step) {
    let table = step.table.as_ref().expect("a table of documents");
    let header = &table.rows[0];
    let collection = store(world).collection(DOCS);
    store(world)
        .write(|tx| {
            for row in &table.rows[1..] {
                let mut doc = serde_json::Map::new();
                for (key, cell) in header.iter().zip(row) {
                    let value =
                        cell.parse::<f64>().map(|n| json!(n)).unwrap_or_else(|_| json!(cell));
                    doc.insert(key.clone(), value);
                }
                collection.insert(tx, &row[0], &Value::Object(doc))?;
            }
            Ok(())
        })
        .expect("documents written");
}

fn search(world: &mut DmsWorld, query: Query) {
    let collection = store(world).collection(DOCS);
    let tx = store(world).read().expect("read transaction");
    let found = collection.find(&tx, &query).expect("search");
    let mut ids: Vec<String> = found.into_iter().map(|(id, _)| id).collect();
    ids.sort();
    world.results = ids;
}

#[when(expr = "I search for {word} = {string}")]
async fn search_eq(world: &mut DmsWorld, field: String, value: String) {
    search(world, Query::new().eq(field, json!(value)));
}

#[when(expr = "I search for {word} between {int} and {int}")]
async fn search_range(world: &mut DmsWorld, field: String, low: i64, high: i64) {
    let query =
        Query::new().range(field, Bound::Included(json!(low)), Bound::Included(json!(high)));
    search(world, query);
}

#[when(expr = "I index the field {string}")]
async fn index_field(world: &mut DmsWorld, field: String) {
    let collection = store(world).collection(DOCS);
    store(world).write(|tx| collection.ensure_index(tx, &field)).expect("index built");
}

#[then(expr = "the results are {string}")]
async fn results_are(world: &mut DmsWorld, expected: String) {
    assert_eq!(world.results.join(","), expected);
}

#[when(expr = "a transaction writes {string} and {string} and then fails")]
async fn failing_transaction(world: &mut DmsWorld, first: String, second: String) {
    let result: Result<(), Error> = store(world).write(|tx| {
        RECORDS.put(tx, &first, &"value".to_string())?;
        RECORDS.put(tx, &second, &"value".to_string())?;
        Err(Error::custom("the scenario makes this transaction fail"))
    });
    assert!(result.is_err());
}

#[then(expr = "neither {string} nor {string} is stored")]
async fn neither_stored(world: &mut DmsWorld, first: String, second: String) {
    for key in [first, second] {
        assert_eq!(RECORDS.get_now(store(world), &key).expect("read"), None, "{key}");
    }
}

#[when(expr = "I put records {string}, {string} and {string}")]
async fn put_records(world: &mut DmsWorld, a: String, b: String, c: String) {
    store(world)
        .write(|tx| {
            for key in [&a, &b, &c] {
                RECORDS.put(tx, key, &format!("value of {key}"))?;
            }
            Ok(())
        })
        .expect("records written");
}

#[when("I reopen the store")]
async fn reopen(world: &mut DmsWorld) {
    let (dir, store) = world.store.take().expect("a store was opened");
    drop(store);
    let store = Store::open(dir.path().join("db.redb")).expect("store reopens");
    world.store = Some((dir, store));
}

#[then(expr = "a prefix scan for {string} returns {string}")]
async fn prefix_scan(world: &mut DmsWorld, prefix: String, expected: String) {
    let tx = store(world).read().expect("read transaction");
    let found = RECORDS.scan_prefix(&tx, &prefix).expect("scan");
    let keys: Vec<String> = found.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys.join(","), expected);
    assert!(found.iter().all(|(k, v)| *v == format!("value of {k}")));
}
