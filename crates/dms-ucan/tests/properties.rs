//! Property tests: encoding round trips of tokens and chains, and "no sequence of
//! delegations ever yields a capability its root did not hold".

mod common;

use cid::Cid;
use common::*;
use dms_crypto::KeyPair;
use dms_ucan::token::DEFAULT_MAX_TOKEN_BYTES;
use dms_ucan::{
    Chain, Command, Kind, Limits, Payload, Predicate, Reason, Request, Spec, Token, Verifier,
};
use proptest::prelude::*;
use serde_json::Value;

/// The small tree of capability paths the escalation property works in.
const TREE: [&str; 8] = [
    "/",
    "/dms",
    "/dms/node",
    "/dms/node/peers",
    "/dms/node/peers/list",
    "/dms/deployment",
    "/public",
    "/public/hello",
];

/// Behaviors and topics probed after each delegation: the tree, paths under it, and
/// look-alikes that share a prefix but not a segment.
const PROBES: [&str; 14] = [
    "/",
    "/dms",
    "/dms/node",
    "/dms/node/peers",
    "/dms/node/peers/list",
    "/dms/node/peers/list/all",
    "/dms/node/info",
    "/dms/deployment",
    "/dms/deployment/bid",
    "/dmsx",
    "/public",
    "/public/hello",
    "/public/hello/world",
    "/other",
];

/// Everyone who may hold a delegation (index 0 receives the root grant).
fn holders() -> Vec<KeyPair> {
    vec![bob(), carol(), dave(), sam(), mallory()]
}

/// Whether any of `held` implies `path`, decided independently of [`Command::implies`]:
/// by segments, so that `/dms` implies `/dms/node` but not `/dmsx`.
fn implied(path: &Command, held: &[Command]) -> bool {
    let segments = |c: &Command| {
        c.as_str().split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>()
    };
    let wanted = segments(path);
    held.iter().any(|h| wanted.starts_with(&segments(h)))
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn any_path() -> impl Strategy<Value = Command> {
    prop_oneof![
        prop::sample::select(&TREE[..]).prop_map(cmd),
        "(/[a-zA-Z0-9._~:-]{1,8}){1,4}".prop_map(|p| cmd(&p)),
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![-1.0e9f64..1.0e9, (-1000i32..1000).prop_map(f64::from)]
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        finite().prop_map(Value::from),
        "[a-z/*. ]{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn selector() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-z]{1,4}".prop_map(|f| format!(".{f}")),
            (0..4usize).prop_map(|i| format!("[{i}]"))
        ],
        0..3,
    )
    .prop_map(|parts| {
        let joined = parts.concat();
        if joined.starts_with('.') { joined } else { format!(".{joined}") }
    })
}

fn predicate() -> impl Strategy<Value = Predicate> {
    let leaf = prop_oneof![
        (selector(), json_scalar()).prop_map(|(s, v)| Predicate::Eq(s, v)),
        (selector(), json_scalar()).prop_map(|(s, v)| Predicate::Ne(s, v)),
        (selector(), finite()).prop_map(|(s, n)| Predicate::Lt(s, n)),
        (selector(), finite()).prop_map(|(s, n)| Predicate::Le(s, n)),
        (selector(), finite()).prop_map(|(s, n)| Predicate::Gt(s, n)),
        (selector(), finite()).prop_map(|(s, n)| Predicate::Ge(s, n)),
        (selector(), "[a-z*/.]{0,10}").prop_map(|(s, g)| Predicate::Like(s, g)),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|p| Predicate::Not(Box::new(p))),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Predicate::And),
            prop::collection::vec(inner, 0..3).prop_map(Predicate::Or),
        ]
    })
}

fn any_cid() -> impl Strategy<Value = Cid> {
    any::<[u8; 32]>().prop_map(|digest| {
        let hash = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("32 bytes fit");
        Cid::new_v1(0x71, hash)
    })
}

/// A random payload, and the index (into [`signers`]) of the key of its issuer.
fn any_payload() -> impl Strategy<Value = (usize, Payload)> {
    let who = 0..signers().len();
    (
        (
            prop::sample::select(vec![Kind::Delegation, Kind::Invocation, Kind::Revocation]),
            who.clone(),
            who.clone(),
        ),
        (
            prop::option::of(who),
            prop::collection::vec(any_path(), 0..4),
            prop::collection::vec(any_path(), 0..3),
        ),
        (prop::collection::vec(predicate(), 0..3), prop::option::of(json_value())),
        (
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u32>()),
        ),
        (
            prop::collection::vec(any::<u8>(), 0..24),
            prop::option::of(any_cid()),
            prop::option::of(any_cid()),
        ),
    )
        .prop_map(
            |(
                (typ, iss, aud),
                (sub, cmd, topics),
                (pol, args),
                (nbf, exp, depth),
                (nonce, prf, rev),
            )| {
                let keys = signers();
                let mut p = Payload::new(typ, keys[iss].did(), keys[aud].did());
                p.sub = sub.map(|s| keys[s].did());
                p.cmd = cmd;
                p.topics = topics;
                p.pol = pol;
                p.args = args;
                p.nbf = nbf;
                p.exp = exp;
                p.depth = depth;
                p.nonce = nonce;
                p.prf = prf;
                p.rev = rev;
                (iss, p)
            },
        )
}

fn signers() -> Vec<KeyPair> {
    vec![alice(), bob(), sam()]
}

fn sign((iss, payload): (usize, Payload)) -> Token {
    Token::sign(payload, &signers()[iss]).expect("the issuer's own key")
}

/// One delegation attempt by the current holder.
#[derive(Clone, Debug)]
struct Attempt {
    /// Index into [`holders`] of the audience.
    audience: usize,
    /// Paths asked for (indices into [`TREE`]); may escalate.
    commands: Vec<usize>,
    /// Topics asked for (indices into [`TREE`]); may escalate.
    topics: Vec<usize>,
    /// Through [`dms_ucan::CapContext::delegate`] (which checks) or a raw signed token
    /// (which only the verifier checks).
    via_context: bool,
    /// For raw tokens: signed by mallory instead of the holder.
    by_mallory: bool,
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (
        0..holders().len(),
        prop::sample::subsequence((0..TREE.len()).collect::<Vec<_>>(), 0..=3),
        prop::sample::subsequence((0..TREE.len()).collect::<Vec<_>>(), 0..=2),
        any::<bool>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(audience, commands, topics, via_context, by_mallory)| Attempt {
            audience,
            commands,
            topics,
            via_context,
            by_mallory,
        })
}

fn paths(indices: &[usize]) -> Vec<Command> {
    indices.iter().map(|&i| cmd(TREE[i])).collect()
}

/// The escalation property for one root grant and one sequence of attempts.
fn check_delegations(
    root_commands: &[usize],
    root_topics: &[usize],
    attempts: Vec<Attempt>,
) -> Result<(), TestCaseError> {
    let verifier = Verifier::default();
    let (alice, holders, mallory) = (alice(), holders(), mallory());
    let node = context(&alice);
    let root_grant =
        Spec { commands: paths(root_commands), topics: paths(root_topics), ..Spec::default() };
    let root_cmds = root_grant.commands.clone();
    let root_topics = root_grant.topics.clone();
    let mut holder = 0;
    let mut chain = context(&alice).grant(&alice, holders[0].did(), &root_grant).expect("grant");

    for step in attempts {
        let leaf = verifier.verify(&chain, NOW).expect("the current chain verifies");
        let (asked_cmds, asked_topics) = (paths(&step.commands), paths(&step.topics));
        let within = asked_cmds.iter().all(|c| implied(c, &leaf.commands))
            && asked_topics.iter().all(|t| implied(t, &leaf.topics));
        let audience = holders[step.audience].did();
        let key = &holders[holder];
        let candidate = if step.via_context {
            let mut ctx = context(key);
            ctx.add_provide(chain.clone(), &verifier, NOW).expect("the holder's chain is valid");
            let spec = Spec {
                commands: asked_cmds.clone(),
                topics: asked_topics.clone(),
                ..Spec::default()
            };
            let result = ctx.delegate(key, audience, &spec, &verifier, NOW);
            let nothing = asked_cmds.is_empty() && asked_topics.is_empty();
            prop_assert_eq!(
                result.is_ok(),
                within && !nothing,
                "delegate refuses exactly escalations"
            );
            result.ok()
        } else {
            let signer = if step.by_mallory { &mallory } else { key };
            let token = raw(signer, &audience, &[], chain.leaf(), |p| {
                p.cmd = asked_cmds.clone();
                p.topics = asked_topics.clone();
            });
            let extended = chain.extended(token);
            match verifier.verify(&extended, NOW) {
                Ok(_) => {
                    prop_assert!(
                        within && (!step.by_mallory || holder == 4),
                        "an escalation verified"
                    );
                    Some(extended)
                }
                Err(denial) => {
                    prop_assert_eq!(denial.link, Some(chain.len()));
                    let expected = if step.by_mallory && holder != 4 {
                        matches!(denial.reason, Reason::Misaligned { .. })
                    } else {
                        matches!(
                            denial.reason,
                            Reason::CommandEscalation { .. } | Reason::TopicEscalation { .. }
                        )
                    };
                    prop_assert!(expected, "unexpected {}", denial);
                    prop_assert!(!within || (step.by_mallory && holder != 4));
                    None
                }
            }
        };
        let Some(next) = candidate else { continue };
        chain = next;
        holder = step.audience;

        // Whatever verifies grants nothing its root did not hold ...
        let v = verifier.verify(&chain, NOW).expect("accepted chains verify");
        prop_assert_eq!(v.root_issuer(), &alice.did());
        for c in &v.commands {
            prop_assert!(implied(c, &root_cmds), "{} escaped the root grant {:?}", c, root_cmds);
        }
        for t in &v.topics {
            prop_assert!(implied(t, &root_topics), "topic {} escaped {:?}", t, root_topics);
        }
        // ... and authorizes exactly what its leaf grants, which the root held.
        let invoker = holders[holder].did();
        for probe in PROBES {
            let behavior = cmd(probe);
            let allowed = node
                .authorize(&verifier, request(&invoker, &node.did, &behavior, &chain), NOW)
                .is_ok();
            prop_assert_eq!(allowed, implied(&behavior, &v.commands), "behavior {}", probe);
            if allowed {
                prop_assert!(
                    implied(&behavior, &root_cmds),
                    "{} authorized beyond the root",
                    probe
                );
            }
            // Presented by anyone else, nothing is authorized.
            let stranger = if holder == 0 { holders[1].did() } else { holders[0].did() };
            prop_assert!(
                node.authorize(&verifier, request(&stranger, &node.did, &behavior, &chain), NOW)
                    .is_err()
            );
        }
        if let Some(behavior) = v.commands.first() {
            for probe in PROBES {
                let topic = cmd(probe);
                let req = Request {
                    topic: Some(&topic),
                    ..request(&invoker, &node.did, behavior, &chain)
                };
                let allowed = node.authorize(&verifier, req, NOW).is_ok();
                prop_assert_eq!(allowed, implied(&topic, &v.topics), "topic {}", probe);
                if allowed {
                    prop_assert!(implied(&topic, &root_topics));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn tokens_round_trip(input in any_payload()) {
        let payload = input.1.clone();
        let token = sign(input);
        let decoded = Token::decode(token.bytes(), usize::MAX).expect("decodes");
        prop_assert_eq!(decoded.cid(), token.cid());
        prop_assert_eq!(decoded.payload(), &payload);
        prop_assert_eq!(decoded.bytes(), token.bytes());
        prop_assert!(decoded.verify_signature().is_ok());
        // A token within the default size limit decodes with it too.
        if token.bytes().len() <= DEFAULT_MAX_TOKEN_BYTES {
            prop_assert!(Token::decode(token.bytes(), DEFAULT_MAX_TOKEN_BYTES).is_ok());
        }
    }

    #[test]
    fn chains_round_trip(inputs in prop::collection::vec(any_payload(), 0..5)) {
        let chain = Chain::new(inputs.into_iter().map(sign).collect());
        let limits = Limits { max_token_bytes: usize::MAX / 64, max_chain_len: 16 };
        let from_bytes = Chain::from_bytes(&chain.to_bytes(), limits).expect("bytes decode");
        let from_text = Chain::from_text(&chain.to_text(), limits).expect("text decodes");
        let cids = |c: &Chain| c.tokens().iter().map(Token::cid).collect::<Vec<_>>();
        prop_assert_eq!(cids(&from_bytes), cids(&chain));
        prop_assert_eq!(cids(&from_text), cids(&chain));
        for (a, b) in from_text.tokens().iter().zip(chain.tokens()) {
            prop_assert_eq!(a.payload(), b.payload());
        }
        prop_assert_eq!(from_text.to_text(), chain.to_text());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_verify(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let limits = Limits::default();
        let _ = Token::decode(&bytes, DEFAULT_MAX_TOKEN_BYTES);
        if let Ok(chain) = Chain::from_bytes(&bytes, limits) {
            prop_assert!(Verifier::default().verify(&chain, NOW).is_err());
        }
        let text = format!("dmscap1.{}", String::from_utf8_lossy(&bytes));
        let _ = Chain::from_text(&text, limits);
    }

    #[test]
    fn delegation_never_escalates(
        root_commands in prop::sample::subsequence((0..TREE.len()).collect::<Vec<_>>(), 1..=3),
        root_topics in prop::sample::subsequence((0..TREE.len()).collect::<Vec<_>>(), 0..=2),
        attempts in prop::collection::vec(attempt(), 0..7),
    ) {
        check_delegations(&root_commands, &root_topics, attempts)?;
    }
}
