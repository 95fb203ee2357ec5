//! Positive authorization paths: root grants, delegation chains, attenuation, require
//! anchors, topics, secp256k1 issuers, invocation tokens and policies.

#[macro_use]
mod common;

use common::*;
use dms_ucan::{Authorization, Command, Predicate, Reason, Request, Spec, Verifier};
use serde_json::json;

#[test]
fn root_grant_authorizes_the_delegate_and_the_owner_needs_no_chain() {
    let (alice, bob) = (alice(), bob());
    let verifier = Verifier::default();
    let ctx = context(&alice);
    let chain = grant(&alice, &bob, &spec(&["/dms/node"]));
    assert_eq!(chain.len(), 1);

    let ok = authorize(&ctx, &verifier, &bob, "/dms/node/peers/list", &chain);
    assert_eq!(ok, Ok(Authorization::Chain));
    assert_eq!(authorize(&ctx, &verifier, &bob, "/dms/node", &chain), Ok(Authorization::Chain));

    // The context's own identity, and its roots, are trusted without any proof.
    let empty = dms_ucan::Chain::empty();
    assert_eq!(
        authorize(&ctx, &verifier, &alice, "/anything/at/all", &empty),
        Ok(Authorization::Root)
    );
    let mut with_root = context(&alice);
    assert!(with_root.add_root(carol().did()));
    assert!(!with_root.add_root(carol().did()), "adding a root twice is a no-op");
    assert_eq!(authorize(&with_root, &verifier, &carol(), "/dms", &empty), Ok(Authorization::Root));

    // Outside the grant, and for someone else, it is refused.
    assert_denied!(
        authorize(&ctx, &verifier, &bob, "/dms/deployment", &chain),
        None,
        Reason::NotGranted { ref what } if what.contains("/dms/deployment")
    );
    assert_denied!(
        authorize(&ctx, &verifier, &carol(), "/dms/node", &empty),
        None,
        Reason::UntrustedRoot { .. }
    );
}

#[test]
fn root_grant_reports_what_it_verified() {
    let (alice, bob) = (alice(), bob());
    let chain = grant(
        &alice,
        &bob,
        &Spec {
            commands: cmds(&["/dms/node/peers", "/dms/node", "/public/hello"]),
            topics: cmds(&["/public"]),
            not_before: Some(NOW - 10),
            expires: Some(NOW + 10),
            depth: Some(2),
            subject: Some(alice.did()),
            policies: vec![Predicate::Le(".cpu".into(), 4.0)],
        },
    );
    let v = verify(&chain).expect("valid");
    assert_eq!(v.root_issuer(), &alice.did());
    assert_eq!(v.audience, bob.did());
    assert_eq!(v.subject, Some(alice.did()));
    // The grant is normalized: /dms/node/peers is implied by /dms/node.
    assert_eq!(v.commands, cmds(&["/dms/node", "/public/hello"]));
    assert_eq!(v.topics, cmds(&["/public"]));
    assert_eq!((v.not_before, v.expires), (Some(NOW - 10), Some(NOW + 10)));
    assert_eq!(v.remaining_depth, 2);
    assert_eq!(v.policies, vec![Predicate::Le(".cpu".into(), 4.0)]);
    assert_eq!(v.cids, vec![chain.tokens()[0].cid()]);
    assert!(v.valid_at(NOW) && !v.valid_at(NOW + 11) && !v.valid_at(NOW - 11));
}

#[test]
fn a_grant_needs_something_and_the_right_key() {
    let alice = alice();
    let ctx = context(&alice);
    assert!(ctx.grant(&alice, bob().did(), &Spec::default()).is_err(), "nothing to grant");
    assert!(ctx.grant(&mallory(), bob().did(), &spec(&["/dms"])).is_err(), "not alice's key");
    assert!(
        ctx.delegate(&mallory(), bob().did(), &spec(&["/dms"]), &Verifier::default(), NOW).is_err()
    );
}

#[test]
fn three_link_chain_is_authorized() {
    let verifier = Verifier::default();
    let ctx = context(&alice());
    let chain = three_links(&["/dms/node"], &verifier);
    assert_eq!(chain.len(), 3);
    let v = verify(&chain).expect("valid");
    assert_eq!(v.issuers, vec![alice().did(), bob().did(), carol().did()]);
    assert_eq!(v.audience, dave().did());

    assert_eq!(
        authorize(&ctx, &verifier, &dave(), "/dms/node/peers/list", &chain),
        Ok(Authorization::Chain)
    );
    // Every prefix is a valid chain for its own audience.
    let abc = dms_ucan::Chain::new(chain.tokens()[..2].to_vec());
    assert_eq!(authorize(&ctx, &verifier, &carol(), "/dms/node", &abc), Ok(Authorization::Chain));
}

#[test]
fn each_link_narrows_and_the_narrow_grant_excludes_siblings() {
    let (alice, bob, carol, dave) = (alice(), bob(), carol(), dave());
    let verifier = Verifier::default();
    let ctx = context(&alice);
    let ab = grant(&alice, &bob, &spec(&["/dms"]));
    let abc = delegate(&bob, &ab, &carol, &spec(&["/dms/node"]), &verifier);
    let abcd = delegate(&carol, &abc, &dave, &spec(&["/dms/node/peers"]), &verifier);
    let v = verify(&abcd).expect("valid");
    assert_eq!(v.commands, cmds(&["/dms/node/peers"]));

    assert_eq!(
        authorize(&ctx, &verifier, &dave, "/dms/node/peers/list", &abcd),
        Ok(Authorization::Chain)
    );
    assert_eq!(
        authorize(&ctx, &verifier, &dave, "/dms/node/peers", &abcd),
        Ok(Authorization::Chain)
    );
    for sibling in
        ["/dms/node/info", "/dms/node", "/dms/deployment", "/dms", "/", "/dms/node/peersx"]
    {
        assert_denied!(
            authorize(&ctx, &verifier, &dave, sibling, &abcd),
            None,
            Reason::NotGranted { ref what } if what.contains(sibling)
        );
    }
    // Carol still holds all of /dms/node but nothing beside it.
    assert_eq!(
        authorize(&ctx, &verifier, &carol, "/dms/node/info", &abc),
        Ok(Authorization::Chain)
    );
    assert_denied!(
        authorize(&ctx, &verifier, &carol, "/dms/deployment", &abc),
        None,
        Reason::NotGranted { .. }
    );

    // A context refuses to delegate more than it holds.
    let carols = holding(&carol, &abc, &verifier);
    assert!(
        carols.delegate(&carol, dave.did(), &spec(&["/dms/deployment"]), &verifier, NOW).is_err()
    );
    assert!(carols.delegate(&carol, dave.did(), &spec(&["/dms"]), &verifier, NOW).is_err());
    assert!(
        carols
            .delegate(
                &carol,
                dave.did(),
                &spec_topics(&["/dms/node"], &["/public"]),
                &verifier,
                NOW
            )
            .is_err()
    );
}

#[test]
fn delegate_inherits_the_anchor_bounds() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let ab = grant(
        &alice,
        &bob,
        &Spec {
            not_before: Some(NOW - 100),
            expires: Some(NOW + 100),
            subject: Some(alice.did()),
            ..spec(&["/dms"])
        },
    );
    let bobs = holding(&bob, &ab, &verifier);
    let abc =
        bobs.delegate(&bob, carol.did(), &spec(&["/dms/node"]), &verifier, NOW).expect("fits");
    let leaf = abc.leaf().expect("leaf").payload();
    assert_eq!((leaf.nbf, leaf.exp), (Some(NOW - 100), Some(NOW + 100)), "bounds inherited");
    assert_eq!(leaf.sub, Some(alice.did()), "subject inherited");
    assert_eq!(leaf.prf, Some(ab.tokens()[0].cid()));

    // Asking to outlive the anchor is refused with a message.
    let too_long = Spec { expires: Some(NOW + 101), ..spec(&["/dms/node"]) };
    let err = bobs.delegate(&bob, carol.did(), &too_long, &verifier, NOW).expect_err("outlives");
    assert!(err.to_string().contains("expiry"), "{err}");

    // A provide anchor must be addressed to the context's identity.
    let mut carols = context(&carol);
    assert!(carols.add_provide(ab.clone(), &verifier, NOW).is_err());
    // ... and valid.
    let mut bobs_later = context(&bob);
    assert!(bobs_later.add_provide(ab, &verifier, NOW + 1000).is_err());
}

#[test]
fn delegation_depth_limits_what_a_context_can_pass_on() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let ab = grant(&alice, &bob, &Spec { depth: Some(0), ..spec(&["/dms"]) });
    let bobs = holding(&bob, &ab, &verifier);
    let err =
        bobs.delegate(&bob, carol.did(), &spec(&["/dms"]), &verifier, NOW).expect_err("depth 0");
    assert!(err.to_string().contains("delegation left"), "{err}");
    // Bob can still use it himself.
    assert_eq!(
        authorize(&context(&alice), &verifier, &bob, "/dms/x", &ab),
        Ok(Authorization::Chain)
    );
}

#[test]
fn require_anchor_admits_another_root_for_what_it_grants_only() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let mut ctx = context(&alice);
    let anchor = grant(&alice, &bob, &spec(&["/dms/deployment"]));
    ctx.add_require(anchor.clone(), &verifier, NOW)
        .expect("issued by alice, a root of her own context");
    let anchor_cid = anchor.leaf().expect("leaf").cid().to_string();

    // bob → carol: bob is the ROOT issuer of this chain, which alice only admits through
    // the anchor.
    let deployment = grant(&bob, &carol, &spec(&["/dms/deployment"]));
    assert_eq!(
        authorize(&ctx, &verifier, &carol, "/dms/deployment/bid", &deployment),
        Ok(Authorization::Required(anchor_cid.clone()))
    );

    let node = grant(&bob, &carol, &spec(&["/dms/node"]));
    assert_denied!(
        authorize(&ctx, &verifier, &carol, "/dms/node", &node),
        Some(0),
        Reason::UntrustedRoot { ref issuer } if *issuer == bob.did().to_string()
    );
    // A chain from bob granting beyond the anchor is refused outright, even for the part
    // the anchor covers.
    let both = grant(&bob, &carol, &spec(&["/dms/deployment", "/dms/node"]));
    assert_denied!(
        authorize(&ctx, &verifier, &carol, "/dms/deployment/bid", &both),
        Some(0),
        Reason::UntrustedRoot { .. }
    );

    // Without the anchor, bob's chain is not trusted at all.
    assert!(ctx.remove(&anchor_cid));
    assert_denied!(
        authorize(&ctx, &verifier, &carol, "/dms/deployment/bid", &deployment),
        Some(0),
        Reason::UntrustedRoot { .. }
    );
}

#[test]
fn require_anchor_policies_and_expiry_bind_the_admitted_chain() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let mut ctx = context(&alice);
    let anchor = grant(
        &alice,
        &bob,
        &Spec {
            expires: Some(NOW + 100),
            policies: vec![Predicate::Le(".cpu".into(), 4.0)],
            ..spec(&["/dms/deployment"])
        },
    );
    ctx.add_require(anchor, &verifier, NOW).expect("valid anchor");

    let bounded =
        grant(&bob, &carol, &Spec { expires: Some(NOW + 50), ..spec(&["/dms/deployment"]) });
    assert!(
        authorize_args(
            &ctx,
            &verifier,
            &carol,
            "/dms/deployment/bid",
            &bounded,
            &json!({"cpu": 2})
        )
        .is_ok()
    );
    assert_denied!(
        authorize_args(
            &ctx,
            &verifier,
            &carol,
            "/dms/deployment/bid",
            &bounded,
            &json!({"cpu": 8})
        ),
        None,
        Reason::PolicyViolated { .. }
    );
    // A root from bob that outlives the anchor (or never expires) is not admitted.
    let forever = grant(&bob, &carol, &spec(&["/dms/deployment"]));
    assert_denied!(
        authorize_args(
            &ctx,
            &verifier,
            &carol,
            "/dms/deployment/bid",
            &forever,
            &json!({"cpu": 1})
        ),
        Some(0),
        Reason::UntrustedRoot { .. }
    );
}

#[test]
fn require_anchor_must_come_from_a_root() {
    let verifier = Verifier::default();
    let mut ctx = context(&alice());
    let from_mallory = grant(&mallory(), &bob(), &spec(&["/dms"]));
    let err =
        ctx.add_require(from_mallory.clone(), &verifier, NOW).expect_err("mallory is not a root");
    assert!(err.to_string().contains("root"), "{err}");
    assert!(ctx.require.is_empty());
    // Once mallory is a root, her anchor is accepted.
    ctx.add_root(mallory().did());
    ctx.add_require(from_mallory, &verifier, NOW).expect("now a root");
    assert_eq!(ctx.require.len(), 1);
}

#[test]
fn topics_are_granted_and_narrowed() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let ctx = context(&alice);
    let ab = grant(&alice, &bob, &spec_topics(&["/dms/broadcast"], &["/public"]));
    let abc = delegate(
        &bob,
        &ab,
        &carol,
        &spec_topics(&["/dms/broadcast"], &["/public/hello"]),
        &verifier,
    );
    let v = verify(&abc).expect("valid");
    assert_eq!(v.topics, cmds(&["/public/hello"]));

    let (invoker, behavior) = (carol.did(), cmd("/dms/broadcast"));
    let topic = |t: &str| cmd(t);
    let ask = |t: &Command| {
        ctx.authorize(
            &verifier,
            Request { topic: Some(t), ..request(&invoker, &ctx.did, &behavior, &abc) },
            NOW,
        )
    };
    assert_eq!(ask(&topic("/public/hello")), Ok(Authorization::Chain));
    assert_eq!(ask(&topic("/public/hello/world")), Ok(Authorization::Chain));
    assert_denied!(
        ask(&topic("/public/other")),
        None,
        Reason::NotGranted { ref what } if what.contains("topic")
    );
    assert_denied!(ask(&topic("/public")), None, Reason::NotGranted { .. });

    // Bob holds the whole of /public.
    let (bobs_did, other) = (bob.did(), topic("/public/other"));
    let req = Request { topic: Some(&other), ..request(&bobs_did, &ctx.did, &behavior, &ab) };
    assert_eq!(ctx.authorize(&verifier, req, NOW), Ok(Authorization::Chain));
}

#[test]
fn secp256k1_issuers_take_part_in_chains() {
    let (alice, sam, carol) = (alice(), sam(), carol());
    let verifier = Verifier::default();
    // secp256k1 in the middle of a chain.
    let a_s = grant(&alice, &sam, &spec(&["/dms"]));
    let a_s_c = delegate(&sam, &a_s, &carol, &spec(&["/dms/node"]), &verifier);
    let v = verify(&a_s_c).expect("valid");
    assert_eq!(v.issuers[1], sam.did());
    assert_eq!(
        authorize(&context(&alice), &verifier, &carol, "/dms/node/peers", &a_s_c),
        Ok(Authorization::Chain)
    );

    // secp256k1 as the root.
    let s_c = grant(&sam, &carol, &spec(&["/dms/node"]));
    assert_eq!(
        authorize(&context(&sam), &verifier, &carol, "/dms/node", &s_c),
        Ok(Authorization::Chain)
    );
    // ... and as the invoker of an invocation.
    let s_inv = invocation(&sam, &alice.did(), "/dms/node/peers/list", &a_s, None);
    assert_eq!(
        context(&alice).authorize_invocation(&verifier, &s_inv, &a_s, NOW),
        Ok(Authorization::Chain)
    );
}

#[test]
fn invocation_tokens_are_authorized_against_their_proof() {
    let (alice, bob) = (alice(), bob());
    let verifier = Verifier::default();
    let ctx = context(&alice);
    let chain = grant(&alice, &bob, &spec(&["/dms/node"]));
    let inv = invocation(&bob, &alice.did(), "/dms/node/peers/list", &chain, None);
    assert_eq!(inv.payload().typ, dms_ucan::Kind::Invocation);
    assert_eq!(ctx.authorize_invocation(&verifier, &inv, &chain, NOW), Ok(Authorization::Chain));

    // Alice invoking on herself needs no proof (prf absent, chain empty).
    let own = invocation(&alice, &alice.did(), "/dms/anything", &dms_ucan::Chain::empty(), None);
    assert_eq!(own.payload().prf, None);
    assert_eq!(
        ctx.authorize_invocation(&verifier, &own, &dms_ucan::Chain::empty(), NOW),
        Ok(Authorization::Root)
    );

    // Not granted by the proof.
    let beyond = invocation(&bob, &alice.did(), "/dms/deployment", &chain, None);
    assert_denied!(
        ctx.authorize_invocation(&verifier, &beyond, &chain, NOW),
        None,
        Reason::NotGranted { .. }
    );
}

#[test]
fn policies_allow_deny_and_tighten_down_the_chain() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let ctx = context(&alice);
    let ab = grant(
        &alice,
        &bob,
        &Spec { policies: vec![Predicate::Le(".cpu".into(), 4.0)], ..spec(&["/dms/deployment"]) },
    );
    let run = |who: &dms_crypto::KeyPair, chain: &dms_ucan::Chain, args: serde_json::Value| {
        let inv = invocation(who, &alice.did(), "/dms/deployment/run", chain, Some(args));
        ctx.authorize_invocation(&verifier, &inv, chain, NOW)
    };
    assert_eq!(run(&bob, &ab, json!({"cpu": 4})), Ok(Authorization::Chain));
    assert_eq!(run(&bob, &ab, json!({"cpu": 3.5})), Ok(Authorization::Chain));
    let denial =
        assert_denied!(run(&bob, &ab, json!({"cpu": 5})), None, Reason::PolicyViolated { .. });
    let Reason::PolicyViolated { predicate } = denial.reason else { unreachable!() };
    assert!(predicate.contains(".cpu") && predicate.contains("le"), "{predicate}");
    assert_denied!(run(&bob, &ab, json!({"mem": 1})), None, Reason::PolicyViolated { .. });
    // No arguments at all: the predicate does not hold.
    assert_denied!(
        authorize(&ctx, &verifier, &bob, "/dms/deployment/run", &ab),
        None,
        Reason::PolicyViolated { .. }
    );

    // Carol's link adds a tighter bound and a glob; both the parent's and hers apply.
    let tighter = Spec {
        policies: vec![
            Predicate::Le(".cpu".into(), 2.0),
            Predicate::Like(".image".into(), "registry.local/*".into()),
        ],
        ..spec(&["/dms/deployment"])
    };
    let abc = delegate(&bob, &ab, &carol, &tighter, &verifier);
    assert_eq!(verify(&abc).expect("valid").policies.len(), 3);
    assert_eq!(
        run(&carol, &abc, json!({"cpu": 2, "image": "registry.local/app"})),
        Ok(Authorization::Chain)
    );
    assert_denied!(
        run(&carol, &abc, json!({"cpu": 3, "image": "registry.local/app"})),
        None,
        Reason::PolicyViolated { .. }
    );
    assert_denied!(
        run(&carol, &abc, json!({"cpu": 1, "image": "docker.io/app"})),
        None,
        Reason::PolicyViolated { .. }
    );

    // A child cannot loosen: a looser bound added below still leaves the parent's.
    let looser =
        Spec { policies: vec![Predicate::Le(".cpu".into(), 64.0)], ..spec(&["/dms/deployment"]) };
    let loose = delegate(&bob, &ab, &carol, &looser, &verifier);
    assert_denied!(run(&carol, &loose, json!({"cpu": 8})), None, Reason::PolicyViolated { .. });
}

#[test]
fn chain_for_picks_a_usable_provide_anchor() {
    let (alice, bob) = (alice(), bob());
    let verifier = Verifier::default();
    let short = grant(&alice, &bob, &Spec { expires: Some(NOW + 10), ..spec(&["/dms"]) });
    let long = grant(&alice, &bob, &Spec { expires: Some(NOW + 1000), ..spec(&["/dms/node"]) });
    let other = grant(&alice, &bob, &Spec { subject: Some(carol().did()), ..spec(&["/public"]) });
    let mut bobs = context(&bob);
    for c in [&short, &long, &other] {
        bobs.add_provide(c.clone(), &verifier, NOW).expect("valid");
    }
    assert_eq!(bobs.provide.len(), 3);
    bobs.add_provide(short.clone(), &verifier, NOW).expect("valid");
    assert_eq!(bobs.provide.len(), 3, "the same anchor is kept once");

    let pick = |b: &str, now| bobs.chain_for(&verifier, &cmd(b), &alice.did(), now);
    assert_eq!(pick("/dms/node/x", NOW), Some(long.clone()), "the longest-lasting one");
    assert_eq!(pick("/dms/deployment", NOW), Some(short.clone()), "the only one granting it");
    assert_eq!(pick("/dms/deployment", NOW + 11), None, "expired");
    assert_eq!(pick("/public", NOW), None, "bound to another subject");
    assert_eq!(bobs.chain_for(&verifier, &cmd("/public"), &carol().did(), NOW), Some(other));
}
