//! Named deterministic identities, the time the targets judge validity at, the
//! capability context of the node under test, and random values built from arbtest
//! randomness (JSON, policies, command paths, token payloads).
//!
//! Everything here is deterministic: keys come from fixed secrets, and token nonces
//! are drawn from the randomness, so a seed always builds the same bytes.

use std::sync::OnceLock;

use arbtest::arbitrary::{Result, Unstructured};
use cid::Cid;
use dms_crypto::{Did, KeyPair, KeyType};
use dms_ucan::{CapContext, Chain, Command, Kind, Payload, Predicate, Token, Verifier};
use serde_json::{Map, Value};

/// "Now" for capability checks (Unix seconds, November 2023): seeds stay valid forever.
pub const NOW: u64 = 1_700_000_000;

/// Command paths and topics used by generated tokens and envelopes.
pub const COMMANDS: &[&str] = &[
    "/",
    "/dms",
    "/dms/node",
    "/dms/node/peers/list",
    "/dms/deployment/request",
    "/dms/cap/anchor",
    "/public",
    "/public/hello",
    "/broadcast/hello",
    "/dms/actor/reply/7",
];

/// The named identities, in this order: alice (the usual root), bob, carol, dave (the
/// audience of the node's require anchor), mallory (trusted by nobody), sam
/// (secp256k1), node (the identity under test).
pub fn keys() -> &'static [KeyPair] {
    static KEYS: OnceLock<Vec<KeyPair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed = |seed: u8| {
            KeyPair::from_secret_bytes(KeyType::Ed25519, &[seed; 32])
                .expect("any 32 bytes are an Ed25519 secret")
        };
        let sam = KeyPair::from_secret_bytes(KeyType::Secp256k1, &[0x5A; 32])
            .expect("0x5a5a… is a valid secp256k1 scalar");
        vec![ed(0xA1), ed(0xB0), ed(0xCA), ed(0xDA), ed(0x66), sam, ed(0x0D)]
    })
}

/// Alice: trusted as a root by the node.
pub fn alice() -> &'static KeyPair {
    &keys()[0]
}

/// Bob: alice's usual delegate.
pub fn bob() -> &'static KeyPair {
    &keys()[1]
}

/// Dave: admitted by the node's require anchor (alice grants him `/dms`).
pub fn dave() -> &'static KeyPair {
    &keys()[3]
}

/// The node under test: the subject of requests, the owner of the context.
pub fn node() -> &'static KeyPair {
    &keys()[6]
}

/// A command path from a literal.
pub fn cmd(path: &str) -> Command {
    Command::parse(path).expect("fixture paths are well formed")
}

/// A signed token with a fixed nonce: `iss` grants (or invokes) `cmds` to `aud`.
pub fn token(kind: Kind, iss: &KeyPair, aud: &Did, cmds: &[&str], prf: Option<Cid>) -> Token {
    let mut payload = Payload::new(kind, iss.did(), aud.clone());
    payload.nonce = vec![0x42; 16];
    payload.cmd = cmds.iter().map(|c| cmd(c)).collect();
    payload.prf = prf;
    Token::sign(payload, iss).expect("the issuer's own key signs")
}

/// The node's capability context (roots: alice; a require anchor admitting dave for
/// `/dms`; a provide anchor from alice) and a verifier.
pub fn context() -> &'static (CapContext, Verifier) {
    static CONTEXT: OnceLock<(CapContext, Verifier)> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let verifier = Verifier::default();
        let mut context = CapContext::new("dms", node().did());
        context.add_root(alice().did());
        let require = token(Kind::Delegation, alice(), &dave().did(), &["/dms"], None);
        context.add_require(Chain::new(vec![require]), &verifier, NOW).expect("alice is a root");
        let provide = token(Kind::Delegation, alice(), &node().did(), &["/dms"], None);
        context.add_provide(Chain::new(vec![provide]), &verifier, NOW).expect("for the node");
        (context, verifier)
    })
}

/// Up to `max` random bytes.
pub fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?.min(u.len());
    Ok(u.bytes(len)?.to_vec())
}

/// A random DID of one of the named identities.
pub fn did(u: &mut Unstructured<'_>) -> Result<Did> {
    Ok(u.choose(keys())?.did())
}

/// A random valid command path: a known one, or one built from random segments.
pub fn command(u: &mut Unstructured<'_>) -> Result<Command> {
    if u.ratio(3u8, 4)? {
        return Ok(cmd(u.choose(COMMANDS)?));
    }
    let mut path = String::new();
    for _ in 0..u.int_in_range(1..=4)? {
        path.push('/');
        for _ in 0..u.int_in_range(1..=6)? {
            path.push(char::from(u.int_in_range(b'!'..=b'~')?).to_ascii_lowercase());
        }
    }
    Ok(Command::parse(&path.replace("//", "/x/")).unwrap_or_else(|_| Command::root()))
}

/// A random JSON value nested at most `depth` deep.
pub fn json(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=kinds - 1)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 if u.arbitrary()? => Value::from(u.arbitrary::<i64>()?),
        2 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        3 => Value::String(u.arbitrary()?),
        4 => Value::Array(
            (0..u.int_in_range(0..=3)?).map(|_| json(u, depth - 1)).collect::<Result<_>>()?,
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                let key = u.choose(&["a", "b", "list", "name", ""])?.to_string();
                map.insert(key, json(u, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}

/// A random policy predicate nested at most `depth` deep (selectors valid or not).
pub fn predicate(u: &mut Unstructured<'_>, depth: u32) -> Result<Predicate> {
    const SELECTORS: &[&str] =
        &[".", ".a", ".a.b", ".list[0]", ".list[9]", ".a[", "a", "..", ".[x]"];
    let selector = |u: &mut Unstructured<'_>| -> Result<String> {
        if u.ratio(7u8, 8)? { Ok(u.choose(SELECTORS)?.to_string()) } else { u.arbitrary() }
    };
    let number = |u: &mut Unstructured<'_>| -> Result<f64> {
        let n: f64 = u.arbitrary()?;
        Ok(if n.is_finite() { n } else { 0.0 })
    };
    let leaves = if depth == 0 { 7 } else { 10 };
    Ok(match u.int_in_range(0..=leaves - 1)? {
        0 => Predicate::Eq(selector(u)?, json(u, 1)?),
        1 => Predicate::Ne(selector(u)?, json(u, 1)?),
        2 => Predicate::Lt(selector(u)?, number(u)?),
        3 => Predicate::Le(selector(u)?, number(u)?),
        4 => Predicate::Gt(selector(u)?, number(u)?),
        5 => Predicate::Ge(selector(u)?, number(u)?),
        6 => Predicate::Like(selector(u)?, u.choose(&["*", "a*b", "*x*", "", "**"])?.to_string()),
        7 => Predicate::Not(Box::new(predicate(u, depth - 1)?)),
        8 => Predicate::And(
            (0..u.int_in_range(0..=3)?).map(|_| predicate(u, depth - 1)).collect::<Result<_>>()?,
        ),
        _ => Predicate::Or(
            (0..u.int_in_range(0..=3)?).map(|_| predicate(u, depth - 1)).collect::<Result<_>>()?,
        ),
    })
}

/// A random time: unset, near [`NOW`], or anything.
fn time(u: &mut Unstructured<'_>) -> Result<Option<u64>> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => None,
        1 => Some(NOW.saturating_add_signed(u.int_in_range(-100_000i64..=100_000)?)),
        2 => Some(NOW.saturating_add(u.int_in_range(0..=10_000_000)?)),
        _ => Some(u.arbitrary()?),
    })
}

/// A random payload issued by `iss`, citing `prf`.
pub fn payload(u: &mut Unstructured<'_>, iss: &KeyPair, prf: Option<Cid>) -> Result<Payload> {
    let kind =
        *u.choose(&[Kind::Delegation, Kind::Delegation, Kind::Invocation, Kind::Revocation])?;
    let mut p = Payload::new(kind, iss.did(), did(u)?);
    p.nonce = bytes(u, 16)?;
    p.sub = if u.ratio(1u8, 4)? { Some(did(u)?) } else { None };
    p.cmd = (0..u.int_in_range(0..=3)?).map(|_| command(u)).collect::<Result<_>>()?;
    p.topics = (0..u.int_in_range(0..=2)?).map(|_| command(u)).collect::<Result<_>>()?;
    if u.ratio(1u8, 4)? {
        p.pol = (0..u.int_in_range(1..=3)?).map(|_| predicate(u, 3)).collect::<Result<_>>()?;
    }
    if u.ratio(1u8, 32)? {
        // Around the decoder's nesting limit (256) and the evaluator's (16).
        let mut deep = predicate(u, 0)?;
        for _ in 0..u.int_in_range(0..=300)? {
            deep = Predicate::Not(Box::new(deep));
        }
        p.pol.push(deep);
    }
    p.args = if u.ratio(1u8, 4)? { Some(json(u, 3)?) } else { None };
    p.nbf = time(u)?;
    p.exp = time(u)?;
    p.depth = if u.ratio(1u8, 3)? { Some(u.int_in_range(0..=20)?) } else { None };
    p.prf = if u.ratio(1u8, 8)? { None } else { prf };
    Ok(p)
}

/// A random chain of one to four tokens signed by the named identities, linked to
/// each other most of the time (root issuer: alice, dave, or anyone).
pub fn chain(u: &mut Unstructured<'_>) -> Result<Chain> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut issuer: usize = *u.choose(&[0, 0, 3, 1, 4, 5])?;
    for _ in 0..u.int_in_range(1..=4)? {
        let key = &keys()[issuer];
        let mut p = payload(u, key, tokens.last().map(Token::cid))?;
        if p.typ == Kind::Revocation {
            p.rev = tokens.last().map(Token::cid);
        }
        let next = u.choose_index(keys().len())?;
        if u.ratio(3u8, 4)? {
            p.aud = keys()[next].did();
        }
        tokens.push(Token::sign(p, key).expect("signed by the issuer's own key"));
        issuer = next;
    }
    Ok(Chain::new(tokens))
}
