//! What one user may make this node hold ([`Quotas`]): unfinished deployments per
//! submitter and in all, refused with [`Error::Quota`] before anything is created; and
//! which finished deployments the pruning policy forgets (beyond
//! [`Quotas::keep_finished`], or finished longer ago than [`Quotas::keep_finished_for`]).
//!
//! Both are pure functions of the deployments' records, so they are tested without a
//! node.

use crate::deployment::Deployment;
use crate::error::Error;
use crate::orchestrator::Quotas;

/// What the quota looks at in one deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub id: String,
    pub submitter: Option<String>,
    pub finished: bool,
    /// When it reached its state, and when it was created (Unix milliseconds).
    pub changed_ms: u64,
    pub created_ms: u64,
}

impl Held {
    pub(crate) fn of(record: &Deployment) -> Held {
        Held {
            id: record.id.clone(),
            submitter: record.submitter.clone(),
            finished: record.state.is_terminal(),
            changed_ms: record.changed_ms(),
            created_ms: record.created_ms,
        }
    }
}

/// Whether `submitter` may create one more deployment beside `held`.
pub(crate) fn admit(quotas: &Quotas, held: &[Held], submitter: &str) -> Result<(), Error> {
    let unfinished = held.iter().filter(|h| !h.finished);
    let (mut all, mut theirs) = (0, 0);
    for h in unfinished {
        all += 1;
        theirs += usize::from(h.submitter.as_deref() == Some(submitter));
    }
    if theirs >= quotas.deployments_per_user {
        return Err(Error::Quota {
            what: format!("unfinished deployments of {submitter} on this node"),
            limit: quotas.deployments_per_user,
            remedy: "shut some down (`dms deployments shutdown <id>`) or wait for them to \
                     finish; the node's operator sets quotas.deployments_per_user"
                .into(),
        });
    }
    if all >= quotas.deployments {
        return Err(Error::Quota {
            what: "unfinished deployments on this node".into(),
            limit: quotas.deployments,
            remedy: "retry later, or submit through another node; the node's operator sets \
                     quotas.deployments"
                .into(),
        });
    }
    Ok(())
}

/// The finished deployments the policy prunes at `now_ms`: those finished longer ago
/// than `keep_finished_for`, then the oldest beyond `keep_finished`.
pub(crate) fn expired(quotas: &Quotas, held: &[Held], now_ms: u64) -> Vec<String> {
    let keep_for = u64::try_from(quotas.keep_finished_for.as_millis()).unwrap_or(u64::MAX);
    let mut finished: Vec<&Held> = held.iter().filter(|h| h.finished).collect();
    // Newest first: the first `keep_finished` young enough are kept.
    finished.sort_by_key(|h| std::cmp::Reverse((h.changed_ms, h.created_ms, h.id.clone())));
    finished
        .into_iter()
        .enumerate()
        .filter(|(rank, h)| {
            *rank >= quotas.keep_finished || now_ms.saturating_sub(h.changed_ms) > keep_for
        })
        .map(|(_, h)| h.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn held(id: &str, submitter: &str, finished: bool, changed_ms: u64) -> Held {
        Held {
            id: id.into(),
            submitter: Some(submitter.into()),
            finished,
            changed_ms,
            created_ms: 0,
        }
    }

    fn quotas() -> Quotas {
        Quotas {
            deployments_per_user: 2,
            deployments: 3,
            keep_finished: 2,
            keep_finished_for: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_user_at_the_quota_is_refused_and_others_are_not() {
        let held =
            [held("a", "alice", false, 0), held("b", "alice", false, 0), held("c", "bob", true, 0)];
        let refused = admit(&quotas(), &held, "alice").expect_err("alice is at 2");
        assert!(
            matches!(&refused, Error::Quota { limit: 2, what, .. } if what.contains("alice")),
            "{refused}"
        );
        // Bob's finished deployment does not count; he may create.
        admit(&quotas(), &held, "bob").expect("bob has none unfinished");
    }

    #[test]
    fn the_node_wide_quota_counts_every_submitter() {
        let held = [
            held("a", "alice", false, 0),
            held("b", "bob", false, 0),
            held("c", "carol", false, 0),
        ];
        let refused = admit(&quotas(), &held, "dave").expect_err("3 unfinished in all");
        assert!(matches!(refused, Error::Quota { limit: 3, .. }), "{refused}");
    }

    #[test]
    fn deployments_without_a_submitter_count_only_node_wide() {
        let old =
            Held { id: "x".into(), submitter: None, finished: false, changed_ms: 0, created_ms: 0 };
        admit(&quotas(), &[old.clone(), old], "alice").expect("unknown submitters are not alice");
    }

    #[test]
    fn pruning_keeps_the_newest_finished_and_never_unfinished_ones() {
        let now = 100_000;
        let held = [
            held("old", "a", true, now - 50_000),
            held("older", "a", true, now - 55_000),
            held("newest", "a", true, now - 1_000),
            held("running", "a", false, 0),
        ];
        assert_eq!(expired(&quotas(), &held, now), vec!["older".to_string()]);
    }

    #[test]
    fn pruning_forgets_what_finished_too_long_ago() {
        let now = 1_000_000;
        let held =
            [held("recent", "a", true, now - 59_000), held("stale", "a", true, now - 61_000)];
        assert_eq!(expired(&quotas(), &held, now), vec!["stale".to_string()]);
    }
}
