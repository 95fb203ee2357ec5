//! Capability contexts in the node's store: save/load/list/remove round trips and
//! optimistic concurrency on save.

#[path = "../../dms-ucan/tests/common/mod.rs"]
mod common;

use common::*;
use dms_node::caps::StoreContexts;
use dms_store::Store;
use dms_ucan::{Authorization, ContextStore, Error, Predicate, Spec, Verifier};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("store.redb")).expect("open store");
    (dir, store)
}

#[test]
fn contexts_round_trip_through_the_store() {
    let (_dir, store) = store();
    let verifier = Verifier::default();
    let (alice, bob, carol) = (alice(), bob(), carol());
    assert_eq!(StoreContexts(store.clone()).load("user").expect("load"), None);
    assert!(StoreContexts(store.clone()).list().expect("list").is_empty());

    // A context with something in every part.
    let mut ctx = context(&alice);
    ctx.add_root(sam().did());
    ctx.add_require(grant(&alice, &bob, &spec(&["/dms/deployment"])), &verifier, NOW)
        .expect("require");
    let from_bob = grant(
        &bob,
        &alice,
        &Spec {
            expires: Some(NOW + 3600),
            policies: vec![Predicate::Le(".cpu".into(), 2.0)],
            ..spec(&["/dms"])
        },
    );
    ctx.add_provide(from_bob, &verifier, NOW).expect("provide");
    let revoked = grant(&alice, &carol, &spec(&["/dms"]));
    ctx.revoke(&alice, &revoked.leaf().expect("leaf").cid().to_string(), &verifier)
        .expect("revoke");
    assert!(ctx.version >= 4);

    StoreContexts(store.clone()).save(&ctx, None).expect("first save");
    let loaded = StoreContexts(store.clone()).load("user").expect("load").expect("present");
    assert_eq!(loaded, ctx);

    // The loaded context decides exactly as the original.
    assert_eq!(
        authorize(&loaded, &verifier, &sam(), "/x", &dms_ucan::Chain::empty()),
        Ok(Authorization::Root)
    );
    assert!(authorize(&loaded, &verifier, &carol, "/dms", &revoked).is_err());
    let deployment = grant(&bob, &carol, &spec(&["/dms/deployment"]));
    assert!(matches!(
        authorize(&loaded, &verifier, &carol, "/dms/deployment/bid", &deployment),
        Ok(Authorization::Required(_))
    ));
    assert!(loaded.chain_for(&verifier, &cmd("/dms/node"), &bob.did(), NOW).is_some());

    // A second context; list returns both (by name).
    let other = dms_ucan::CapContext::new("dms", bob.did());
    StoreContexts(store.clone()).save(&other, None).expect("save other");
    let names: Vec<String> =
        StoreContexts(store.clone()).list().expect("list").into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["dms".to_string(), "user".to_string()]);

    assert!(StoreContexts(store.clone()).remove("user").expect("remove"));
    assert!(!StoreContexts(store.clone()).remove("user").expect("remove again"));
    assert_eq!(StoreContexts(store.clone()).load("user").expect("load"), None);
    assert_eq!(StoreContexts(store.clone()).list().expect("list").len(), 1);
}

#[test]
fn contexts_survive_reopening_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested").join("store.redb");
    let mut ctx = context(&alice());
    ctx.add_root(bob().did());
    {
        let store = Store::open(&path).expect("open");
        StoreContexts(store.clone()).save(&ctx, None).expect("save");
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(StoreContexts(store.clone()).load("user").expect("load"), Some(ctx));
}

#[test]
fn stale_saves_are_refused() {
    let (_dir, store) = store();
    let mut ctx = context(&alice());
    StoreContexts(store.clone()).save(&ctx, None).expect("create");
    assert_eq!(ctx.version, 0);

    // Saving "as new" when it already exists is a conflict.
    let err = StoreContexts(store.clone()).save(&ctx, None).expect_err("exists");
    assert!(matches!(&err, Error::Conflict(msg) if msg.contains("changed while")), "{err}");

    // Two writers start from version 0.
    let mut first = ctx.clone();
    let mut second = ctx.clone();
    first.add_root(bob().did());
    second.add_root(carol().did());
    StoreContexts(store.clone()).save(&first, Some(0)).expect("first writer wins");
    let err =
        StoreContexts(store.clone()).save(&second, Some(0)).expect_err("second writer is stale");
    assert!(matches!(&err, Error::Conflict(msg) if msg.contains("run the command again")), "{err}");
    assert_eq!(StoreContexts(store.clone()).load("user").expect("load"), Some(first.clone()));

    // The second writer reloads, applies its change again, and saves from the new version.
    let mut reloaded = StoreContexts(store.clone()).load("user").expect("load").expect("present");
    let base = reloaded.version;
    reloaded.add_root(carol().did());
    StoreContexts(store.clone()).save(&reloaded, Some(base)).expect("fresh save");
    let stored = StoreContexts(store.clone()).load("user").expect("load").expect("present");
    assert!(stored.roots.contains(&bob().did()) && stored.roots.contains(&carol().did()));

    // Expecting a version of a context that does not exist is a conflict too.
    ctx.name = "missing".into();
    assert!(StoreContexts(store.clone()).save(&ctx, Some(0)).is_err());
    assert_eq!(StoreContexts(store.clone()).load("missing").expect("load"), None);
}
