//! Errors building or decoding tokens, and typed authorization denials.

use std::fmt;

/// Failures to build, encode or decode tokens and contexts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A command path or topic is not well formed.
    #[error("invalid capability path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A policy predicate is malformed.
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// The signing key is not the issuer's.
    #[error("the token's issuer is {iss} but the signing key is {key}")]
    IssuerKey {
        /// The payload's issuer.
        iss: String,
        /// The key's DID.
        key: String,
    },
    /// Encoding failed (should not happen for well-formed payloads).
    #[error("cannot encode token: {0}")]
    Encode(String),
    /// The bytes are not a token or chain in canonical form.
    #[error("malformed capability token: {0}")]
    Malformed(String),
    /// The input is larger than allowed; it was not parsed.
    #[error("capability token too large: {size} bytes, at most {max} accepted")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The chain has more links than allowed.
    #[error("capability chain too long: {len} tokens, at most {max} accepted")]
    ChainTooLong {
        /// Links in the chain.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The signature does not verify against the issuer's DID.
    #[error("signature does not verify against the issuer's key")]
    BadSignature,
    /// A context operation is not possible; the message says why and what to do.
    #[error("{0}")]
    Context(String),
    /// The store failed.
    #[error("capability store: {0}")]
    Store(String),
    /// The stored context is not the version the change started from (another writer
    /// got there first); nothing was written. Run the command again.
    #[error("{0}")]
    Conflict(String),
}

impl Error {
    /// The conflict of a save that expected `expected` and found `current`.
    pub fn conflict(name: &str, current: Option<u64>, expected: Option<u64>) -> Error {
        Error::Conflict(format!(
            "context '{name}' changed while this command ran (version {current:?}, expected \
             {expected:?}); run the command again"
        ))
    }
}

/// Why a chain or an invocation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The bytes could not be decoded (garbage, truncated, non-canonical).
    Malformed(String),
    /// The input exceeds the configured size; it was not parsed.
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// More links than the verifier accepts.
    ChainTooLong {
        /// Links in the chain.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A token is of the wrong kind for its place (e.g. an invocation inside a chain).
    WrongKind,
    /// The signature does not verify against the issuer's DID.
    BadSignature,
    /// The token's proof is not its parent's content id (or a root cites a parent).
    BrokenProof,
    /// The issuer of a link is not the audience of its parent.
    Misaligned {
        /// The parent's audience.
        expected: String,
        /// This link's issuer.
        found: String,
    },
    /// The token has expired.
    Expired {
        /// Its expiry (Unix seconds).
        exp: u64,
        /// The time of the check.
        now: u64,
    },
    /// The token is not valid yet.
    NotYetValid {
        /// Its not-before (Unix seconds).
        nbf: u64,
        /// The time of the check.
        now: u64,
    },
    /// The token's validity is not within its parent's.
    OutlivesParent,
    /// A command is not implied by the parent's commands.
    CommandEscalation {
        /// The command the parent does not grant.
        command: String,
    },
    /// A topic is not implied by the parent's topics.
    TopicEscalation {
        /// The topic the parent does not grant.
        topic: String,
    },
    /// The subject differs from the parent's.
    SubjectMismatch,
    /// The parent allows no further delegation.
    DepthExceeded,
    /// The token, or a token it rests on, was revoked.
    Revoked {
        /// The revoked token's content id.
        cid: String,
        /// Who revoked it.
        by: String,
    },
    /// The last audience is not the principal presenting the chain.
    AudienceMismatch {
        /// The invoker.
        expected: String,
        /// The leaf's audience.
        found: String,
    },
    /// The chain's root issuer is not trusted by this context.
    UntrustedRoot {
        /// The root issuer.
        issuer: String,
    },
    /// The chain does not grant the behavior (or topic) asked for.
    NotGranted {
        /// The behavior or topic.
        what: String,
    },
    /// The chain is for another subject.
    WrongSubject {
        /// The subject required.
        expected: String,
    },
    /// A policy predicate does not hold for the arguments.
    PolicyViolated {
        /// The predicate, as JSON.
        predicate: String,
    },
}

/// A refused authorization: which link failed (0 = root; `None` when the failure is
/// about the whole chain or the request) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Denial {
    /// Index of the failing token in the chain, root first.
    pub link: Option<usize>,
    /// Content id of the failing token, when known.
    pub cid: Option<String>,
    /// Why.
    pub reason: Reason,
}

impl Denial {
    /// A denial about link `link` (with its content id).
    pub fn at(link: usize, cid: impl ToString, reason: Reason) -> Denial {
        Denial { link: Some(link), cid: Some(cid.to_string()), reason }
    }

    /// A denial about the whole chain or the request.
    pub fn whole(reason: Reason) -> Denial {
        Denial { link: None, cid: None, reason }
    }

    /// A short stable code for the reason (`expired`, `revoked`, ...).
    pub fn code(&self) -> &'static str {
        match self.reason {
            Reason::Malformed(_) => "malformed",
            Reason::TooLarge { .. } => "too_large",
            Reason::ChainTooLong { .. } => "chain_too_long",
            Reason::WrongKind => "wrong_kind",
            Reason::BadSignature => "bad_signature",
            Reason::BrokenProof => "broken_proof",
            Reason::Misaligned { .. } => "misaligned",
            Reason::Expired { .. } => "expired",
            Reason::NotYetValid { .. } => "not_yet_valid",
            Reason::OutlivesParent => "outlives_parent",
            Reason::CommandEscalation { .. } => "command_escalation",
            Reason::TopicEscalation { .. } => "topic_escalation",
            Reason::SubjectMismatch => "subject_mismatch",
            Reason::DepthExceeded => "depth_exceeded",
            Reason::Revoked { .. } => "revoked",
            Reason::AudienceMismatch { .. } => "audience_mismatch",
            Reason::UntrustedRoot { .. } => "untrusted_root",
            Reason::NotGranted { .. } => "not_granted",
            Reason::WrongSubject { .. } => "wrong_subject",
            Reason::PolicyViolated { .. } => "policy_violated",
        }
    }
}

impl From<Error> for Denial {
    fn from(error: Error) -> Denial {
        Denial::whole(match error {
            Error::TooLarge { size, max } => Reason::TooLarge { size, max },
            Error::ChainTooLong { len, max } => Reason::ChainTooLong { len, max },
            Error::BadSignature => Reason::BadSignature,
            other => Reason::Malformed(other.to_string()),
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Malformed(why) => write!(f, "malformed token: {why}"),
            Reason::TooLarge { size, max } => {
                write!(f, "token of {size} bytes exceeds the {max}-byte limit")
            }
            Reason::ChainTooLong { len, max } => {
                write!(f, "chain of {len} tokens exceeds the limit of {max}")
            }
            Reason::WrongKind => write!(f, "token of the wrong kind for its place in the chain"),
            Reason::BadSignature => write!(f, "signature does not verify against the issuer's key"),
            Reason::BrokenProof => write!(f, "proof does not point at the parent token"),
            Reason::Misaligned { expected, found } => {
                write!(f, "issuer {found} is not the parent's audience {expected}")
            }
            Reason::Expired { exp, now } => write!(f, "expired at {exp} (now {now})"),
            Reason::NotYetValid { nbf, now } => write!(f, "not valid before {nbf} (now {now})"),
            Reason::OutlivesParent => write!(f, "validity extends beyond the parent's"),
            Reason::CommandEscalation { command } => {
                write!(f, "command {command} is not granted by the parent")
            }
            Reason::TopicEscalation { topic } => {
                write!(f, "topic {topic} is not granted by the parent")
            }
            Reason::SubjectMismatch => write!(f, "subject differs from the parent's"),
            Reason::DepthExceeded => write!(f, "the parent allows no further delegation"),
            Reason::Revoked { cid, by } => write!(f, "token {cid} was revoked by {by}"),
            Reason::AudienceMismatch { expected, found } => {
                write!(f, "chain is addressed to {found}, not to the invoker {expected}")
            }
            Reason::UntrustedRoot { issuer } => {
                write!(
                    f,
                    "root issuer {issuer} is not trusted (no root or require anchor admits it)"
                )
            }
            Reason::NotGranted { what } => write!(f, "{what} is not granted by the chain"),
            Reason::WrongSubject { expected } => write!(f, "chain is not for subject {expected}"),
            Reason::PolicyViolated { predicate } => write!(f, "policy {predicate} does not hold"),
        }
    }
}

impl Denial {
    /// Which link failed and why, without the `unauthorized (code):` prefix.
    pub fn describe(&self) -> String {
        match (&self.link, &self.cid) {
            (Some(link), Some(cid)) => format!("link {link} ({cid}): {}", self.reason),
            (Some(link), None) => format!("link {link}: {}", self.reason),
            _ => self.reason.to_string(),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unauthorized ({}): {}", self.code(), self.describe())
    }
}
