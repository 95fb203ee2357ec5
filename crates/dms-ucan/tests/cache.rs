//! The verifier's cache of verified chains: hits, invalidation by revocation, expiry
//! of cached entries, eviction, and that a cache hit never stands in for a chain other
//! than the one verified.

#[macro_use]
mod common;

use common::*;
use dms_ucan::verify::Config;
use dms_ucan::{Authorization, Chain, Limits, Reason, Spec, Verifier};

#[test]
fn verified_chain_is_served_from_the_cache() {
    let verifier = Verifier::default();
    let chain = three_links(&["/dms"], &verifier);
    verifier.clear();
    let (hits, misses) = verifier.cache_stats();

    let first = verifier.verify(&chain, NOW).expect("valid");
    assert_eq!(verifier.cache_stats(), (hits, misses + 1));
    let second = verifier.verify(&chain, NOW + 5).expect("valid");
    assert_eq!(verifier.cache_stats(), (hits + 1, misses + 1));
    assert!(std::sync::Arc::ptr_eq(&first, &second), "the cached result itself");
    assert_eq!(*first, verifier.verify_uncached(&chain, NOW).expect("valid"));
    assert_eq!(
        verifier.cache_stats(),
        (hits + 1, misses + 1),
        "verify_uncached bypasses the cache"
    );

    // Full authorizations use the cache too.
    let ctx = context(&alice());
    for _ in 0..3 {
        assert_eq!(authorize(&ctx, &verifier, &dave(), "/dms/x", &chain), Ok(Authorization::Chain));
    }
    assert_eq!(verifier.cache_stats(), (hits + 4, misses + 1));

    // Clearing empties it.
    verifier.clear();
    verifier.verify(&chain, NOW).expect("valid");
    assert_eq!(verifier.cache_stats(), (hits + 4, misses + 2));
}

#[test]
fn revoking_invalidates_the_cached_chain() {
    let verifier = Verifier::default();
    let chain = three_links(&["/dms"], &verifier);
    let mut ctx = context(&alice());
    assert!(authorize(&ctx, &verifier, &dave(), "/dms", &chain).is_ok());
    assert!(authorize(&ctx, &verifier, &dave(), "/dms", &chain).is_ok());
    let (hits, misses) = verifier.cache_stats();

    // Alice revokes bob → carol (link 1) in her own context.
    let middle = chain.tokens()[1].cid().to_string();
    ctx.revoke(&alice(), &middle, &verifier).expect("revoke");
    assert_denied!(
        authorize(&ctx, &verifier, &dave(), "/dms", &chain),
        Some(1),
        Reason::Revoked { ref cid, .. } if *cid == middle
    );
    assert_eq!(verifier.cache_stats(), (hits, misses + 1), "the entry was dropped and re-verified");
}

#[test]
fn imported_revocation_invalidates_the_cached_chain() {
    let verifier = Verifier::default();
    let chain = three_links(&["/dms"], &verifier);
    let mut ctx = context(&alice());
    assert!(authorize(&ctx, &verifier, &dave(), "/dms", &chain).is_ok());

    // Carol revokes her own link (carol → dave) elsewhere; alice learns of it.
    let leaf = chain.tokens()[2].cid().to_string();
    let rev = context(&carol()).revoke(&carol(), &leaf, &Verifier::default()).expect("revoke");
    let (_, misses) = verifier.cache_stats();
    let recorded = ctx.import_revocation(rev.clone(), &verifier).expect("import");
    assert_eq!((recorded.cid.as_str(), &recorded.by), (leaf.as_str(), &carol().did()));
    assert_denied!(
        authorize(&ctx, &verifier, &dave(), "/dms", &chain),
        Some(2),
        Reason::Revoked { .. }
    );
    assert_eq!(verifier.cache_stats().1, misses + 1);
    // Importing the same revocation twice records it once.
    let version = ctx.version;
    ctx.import_revocation(rev, &verifier).expect("import again");
    assert_eq!((ctx.revoked.len(), ctx.version), (1, version));
}

#[test]
fn revocation_is_enforced_even_with_a_warm_shared_cache() {
    // Two contexts share one verifier: a revocation known to one must not be masked by
    // the other's cache entry, and must not leak into the other.
    let verifier = Verifier::default();
    let chain = three_links(&["/dms"], &verifier);
    let mut revoking = context(&alice());
    let unaware = context(&alice());
    assert!(authorize(&unaware, &verifier, &dave(), "/dms", &chain).is_ok());
    revoking.revoke(&alice(), &chain.tokens()[0].cid().to_string(), &verifier).expect("revoke");
    assert!(authorize(&unaware, &verifier, &dave(), "/dms", &chain).is_ok());
    assert_denied!(
        authorize(&revoking, &verifier, &dave(), "/dms", &chain),
        Some(0),
        Reason::Revoked { .. }
    );
    assert!(authorize(&unaware, &verifier, &dave(), "/dms", &chain).is_ok());
}

#[test]
fn expired_cached_entry_is_re_verified_and_refused() {
    let (alice, bob) = (alice(), bob());
    let verifier = Verifier::default();
    let chain = grant(
        &alice,
        &bob,
        &Spec { not_before: Some(NOW - 10), expires: Some(NOW + 60), ..spec(&["/dms"]) },
    );
    verifier.verify(&chain, NOW).expect("valid now");
    verifier.verify(&chain, NOW + 60).expect("valid at its expiry");
    let (hits, misses) = verifier.cache_stats();
    assert_eq!((hits, misses), (1, 1));

    assert_denied!(
        verifier.verify(&chain, NOW + 61),
        Some(0),
        Reason::Expired { exp, now } if exp == NOW + 60 && now == NOW + 61
    );
    assert_eq!(verifier.cache_stats(), (1, 2), "an expired entry is not a hit");
    // Before its start, the same.
    assert_denied!(verifier.verify(&chain, NOW - 11), Some(0), Reason::NotYetValid { .. });
    // Through a context, too.
    let ctx = context(&alice);
    assert_denied!(
        authorize_at(&ctx, &verifier, &bob, "/dms", &chain, NOW + 61),
        Some(0),
        Reason::Expired { .. }
    );
    // The refusal was not cached: it is valid again at NOW.
    assert_eq!(authorize_at(&ctx, &verifier, &bob, "/dms", &chain, NOW), Ok(Authorization::Chain));
}

#[test]
fn expiry_deeper_in_the_chain_bounds_the_cached_entry() {
    let verifier = Verifier::default();
    let (alice, bob, carol) = (alice(), bob(), carol());
    let ab = grant(&alice, &bob, &Spec { expires: Some(NOW + 100), ..spec(&["/dms"]) });
    let abc = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| p.exp = Some(NOW + 10));
    assert_eq!(verifier.verify(&abc, NOW).expect("valid").expires, Some(NOW + 10));
    assert_denied!(verifier.verify(&abc, NOW + 11), Some(1), Reason::Expired { .. });
}

#[test]
fn failures_are_not_cached() {
    let verifier = Verifier::default();
    let forged =
        Chain::new(vec![forge(&payload(&alice(), &bob().did(), &["/"], None), &mallory())]);
    for _ in 0..3 {
        assert_denied!(verifier.verify(&forged, NOW), Some(0), Reason::BadSignature);
    }
    assert_eq!(verifier.cache_stats(), (0, 3));
}

#[test]
fn least_recently_used_entries_are_evicted() {
    let verifier = Verifier::new(Config { limits: Limits::default(), cache_capacity: 2 });
    let chains: Vec<Chain> = (0..3).map(|_| grant(&alice(), &bob(), &spec(&["/dms"]))).collect();
    for chain in &chains {
        verifier.verify(chain, NOW).expect("valid");
    }
    assert_eq!(verifier.cache_stats(), (0, 3));
    verifier.verify(&chains[2], NOW).expect("valid");
    verifier.verify(&chains[1], NOW).expect("valid");
    assert_eq!(verifier.cache_stats(), (2, 3));
    verifier.verify(&chains[0], NOW).expect("valid");
    assert_eq!(verifier.cache_stats(), (2, 4), "the first was evicted");
}

#[test]
fn a_cached_leaf_does_not_vouch_for_other_ancestors() {
    // The cache is keyed by the leaf's content id. Presenting that leaf under a different
    // (fake) ancestry must not be served from the cache as if it were the verified chain.
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let ab = grant(&alice, &bob, &spec(&["/dms"]));
    let abc = delegate(&bob, &ab, &carol, &spec(&["/dms/node"]), &verifier);
    verifier.verify(&abc, NOW).expect("valid");

    // Carol swaps the root for one she signed herself.
    let fake_root = grant(&carol, &bob, &spec(&["/dms"])).tokens()[0].clone();
    let swapped = Chain::new(vec![fake_root, abc.tokens()[1].clone()]);
    assert_denied!(verifier.verify(&swapped, NOW), Some(1), Reason::BrokenProof);
    // The leaf alone.
    let leaf_only = Chain::new(vec![abc.tokens()[1].clone()]);
    assert_denied!(verifier.verify(&leaf_only, NOW), Some(0), Reason::BrokenProof);
    // The genuine chain is still cached.
    let (hits, _) = verifier.cache_stats();
    verifier.verify(&abc, NOW).expect("valid");
    assert_eq!(verifier.cache_stats().0, hits + 1);
}

#[test]
fn a_cached_leaf_cannot_smuggle_a_chain_past_a_require_anchor() {
    // Alice admits chains rooted at bob for /dms/deployment only. Bob's real grant to
    // carol is for all of /dms, so it is refused; once it sits in the cache, carol must
    // not get it admitted by presenting its leaf behind a narrow root she made up.
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let mut ctx = context(&alice);
    ctx.add_require(grant(&alice, &bob, &spec(&["/dms/deployment"])), &verifier, NOW)
        .expect("anchor");

    let bc = grant(&bob, &carol, &spec(&["/dms"]));
    let bcc = extend_raw(&bc, &carol, &carol.did(), &["/dms"], |_| {});
    assert_denied!(
        authorize(&ctx, &verifier, &carol, "/dms/node", &bcc),
        Some(0),
        Reason::UntrustedRoot { .. }
    );

    let narrow_root = grant(&carol, &carol, &spec(&["/dms/deployment"])).tokens()[0].clone();
    let smuggled = Chain::new(vec![narrow_root, bcc.tokens()[1].clone()]);
    let denial =
        authorize(&ctx, &verifier, &carol, "/dms/node", &smuggled).expect_err("must be refused");
    assert_eq!(denial.reason, Reason::BrokenProof, "{denial}");
}
