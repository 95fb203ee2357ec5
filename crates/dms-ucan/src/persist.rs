//! Capability contexts persisted in the node's store (table `cap_contexts`), with
//! optimistic concurrency: a save names the version it started from.

use dms_store::{Repo, Store};

use crate::Error;
use crate::context::CapContext;

const CONTEXTS: Repo<CapContext> = Repo::new("cap_contexts");

fn store_error(e: dms_store::Error) -> Error {
    Error::Store(e.to_string())
}

/// Loads a context by name.
pub fn load(store: &Store, name: &str) -> Result<Option<CapContext>, Error> {
    CONTEXTS.get_now(store, name).map_err(store_error)
}

/// All contexts, by name.
pub fn list(store: &Store) -> Result<Vec<CapContext>, Error> {
    Ok(CONTEXTS.list_now(store).map_err(store_error)?.into_iter().map(|(_, c)| c).collect())
}

/// Saves `context` if the stored version is still `expected_version` (`None`: the
/// context must not exist yet). Fails with a message to retry otherwise.
pub fn save(
    store: &Store,
    context: &CapContext,
    expected_version: Option<u64>,
) -> Result<(), Error> {
    store
        .write(|tx| {
            let current = CONTEXTS.get(tx, &context.name)?.map(|c| c.version);
            if current != expected_version {
                return Err(dms_store::Error::custom(Error::Context(format!(
                    "context '{}' changed while this command ran (version {current:?}, expected \
                     {expected_version:?}); run the command again",
                    context.name
                ))));
            }
            CONTEXTS.put(tx, &context.name, context)
        })
        .map_err(store_error)
}

/// Removes a context. Returns whether it existed.
pub fn remove(store: &Store, name: &str) -> Result<bool, Error> {
    CONTEXTS.delete_now(store, name).map_err(store_error)
}
