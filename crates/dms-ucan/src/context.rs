//! Capability contexts: what one identity trusts, holds and has revoked.
//!
//! - `roots`: DIDs trusted fully (the context's own DID always is).
//! - `require`: chains that admit other issuers for some capabilities: a chain whose
//!   root issuer is the audience of a require anchor is accepted for what the anchor
//!   grants.
//! - `provide`: chains delegated *to* this identity, presented when invoking others and
//!   delegated from.
//! - `revoked`: revocations; one counts when its author is the revoked token's issuer
//!   or anyone upstream of it in the chain, or a root of this context.

use std::collections::BTreeSet;

use cid::Cid;
use dms_crypto::{Did, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::chain::Chain;
use crate::command::{Command, normalize};
use crate::error::{Denial, Reason};
use crate::policy::Predicate;
use crate::token::{Kind, Payload, Token};
use crate::verify::{Verified, Verifier};

/// Most revocations one context keeps (anyone may sign a revocation; this bounds what
/// they can make a context store).
pub const MAX_REVOCATIONS: usize = 10_000;

/// A revocation known to a context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Content id of the revoked token.
    pub cid: String,
    /// Who revoked it.
    pub by: Did,
    /// The signed revocation token (text form), to pass on.
    pub token: Chain,
}

/// What a grant or delegation gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spec {
    /// Command paths.
    pub commands: Vec<Command>,
    /// Broadcast topics.
    pub topics: Vec<Command>,
    /// Not valid before (Unix seconds).
    pub not_before: Option<u64>,
    /// Expiry (Unix seconds); `None` never expires.
    pub expires: Option<u64>,
    /// Further delegations allowed.
    pub depth: Option<u32>,
    /// Subject the grant is bound to.
    pub subject: Option<Did>,
    /// Policies on invocation arguments.
    pub policies: Vec<Predicate>,
}

/// A request to run `behavior` on `subject`, presented by `invoker` with `chain`.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Who asks (the verified sender).
    pub invoker: &'a Did,
    /// Whose behavior is invoked.
    pub subject: &'a Did,
    /// The behavior.
    pub behavior: &'a Command,
    /// The broadcast topic, for broadcasts.
    pub topic: Option<&'a Command>,
    /// The arguments, for policies.
    pub args: Option<&'a Value>,
    /// The proof.
    pub chain: &'a Chain,
}

/// Why a request was allowed.
#[derive(Clone, Debug, PartialEq)]
pub enum Authorization {
    /// The invoker is this identity or one of its roots.
    Root,
    /// A chain from a root allowed it.
    Chain,
    /// A chain admitted by the require anchor with this content id allowed it.
    Required(String),
}

/// One identity's capability context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapContext {
    /// Context name (`user`, `dms`, an organisation).
    pub name: String,
    /// The identity's DID.
    pub did: Did,
    /// Fully trusted DIDs.
    pub roots: BTreeSet<Did>,
    /// Anchors admitting other issuers.
    pub require: Vec<Chain>,
    /// Chains delegated to this identity.
    pub provide: Vec<Chain>,
    /// Known revocations.
    pub revoked: Vec<Revocation>,
    /// Bumped on every change, for optimistic concurrency when saving.
    pub version: u64,
}

fn leaf_cid(chain: &Chain) -> String {
    chain.leaf().map(|t| t.cid().to_string()).unwrap_or_default()
}

impl CapContext {
    /// An empty context for `did`.
    pub fn new(name: impl Into<String>, did: Did) -> CapContext {
        CapContext {
            name: name.into(),
            did,
            roots: BTreeSet::new(),
            require: Vec::new(),
            provide: Vec::new(),
            revoked: Vec::new(),
            version: 0,
        }
    }

    fn trusted(&self, did: &Did) -> bool {
        *did == self.did || self.roots.contains(did)
    }

    fn check_key(&self, key: &KeyPair) -> Result<(), Error> {
        if key.did() == self.did {
            Ok(())
        } else {
            Err(Error::Context(format!(
                "context '{}' belongs to {}, but the key given is {}",
                self.name,
                self.did,
                key.did()
            )))
        }
    }

    /// Trusts `did` fully.
    pub fn add_root(&mut self, did: Did) -> bool {
        let added = self.roots.insert(did);
        self.version += u64::from(added);
        added
    }

    /// Adds a require anchor; it must verify now and come from a root of this context.
    pub fn add_require(
        &mut self,
        chain: Chain,
        verifier: &Verifier,
        now: u64,
    ) -> Result<(), Error> {
        let verified =
            verifier.verify_uncached(&chain, now).map_err(|d| Error::Context(d.to_string()))?;
        if !self.trusted(verified.root_issuer()) {
            return Err(Error::Context(format!(
                "a require anchor must be issued by a root of context '{}'; {} is not one \
                 (add it with --root first)",
                self.name,
                verified.root_issuer()
            )));
        }
        self.push_unique(chain, true);
        Ok(())
    }

    /// Adds a provide anchor; it must verify now and be addressed to this identity.
    pub fn add_provide(
        &mut self,
        chain: Chain,
        verifier: &Verifier,
        now: u64,
    ) -> Result<(), Error> {
        let verified =
            verifier.verify_uncached(&chain, now).map_err(|d| Error::Context(d.to_string()))?;
        if verified.audience != self.did {
            return Err(Error::Context(format!(
                "this token is for {}, not for context '{}' ({})",
                verified.audience, self.name, self.did
            )));
        }
        self.push_unique(chain, false);
        Ok(())
    }

    fn push_unique(&mut self, chain: Chain, require: bool) {
        let list = if require { &mut self.require } else { &mut self.provide };
        if !list.iter().any(|c| c.leaf() == chain.leaf()) {
            list.push(chain);
            self.version += 1;
        }
    }

    /// Removes a root DID or an anchor (by its leaf content id). Returns whether
    /// anything was removed.
    pub fn remove(&mut self, what: &str) -> bool {
        let before = self.roots.len() + self.require.len() + self.provide.len();
        self.roots.retain(|d| d.as_str() != what);
        self.require.retain(|c| leaf_cid(c) != what);
        self.provide.retain(|c| leaf_cid(c) != what);
        let removed = before != self.roots.len() + self.require.len() + self.provide.len();
        self.version += u64::from(removed);
        removed
    }

    fn payload(&self, audience: Did, spec: &Spec) -> Result<Payload, Error> {
        if spec.commands.is_empty() && spec.topics.is_empty() {
            return Err(Error::Context("a grant needs at least one --cap or --topic".into()));
        }
        let mut payload = Payload::new(Kind::Delegation, self.did.clone(), audience);
        payload.cmd = normalize(spec.commands.clone());
        payload.topics = normalize(spec.topics.clone());
        payload.nbf = spec.not_before;
        payload.exp = spec.expires;
        payload.depth = spec.depth;
        payload.sub = spec.subject.clone();
        payload.pol = spec.policies.clone();
        Ok(payload)
    }

    /// Issues a root delegation from this identity to `audience`.
    pub fn grant(&self, key: &KeyPair, audience: Did, spec: &Spec) -> Result<Chain, Error> {
        self.check_key(key)?;
        let token = Token::sign(self.payload(audience, spec)?, key)?;
        Ok(Chain::new(vec![token]))
    }

    /// Delegates part of a provide anchor to `audience`. The anchor used is the one
    /// that grants everything asked for and lasts longest; the new token must fit
    /// within it (commands, topics, time, depth).
    pub fn delegate(
        &self,
        key: &KeyPair,
        audience: Did,
        spec: &Spec,
        verifier: &Verifier,
        now: u64,
    ) -> Result<Chain, Error> {
        self.check_key(key)?;
        let mut payload = self.payload(audience, spec)?;
        let mut best: Option<(&Chain, std::sync::Arc<Verified>)> = None;
        for chain in &self.provide {
            let Ok(v) = verifier.verify(chain, now) else { continue };
            let grants = payload.cmd.iter().all(|c| c.is_implied_by_any(&v.commands))
                && payload.topics.iter().all(|t| t.is_implied_by_any(&v.topics));
            if grants && v.remaining_depth > 0 && self.revocation_of(&v).is_none() {
                let longer = best.as_ref().is_none_or(|(_, b)| {
                    v.expires.unwrap_or(u64::MAX) > b.expires.unwrap_or(u64::MAX)
                });
                if longer {
                    best = Some((chain, v));
                }
            }
        }
        let Some((anchor, verified)) = best else {
            return Err(Error::Context(format!(
                "no valid provide anchor in context '{}' grants {} with a delegation left; \
                 anchor one with `dms cap anchor --provide`",
                self.name,
                payload
                    .cmd
                    .iter()
                    .chain(&payload.topics)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if let (Some(max), requested) = (verified.expires, payload.exp) {
            match requested {
                Some(exp) if exp > max => {
                    return Err(Error::Context(format!(
                        "the requested expiry {exp} is after the anchor's expiry {max}: ask for less"
                    )));
                }
                Some(_) => {}
                None => payload.exp = Some(max),
            }
        }
        payload.nbf = payload.nbf.max(verified.not_before);
        if payload.sub.is_none() {
            payload.sub = verified.subject.clone();
        }
        let leaf = anchor.leaf().expect("verified chains are not empty");
        payload.prf = Some(leaf.cid());
        let token = Token::sign(payload, key)?;
        let chain = anchor.extended(token);
        verifier.verify_uncached(&chain, now).map_err(|d| Error::Context(d.to_string()))?;
        Ok(chain)
    }

    /// Revokes the token with content id `cid` (issued by this identity or below it)
    /// and returns the signed revocation to pass on.
    pub fn revoke(
        &mut self,
        key: &KeyPair,
        cid: &str,
        verifier: &Verifier,
    ) -> Result<Chain, Error> {
        self.check_key(key)?;
        let target: Cid = cid
            .parse()
            .map_err(|_| Error::Context(format!("{cid:?} is not a token content id")))?;
        let mut payload = Payload::new(Kind::Revocation, self.did.clone(), self.did.clone());
        payload.rev = Some(target);
        let token = Chain::new(vec![Token::sign(payload, key)?]);
        self.import_revocation(token.clone(), verifier)?;
        Ok(token)
    }

    /// Records a revocation issued elsewhere (checked: kind and signature).
    pub fn import_revocation(
        &mut self,
        token: Chain,
        verifier: &Verifier,
    ) -> Result<Revocation, Error> {
        let [rev] = token.tokens() else {
            return Err(Error::Context("a revocation is a single token".into()));
        };
        let p = rev.payload();
        let target = match (p.typ, p.rev) {
            (Kind::Revocation, Some(target)) => target,
            _ => return Err(Error::Context("this token is not a revocation".into())),
        };
        rev.verify_signature()?;
        let revocation =
            Revocation { cid: target.to_string(), by: p.iss.clone(), token: token.clone() };
        if !self.revoked.iter().any(|r| r.cid == revocation.cid && r.by == revocation.by) {
            if self.revoked.len() >= MAX_REVOCATIONS {
                return Err(Error::Context(format!(
                    "context '{}' already holds {MAX_REVOCATIONS} revocations; refusing more",
                    self.name
                )));
            }
            self.revoked.push(revocation.clone());
            self.version += 1;
        }
        verifier.invalidate(&target);
        Ok(revocation)
    }

    /// Whether a revocation issued by `did` can matter to this context: `did` is trusted
    /// here, or issued a link of one of its anchors. Revocations spread over gossip
    /// are kept only then, so that strangers cannot fill the bounded revocation set.
    /// (A revocation by an intermediate delegator of a chain presented later is not
    /// known in advance and is not kept; it must be imported where it matters.)
    pub fn cares_about(&self, did: &Did) -> bool {
        self.trusted(did)
            || self
                .require
                .iter()
                .chain(&self.provide)
                .any(|chain| chain.tokens().iter().any(|t| t.payload().iss == *did))
    }

    /// The first link of `verified` revoked by someone with authority over it.
    fn revocation_of(&self, verified: &Verified) -> Option<Denial> {
        for (i, cid) in verified.cids.iter().enumerate() {
            let cid_text = cid.to_string();
            for r in self.revoked.iter().filter(|r| r.cid == cid_text) {
                if verified.issuers[..=i].contains(&r.by) || self.trusted(&r.by) {
                    return Some(Denial::at(
                        i,
                        cid,
                        Reason::Revoked { cid: cid_text, by: r.by.to_string() },
                    ));
                }
            }
        }
        None
    }

    /// Decides whether `request` may run, at time `now`.
    pub fn authorize(
        &self,
        verifier: &Verifier,
        request: Request<'_>,
        now: u64,
    ) -> Result<Authorization, Denial> {
        // The subject is the authority over itself (UCAN): an actor with its own
        // identity obeys itself and the chains it roots.
        if self.trusted(request.invoker) || request.invoker == request.subject {
            return Ok(Authorization::Root);
        }
        if request.chain.is_empty() {
            return Err(Denial::whole(Reason::UntrustedRoot {
                issuer: request.invoker.to_string(),
            }));
        }
        let verified = verifier.verify(request.chain, now)?;
        if let Some(denial) = self.revocation_of(&verified) {
            return Err(denial);
        }
        if verified.audience != *request.invoker {
            return Err(Denial::whole(Reason::AudienceMismatch {
                expected: request.invoker.to_string(),
                found: verified.audience.to_string(),
            }));
        }
        if !request.behavior.is_implied_by_any(&verified.commands) {
            return Err(Denial::whole(Reason::NotGranted {
                what: format!("behavior {}", request.behavior),
            }));
        }
        if let Some(topic) = request.topic
            && !topic.is_implied_by_any(&verified.topics)
        {
            return Err(Denial::whole(Reason::NotGranted { what: format!("topic {topic}") }));
        }
        if verified.subject.as_ref().is_some_and(|s| s != request.subject) {
            return Err(Denial::whole(Reason::WrongSubject {
                expected: request.subject.to_string(),
            }));
        }
        let (authorization, extra_policies) =
            self.trust(verifier, request.chain, &verified, request.subject, now)?;
        let null = Value::Null;
        let args = request.args.unwrap_or(&null);
        for predicate in verified.policies.iter().chain(&extra_policies) {
            if !predicate.holds(args).unwrap_or(false) {
                let predicate = serde_json::to_string(predicate).unwrap_or_default();
                return Err(Denial::whole(Reason::PolicyViolated { predicate }));
            }
        }
        Ok(authorization)
    }

    /// Whether the chain's root is trusted, directly or through a require anchor.
    fn trust(
        &self,
        verifier: &Verifier,
        chain: &Chain,
        verified: &Verified,
        subject: &Did,
        now: u64,
    ) -> Result<(Authorization, Vec<Predicate>), Denial> {
        let root_issuer = verified.root_issuer();
        if self.trusted(root_issuer) || root_issuer == subject {
            return Ok((Authorization::Chain, Vec::new()));
        }
        let root = chain.root().expect("verified chains are not empty").payload();
        for anchor in &self.require {
            let Ok(a) = verifier.verify(anchor, now) else { continue };
            let admits = a.audience == *root_issuer
                && self.trusted(a.root_issuer())
                && self.revocation_of(&a).is_none()
                && root.cmd.iter().all(|c| c.is_implied_by_any(&a.commands))
                && root.topics.iter().all(|t| t.is_implied_by_any(&a.topics))
                && a.expires.is_none_or(|e| root.exp.is_some_and(|r| r <= e))
                && a.subject.as_ref().is_none_or(|s| verified.subject.as_ref() == Some(s))
                && a.remaining_depth as usize >= chain.len();
            if admits {
                return Ok((Authorization::Required(leaf_cid(anchor)), a.policies.clone()));
            }
        }
        Err(Denial::at(
            0,
            chain.root().map(Token::cid).map(|c| c.to_string()).unwrap_or_default(),
            Reason::UntrustedRoot { issuer: root_issuer.to_string() },
        ))
    }

    /// Checks an invocation token against its proof chain and authorizes it.
    pub fn authorize_invocation(
        &self,
        verifier: &Verifier,
        invocation: &Token,
        chain: &Chain,
        now: u64,
    ) -> Result<Authorization, Denial> {
        let deny = |reason| Denial::whole(reason);
        let p = invocation.payload();
        if p.typ != Kind::Invocation || p.cmd.len() != 1 {
            return Err(deny(Reason::WrongKind));
        }
        invocation.verify_signature().map_err(|_| deny(Reason::BadSignature))?;
        if let Some(exp) = p.exp.filter(|e| *e < now) {
            return Err(deny(Reason::Expired { exp, now }));
        }
        if let Some(nbf) = p.nbf.filter(|n| *n > now) {
            return Err(deny(Reason::NotYetValid { nbf, now }));
        }
        if p.prf != chain.leaf().map(Token::cid) {
            return Err(deny(Reason::BrokenProof));
        }
        if p.aud != self.did {
            // An invocation addressed to another node must not run here.
            return Err(deny(Reason::WrongSubject { expected: self.did.to_string() }));
        }
        self.authorize(
            verifier,
            Request {
                invoker: &p.iss,
                subject: &p.aud,
                behavior: &p.cmd[0],
                topic: None,
                args: p.args.as_ref(),
                chain,
            },
            now,
        )
    }

    /// The provide chain to present to run `behavior` on `subject`: valid now, not
    /// revoked, addressed to this identity; the longest-lasting one.
    pub fn chain_for(
        &self,
        verifier: &Verifier,
        behavior: &Command,
        subject: &Did,
        now: u64,
    ) -> Option<Chain> {
        self.chain_among(&self.provide, &self.did, verifier, behavior, subject, now)
    }

    /// Like [`CapContext::chain_for`], among `chains` held by `holder` (an actor with an
    /// identity of its own), judged against this context's revocations.
    pub fn chain_among(
        &self,
        chains: &[Chain],
        holder: &Did,
        verifier: &Verifier,
        behavior: &Command,
        subject: &Did,
        now: u64,
    ) -> Option<Chain> {
        chains
            .iter()
            .filter_map(|chain| verifier.verify(chain, now).ok().map(|v| (chain, v)))
            .filter(|(_, v)| {
                v.audience == *holder
                    && behavior.is_implied_by_any(&v.commands)
                    && v.subject.as_ref().is_none_or(|s| s == subject)
                    && self.revocation_of(v).is_none()
            })
            .max_by_key(|(_, v)| v.expires.unwrap_or(u64::MAX))
            .map(|(chain, _)| chain.clone())
    }
}
