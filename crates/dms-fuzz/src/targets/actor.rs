//! `dms-actor`: signed envelopes as they arrive from the network, and the receive
//! pipeline of a router that gets them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbtest::arbitrary::{Result, Unstructured};
use dms_actor::envelope::{DEFAULT_MAX_ENVELOPE_BYTES, now_ms};
use dms_actor::limiter::{Rate, Rates};
use dms_actor::{Actor, ActorError, BoxFuture, Config, Envelope, Handle, Router, Transport};
use dms_crypto::Did;
use dms_ucan::{Chain, Limits};

use crate::fixtures::{self, command, keys};
use crate::{Target, mutate};

/// [`Envelope::decode`] with the default size limit, as `Router::receive` calls it.
pub const ENVELOPE: Target = Target {
    name: "envelope",
    check: envelope,
    generate: Some(generate),
    dictionary: &["did:key:z6Mk", "/dms/node", "/public/hello", "root", "peer-a"],
};

/// `Router::receive_with` and `Router::receive_broadcast` of a node with a root actor.
pub const ROUTER: Target = Target {
    name: "router",
    check: router,
    generate: Some(generate),
    dictionary: &["did:key:z6Mk", "/dms/node", "/public/hello", "root", "peer-a"],
};

/// Decodes; what decodes is canonical (it re-encodes to the same bytes and decodes to
/// the same envelope), its signature check and JSON payload never panic, and the chain
/// it carries decodes back from its own encoding.
pub fn envelope(bytes: &[u8]) -> bool {
    let Ok(envelope) = Envelope::decode(bytes, DEFAULT_MAX_ENVELOPE_BYTES) else {
        return false;
    };
    assert_eq!(envelope.encode(), bytes, "an accepted envelope is in canonical form");
    let again = Envelope::decode(&envelope.encode(), DEFAULT_MAX_ENVELOPE_BYTES)
        .expect("an envelope's own encoding decodes");
    assert_eq!(again, envelope, "decode(encode(envelope)) == envelope");
    let _ = envelope.verify_signature();
    let _ = envelope.json();
    if let Ok(chain) = envelope.chain(Limits::default()) {
        let again = Chain::from_bytes(&chain.to_bytes(), Limits::default());
        assert_eq!(again.ok(), Some(chain), "a carried chain survives its own encoding");
    }
    true
}

/// A structurally valid envelope: named handles, known or random paths, a JSON or raw
/// payload, a real chain or noise, signed by the sender or not.
pub fn generate(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let sender = u.choose(keys())?;
    let to_node = Handle { did: fixtures::node().did(), peer: PEER.into(), inbox: "root".into() };
    let to = match u.int_in_range(0u8..=4)? {
        0 => None,
        1 => {
            let did = fixtures::did(u)?;
            Some(handle(u, did)?)
        }
        _ => Some(to_node),
    };
    let payload = match u.int_in_range(0u8..=2)? {
        0 => Vec::new(),
        1 => serde_json::to_vec(&fixtures::json(u, 3)?).expect("JSON values encode"),
        _ => fixtures::bytes(u, 64)?,
    };
    let capabilities = match u.int_in_range(0u8..=3)? {
        0 | 1 => Vec::new(),
        2 => fixtures::chain(u)?.to_bytes(),
        _ => {
            let chain = fixtures::chain(u)?.to_bytes();
            mutate::mutate(u, &[chain], &[])?
        }
    };
    let envelope = Envelope {
        to,
        from: handle(u, sender.did())?,
        behavior: command(u)?,
        nonce: u.arbitrary()?,
        expiry: if u.ratio(3u8, 4)? { FAR_FUTURE } else { u.arbitrary()? },
        reply_to: if u.arbitrary()? { Some(command(u)?) } else { None },
        topic: if u.ratio(1u8, 4)? { Some(command(u)?) } else { None },
        trace: None,
        payload,
        capabilities,
        signature: fixtures::bytes(u, 64)?,
    };
    let envelope = if u.ratio(3u8, 4)? {
        envelope.sign(sender).expect("signed with the sender's own key")
    } else {
        envelope
    };
    Ok(envelope.encode())
}

/// Expiry of generated envelopes (the router target renews it before delivery).
const FAR_FUTURE: u64 = 4_102_444_800_000;
/// The peer id of the node under test.
const PEER: &str = "peer-node";
/// Peers whose connections authenticate a DID (as libp2p's Noise handshake does): a
/// message from that DID through that peer skips the signature check, so mutated and
/// generated envelopes reach the later steps of the pipeline.
const AUTHENTICATED: &[(&str, usize)] = &[("peer-a", 0), ("peer-b", 1), ("peer-m", 4)];

fn handle(u: &mut Unstructured<'_>, did: Did) -> Result<Handle> {
    let peer = u.choose(&["peer-a", "peer-b", "peer-m", PEER, ""])?.to_string();
    let inbox = u.choose(&["root", "alloc-1", ""])?.to_string();
    Ok(Handle { did, peer, inbox })
}

/// Accepts every send; authenticates the [`AUTHENTICATED`] peers.
struct NullTransport;

impl Transport for NullTransport {
    fn send(
        &self,
        _: &str,
        _: Vec<u8>,
    ) -> BoxFuture<std::result::Result<Option<Vec<u8>>, ActorError>> {
        Box::pin(async { Ok(None) })
    }

    fn publish(&self, _: &str, _: Vec<u8>) -> BoxFuture<std::result::Result<(), ActorError>> {
        Box::pin(async { Ok(()) })
    }

    fn peer_did(&self, peer: &str) -> Option<Did> {
        AUTHENTICATED.iter().find(|(p, _)| *p == peer).map(|(_, key)| keys()[*key].did())
    }
}

/// The node under test: a runtime, its router, and a root actor with a public, a
/// broadcast and an authorized behavior, each decoding its JSON payload.
struct Node {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime starts");
        let unlimited = Rate { per_second: 1_000_000, burst: 1_000_000 };
        let config = Config {
            rates: Rates { public: unlimited, broadcast: unlimited, default: unlimited },
            ..Config::default()
        };
        let router = Router::new(PEER, Arc::new(NullTransport), config);
        runtime.block_on(async {
            let (context, _) = fixtures::context();
            let verifier = Arc::new(dms_ucan::Verifier::default());
            let key = fixtures::node().clone();
            let actor = Actor::spawn(&router, "root", key, context.clone().into(), verifier);
            for path in ["/dms/node/peers/list", "/public/hello", "/broadcast/hello"] {
                actor
                    .behavior(path, |message| async move {
                        let value = message.json::<serde_json::Value>()?;
                        dms_actor::json_reply(&value)
                    })
                    .expect("fixture paths are valid");
            }
            actor.subscribe("/broadcast/hello");
        });
        Node { runtime, router }
    })
}

/// Delivers the bytes as sent by the peer they claim, then (when they decode) again
/// with a renewed expiry, as a request with an open exchange, and as a broadcast on
/// their topic; lets the behaviors run. Nothing may panic.
pub fn router(bytes: &[u8]) -> bool {
    let node = node();
    let decoded = Envelope::decode(bytes, DEFAULT_MAX_ENVELOPE_BYTES).ok();
    let peer = decoded.as_ref().map_or("peer-a", |e| e.from.peer.as_str()).to_string();
    node.runtime.block_on(async {
        node.router.receive(bytes, &peer).await;
        if let Some(mut envelope) = decoded.clone() {
            envelope.expiry = now_ms() + 60_000;
            let fresh = envelope.encode();
            let (respond, answer) = tokio::sync::oneshot::channel();
            node.router.receive_with(&fresh, &peer, Some(respond)).await;
            if let Some(topic) = &envelope.topic {
                node.router.receive_broadcast(&fresh, &peer, topic.as_str()).await;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), answer).await;
        }
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    });
    decoded.is_some()
}
