//! Replay protection: each (sender, nonce) is accepted once while its envelope is
//! valid. Envelopes may not be valid for longer than the window, so remembering a nonce
//! until its envelope expires is enough, and memory stays bounded by the window and the
//! capacity.

use std::collections::{BTreeSet, HashSet};

use dms_crypto::Did;

/// Nonces seen, until their envelopes expire.
#[derive(Debug)]
pub struct NonceWindow {
    seen: HashSet<(Did, u64)>,
    by_expiry: BTreeSet<(u64, Did, u64)>,
    capacity: usize,
}

/// Why a nonce was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Seen before.
    Replayed,
    /// The window is full of unexpired nonces.
    Full,
}

impl NonceWindow {
    /// A window remembering at most `capacity` nonces.
    pub fn new(capacity: usize) -> NonceWindow {
        NonceWindow { seen: HashSet::new(), by_expiry: BTreeSet::new(), capacity: capacity.max(1) }
    }

    /// Accepts `(sender, nonce)` valid until `expiry` (ms), at time `now` (ms).
    pub fn accept(
        &mut self,
        sender: &Did,
        nonce: u64,
        expiry: u64,
        now: u64,
    ) -> Result<(), Refusal> {
        self.prune(now);
        let key = (sender.clone(), nonce);
        if self.seen.contains(&key) {
            return Err(Refusal::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(Refusal::Full);
        }
        self.seen.insert(key);
        self.by_expiry.insert((expiry, sender.clone(), nonce));
        Ok(())
    }

    fn prune(&mut self, now: u64) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 >= now {
                break;
            }
            let (_, did, nonce) = self.by_expiry.pop_first().expect("first exists");
            self.seen.remove(&(did, nonce));
        }
    }

    /// Nonces currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use dms_crypto::{KeyPair, KeyType};

    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_until_it_expires() {
        let did = KeyPair::generate(KeyType::Ed25519).did();
        let mut window = NonceWindow::new(10);
        assert_eq!(window.accept(&did, 7, 1_000, 0), Ok(()));
        assert_eq!(window.accept(&did, 7, 1_000, 500), Err(Refusal::Replayed));
        let other = KeyPair::generate(KeyType::Ed25519).did();
        assert_eq!(window.accept(&other, 7, 1_000, 500), Ok(()));
        // After expiry the entry is forgotten (the envelope itself would be refused as expired).
        assert_eq!(window.accept(&did, 8, 2_000, 1_500), Ok(()));
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn the_window_is_bounded() {
        let did = KeyPair::generate(KeyType::Ed25519).did();
        let mut window = NonceWindow::new(2);
        assert_eq!(window.accept(&did, 1, 100, 0), Ok(()));
        assert_eq!(window.accept(&did, 2, 100, 0), Ok(()));
        assert_eq!(window.accept(&did, 3, 100, 0), Err(Refusal::Full));
        assert_eq!(window.accept(&did, 3, 200, 101), Ok(()));
    }
}
