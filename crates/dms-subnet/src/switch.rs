//! The forwarding table of one provider, sans-IO: per deployment (known by its tag, see
//! `dms_protocol::subnet::tag`), which addresses are local allocations here and which
//! peer hosts each other address. Every packet gets a [`Verdict`]; the switch does no
//! I/O and keeps no packet.
//!
//! Rules, each a reason a packet is dropped:
//! - from a local interface, the source must be that allocation's own address (no
//!   spoofing another allocation), the destination an address of the same deployment;
//! - from a peer, the tag must be a deployment this provider hosts, the peer must host
//!   the source address (a provider speaks only for its own allocations), and the
//!   destination must be an allocation here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::packet;

/// Where a packet goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// To this local allocation's interface.
    Local(String),
    /// To this peer, as a frame of the deployment.
    Remote(String),
    /// Nowhere, for this reason.
    Drop(Drop),
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Not a well-formed IPv4 packet.
    Malformed,
    /// A deployment this provider does not host.
    UnknownDeployment,
    /// The source is not the sender's.
    Spoofed,
    /// No allocation of the deployment has the destination address.
    NoRoute,
}

/// One deployment's addresses, as this provider knows them.
#[derive(Clone, Debug, Default)]
struct Net {
    /// Address → (allocation id, peer hosting it).
    routes: BTreeMap<Ipv4Addr, (String, String)>,
}

/// The table of one provider (peer `me`).
#[derive(Clone, Debug)]
pub struct Switch {
    me: String,
    nets: BTreeMap<[u8; 8], Net>,
}

impl Switch {
    /// An empty table for peer `me`.
    pub fn new(me: impl Into<String>) -> Switch {
        Switch { me: me.into(), nets: BTreeMap::new() }
    }

    /// Replaces the routes of deployment `tag`: (address, allocation id, peer) for every
    /// allocation of the deployment, here or elsewhere.
    pub fn set_routes(
        &mut self,
        tag: [u8; 8],
        routes: impl IntoIterator<Item = (Ipv4Addr, String, String)>,
    ) {
        let routes = routes.into_iter().map(|(a, alloc, peer)| (a, (alloc, peer))).collect();
        self.nets.insert(tag, Net { routes });
    }

    /// The remote peers some route names.
    pub fn peers(&self) -> std::collections::BTreeSet<String> {
        let routes = self.nets.values().flat_map(|net| net.routes.values());
        routes.filter(|(_, peer)| *peer != self.me).map(|(_, peer)| peer.clone()).collect()
    }

    /// Forgets deployment `tag`.
    pub fn remove(&mut self, tag: &[u8; 8]) {
        self.nets.remove(tag);
    }

    /// Where a packet read from local allocation `from`'s interface goes.
    pub fn outbound(&self, tag: &[u8; 8], from: &str, bytes: &[u8]) -> Verdict {
        let Some(header) = packet::ipv4(bytes) else { return Verdict::Drop(Drop::Malformed) };
        let Some(net) = self.nets.get(tag) else { return Verdict::Drop(Drop::UnknownDeployment) };
        let own = net.routes.get(&header.src);
        if !own.is_some_and(|(alloc, peer)| alloc == from && *peer == self.me) {
            return Verdict::Drop(Drop::Spoofed);
        }
        match net.routes.get(&header.dst) {
            Some((alloc, peer)) if *peer == self.me => Verdict::Local(alloc.clone()),
            Some((_, peer)) => Verdict::Remote(peer.clone()),
            None => Verdict::Drop(Drop::NoRoute),
        }
    }

    /// Whether a packet of deployment `tag` from peer `from` is let in, and to which
    /// local allocation.
    pub fn inbound(&self, tag: &[u8; 8], from: &str, bytes: &[u8]) -> Verdict {
        let Some(header) = packet::ipv4(bytes) else { return Verdict::Drop(Drop::Malformed) };
        let Some(net) = self.nets.get(tag) else { return Verdict::Drop(Drop::UnknownDeployment) };
        if !net.routes.get(&header.src).is_some_and(|(_, peer)| peer == from && from != self.me) {
            return Verdict::Drop(Drop::Spoofed);
        }
        match net.routes.get(&header.dst) {
            Some((alloc, peer)) if *peer == self.me => Verdict::Local(alloc.clone()),
            _ => Verdict::Drop(Drop::NoRoute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::udp;

    const A: [u8; 8] = [1; 8];
    const B: [u8; 8] = [2; 8];

    fn switch() -> Switch {
        let mut s = Switch::new("me");
        let ip = |n| Ipv4Addr::new(10, 42, 0, n);
        s.set_routes(
            A,
            [
                (ip(2), "d-a.web".into(), "me".into()),
                (ip(3), "d-a.db".into(), "other".into()),
                (ip(4), "d-a.cache".into(), "me".into()),
            ],
        );
        // Another deployment with an overlapping range, hosted on the same peers.
        s.set_routes(
            B,
            [(ip(2), "d-b.x".into(), "other".into()), (ip(3), "d-b.y".into(), "me".into())],
        );
        s
    }

    #[test]
    fn packets_go_to_local_allocations_or_to_the_peer_that_hosts_them() {
        let s = switch();
        let to_db = udp([10, 42, 0, 2], [10, 42, 0, 3], b"q");
        assert_eq!(s.outbound(&A, "d-a.web", &to_db), Verdict::Remote("other".into()));
        let to_cache = udp([10, 42, 0, 2], [10, 42, 0, 4], b"q");
        assert_eq!(s.outbound(&A, "d-a.web", &to_cache), Verdict::Local("d-a.cache".into()));
        let back = udp([10, 42, 0, 3], [10, 42, 0, 2], b"r");
        assert_eq!(s.inbound(&A, "other", &back), Verdict::Local("d-a.web".into()));
    }

    #[test]
    fn spoofing_other_deployments_and_unknown_addresses_are_dropped() {
        let s = switch();
        // web claims cache's address.
        let spoofed = udp([10, 42, 0, 4], [10, 42, 0, 3], b"q");
        assert_eq!(s.outbound(&A, "d-a.web", &spoofed), Verdict::Drop(Drop::Spoofed));
        // A peer speaking for an address it does not host.
        let forged = udp([10, 42, 0, 4], [10, 42, 0, 2], b"q");
        assert_eq!(s.inbound(&A, "other", &forged), Verdict::Drop(Drop::Spoofed));
        // The same addresses in deployment B reach B's allocation, never A's.
        let in_b = udp([10, 42, 0, 2], [10, 42, 0, 3], b"q");
        assert_eq!(s.inbound(&B, "other", &in_b), Verdict::Local("d-b.y".into()));
        assert_eq!(s.inbound(&[9; 8], "other", &in_b), Verdict::Drop(Drop::UnknownDeployment));
        let nowhere = udp([10, 42, 0, 2], [10, 42, 0, 99], b"q");
        assert_eq!(s.outbound(&A, "d-a.web", &nowhere), Verdict::Drop(Drop::NoRoute));
        // A frame for an allocation on another peer is not relayed.
        let elsewhere = udp([10, 42, 0, 2], [10, 42, 0, 3], b"q");
        assert_eq!(s.inbound(&A, "third", &elsewhere), Verdict::Drop(Drop::Spoofed));
        assert_eq!(s.outbound(&A, "d-a.web", b"junk"), Verdict::Drop(Drop::Malformed));
    }
}
