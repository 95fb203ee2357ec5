//! The node actor's network behaviors.

use std::time::Instant;

use dms_actor::{Actor, ActorError, json_reply};
use dms_network::Client;
use serde::Deserialize;

fn network(error: dms_network::NetworkError) -> ActorError {
    ActorError::handler(error.to_string())
}

#[derive(Deserialize)]
struct Connect {
    /// Multiaddr with `/p2p/<peer id>`.
    address: String,
}

/// Registers `/dms/node/peers/{list,self,connect}` and `/public/{hello,status}` on the
/// node's root actor.
pub fn register(actor: &Actor, client: &Client, started: Instant) -> Result<(), ActorError> {
    let c = client.clone();
    actor.behavior("/dms/node/peers/list", move |_| {
        let c = c.clone();
        async move { json_reply(&c.peers().await.map_err(network)?) }
    })?;
    let c = client.clone();
    actor.behavior("/dms/node/peers/self", move |_| {
        let c = c.clone();
        async move { json_reply(&c.self_info().await.map_err(network)?) }
    })?;
    let c = client.clone();
    actor.behavior("/dms/node/peers/connect", move |message| {
        let c = c.clone();
        async move {
            let Connect { address } = message.json()?;
            let addr = address
                .parse()
                .map_err(|e| ActorError::BadPayload { reason: format!("{address:?}: {e}") })?;
            c.dial(addr).await.map_err(network)?;
            json_reply(&serde_json::json!({ "connected": address }))
        }
    })?;
    actor.behavior("/public/hello", move |message| async move {
        let me = message.actor.handle();
        json_reply(
            &serde_json::json!({ "did": me.did, "peer_id": me.peer, "version": crate::VERSION }),
        )
    })?;
    let c = client.clone();
    actor.behavior("/public/status", move |message| {
        let c = c.clone();
        async move {
            let peers = c.peers().await.map_err(network)?.len();
            json_reply(&serde_json::json!({
                "did": message.actor.handle().did,
                "peers": peers,
                "uptime_secs": started.elapsed().as_secs(),
            }))
        }
    })?;
    Ok(())
}
