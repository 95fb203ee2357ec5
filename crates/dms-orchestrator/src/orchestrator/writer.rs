//! The writer of a deployment's record: off the async path, in order, coalescing bursts
//! (the latest record is written), flushing to disk when a change asked for it. Writes
//! of all deployments are group-committed ([`dms_store::Store::write_grouped`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, watch};
use tracing::warn;

use super::{DEPLOYMENTS, Orchestrator};

/// Writes a deployment's record to the store off the async path: in order, coalescing
/// bursts (the latest record is written), flushing to disk when a change asked for it.
pub(crate) struct Writer {
    /// Something changed.
    pub(crate) dirty: Arc<Notify>,
    /// A change since the last write must be durable.
    pub(crate) durable: Arc<AtomicBool>,
    /// The highest event sequence number durably written.
    pub(crate) flushed: watch::Receiver<u64>,
    /// Set when the deployment is pruned: the writer ends without writing again.
    pub(crate) closed: Arc<AtomicBool>,
    /// Held for each write, so that a prune can wait out the write in progress.
    pub(crate) writing: Arc<tokio::sync::Mutex<()>>,
}

impl Writer {
    pub(crate) fn start(
        orchestrator: std::sync::Weak<Orchestrator>,
        dirty: Arc<Notify>,
        durable: Arc<AtomicBool>,
        flushed: watch::Sender<u64>,
        closed: Arc<AtomicBool>,
        writing: Arc<tokio::sync::Mutex<()>>,
    ) {
        tokio::spawn(async move {
            loop {
                dirty.notified().await;
                let _writing = writing.lock().await;
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                let Some(o) = orchestrator.upgrade() else { return };
                let wants_durable = durable.swap(false, Ordering::SeqCst);
                let record = o.snapshot();
                let store = o.shared.store.clone();
                drop(o);
                let seq = record.next_seq;
                // Grouped with the other deployments' writes: under load, one
                // transaction and one flush for many records.
                let written = store
                    .write_grouped_async(wants_durable, move |tx| {
                        DEPLOYMENTS.put(tx, &record.id, &record)
                    })
                    .await;
                match written {
                    Ok(()) if wants_durable => {
                        flushed.send_replace(seq);
                    }
                    Ok(()) => {}
                    Err(error) => warn!(%error, "Could not persist a deployment."),
                }
            }
        });
    }
}
