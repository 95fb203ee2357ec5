//! `dms-ucan`: tokens, delegation chains in bytes (carried by envelopes) and in their
//! `dmscap1.` text form (in protocol messages, the API and the CLI), and what a node
//! does with a chain it decoded: verify it, authorize with it, anchor it, import it as
//! a revocation.

use arbtest::arbitrary::{Result, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dms_ucan::chain::TEXT_PREFIX;
use dms_ucan::token::DEFAULT_MAX_TOKEN_BYTES;
use dms_ucan::{Chain, Command, Kind, Limits, Request, Token};
use serde_json::Value;

use crate::Target;
use crate::fixtures::{self, NOW};

/// [`Token::decode`] with the default size limit, as [`Chain::from_bytes`] calls it.
pub const TOKEN: Target = Target {
    name: "token",
    check: token,
    generate: Some(generate_token),
    dictionary: &["dlg", "inv", "rev", "iss", "aud", "cmd", "pol", "args", "prf", "/dms"],
};

/// [`Chain::from_bytes`] and [`Chain::from_text`] with the default limits.
pub const CHAIN: Target = Target {
    name: "chain",
    check: chain,
    generate: Some(generate_chain),
    dictionary: &["dmscap1.", "dlg", "inv", "rev", "prf", "exp", "nbf", "depth", "/dms"],
};

/// Decodes; an accepted token keeps its exact bytes, decodes again from them to the
/// same payload and content id, and its signature check and policies never panic.
pub fn token(bytes: &[u8]) -> bool {
    let Ok(token) = Token::decode(bytes, DEFAULT_MAX_TOKEN_BYTES) else { return false };
    assert_eq!(token.bytes(), bytes, "a decoded token keeps its canonical bytes");
    let again =
        Token::decode(token.bytes(), DEFAULT_MAX_TOKEN_BYTES).expect("a token's bytes decode");
    assert_eq!(again.payload(), token.payload(), "decode(bytes(token)) == token");
    assert_eq!(again.cid(), token.cid());
    let cid: cid::Cid = token.cid().to_string().parse().expect("a content id parses back");
    assert_eq!(cid, token.cid());
    let _ = token.verify_signature();
    let _ = token.valid_now();
    let args = token.payload().args.clone().unwrap_or(Value::Null);
    for predicate in &token.payload().pol {
        let _ = predicate.holds(&args);
        let _ = predicate.holds(&Value::Null);
    }
    true
}

/// A signed token with a random payload, issued by a named identity.
pub fn generate_token(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let chain = fixtures::chain(u)?;
    let token = u.choose(chain.tokens())?;
    Ok(token.bytes().to_vec())
}

/// Decodes the bytes as a chain, and as text (the bytes themselves, and the bytes
/// behind the `dmscap1.` prefix); what decodes goes through [`exercise`].
pub fn chain(bytes: &[u8]) -> bool {
    let limits = Limits::default();
    let from_bytes = Chain::from_bytes(bytes, limits);
    let text = String::from_utf8_lossy(bytes);
    let from_text = Chain::from_text(&text, limits);
    let wrapped = format!("{TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let from_wrapped = Chain::from_text(&wrapped, limits);
    assert_eq!(
        from_wrapped.as_ref().ok(),
        from_bytes.as_ref().ok(),
        "the text form decodes exactly when the bytes do"
    );
    let mut accepted = false;
    for chain in [from_bytes, from_text].into_iter().flatten() {
        exercise(&chain);
        accepted = true;
    }
    accepted
}

/// Round trips (bytes, text, JSON string), then what a node does with a chain: verify,
/// authorize a request with it, authorize its leaf as an invocation, anchor it, import
/// it as a revocation. Nothing may panic.
pub fn exercise(chain: &Chain) {
    let limits = Limits::default();
    let bytes = Chain::from_bytes(&chain.to_bytes(), limits).expect("a chain's bytes decode");
    assert_eq!(&bytes, chain, "from_bytes(to_bytes(chain)) == chain");
    let text = Chain::from_text(&chain.to_text(), limits).expect("a chain's text decodes");
    assert_eq!(&text, chain, "from_text(to_text(chain)) == chain");
    let json = serde_json::to_string(chain).expect("a chain serializes");
    let back: Chain = serde_json::from_str(&json).expect("a chain's JSON string decodes");
    assert_eq!(&back, chain, "chains survive JSON");

    let (context, verifier) = fixtures::context();
    let _ = verifier.verify_uncached(chain, NOW);
    let _ = verifier.verify(chain, NOW);
    authorize(chain);
    if let Some((leaf, proof)) = chain.tokens().split_last() {
        let proof = Chain::new(proof.to_vec());
        let _ = context.authorize_invocation(verifier, leaf, &proof, NOW);
    }
    let mut changed = context.clone();
    let _ = changed.add_require(chain.clone(), verifier, NOW);
    let _ = changed.add_provide(chain.clone(), verifier, NOW);
    let _ = changed.import_revocation(chain.clone(), verifier);
    let behavior = fixtures::cmd("/dms/node/peers/list");
    let _ = changed.chain_for(verifier, &behavior, &fixtures::node().did(), NOW);
}

/// Authorizes, on the node's context, the request the chain's leaf suggests: its
/// audience invoking its first command (or `/dms/node`) with its arguments.
fn authorize(chain: &Chain) {
    let (context, verifier) = fixtures::context();
    let Some(leaf) = chain.leaf() else { return };
    let p = leaf.payload();
    let behavior = p.cmd.first().cloned().unwrap_or_else(|| fixtures::cmd("/dms/node"));
    let subject = p.sub.clone().unwrap_or_else(|| fixtures::node().did());
    let topic: Option<&Command> = p.topics.first();
    let request = Request {
        invoker: &p.aud,
        subject: &subject,
        behavior: &behavior,
        topic,
        args: p.args.as_ref(),
        chain,
    };
    let _ = context.authorize(verifier, request, NOW);
}

/// A random chain: linked or not, every kind of token, signed by the named identities.
pub fn generate_chain(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let chain = fixtures::chain(u)?;
    Ok(if u.ratio(1u8, 4)? { chain.to_text().into_bytes() } else { chain.to_bytes() })
}

/// Seeds: a root delegation, a two-link chain, a chain admitted by the require anchor,
/// an invocation with its proof, and a revocation (bytes and text forms).
pub fn seeds() -> Vec<(&'static str, Chain)> {
    let (alice, bob, dave, node) =
        (fixtures::alice(), fixtures::bob(), fixtures::dave(), fixtures::node());
    let root = fixtures::token(Kind::Delegation, alice, &bob.did(), &["/dms/node"], None);
    let link =
        fixtures::token(Kind::Delegation, bob, &dave.did(), &["/dms/node/peers"], Some(root.cid()));
    let admitted = fixtures::token(Kind::Delegation, dave, &bob.did(), &["/dms/node"], None);
    let invocation = fixtures::token(
        Kind::Invocation,
        bob,
        &node.did(),
        &["/dms/node/peers/list"],
        Some(root.cid()),
    );
    let mut revocation = dms_ucan::Payload::new(Kind::Revocation, alice.did(), alice.did());
    revocation.nonce = vec![7; 16];
    revocation.rev = Some(link.cid());
    let revocation = Token::sign(revocation, alice).expect("alice signs");
    vec![
        ("root", Chain::new(vec![root.clone()])),
        ("two-links", Chain::new(vec![root.clone(), link])),
        ("admitted", Chain::new(vec![admitted])),
        ("invocation", Chain::new(vec![root, invocation])),
        ("revocation", Chain::new(vec![revocation])),
    ]
}
