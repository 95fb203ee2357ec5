//! What the orchestrator refuses or fails at, typed; the node's behaviors turn it into
//! the actor error a caller sees.

use dms_actor::ActorError;

/// Why a deployment request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ensemble does not validate (every error, one per line); nothing was created.
    #[error("the ensemble is invalid:\n{0}")]
    InvalidEnsemble(String),
    /// A module came for a name that is not an allocation; nothing was created.
    #[error("a module was sent for {0:?}, which is not an allocation")]
    StrayModule(String),
    /// This node orchestrates no deployment with that id.
    #[error("no deployment {0:?} on this node; see `dms deployments list`")]
    NoDeployment(String),
    /// The deployment has no allocation with that name.
    #[error("deployment {deployment} has no allocation {allocation:?}")]
    NoAllocation {
        /// The deployment.
        deployment: String,
        /// The name asked for.
        allocation: String,
    },
    /// The submitter, or all submitters together, have as many unfinished deployments
    /// here as the node's quota allows; nothing was created.
    #[error("quota reached: {what} (limit {limit}); {remedy}")]
    Quota {
        /// What is counted.
        what: String,
        /// The quota.
        limit: usize,
        /// What frees room.
        remedy: String,
    },
    /// The ensemble's storage refused the credentials, or an input is missing; nothing
    /// was created.
    #[error("storage: {0}")]
    Storage(#[from] dms_storage::Error),
    /// The store could not be read or written; the deployment may not be recorded.
    #[error("store: {0}")]
    Store(#[from] dms_store::Error),
    /// The node's contracts or receipts could not be read.
    #[error("contracts: {0}")]
    Contract(String),
}

impl From<Error> for ActorError {
    fn from(error: Error) -> ActorError {
        match error {
            Error::Store(_) => ActorError::handler(error.to_string()),
            Error::Quota { what, limit, remedy } => {
                ActorError::Quota { what, limit: limit as u64, remedy }
            }
            other => ActorError::BadPayload { reason: other.to_string() },
        }
    }
}
