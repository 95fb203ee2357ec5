//! The seed files of the corpus: real, valid examples of every format, made here from
//! the fixtures (envelopes, tokens, chains, DIDs, key files, frames, protocol messages)
//! or copied from the examples and the ensemble crate's golden corpus, plus a truncated
//! and a bit-flipped copy of one valid seed per target.
//!
//! `cargo test -p dms-fuzz --test fuzz -- --ignored write_seeds` writes them into
//! `corpus/<target>/` (existing files are kept, so found inputs stay); the files are
//! committed. Key files hold the time they were written, so a rewrite changes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dms_actor::{Envelope, Handle};
use dms_ensemble::model::Executor;
use dms_protocol::{cap, deployment, node};
use dms_ucan::Chain;
use serde_json::json;

use crate::fixtures::{self, cmd, keys};
use crate::targets::{crypto, node as node_config, ucan};

/// One seed file.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The target whose corpus it belongs to.
    pub target: &'static str,
    /// Its file name in `corpus/<target>/`.
    pub file: String,
    /// Its contents.
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, file: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Seed {
    Seed { target, file: file.into(), bytes: bytes.into() }
}

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every seed, with a truncated and a bit-flipped copy of each target's first one.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    seeds.extend(envelopes());
    seeds.extend(capabilities());
    seeds.extend(crypto::seeds().into_iter().map(|(file, bytes)| seed("keyfile", file, bytes)));
    seeds.extend(node_config::seeds().into_iter().map(|(file, bytes)| seed("config", file, bytes)));
    seeds.extend(requests());
    seeds.extend(responses());
    seeds.extend(text_files());
    let mut firsts: BTreeMap<&'static str, Seed> = BTreeMap::new();
    for s in &seeds {
        firsts.entry(s.target).or_insert_with(|| s.clone());
    }
    for first in firsts.into_values() {
        let mut truncated = first.bytes.clone();
        truncated.truncate(first.bytes.len() / 2);
        seeds.push(seed(first.target, format!("{}.truncated", first.file), truncated));
        let mut flipped = first.bytes.clone();
        if let Some(byte) = flipped.get_mut(first.bytes.len() / 3) {
            *byte ^= 0x04;
        }
        seeds.push(seed(first.target, format!("{}.flipped", first.file), flipped));
    }
    seeds
}

/// Writes the seeds under `root` (`corpus/`), keeping files already there; returns how
/// many were written.
pub fn write(root: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for s in all() {
        let dir = root.join(s.target);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(&s.file);
        if !path.exists() {
            std::fs::write(path, &s.bytes)?;
            written += 1;
        }
    }
    Ok(written)
}

/// A signed envelope to the node's root actor (or a broadcast when `topic` is set).
fn envelope(key: usize, peer: &str, behavior: &str, chain: Option<&Chain>, topic: bool) -> Vec<u8> {
    let sender = &keys()[key];
    let to = Handle { did: fixtures::node().did(), peer: "peer-node".into(), inbox: "root".into() };
    let envelope = Envelope {
        to: (!topic).then_some(to),
        from: Handle { did: sender.did(), peer: peer.into(), inbox: "cli-1".into() },
        behavior: cmd(behavior),
        nonce: 7,
        expiry: 4_102_444_800_000,
        reply_to: (!topic).then(|| cmd("/dms/actor/reply/7")),
        topic: topic.then(|| cmd(behavior)),
        trace: None,
        payload: br#"{"v":1,"greeting":"hello"}"#.to_vec(),
        capabilities: chain.map(Chain::to_bytes).unwrap_or_default(),
        signature: Vec::new(),
    };
    envelope.sign(sender).expect("signed by the sender's own key").encode()
}

/// Envelopes (for `envelope`, `router` and, framed, `frame`).
fn envelopes() -> Vec<Seed> {
    let chains: BTreeMap<_, _> = ucan::seeds().into_iter().collect();
    let list = [
        ("request.cbor", envelope(0, "peer-a", "/dms/node/peers/list", None, false)),
        (
            "delegated.cbor",
            envelope(1, "peer-b", "/dms/node/peers/list", chains.get("root"), false),
        ),
        ("public.cbor", envelope(5, "peer-s", "/public/hello", None, false)),
        ("broadcast.cbor", envelope(4, "peer-m", "/broadcast/hello", None, true)),
    ];
    let mut seeds = Vec::new();
    let mut stream = Vec::new();
    for (file, bytes) in list {
        seeds.push(seed("envelope", file, bytes.clone()));
        seeds.push(seed("router", file, bytes.clone()));
        let frame =
            [&u32::try_from(bytes.len()).expect("small").to_be_bytes()[..], &bytes].concat();
        seeds.push(seed("frame", file.replace(".cbor", ".frame"), frame.clone()));
        stream.extend(frame);
    }
    seeds.push(seed("frame", "stream.frames", stream));
    seeds.push(seed("frame", "empty.frame", vec![0, 0, 0, 0]));
    seeds
}

/// Tokens, chains (bytes and text) and DIDs.
fn capabilities() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (name, chain) in ucan::seeds() {
        seeds.push(seed("chain", format!("{name}.cbor"), chain.to_bytes()));
        seeds.push(seed("chain", format!("{name}.txt"), chain.to_text()));
        if let Some(leaf) = chain.leaf() {
            seeds.push(seed("token", format!("{name}.cbor"), leaf.bytes()));
        }
    }
    let names = ["alice", "bob", "carol", "dave", "mallory", "sam", "node"];
    for (name, key) in names.iter().zip(keys()) {
        seeds.push(seed("did", format!("{name}.txt"), key.did().to_string()));
    }
    seeds
}

fn hello() -> dms_ensemble::Ensemble {
    let text = std::fs::read_to_string(workspace().join("examples/hello.yaml"))
        .expect("examples/hello.yaml is readable");
    dms_ensemble::load(&text).expect("the example is valid").ensemble
}

fn text(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("JSON values encode")
}

/// Request payloads as the CLI, orchestrators and providers send them.
fn requests() -> Vec<Seed> {
    let chains: BTreeMap<_, _> = ucan::seeds().into_iter().collect();
    let alice = fixtures::alice().did().to_string();
    let orchestrator =
        Handle { did: fixtures::bob().did(), peer: "peer-b".into(), inbox: "o-1".into() };
    let ensemble = hello();
    let submit = node::NewDeployment {
        ensemble: ensemble.clone(),
        modules: BTreeMap::from([("greet".into(), "AGFzbQEAAAA=".into())]),
        timeout_ms: Some(30_000),
        credentials: None,
    };
    let ask = deployment::NodeAsk {
        node: "first".into(),
        requirements: dms_types::capability::Requirements::default(),
        executors: vec!["wasm".into()],
        pinned: None,
        accept: Vec::new(),
        reject: Vec::new(),
        binds: Vec::new(),
        subnet: false,
    };
    let bid = deployment::BidRequest {
        deployment: "d-1".into(),
        orchestrator: orchestrator.clone(),
        nodes: vec![ask],
        exclude: vec!["peer-x".into()],
        contracts: Vec::new(),
        dry_run: true,
        reservation_ms: 30_000,
        rtts: true,
    };
    let allocation = ensemble.allocations.get("greet").expect("hello has greet").clone();
    let allocate = deployment::Allocate {
        deployment: "d-1".into(),
        node: "first".into(),
        reservation: "r-1".into(),
        orchestrator,
        allocations: vec![deployment::AllocationSpec {
            name: "greet".into(),
            allocation,
            module_b64: None,
            images_b64: Default::default(),
            port_maps: Vec::new(),
            subnet: None,
        }],
        contract: None,
    };
    let anchor = cap::Anchor {
        root: Some(alice),
        require: chains.get("admitted").map(Chain::to_text),
        provide: chains.get("root").map(Chain::to_text),
    };
    let revocation = cap::Revocation { token: chains["revocation"].to_text() };
    vec![
        seed("request", "new-deployment.json", wire(&submit)),
        seed("request", "bid-request.json", wire(&bid)),
        seed("request", "allocate.json", wire(&allocate)),
        seed("request", "anchor.json", wire(&anchor)),
        seed("request", "revocation.json", wire(&revocation)),
        seed("request", "empty.json", "{}"),
        seed(
            "request",
            "revert.json",
            text(&json!({"v": 1, "deployment": "d-1", "node": "first"})),
        ),
        seed(
            "request",
            "status.json",
            text(&json!({"v": 1, "id": "d-1", "after": 3, "wait_ms": 1000})),
        ),
        seed(
            "request",
            "logs.json",
            text(&json!({"id": "d-1", "allocation": "greet", "tail": 10})),
        ),
        seed(
            "request",
            "onboard.json",
            text(&json!({"cpu": "500m", "ram": "8GiB", "disk": 5e10, "gpus": [0]})),
        ),
        seed(
            "request",
            "update.json",
            text(&json!({"v": 1, "deployment": "d-1", "allocation": "greet", "heartbeat": true,
                "status": {"state": "running", "version": 3, "health": "healthy", "started_ms": 1}})),
        ),
        seed(
            "request",
            "start.json",
            text(&json!({"liveness": {"heartbeat_ms": 1000, "stop_after_ms": 60000}})),
        ),
    ]
}

/// Answers as behaviors send them back.
fn responses() -> Vec<Seed> {
    let alice = fixtures::alice().did().to_string();
    let (context, _) = fixtures::context();
    let bid = json!({"peer": "peer-p", "bids": [{"node": "first", "reservation": "r-1",
        "expires_ms": 5, "machine": dms_types::capability::Machine::default(), "score": 0.75,
        "rtt_ms": {"peer-b": 1.5}}], "refusals": [{"node": "second", "reasons": [
        {"transient": true, "code": "insufficient_ram", "message": "1 GiB free"}]}]});
    vec![
        seed("response", "context.json", text(&json!(context))),
        seed("response", "bid-answer.json", text(&bid)),
        seed(
            "response",
            "allocation-status.json",
            text(&json!({"state": "failed", "exit_code": 1,
            "message": "exited", "output": "boom\n", "restarts": 2, "version": 9})),
        ),
        seed(
            "response",
            "logs.json",
            text(&json!({"lines": [{"stream": "stdout", "text": "hi"}], "exited": true})),
        ),
        seed(
            "response",
            "logs-entries.json",
            text(&json!({"greet": {"lines": [], "exited": false},
            "answer": {"error": "the provider is gone"}})),
        ),
        seed(
            "response",
            "greeting.json",
            text(&json!({"did": alice, "peer_id": "peer-a", "version": "0.1.0"})),
        ),
        seed(
            "response",
            "plan.json",
            text(&json!({"answered": ["peer-p"], "nodes": {"first":
            {"candidates": [["peer-p", 0.9]], "rejected": [["peer-q", ["no GPU"]]]}},
            "placement": {"Ok": {"first": "peer-p"}}})),
        ),
        seed("response", "created.json", text(&json!({"id": "d-1"}))),
        seed("response", "ack.json", text(&json!({"keep": false}))),
    ]
}

/// The wire form of a seed request.
fn wire<R: dms_protocol::Request>(request: &R) -> Vec<u8> {
    dms_protocol::encode(request).expect("seed requests encode")
}

/// Ensembles and translator inputs: the example, the scaffolds, and the ensemble
/// crate's golden corpus (valid and invalid ensembles, compose, Kubernetes, Nomad).
fn text_files() -> Vec<Seed> {
    let mut seeds = vec![seed(
        "ensemble",
        "hello.yaml",
        std::fs::read(workspace().join("examples/hello.yaml")).expect("the example reads"),
    )];
    for executor in [Executor::Docker, Executor::Wasm, Executor::Vm] {
        let file = format!("scaffold-{}.yaml", executor.name());
        seeds.push(seed("ensemble", file, dms_ensemble::scaffold::scaffold(executor)));
    }
    let golden = workspace().join("crates/dms-ensemble/tests/corpus");
    for (dir, target) in [
        ("valid", "ensemble"),
        ("invalid", "ensemble"),
        ("compose", "compose"),
        ("kubernetes", "kubernetes"),
        ("nomad", "nomad"),
    ] {
        for path in crate::harness::corpus_files(&golden.join(dir)) {
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.ends_with(".golden") || name.ends_with(".errors") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("a golden corpus file reads");
            seeds.push(seed(target, format!("{dir}-{name}"), bytes));
        }
    }
    seeds
}
