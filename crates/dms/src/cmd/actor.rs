//! `dms actor ...` and `dms peers ...`: talk to actors through the local daemon.
//!
//! The CLI signs every envelope with the key of a capability context (`user` by
//! default), with the capability chain that context holds for the behavior and the
//! destination, and posts it to the daemon's `/api/v1/actor/*` relay. The daemon adds no
//! authority: the destination decides from the chain, and refusals come back typed.
//!
//! Every known behavior, its arguments and its help come from one table,
//! [`BEHAVIORS`]; `dms actor cmd --list` prints it.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use dms_actor::{ActorError, Handle, client_request};
use dms_protocol::Request;
use dms_protocol::peers::{Connect, Dht, ListPeers, Path, Ping, Scores, SelfInfoRequest};
use dms_ucan::{Command, Verifier};
use serde_json::{Map, Value};

use super::Ctx;
use super::cap::{Backend, key_of};
use crate::cli::{ActorCommand, ActorTarget, Output, PeersCommand};
use crate::client::ApiClient;
use crate::output;

/// One known behavior: its path, what it does, and its payload fields.
pub struct Spec {
    /// The capability path.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Payload fields: (name, required, help).
    pub args: &'static [(&'static str, bool, &'static str)],
    /// The topic, for behaviors reached by broadcast.
    pub topic: Option<&'static str>,
}

/// The behaviors `dms actor cmd` knows.
pub const BEHAVIORS: &[Spec] = &[
    Spec {
        path: "/dms/node/peers/list",
        summary: "connected peers, direct or relayed, with RTT",
        args: &[],
        topic: None,
    },
    Spec {
        path: "/dms/node/peers/self",
        summary: "peer id, listen addresses, NAT status",
        args: &[],
        topic: None,
    },
    Spec {
        path: "/dms/node/peers/connect",
        summary: "dial a peer",
        args: &[("address", true, "multiaddr with /p2p/<peer id>")],
        topic: None,
    },
    Spec {
        path: "/dms/node/peers/ping",
        summary: "actor round trip to a peer",
        args: &[("peer", true, "peer id")],
        topic: None,
    },
    Spec { path: "/dms/node/peers/dht", summary: "the DHT routing table", args: &[], topic: None },
    Spec {
        path: "/dms/node/peers/score",
        summary: "gossipsub peer scores",
        args: &[],
        topic: None,
    },
    Spec {
        path: "/public/hello",
        summary: "DID, peer id and version (no capability needed)",
        args: &[],
        topic: None,
    },
    Spec {
        path: "/public/status",
        summary: "peers and uptime (no capability needed)",
        args: &[],
        topic: None,
    },
    Spec {
        path: "/broadcast/hello",
        summary: "every node answers with its DID (broadcast)",
        args: &[],
        topic: Some("/dms/hello"),
    },
    Spec {
        path: "/dms/node/events/list",
        summary: "recent events of the node's journal, oldest first",
        args: &[
            ("deployment", false, "only this deployment's"),
            ("kind", false, "deployment, allocation, bid, capability, executor, peer, node"),
            ("since_ms", false, "only at or after this Unix time in ms"),
            ("after", false, "only after this event id (a cursor)"),
            ("limit", false, "at most this many (1000; default 100)"),
        ],
        topic: None,
    },
    Spec {
        path: "/dms/node/logger/config",
        summary: "the log filter in force; changes it with level",
        args: &[("level", false, "a tracing filter, e.g. debug or info,dms_actor=debug")],
        topic: None,
    },
    Spec {
        path: "/dms/node/logger/sink",
        summary: "ship events to another Elasticsearch from now on",
        args: &[("elasticsearch_url", true, "http:// base URL; empty: ship nowhere")],
        topic: None,
    },
    Spec {
        path: "/dms/node/onboarding/onboard",
        summary: "offer resources (human units)",
        args: &[
            ("cpu", true, "cores, e.g. 4 or 500m"),
            ("ram", true, "e.g. 8GiB"),
            ("disk", true, "e.g. 50GiB"),
            ("gpus", false, "GPU indices, e.g. [0,1]"),
        ],
        topic: None,
    },
    Spec {
        path: "/dms/node/onboarding/offboard",
        summary: "withdraw the offer",
        args: &[],
        topic: None,
    },
    Spec {
        path: "/dms/node/onboarding/status",
        summary: "onboarded, committed, allocated, free, benchmarks",
        args: &[],
        topic: None,
    },
    Spec {
        path: "/dms/node/resources/onboarded",
        summary: "what is offered",
        args: &[],
        topic: None,
    },
    Spec { path: "/dms/node/resources/free", summary: "what is free", args: &[], topic: None },
    Spec { path: "/dms/node/resources/allocated", summary: "what runs", args: &[], topic: None },
    Spec {
        path: "/dms/node/hardware/spec",
        summary: "CPU, RAM, disks, GPUs",
        args: &[],
        topic: None,
    },
    Spec { path: "/dms/node/hardware/usage", summary: "live usage", args: &[], topic: None },
    Spec {
        path: "/dms/node/hardware/benchmark",
        summary: "run (or record) the benchmarks",
        args: &[("report", false, "a report to record")],
        topic: None,
    },
    Spec {
        path: "/dms/cap/list",
        summary: "the node's capability context",
        args: &[],
        topic: None,
    },
    Spec {
        path: "/dms/cap/anchor",
        summary: "add a trust anchor to the node's context",
        args: &[
            ("root", false, "DID to trust fully"),
            ("require", false, "dmscap1. token admitting other issuers"),
            ("provide", false, "dmscap1. token delegated to the node"),
        ],
        topic: None,
    },
    Spec {
        path: "/dms/cap/revoke",
        summary: "revoke a token the node issued and spread the revocation",
        args: &[("cid", true, "content id of the token")],
        topic: None,
    },
];

fn spec(path: &str) -> Option<&'static Spec> {
    BEHAVIORS.iter().find(|s| s.path == path)
}

/// Builds a JSON payload from `key=value` words, checked against the table. Values
/// that parse as JSON are taken as JSON, others as strings.
fn payload(spec: Option<&Spec>, words: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut fields = Map::new();
    for word in words {
        let (key, value) =
            word.split_once('=').ok_or_else(|| anyhow!("argument {word:?}: expected KEY=VALUE"))?;
        if let Some(spec) = spec
            && !spec.args.iter().any(|(name, _, _)| *name == key)
        {
            let known: Vec<&str> = spec.args.iter().map(|(n, _, _)| *n).collect();
            bail!(
                "{} takes no argument {key:?}; it takes: {}",
                spec.path,
                if known.is_empty() { "nothing".to_string() } else { known.join(", ") }
            );
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        fields.insert(key.to_string(), value);
    }
    if let Some(spec) = spec {
        for (name, required, help) in spec.args {
            if *required && !fields.contains_key(*name) {
                bail!("{} needs {name}=<{help}>", spec.path);
            }
        }
    }
    if fields.is_empty() { Ok(Vec::new()) } else { Ok(serde_json::to_vec(&fields)?) }
}

/// What signs a session's requests: the context's key unlocked here, or the key agent
/// holding it (`dms agent start`), which saves the passphrase's scrypt on every call.
enum Signer {
    Key(dms_crypto::KeyPair),
    Agent { home: std::path::PathBuf, did: dms_crypto::Did },
}

impl Signer {
    fn did(&self) -> dms_crypto::Did {
        match self {
            Signer::Key(key) => key.did(),
            Signer::Agent { did, .. } => did.clone(),
        }
    }

    fn sign(&self, envelope: dms_actor::Envelope) -> anyhow::Result<dms_actor::Envelope> {
        Ok(match self {
            Signer::Key(key) => envelope.sign(key)?,
            Signer::Agent { home, did } => envelope.sign_by(|input| {
                crate::agent::sign(home, did.as_ref(), input).map_err(|e| format!("{e:#}"))
            })?,
        })
    }
}

/// A signer: the context's key and chains, and the node to relay through.
struct Session {
    api: ApiClient,
    node: Handle,
    key: Signer,
    context: dms_ucan::CapContext,
    verifier: Verifier,
}

impl Session {
    async fn open(ctx: &Ctx, context: &str) -> anyhow::Result<Session> {
        let api = ctx.api_client()?;
        let node: Handle = api.get("/api/v1/actor/handle").await?;
        let backend = Backend::open(ctx).await?;
        let context = backend.load(context).await?.ok_or_else(|| {
            anyhow!(
                "no capability context '{context}' to sign with. Create it and let the node \
                 trust it: `dms key new {context} && dms cap new {context} && dms cap anchor \
                 -c dms --root $(dms key did {context})`"
            )
        })?;
        drop(backend); // other commands may use the store while the key is unlocked
        let home = ctx.home.root();
        let key = if crate::agent::holds(home, context.did.as_ref()) {
            Signer::Agent { home: home.to_path_buf(), did: context.did.clone() }
        } else {
            Signer::Key(key_of(ctx, &context)?)
        };
        Ok(Session { api, node, key, context, verifier: Verifier::default() })
    }

    /// The handle of `dest`: a peer id or a DID (of a node; the daemon resolves it), or
    /// this node by default.
    async fn destination(&self, dest: Option<&str>) -> anyhow::Result<Handle> {
        let Some(dest) = dest else { return Ok(self.node.clone()) };
        // DIDs and peer ids are base58 with `:` separators: nothing to escape.
        if !dest.chars().all(|c| c.is_ascii_alphanumeric() || c == ':') {
            bail!("{dest:?} is neither a DID nor a peer id");
        }
        self.api.get(&format!("/api/v1/actor/resolve?dest={dest}")).await
    }

    fn envelope(
        &self,
        to: Option<&Handle>,
        behavior: &str,
        topic: Option<&str>,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> anyhow::Result<Vec<u8>> {
        let behavior =
            Command::parse(behavior).with_context(|| format!("behavior {behavior:?}"))?;
        let topic =
            topic.map(Command::parse).transpose().with_context(|| format!("topic {topic:?}"))?;
        let subject = to.map_or(&self.context.did, |h| &h.did);
        let chain = self
            .context
            .chain_for(&self.verifier, &behavior, subject, dms_ucan::now())
            .unwrap_or_else(dms_ucan::Chain::empty);
        let from = Handle {
            did: self.key.did(),
            peer: self.node.peer.clone(),
            inbox: format!("cli-{:016x}", rand::random::<u64>()),
        };
        let request = client_request(from, to.cloned(), behavior, topic, payload, &chain, timeout)?;
        let envelope = self.key.sign(request)?;
        Ok(envelope.encode())
    }
}

/// A refusal, as a sentence that says what to do.
fn refusal(dest: &Handle, behavior: &str, body: dms_api::ErrorBody) -> anyhow::Error {
    let typed: Option<ActorError> = body.detail.and_then(|d| serde_json::from_value(d).ok());
    let hint = match &typed {
        Some(ActorError::Unauthorized { .. }) => format!(
            "\nTo be allowed, the owner of {} grants it: `dms cap grant -c dms --cap {behavior} \
             <your DID>`, and you add the token: `dms cap anchor -c user --provide <token>`",
            dest.did
        ),
        Some(ActorError::Timeout { .. }) => {
            "\nIs the peer connected? See `dms peers list`; raise --timeout for slow behaviors."
                .into()
        }
        Some(ActorError::RateLimited { .. }) => "\nSlow down and retry.".into(),
        _ => String::new(),
    };
    anyhow!("{behavior} on {}: {} ({}){hint}", dest.peer, body.message, body.error)
}

/// Sends a signed request and returns the answer's bytes, or the refusal as a sentence.
async fn invoke_raw(
    session: &Session,
    dest: &Handle,
    behavior: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> anyhow::Result<Vec<u8>> {
    let envelope = session.envelope(Some(dest), behavior, None, payload, timeout)?;
    match session.api.post_cbor("/api/v1/actor/invoke", envelope).await? {
        Ok(bytes) => Ok(bytes),
        Err(body) => Err(refusal(dest, behavior, body)),
    }
}

async fn invoke(
    session: &Session,
    dest: &Handle,
    behavior: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let bytes = invoke_raw(session, dest, behavior, payload, timeout).await?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(format!("{} bytes", bytes.len()))))
}

/// Sends a typed request to the target node and reads its typed answer.
pub(super) async fn request<R: Request>(
    ctx: &Ctx,
    target: &ActorTarget,
    request: &R,
) -> anyhow::Result<R::Response> {
    Caller::open(ctx, target).await?.request(request, timeout(&target.timeout)?).await
}

/// A signer opened once (key unlocked, context loaded) for many calls to one node.
pub(super) struct Caller {
    session: Session,
    dest: Handle,
}

impl Caller {
    /// Unlocks the context's key and finds the target node.
    pub(super) async fn open(ctx: &Ctx, target: &ActorTarget) -> anyhow::Result<Caller> {
        let session = Session::open(ctx, &target.context).await?;
        let dest = session.destination(target.dest.as_deref()).await?;
        Ok(Caller { session, dest })
    }

    /// The peer id of the node it talks to.
    pub(super) fn peer(&self) -> &str {
        &self.dest.peer
    }

    /// Sends a typed request, waiting up to `timeout` for its typed answer.
    pub(super) async fn request<R: Request>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> anyhow::Result<R::Response> {
        let payload = dms_protocol::encode(request)?;
        let bytes = invoke_raw(&self.session, &self.dest, R::BEHAVIOR, payload, timeout).await?;
        dms_protocol::decode_response::<R>(&bytes).with_context(|| {
            format!(
                "{} on {}: the node answered what this dms cannot read; are both the same version?",
                R::BEHAVIOR,
                self.dest.peer
            )
        })
    }
}

pub(super) fn timeout(text: &str) -> anyhow::Result<Duration> {
    dms_types::units::parse_duration(text).with_context(|| format!("--timeout {text:?}"))
}

/// `dms actor ...`
pub async fn actor(ctx: &Ctx, command: ActorCommand) -> anyhow::Result<()> {
    match command {
        ActorCommand::Handle => {
            let api = ctx.api_client()?;
            let handle: Handle = api.get("/api/v1/actor/handle").await?;
            match ctx.output {
                Output::Json => output::json(&handle),
                Output::Table => {
                    output::fields(&[
                        ("did", handle.did.to_string()),
                        ("peer", handle.peer),
                        ("inbox", handle.inbox),
                    ]);
                    Ok(())
                }
            }
        }
        ActorCommand::Cmd { list: true, .. } => {
            let rows: Vec<Vec<String>> = BEHAVIORS
                .iter()
                .map(|s| {
                    let args: Vec<String> = s
                        .args
                        .iter()
                        .map(|(n, req, _)| if *req { format!("{n}=") } else { format!("[{n}=]") })
                        .collect();
                    vec![s.path.to_string(), args.join(" "), s.summary.to_string()]
                })
                .collect();
            output::table(&["behavior", "arguments", "what it does"], &rows);
            Ok(())
        }
        ActorCommand::Cmd { behavior: None, .. } => {
            bail!("name a behavior (see `dms actor cmd --list`)")
        }
        ActorCommand::Cmd { behavior: Some(behavior), args, target, raw, .. } => {
            let spec = spec(&behavior);
            if spec.is_none() && !raw {
                bail!(
                    "unknown behavior {behavior:?}: see `dms actor cmd --list`, or pass --raw to \
                     send it anyway"
                );
            }
            if let Some(topic) = spec.and_then(|s| s.topic) {
                return broadcast(ctx, &target, &behavior, topic, payload(spec, &args)?).await;
            }
            let session = Session::open(ctx, &target.context).await?;
            let dest = session.destination(target.dest.as_deref()).await?;
            let value = invoke(
                &session,
                &dest,
                &behavior,
                payload(spec, &args)?,
                timeout(&target.timeout)?,
            )
            .await?;
            output::json(&value)
        }
        ActorCommand::Broadcast { behavior, topic, args, target } => {
            broadcast(ctx, &target, &behavior, &topic, payload(spec(&behavior), &args)?).await
        }
    }
}

async fn broadcast(
    ctx: &Ctx,
    target: &ActorTarget,
    behavior: &str,
    topic: &str,
    payload: Vec<u8>,
) -> anyhow::Result<()> {
    if target.dest.is_some() {
        bail!("a broadcast goes to every subscriber of {topic}; drop --dest");
    }
    let session = Session::open(ctx, &target.context).await?;
    let envelope =
        session.envelope(None, behavior, Some(topic), payload, timeout(&target.timeout)?)?;
    let answers: Vec<Value> =
        match session.api.post_cbor("/api/v1/actor/broadcast", envelope).await? {
            Ok(bytes) => serde_json::from_slice(&bytes).context("unexpected broadcast answer")?,
            Err(body) => return Err(refusal(&session.node, behavior, body)),
        };
    match ctx.output {
        Output::Json => output::json(&answers),
        Output::Table => {
            let rows: Vec<Vec<String>> = answers
                .iter()
                .map(|a| {
                    let peer = a["from"]["peer"].as_str().unwrap_or_default().to_string();
                    let did = a["from"]["did"].as_str().unwrap_or_default().to_string();
                    let answer = match (a.get("reply"), a.get("error")) {
                        (_, Some(error)) => format!("refused: {error}"),
                        (Some(reply), _) => reply.to_string(),
                        _ => String::new(),
                    };
                    vec![peer, did, answer]
                })
                .collect();
            println!("{} answer(s) to {behavior} on {topic}", rows.len());
            output::table(&["peer", "did", "answer"], &rows);
            Ok(())
        }
    }
}

/// `dms peers ...`: friendly verbs over `/dms/node/peers/*`.
pub async fn peers(ctx: &Ctx, command: PeersCommand) -> anyhow::Result<()> {
    match command {
        PeersCommand::List { target } => {
            let peers = request(ctx, &target, &ListPeers {}).await?;
            if ctx.output == Output::Json {
                return output::json(&peers);
            }
            let rows: Vec<Vec<String>> = peers
                .iter()
                .map(|p| {
                    let path = match p.path {
                        Path::Direct => "direct",
                        Path::Relayed => "relayed",
                    };
                    vec![
                        p.peer_id.clone(),
                        path.into(),
                        p.rtt_ms.map_or("-".into(), |r| format!("{r} ms")),
                        p.addrs.first().cloned().unwrap_or_default(),
                    ]
                })
                .collect();
            println!("{} peer(s) connected", rows.len());
            output::table(&["peer id", "path", "rtt", "address"], &rows);
            Ok(())
        }
        PeersCommand::Ping { peer, target } => {
            let pong = request(ctx, &target, &Ping { peer }).await?;
            if ctx.output == Output::Json {
                return output::json(&pong);
            }
            let version = pong.version.as_deref().unwrap_or("?");
            println!("{} answered in {:.1} ms (dms {version})", pong.peer, pong.rtt_ms);
            Ok(())
        }
        PeersCommand::Self_ { target } => {
            output::json(&request(ctx, &target, &SelfInfoRequest {}).await?)
        }
        PeersCommand::Connect { address, target } => {
            output::json(&request(ctx, &target, &Connect { address }).await?)
        }
        PeersCommand::Dht { target } => output::json(&request(ctx, &target, &Dht {}).await?),
        PeersCommand::Score { target } => output::json(&request(ctx, &target, &Scores {}).await?),
    }
}
