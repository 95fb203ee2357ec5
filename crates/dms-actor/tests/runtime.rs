//! The runtime end to end over an in-memory transport: authorization, typed refusals,
//! adversarial senders, rate limits, broadcast and stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dms_actor::limiter::{Rate, Rates};
use dms_actor::{Actor, ActorError, BoxFuture, Config, Handle, Router, Transport, json_reply};
use dms_crypto::{KeyPair, KeyType};
use dms_ucan::{CapContext, Command, Spec, Verifier};

/// Routers by peer; each node's transport delivers through it.
#[derive(Default)]
struct MemoryNet {
    routers: Mutex<HashMap<String, Router>>,
}

struct MemoryTransport {
    net: Arc<MemoryNet>,
    me: String,
}

impl Transport for MemoryTransport {
    fn send(&self, peer: &str, bytes: Vec<u8>) -> BoxFuture<Result<Option<Vec<u8>>, ActorError>> {
        let target = self.net.routers.lock().expect("net lock").get(peer).cloned();
        let me = self.me.clone();
        let peer = peer.to_string();
        Box::pin(async move {
            let router =
                target.ok_or(ActorError::Transport { reason: format!("no route to {peer}") })?;
            tokio::spawn(async move { router.receive(&bytes, &me).await });
            Ok(None)
        })
    }

    fn publish(&self, topic: &str, bytes: Vec<u8>) -> BoxFuture<Result<(), ActorError>> {
        let routers: Vec<Router> = self
            .net
            .routers
            .lock()
            .expect("net lock")
            .iter()
            .filter(|(peer, _)| **peer != self.me)
            .map(|(_, r)| r.clone())
            .collect();
        let (me, topic) = (self.me.clone(), topic.to_string());
        Box::pin(async move {
            for router in routers {
                let (bytes, me, topic) = (bytes.clone(), me.clone(), topic.clone());
                tokio::spawn(async move { router.receive_broadcast(&bytes, &me, &topic).await });
            }
            Ok(())
        })
    }
}

struct Node {
    actor: Actor,
    router: Router,
    hits: Arc<AtomicUsize>,
}

const T: Duration = Duration::from_secs(5);

fn node(net: &Arc<MemoryNet>, peer: &str, config: Config) -> Node {
    let transport = Arc::new(MemoryTransport { net: net.clone(), me: peer.into() });
    let router = Router::new(peer, transport, config);
    net.routers.lock().expect("net lock").insert(peer.into(), router.clone());
    let key = KeyPair::generate(KeyType::Ed25519);
    let context = CapContext::new("dms", key.did());
    let actor = Actor::spawn(&router, "root", key, context.into(), Arc::new(Verifier::default()));
    let hits = Arc::new(AtomicUsize::new(0));
    for behavior in ["/dms/node/peers/list", "/public/hello", "/broadcast/hello"] {
        let (hits, name) = (hits.clone(), behavior.to_string());
        actor
            .behavior(behavior, move |message| {
                let (hits, name) = (hits.clone(), name.clone());
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    json_reply(
                        &serde_json::json!({ "behavior": name, "from": message.envelope.from.did }),
                    )
                }
            })
            .expect("valid path");
    }
    Node { actor, router, hits }
}

fn pair() -> (Arc<MemoryNet>, Node, Node) {
    let net = Arc::new(MemoryNet::default());
    let a = node(&net, "peer-a", Config::default());
    let b = node(&net, "peer-b", Config::default());
    (net, a, b)
}

fn trust(node: &Node, other: &Node) {
    let did = other.actor.handle().did.clone();
    node.actor.update_context(|c| c.add_root(did));
}

fn to(node: &Node) -> Handle {
    node.actor.handle().clone()
}

#[tokio::test]
async fn a_trusted_peer_invokes_and_gets_the_reply() {
    let (_net, a, b) = pair();
    trust(&b, &a);
    let reply =
        a.actor.invoke(&to(&b), "/dms/node/peers/list", Vec::new(), T).await.expect("allowed");
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("json");
    assert_eq!(reply["behavior"], "/dms/node/peers/list");
    assert_eq!(reply["from"], a.actor.handle().did.to_string());
}

#[tokio::test]
async fn without_a_capability_the_answer_is_unauthorized_not_a_timeout() {
    let (_net, a, b) = pair();
    let started = std::time::Instant::now();
    let error =
        a.actor.invoke(&to(&b), "/dms/node/peers/list", Vec::new(), T).await.expect_err("refused");
    assert!(
        matches!(&error, ActorError::Unauthorized { code, .. } if code == "untrusted_root"),
        "{error}"
    );
    assert!(started.elapsed() < T, "answered, not timed out");
    assert_eq!(b.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_delegated_capability_is_presented_and_accepted() {
    let net = Arc::new(MemoryNet::default());
    let (a, b, c) = (
        node(&net, "peer-a", Config::default()),
        node(&net, "peer-b", Config::default()),
        node(&net, "peer-c", Config::default()),
    );
    // b trusts a; a grants c the peers behaviors on b; c holds it as a provide anchor.
    trust(&b, &a);
    let spec = Spec {
        commands: vec![Command::parse("/dms/node/peers").expect("path")],
        expires: Some(dms_ucan::now() + 600),
        ..Spec::default()
    };
    let grant = a.actor.context().grant(a.actor.signing_key(), c.actor.handle().did.clone(), &spec);
    let grant = grant.expect("grant");
    let verifier = Verifier::default();
    c.actor
        .update_context(|ctx| ctx.add_provide(grant, &verifier, dms_ucan::now()))
        .expect("anchor");
    c.actor
        .invoke(&to(&b), "/dms/node/peers/list", Vec::new(), T)
        .await
        .expect("delegated call allowed");
    // c holds no chain for this behavior, so it presents none and is not trusted.
    let error =
        c.actor.invoke(&to(&b), "/broadcast/hello", Vec::new(), T).await.expect_err("not granted");
    assert!(
        matches!(&error, ActorError::Unauthorized { code, .. } if code == "untrusted_root"),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_behaviors_and_missing_actors_are_typed() {
    let (_net, a, b) = pair();
    trust(&b, &a);
    let error = a.actor.invoke(&to(&b), "/dms/nope", Vec::new(), T).await.expect_err("unknown");
    assert!(matches!(error, ActorError::UnknownBehavior { .. }), "{error}");
    let mut ghost = to(&b);
    ghost.inbox = "ghost".into();
    let error =
        a.actor.invoke(&ghost, "/dms/node/peers/list", Vec::new(), T).await.expect_err("missing");
    assert!(matches!(error, ActorError::NoSuchActor { .. }), "{error}");
}

#[tokio::test]
async fn spoofed_replayed_and_expired_envelopes_are_refused_and_the_node_keeps_serving() {
    let (_net, a, b) = pair();
    trust(&b, &a);
    let peer_c = "peer-c";
    let error = a
        .actor
        .invoke_with(&to(&b), "/dms/node/peers/list", Vec::new(), T, |e| {
            e.from.peer = peer_c.into()
        })
        .await
        .expect_err("spoofed");
    // The refusal goes to the peer the bytes came from (peer-a), which is waiting.
    assert!(
        matches!(&error, ActorError::Spoofed { claimed, actual } if claimed == peer_c && actual == "peer-a"),
        "{error}"
    );

    a.actor
        .invoke_with(&to(&b), "/dms/node/peers/list", Vec::new(), T, |e| e.nonce = 42)
        .await
        .expect("first");
    let error = a
        .actor
        .invoke_with(&to(&b), "/dms/node/peers/list", Vec::new(), T, |e| e.nonce = 42)
        .await
        .expect_err("replayed");
    assert!(matches!(error, ActorError::Replayed { nonce: 42 }), "{error}");

    let error = a
        .actor
        .invoke_with(&to(&b), "/dms/node/peers/list", Vec::new(), T, |e| e.expiry = 1)
        .await
        .expect_err("expired");
    assert!(matches!(error, ActorError::Expired { .. }), "{error}");

    let error = a
        .actor
        .invoke_with(&to(&b), "/dms/node/peers/list", Vec::new(), T, |e| e.expiry = u64::MAX)
        .await
        .expect_err("too far ahead");
    assert!(matches!(error, ActorError::Malformed { .. }), "{error}");

    assert_eq!(b.hits.load(Ordering::SeqCst), 1, "only the first genuine call ran");
    a.actor.invoke(&to(&b), "/dms/node/peers/list", Vec::new(), T).await.expect("still serving");
}

#[tokio::test]
async fn a_forged_signature_is_refused() {
    let (_net, a, b) = pair();
    trust(&b, &a);
    // A genuine envelope from a, and a copy whose payload was changed after signing,
    // both injected straight into b's router as if they came from a's peer.
    let envelope = dms_actor::Envelope {
        to: Some(to(&b)),
        from: to(&a),
        behavior: Command::parse("/dms/node/peers/list").expect("path"),
        nonce: 7,
        expiry: dms_actor::envelope::now_ms() + 10_000,
        reply_to: None,
        topic: None,
        trace: None,
        payload: b"original".to_vec(),
        capabilities: Vec::new(),
        signature: Vec::new(),
    }
    .sign(a.actor.signing_key())
    .expect("signed");
    let mut forged = envelope.clone();
    forged.payload = b"tampered".to_vec();
    b.router.receive(&forged.encode(), "peer-a").await;
    b.router.receive(&envelope.encode(), "peer-a").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.hits.load(Ordering::SeqCst), 1, "the tampered copy did not run");
}

#[tokio::test]
async fn oversized_frames_are_dropped_before_parsing() {
    let net = Arc::new(MemoryNet::default());
    let a = node(&net, "peer-a", Config::default());
    let small = Config { max_envelope_bytes: 4096, ..Config::default() };
    let b = node(&net, "peer-b", small);
    trust(&b, &a);
    let error = a
        .actor
        .invoke(&to(&b), "/dms/node/peers/list", vec![b'x'; 10_000], Duration::from_millis(500))
        .await
        .expect_err("dropped");
    assert!(matches!(error, ActorError::Timeout { .. }), "{error}");
    a.actor.invoke(&to(&b), "/dms/node/peers/list", Vec::new(), T).await.expect("still serving");
}

#[tokio::test]
async fn an_answer_over_the_message_limit_is_refused_at_once_not_dropped() {
    let net = Arc::new(MemoryNet::default());
    let a = node(&net, "peer-a", Config::default());
    let small = Config { max_envelope_bytes: 4096, ..Config::default() };
    let b = node(&net, "peer-b", small);
    trust(&b, &a);
    b.actor.behavior("/public/big", |_| async { Ok(vec![b'x'; 10_000]) }).expect("valid path");
    let started = std::time::Instant::now();
    let error = a
        .actor
        .invoke(&to(&b), "/public/big", Vec::new(), Duration::from_secs(10))
        .await
        .expect_err("too large");
    assert!(matches!(error, ActorError::TooLarge { size, max: 4096 } if size > 10_000), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5), "said at once, not at the timeout");
}

#[tokio::test]
async fn a_flooding_peer_is_rate_limited_while_another_is_served() {
    let net = Arc::new(MemoryNet::default());
    let rates = Rates { public: Rate { per_second: 1, burst: 5 }, ..Rates::default() };
    let b = node(&net, "peer-b", Config { rates, ..Config::default() });
    let flood = node(&net, "peer-flood", Config::default());
    let polite = node(&net, "peer-polite", Config::default());
    let mut limited = 0;
    for _ in 0..20 {
        match flood.actor.invoke(&to(&b), "/public/hello", Vec::new(), T).await {
            Err(ActorError::RateLimited { class }) => {
                assert_eq!(class, "public");
                limited += 1;
            }
            Ok(_) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(limited >= 14, "only {limited} of 20 limited");
    polite
        .actor
        .invoke(&to(&b), "/public/hello", Vec::new(), T)
        .await
        .expect("the other peer is served");
}

#[tokio::test]
async fn broadcasts_reach_every_subscribed_node_with_a_topic_capability() {
    let net = Arc::new(MemoryNet::default());
    let nodes: Vec<Node> =
        (0..4).map(|i| node(&net, &format!("peer-{i}"), Config::default())).collect();
    let sender = &nodes[0];
    for receiver in &nodes[1..] {
        trust(receiver, sender);
        receiver.actor.subscribe("/dms/hello");
    }
    sender
        .actor
        .broadcast("/dms/hello", "/broadcast/hello", Vec::new(), T)
        .await
        .expect("published");
    for _ in 0..50 {
        if nodes[1..].iter().all(|n| n.hits.load(Ordering::SeqCst) == 1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not every node received the broadcast");
}

#[tokio::test]
async fn a_stopped_actor_refuses_and_ends_waiting_invocations() {
    let (_net, a, b) = pair();
    trust(&b, &a);
    let child_key = KeyPair::generate(KeyType::Ed25519);
    let child_context = CapContext::new("child", child_key.did());
    let child = Actor::spawn(
        &b.router,
        "child",
        child_key,
        child_context.into(),
        Arc::new(Verifier::default()),
    );
    child.stop();
    // The node's other actor answers for the stopped one.
    let error = a
        .actor
        .invoke(child.handle(), "/dms/node/peers/list", Vec::new(), T)
        .await
        .expect_err("stopped");
    assert!(matches!(error, ActorError::NoSuchActor { .. }), "{error}");
    a.actor.stop();
    let error =
        a.actor.invoke(&to(&b), "/dms/node/peers/list", Vec::new(), T).await.expect_err("closed");
    assert_eq!(error, ActorError::Closed);
}
