//! The node actor's behaviors: peers and the DHT, public greetings, broadcast hello,
//! and remote capability management with revocations spread over gossip.
//!
//! | Behavior | Payload | Answer |
//! |---|---|---|
//! | `/dms/node/peers/list` | — | connected peers: address, direct/relayed, ping RTT |
//! | `/dms/node/peers/self` | — | peer id, listen addresses, NAT status |
//! | `/dms/node/peers/connect` | `{address}` | dials a multiaddr with `/p2p/<id>` |
//! | `/dms/node/peers/ping` | `{peer}` | actor round trip to that peer's `/public/hello` |
//! | `/dms/node/peers/dht` | — | the Kademlia routing table |
//! | `/dms/node/peers/score` | — | gossipsub scores of connected peers |
//! | `/public/hello`, `/public/status` | — | DID, peer, version / peers, uptime |
//! | `/broadcast/hello` (topic [`HELLO_TOPIC`]) | — | DID, peer, version |
//! | `/dms/cap/list` | — | the node's capability context |
//! | `/dms/cap/anchor` | `{root?, require?, provide?}` | adds trust anchors |
//! | `/dms/cap/revoke` | `{cid}` | revokes, stores, and broadcasts the revocation |
//! | `/public/cap/revocation` (topic [`REVOCATION_TOPIC`]) | `{token}` | imports a revocation |

use std::sync::Arc;
use std::time::{Duration, Instant};

use dms_actor::{Actor, ActorError, Handle, json_reply};
use dms_network::Client;
use dms_ucan::{CapContext, Chain, Contexts, Verifier};
use serde::Deserialize;
use tracing::info;

use crate::caps::NODE_CONTEXT;

/// Topic of `/broadcast/hello`.
pub const HELLO_TOPIC: &str = "/dms/hello";
/// Topic revocations are spread on.
pub const REVOCATION_TOPIC: &str = "/dms/cap/revocations";
/// Behavior that receives spread revocations.
pub const REVOCATION_BEHAVIOR: &str = "/public/cap/revocation";

/// What the behaviors use.
#[derive(Clone)]
pub struct Deps {
    /// The network.
    pub client: Client,
    /// The node's capability contexts (the one write path to them).
    pub contexts: Arc<Contexts>,
    /// The node's verifier.
    pub verifier: Arc<Verifier>,
    /// When the node started.
    pub started: Instant,
}

/// A behavior that ran and failed (network, store, capability errors), for the caller.
pub(crate) fn failed(error: impl std::fmt::Display) -> ActorError {
    ActorError::handler(error.to_string())
}

/// A payload the behavior cannot use.
pub(crate) fn bad(reason: impl std::fmt::Display) -> ActorError {
    ActorError::BadPayload { reason: reason.to_string() }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Connect {
    /// Multiaddr with `/p2p/<peer id>`.
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ping {
    /// Peer id to ping.
    peer: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Anchor {
    root: Option<String>,
    require: Option<String>,
    provide: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    cid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revocation {
    token: String,
}

/// The root actor handle of the node at `peer` (a peer id names its node key).
pub fn root_of(peer: &str) -> Result<Handle, ActorError> {
    let id: dms_network::PeerId = peer.parse().map_err(|e| bad(format!("peer {peer:?}: {e}")))?;
    let did = dms_network::did_of_peer(&id)
        .ok_or_else(|| bad(format!("peer {peer} does not embed its public key")))?;
    Ok(Handle { did, peer: id.to_string(), inbox: "root".into() })
}

/// The root actor of the node named by `dest`: a peer id, or a `did:key` DID (whose key
/// is the node's libp2p identity).
pub fn resolve(dest: &str) -> Result<Handle, String> {
    if dest.starts_with("did:") {
        let did: dms_crypto::Did =
            dest.parse().map_err(|e| format!("{dest:?} is not a did:key DID: {e}"))?;
        let peer = dms_network::peer_of_did(&did).map_err(|e| e.to_string())?;
        Ok(Handle { did, peer: peer.to_string(), inbox: "root".into() })
    } else {
        root_of(dest)
            .map_err(|_| format!("{dest:?} is neither a DID nor a peer id that embeds its key"))
    }
}

/// Registers every behavior of the table above on the node's root actor.
pub fn register(actor: &Actor, deps: &Deps) -> Result<(), ActorError> {
    peers(actor, deps)?;
    public(actor, deps)?;
    capabilities(actor, deps)?;
    Ok(())
}

fn peers(actor: &Actor, deps: &Deps) -> Result<(), ActorError> {
    let c = deps.client.clone();
    actor.behavior("/dms/node/peers/list", move |_| {
        let c = c.clone();
        async move { json_reply(&c.peers().await.map_err(failed)?) }
    })?;
    let c = deps.client.clone();
    actor.behavior("/dms/node/peers/self", move |_| {
        let c = c.clone();
        async move { json_reply(&c.self_info().await.map_err(failed)?) }
    })?;
    let c = deps.client.clone();
    actor.behavior("/dms/node/peers/connect", move |message| {
        let c = c.clone();
        async move {
            let Connect { address } = message.json()?;
            let addr = address.parse().map_err(|e| bad(format!("{address:?}: {e}")))?;
            c.dial(addr).await.map_err(failed)?;
            json_reply(&serde_json::json!({ "connected": address }))
        }
    })?;
    actor.behavior("/dms/node/peers/ping", move |message| async move {
        let Ping { peer } = message.json()?;
        let to = root_of(&peer)?;
        let started = Instant::now();
        let reply =
            message.actor.invoke(&to, "/public/hello", Vec::new(), Duration::from_secs(10)).await?;
        let rtt = started.elapsed();
        let hello: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
        json_reply(&serde_json::json!({
            "peer": peer,
            "did": to.did,
            "rtt_ms": rtt.as_secs_f64() * 1000.0,
            "version": hello.get("version"),
        }))
    })?;
    let c = deps.client.clone();
    actor.behavior("/dms/node/peers/dht", move |_| {
        let c = c.clone();
        async move { json_reply(&c.dht().await.map_err(failed)?) }
    })?;
    let c = deps.client.clone();
    actor.behavior("/dms/node/peers/score", move |_| {
        let c = c.clone();
        async move { json_reply(&c.scores().await.map_err(failed)?) }
    })?;
    Ok(())
}

fn hello(actor: &Actor) -> serde_json::Value {
    let me = actor.handle();
    serde_json::json!({ "did": me.did, "peer_id": me.peer, "version": crate::VERSION })
}

fn public(actor: &Actor, deps: &Deps) -> Result<(), ActorError> {
    actor.behavior(
        "/public/hello",
        move |message| async move { json_reply(&hello(&message.actor)) },
    )?;
    actor.behavior("/broadcast/hello", move |message| async move {
        json_reply(&hello(&message.actor))
    })?;
    actor.subscribe(HELLO_TOPIC);
    let (c, started) = (deps.client.clone(), deps.started);
    actor.behavior("/public/status", move |message| {
        let c = c.clone();
        async move {
            let peers = c.peers().await.map_err(failed)?.len();
            json_reply(&serde_json::json!({
                "did": message.actor.handle().did,
                "peers": peers,
                "uptime_secs": started.elapsed().as_secs(),
            }))
        }
    })?;
    Ok(())
}

/// Applies `change` to the node context through the one write path (stored, then in
/// force in every actor sharing it), off the async threads.
async fn change_context<T: Send + 'static>(
    contexts: &Arc<Contexts>,
    change: impl FnMut(&mut CapContext) -> Result<T, ActorError> + Send + 'static,
) -> Result<T, ActorError> {
    let contexts = contexts.clone();
    tokio::task::spawn_blocking(move || contexts.change(NODE_CONTEXT, change))
        .await
        .map_err(failed)?
}

fn chain(text: &str) -> Result<Chain, ActorError> {
    text.parse().map_err(|e| bad(format!("not a capability token: {e}")))
}

fn capabilities(actor: &Actor, deps: &Deps) -> Result<(), ActorError> {
    actor.behavior("/dms/cap/list", move |message| async move {
        json_reply(&Some(message.actor.context()))
    })?;
    let (contexts, verifier) = (deps.contexts.clone(), deps.verifier.clone());
    actor.behavior("/dms/cap/anchor", move |message| {
        let (contexts, verifier) = (contexts.clone(), verifier.clone());
        async move {
            let anchor: Anchor = message.json()?;
            if anchor.root.is_none() && anchor.require.is_none() && anchor.provide.is_none() {
                return Err(bad("give at least one of root, require, provide"));
            }
            let root = anchor.root.as_deref().map(str::parse).transpose().map_err(bad)?;
            let require = anchor.require.as_deref().map(chain).transpose()?;
            let provide = anchor.provide.as_deref().map(chain).transpose()?;
            let now = dms_ucan::now();
            let version = change_context(&contexts, move |context| {
                if let Some(did) = &root {
                    context.add_root(dms_crypto::Did::clone(did));
                }
                if let Some(chain) = &require {
                    context.add_require(chain.clone(), &verifier, now).map_err(failed)?;
                }
                if let Some(chain) = &provide {
                    context.add_provide(chain.clone(), &verifier, now).map_err(failed)?;
                }
                Ok(context.version)
            })
            .await?;
            json_reply(&serde_json::json!({ "context": NODE_CONTEXT, "version": version }))
        }
    })?;
    let (contexts, verifier) = (deps.contexts.clone(), deps.verifier.clone());
    actor.behavior("/dms/cap/revoke", move |message| {
        let (contexts, verifier) = (contexts.clone(), verifier.clone());
        async move {
            let Revoke { cid } = message.json()?;
            let key = message.actor.signing_key().clone();
            let revoked = cid.clone();
            let token = change_context(&contexts, move |context| {
                context.revoke(&key, &revoked, &verifier).map_err(failed)
            })
            .await?;
            let text = token.to_string();
            let payload = serde_json::to_vec(&serde_json::json!({ "token": text }))
                .map_err(|e| ActorError::Internal { reason: e.to_string() })?;
            let spread = message
                .actor
                .broadcast(REVOCATION_TOPIC, REVOCATION_BEHAVIOR, payload, Duration::from_secs(60))
                .await;
            json_reply(&serde_json::json!({
                "revoked": cid,
                "token": text,
                "broadcast": spread.is_ok(),
            }))
        }
    })?;
    let (contexts, verifier) = (deps.contexts.clone(), deps.verifier.clone());
    actor.behavior(REVOCATION_BEHAVIOR, move |message| {
        let (contexts, verifier) = (contexts.clone(), verifier.clone());
        async move {
            let Revocation { token } = message.json()?;
            let token = chain(&token)?;
            let by = token.leaf().map(|t| t.payload().iss.clone()).ok_or_else(|| bad("empty"))?;
            let issuer = by.clone();
            let imported = change_context(&contexts, move |context| {
                if !context.cares_about(&issuer) {
                    return Ok(false);
                }
                context.import_revocation(token.clone(), &verifier).map_err(failed)?;
                Ok(true)
            })
            .await?;
            if imported {
                info!(by = %by, "Imported a revocation spread over gossip.");
            }
            json_reply(&serde_json::json!({ "imported": imported }))
        }
    })?;
    actor.subscribe(REVOCATION_TOPIC);
    Ok(())
}
