//! Live capability contexts: one shared copy per identity, changed through one write path.
//!
//! Every actor of an identity (a node's root actor, its orchestrators, its allocation
//! actors) authorizes with the same [`LiveContext`]. Every change goes through
//! [`Contexts`]: it is written to the [`ContextStore`] first, then put in force in the
//! live copy, and the verifier's cache is cleared — all before the call returns, so the
//! next message any actor authorizes sees it. Nothing else writes contexts while a node
//! runs; the API and the CLI go through the node.
//!
//! Storage is the caller's: this crate defines the [`ContextStore`] trait and knows no
//! database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use crate::context::CapContext;
use crate::error::Error;
use crate::verify::Verifier;

/// One identity's capability context, shared by every actor of that identity.
///
/// Cloning shares it. Reads take a read lock for the duration of one authorization.
#[derive(Clone, Debug)]
pub struct LiveContext(Arc<RwLock<CapContext>>);

impl LiveContext {
    /// A live context starting as `context` (not registered with any [`Contexts`]: for
    /// tests and tools).
    pub fn new(context: CapContext) -> LiveContext {
        LiveContext(Arc::new(RwLock::new(context)))
    }

    /// Reads the context in force.
    pub fn read(&self) -> RwLockReadGuard<'_, CapContext> {
        // A writer never panics while holding the lock (changes are applied to a copy
        // first), so a poisoned lock still holds a whole context.
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the context in force.
    pub fn snapshot(&self) -> CapContext {
        self.read().clone()
    }

    /// Changes the context in force in memory only (tests and tools; a running node
    /// changes contexts through [`Contexts`], which also stores them).
    pub fn update<T>(&self, change: impl FnOnce(&mut CapContext) -> T) -> T {
        let mut context = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut context)
    }

    fn replace(&self, context: CapContext) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = context;
    }

    /// Whether both share one context.
    pub fn same(&self, other: &LiveContext) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<CapContext> for LiveContext {
    fn from(context: CapContext) -> LiveContext {
        LiveContext::new(context)
    }
}

/// Where contexts are kept (the node's store). Implementations are blocking; async
/// callers run them off the async threads.
pub trait ContextStore: Send + Sync + 'static {
    /// The context named `name`, if stored.
    fn load(&self, name: &str) -> Result<Option<CapContext>, Error>;
    /// Every stored context.
    fn list(&self) -> Result<Vec<CapContext>, Error>;
    /// Stores `context` if the stored version is still `expected` (`None`: it must not
    /// exist yet); fails with [`Error::Conflict`] otherwise.
    fn save(&self, context: &CapContext, expected: Option<u64>) -> Result<(), Error>;
    /// Removes a context; whether it existed.
    fn remove(&self, name: &str) -> Result<bool, Error>;
}

/// The one write path to a node's capability contexts, and their live copies.
pub struct Contexts {
    store: Box<dyn ContextStore>,
    verifier: Arc<Verifier>,
    live: RwLock<HashMap<String, LiveContext>>,
    /// Serializes writes, so that a store write and its live update are not interleaved
    /// with another's.
    writing: Mutex<()>,
}

/// How many times [`Contexts::change`] retries when the stored context moved meanwhile.
const CHANGE_ATTEMPTS: usize = 5;

impl Contexts {
    /// The contexts kept in `store`, with `verifier`'s cache cleared on every change.
    pub fn new(store: impl ContextStore, verifier: Arc<Verifier>) -> Contexts {
        Contexts {
            store: Box::new(store),
            verifier,
            live: RwLock::new(HashMap::new()),
            writing: Mutex::new(()),
        }
    }

    /// The verifier whose cache changes clear.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// The live copy of context `name`, loaded on first use. Every caller gets the same
    /// copy, and every change through these contexts is in force in it at once.
    pub fn live(&self, name: &str) -> Result<LiveContext, Error> {
        if let Some(live) = self.live.read().ok().and_then(|l| l.get(name).cloned()) {
            return Ok(live);
        }
        let _writing = self.lock();
        if let Some(live) = self.live.read().ok().and_then(|l| l.get(name).cloned()) {
            return Ok(live);
        }
        let context = self.store.load(name)?.ok_or_else(|| {
            Error::Context(format!(
                "no capability context '{name}'; create it with `dms cap new {name}`"
            ))
        })?;
        let live = LiveContext::new(context);
        if let Ok(mut all) = self.live.write() {
            all.insert(name.to_string(), live.clone());
        }
        Ok(live)
    }

    /// A context as stored (the live copy, when there is one, is the same).
    pub fn load(&self, name: &str) -> Result<Option<CapContext>, Error> {
        self.store.load(name)
    }

    /// Every stored context.
    pub fn list(&self) -> Result<Vec<CapContext>, Error> {
        self.store.list()
    }

    /// Stores `context` if the stored version is still `expected` and puts it in force.
    pub fn save(&self, context: CapContext, expected: Option<u64>) -> Result<(), Error> {
        let _writing = self.lock();
        self.store.save(&context, expected)?;
        self.put_in_force(context);
        Ok(())
    }

    /// Removes a context. A live copy is emptied (no roots, anchors or grants: nothing
    /// it admitted is admitted any more) and keeps its owner.
    pub fn remove(&self, name: &str) -> Result<bool, Error> {
        let _writing = self.lock();
        let existed = self.store.remove(name)?;
        let live = self.live.read().ok().and_then(|l| l.get(name).cloned());
        if let Some(live) = live {
            let did = live.read().did.clone();
            live.replace(CapContext::new(name, did));
        }
        self.verifier.clear();
        Ok(existed)
    }

    /// Loads context `name`, applies `change`, stores it and puts it in force; retries
    /// when another writer (the CLI offline, before this node started) moved it. A
    /// change that leaves the version as it was writes nothing.
    pub fn change<T, E: From<Error>>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut CapContext) -> Result<T, E>,
    ) -> Result<T, E> {
        for _ in 0..CHANGE_ATTEMPTS {
            let _writing = self.lock();
            let mut context = self
                .store
                .load(name)?
                .ok_or_else(|| Error::Context(format!("no capability context '{name}'")))?;
            let expected = context.version;
            let result = change(&mut context)?;
            if context.version == expected {
                return Ok(result);
            }
            match self.store.save(&context, Some(expected)) {
                Ok(()) => {
                    self.put_in_force(context);
                    return Ok(result);
                }
                Err(Error::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(Error::Conflict(format!("capability context '{name}' kept changing; try again")).into())
    }

    fn put_in_force(&self, context: CapContext) {
        let live = self.live.read().ok().and_then(|l| l.get(&context.name).cloned());
        if let Some(live) = live {
            live.replace(context);
        }
        self.verifier.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Contexts in memory (tests, tools).
#[derive(Default)]
pub struct MemoryStore(Mutex<HashMap<String, CapContext>>);

impl ContextStore for MemoryStore {
    fn load(&self, name: &str) -> Result<Option<CapContext>, Error> {
        Ok(self.0.lock().map_err(|_| Error::Store("poisoned".into()))?.get(name).cloned())
    }

    fn list(&self) -> Result<Vec<CapContext>, Error> {
        Ok(self.0.lock().map_err(|_| Error::Store("poisoned".into()))?.values().cloned().collect())
    }

    fn save(&self, context: &CapContext, expected: Option<u64>) -> Result<(), Error> {
        let mut all = self.0.lock().map_err(|_| Error::Store("poisoned".into()))?;
        let current = all.get(&context.name).map(|c| c.version);
        if current != expected {
            return Err(Error::conflict(&context.name, current, expected));
        }
        all.insert(context.name.clone(), context.clone());
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<bool, Error> {
        Ok(self.0.lock().map_err(|_| Error::Store("poisoned".into()))?.remove(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dms_crypto::{KeyPair, KeyType};

    fn contexts() -> (Contexts, KeyPair) {
        let key = KeyPair::generate(KeyType::Ed25519);
        let store = MemoryStore::default();
        store.save(&CapContext::new("dms", key.did()), None).expect("create");
        (Contexts::new(store, Arc::new(Verifier::default())), key)
    }

    #[test]
    fn a_change_is_in_force_in_every_copy_at_once() {
        let (contexts, _) = contexts();
        let (a, b) = (contexts.live("dms").expect("live"), contexts.live("dms").expect("live"));
        assert!(a.same(&b), "one live copy per identity");
        let root = KeyPair::generate(KeyType::Ed25519).did();
        contexts
            .change::<_, Error>("dms", |c| {
                c.add_root(root.clone());
                Ok(())
            })
            .expect("change");
        assert!(b.read().roots.contains(&root));
        assert_eq!(contexts.load("dms").expect("load").expect("stored").roots.len(), 1);
    }

    #[test]
    fn removal_empties_the_live_copy() {
        let (contexts, key) = contexts();
        let live = contexts.live("dms").expect("live");
        let mut stored = contexts.load("dms").expect("load").expect("stored");
        stored.add_root(KeyPair::generate(KeyType::Ed25519).did());
        let version = Some(0);
        contexts.save(stored, version).expect("save");
        assert_eq!(live.read().roots.len(), 1);
        assert!(contexts.remove("dms").expect("remove"));
        assert!(live.read().roots.is_empty(), "a removed root is no longer trusted");
        assert_eq!(live.read().did, key.did(), "the owner stays");
    }

    #[test]
    fn stale_saves_are_refused() {
        let (contexts, _) = contexts();
        let mut first = contexts.load("dms").expect("load").expect("stored");
        first.add_root(KeyPair::generate(KeyType::Ed25519).did());
        contexts.save(first.clone(), Some(0)).expect("first writer wins");
        let error = contexts.save(first, Some(0)).expect_err("stale");
        assert!(matches!(error, Error::Conflict(_)), "{error}");
    }
}
