//! Chain verification, with a cache of verified chains keyed by the leaf's content id.
//!
//! A leaf's content id pins its parent's (through `prf`), and so on to the root, so the
//! leaf id identifies the whole chain: a cache hit needs no signature checks, only the
//! time bounds. Entries leave the cache when a token in them is revoked
//! ([`Verifier::invalidate`]), when they are found expired, or by LRU eviction.
//!
//! Verification here is about the chain itself: signatures, kinds, proof links,
//! principal alignment, time bounds (each link within its parent, and now), attenuation
//! of commands, topics and subject, and delegation depth. Trust (whose root is accepted)
//! and revocation are decided by the capability context ([`crate::context`]).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cid::Cid;
use dms_crypto::Did;
use lru::LruCache;

use crate::chain::{Chain, Limits};
use crate::command::Command;
use crate::error::{Denial, Reason};
use crate::policy::Predicate;
use crate::token::{Kind, Token};

/// Verifier settings.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Size and length limits.
    pub limits: Limits,
    /// Verified chains kept.
    pub cache_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { limits: Limits::default(), cache_capacity: 4096 }
    }
}

/// What a verified chain grants, and what it rests on.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// Content ids, root first.
    pub cids: Vec<Cid>,
    /// Issuers, root first.
    pub issuers: Vec<Did>,
    /// The leaf's audience: the principal the chain is for.
    pub audience: Did,
    /// The subject, if the chain is bound to one.
    pub subject: Option<Did>,
    /// Commands the leaf grants.
    pub commands: Vec<Command>,
    /// Topics the leaf grants.
    pub topics: Vec<Command>,
    /// Every policy along the chain (all must hold).
    pub policies: Vec<Predicate>,
    /// Latest not-before along the chain.
    pub not_before: Option<u64>,
    /// Earliest expiry along the chain.
    pub expires: Option<u64>,
    /// Further delegations the leaf allows.
    pub remaining_depth: u32,
}

impl Verified {
    /// The root issuer.
    pub fn root_issuer(&self) -> &Did {
        &self.issuers[0]
    }

    /// Whether `at` is within the chain's validity.
    pub fn valid_at(&self, at: u64) -> bool {
        self.not_before.is_none_or(|n| n <= at) && self.expires.is_none_or(|e| at <= e)
    }
}

/// Verifies chains; shareable across threads.
pub struct Verifier {
    config: Config,
    cache: Mutex<LruCache<Cid, Arc<Verified>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new(Config::default())
    }
}

/// Child validity must lie within the parent's.
fn within_parent(child: &crate::token::Payload, parent: &crate::token::Payload) -> bool {
    let starts_ok = match parent.nbf {
        None => true,
        Some(p) => child.nbf.is_some_and(|c| c >= p),
    };
    let ends_ok = match parent.exp {
        None => true,
        Some(p) => child.exp.is_some_and(|c| c <= p),
    };
    starts_ok && ends_ok
}

impl Verifier {
    /// A verifier with `config`.
    pub fn new(config: Config) -> Verifier {
        let capacity =
            NonZeroUsize::new(config.cache_capacity.max(1)).expect("capacity is at least 1");
        Verifier {
            config,
            cache: Mutex::new(LruCache::new(capacity)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The limits used to decode presented chains.
    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// Verifies `chain` at time `now`, from the cache when possible.
    pub fn verify(&self, chain: &Chain, now: u64) -> Result<Arc<Verified>, Denial> {
        let Some(leaf) = chain.leaf() else {
            return Err(Denial::whole(Reason::Malformed("empty chain".into())));
        };
        let key = leaf.cid();
        let cached = self.cache.lock().ok().and_then(|mut cache| cache.get(&key).cloned());
        if let Some(verified) = cached {
            // The leaf pins its ancestors, but the presented chain may carry other ones
            // (callers read the root's payload from it): only the very chain verified is
            // a hit. Anything else is verified in full, and fails (a different ancestry
            // cannot match the leaf's proof).
            let same_chain = verified.cids.len() == chain.len()
                && verified.cids.iter().zip(chain.tokens()).all(|(cid, token)| *cid == token.cid());
            if same_chain {
                if verified.valid_at(now) {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(verified);
                }
                if let Ok(mut cache) = self.cache.lock() {
                    cache.pop(&key);
                }
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let verified = Arc::new(self.verify_uncached(chain, now)?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(key, verified.clone());
        }
        Ok(verified)
    }

    /// Verifies `chain` at `now` without touching the cache.
    pub fn verify_uncached(&self, chain: &Chain, now: u64) -> Result<Verified, Denial> {
        let tokens = chain.tokens();
        if tokens.is_empty() {
            return Err(Denial::whole(Reason::Malformed("empty chain".into())));
        }
        let max = self.config.limits.max_chain_len;
        if tokens.len() > max {
            return Err(Denial::whole(Reason::ChainTooLong { len: tokens.len(), max }));
        }
        let mut remaining = u32::try_from(max).unwrap_or(u32::MAX);
        let mut policies = Vec::new();
        let (mut not_before, mut expires) = (None::<u64>, None::<u64>);
        for (i, token) in tokens.iter().enumerate() {
            let deny = |reason| Denial::at(i, token.cid(), reason);
            let p = token.payload();
            if token.bytes().len() > self.config.limits.max_token_bytes {
                return Err(deny(Reason::TooLarge {
                    size: token.bytes().len(),
                    max: self.config.limits.max_token_bytes,
                }));
            }
            if p.typ != Kind::Delegation {
                return Err(deny(Reason::WrongKind));
            }
            token.verify_signature().map_err(|_| deny(Reason::BadSignature))?;
            if let Some(nbf) = p.nbf.filter(|nbf| *nbf > now) {
                return Err(deny(Reason::NotYetValid { nbf, now }));
            }
            if let Some(exp) = p.exp.filter(|exp| *exp < now) {
                return Err(deny(Reason::Expired { exp, now }));
            }
            if i == 0 {
                if p.prf.is_some() {
                    return Err(deny(Reason::BrokenProof));
                }
            } else {
                let parent = tokens[i - 1].payload();
                if p.prf != Some(tokens[i - 1].cid()) {
                    return Err(deny(Reason::BrokenProof));
                }
                if p.iss != parent.aud {
                    return Err(deny(Reason::Misaligned {
                        expected: parent.aud.to_string(),
                        found: p.iss.to_string(),
                    }));
                }
                if !within_parent(p, parent) {
                    return Err(deny(Reason::OutlivesParent));
                }
                if let Some(command) = p.cmd.iter().find(|c| !c.is_implied_by_any(&parent.cmd)) {
                    return Err(deny(Reason::CommandEscalation { command: command.to_string() }));
                }
                if let Some(topic) = p.topics.iter().find(|t| !t.is_implied_by_any(&parent.topics))
                {
                    return Err(deny(Reason::TopicEscalation { topic: topic.to_string() }));
                }
                if parent.sub.is_some() && p.sub != parent.sub {
                    return Err(deny(Reason::SubjectMismatch));
                }
                if remaining == 0 {
                    return Err(deny(Reason::DepthExceeded));
                }
                remaining -= 1;
            }
            if let Some(depth) = p.depth {
                remaining = remaining.min(depth);
            }
            policies.extend(p.pol.iter().cloned());
            not_before = not_before.max(p.nbf);
            expires = match (expires, p.exp) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let leaf = tokens[tokens.len() - 1].payload();
        Ok(Verified {
            cids: tokens.iter().map(Token::cid).collect(),
            issuers: tokens.iter().map(|t| t.payload().iss.clone()).collect(),
            audience: leaf.aud.clone(),
            subject: tokens.iter().rev().find_map(|t| t.payload().sub.clone()),
            commands: leaf.cmd.clone(),
            topics: leaf.topics.clone(),
            policies,
            not_before,
            expires,
            remaining_depth: remaining,
        })
    }

    /// Drops every cached chain that contains `cid` (after a revocation).
    pub fn invalidate(&self, cid: &Cid) {
        if let Ok(mut cache) = self.cache.lock() {
            let stale: Vec<Cid> = cache
                .iter()
                .filter(|(_, verified)| verified.cids.contains(cid))
                .map(|(key, _)| *key)
                .collect();
            for key in stale {
                cache.pop(&key);
            }
        }
    }

    /// Empties the cache (after trust anchors change).
    pub fn clear(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// Cache hits and misses so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}
