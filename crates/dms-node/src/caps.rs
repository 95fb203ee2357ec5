//! Capability contexts kept in the node's store (table `cap_contexts`), behind
//! [`dms_ucan::ContextStore`], with optimistic concurrency: a save names the version it
//! started from.
//!
//! While the daemon runs, every change goes through its [`dms_ucan::Contexts`] (the one
//! write path, which puts the change in force in every running actor); the CLI writes
//! the store itself only when no daemon holds it.

use dms_store::{Repo, Store};
use dms_ucan::{CapContext, ContextStore, Error};

const CONTEXTS: Repo<CapContext> = Repo::new("cap_contexts");

/// The name of the node's own capability context.
pub const NODE_CONTEXT: &str = "dms";

/// Contexts in a node's store.
#[derive(Clone)]
pub struct StoreContexts(pub Store);

fn store_error(e: dms_store::Error) -> Error {
    Error::Store(e.to_string())
}

impl ContextStore for StoreContexts {
    fn load(&self, name: &str) -> Result<Option<CapContext>, Error> {
        CONTEXTS.get_now(&self.0, name).map_err(store_error)
    }

    fn list(&self) -> Result<Vec<CapContext>, Error> {
        Ok(CONTEXTS.list_now(&self.0).map_err(store_error)?.into_iter().map(|(_, c)| c).collect())
    }

    fn save(&self, context: &CapContext, expected: Option<u64>) -> Result<(), Error> {
        let mut conflict = None;
        let written = self.0.write(|tx| {
            let current = CONTEXTS.get(tx, &context.name)?.map(|c| c.version);
            if current != expected {
                conflict = Some(current);
                return Err(dms_store::Error::custom(Error::conflict(
                    &context.name,
                    current,
                    expected,
                )));
            }
            CONTEXTS.put(tx, &context.name, context)
        });
        match (written, conflict) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(current)) => Err(Error::conflict(&context.name, current, expected)),
            (Err(error), None) => Err(store_error(error)),
        }
    }

    fn remove(&self, name: &str) -> Result<bool, Error> {
        CONTEXTS.delete_now(&self.0, name).map_err(store_error)
    }
}
