//! Whole-network behavior of real dms nodes in one process: discovery, authorized
//! invocation, broadcast, revocation over gossip, partition and heal, and adversarial
//! peers — over libp2p (memory transport), with the node behaviors `dms run` serves.

use std::time::Duration;

use dms_actor::{ActorError, Handle, client_request};
use dms_testkit::{Net, Options, PATIENCE, eventually};
use dms_ucan::{Chain, Command};
use serde_json::{Value, json};

fn ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["peer_id"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_discover_each_other_through_one_bootstrap_peer() {
    let net = Net::start(5, Options::default()).await;
    net.trust_all();
    for (i, node) in net.nodes.iter().enumerate() {
        let other = &net.nodes[(i + 1) % 5];
        let reply = node
            .invoke(other.handle(), "/dms/node/peers/list", Value::Null)
            .await
            .expect("a trusted node may list peers");
        let listed = ids(&serde_json::from_slice(&reply).expect("JSON"));
        assert_eq!(listed.len(), 4, "{listed:?}");
        let dht = node.invoke(node.handle(), "/dms/node/peers/dht", Value::Null).await;
        let dht: Value = serde_json::from_slice(&dht.expect("dht")).expect("JSON");
        assert!(!ids(&dht).is_empty(), "the routing table knows peers");
    }
    net.shutdown().await;
}

/// Leaves (discovery off) keep to the node they dialed. libp2p's Kademlia bootstraps on
/// its own whenever a peer enters a routing table of fewer than 20, even with periodic
/// bootstrap off: leaves of a 300-node star that learned the hub's peers that way dialed
/// each other 58,000 times in 100 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_of_a_star_never_dial_each_other() {
    let options = Options { topology: dms_testkit::Topology::Star, ..Options::default() };
    let net = Net::start(25, options).await;
    // Past libp2p's 500 ms bootstrap throttle, several times over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hub = net.node(0).peer_id();
    for (i, leaf) in net.nodes.iter().enumerate().skip(1) {
        assert_eq!(leaf.connected().await, vec![hub], "leaf {i} is connected to the hub only");
    }
    assert_eq!(net.node(0).connected().await.len(), 24, "the hub keeps every leaf");
    net.shutdown().await;
}

/// A leaf whose connection to the hub closed dials it again by peer id when it next
/// sends, with no DHT table to find the address in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_redials_the_hub_by_peer_id() {
    let options = Options { topology: dms_testkit::Topology::Star, ..Options::default() };
    let net = Net::start(3, options).await;
    let (hub, leaf) = (net.node(0), net.node(2));
    leaf.client().block(hub.peer_id()).await.expect("block");
    eventually("the leaf's connection to the hub closes", || async {
        !leaf.connected().await.contains(&hub.peer_id())
    })
    .await;
    leaf.client().unblock(hub.peer_id()).await.expect("unblock");
    let hello = leaf.invoke(hub.handle(), "/public/hello", Value::Null).await;
    assert!(hello.is_ok(), "the leaf reached the hub again: {hello:?}");
    assert!(leaf.connected().await.contains(&hub.peer_id()));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_invocations_are_refused_typed_and_public_ones_answered() {
    let net = Net::start(2, Options::default()).await;
    let (a, b) = (net.node(0), net.node(1));
    let refused = a.invoke(b.handle(), "/dms/node/peers/list", Value::Null).await;
    match refused {
        Err(ActorError::Unauthorized { code, .. }) => assert_eq!(code, "untrusted_root"),
        other => panic!("expected unauthorized, got {other:?}"),
    }
    let hello = a.invoke(b.handle(), "/public/hello", Value::Null).await.expect("public");
    let hello: Value = serde_json::from_slice(&hello).expect("JSON");
    assert_eq!(hello["did"], json!(b.did().to_string()));
    let ping = a
        .invoke(a.handle(), "/dms/node/peers/ping", json!({ "peer": b.peer_id().to_string() }))
        .await
        .expect("ping through the node's own behavior");
    let ping: Value = serde_json::from_slice(&ping).expect("JSON");
    assert!(ping["rtt_ms"].as_f64().is_some_and(|r| r >= 0.0), "{ping}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_cuts_messages_across_and_heal_restores_them() {
    let net = Net::start(4, Options::default()).await;
    net.trust_all();
    let (a, b, c) = (net.node(0), net.node(1), net.node(2));
    net.partition(&[0, 1]).await;
    a.invoke(b.handle(), "/public/hello", Value::Null).await.expect("same side");
    let across = a.invoke(c.handle(), "/public/hello", Value::Null).await;
    assert!(
        matches!(across, Err(ActorError::Transport { .. })),
        "across the cut a send fails fast and typed: {across:?}"
    );
    net.heal().await;
    a.invoke(c.handle(), "/public/hello", Value::Null).await.expect("healed");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_spread_over_gossip_refuses_the_token_everywhere() {
    let net = Net::start(3, Options::default()).await;
    let (issuer, holder, third) = (net.node(0), net.node(1), net.node(2));
    // The third node trusts the issuer; the holder gets a grant from it.
    third.trust(&issuer.did());
    let spec = dms_ucan::Spec {
        commands: vec![dms_ucan::Command::parse("/dms/node/peers").expect("path")],
        ..Default::default()
    };
    let grant = issuer
        .actor()
        .context()
        .grant(issuer.actor().signing_key(), holder.did(), &spec)
        .expect("grant");
    let cid = grant.leaf().expect("leaf").cid().to_string();
    let verifier = dms_ucan::Verifier::default();
    holder
        .actor()
        .update_context(|c| c.add_provide(grant.clone(), &verifier, dms_ucan::now()))
        .expect("provide anchor");
    holder.invoke(third.handle(), "/dms/node/peers/list", Value::Null).await.expect("granted");

    // The issuer revokes through its own behavior, which spreads the revocation.
    issuer.trust(&issuer.did());
    let revoked = issuer
        .invoke(issuer.handle(), "/dms/cap/revoke", json!({ "cid": cid }))
        .await
        .expect("revoke");
    let revoked: Value = serde_json::from_slice(&revoked).expect("JSON");
    assert_eq!(revoked["broadcast"], json!(true), "{revoked}");
    eventually("the third node refuses the revoked token", || async {
        matches!(
            holder.invoke(third.handle(), "/dms/node/peers/list", Value::Null).await,
            Err(ActorError::Unauthorized { ref code, .. }) if code == "revoked"
        )
    })
    .await;
    let stored = third.contexts.load(dms_node::NODE_CONTEXT).expect("store").expect("context");
    assert!(stored.revoked.iter().any(|r| r.cid == cid), "the revocation is persisted");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_broadcast_collects_an_answer_from_every_node() {
    let net = Net::start(4, Options::default()).await;
    net.trust_all();
    let sender = net.node(0);
    // What the CLI does: sign as a client of node 0 and let the node relay it.
    let from = Handle {
        did: sender.did(),
        peer: sender.peer_id().to_string(),
        inbox: "test-client".into(),
    };
    let path = |p: &str| Command::parse(p).expect("path");
    // Gossip meshes form within a heartbeat or two; retry until every node answers.
    eventually("every node answers /broadcast/hello", || async {
        let envelope = client_request(
            from.clone(),
            None,
            path("/broadcast/hello"),
            Some(path("/dms/hello")),
            Vec::new(),
            &Chain::empty(),
            Duration::from_secs(2),
        )
        .expect("envelope")
        .sign(&sender.key)
        .expect("signed")
        .encode();
        let replies = sender
            .runtime
            .router
            .relay_broadcast(&envelope, Duration::from_secs(2), 16)
            .await
            .expect("relayed");
        let answered: std::collections::HashSet<String> =
            replies.iter().filter(|r| r.reply.is_ok()).map(|r| r.from.peer.clone()).collect();
        net.nodes.iter().all(|n| answered.contains(&n.peer_id().to_string()))
    })
    .await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_envelopes_are_refused_over_the_network_and_the_node_keeps_serving() {
    let net = Net::start(3, Options::default()).await;
    net.trust_all();
    let (a, b, c) = (net.node(0), net.node(1), net.node(2));
    let to: Handle = b.handle().clone();
    // Spoofed sender: claims to be on another peer than the connection's.
    let c_peer = c.peer_id().to_string();
    let spoofed = a
        .actor()
        .invoke_with(&to, "/public/hello", Vec::new(), PATIENCE, |e| e.from.peer = c_peer)
        .await;
    // The refusal goes to the peer the message really came from, so the sender still
    // learns it (not a timeout).
    assert!(matches!(spoofed, Err(ActorError::Spoofed { .. })), "{spoofed:?}");
    // Replayed nonce.
    a.actor()
        .invoke_with(&to, "/public/hello", Vec::new(), PATIENCE, |e| e.nonce = 42)
        .await
        .expect("first use of the nonce");
    let replayed =
        a.actor().invoke_with(&to, "/public/hello", Vec::new(), PATIENCE, |e| e.nonce = 42).await;
    assert!(matches!(replayed, Err(ActorError::Replayed { nonce: 42 })), "{replayed:?}");
    // Expired envelope.
    let expired = a
        .actor()
        .invoke_with(&to, "/public/hello", Vec::new(), PATIENCE, |e| e.expiry = 1_000)
        .await;
    assert!(matches!(expired, Err(ActorError::Expired { .. })), "{expired:?}");
    // Oversized frame: refused by the transport before it is read.
    let oversized = a.client().send(b.peer_id(), vec![0; 2 * 1024 * 1024]).await;
    assert!(oversized.is_err(), "an oversized frame is refused");
    // The node keeps serving.
    a.invoke(&to, "/dms/node/peers/list", Value::Null).await.expect("still serving");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_rate_limited_while_another_is_answered() {
    let mut options = Options::default();
    options.runtime.rates.public = dms_actor::limiter::Rate { per_second: 5, burst: 5 };
    let net = Net::start(3, options).await;
    let (flooder, target, polite) = (net.node(0), net.node(1), net.node(2));
    let mut limited = 0;
    for _ in 0..30 {
        if let Err(ActorError::RateLimited { class }) =
            flooder.invoke(target.handle(), "/public/hello", Value::Null).await
        {
            assert_eq!(class, "public");
            limited += 1;
        }
    }
    assert!(limited >= 20, "only {limited} of 30 flood messages were limited");
    polite.invoke(target.handle(), "/public/hello", Value::Null).await.expect("polite peer served");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_not_from_the_peers_own_key_have_their_signature_checked() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let net = Net::start(2, Options::default()).await;
    let (a, b) = (net.node(0), net.node(1));
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    b.actor()
        .behavior("/public/count", move |_| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(Vec::new())
            }
        })
        .expect("behavior");
    // A user key relayed by node A: the connection proves node A, not the user.
    let user = dms_crypto::KeyPair::generate(dms_crypto::KeyType::Ed25519);
    let from = Handle { did: user.did(), peer: a.peer_id().to_string(), inbox: "user".into() };
    let envelope = |payload: &[u8]| {
        client_request(
            from.clone(),
            Some(b.handle().clone()),
            Command::parse("/public/count").expect("path"),
            None,
            payload.to_vec(),
            &Chain::empty(),
            Duration::from_secs(10),
        )
        .expect("envelope")
        .sign(&user)
        .expect("signed")
    };
    let mut forged = envelope(b"original");
    forged.payload = b"tampered".to_vec();
    a.client().send(b.peer_id(), forged.encode()).await.expect("delivered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a tampered envelope must not run");
    a.client().send(b.peer_id(), envelope(b"honest").encode()).await.expect("delivered");
    eventually("the honest envelope runs", || async { runs.load(Ordering::SeqCst) == 1 }).await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_answers_ride_the_request_exchange_and_slow_ones_come_as_messages() {
    let net = Net::start(2, Options::default()).await;
    let (a, b) = (net.node(0), net.node(1));
    let slow = dms_network::event_loop::RESPONSE_WAIT + Duration::from_millis(500);
    b.actor()
        .behavior("/public/slow", move |_| async move {
            tokio::time::sleep(slow).await;
            Ok(b"late".to_vec())
        })
        .expect("behavior");
    // A large quick answer (the peers table is hundreds of bytes) comes back whole.
    let quick = a.invoke(b.handle(), "/public/status", Value::Null).await.expect("quick");
    assert!(serde_json::from_slice::<Value>(&quick).is_ok());
    // An answer slower than the exchange waits for arrives as its own message.
    let late = a.invoke(b.handle(), "/public/slow", Value::Null).await.expect("slow but answered");
    assert_eq!(late, b"late");
    net.shutdown().await;
}
