//! Typed errors. Every refused message is answered with one of these (never silence),
//! and `invoke` returns them to the caller.

use serde::{Deserialize, Serialize};

/// Why a message was refused or an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ActorError {
    /// The capability chain does not authorize the behavior; `code` is the denial code
    /// (`expired`, `revoked`, `untrusted_root`, ...), `reason` the sentence.
    #[error("unauthorized ({code}): {reason}")]
    Unauthorized {
        /// Stable denial code.
        code: String,
        /// What failed.
        reason: String,
    },
    /// The envelope expired before it was handled.
    #[error("message expired at {expiry} ms (now {now} ms)")]
    Expired {
        /// The envelope's expiry.
        expiry: u64,
        /// When it was checked.
        now: u64,
    },
    /// No such behavior on the recipient.
    #[error("unknown behavior {behavior}")]
    UnknownBehavior {
        /// The behavior asked for.
        behavior: String,
    },
    /// The sender exceeded its rate for this class of behavior; retry later.
    #[error("rate limited ({class}): slow down and retry")]
    RateLimited {
        /// `public`, `broadcast` or `default`.
        class: String,
    },
    /// The sender (a peer or a user) holds as much of something on this node as its
    /// quota allows; nothing was done. Retry when some of it has ended or been pruned.
    #[error("quota reached: {what} (limit {limit}); {remedy}")]
    Quota {
        /// What is counted, e.g. `active deployments of did:key:z…`.
        what: String,
        /// The quota.
        limit: u64,
        /// What frees room.
        remedy: String,
    },
    /// The message is larger than accepted; it was not parsed.
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// This sender already used this nonce within the replay window.
    #[error("replayed message (nonce {nonce} already seen)")]
    Replayed {
        /// The nonce.
        nonce: u64,
    },
    /// The envelope claims a peer other than the one it arrived from.
    #[error("sender claims peer {claimed} but the message came from {actual}")]
    Spoofed {
        /// `from.peer` in the envelope.
        claimed: String,
        /// The transport's peer.
        actual: String,
    },
    /// The signature does not verify against the sender's DID.
    #[error("bad envelope signature")]
    BadSignature,
    /// The bytes are not an envelope in canonical form, or a field is out of range.
    #[error("malformed message: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The payload could not be decoded by the behavior.
    #[error("bad payload: {reason}")]
    BadPayload {
        /// What is wrong.
        reason: String,
    },
    /// The recipient is not here.
    #[error("no actor {inbox} on this node")]
    NoSuchActor {
        /// The inbox asked for.
        inbox: String,
    },
    /// The recipient's mailbox is full; retry later.
    #[error("recipient busy (mailbox full)")]
    Busy,
    /// No reply within the timeout.
    #[error("no reply within {after_ms} ms")]
    Timeout {
        /// The timeout.
        after_ms: u64,
    },
    /// The actor has stopped.
    #[error("actor stopped")]
    Closed,
    /// The message could not be sent.
    #[error("transport: {reason}")]
    Transport {
        /// What failed.
        reason: String,
    },
    /// The request is in a protocol version this node does not speak; nothing ran.
    /// Upgrade the older side.
    #[error(
        "{behavior}: protocol version {version} is not spoken here (this node speaks {supported}); upgrade the older dms"
    )]
    UnsupportedVersion {
        /// The behavior asked for.
        behavior: String,
        /// The version the request was in.
        version: u32,
        /// The version this node speaks.
        supported: u32,
    },
    /// The behavior ran and failed.
    #[error("{message}")]
    Handler {
        /// The behavior's error, for people.
        message: String,
    },
    /// A bug or an impossible state.
    #[error("internal error: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

/// Every [`ActorError::code`] (metrics label refusals with these).
pub const CODES: &[&str] = &[
    "unauthorized",
    "expired",
    "unknown_behavior",
    "rate_limited",
    "quota",
    "too_large",
    "replayed",
    "spoofed",
    "bad_signature",
    "malformed",
    "bad_payload",
    "no_such_actor",
    "busy",
    "timeout",
    "closed",
    "transport",
    "unsupported_version",
    "handler",
    "internal",
];

impl ActorError {
    /// The stable snake_case code of the error (as serialized in `error`).
    pub fn code(&self) -> &'static str {
        // Keep CODES in step.
        match self {
            ActorError::Unauthorized { .. } => "unauthorized",
            ActorError::Expired { .. } => "expired",
            ActorError::UnknownBehavior { .. } => "unknown_behavior",
            ActorError::RateLimited { .. } => "rate_limited",
            ActorError::Quota { .. } => "quota",
            ActorError::TooLarge { .. } => "too_large",
            ActorError::Replayed { .. } => "replayed",
            ActorError::Spoofed { .. } => "spoofed",
            ActorError::BadSignature => "bad_signature",
            ActorError::Malformed { .. } => "malformed",
            ActorError::BadPayload { .. } => "bad_payload",
            ActorError::NoSuchActor { .. } => "no_such_actor",
            ActorError::Busy => "busy",
            ActorError::Timeout { .. } => "timeout",
            ActorError::Closed => "closed",
            ActorError::Transport { .. } => "transport",
            ActorError::UnsupportedVersion { .. } => "unsupported_version",
            ActorError::Handler { .. } => "handler",
            ActorError::Internal { .. } => "internal",
        }
    }

    /// Whether the receiving node sent this refusal (the message arrived after its expiry,
    /// the sender was over its rate, the actor's mailbox was full): evidence that the
    /// peer is up, only slow or busy — unlike silence (`Timeout`, `Transport`). Liveness
    /// judges count it as having heard from the peer.
    pub fn is_busy_peer(&self) -> bool {
        matches!(
            self,
            ActorError::Expired { .. } | ActorError::RateLimited { .. } | ActorError::Busy
        )
    }

    /// Shorthand for a malformed-input error.
    pub fn malformed(reason: impl Into<String>) -> ActorError {
        ActorError::Malformed { reason: reason.into() }
    }

    /// Shorthand for a behavior failure.
    pub fn handler(message: impl Into<String>) -> ActorError {
        ActorError::Handler { message: message.into() }
    }
}

impl From<dms_ucan::Error> for ActorError {
    /// A capability operation a behavior ran failed (store, conflict, bad context).
    fn from(error: dms_ucan::Error) -> ActorError {
        ActorError::handler(error.to_string())
    }
}

impl From<dms_ucan::Denial> for ActorError {
    fn from(denial: dms_ucan::Denial) -> ActorError {
        ActorError::Unauthorized { code: denial.code().to_string(), reason: denial.describe() }
    }
}

#[cfg(test)]
mod codes_tests {
    use super::*;

    #[test]
    fn every_code_is_in_codes() {
        let s = String::new;
        let all = [
            ActorError::Unauthorized { code: s(), reason: s() },
            ActorError::Expired { expiry: 0, now: 0 },
            ActorError::UnknownBehavior { behavior: s() },
            ActorError::RateLimited { class: s() },
            ActorError::Quota { what: s(), limit: 0, remedy: s() },
            ActorError::TooLarge { size: 0, max: 0 },
            ActorError::Replayed { nonce: 0 },
            ActorError::Spoofed { claimed: s(), actual: s() },
            ActorError::BadSignature,
            ActorError::Malformed { reason: s() },
            ActorError::BadPayload { reason: s() },
            ActorError::NoSuchActor { inbox: s() },
            ActorError::Busy,
            ActorError::Timeout { after_ms: 0 },
            ActorError::Closed,
            ActorError::Transport { reason: s() },
            ActorError::UnsupportedVersion { behavior: s(), version: 0, supported: 0 },
            ActorError::Handler { message: s() },
            ActorError::Internal { reason: s() },
        ];
        assert_eq!(all.len(), CODES.len());
        // Only the receiving node's refusals of a late, excess or queued-out message
        // show that the peer is up; silence and every other refusal do not.
        let busy: Vec<&str> =
            all.iter().filter(|e| e.is_busy_peer()).map(ActorError::code).collect();
        assert_eq!(busy, ["expired", "rate_limited", "busy"]);
        for error in all {
            assert!(CODES.contains(&error.code()), "{} is not in CODES", error.code());
        }
    }
}
