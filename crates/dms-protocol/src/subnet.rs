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
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The addresses of one deployment's network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetPlan {
    /// The range, `a.b.c.d/N`.
    pub cidr: String,
    /// The orchestrating machine's address (when it joins).
    pub gateway: Ipv4Addr,
    /// Each allocation's address, by name.
    pub addresses: BTreeMap<String, Ipv4Addr>,
}

impl SubnetPlan {
    /// The prefix length of the range.
    pub fn prefix(&self) -> u8 {
        self.cidr.split_once('/').and_then(|(_, n)| n.parse().ok()).unwrap_or(32)
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
    Ok(SubnetPlan { cidr: cidr.to_string(), gateway: address(1), addresses })
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
