//! Group commit: writes from many callers share one transaction and one flush.
//!
//! A write is queued with [`Store::write_queued`]; the first caller to find no commit in
//! progress gets a [`Committer`] and runs it (in a blocking context): it takes
//! everything queued, runs it in one write transaction, commits (flushing to disk when
//! any write asked for it), tells every write its outcome, and goes on while more
//! arrived meanwhile. The other callers only wait for their outcome — an async caller
//! without holding a thread. Under load, N concurrent writes cost one fsync per batch
//! instead of N, the way a database's log is group-committed; alone, a write costs
//! what [`Store::write`] does. [`Store::write_grouped`] is the blocking form.
//!
//! A write that fails aborts its batch; the batch is then run again one write per
//! transaction, so each caller gets its own outcome and nobody else's failure.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::{Error, Store, WriteTx};

/// One queued write.
type Job = Box<dyn Fn(&WriteTx) -> Result<(), Error> + Send>;
/// Where its outcome goes.
type Done = Box<dyn FnOnce(Result<(), Error>) + Send>;

struct Queued {
    job: Job,
    durable: bool,
    done: Done,
}

/// The queue of a store's grouped writes.
#[derive(Default)]
pub(crate) struct Group {
    state: Mutex<Queue>,
    /// Transactions committed for grouped writes (a batch retried one by one counts
    /// one for each).
    commits: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Queued>,
    /// A committer is running; it takes what is queued.
    leading: bool,
}

/// The duty to commit what is queued, handed to the caller that found no commit in
/// progress. Run it in a blocking context (`spawn_blocking`); dropping it unrun
/// runs it (blocking the dropping thread) rather than strand the queue.
#[must_use = "a Committer must run, or the queued writes wait forever"]
pub struct Committer {
    store: Option<Store>,
}

impl Committer {
    /// Commits batches until the queue is empty.
    pub fn run(mut self) {
        if let Some(store) = self.store.take() {
            store.lead();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.lead();
        }
    }
}

impl Store {
    /// Queues `write` for the next group commit; `done` receives its outcome once it
    /// is committed — flushed to disk when `durable` (or when another write of the
    /// batch asked for it), as [`Store::write`] and [`Store::write_lazy`] otherwise
    /// promise. Returns a [`Committer`] when no commit is in progress: the caller must
    /// run it. Does not block.
    ///
    /// `write` may run twice (a failed batch is retried one write at a time), so it
    /// must only write, not have other effects. `done` runs on the committing thread:
    /// keep it short (send the outcome somewhere), and never write to this store from
    /// it (the commit in progress would wait for itself).
    pub fn write_queued(
        &self,
        durable: bool,
        write: impl Fn(&WriteTx) -> Result<(), Error> + Send + 'static,
        done: impl FnOnce(Result<(), Error>) + Send + 'static,
    ) -> Option<Committer> {
        let mut queue = self.group().state.lock().unwrap_or_else(PoisonError::into_inner);
        queue.pending.push(Queued { job: Box::new(write), durable, done: Box::new(done) });
        let lead = !std::mem::replace(&mut queue.leading, true);
        lead.then(|| Committer { store: Some(self.clone()) })
    }

    /// [`Store::write_queued`], waiting for the outcome: blocks; call it from a
    /// blocking context.
    ///
    /// # Errors
    ///
    /// What `write` returns, [`Error::NestedWrite`] from inside a write on this store,
    /// or the commit's error.
    pub fn write_grouped(
        &self,
        durable: bool,
        write: impl Fn(&WriteTx) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        // A grouped write from inside a write on this store would wait for a commit
        // that waits for it.
        drop(crate::store::WriteGuard::enter(self.inner())?);
        let slot = Arc::new((Mutex::new(None), Condvar::new()));
        let filled = slot.clone();
        let done = move |result| {
            *filled.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            filled.1.notify_one();
        };
        if let Some(committer) = self.write_queued(durable, write, done) {
            committer.run();
        }
        let mut result = slot.0.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(result) = result.take() {
                return result;
            }
            result = slot.1.wait(result).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// [`Store::write_queued`] for async code: waits for the outcome without holding
    /// a thread; when it must commit, it commits on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// What `write` returns, or the commit's error.
    pub async fn write_grouped_async(
        &self,
        durable: bool,
        write: impl Fn(&WriteTx) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = move |result| {
            let _ = tx.send(result);
        };
        if let Some(committer) = self.write_queued(durable, write, done) {
            tokio::task::spawn_blocking(move || committer.run());
        }
        rx.await.unwrap_or_else(|_| Err(Error::custom("the group commit ended unanswered")))
    }

    /// Commits batches until the queue is empty, then steps down (also when unwinding,
    /// so that the next write leads instead of waiting for ever).
    fn lead(&self) {
        struct StepDown<'a>(&'a Group);
        impl Drop for StepDown<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.state.lock().unwrap_or_else(PoisonError::into_inner).leading = false;
                }
            }
        }
        let _step_down = StepDown(self.group());
        loop {
            let batch = {
                let mut queue = self.group().state.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.pending.is_empty() {
                    queue.leading = false;
                    return;
                }
                std::mem::take(&mut queue.pending)
            };
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&self, batch: Vec<Queued>) {
        let durable = batch.iter().any(|q| q.durable);
        self.group().commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A write that panics aborts the transaction; it is answered as failed, not
        // left waiting.
        let together = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.write_with(durable, |tx| {
                for queued in &batch {
                    (queued.job)(tx)?;
                }
                Ok(())
            })
        }))
        .unwrap_or_else(|_| Err(Error::custom("a grouped write panicked")));
        match together {
            Ok(()) => batch.into_iter().for_each(|q| answer(q.done, Ok(()))),
            Err(error) if batch.len() == 1 => {
                if let Some(queued) = batch.into_iter().next() {
                    answer(queued.done, Err(error));
                }
            }
            // The commit itself failed: its outcome is unknown (it may be on disk), so
            // it is not retried; every write of the batch hears so.
            Err(Error::Commit(error)) => {
                let told = format!("the group commit failed, its outcome unknown: {error}");
                batch.into_iter().for_each(|q| answer(q.done, Err(Error::custom(told.clone()))));
            }
            // One write failed: each on its own, so the failure is its caller's alone.
            Err(_) => {
                for queued in batch {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.write_with(queued.durable, |tx| (queued.job)(tx))
                    }))
                    .unwrap_or_else(|_| Err(Error::custom("a grouped write panicked")));
                    answer(queued.done, result);
                }
            }
        }
    }
}

/// Tells a write its outcome; a `done` that panics does not take the committer (and
/// every write queued behind it) down.
/// (The panic hook has reported the panic.)
fn answer(done: Done, result: Result<(), Error>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(result)));
}

#[cfg(test)]
mod tests {
    use crate::{Repo, Store};

    const NUMBERS: Repo<u64> = Repo::new("numbers");

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("db.redb")).expect("opens");
        (dir, store)
    }

    #[test]
    fn concurrent_writes_all_land() {
        let (_dir, store) = store();
        let threads: Vec<_> = (0..16u64)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        let n = t * 1000 + i;
                        store
                            .write_grouped(i % 2 == 0, move |tx| {
                                NUMBERS.put(tx, &n.to_string(), &n)
                            })
                            .expect("written");
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("thread"));
        let tx = store.read().expect("read");
        assert_eq!(NUMBERS.count(&tx).expect("count"), 16 * 50);
        assert_eq!(NUMBERS.get(&tx, "15049").expect("get"), Some(15049));
    }

    /// While the writer lock is held, one grouped write leads (and waits for it) and
    /// the ones queued behind it are committed together in a single transaction.
    #[test]
    fn writes_queued_behind_a_commit_share_the_next_one() {
        let (_dir, store) = store();
        let commits = |s: &Store| s.group().commits.load(std::sync::atomic::Ordering::Relaxed);
        let pending = |s: &Store| s.group().state.lock().expect("queue").pending.len();
        let (hold, release) = std::sync::mpsc::channel::<()>();
        let (held, is_held) = std::sync::mpsc::channel::<()>();
        let holder = store.clone();
        let outer = std::thread::spawn(move || {
            holder
                .write(|_| {
                    held.send(()).expect("told");
                    release.recv().expect("released");
                    Ok(())
                })
                .expect("outer write")
        });
        is_held.recv().expect("the writer lock is held");
        let write = |n: u64| {
            let store = store.clone();
            std::thread::spawn(move || {
                store.write_grouped(true, move |tx| NUMBERS.put(tx, &n.to_string(), &n))
            })
        };
        let leader = write(0);
        while commits(&store) == 0 {
            std::thread::yield_now();
        }
        let followers: Vec<_> = (1..=5).map(write).collect();
        while pending(&store) < 5 {
            std::thread::yield_now();
        }
        hold.send(()).expect("release");
        outer.join().expect("outer");
        leader.join().expect("leader").expect("written");
        followers.into_iter().for_each(|f| f.join().expect("follower").expect("written"));
        assert_eq!(commits(&store), 2, "the leader's, then the five together");
        let tx = store.read().expect("read");
        assert_eq!(NUMBERS.count(&tx).expect("count"), 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_writes_all_land() {
        let (_dir, store) = store();
        let writes = (0..100u64).map(|n| {
            let store = store.clone();
            async move {
                store
                    .write_grouped_async(n % 3 == 0, move |tx| NUMBERS.put(tx, &n.to_string(), &n))
                    .await
            }
        });
        for result in futures_join(writes).await {
            result.expect("written");
        }
        let tx = store.read().expect("read");
        assert_eq!(NUMBERS.count(&tx).expect("count"), 100);
    }

    async fn futures_join<F: std::future::Future + Send + 'static>(
        futures: impl Iterator<Item = F>,
    ) -> Vec<F::Output>
    where
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut outputs = Vec::new();
        for handle in handles {
            outputs.push(handle.await.expect("task"));
        }
        outputs
    }

    #[test]
    fn a_failing_write_fails_alone() {
        let (_dir, store) = store();
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store.write_grouped(true, move |tx| {
                        if t == 3 {
                            return Err(crate::Error::custom(format!("write {t} refused")));
                        }
                        NUMBERS.put(tx, &t.to_string(), &t)
                    })
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
        for (t, result) in results.iter().enumerate() {
            assert_eq!(result.is_err(), t == 3, "write {t}: {result:?}");
        }
        let tx = store.read().expect("read");
        assert_eq!(NUMBERS.count(&tx).expect("count"), 7);
        assert_eq!(NUMBERS.get(&tx, "3").expect("get"), None);
    }

    #[test]
    fn a_grouped_write_inside_a_write_is_refused() {
        let (_dir, store) = store();
        let inner = store.clone();
        let nested = store.write(|_| inner.write_grouped(true, |tx| NUMBERS.put(tx, "x", &1)));
        assert!(matches!(nested, Err(crate::Error::NestedWrite)), "{nested:?}");
    }
}
