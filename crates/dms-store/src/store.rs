//! The database handle ([`Store`]) and its transactions ([`ReadTx`], [`WriteTx`], [`Readable`]).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{DatabaseError, ReadableDatabase, StorageError};

use crate::error::storage;
use crate::{Collection, Error};

/// A handle to one database file.
///
/// Cheap to clone (an [`Arc`]); clones share the same open database and may be used from any
/// thread. The file is locked for as long as any clone is alive, so a second process (or a
/// second [`Store::open`] in this process) gets [`Error::Locked`].
///
/// All operations block on disk I/O (a write fsyncs on commit); from async code call them from
/// a blocking-capable context such as `tokio::task::spawn_blocking`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    db: redb::Database,
    path: PathBuf,
    /// Grouped writes waiting for a commit ([`Store::write_grouped`]).
    group: crate::group::Group,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `path`, creating it (and its parent directories) if needed.
    ///
    /// A file left behind by a crashed process is repaired during the open, which reads the
    /// whole file and can take a moment on large databases.
    ///
    /// # Errors
    ///
    /// - [`Error::Locked`] if another process (for example another dms on the same home) or
    ///   another `Store` of this process has the file open.
    /// - [`Error::Io`] if the parent directory cannot be created or the file cannot be opened.
    /// - [`Error::Open`] if the file is not a usable database.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, Error> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| Error::Io { path: parent.to_path_buf(), source })?;
        }
        let db = redb::Database::builder().create(&path).map_err(|err| match err {
            DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                Error::Locked { path: path.clone() }
            }
            // redb reports a file that is not a database as an I/O error of kind InvalidData:
            // that is a bad file, not a filesystem failure.
            DatabaseError::Storage(StorageError::Io(source))
                if source.kind() != std::io::ErrorKind::InvalidData =>
            {
                Error::Io { path: path.clone(), source }
            }
            source => Error::Open { path: path.clone(), source },
        })?;
        Ok(Store { inner: Arc::new(Inner { db, path, group: Default::default() }) })
    }

    /// The path of the database file, as given to [`Store::open`].
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Begins a read transaction: a consistent snapshot of everything committed so far. Reads
    /// never block writes and vice versa.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the storage engine cannot start a transaction.
    pub fn read(&self) -> Result<ReadTx, Error> {
        let inner = self.inner.db.begin_read().map_err(storage)?;
        Ok(ReadTx { inner })
    }

    /// Runs `f` in a write transaction and commits it if `f` returns `Ok`.
    ///
    /// Everything written through the transaction — to any number of [`crate::Repo`]s and
    /// [`Collection`]s — becomes visible and durable at once: when this returns `Ok`, the commit
    /// has been fsynced and survives a crash or power loss. If `f` returns `Err` (or panics) the
    /// transaction is aborted and nothing it wrote is kept; the error from `f` is returned
    /// unchanged. Use [`Error::custom`] to abort with an error of your own.
    ///
    /// Write transactions are serialized: a call waits for the write in progress on another
    /// thread to finish.
    ///
    /// # Errors
    ///
    /// - Whatever `f` returns.
    /// - [`Error::NestedWrite`] if called from inside `f` of a write on the same store.
    /// - [`Error::Storage`] if the transaction cannot begin.
    /// - [`Error::Commit`] if the commit fails (see that variant for the resulting state).
    pub fn write<T>(&self, f: impl FnOnce(&WriteTx) -> Result<T, Error>) -> Result<T, Error> {
        self.write_with(true, f)
    }

    /// Like [`Store::write`], but the commit is not flushed to disk: it is visible to
    /// every later read at once, and becomes durable with the next [`Store::write`]. A
    /// crash before that loses it (and every lazy write since the last durable one),
    /// never half of it. For state that is cheap to lose: progress notes, short-lived
    /// reservations.
    ///
    /// # Errors
    ///
    /// As [`Store::write`].
    pub fn write_lazy<T>(&self, f: impl FnOnce(&WriteTx) -> Result<T, Error>) -> Result<T, Error> {
        self.write_with(false, f)
    }

    pub(crate) fn group(&self) -> &crate::group::Group {
        &self.inner.group
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    pub(crate) fn write_with<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&WriteTx) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _guard = WriteGuard::enter(&self.inner)?;
        let mut inner = self.inner.db.begin_write().map_err(storage)?;
        if !durable {
            inner.set_durability(redb::Durability::None).map_err(storage)?;
        }
        let tx = WriteTx { inner };
        match f(&tx) {
            Ok(value) => {
                tx.inner.commit().map_err(Error::Commit)?;
                Ok(value)
            }
            Err(err) => {
                // The caller's error is the one worth reporting. Whether or not the explicit
                // abort succeeds, the transaction is not committed.
                let _ = tx.inner.abort();
                Err(err)
            }
        }
    }

    /// A handle to the JSON document collection `name`.
    ///
    /// The name must be 1 to 128 bytes of ASCII letters, digits, `_`, `-`, `.` and `:`. It is
    /// checked when the collection is first used: every operation on a collection with an
    /// invalid name returns [`Error::InvalidName`]. The collection's tables are created by its
    /// first write; reading a collection that was never written finds nothing.
    #[must_use]
    pub fn collection(&self, name: &str) -> Collection {
        Collection::new(name)
    }
}

thread_local! {
    /// The stores (by address) this thread is inside a write transaction of.
    static ACTIVE_WRITES: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as writing to a store, refusing a nested write on it (which would wait
/// forever for the outer one).
pub(crate) struct WriteGuard {
    id: usize,
}

impl WriteGuard {
    pub(crate) fn enter(inner: &Arc<Inner>) -> Result<WriteGuard, Error> {
        let id = Arc::as_ptr(inner) as usize;
        ACTIVE_WRITES.with(|active| {
            let mut active = active.borrow_mut();
            if active.contains(&id) {
                return Err(Error::NestedWrite);
            }
            active.push(id);
            Ok(WriteGuard { id })
        })
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        ACTIVE_WRITES.with(|active| active.borrow_mut().retain(|id| *id != self.id));
    }
}

/// A read-only snapshot of the database, from [`Store::read`].
///
/// Holding it keeps the snapshot's pages from being reused, so drop it once done.
pub struct ReadTx {
    inner: redb::ReadTransaction,
}

impl std::fmt::Debug for ReadTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTx").finish_non_exhaustive()
    }
}

/// A write transaction, lent to the closure of [`Store::write`].
///
/// Reads through it see the transaction's own uncommitted writes.
pub struct WriteTx {
    pub(crate) inner: redb::WriteTransaction,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx").finish_non_exhaustive()
    }
}

/// Something that can be read from: a [`ReadTx`] or a [`WriteTx`].
///
/// A table (repository or collection) that was never created reads as empty, not as an error.
/// This trait is sealed: it cannot be implemented outside this crate.
pub trait Readable: sealed::Sealed {}

impl Readable for ReadTx {}
impl Readable for WriteTx {}

pub(crate) mod sealed {
    use std::borrow::Borrow;
    use std::ops::{ControlFlow, RangeBounds};

    use redb::{Key, ReadableTable, TableDefinition, TableError, Value};

    use super::{ReadTx, WriteTx, storage};
    use crate::Error;

    /// The crate-internal reading interface behind [`super::Readable`].
    pub trait Sealed {
        /// Opens a table for reading; a table that does not exist is [`TableView::Missing`].
        fn open_view<K: Key + 'static, V: Value + 'static>(
            &self,
            def: TableDefinition<'_, K, V>,
        ) -> Result<TableView<'_, K, V>, Error>;
    }

    impl Sealed for ReadTx {
        fn open_view<K: Key + 'static, V: Value + 'static>(
            &self,
            def: TableDefinition<'_, K, V>,
        ) -> Result<TableView<'_, K, V>, Error> {
            match self.inner.open_table(def) {
                Ok(table) => Ok(TableView::Read(table)),
                Err(TableError::TableDoesNotExist(_)) => Ok(TableView::Missing),
                Err(err) => Err(storage(err)),
            }
        }
    }

    impl Sealed for WriteTx {
        fn open_view<K: Key + 'static, V: Value + 'static>(
            &self,
            def: TableDefinition<'_, K, V>,
        ) -> Result<TableView<'_, K, V>, Error> {
            // Opening a table in a write transaction creates it; an empty table reads the same
            // as a missing one.
            self.inner.open_table(def).map(TableView::Write).map_err(storage)
        }
    }

    /// A table opened for reading from either kind of transaction.
    pub enum TableView<'t, K: Key + 'static, V: Value + 'static> {
        /// The table does not exist: it reads as empty.
        Missing,
        /// Opened from a read transaction.
        Read(redb::ReadOnlyTable<K, V>),
        /// Opened from a write transaction.
        Write(redb::Table<'t, K, V>),
    }

    impl<K: Key + 'static, V: Value + 'static> TableView<'_, K, V> {
        /// Looks `key` up and maps its value with `f`.
        pub fn get_with<'k, R>(
            &self,
            key: impl Borrow<K::SelfType<'k>>,
            f: impl FnOnce(V::SelfType<'_>) -> R,
        ) -> Result<Option<R>, Error> {
            match self {
                TableView::Missing => Ok(None),
                TableView::Read(table) => get_in(table, key, f),
                TableView::Write(table) => get_in(table, key, f),
            }
        }

        /// Calls `f` on each entry of `range` in key order, until it returns
        /// `ControlFlow::Break` or an error.
        pub fn for_each<'a, KR>(
            &self,
            range: impl RangeBounds<KR> + 'a,
            f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<ControlFlow<()>, Error>,
        ) -> Result<(), Error>
        where
            KR: Borrow<K::SelfType<'a>> + 'a,
        {
            match self {
                TableView::Missing => Ok(()),
                TableView::Read(table) => for_each_in(table, range, f),
                TableView::Write(table) => for_each_in(table, range, f),
            }
        }
        /// Calls `f` on every entry in key order, until it returns `ControlFlow::Break` or an
        /// error.
        pub fn for_each_all(
            &self,
            f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<ControlFlow<()>, Error>,
        ) -> Result<(), Error> {
            self.for_each::<K::SelfType<'static>>(.., f)
        }
        /// [`TableView::for_each_all`] in descending key order.
        pub fn for_each_all_rev(
            &self,
            f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<ControlFlow<()>, Error>,
        ) -> Result<(), Error> {
            match self {
                TableView::Missing => Ok(()),
                TableView::Read(table) => for_each_rev_in(table, f),
                TableView::Write(table) => for_each_rev_in(table, f),
            }
        }
    }

    fn for_each_rev_in<K: Key + 'static, V: Value + 'static>(
        table: &impl ReadableTable<K, V>,
        mut f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<ControlFlow<()>, Error>,
    ) -> Result<(), Error> {
        for entry in table.iter().map_err(storage)?.rev() {
            let (key, value) = entry.map_err(storage)?;
            if f(key.value(), value.value())?.is_break() {
                break;
            }
        }
        Ok(())
    }

    fn get_in<'k, K: Key + 'static, V: Value + 'static, R>(
        table: &impl ReadableTable<K, V>,
        key: impl Borrow<K::SelfType<'k>>,
        f: impl FnOnce(V::SelfType<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        let guard = table.get(key).map_err(storage)?;
        Ok(guard.map(|guard| f(guard.value())))
    }

    fn for_each_in<'a, K: Key + 'static, V: Value + 'static, KR>(
        table: &impl ReadableTable<K, V>,
        range: impl RangeBounds<KR> + 'a,
        mut f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<ControlFlow<()>, Error>,
    ) -> Result<(), Error>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        for entry in table.range(range).map_err(storage)? {
            let (key, value) = entry.map_err(storage)?;
            if f(key.value(), value.value())?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_send_sync() {
        assert_send_sync::<Store>();
        assert_send_sync::<ReadTx>();
    }

    #[test]
    fn lazy_writes_are_visible_at_once_and_kept_by_the_next_durable_write() {
        const REPO: crate::Repo<u32> = crate::Repo::new("lazy_test");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dms.redb");
        let store = Store::open(&path).expect("open");
        REPO.put_lazy(&store, "a", &1).expect("lazy write");
        assert_eq!(REPO.get_now(&store, "a").expect("read"), Some(1), "visible at once");
        REPO.put_now(&store, "b", &2).expect("durable write");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(REPO.get_now(&store, "a").expect("read"), Some(1), "flushed with b");
        assert_eq!(REPO.get_now(&store, "b").expect("read"), Some(2));
    }

    #[test]
    fn open_creates_parent_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a").join("b").join("dms.redb");
        let store = Store::open(&path).expect("open");
        assert_eq!(store.path(), path);
        assert!(path.exists());
    }

    #[test]
    fn second_open_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dms.redb");
        let store = Store::open(&path).expect("open");
        let err = Store::open(&path).expect_err("second open must fail");
        assert!(matches!(&err, Error::Locked { path: p } if *p == path), "{err:?}");
        assert!(err.to_string().contains("another dms may be running"));
        drop(store);
        Store::open(&path).expect("reopen after the first handle is dropped");
    }

    #[test]
    fn opening_a_non_database_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not-a-db");
        std::fs::write(&path, b"this is not a redb file, just some text padding it out")
            .expect("write");
        let err = Store::open(&path).expect_err("must fail");
        assert!(matches!(err, Error::Open { .. }), "{err:?}");
    }

    #[test]
    fn open_in_a_file_parent_is_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        let err = Store::open(file.join("dms.redb")).expect_err("must fail");
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }

    #[test]
    fn nested_write_is_refused_not_deadlocked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("db")).expect("open");
        let inner = store.clone();
        let result = store.write(|_tx| inner.write(|_| Ok(())));
        assert!(matches!(result, Err(Error::NestedWrite)), "{result:?}");
        // The guard is released: a following write works.
        store.write(|_| Ok(())).expect("write after nested attempt");
    }

    #[test]
    fn writes_from_several_threads_serialize() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("db")).expect("open");
        let repo: crate::Repo<u64> = crate::Repo::new("counter");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10 {
                        store
                            .write(|tx| {
                                let n = repo.get(tx, "n")?.unwrap_or(0);
                                repo.put(tx, "n", &(n + 1))
                            })
                            .expect("write");
                    }
                });
            }
        });
        assert_eq!(repo.get_now(&store, "n").expect("get"), Some(40));
    }
}
