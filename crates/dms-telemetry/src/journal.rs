//! The journal: recent events kept in the node's store, in the document collection
//! [`EVENTS`] indexed by `deployment`, `kind` and `at_ms`, and searched by field
//! ([`query`]) for `dms events` and the API.
//!
//! A writer task drains the hub's queue in batches (whatever has arrived, at most
//! [`BATCH`] per commit). Batches are committed without waiting for the disk, so that
//! the deployments' own durable writes never queue behind events; a durable commit
//! follows within 2 s (and at stop), so a crash loses at most the last 2 s of events.
//! Retention: at most `max_events` (the oldest go first, in the same commit) and nothing
//! older than `max_age` (swept every minute, also when no events arrive).

use std::ops::Bound;
use std::time::Duration;

use dms_store::{Collection, Query, Repo, Store, WriteTx};
use dms_types::event::Event;
pub use dms_types::event::EventQuery;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::hub::Shared;

/// The collection holding events.
pub const EVENTS: &str = "events";
/// Indexed fields of [`EVENTS`].
pub const INDEXED: [&str; 3] = ["deployment", "kind", "at_ms"];
/// Most events written in one commit.
pub const BATCH: usize = 512;
/// Most events one query returns.
pub const MAX_LIMIT: usize = 1000;

const COUNT: Repo<u64> = Repo::new("telemetry");
const COUNT_KEY: &str = "events.count";
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Longest events stay written but not yet on disk.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
const CLOCK_SLACK_MS: u64 = 5_000;

/// How much the journal keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Most events kept.
    pub max_events: u64,
    /// Events older than this are removed.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_events: 100_000, max_age: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// The journal's writer task.
#[derive(Debug)]
pub struct Journal {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Journal {
    /// Creates the indexes and starts writing what arrives on `feed` to `store`.
    pub fn start(
        store: Store,
        feed: mpsc::Receiver<Shared>,
        retention: Retention,
    ) -> Result<Journal, dms_store::Error> {
        let events = store.collection(EVENTS);
        store.write(|tx| {
            for field in INDEXED {
                events.ensure_index(tx, field)?;
            }
            Ok(())
        })?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(store, feed, retention, stopped));
        Ok(Journal { stop, task })
    }

    /// Writes what is queued, then stops (before the store closes).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            warn!(%error, "The event journal's writer failed.");
        }
    }
}

async fn run(
    store: Store,
    mut feed: mpsc::Receiver<Shared>,
    retention: Retention,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut swept, mut unflushed) = (tokio::time::Instant::now(), false);
    loop {
        let (open, ticked) = tokio::select! {
            n = feed.recv_many(&mut batch, BATCH) => (n > 0, false),
            _ = tick.tick() => (true, true),
            _ = &mut stopped => (false, false),
        };
        if !open {
            // Drain what is queued now; later events have no store to go to.
            while batch.len() < BATCH * 4 {
                let Ok(event) = feed.try_recv() else { break };
                batch.push(event);
            }
        }
        let sweep = ticked && swept.elapsed() >= SWEEP_EVERY;
        if sweep {
            swept = tokio::time::Instant::now();
        }
        // Batches are written without waiting for the disk (other writers of the store
        // must not queue behind events); a durable commit follows within FLUSH_EVERY.
        let durable = !open || (ticked && unflushed);
        if batch.is_empty() && !sweep && !durable {
            continue;
        }
        unflushed = !durable && (unflushed || !batch.is_empty());
        let (writer, events) = (store.clone(), std::mem::take(&mut batch));
        let written = tokio::task::spawn_blocking(move || {
            write(&writer, &events, Commit { retention, sweep, durable })
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "Could not write events to the journal."),
            Err(error) => warn!(%error, "The event journal's writer failed."),
        }
        if !open {
            return;
        }
    }
}

/// How [`write`] commits.
#[derive(Clone, Copy, Debug)]
pub struct Commit {
    /// What to keep.
    pub retention: Retention,
    /// Also remove events older than `retention.max_age`.
    pub sweep: bool,
    /// Wait until the commit is on disk (with every lazy one before it).
    pub durable: bool,
}

/// Writes `events` in one commit, keeping the journal within `commit.retention`.
pub fn write(store: &Store, events: &[Shared], commit: Commit) -> Result<(), dms_store::Error> {
    let Commit { retention, sweep, durable } = commit;
    let collection = store.collection(EVENTS);
    let change = |tx: &WriteTx| {
        let mut count = COUNT.get(tx, COUNT_KEY)?.unwrap_or(0);
        for event in events {
            let doc = serde_json::to_value(event.as_ref()).unwrap_or_else(|_| json!({}));
            collection.insert(tx, &event.id, &doc)?;
            count += 1;
        }
        if count > retention.max_events {
            count -= remove(tx, &collection, Query::new(), count - retention.max_events)?;
        }
        if sweep {
            let max_age = u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX);
            let cutoff = now_ms().saturating_sub(max_age);
            let old = Query::new().range("at_ms", Bound::Unbounded, Bound::Excluded(json!(cutoff)));
            count = count.saturating_sub(remove(tx, &collection, old, 10_000)?);
        }
        COUNT.put(tx, COUNT_KEY, &count)
    };
    if durable { store.write(change) } else { store.write_lazy(change) }
}

/// Removes the oldest `n` events matching `query`; how many were removed.
fn remove(
    tx: &WriteTx,
    collection: &Collection,
    query: Query,
    n: u64,
) -> Result<u64, dms_store::Error> {
    let oldest = collection.find(tx, &query.limit(usize::try_from(n).unwrap_or(usize::MAX)))?;
    let mut removed = 0;
    for (id, _) in oldest {
        if collection.delete(tx, &id)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The events `query` asks for, oldest first.
pub fn query(store: &Store, query: &EventQuery) -> Result<Vec<Event>, dms_store::Error> {
    let limit = match query.limit {
        0 => 100,
        n => n.min(MAX_LIMIT),
    };
    // A cursor's id starts with its time: events after it were recorded at or after it,
    // less the slack of a wall clock stepped back meanwhile (ids never go back).
    let cursor_ms = query
        .after
        .as_deref()
        .and_then(|id| id.split('-').next()?.parse::<u64>().ok())
        .map(|ms| ms.saturating_sub(CLOCK_SLACK_MS));
    let since = query.since_ms.max(cursor_ms);
    let mut q = Query::new();
    if let Some(deployment) = &query.deployment {
        q = q.eq("deployment", json!(deployment));
    }
    match since {
        // A time window is narrower than a kind (seven kinds share every event): the
        // window is looked up in the index and the kind checked on what it holds.
        Some(since) => q = q.range("at_ms", Bound::Included(json!(since)), Bound::Unbounded),
        None => {
            if let Some(kind) = &query.kind {
                q = q.eq("kind", json!(kind));
            }
        }
    }
    let wanted = |doc: &serde_json::Value| query.kind.as_ref().is_none_or(|k| doc["kind"] == **k);
    let tx = store.read()?;
    let collection = store.collection(EVENTS);
    let matching = match (&query.after, since, &query.kind) {
        // Oldest first after the cursor.
        (Some(_), _, _) => collection.find(&tx, &q)?,
        // The kind is checked here: the store cannot stop at the limit.
        (None, Some(_), Some(_)) => collection.find(&tx, &q.newest_first())?,
        (None, _, _) => collection.find(&tx, &q.newest_first().limit(limit))?,
    };
    let after = query.after.as_deref().unwrap_or("");
    let mut found: Vec<Event> = matching
        .into_iter()
        .filter(|(id, doc)| id.as_str() > after && wanted(doc))
        .take(limit)
        .filter_map(|(_, doc)| serde_json::from_value(doc).ok())
        .collect();
    if query.after.is_none() {
        found.reverse();
    }
    Ok(found)
}

fn now_ms() -> u64 {
    crate::unix_ms(std::time::SystemTime::now())
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
