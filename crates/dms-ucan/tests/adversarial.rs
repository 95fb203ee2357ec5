//! Hostile chains and requests: each is refused with the precise typed reason and, where
//! a single token is at fault, the index of that link (0 = root).

#[macro_use]
mod common;

use common::*;
use dms_ucan::verify::Config;
use dms_ucan::{Chain, Kind, Limits, Payload, Reason, Token, Verifier};

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

#[test]
fn tampered_payload_fails_its_signature() {
    let (alice, bob) = (alice(), bob());
    let chain = grant(&alice, &bob, &spec(&["/dms/node"]));
    let root = tamper(&chain.tokens()[0], |p| p.cmd = cmds(&["/"]));
    assert_denied!(verify(&Chain::new(vec![root])), Some(0), Reason::BadSignature);
    let later = tamper(&chain.tokens()[0], |p| p.exp = Some(u64::MAX));
    assert_denied!(verify(&Chain::new(vec![later])), Some(0), Reason::BadSignature);
    let other_aud = tamper(&chain.tokens()[0], |p| p.aud = mallory().did());
    assert_denied!(verify(&Chain::new(vec![other_aud])), Some(0), Reason::BadSignature);
}

#[test]
fn tampered_middle_link_is_reported_at_its_index() {
    let verifier = Verifier::default();
    let chain = three_links(&["/dms/node"], &verifier);
    let mut tokens = chain.tokens().to_vec();
    tokens[1] = tamper(&tokens[1], |p| p.cmd = cmds(&["/dms/node", "/dms/deployment"]));
    let denial = assert_denied!(verify(&Chain::new(tokens.clone())), Some(1), Reason::BadSignature);
    assert_eq!(denial.cid, Some(tokens[1].cid().to_string()));
    assert_eq!(denial.code(), "bad_signature");
    assert!(denial.to_string().contains("link 1"), "{denial}");
}

#[test]
fn flipped_signature_byte_fails() {
    let chain = grant(&alice(), &bob(), &spec(&["/dms"]));
    let mut bytes = chain.tokens()[0].bytes().to_vec();
    // [0x82, 0x58, 0x40, <64 signature bytes>, payload...]
    assert_eq!(&bytes[..3], &[0x82, 0x58, 0x40]);
    bytes[10] ^= 0x01;
    let token = Token::decode(&bytes, usize::MAX).expect("still well formed");
    assert_eq!(token.verify_signature(), Err(dms_ucan::Error::BadSignature));
    assert_denied!(verify(&Chain::new(vec![token])), Some(0), Reason::BadSignature);
}

#[test]
fn mallory_signing_as_alice_is_refused() {
    let (alice, bob) = (alice(), bob());
    // Token::sign refuses a key that is not the issuer's ...
    let claimed = payload(&alice, &bob.did(), &["/"], None);
    assert!(matches!(
        Token::sign(claimed.clone(), &mallory()),
        Err(dms_ucan::Error::IssuerKey { .. })
    ));
    // ... so mallory crafts the bytes herself.
    let forged = forge(&claimed, &mallory());
    assert_eq!(forged.payload().iss, alice.did());
    assert_denied!(verify(&Chain::new(vec![forged.clone()])), Some(0), Reason::BadSignature);
    assert_denied!(
        authorize(&context(&alice), &Verifier::default(), &bob, "/dms", &Chain::new(vec![forged])),
        Some(0),
        Reason::BadSignature
    );

    // A forged second link (bob's name, mallory's key) is caught at link 1.
    let ab = grant(&alice, &bob, &spec(&["/dms"]));
    let forged_link = forge(&payload(&bob, &mallory().did(), &["/dms"], ab.leaf()), &mallory());
    assert_denied!(verify(&ab.extended(forged_link)), Some(1), Reason::BadSignature);

    // The same with a secp256k1 identity.
    let s_claim = payload(&sam(), &bob.did(), &["/"], None);
    assert_denied!(
        verify(&Chain::new(vec![forge(&s_claim, &mallory())])),
        Some(0),
        Reason::BadSignature
    );
    let sam_signed_by_other_secp =
        dms_crypto::KeyPair::from_secret_bytes(dms_crypto::KeyType::Secp256k1, &[0x11; 32])
            .expect("valid scalar");
    assert_denied!(
        verify(&Chain::new(vec![forge(&s_claim, &sam_signed_by_other_secp)])),
        Some(0),
        Reason::BadSignature
    );
}

// ---------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------

#[test]
fn issuer_not_the_parents_audience_is_misaligned() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let ab = grant(&alice, &bob, &spec(&["/dms"]));
    // Carol extends a chain that was given to bob.
    let chain = extend_raw(&ab, &carol, &dave().did(), &["/dms"], |_| {});
    assert_denied!(
        verify(&chain),
        Some(1),
        Reason::Misaligned { ref expected, ref found }
            if *expected == bob.did().to_string() && *found == carol.did().to_string()
    );
    // Mallory extending bob's chain to herself.
    let stolen = extend_raw(&ab, &mallory(), &mallory().did(), &["/dms"], |_| {});
    assert_denied!(verify(&stolen), Some(1), Reason::Misaligned { .. });
}

#[test]
fn proof_pointing_elsewhere_is_broken() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let ab = grant(&alice, &bob, &spec(&["/dms"]));
    let other = grant(&alice, &bob, &spec(&["/dms"]));
    // Bob's link cites another token than the one before it.
    let wrong = raw(&bob, &carol.did(), &["/dms"], other.leaf(), |_| {});
    assert_denied!(verify(&ab.extended(wrong)), Some(1), Reason::BrokenProof);
    // ... or nothing at all.
    let none = raw(&bob, &carol.did(), &["/dms"], None, |_| {});
    assert_denied!(verify(&ab.extended(none)), Some(1), Reason::BrokenProof);
    // A root that cites a parent is broken too.
    let orphan = raw(&bob, &carol.did(), &["/dms"], ab.leaf(), |_| {});
    assert_denied!(verify(&Chain::new(vec![orphan])), Some(0), Reason::BrokenProof);
    // Links out of order.
    let abc = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |_| {});
    let swapped = Chain::new(vec![abc.tokens()[1].clone(), abc.tokens()[0].clone()]);
    assert_denied!(verify(&swapped), Some(0), Reason::BrokenProof);
}

#[test]
fn tokens_of_the_wrong_kind_are_refused_in_chains() {
    let (alice, bob) = (alice(), bob());
    let ab = grant(&alice, &bob, &spec(&["/dms"]));
    let inv = invocation(&bob, &alice.did(), "/dms/x", &ab, None);
    assert_denied!(verify(&ab.extended(inv.clone())), Some(1), Reason::WrongKind);
    assert_denied!(verify(&Chain::new(vec![inv])), Some(0), Reason::WrongKind);
    let mut rev = Payload::new(Kind::Revocation, alice.did(), alice.did());
    rev.rev = Some(ab.tokens()[0].cid());
    let rev = Token::sign(rev, &alice).expect("sign");
    assert_denied!(verify(&Chain::new(vec![rev])), Some(0), Reason::WrongKind);
}

#[test]
fn empty_chain_is_malformed_for_the_verifier_and_untrusted_for_a_context() {
    let verifier = Verifier::default();
    assert_denied!(verifier.verify(&Chain::empty(), NOW), None, Reason::Malformed(_));
    assert_denied!(verifier.verify_uncached(&Chain::empty(), NOW), None, Reason::Malformed(_));
    assert_denied!(
        authorize(&context(&alice()), &verifier, &mallory(), "/dms", &Chain::empty()),
        None,
        Reason::UntrustedRoot { ref issuer } if *issuer == mallory().did().to_string()
    );
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

#[test]
fn expired_and_not_yet_valid_tokens_are_refused() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let expired = raw(&alice, &bob.did(), &["/dms"], None, |p| p.exp = Some(NOW - 1));
    assert_denied!(
        verify(&Chain::new(vec![expired])),
        Some(0),
        Reason::Expired { exp, now } if exp == NOW - 1 && now == NOW
    );
    let early = raw(&alice, &bob.did(), &["/dms"], None, |p| p.nbf = Some(NOW + 60));
    assert_denied!(
        verify(&Chain::new(vec![early])),
        Some(0),
        Reason::NotYetValid { nbf, now } if nbf == NOW + 60 && now == NOW
    );
    // The boundaries are inclusive.
    let exact = raw(&alice, &bob.did(), &["/dms"], None, |p| {
        p.nbf = Some(NOW);
        p.exp = Some(NOW);
    });
    let exact = Chain::new(vec![exact]);
    assert!(verify(&exact).is_ok());
    let v = Verifier::default();
    assert_denied!(v.verify_uncached(&exact, NOW + 1), Some(0), Reason::Expired { .. });
    assert_denied!(v.verify_uncached(&exact, NOW - 1), Some(0), Reason::NotYetValid { .. });

    // An expired link deeper in the chain is reported at its index.
    let ab = grant(&alice, &bob, &dms_ucan::Spec { expires: Some(NOW + 100), ..spec(&["/dms"]) });
    let abc = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| p.exp = Some(NOW + 10));
    assert!(verify(&abc).is_ok());
    assert_denied!(
        v.verify_uncached(&abc, NOW + 11),
        Some(1),
        Reason::Expired { exp, .. } if exp == NOW + 10
    );
    assert_denied!(v.verify_uncached(&abc, NOW + 101), Some(0), Reason::Expired { .. });
}

#[test]
fn child_outliving_its_parent_is_refused() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let ab = grant(
        &alice,
        &bob,
        &dms_ucan::Spec {
            not_before: Some(NOW - 100),
            expires: Some(NOW + 100),
            ..spec(&["/dms"])
        },
    );
    let later = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| {
        p.nbf = Some(NOW - 100);
        p.exp = Some(NOW + 200);
    });
    assert_denied!(verify(&later), Some(1), Reason::OutlivesParent);
    let forever = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| p.nbf = Some(NOW - 100));
    assert_denied!(verify(&forever), Some(1), Reason::OutlivesParent);
    let earlier = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| {
        p.nbf = Some(NOW - 200);
        p.exp = Some(NOW + 100);
    });
    assert_denied!(verify(&earlier), Some(1), Reason::OutlivesParent);
    let unbounded_start =
        extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| p.exp = Some(NOW + 50));
    assert_denied!(verify(&unbounded_start), Some(1), Reason::OutlivesParent);
    let within = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| {
        p.nbf = Some(NOW - 50);
        p.exp = Some(NOW + 50);
    });
    let v = verify(&within).expect("within the parent");
    assert_eq!((v.not_before, v.expires), (Some(NOW - 50), Some(NOW + 50)));
}

// ---------------------------------------------------------------------------------------
// Attenuation
// ---------------------------------------------------------------------------------------

#[test]
fn command_escalation_is_refused() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let ab = grant(&alice, &bob, &spec(&["/dms/node"]));
    for (asked, culprit) in [
        (&["/dms"][..], "/dms"),
        (&["/"][..], "/"),
        (&["/dms/deployment"][..], "/dms/deployment"),
        (&["/dms/node/peers", "/dms/nodex"][..], "/dms/nodex"),
    ] {
        let chain = extend_raw(&ab, &bob, &carol.did(), asked, |_| {});
        assert_denied!(
            verify(&chain),
            Some(1),
            Reason::CommandEscalation { ref command } if command == culprit
        );
    }
    // Escalation two links down, after a narrowing.
    let abc = extend_raw(&ab, &bob, &carol.did(), &["/dms/node/peers"], |_| {});
    let abcd = extend_raw(&abc, &carol, &dave().did(), &["/dms/node/info"], |_| {});
    assert_denied!(verify(&abcd), Some(2), Reason::CommandEscalation { .. });
}

#[test]
fn topic_escalation_is_refused() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let ab = grant(&alice, &bob, &spec_topics(&["/dms/broadcast"], &["/public/hello"]));
    let chain =
        extend_raw(&ab, &bob, &carol.did(), &["/dms/broadcast"], |p| p.topics = cmds(&["/public"]));
    assert_denied!(
        verify(&chain),
        Some(1),
        Reason::TopicEscalation { ref topic } if topic == "/public"
    );
    let chain =
        extend_raw(&ab, &bob, &carol.did(), &["/dms/broadcast"], |p| p.topics = cmds(&["/secret"]));
    assert_denied!(
        verify(&chain),
        Some(1),
        Reason::TopicEscalation { ref topic } if topic == "/secret"
    );
    // A parent without topics grants none.
    let plain = grant(&alice, &bob, &spec(&["/dms"]));
    let chain =
        extend_raw(&plain, &bob, &carol.did(), &["/dms"], |p| p.topics = cmds(&["/public"]));
    assert_denied!(verify(&chain), Some(1), Reason::TopicEscalation { .. });
}

#[test]
fn subject_cannot_change_down_the_chain() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    let ab = grant(&alice, &bob, &dms_ucan::Spec { subject: Some(alice.did()), ..spec(&["/dms"]) });
    let other = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| p.sub = Some(mallory().did()));
    assert_denied!(verify(&other), Some(1), Reason::SubjectMismatch);
    let dropped = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |_| {});
    assert_denied!(verify(&dropped), Some(1), Reason::SubjectMismatch);
    // A chain bound to alice does not work on mallory's node.
    let kept = extend_raw(&ab, &bob, &carol.did(), &["/dms"], |p| p.sub = Some(alice.did()));
    let mut mallorys = context(&mallory());
    mallorys.add_root(alice.did());
    assert_denied!(
        authorize(&mallorys, &verifier, &carol, "/dms", &kept),
        None,
        Reason::WrongSubject { ref expected } if *expected == mallory().did().to_string()
    );
}

#[test]
fn depth_exceeded_is_refused() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    // Root allows no further delegation.
    let zero = Chain::new(vec![raw(&alice, &bob.did(), &["/dms"], None, |p| p.depth = Some(0))]);
    assert!(verify(&zero).is_ok());
    let chain = extend_raw(&zero, &bob, &carol.did(), &["/dms"], |_| {});
    assert_denied!(verify(&chain), Some(1), Reason::DepthExceeded);

    // Root allows one; the second delegation is one too many, even if the middle link
    // claims a larger depth.
    let one = Chain::new(vec![raw(&alice, &bob.did(), &["/dms"], None, |p| p.depth = Some(1))]);
    let two = extend_raw(&one, &bob, &carol.did(), &["/dms"], |p| p.depth = Some(9));
    assert_eq!(verify(&two).expect("one delegation allowed").remaining_depth, 0);
    let three = extend_raw(&two, &carol, &dave().did(), &["/dms"], |_| {});
    assert_denied!(verify(&three), Some(2), Reason::DepthExceeded);
}

#[test]
fn chains_longer_than_the_limit_are_refused() {
    let (alice, bob) = (alice(), bob());
    let mut chain = grant(&alice, &bob, &spec(&["/dms"]));
    for _ in 0..2 {
        chain = extend_raw(&chain, &bob, &bob.did(), &["/dms"], |_| {});
    }
    let strict = Verifier::new(Config {
        limits: Limits { max_chain_len: 2, ..Limits::default() },
        cache_capacity: 8,
    });
    assert_denied!(strict.verify(&chain, NOW), None, Reason::ChainTooLong { len: 3, max: 2 });
    assert!(verify(&chain).is_ok());
    // Decoding with the same limits refuses it before looking at the tokens.
    let err = Chain::from_bytes(&chain.to_bytes(), strict.limits()).expect_err("too long");
    assert_eq!(err, dms_ucan::Error::ChainTooLong { len: 3, max: 2 });
    assert_eq!(dms_ucan::Denial::from(err).reason, Reason::ChainTooLong { len: 3, max: 2 });
}

// ---------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------

#[test]
fn revoked_token_and_revoked_ancestor_are_refused() {
    let verifier = Verifier::default();
    let chain = three_links(&["/dms"], &verifier);
    let cids: Vec<String> = chain.tokens().iter().map(|t| t.cid().to_string()).collect();

    // Alice revokes her own root: everything below falls.
    let mut ctx = context(&alice());
    ctx.revoke(&alice(), &cids[0], &verifier).expect("revoke");
    assert_denied!(
        authorize(&ctx, &verifier, &dave(), "/dms", &chain),
        Some(0),
        Reason::Revoked { ref cid, ref by } if *cid == cids[0] && *by == alice().did().to_string()
    );

    // Bob revokes the link he issued (bob → carol): dave's chain rests on it.
    let mut ctx = context(&alice());
    let mut bobs = context(&bob());
    let rev = bobs.revoke(&bob(), &cids[1], &verifier).expect("revoke");
    ctx.import_revocation(rev, &verifier).expect("import");
    assert_denied!(
        authorize(&ctx, &verifier, &dave(), "/dms", &chain),
        Some(1),
        Reason::Revoked { .. }
    );
    // ... and so does carol's shorter chain, which ends at the revoked link.
    let abc = Chain::new(chain.tokens()[..2].to_vec());
    assert_denied!(
        authorize(&ctx, &verifier, &carol(), "/dms", &abc),
        Some(1),
        Reason::Revoked { .. }
    );
    // Bob's own grant is untouched.
    let ab = Chain::new(chain.tokens()[..1].to_vec());
    assert!(authorize(&ctx, &verifier, &bob(), "/dms", &ab).is_ok());

    // Alice (upstream) revoking carol's link counts too.
    let mut ctx = context(&alice());
    let mut alices = context(&alice());
    let rev = alices.revoke(&alice(), &cids[2], &verifier).expect("revoke");
    ctx.import_revocation(rev, &verifier).expect("import");
    assert_denied!(
        authorize(&ctx, &verifier, &dave(), "/dms", &chain),
        Some(2),
        Reason::Revoked { ref by, .. } if *by == alice().did().to_string()
    );
}

#[test]
fn revocations_without_authority_do_not_count() {
    let verifier = Verifier::default();
    let chain = three_links(&["/dms"], &verifier);
    let cids: Vec<String> = chain.tokens().iter().map(|t| t.cid().to_string()).collect();
    let mut ctx = context(&alice());

    // Mallory is neither upstream nor a root: her revocations are recorded but ignored.
    let mut mallorys = context(&mallory());
    for cid in &cids {
        let rev =
            mallorys.revoke(&mallory(), cid, &verifier).expect("mallory may sign what she likes");
        ctx.import_revocation(rev, &verifier).expect("well-formed revocation");
    }
    // Carol (downstream of bob's link) cannot revoke it; dave cannot revoke carol's.
    let rev = context(&carol()).revoke(&carol(), &cids[1], &verifier).expect("sign");
    ctx.import_revocation(rev, &verifier).expect("import");
    let rev = context(&dave()).revoke(&dave(), &cids[2], &verifier).expect("sign");
    ctx.import_revocation(rev, &verifier).expect("import");
    assert_eq!(ctx.revoked.len(), 5);
    assert!(authorize(&ctx, &verifier, &dave(), "/dms", &chain).is_ok());

    // Once mallory becomes a root of the context, her revocation counts.
    ctx.add_root(mallory().did());
    assert_denied!(
        authorize(&ctx, &verifier, &dave(), "/dms", &chain),
        Some(0),
        Reason::Revoked { ref by, .. } if *by == mallory().did().to_string()
    );
}

#[test]
fn bad_revocations_are_not_imported() {
    let (alice, bob) = (alice(), bob());
    let verifier = Verifier::default();
    let ab = grant(&alice, &bob, &spec(&["/dms"]));
    let mut ctx = context(&alice);
    // Forged: claims alice, signed by mallory.
    let mut claim = Payload::new(Kind::Revocation, alice.did(), alice.did());
    claim.rev = Some(ab.tokens()[0].cid());
    let forged = Chain::new(vec![forge(&claim, &mallory())]);
    assert_eq!(ctx.import_revocation(forged, &verifier), Err(dms_ucan::Error::BadSignature));
    // Not a revocation.
    assert!(matches!(
        ctx.import_revocation(ab.clone(), &verifier),
        Err(dms_ucan::Error::Context(_))
    ));
    // A revocation without a target.
    let blank = Chain::new(vec![
        Token::sign(Payload::new(Kind::Revocation, alice.did(), alice.did()), &alice)
            .expect("sign"),
    ]);
    assert!(ctx.import_revocation(blank, &verifier).is_err());
    // Two tokens.
    let two = Chain::new(vec![ab.tokens()[0].clone(), ab.tokens()[0].clone()]);
    assert!(ctx.import_revocation(two, &verifier).is_err());
    // A target that is not a content id.
    assert!(ctx.revoke(&alice, "not-a-cid", &verifier).is_err());
    assert!(ctx.revoked.is_empty());
    assert!(authorize(&ctx, &verifier, &bob, "/dms", &ab).is_ok());
}

// ---------------------------------------------------------------------------------------
// Who presents, and whose root
// ---------------------------------------------------------------------------------------

#[test]
fn chain_presented_by_someone_else_is_an_audience_mismatch() {
    let verifier = Verifier::default();
    let chain = three_links(&["/dms"], &verifier);
    let ctx = context(&alice());
    assert_denied!(
        authorize(&ctx, &verifier, &mallory(), "/dms", &chain),
        None,
        Reason::AudienceMismatch { ref expected, ref found }
            if *expected == mallory().did().to_string() && *found == dave().did().to_string()
    );
    // The same through an invocation signed by mallory.
    let inv = invocation(&mallory(), &alice().did(), "/dms", &chain, None);
    assert_denied!(
        ctx.authorize_invocation(&verifier, &inv, &chain, NOW),
        None,
        Reason::AudienceMismatch { .. }
    );
}

#[test]
fn self_issued_roots_are_untrusted() {
    let verifier = Verifier::default();
    let ctx = context(&alice());
    let m_m = grant(&mallory(), &mallory(), &spec(&["/"]));
    assert_denied!(
        authorize(&ctx, &verifier, &mallory(), "/dms/node", &m_m),
        Some(0),
        Reason::UntrustedRoot { ref issuer } if *issuer == mallory().did().to_string()
    );
    // Mallory granting carol is no better.
    let m_c = grant(&mallory(), &carol(), &spec(&["/dms"]));
    assert_denied!(
        authorize(&ctx, &verifier, &carol(), "/dms", &m_c),
        Some(0),
        Reason::UntrustedRoot { .. }
    );
    // Nor is bob granting himself when alice only admits bob as an audience.
    let b_b = grant(&bob(), &bob(), &spec(&["/dms"]));
    assert_denied!(
        authorize(&ctx, &verifier, &bob(), "/dms", &b_b),
        Some(0),
        Reason::UntrustedRoot { .. }
    );
}

#[test]
fn hostile_invocations_are_refused() {
    let (alice, bob) = (alice(), bob());
    let verifier = Verifier::default();
    let ctx = context(&alice);
    let chain = grant(&alice, &bob, &spec(&["/dms"]));
    let other = grant(&alice, &bob, &spec(&["/dms"]));

    // Proof points at another chain.
    let inv = invocation(&bob, &alice.did(), "/dms/x", &other, None);
    assert_denied!(
        ctx.authorize_invocation(&verifier, &inv, &chain, NOW),
        None,
        Reason::BrokenProof
    );
    // A delegation passed as an invocation.
    assert_denied!(
        ctx.authorize_invocation(&verifier, &chain.tokens()[0], &chain, NOW),
        None,
        Reason::WrongKind
    );
    // Two commands at once.
    let mut two = Payload::new(Kind::Invocation, bob.did(), alice.did());
    two.cmd = cmds(&["/dms/a", "/dms/b"]);
    two.prf = chain.leaf().map(Token::cid);
    let two = Token::sign(two, &bob).expect("sign");
    assert_denied!(ctx.authorize_invocation(&verifier, &two, &chain, NOW), None, Reason::WrongKind);
    // Signed by mallory in bob's name.
    let mut claim = Payload::new(Kind::Invocation, bob.did(), alice.did());
    claim.cmd = cmds(&["/dms/x"]);
    claim.prf = chain.leaf().map(Token::cid);
    assert_denied!(
        ctx.authorize_invocation(&verifier, &forge(&claim, &mallory()), &chain, NOW),
        None,
        Reason::BadSignature
    );
    // Out of its own time window.
    claim.exp = Some(NOW - 1);
    let stale = Token::sign(claim.clone(), &bob).expect("sign");
    assert_denied!(
        ctx.authorize_invocation(&verifier, &stale, &chain, NOW),
        None,
        Reason::Expired { .. }
    );
    claim.exp = None;
    claim.nbf = Some(NOW + 1);
    let early = Token::sign(claim, &bob).expect("sign");
    assert_denied!(
        ctx.authorize_invocation(&verifier, &early, &chain, NOW),
        None,
        Reason::NotYetValid { .. }
    );
    // Addressed to someone else's node with a chain bound to alice: the subject is the
    // invocation's audience.
    let bound =
        grant(&alice, &bob, &dms_ucan::Spec { subject: Some(alice.did()), ..spec(&["/dms"]) });
    let elsewhere_bound = invocation(&bob, &mallory().did(), "/dms/x", &bound, None);
    assert_denied!(
        ctx.authorize_invocation(&verifier, &elsewhere_bound, &bound, NOW),
        None,
        Reason::WrongSubject { .. }
    );
}

#[test]
fn an_invocation_addressed_to_another_node_is_refused() {
    let (alice, bob, carol) = (alice(), bob(), carol());
    let verifier = Verifier::default();
    // An unbound (powerline) grant: valid for any subject.
    let chain = grant(&alice, &bob, &spec(&["/dms"]));
    let for_carol = invocation(&bob, &carol.did(), "/dms/node/peers/list", &chain, None);
    // Replayed at alice's node, it must not run there.
    assert_denied!(
        context(&alice).authorize_invocation(&verifier, &for_carol, &chain, NOW),
        None,
        Reason::WrongSubject { .. }
    );
    let for_alice = invocation(&bob, &alice.did(), "/dms/node/peers/list", &chain, None);
    assert!(context(&alice).authorize_invocation(&verifier, &for_alice, &chain, NOW).is_ok());
}
