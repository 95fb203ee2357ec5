//! A deployment's private network: the address each allocation has on it, assigned once
//! by the orchestrator when the deployment is created and kept in its record, so that a
//! replaced allocation keeps its address.
//!
//! Addresses come from the ensemble's `subnet.cidr` (default
//! [`dms_ensemble::model::DEFAULT_CIDR`]): the network's first host address is kept for
//! the orchestrating machine (`subnet.join`), the allocations get the following ones in
//! name order. Ranges of different deployments may overlap: each deployment's network is
//! its own.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::Request;

/// Provider root: the routes of a deployment's network ([`Routes`]), from the
/// orchestrator that allocated there. Answer: [`RoutesApplied`].
pub const ROUTES: &str = "/dms/deployment/subnet";

/// The addresses of one deployment's network, and where the providers hosting its
/// allocations take its packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetPlan {
    /// The range, `a.b.c.d/N`.
    pub cidr: String,
    /// The orchestrating machine's address (when it joins).
    pub gateway: Ipv4Addr,
    /// Each allocation's address, by name.
    pub addresses: BTreeMap<String, Ipv4Addr>,
    /// Each provider's subnet endpoints, by peer id, as its allocate answer said.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, Vec<SocketAddr>>,
    /// The version of the routes last sent (one more at each change of placement).
    #[serde(default)]
    pub version: u64,
}

impl SubnetPlan {
    /// The prefix length of the range.
    pub fn prefix(&self) -> u8 {
        self.cidr.split_once('/').and_then(|(_, n)| n.parse().ok()).unwrap_or(32)
    }

    /// What allocation `name` is given: its address and every allocation's names
    /// (`<dns_name>.internal` and `<dns_name>`, the allocation's name by default).
    pub fn join(&self, ensemble: &dms_ensemble::model::Ensemble, name: &str) -> Option<Join> {
        let address = *self.addresses.get(name)?;
        let mut hosts = BTreeMap::new();
        for (other, ip) in &self.addresses {
            let dns = ensemble.allocations.get(other).and_then(|a| a.dns_name.clone());
            let dns = dns.unwrap_or_else(|| other.clone());
            hosts.insert(format!("{dns}.internal"), *ip);
            hosts.insert(dns, *ip);
        }
        Some(Join { address, prefix: self.prefix(), hosts })
    }
}

/// What one allocation is given on its deployment's network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// Its address.
    pub address: Ipv4Addr,
    /// The prefix length of the range.
    pub prefix: u8,
    /// Names resolved inside it, to addresses.
    pub hosts: BTreeMap<String, Ipv4Addr>,
}

/// Where a deployment's addresses are: sent by its orchestrator to every provider
/// hosting one of its allocations, before the first start and after each change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// The deployment id.
    pub deployment: String,
    /// Newer routes replace older ones; older ones arriving late are ignored.
    pub version: u64,
    /// One per allocation with an address.
    pub routes: Vec<Route>,
}

/// One allocation's address and the provider hosting it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The address.
    pub address: Ipv4Addr,
    /// The allocation's name.
    pub allocation: String,
    /// The provider's peer id.
    pub peer: String,
    /// Where the provider's subnet endpoint answers.
    pub endpoints: Vec<SocketAddr>,
}

/// The routes a provider now uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutesApplied {
    /// Their version (a newer one it had already stays).
    pub version: u64,
}

impl Request for Routes {
    const BEHAVIOR: &'static str = ROUTES;
    type Response = RoutesApplied;
}

impl SubnetPlan {
    /// The routes of `placed` allocations (name → hosting peer), at the plan's version.
    pub fn routes(&self, deployment: &str, placed: &BTreeMap<String, String>) -> Routes {
        let routes = self
            .addresses
            .iter()
            .filter_map(|(name, address)| {
                let peer = placed.get(name)?;
                Some(Route {
                    address: *address,
                    allocation: name.clone(),
                    peer: peer.clone(),
                    endpoints: self.endpoints.get(peer).cloned().unwrap_or_default(),
                })
            })
            .collect();
        Routes { deployment: deployment.to_string(), version: self.version, routes }
    }
}

/// Addresses for `names` in `cidr` (the default range when `None`); what is wrong with
/// the range, or that it is too small for them all.
pub fn assign<'a>(
    cidr: Option<&str>,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<SubnetPlan, String> {
    let cidr = cidr.unwrap_or(dms_ensemble::model::DEFAULT_CIDR);
    let (network, bits) =
        dms_ensemble::model::parse_cidr(cidr).map_err(|e| format!("subnet {cidr}: {e}"))?;
    let base = u32::from(network);
    // Host addresses are base+1 .. base+size-2 (the network and broadcast excluded).
    let size = 1u64 << (32 - bits);
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    let wanted = names.len() as u64 + 1;
    if wanted > size.saturating_sub(2) {
        return Err(format!(
            "subnet {cidr} holds {} addresses, fewer than the {wanted} needed (the \
             allocations and the orchestrating machine)",
            size.saturating_sub(2)
        ));
    }
    let address = |offset: u32| Ipv4Addr::from(base + offset);
    let addresses = names
        .iter()
        .zip(2u32..)
        .map(|(name, offset)| (name.to_string(), address(offset)))
        .collect();
    Ok(SubnetPlan {
        cidr: cidr.to_string(),
        gateway: address(1),
        addresses,
        endpoints: BTreeMap::new(),
        version: 0,
    })
}

/// The 8 bytes that mark a deployment's packets between providers:
/// SHA-256(`dms-subnet` ‖ deployment id), truncated.
pub fn tag(deployment: &str) -> [u8; 8] {
    use sha2::Digest as _;
    let digest =
        sha2::Sha256::new().chain_update(b"dms-subnet").chain_update(deployment).finalize();
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&digest[..8]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_gateway_in_name_order_and_never_leave_the_range() {
        let plan = assign(Some("10.7.0.0/29"), ["web", "db", "cache", "db"]).expect("fits");
        assert_eq!(plan.gateway, Ipv4Addr::new(10, 7, 0, 1));
        let got: Vec<(&str, Ipv4Addr)> =
            plan.addresses.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        assert_eq!(
            got,
            [
                ("cache", Ipv4Addr::new(10, 7, 0, 2)),
                ("db", Ipv4Addr::new(10, 7, 0, 3)),
                ("web", Ipv4Addr::new(10, 7, 0, 4)),
            ]
        );
        assert_eq!(plan.prefix(), 29);
        // A /29 has 6 host addresses: the gateway and 5 allocations.
        let six: Vec<String> = (0..6).map(|i| format!("a{i}")).collect();
        let error = assign(Some("10.7.0.0/29"), six.iter().map(String::as_str)).expect_err("full");
        assert!(error.contains("fewer than the 7 needed"), "{error}");
        assert_eq!(assign(None, ["x"]).expect("default").cidr, "10.42.0.0/16");
        assert!(assign(Some("192.168.0.0/16"), ["x"]).expect_err("outside").contains("10.0.0.0/8"));
    }

    #[test]
    fn tags_differ_between_deployments_and_are_stable() {
        assert_eq!(tag("d-1"), tag("d-1"));
        assert_ne!(tag("d-1"), tag("d-2"));
    }
}
