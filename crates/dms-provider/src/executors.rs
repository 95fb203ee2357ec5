//! The executors allocations run on, by kind. The composition root builds the set
//! (`dms run`: WebAssembly in-process, Docker when its engine answered at start; the
//! test harness: a fake engine under every name), so the provider never connects to an
//! engine itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use dms_ensemble::model::Executor as Kind;
use dms_executor::Executor;

/// Executors by kind, and what the composition root found out about them (machine
/// attributes such as `vm.backend`).
#[derive(Clone, Default)]
pub struct Executors(BTreeMap<String, Arc<dyn Executor>>, BTreeMap<String, String>);

impl Executors {
    /// No executor.
    pub fn new() -> Executors {
        Executors::default()
    }

    /// Runs allocations of `kind` on `executor`.
    #[must_use]
    pub fn with(mut self, kind: Kind, executor: Arc<dyn Executor>) -> Executors {
        self.0.insert(kind.name().to_string(), executor);
        self
    }

    /// Says `value` of the executors in the machine attribute `key` (bids carry it).
    #[must_use]
    pub fn described(mut self, key: &str, value: impl Into<String>) -> Executors {
        self.1.insert(key.into(), value.into());
        self
    }

    /// The attributes [`Executors::described`] set.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.1
    }

    /// The executor of `kind`, if this node has one.
    pub fn get(&self, kind: Kind) -> Option<Arc<dyn Executor>> {
        self.0.get(kind.name()).cloned()
    }

    /// The kinds this node runs (`docker`, `wasm`), as bids advertise them.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}
