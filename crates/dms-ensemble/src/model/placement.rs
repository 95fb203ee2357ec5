//! Placement and everything around the allocations: nodes, edges, supervision, subnet,
//! keys and contracts.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Protocol;
use crate::units::{Bandwidth, Duration};

/// A machine to find and the allocations it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Names of the allocations this node runs.
    pub allocations: Vec<String>,
    /// Ports of this node's public address forwarded to allocations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMap>,
    /// Where the machine may (and may not) be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Pin this node to one peer id: the bid request goes only to that peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Standby copies of this node kept ready for fail-over.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redundancy: u32,
    /// Required machine attributes (exact match), e.g. `gpu.driver: "550"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One forwarded port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortMap {
    /// Port on the node's public address; left out, the provider picks a free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<u16>,
    /// Port of the allocation (one of its `ports`).
    pub private: u16,
    /// The allocation receiving the traffic; it must run on this node.
    pub allocation: String,
    /// Transport protocol (default tcp).
    #[serde(default, skip_serializing_if = "Protocol::is_tcp")]
    pub protocol: Protocol,
}

/// Where a machine may be.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// The machine must be in one of these places (any, when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<Place>,
    /// The machine must be in none of these places.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reject: Vec<Place>,
}

/// A place, as precise as needed. At least one field is given; `city` needs `country`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Place {
    /// Continent: `AF`, `AN`, `AS`, `EU`, `NA`, `OC` or `SA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    /// ISO 3166-1 alpha-2 country code, e.g. `DE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// City name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Autonomous system number of the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Internet service provider name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isp: Option<String>,
}

/// A network constraint between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// One node.
    pub source: String,
    /// The other node.
    pub target: String,
    /// Highest acceptable round-trip time, e.g. `20ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<Duration>,
    /// Lowest acceptable bandwidth, e.g. `100Mbps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bandwidth: Option<Bandwidth>,
}

/// A supervisor: restarts the allocations (and child supervisors) it watches by a strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Supervisor {
    /// What restarts when one child fails.
    pub strategy: Strategy,
    /// Allocations watched directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<String>,
    /// Nested supervisors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Supervisor>,
    /// Restarts allowed within `window` before this supervisor escalates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
    /// The window `max_restarts` counts over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

/// Supervision strategies (Erlang/OTP names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Restart only the failed child.
    OneForOne,
    /// Restart every child.
    #[serde(alias = "all_for_one")]
    OneForAll,
    /// Restart the failed child and those listed after it.
    RestForOne,
}

/// The ensemble's private network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    /// Whether the orchestrator's own machine joins the network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join: bool,
    /// Address range (IPv4 CIDR inside 10.0.0.0/8); default: one picked per deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
}

/// The default address range of a deployment's subnet.
pub const DEFAULT_CIDR: &str = "10.42.0.0/16";

/// An IPv4 range `a.b.c.d/N` inside 10.0.0.0/8 with N from 8 to 30 and no bits set
/// beyond the prefix: the network address and the prefix length, or what is wrong.
pub fn parse_cidr(cidr: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (address, bits) = cidr.split_once('/').ok_or("a range needs a prefix length (`/16`)")?;
    let address: std::net::Ipv4Addr =
        address.parse().map_err(|_| "not an IPv4 address".to_string())?;
    let bits: u8 = bits.parse().map_err(|_| "the prefix length is not a number".to_string())?;
    if !(8..=30).contains(&bits) {
        return Err("the prefix length must be from 8 to 30".into());
    }
    if address.octets()[0] != 10 {
        return Err("the range must be inside 10.0.0.0/8".into());
    }
    let mask = u32::MAX << (32 - bits);
    if u32::from(address) & !mask != 0 {
        return Err("the address has bits set beyond the prefix".into());
    }
    Ok((address, bits))
}

/// A key installed into allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// Kind of key.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// Path of the public key file, read by the CLI at deploy time.
    pub file: String,
    /// Where to install it inside the workload (required for gpg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
}

/// Kinds of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// An SSH public key, added to authorized keys.
    Ssh,
    /// A GPG public key.
    Gpg,
}

/// A payment contract the deployment runs under: one the orchestrating node keeps,
/// signed by it (the requester) and a provider (`dms contract new`, `dms contract
/// sign`). Allocations placed on that provider run under it and send usage receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The contract's id (the content id `dms contract new` prints, `bafy…`).
    pub id: String,
    /// DID of the node hosting the contract, when it names one (checked against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}
