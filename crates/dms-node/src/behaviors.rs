//! The node actor's behaviors: peers and the DHT, public greetings, broadcast hello,
//! and remote capability management with revocations spread over gossip.
//!
//! The typed pairs and their tables are in `dms_protocol::peers` (peers, DHT, scores,
//! greetings) and `dms_protocol::cap` (context, anchors, revocations); this module
//! answers them with the network client and the node's one capability write path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dms_actor::{Actor, ActorError, Handle};
use dms_network::Client;
use dms_protocol::cap::{Anchor, Anchored, Imported, ListContext, Revocation, Revoke, Revoked};
use dms_protocol::peers::{
    BroadcastHello, Connect, Connected, Dht, Greeting, Hello, ListPeers, NodeStatus, Ping, Pong,
    PublicStatus, Scores, SelfInfoRequest,
};
use dms_protocol::{Request, handle};
use dms_ucan::{CapContext, Chain, Contexts, Verifier};
use tracing::info;

use crate::caps::NODE_CONTEXT;

pub use dms_protocol::cap::{REVOCATION_BEHAVIOR, REVOCATION_TOPIC};
pub use dms_protocol::peers::HELLO_TOPIC;

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
    handle(actor, move |_, ListPeers {}| {
        let c = c.clone();
        async move { c.peers().await.map_err(failed) }
    })?;
    let c = deps.client.clone();
    handle(actor, move |_, SelfInfoRequest {}| {
        let c = c.clone();
        async move { c.self_info().await.map_err(failed) }
    })?;
    let c = deps.client.clone();
    handle(actor, move |_, Connect { address }| {
        let c = c.clone();
        async move {
            let addr = address.parse().map_err(|e| bad(format!("{address:?}: {e}")))?;
            c.dial(addr).await.map_err(failed)?;
            Ok(Connected { connected: address })
        }
    })?;
    handle(actor, move |message, Ping { peer }| async move {
        let to = root_of(&peer)?;
        let started = Instant::now();
        let hello = dms_protocol::encode(&Hello {})?;
        let reply =
            message.actor.invoke(&to, Hello::BEHAVIOR, hello, Duration::from_secs(10)).await?;
        let rtt = started.elapsed();
        // A peer that answers but says nothing readable still answered: its version
        // is just unknown.
        let version = dms_protocol::decode_response::<Hello>(&reply).ok().map(|g| g.version);
        Ok(Pong { peer, did: to.did, rtt_ms: rtt.as_secs_f64() * 1000.0, version })
    })?;
    let c = deps.client.clone();
    handle(actor, move |_, Dht {}| {
        let c = c.clone();
        async move { c.dht().await.map_err(failed) }
    })?;
    let c = deps.client.clone();
    handle(actor, move |_, Scores {}| {
        let c = c.clone();
        async move { c.scores().await.map_err(failed) }
    })?;
    Ok(())
}

fn greeting(actor: &Actor) -> Greeting {
    let me = actor.handle();
    Greeting { did: me.did.clone(), peer_id: me.peer.clone(), version: crate::VERSION.into() }
}

fn public(actor: &Actor, deps: &Deps) -> Result<(), ActorError> {
    handle(actor, move |message, Hello {}| async move { Ok(greeting(&message.actor)) })?;
    handle(actor, move |message, BroadcastHello {}| async move { Ok(greeting(&message.actor)) })?;
    actor.subscribe(HELLO_TOPIC);
    let (c, started) = (deps.client.clone(), deps.started);
    handle(actor, move |message, PublicStatus {}| {
        let c = c.clone();
        async move {
            Ok(NodeStatus {
                did: message.actor.handle().did.clone(),
                peers: c.peers().await.map_err(failed)?.len(),
                uptime_secs: started.elapsed().as_secs(),
            })
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
    handle(actor, move |message, ListContext {}| async move { Ok(Some(message.actor.context())) })?;
    let (contexts, verifier) = (deps.contexts.clone(), deps.verifier.clone());
    handle(actor, move |_, anchor: Anchor| {
        let (contexts, verifier) = (contexts.clone(), verifier.clone());
        async move { self::anchor(&contexts, verifier, anchor).await }
    })?;
    let (contexts, verifier) = (deps.contexts.clone(), deps.verifier.clone());
    handle(actor, move |message, Revoke { cid }| {
        let (contexts, verifier) = (contexts.clone(), verifier.clone());
        async move {
            let key = message.actor.signing_key().clone();
            let revoked = cid.clone();
            let token = change_context(&contexts, move |context| {
                context.revoke(&key, &revoked, &verifier).map_err(failed)
            })
            .await?;
            let token = token.to_string();
            let payload = dms_protocol::encode(&Revocation { token: token.clone() })?;
            let spread = message
                .actor
                .broadcast(REVOCATION_TOPIC, REVOCATION_BEHAVIOR, payload, Duration::from_secs(60))
                .await;
            Ok(Revoked { revoked: cid, token, broadcast: spread.is_ok() })
        }
    })?;
    let (contexts, verifier) = (deps.contexts.clone(), deps.verifier.clone());
    handle(actor, move |_, Revocation { token }| {
        let (contexts, verifier) = (contexts.clone(), verifier.clone());
        async move {
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
            Ok(Imported { imported })
        }
    })?;
    actor.subscribe(REVOCATION_TOPIC);
    Ok(())
}

/// Adds the trust anchors of `anchor` to the node context.
async fn anchor(
    contexts: &Arc<Contexts>,
    verifier: Arc<Verifier>,
    anchor: Anchor,
) -> Result<Anchored, ActorError> {
    if anchor.root.is_none() && anchor.require.is_none() && anchor.provide.is_none() {
        return Err(bad("give at least one of root, require, provide"));
    }
    let root: Option<dms_crypto::Did> =
        anchor.root.as_deref().map(str::parse).transpose().map_err(bad)?;
    let require = anchor.require.as_deref().map(chain).transpose()?;
    let provide = anchor.provide.as_deref().map(chain).transpose()?;
    let now = dms_ucan::now();
    let version = change_context(contexts, move |context| {
        if let Some(did) = &root {
            context.add_root(did.clone());
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
    Ok(Anchored { context: NODE_CONTEXT.into(), version })
}
