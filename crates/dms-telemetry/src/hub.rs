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
        clock: Mutex::new(Clock::default()),
        journal_outlet: Outlet::new("journal", journal_tx),
        journal_dropped: AtomicU64::new(0),
        elastic: RwLock::new(None),
        elastic_dropped: AtomicU64::new(0),
        journal: Mutex::new(Some(journal)),
    };
    HUB.set(hub).is_ok()
}

struct Outlet {
    sink: &'static str,
    tx: mpsc::Sender<Shared>,
}

impl Outlet {
    fn new(sink: &'static str, tx: mpsc::Sender<Shared>) -> Outlet {
        Outlet { sink, tx }
    }

    /// Offers `event`, never waiting; counts it when the queue is full.
    fn offer(&self, event: &Shared, dropped: &AtomicU64) {
        match self.tx.try_send(event.clone()) {
            Ok(()) => {}
            // A full queue, or a sink that ended: the event is lost, and counted.
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::event_dropped(self.sink);
            }
        }
    }
}

/// Stamps events and hands them to the sinks.
pub struct Hub {
    node: RwLock<String>,
    clock: Mutex<Clock>,
    journal_outlet: Outlet,
    journal_dropped: AtomicU64,
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
        self.journal_dropped.load(Ordering::Relaxed)
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
        event.node = self.node.read().expect("hub node lock").clone();
        crate::metrics::event_emitted(&event.kind);
        let event = {
            // Ids are handed out and queued to the journal in one step, so the journal
            // writes them in order and a follower's cursor never passes one unwritten.
            let mut clock = self.clock.lock().expect("hub clock lock");
            stamp(&mut event, &mut clock);
            let event = Arc::new(event);
            self.journal_outlet.offer(&event, &self.journal_dropped);
            event
        };
        if let Some(outlet) = self.elastic.read().expect("hub elastic lock").as_ref() {
            outlet.offer(&event, &self.elastic_dropped);
        }
    }
}

/// The last id handed out: its millisecond and sequence number.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    ms: u64,
    seq: u64,
}

/// Gives `event` its id and times. Ids never go back, even when the wall clock does: the
/// id's millisecond is the later of now and the last one.
fn stamp(event: &mut Event, clock: &mut Clock) {
    let now = std::time::SystemTime::now();
    let at_ms = crate::unix_ms(now);
    clock.ms = clock.ms.max(at_ms);
    clock.seq += 1;
    event.id = format!("{:013}-{:010}", clock.ms, clock.seq);
    event.at_ms = at_ms;
    event.timestamp = humantime::format_rfc3339_millis(now).to_string();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_ids_sort_by_time_then_sequence_and_never_go_back() {
        let mut clock = Clock::default();
        let mut a = Event::default();
        let mut b = Event::default();
        stamp(&mut a, &mut clock);
        stamp(&mut b, &mut clock);
        assert!(a.id < b.id, "{} < {}", a.id, b.id);
        assert!(a.timestamp.ends_with('Z') && a.timestamp.contains('T'), "{}", a.timestamp);
        assert_eq!(a.id.len(), 13 + 1 + 10);
        // The wall clock stepped back an hour: ids still grow.
        clock.ms += 3_600_000;
        let mut c = Event::default();
        stamp(&mut c, &mut clock);
        assert!(b.id < c.id, "{} < {}", b.id, c.id);
        assert!(c.at_ms < clock.ms, "at_ms keeps the real time");
    }
}
