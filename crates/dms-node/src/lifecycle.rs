//! The node's start/stop record, kept in the store.
//!
//! Each start increments a counter and marks the run as open; a graceful stop closes
//! it. A start that finds the previous run still open knows the daemon was killed or
//! crashed, and says so.

use std::time::{SystemTime, UNIX_EPOCH};

use dms_store::{Repo, Store};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// Start/stop bookkeeping of this node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// How many times the daemon has started with this store.
    pub starts: u64,
    /// Unix seconds of the last start.
    pub last_start: u64,
    /// Unix seconds of the last graceful stop, if any.
    pub last_stop: Option<u64>,
    /// Whether the daemon is (or was, when it died) running.
    pub running: bool,
}

const REPO: Repo<Lifecycle> = Repo::new("node_meta");
const KEY: &str = "lifecycle";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Records a start; warns when the previous run did not stop gracefully.
pub fn record_start(store: &Store) -> Result<Lifecycle, dms_store::Error> {
    store.write(|tx| {
        let mut record = REPO.get(tx, KEY)?.unwrap_or_default();
        if record.running {
            warn!(
                previous_start = record.last_start,
                "The previous run did not shut down gracefully (killed or crashed)."
            );
        }
        record.starts += 1;
        record.last_start = now();
        record.running = true;
        REPO.put(tx, KEY, &record)?;
        Ok(record)
    })
}

/// Records a graceful stop.
pub fn record_stop(store: &Store) -> Result<(), dms_store::Error> {
    store.write(|tx| {
        let mut record = REPO.get(tx, KEY)?.unwrap_or_default();
        record.running = false;
        record.last_stop = Some(now());
        REPO.put(tx, KEY, &record)
    })
}

/// Reads the record.
pub fn read(store: &Store) -> Result<Lifecycle, dms_store::Error> {
    Ok(REPO.get_now(store, KEY)?.unwrap_or_default())
}
