//! The journal: recent events kept in the node's store, in the document collection
//! [`EVENTS`] indexed by `deployment`, `kind` and `at_ms`, and searched by field
//! ([`query`]) for `dms events` and the API.
//!
//! A writer task drains the hub's queue in batches (whatever has arrived, at most
//! [`BATCH`] per commit), one durable commit per batch, so a crash loses nothing that was
//! written and a burst costs few commits. Retention: at most `max_events` (the oldest go
//! first, in the same commit) and nothing older than `max_age` (swept every minute).

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
    let mut swept = tokio::time::Instant::now();
    loop {
        let open = tokio::select! {
            n = feed.recv_many(&mut batch, BATCH) => n > 0,
            _ = &mut stopped => false,
        };
        if !open {
            // Drain what is queued now; later events have no store to go to.
            while batch.len() < BATCH * 4 {
                match feed.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
        }
        let sweep = swept.elapsed() >= SWEEP_EVERY;
        if sweep {
            swept = tokio::time::Instant::now();
        }
        let (writer, events) = (store.clone(), std::mem::take(&mut batch));
        let written =
            tokio::task::spawn_blocking(move || write(&writer, &events, retention, sweep)).await;
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

/// Writes `events` in one durable commit, keeping the journal within `retention`.
pub fn write(
    store: &Store,
    events: &[Shared],
    retention: Retention,
    sweep: bool,
) -> Result<(), dms_store::Error> {
    if events.is_empty() && !sweep {
        return Ok(());
    }
    let collection = store.collection(EVENTS);
    store.write(|tx| {
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
            let cutoff = now_ms().saturating_sub(duration_ms(retention.max_age));
            let old = Query::new().range("at_ms", Bound::Unbounded, Bound::Excluded(json!(cutoff)));
            count = count.saturating_sub(remove(tx, &collection, old, 10_000)?);
        }
        COUNT.put(tx, COUNT_KEY, &count)
    })
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
    let mut q = Query::new();
    if let Some(deployment) = &query.deployment {
        q = q.eq("deployment", json!(deployment));
    }
    if let Some(kind) = &query.kind {
        q = q.eq("kind", json!(kind));
    }
    // A cursor's id starts with its time: events after it are at or after that time.
    let cursor_ms = query.after.as_deref().and_then(|id| id.split('-').next()?.parse::<u64>().ok());
    let since = query.since_ms.max(cursor_ms);
    if let Some(since) = since {
        q = q.range("at_ms", Bound::Included(json!(since)), Bound::Unbounded);
    }
    let tx = store.read()?;
    let collection = store.collection(EVENTS);
    let mut found: Vec<Event> = match &query.after {
        Some(after) => collection
            .find(&tx, &q)?
            .into_iter()
            .filter(|(id, _)| id.as_str() > after.as_str())
            .take(limit)
            .filter_map(|(_, doc)| serde_json::from_value(doc).ok())
            .collect(),
        None => collection
            .find(&tx, &q.newest_first().limit(limit))?
            .into_iter()
            .filter_map(|(_, doc)| serde_json::from_value(doc).ok())
            .collect(),
    };
    if query.after.is_none() {
        found.reverse();
    }
    Ok(found)
}

fn now_ms() -> u64 {
    duration_ms(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default(),
    )
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
