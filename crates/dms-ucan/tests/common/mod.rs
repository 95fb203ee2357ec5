//! Shared fixtures for the dms-ucan integration tests: named deterministic identities,
//! contexts, specs, and builders for raw (possibly hostile) tokens and chains.

#![allow(dead_code)]

use dms_crypto::{Did, KeyPair, KeyType};
use dms_ucan::token::SIGNING_DOMAIN;
use dms_ucan::verify::Verified;
use dms_ucan::{
    Authorization, CapContext, Chain, Command, Denial, Kind, Payload, Request, Spec, Token,
    Verifier,
};
use serde_json::Value;

/// A fixed "current time" for tests (Unix seconds, November 2023).
pub const NOW: u64 = 1_700_000_000;

fn ed25519(seed: u8) -> KeyPair {
    KeyPair::from_secret_bytes(KeyType::Ed25519, &[seed; 32])
        .expect("any 32 bytes are an Ed25519 seed")
}

/// Alice: the usual root (a node owner).
pub fn alice() -> KeyPair {
    ed25519(0xA1)
}

/// Bob: alice's first delegate.
pub fn bob() -> KeyPair {
    ed25519(0xB0)
}

/// Carol: bob's delegate.
pub fn carol() -> KeyPair {
    ed25519(0xCA)
}

/// Dave: carol's delegate.
pub fn dave() -> KeyPair {
    ed25519(0xDA)
}

/// Mallory: the attacker; trusted by nobody.
pub fn mallory() -> KeyPair {
    ed25519(0x66)
}

/// Sam: a secp256k1 identity (a fixed scalar well below the curve order).
pub fn sam() -> KeyPair {
    KeyPair::from_secret_bytes(KeyType::Secp256k1, &[0x5A; 32])
        .expect("0x5a5a.. is a valid secp256k1 scalar")
}

/// A command path from a literal.
pub fn cmd(path: &str) -> Command {
    Command::parse(path).expect("test paths are well formed")
}

/// Command paths from literals.
pub fn cmds(paths: &[&str]) -> Vec<Command> {
    paths.iter().map(|p| cmd(p)).collect()
}

/// A spec granting `paths` (no topics, no expiry).
pub fn spec(paths: &[&str]) -> Spec {
    Spec { commands: cmds(paths), ..Spec::default() }
}

/// A spec granting `paths` and broadcast `topics`.
pub fn spec_topics(paths: &[&str], topics: &[&str]) -> Spec {
    Spec { commands: cmds(paths), topics: cmds(topics), ..Spec::default() }
}

/// The "user" context of `key`, trusting only itself.
pub fn context(key: &KeyPair) -> CapContext {
    CapContext::new("user", key.did())
}

/// A context of `key` holding `chain` as a provide anchor (checked at [`NOW`]).
pub fn holding(key: &KeyPair, chain: &Chain, verifier: &Verifier) -> CapContext {
    let mut ctx = context(key);
    ctx.add_provide(chain.clone(), verifier, NOW).expect("the chain is valid and addressed to key");
    ctx
}

/// A root grant from `issuer`'s context to `audience`.
pub fn grant(issuer: &KeyPair, audience: &KeyPair, spec: &Spec) -> Chain {
    context(issuer).grant(issuer, audience.did(), spec).expect("grant")
}

/// `chain` (addressed to `holder`) delegated on to `audience` through
/// [`CapContext::delegate`].
pub fn delegate(
    holder: &KeyPair,
    chain: &Chain,
    audience: &KeyPair,
    spec: &Spec,
    verifier: &Verifier,
) -> Chain {
    holding(holder, chain, verifier)
        .delegate(holder, audience.did(), spec, verifier, NOW)
        .expect("delegate")
}

/// alice → bob → carol → dave, each link granting `paths`.
pub fn three_links(paths: &[&str], verifier: &Verifier) -> Chain {
    let (alice, bob, carol, dave) = (alice(), bob(), carol(), dave());
    let ab = grant(&alice, &bob, &spec(paths));
    let abc = delegate(&bob, &ab, &carol, &spec(paths), verifier);
    delegate(&carol, &abc, &dave, &spec(paths), verifier)
}

/// A delegation payload from `issuer` to `audience` granting `paths`, citing `parent`.
pub fn payload(
    issuer: &KeyPair,
    audience: &Did,
    paths: &[&str],
    parent: Option<&Token>,
) -> Payload {
    let mut p = Payload::new(Kind::Delegation, issuer.did(), audience.clone());
    p.cmd = cmds(paths);
    p.prf = parent.map(Token::cid);
    p
}

/// Signs a delegation built by [`payload`] then adjusted by `tweak`, bypassing every
/// check a context would make.
pub fn raw(
    issuer: &KeyPair,
    audience: &Did,
    paths: &[&str],
    parent: Option<&Token>,
    tweak: impl FnOnce(&mut Payload),
) -> Token {
    let mut p = payload(issuer, audience, paths, parent);
    tweak(&mut p);
    Token::sign(p, issuer).expect("issuer signs its own payload")
}

/// `chain` extended by a raw link from `issuer` to `audience` citing the current leaf.
pub fn extend_raw(
    chain: &Chain,
    issuer: &KeyPair,
    audience: &Did,
    paths: &[&str],
    tweak: impl FnOnce(&mut Payload),
) -> Chain {
    chain.extended(raw(issuer, audience, paths, chain.leaf(), tweak))
}

/// Wire bytes of `payload` carrying `signature`, exactly as [`Token::sign`] lays them out.
pub fn wire(signature: &[u8], payload: &Payload) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(&(serde_bytes::Bytes::new(signature), payload))
        .expect("payload encodes")
}

/// The signature and payload inside a token's wire bytes.
pub fn unwire(token: &Token) -> (Vec<u8>, Payload) {
    let (sig, payload): (serde_bytes::ByteBuf, Payload) =
        serde_ipld_dagcbor::from_slice(token.bytes()).expect("token bytes decode");
    (sig.into_vec(), payload)
}

/// A token claiming `payload` (whatever its issuer) but signed by `signer`: a forgery
/// that [`Token::sign`] would refuse to make.
pub fn forge(payload: &Payload, signer: &KeyPair) -> Token {
    let payload_bytes = serde_ipld_dagcbor::to_vec(payload).expect("payload encodes");
    let mut input = SIGNING_DOMAIN.to_vec();
    input.extend_from_slice(&payload_bytes);
    let signature = signer.sign(&input).into_bytes();
    Token::decode(&wire(&signature, payload), usize::MAX).expect("forged bytes are canonical")
}

/// `token` with its payload changed by `tweak` but its original signature kept.
pub fn tamper(token: &Token, tweak: impl FnOnce(&mut Payload)) -> Token {
    let (signature, mut payload) = unwire(token);
    tweak(&mut payload);
    Token::decode(&wire(&signature, &payload), usize::MAX).expect("tampered bytes are canonical")
}

/// A request by `invoker` to run `behavior` on `subject` with `chain`.
pub fn request<'a>(
    invoker: &'a Did,
    subject: &'a Did,
    behavior: &'a Command,
    chain: &'a Chain,
) -> Request<'a> {
    Request { invoker, subject, behavior, topic: None, args: None, chain }
}

/// Authorizes `invoker` running `behavior` on `ctx`'s identity with `chain` at [`NOW`].
pub fn authorize(
    ctx: &CapContext,
    verifier: &Verifier,
    invoker: &KeyPair,
    behavior: &str,
    chain: &Chain,
) -> Result<Authorization, Denial> {
    authorize_at(ctx, verifier, invoker, behavior, chain, NOW)
}

/// As [`authorize`], at `now`.
pub fn authorize_at(
    ctx: &CapContext,
    verifier: &Verifier,
    invoker: &KeyPair,
    behavior: &str,
    chain: &Chain,
    now: u64,
) -> Result<Authorization, Denial> {
    let (invoker, behavior) = (invoker.did(), cmd(behavior));
    ctx.authorize(verifier, request(&invoker, &ctx.did, &behavior, chain), now)
}

/// As [`authorize`], with invocation arguments.
pub fn authorize_args(
    ctx: &CapContext,
    verifier: &Verifier,
    invoker: &KeyPair,
    behavior: &str,
    chain: &Chain,
    args: &Value,
) -> Result<Authorization, Denial> {
    let (invoker, behavior) = (invoker.did(), cmd(behavior));
    let req = Request { args: Some(args), ..request(&invoker, &ctx.did, &behavior, chain) };
    ctx.authorize(verifier, req, NOW)
}

/// Verifies `chain` at [`NOW`] without the cache.
pub fn verify(chain: &Chain) -> Result<Verified, Denial> {
    Verifier::default().verify_uncached(chain, NOW)
}

/// The reason and failing link of a verification that must fail.
pub fn denial_of(result: Result<Verified, Denial>) -> Denial {
    result.expect_err("the chain must be refused")
}

/// An invocation of `behavior` by `invoker` on `subject`, citing `chain`'s leaf.
pub fn invocation(
    invoker: &KeyPair,
    subject: &Did,
    behavior: &str,
    chain: &Chain,
    args: Option<Value>,
) -> Token {
    let mut p = Payload::new(Kind::Invocation, invoker.did(), subject.clone());
    p.cmd = vec![cmd(behavior)];
    p.prf = chain.leaf().map(Token::cid);
    p.args = args;
    Token::sign(p, invoker).expect("invoker signs its own invocation")
}

/// Asserts that `result` is a denial at `link` whose reason matches `pattern`, and
/// returns the denial.
#[allow(unused_macros)]
macro_rules! assert_denied {
    ($result:expr, $link:expr, $pattern:pat $(if $guard:expr)?) => {{
        let denial: dms_ucan::Denial = match $result {
            Ok(ok) => panic!("expected a denial, got {ok:?}"),
            Err(denial) => denial,
        };
        assert!(
            matches!(denial.reason, $pattern $(if $guard)?),
            "unexpected reason: {denial} ({:?})",
            denial.reason
        );
        assert_eq!(denial.link, $link, "failing link of {denial}");
        denial
    }};
}
