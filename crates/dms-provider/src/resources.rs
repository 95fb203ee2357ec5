//! The resource manager: what this machine offers (onboarded), what is promised to
//! deployments for a while (committed: reservations with a time to live), what runs
//! (allocated), and what is left (free).
//!
//! Invariant, checked under one lock on every change: `committed + allocated ≤
//! onboarded`. Every change is written through to the store in one transaction before
//! it is visible, so a restart finds the same state; reservations that expired while
//! the node was down are dropped on load. Expiry needs no timer: every read and change
//! first drops the reservations whose time has passed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dms_store::{Repo, Store};
use dms_types::resources::{Resources, format_bytes, format_cpu};

/// Why a resource change was refused. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The machine does not have what was asked for.
    #[error("cannot onboard {what}: this machine has {max}; ask for at most that")]
    OverAsk {
        /// What was asked for, e.g. "64 CPU cores".
        what: String,
        /// The machine's limit.
        max: String,
    },
    /// Nothing is onboarded.
    #[error("this machine is not onboarded: run `dms onboard --cpu N --ram SIZE --disk SIZE`")]
    NotOnboarded,
    /// The new amounts are below what is already promised or running.
    #[error(
        "cannot onboard less than is in use: {in_use} is committed or allocated; \
         wait for deployments to finish or lower them first"
    )]
    BelowUse {
        /// What is in use.
        in_use: String,
    },
    /// Offboarding while workloads run.
    #[error("cannot offboard: {count} allocation(s) are running; stop them first")]
    Busy {
        /// Running allocations.
        count: usize,
    },
    /// Not enough free resources for a reservation.
    #[error("not enough free resources: needs {needs}, {free} free")]
    Insufficient {
        /// What was asked for.
        needs: String,
        /// What is free.
        free: String,
    },
    /// No such reservation (expired or never made).
    #[error("no reservation {id} (it may have expired)")]
    NoReservation {
        /// The reservation id.
        id: String,
    },
    /// The id is already in use.
    #[error("{id} is already reserved or allocated")]
    Duplicate {
        /// The id.
        id: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] dms_store::Error),
}

pub use dms_protocol::onboarding::{Accounts, Onboarding, Reservation};

const ONBOARDING: Repo<Onboarding> = Repo::new("resources_onboarding");
const RESERVATIONS: Repo<Reservation> = Repo::new("resources_reservations");
const ALLOCATIONS: Repo<Resources> = Repo::new("resources_allocations");
const KEY: &str = "machine";

/// Where the time comes from (tests drive it by hand).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Unix milliseconds from the system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default()
    })
}

#[derive(Clone, Default)]
struct State {
    onboarded: Option<Onboarding>,
    reservations: BTreeMap<String, Reservation>,
    allocations: BTreeMap<String, Resources>,
}

/// The accounts of one machine; cheap to clone, safe to share.
///
/// Changes are serialized by `writer`, held across their commit (the store sees them
/// in order); the committed state is swapped in afterwards. Readers (`status`: every
/// bid, every capacity advert) copy the committed state out under a lock held for an
/// instant, so they never wait on a change's fsync — on a runtime with two workers, a
/// few readers parked behind one slow commit stalled every node of the process.
#[derive(Clone)]
pub struct ResourceManager {
    store: Store,
    writer: Arc<Mutex<()>>,
    state: Arc<Mutex<Arc<State>>>,
    clock: Clock,
}

fn sum<'a>(items: impl Iterator<Item = &'a Resources>) -> Resources {
    items.fold(Resources::default(), |total, r| {
        total.checked_add(r).expect("accounted resources never overflow u64")
    })
}

impl State {
    fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let expired: Vec<String> = self
            .reservations
            .values()
            .filter(|r| r.expires_ms <= now_ms)
            .map(|r| r.id.clone())
            .collect();
        for id in &expired {
            self.reservations.remove(id);
        }
        expired
    }

    fn in_use(&self) -> Resources {
        sum(self.reservations.values().map(|r| &r.resources))
            .checked_add(&sum(self.allocations.values()))
            .expect("accounted resources never overflow u64")
    }

    fn free(&self) -> Resources {
        match &self.onboarded {
            Some(o) => o.resources.saturating_sub(&self.in_use()),
            None => Resources::default(),
        }
    }
}

impl ResourceManager {
    /// Loads the accounts from `store`, dropping reservations that expired meanwhile.
    pub fn open(store: Store, clock: Clock) -> Result<ResourceManager, ResourceError> {
        let now = clock();
        let mut state = {
            let tx = store.read()?;
            State {
                onboarded: ONBOARDING.get(&tx, KEY)?,
                reservations: RESERVATIONS.list(&tx)?.into_iter().collect(),
                allocations: ALLOCATIONS.list(&tx)?.into_iter().collect(),
            }
        };
        let expired = state.expire(now);
        if !expired.is_empty() {
            store.write(|tx| {
                for id in &expired {
                    RESERVATIONS.delete(tx, id)?;
                }
                Ok(())
            })?;
        }
        Ok(ResourceManager {
            store,
            writer: Arc::default(),
            state: Arc::new(Mutex::new(Arc::new(state))),
            clock,
        })
    }

    /// Runs `change` on the state (expired reservations dropped first), one change at a time,
    /// writing the expired deletions and whatever `change` writes in one transaction.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut State, &dms_store::WriteTx) -> Result<T, ResourceError>,
    ) -> Result<T, ResourceError> {
        self.change_with(true, change)
    }

    /// A change that may be lost in a crash (reservations, which expire anyway): written
    /// without flushing, made durable by the next durable change.
    fn change_lazy<T>(
        &self,
        change: impl FnOnce(&mut State, &dms_store::WriteTx) -> Result<T, ResourceError>,
    ) -> Result<T, ResourceError> {
        self.change_with(false, change)
    }

    fn change_with<T>(
        &self,
        durable: bool,
        change: impl FnOnce(&mut State, &dms_store::WriteTx) -> Result<T, ResourceError>,
    ) -> Result<T, ResourceError> {
        // Only serializes changes (it guards no data): a change that panicked left the
        // committed state as it was.
        let _writing = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let committed = self.committed();
        let mut next = State::clone(&committed);
        let now = (self.clock)();
        let expired = next.expire(now);
        let mut outcome = None;
        let mut refusal = None;
        let body = |tx: &dms_store::WriteTx| {
            for id in &expired {
                RESERVATIONS.delete(tx, id)?;
            }
            match change(&mut next, tx) {
                Ok(value) => outcome = Some(value),
                Err(ResourceError::Store(error)) => return Err(error),
                Err(other) => refusal = Some(other),
            }
            Ok(())
        };
        if durable { self.store.write(body) } else { self.store.write_lazy(body) }?;
        if let Some(refusal) = refusal {
            // The refused change wrote nothing; the expiries are committed.
            let mut after = State::clone(&committed);
            after.expire(now);
            self.publish(after);
            return Err(refusal);
        }
        self.publish(next);
        Ok(outcome.expect("a change that did not fail has an outcome"))
    }

    /// The committed state (a cheap handle: the lock is held for an instant).
    fn committed(&self) -> Arc<State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn publish(&self, state: State) {
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(state);
    }

    /// Offers `wanted` (replacing any earlier onboarding). Refused when it exceeds
    /// `capacity` (what the machine has) or falls below what is in use.
    pub fn onboard(
        &self,
        wanted: Resources,
        capacity: &Resources,
    ) -> Result<Onboarding, ResourceError> {
        over_ask(&wanted, capacity)?;
        let since = (self.clock)() / 1000;
        self.change(|state, tx| {
            let in_use = state.in_use();
            if !in_use.fits_in(&wanted) {
                return Err(ResourceError::BelowUse { in_use: in_use.to_string() });
            }
            let onboarding = Onboarding { resources: wanted, since };
            ONBOARDING.put(tx, KEY, &onboarding)?;
            state.onboarded = Some(onboarding.clone());
            Ok(onboarding)
        })
    }

    /// Withdraws the offer. Live reservations are dropped; running allocations refuse.
    pub fn offboard(&self) -> Result<(), ResourceError> {
        self.change(|state, tx| {
            if state.onboarded.is_none() {
                return Err(ResourceError::NotOnboarded);
            }
            if !state.allocations.is_empty() {
                return Err(ResourceError::Busy { count: state.allocations.len() });
            }
            for id in state.reservations.keys() {
                RESERVATIONS.delete(tx, id)?;
            }
            ONBOARDING.delete(tx, KEY)?;
            state.reservations.clear();
            state.onboarded = None;
            Ok(())
        })
    }

    /// Promises `resources` to `id` for `ttl`, if they are free.
    pub fn reserve(
        &self,
        id: &str,
        resources: Resources,
        ttl: Duration,
    ) -> Result<Reservation, ResourceError> {
        let expires_ms =
            (self.clock)().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self.change_lazy(|state, tx| {
            if state.onboarded.is_none() {
                return Err(ResourceError::NotOnboarded);
            }
            if state.reservations.contains_key(id) || state.allocations.contains_key(id) {
                return Err(ResourceError::Duplicate { id: id.into() });
            }
            let free = state.free();
            if !resources.fits_in(&free) {
                return Err(ResourceError::Insufficient {
                    needs: resources.to_string(),
                    free: free.to_string(),
                });
            }
            let reservation = Reservation { id: id.into(), resources, expires_ms };
            RESERVATIONS.put(tx, id, &reservation)?;
            state.reservations.insert(id.into(), reservation.clone());
            Ok(reservation)
        })
    }

    /// Keeps a live reservation for `ttl` from now (the commit of a bid). An expired or
    /// unknown reservation is [`ResourceError::NoReservation`]: its resources may be
    /// promised elsewhere by now.
    pub fn extend(&self, id: &str, ttl: Duration) -> Result<Reservation, ResourceError> {
        let now = (self.clock)();
        let expires_ms = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self.change_lazy(|state, tx| {
            state.expire(now);
            let reservation = state
                .reservations
                .get_mut(id)
                .ok_or_else(|| ResourceError::NoReservation { id: id.into() })?;
            reservation.expires_ms = reservation.expires_ms.max(expires_ms);
            let reservation = reservation.clone();
            RESERVATIONS.put(tx, id, &reservation)?;
            Ok(reservation)
        })
    }

    /// Turns a live reservation into a running allocation.
    pub fn allocate(&self, id: &str) -> Result<Resources, ResourceError> {
        self.change(|state, tx| {
            let reservation = state
                .reservations
                .remove(id)
                .ok_or_else(|| ResourceError::NoReservation { id: id.into() })?;
            RESERVATIONS.delete(tx, id)?;
            ALLOCATIONS.put(tx, id, &reservation.resources)?;
            state.allocations.insert(id.into(), reservation.resources.clone());
            Ok(reservation.resources)
        })
    }

    /// Turns a live reservation into an allocation of `wanted` CPU, memory and disk and
    /// `gpus` of the reserved GPUs, which must fit in it; the rest of the reservation is
    /// freed. (A bid's reservation covers the largest node it bid on; the node it won
    /// may need less.)
    pub fn allocate_as(
        &self,
        id: &str,
        wanted: Resources,
        gpus: usize,
    ) -> Result<Resources, ResourceError> {
        self.change(|state, tx| {
            let reservation = state
                .reservations
                .remove(id)
                .ok_or_else(|| ResourceError::NoReservation { id: id.into() })?;
            let mut wanted = wanted;
            wanted.gpus = reservation.resources.gpus.iter().take(gpus).cloned().collect();
            if !wanted.fits_in(&reservation.resources) || wanted.gpus.len() < gpus {
                return Err(ResourceError::Insufficient {
                    needs: wanted.to_string(),
                    free: reservation.resources.to_string(),
                });
            }
            RESERVATIONS.delete(tx, id)?;
            ALLOCATIONS.put(tx, id, &wanted)?;
            state.allocations.insert(id.into(), wanted.clone());
            Ok(wanted)
        })
    }

    /// Gives back a reservation or an allocation; `false` when `id` held nothing.
    pub fn release(&self, id: &str) -> Result<bool, ResourceError> {
        self.change(|state, tx| {
            let reserved = state.reservations.remove(id).is_some();
            let allocated = state.allocations.remove(id).is_some();
            RESERVATIONS.delete(tx, id)?;
            ALLOCATIONS.delete(tx, id)?;
            Ok(reserved || allocated)
        })
    }

    /// The accounts now.
    pub fn status(&self) -> Accounts {
        // Expired reservations stop counting at once; the store catches up on the next
        // change (or the next start).
        let mut state = State::clone(&self.committed());
        state.expire((self.clock)());
        Accounts {
            onboarded: state.onboarded.clone(),
            committed: sum(state.reservations.values().map(|r| &r.resources)),
            allocated: sum(state.allocations.values()),
            free: state.free(),
            reservations: state.reservations.values().cloned().collect(),
            allocations: state.allocations.clone(),
        }
    }
}

/// Refuses asking for more than the machine has, naming the limit.
fn over_ask(wanted: &Resources, capacity: &Resources) -> Result<(), ResourceError> {
    if wanted.cpu_millicores > capacity.cpu_millicores {
        return Err(ResourceError::OverAsk {
            what: format!("{} CPU cores", format_cpu(wanted.cpu_millicores)),
            max: format!("{} cores", format_cpu(capacity.cpu_millicores)),
        });
    }
    if wanted.ram_bytes > capacity.ram_bytes {
        return Err(ResourceError::OverAsk {
            what: format!("{} RAM", format_bytes(wanted.ram_bytes)),
            max: format!("{} RAM", format_bytes(capacity.ram_bytes)),
        });
    }
    if wanted.disk_bytes > capacity.disk_bytes {
        return Err(ResourceError::OverAsk {
            what: format!("{} disk", format_bytes(wanted.disk_bytes)),
            max: format!("{} of free disk", format_bytes(capacity.disk_bytes)),
        });
    }
    for gpu in &wanted.gpus {
        if !capacity.gpus.iter().any(|g| g.index == gpu.index) {
            let indices: Vec<String> = capacity.gpus.iter().map(|g| g.index.to_string()).collect();
            return Err(ResourceError::OverAsk {
                what: format!("GPU {}", gpu.index),
                max: if indices.is_empty() {
                    "no GPU".into()
                } else {
                    format!("GPUs {}", indices.join(", "))
                },
            });
        }
    }
    Ok(())
}
