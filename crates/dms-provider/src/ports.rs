//! Public ports: the ones this provider holds for its reservations, and whether a port
//! a bid asks for is free on this machine. A port another deployment here holds, or
//! that something on the machine has bound, is refused at bid time (reason `port`),
//! not discovered when the container fails to start.
//!
//! Holds live as long as their reservation (and the allocations made from it); after a
//! restart the ledger starts empty and ports in use are found by binding them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Why a port cannot be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// It frees when a deployment here ends.
    pub transient: bool,
    /// For people.
    pub why: String,
}

/// The ports held, by port, with the reservation holding each.
#[derive(Default)]
pub struct Ports {
    held: Mutex<BTreeMap<u16, String>>,
}

impl Ports {
    /// Why each of `wanted` cannot be had here, and whether that passes: held by a
    /// reservation of another deployment (transient), or bound on this machine; empty
    /// when all are free.
    pub(crate) fn taken(&self, wanted: &BTreeSet<u16>) -> BTreeMap<u16, Taken> {
        let held = self.held.lock().expect("ports lock");
        wanted
            .iter()
            .filter_map(|&port| {
                let taken = match held.get(&port) {
                    Some(owner) => Taken {
                        transient: true,
                        why: format!("port {port} is held by {owner} on this machine"),
                    },
                    None if bound(port) => Taken {
                        transient: false,
                        why: format!("port {port} is in use on this machine"),
                    },
                    None => return None,
                };
                Some((port, taken))
            })
            .collect()
    }

    /// Holds `ports` for `reservation`, unless one was taken meanwhile (then nothing
    /// is held and the taken ports are returned).
    pub(crate) fn hold(&self, reservation: &str, ports: &BTreeSet<u16>) -> Result<(), Vec<u16>> {
        let mut held = self.held.lock().expect("ports lock");
        let clashes: Vec<u16> = ports.iter().copied().filter(|p| held.contains_key(p)).collect();
        if !clashes.is_empty() {
            return Err(clashes);
        }
        for &port in ports {
            held.insert(port, reservation.to_string());
        }
        Ok(())
    }

    /// Releases the ports of reservations not in `live`.
    pub(crate) fn retain(&self, live: &BTreeSet<&str>) {
        self.held.lock().expect("ports lock").retain(|_, owner| live.contains(owner.as_str()));
    }
}

/// Whether something on this machine has bound TCP `port` (a listener on every
/// address cannot be opened). Ports that need privileges this process lacks are not
/// taken: the container engine binds them.
fn bound(port: u16) -> bool {
    matches!(
        std::net::TcpListener::bind(("0.0.0.0", port)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_is_taken_until_its_reservation_ends() {
        let ports = Ports::default();
        // Below the ephemeral range, so that no other test's connection takes it meanwhile.
        let port = (20_000..32_000).find(|p| !bound(*p)).expect("a free port");
        let wanted: BTreeSet<u16> = [port].into();
        assert!(ports.taken(&wanted).is_empty(), "free at first");
        ports.hold("d-1/aa", &wanted).expect("held");
        assert!(ports.taken(&wanted)[&port].why.contains("held by d-1/aa"));
        assert_eq!(ports.hold("d-2/bb", &wanted), Err(vec![port]), "not twice");
        ports.retain(&["d-2/bb"].into());
        assert!(ports.taken(&wanted).is_empty(), "released with its reservation");
    }

    #[test]
    fn a_port_bound_on_the_machine_is_taken() {
        let listener = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("a listener");
        let port = listener.local_addr().expect("address").port();
        let taken = Ports::default().taken(&[port].into());
        assert!(taken[&port].why.contains("in use on this machine"), "{taken:?}");
    }
}
