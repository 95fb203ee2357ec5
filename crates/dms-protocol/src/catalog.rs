//! The catalog of every typed behavior: its path, version, message types and the
//! capability a caller needs. `dms docs-gen` renders it as the behaviors reference; a
//! test keeps it complete (every `impl Request` in this crate is in it).

use crate::{
    Request, allocation, cap, contract, deployment, node, onboarding, peers, storage, subnet,
    telemetry,
};

/// One behavior.
#[derive(Clone, Debug)]
pub struct BehaviorDoc {
    /// Its path, e.g. `/dms/node/deployment/new`.
    pub behavior: &'static str,
    /// Its protocol version on the wire.
    pub version: u32,
    /// The module of this crate it is in (who talks to whom: see the crate docs).
    pub module: &'static str,
    /// The request type.
    pub request: &'static str,
    /// The answer type.
    pub response: &'static str,
}

impl BehaviorDoc {
    /// What a caller needs to invoke it: nothing for `/public/...`; otherwise a
    /// capability chain, rooted in a DID the receiving actor trusts, granting this path
    /// or one above it (a grant of `/dms/node` covers `/dms/node/deployment/new`).
    pub fn capability(&self) -> String {
        if self.behavior.starts_with("/public/") {
            "none (public)".into()
        } else {
            format!("`{}` or a path above it", self.behavior)
        }
    }
}

fn short(type_name: &'static str) -> &'static str {
    // `dms_protocol::node::NewDeployment` → `node::NewDeployment`; generics keep theirs.
    type_name.strip_prefix("dms_protocol::").unwrap_or(type_name)
}

fn entry<R: Request>(module: &'static str) -> BehaviorDoc {
    BehaviorDoc {
        behavior: R::BEHAVIOR,
        version: R::VERSION,
        module,
        request: short(std::any::type_name::<R>()),
        response: short(std::any::type_name::<R::Response>()),
    }
}

/// Every typed behavior, grouped by module.
pub fn catalog() -> Vec<BehaviorDoc> {
    vec![
        // node
        entry::<node::PublishOutputs>("node"),
        entry::<node::NewDeployment>("node"),
        entry::<node::PlanDeployment>("node"),
        entry::<node::ListDeployments>("node"),
        entry::<node::DeploymentStatus>("node"),
        entry::<node::Manifest>("node"),
        entry::<node::DeploymentLogs>("node"),
        entry::<node::ShutdownDeployment>("node"),
        entry::<node::Prune>("node"),
        // onboarding
        entry::<onboarding::Onboard>("onboarding"),
        entry::<onboarding::Offboard>("onboarding"),
        entry::<onboarding::GetOnboarding>("onboarding"),
        entry::<onboarding::OnboardedResources>("onboarding"),
        entry::<onboarding::FreeResources>("onboarding"),
        entry::<onboarding::AllocatedResources>("onboarding"),
        entry::<onboarding::HardwareSpec>("onboarding"),
        entry::<onboarding::HardwareUsage>("onboarding"),
        entry::<onboarding::Benchmark>("onboarding"),
        // peers
        entry::<peers::ListPeers>("peers"),
        entry::<peers::SelfInfoRequest>("peers"),
        entry::<peers::Connect>("peers"),
        entry::<peers::Ping>("peers"),
        entry::<peers::Dht>("peers"),
        entry::<peers::Scores>("peers"),
        entry::<peers::Hello>("peers"),
        entry::<peers::BroadcastHello>("peers"),
        entry::<peers::PublicStatus>("peers"),
        // cap
        entry::<cap::ListContext>("cap"),
        entry::<cap::Anchor>("cap"),
        entry::<cap::Revoke>("cap"),
        entry::<cap::Revocation>("cap"),
        // contract
        entry::<contract::NewContract>("contract"),
        entry::<contract::SignContract>("contract"),
        entry::<contract::ListContracts>("contract"),
        entry::<contract::ShowContract>("contract"),
        entry::<contract::RevokeContract>("contract"),
        entry::<contract::ContractRevocation>("contract"),
        entry::<contract::ReceiptOffer>("contract"),
        entry::<contract::ImportReceipt>("contract"),
        entry::<contract::DeploymentUsage>("contract"),
        // telemetry
        entry::<telemetry::ListEvents>("telemetry"),
        entry::<telemetry::EventSink>("telemetry"),
        entry::<telemetry::LoggerConfig>("telemetry"),
        // deployment
        entry::<deployment::Advert>("deployment"),
        entry::<deployment::BidRequest>("deployment"),
        entry::<deployment::Commit>("deployment"),
        entry::<deployment::Allocate>("deployment"),
        entry::<deployment::Revert>("deployment"),
        // allocation
        entry::<allocation::Restart>("allocation"),
        entry::<allocation::Publish>("allocation"),
        entry::<allocation::Start>("allocation"),
        entry::<allocation::StatusRequest>("allocation"),
        entry::<allocation::LogsRequest>("allocation"),
        entry::<allocation::Shutdown>("allocation"),
        entry::<allocation::Update>("allocation"),
        // storage
        entry::<storage::InputsRequest>("storage"),
        entry::<storage::PutRequest>("storage"),
        entry::<storage::CompleteRequest>("storage"),
        // subnet
        entry::<subnet::Routes>("subnet"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `impl Request for` in the crate's sources is in the catalog, once.
    #[test]
    fn the_catalog_is_complete() {
        let sources = [
            include_str!("allocation.rs"),
            include_str!("cap.rs"),
            include_str!("contract.rs"),
            include_str!("deployment.rs"),
            include_str!("node.rs"),
            include_str!("onboarding.rs"),
            include_str!("peers.rs"),
            include_str!("storage.rs"),
            include_str!("subnet.rs"),
            include_str!("telemetry.rs"),
            include_str!("lib.rs"),
            include_str!("record.rs"),
        ];
        let needle = ["impl Request", " for "].concat();
        let impls: usize = sources.iter().map(|s| s.matches(&needle).count()).sum();
        let all = catalog();
        assert_eq!(all.len(), impls, "a Request type is missing from catalog()");
        let mut requests: Vec<_> = all.iter().map(|b| b.request).collect();
        requests.sort();
        requests.dedup();
        assert_eq!(requests.len(), all.len(), "a Request type is listed twice");
        assert!(all.iter().all(|b| b.behavior.starts_with('/')));
        assert_eq!(
            all.iter()
                .find(|b| b.behavior == "/public/hello")
                .map(BehaviorDoc::capability)
                .as_deref(),
            Some("none (public)")
        );
    }
}
