//! Hosts talking over the memory transport and over TCP on loopback; the actor runtime
//! on top of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dms_actor::{Actor, ActorError, Router, json_reply};
use dms_crypto::{KeyPair, KeyType};
use dms_network::{Client, Config, Inbound, Multiaddr, Path, Transports};
use dms_ucan::{CapContext, Verifier};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(20);

struct Host {
    key: KeyPair,
    client: Client,
    inbound: Option<mpsc::Receiver<Inbound>>,
    addr: Multiaddr,
}

async fn host(config: Config) -> Host {
    let key = KeyPair::generate(KeyType::Ed25519);
    let (client, event_loop, inbound) = dms_network::build(&key, config).expect("host builds");
    tokio::spawn(event_loop.run(std::future::pending()));
    let addr = tokio::time::timeout(PATIENCE, async {
        loop {
            let info = client.self_info().await.expect("running");
            if let Some(addr) = info.listen.first() {
                return addr.parse::<Multiaddr>().expect("listen address");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("listening");
    Host { key, client, inbound: Some(inbound), addr }
}

fn memory(port: u64, max: usize) -> Config {
    Config {
        listen: vec![format!("/memory/{port}").parse().expect("memory addr")],
        transports: Transports::Memory,
        max_message_bytes: max,
        ..Config::default()
    }
}

fn loopback() -> Config {
    Config { listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("tcp addr")], ..Config::default() }
}

#[tokio::test]
async fn direct_messages_arrive_and_oversized_frames_are_refused() {
    let a = host(memory(1_000_001, 1024)).await;
    let mut b = host(memory(1_000_002, 1024)).await;
    a.client.dial(b.addr.clone()).await.expect("connected");
    let b_peer = b.client.peer_id();
    a.client.send(b_peer, b"hello".to_vec()).await.expect("delivered");
    let mut inbound = b.inbound.take().expect("inbound queue");
    match tokio::time::timeout(PATIENCE, inbound.recv()).await.expect("in time") {
        Some(Inbound::Message { peer, bytes, .. }) => {
            assert_eq!(peer, a.client.peer_id());
            assert_eq!(bytes, b"hello");
        }
        other => panic!("unexpected {other:?}"),
    }
    let error = a.client.send(b_peer, vec![0; 4096]).await.expect_err("oversized");
    assert!(matches!(error, dms_network::NetworkError::Send { .. }), "{error}");
    a.client.send(b_peer, b"still serving".to_vec()).await.expect("delivered after the refusal");
    let peers = a.client.peers().await.expect("peers");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].path, Path::Direct);
}

#[tokio::test]
async fn gossip_reaches_subscribers() {
    let a = host(memory(1_000_011, 64 * 1024)).await;
    let mut b = host(memory(1_000_012, 64 * 1024)).await;
    a.client.subscribe("/dms/hello").await.expect("subscribed");
    b.client.subscribe("/dms/hello").await.expect("subscribed");
    a.client.dial(b.addr.clone()).await.expect("connected");
    let mut inbound = b.inbound.take().expect("inbound queue");
    // The mesh forms after a heartbeat; publish until it goes through.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let _ = a.client.publish("/dms/hello", b"hi all".to_vec()).await;
        if let Ok(Some(Inbound::Broadcast { source, topic, bytes })) =
            tokio::time::timeout(Duration::from_millis(500), inbound.recv()).await
        {
            assert_eq!(
                (source, topic.as_str(), bytes.as_slice()),
                (a.client.peer_id(), "/dms/hello", &b"hi all"[..])
            );
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "gossip never arrived");
    }
}

/// A node: host + router + root actor with one behavior counting calls.
struct Node {
    host: Host,
    actor: Actor,
    hits: Arc<AtomicUsize>,
}

async fn node(config: Config) -> Node {
    let mut host = host(config).await;
    let router = Router::new(
        host.client.peer_id().to_string(),
        Arc::new(host.client.clone()),
        Default::default(),
    );
    tokio::spawn(dms_network::serve(host.inbound.take().expect("inbound"), router.clone(), 64));
    let context = CapContext::new("dms", host.key.did());
    let actor = Actor::spawn(
        &router,
        "root",
        host.key.clone(),
        context.into(),
        Arc::new(Verifier::default()),
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    actor
        .behavior("/dms/node/peers/list", move |_| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                json_reply(&serde_json::json!(["ok"]))
            }
        })
        .expect("valid path");
    Node { host, actor, hits }
}

#[tokio::test]
async fn actors_invoke_each_other_over_tcp_with_typed_refusals() {
    let a = node(loopback()).await;
    let b = node(loopback()).await;
    a.host.client.dial(b.host.addr.clone()).await.expect("connected");
    let b_handle = b.actor.handle().clone();

    let error = a
        .actor
        .invoke(&b_handle, "/dms/node/peers/list", Vec::new(), PATIENCE)
        .await
        .expect_err("no cap");
    assert!(
        matches!(&error, ActorError::Unauthorized { code, .. } if code == "untrusted_root"),
        "{error}"
    );

    let a_did = a.actor.handle().did.clone();
    b.actor.update_context(|c| c.add_root(a_did));
    a.actor.invoke(&b_handle, "/dms/node/peers/list", Vec::new(), PATIENCE).await.expect("allowed");
    assert_eq!(b.hits.load(Ordering::SeqCst), 1);
}

/// A bare rust-libp2p swarm (memory transport, noise, yamux) with `behaviour`: a peer
/// that is not dms.
fn bare_peer<B: libp2p::swarm::NetworkBehaviour>(
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    use libp2p::core::transport::{MemoryTransport, Transport as _, upgrade::Version};
    use libp2p::{noise, yamux};
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| {
            Ok(MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default())
                .boxed())
        })
        .expect("transport")
        .with_behaviour(|key| behaviour(key))
        .expect("behaviour")
        .build()
}

/// Dials `addr` from `swarm` and waits for the identify info `info` finds in its events.
async fn identify_info<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut libp2p::Swarm<B>,
    addr: Multiaddr,
    info: impl Fn(B::ToSwarm) -> Option<libp2p::identify::Info>,
) -> libp2p::identify::Info {
    use futures::StreamExt as _;
    swarm.dial(addr).expect("dials");
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let libp2p::swarm::SwarmEvent::Behaviour(event) = swarm.select_next_some().await
                && let Some(found) = info(event)
            {
                return found;
            }
        }
    })
    .await
    .expect("identified")
}

/// What an independent libp2p peer (a bare swarm speaking only identify) learns of a dms
/// node: its agent names dms and its version, and its protocols include the ones other
/// implementations look for.
#[tokio::test]
async fn identify_names_the_agent_and_its_protocols_to_any_libp2p_peer() {
    use libp2p::identify;

    let dms = host(memory(1_000_101, 1 << 20)).await;
    let mut other = bare_peer(|key| {
        identify::Behaviour::new(identify::Config::new("/ipfs/id/1.0.0".into(), key.public()))
    });
    let info = identify_info(&mut other, dms.addr.clone(), |event| match event {
        identify::Event::Received { info, .. } => Some(info),
        _ => None,
    })
    .await;
    assert_eq!(info.agent_version, dms_network::AGENT);
    assert!(info.agent_version.starts_with("dms/"), "{}", info.agent_version);
    let protocols: Vec<String> = info.protocols.iter().map(ToString::to_string).collect();
    for wanted in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/dms/kad/1.0.0"] {
        assert!(protocols.iter().any(|p| p == wanted), "{wanted} not in {protocols:?}");
    }
}

/// A libp2p peer that speaks gossipsub (as go-libp2p pubsub does) sees gossipsub among a
/// dms node's protocols: pubsub implementations decide from identify whom to send to.
#[tokio::test]
async fn a_gossipsub_peer_sees_gossipsub_advertised() {
    use libp2p::{gossipsub, identify, swarm::NetworkBehaviour};

    #[derive(NetworkBehaviour)]
    struct Peer {
        identify: identify::Behaviour,
        gossipsub: gossipsub::Behaviour,
    }

    let dms = host(memory(1_000_102, 1 << 20)).await;
    let mut other = bare_peer(|key| Peer {
        identify: identify::Behaviour::new(identify::Config::new(
            "/ipfs/id/1.0.0".into(),
            key.public(),
        )),
        gossipsub: gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub::Config::default(),
        )
        .expect("gossipsub"),
    });
    let info = identify_info(&mut other, dms.addr.clone(), |event| match event {
        PeerEvent::Identify(identify::Event::Received { info, .. }) => Some(info),
        _ => None,
    })
    .await;
    let protocols: Vec<String> = info.protocols.iter().map(ToString::to_string).collect();
    assert!(protocols.iter().any(|p| p.starts_with("/meshsub/")), "no gossipsub in {protocols:?}");
}
