//! A deployment's private IPv4 network across providers .
//!
//! Each allocation that joins has an interface in its own network namespace with its
//! address on the deployment's subnet (`dms_protocol::subnet::assign`); its packets are
//! read by the provider's dms and either written to another local allocation's
//! interface or carried to the provider of the destination, tagged with the
//! deployment. Isolation is by construction: only this switch connects the interfaces,
//! and only within a deployment.
//!
//! # Module map
//! - [`packet`]: IPv4 headers read without copying, the internet checksum, ICMP
//!   "fragmentation needed" for packets larger than the path carries.
//! - [`switch`]: the forwarding table and its verdicts, sans-IO: where a packet from a
//!   local interface goes, and whether a frame from a peer is let in (known deployment,
//!   a sender that hosts the source address, a local destination).
//! - [`link`]: the QUIC endpoint between providers, authenticated by libp2p identities;
//!   frames of QUIC DATAGRAMs.
//! - [`tun`]: the interface inside an allocation's network namespace.
//! - [`Subnet`] (`host.rs`): the provider's runtime tying them together.

mod forward;
mod host;
pub mod link;
pub mod packet;
pub mod switch;
pub mod tun;

pub use host::{Config, Counters, Route, Subnet};
pub use switch::{Switch, Verdict};
