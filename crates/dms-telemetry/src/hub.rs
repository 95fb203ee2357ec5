//! The hub: where emitted events are stamped (id, time, node) and handed to the sinks,
//! each through its own bounded queue. Publishing never waits: an event that finds a
//! queue full is dropped and counted (`dms_telemetry_events_dropped_total{sink}`), so a
//! slow or dead sink never slows the work that emits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use dms_types::event::Event;
use tokio::sync::mpsc::{self, error::TrySendError};

/// An event as the sinks receive it (shared, never copied per sink).
pub type Shared = Arc<Event>;

/// Events waiting for a sink, at most this many per sink.
pub const QUEUE: usize = 8192;

static HUB: OnceLock<Hub> = OnceLock::new();

/// The process's hub, once [`install`]ed.
pub fn get() -> Option<&'static Hub> {
    HUB.get()
}

/// Installs the process's hub with a queue to the journal (taken by the node that opens
/// the store, [`Hub::take_journal`]); false when one was installed already.
pub fn install() -> bool {
    let (journal_tx, journal) = mpsc::channel(QUEUE);
    let hub = Hub {
        node: RwLock::new(String::new()),
        seq: AtomicU64::new(0),
        journal_outlet: Outlet::new("journal", journal_tx),
        elastic: RwLock::new(None),
        elastic_dropped: AtomicU64::new(0),
        journal: Mutex::new(Some(journal)),
    };
    HUB.set(hub).is_ok()
}

struct Outlet {
    sink: &'static str,
    tx: mpsc::Sender<Shared>,
    dropped: AtomicU64,
}

impl Outlet {
    fn new(sink: &'static str, tx: mpsc::Sender<Shared>) -> Outlet {
        Outlet { sink, tx, dropped: AtomicU64::new(0) }
    }

    /// Offers `event`, never waiting; counts it when the queue is full.
    fn offer(&self, event: &Shared, dropped: &AtomicU64) {
        match self.tx.try_send(event.clone()) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::event_dropped(self.sink);
            }
        }
    }
}

/// Stamps events and hands them to the sinks.
pub struct Hub {
    node: RwLock<String>,
    seq: AtomicU64,
    journal_outlet: Outlet,
    /// The Elasticsearch queue, when a sink runs (it may change at run time).
    elastic: RwLock<Option<Outlet>>,
    elastic_dropped: AtomicU64,
    journal: Mutex<Option<mpsc::Receiver<Shared>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// Names the node events are recorded by (its DID), once its key is unlocked.
    pub fn set_node(&self, did: &str) {
        *self.node.write().expect("hub node lock") = did.to_string();
    }

    /// The journal's queue (once: the node that opens the store takes it).
    pub fn take_journal(&self) -> Option<mpsc::Receiver<Shared>> {
        self.journal.lock().expect("hub journal lock").take()
    }

    /// Events the journal dropped so far because its queue was full.
    pub fn journal_dropped(&self) -> u64 {
        self.journal_outlet.dropped.load(Ordering::Relaxed)
    }

    /// Events not queued for Elasticsearch so far because its queue was full.
    pub fn elastic_dropped(&self) -> u64 {
        self.elastic_dropped.load(Ordering::Relaxed)
    }

    /// Sends events to `tx` from now on (none: to no Elasticsearch sink).
    pub(crate) fn set_elastic(&self, tx: Option<mpsc::Sender<Shared>>) {
        *self.elastic.write().expect("hub elastic lock") =
            tx.map(|tx| Outlet::new("elasticsearch", tx));
    }

    /// Stamps `event` and offers it to every sink, never waiting.
    pub fn publish(&self, mut event: Event) {
        stamp(&mut event, &self.node.read().expect("hub node lock"), &self.seq);
        crate::metrics::event_emitted(&event.kind);
        let event = Arc::new(event);
        self.journal_outlet.offer(&event, &self.journal_outlet.dropped);
        if let Some(outlet) = self.elastic.read().expect("hub elastic lock").as_ref() {
            outlet.offer(&event, &self.elastic_dropped);
        }
    }
}

/// Gives `event` its id, times and node.
fn stamp(event: &mut Event, node: &str, seq: &AtomicU64) {
    let now = std::time::SystemTime::now();
    let at_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    let n = seq.fetch_add(1, Ordering::Relaxed);
    event.id = format!("{at_ms:013}-{n:08}");
    event.at_ms = at_ms;
    event.timestamp = humantime::format_rfc3339_millis(now).to_string();
    event.node = node.to_string();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_ids_sort_by_time_then_sequence() {
        let seq = AtomicU64::new(0);
        let mut a = Event::default();
        let mut b = Event::default();
        stamp(&mut a, "did:key:z1", &seq);
        stamp(&mut b, "did:key:z1", &seq);
        assert!(a.id < b.id, "{} < {}", a.id, b.id);
        assert_eq!(a.node, "did:key:z1");
        assert!(a.timestamp.ends_with('Z') && a.timestamp.contains('T'), "{}", a.timestamp);
        assert_eq!(a.id.len(), 13 + 1 + 8);
    }
}
