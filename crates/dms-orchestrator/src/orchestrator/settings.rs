//! The orchestrators' timing and the deployments a node keeps ([`Settings`],
//! [`Quotas`]).

use std::time::Duration;

/// Timing of the orchestrator.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The longest a bid window stays open.
    pub bid_window: Duration,
    /// How many advertised providers per ensemble node a placement asks first (0:
    /// broadcast to every peer); see [`crate::directory`].
    pub shortlist: usize,
    /// How long the window stays open after the bids first allow a placement, for
    /// better bids to arrive.
    pub bid_grace: Duration,
    /// How long providers hold a bid's reservation before it is committed.
    pub reservation: Duration,
    /// Timeout of commit, allocate, revert, status and logs calls.
    pub call_timeout: Duration,
    /// Timeout of an allocation's start (image checks, container creation).
    pub start_timeout: Duration,
    /// Placement deadline when the request gives none (and of the replacement of a
    /// lost provider's nodes).
    pub default_deadline: Duration,
    /// How often allocations send a heartbeat (and how often providers are checked).
    pub heartbeat: Duration,
    /// How long a provider's allocations may be silent before it is checked and,
    /// failing that, declared lost.
    pub lost_after: Duration,
    /// How long an allocation runs on without an answer from its orchestrator before
    /// it stops itself.
    pub stop_after: Duration,
    /// After a restart of this node, nobody is declared lost before this has passed.
    pub restart_grace: Duration,
    /// How many deployments this node keeps, per user and in all.
    pub quotas: Quotas,
    /// Credentials for stores from the node's `[storage]` config: for submissions that
    /// bring none and deployments resumed after a restart.
    pub storage_credentials: Option<dms_protocol::storage::Credentials>,
}

/// What one user may make this node hold, and how long finished deployments are kept.
#[derive(Clone, Debug)]
pub struct Quotas {
    /// Unfinished deployments one submitter may have here at once.
    pub deployments_per_user: usize,
    /// Unfinished deployments of all submitters at once.
    pub deployments: usize,
    /// Finished deployments kept; the oldest beyond are pruned.
    pub keep_finished: usize,
    /// Finished deployments older than this are pruned.
    pub keep_finished_for: Duration,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            deployments_per_user: 100,
            deployments: 1000,
            keep_finished: 1000,
            keep_finished_for: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            bid_window: Duration::from_secs(3),
            shortlist: 1,
            bid_grace: Duration::from_millis(200),
            reservation: Duration::from_secs(15),
            call_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(60),
            default_deadline: Duration::from_secs(120),
            heartbeat: Duration::from_secs(1),
            lost_after: Duration::from_secs(5),
            stop_after: Duration::from_secs(60),
            restart_grace: Duration::from_secs(10),
            quotas: Quotas::default(),
            storage_credentials: None,
        }
    }
}
