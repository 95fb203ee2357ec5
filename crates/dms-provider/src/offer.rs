//! The answer to a bid request: one snapshot of the machine's accounts, judged by the
//! pure rules of [`crate::bid`], then every bid backed by one reservation (with the
//! public ports it needs held alongside).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dms_protocol::{BidAnswer, BidRequest};
use dms_types::capability::Machine;

use crate::{Reserver, Shared, bid, onboarding, resources};

/// What this machine offers, given its accounts now.
pub(crate) fn machine(shared: &Shared, status: &resources::Accounts) -> Machine {
    let price = shared.settings.price_per_hour;
    Machine {
        free: status.free.clone(),
        architecture: std::env::consts::ARCH.to_string(),
        executors: shared.executors.names(),
        price_per_hour: (price > 0.0).then_some(price),
        location: shared.settings.location.clone(),
        benchmarks: onboarding::benchmark_scores(&shared.store),
        attributes: shared.settings.attributes.clone(),
        ..Machine::default()
    }
}

/// Judges the request against one snapshot of the machine, then backs every bid with
/// one reservation (a provider takes at most one node of a deployment).
pub(crate) async fn bid(
    shared: &Shared,
    request: &BidRequest,
    from: dms_actor::Handle,
    requester: &dms_crypto::Did,
) -> BidAnswer {
    let me = shared.router.peer().to_string();
    let contract = crate::contract::choose(
        &request.contracts,
        &shared.root.handle().did,
        requester,
        dms_ucan::now(),
        &shared.contracts,
        shared.settings.require_contract,
    );
    let contract = crate::contract::within_limits(contract, |id| shared.running_under(id));
    let rtt_ms: BTreeMap<String, f64> = if request.rtts {
        (shared.rtts)().await.into_iter().map(|(peer, rtt)| (peer, rtt as f64)).collect()
    } else {
        BTreeMap::new()
    };
    // One snapshot of the accounts for the whole answer.
    let status = shared.manager.status();
    let machine = machine(shared, &status);
    let onboarded = status.onboarded.as_ref().map(|o| o.resources.clone());
    shared.prune_reservers(&status);
    let wanted: BTreeSet<u16> =
        request.nodes.iter().flat_map(|a| a.requirements.ports.iter().copied()).collect();
    let ports_taken = shared.ports.taken(&wanted);
    let offer = bid::Offer {
        me: &me,
        machine: &machine,
        onboarded: onboarded.as_ref(),
        contract: &contract,
        rtt_ms: &rtt_ms,
        ports_taken: &ports_taken,
        bind_paths: &shared.settings.bind_paths,
        subnet_unavailable: shared.subnet.unavailable(),
    };
    let (mut answer, claims) = bid::evaluate(request, &offer);
    if answer.bids.is_empty() {
        return answer;
    }
    // A plan (dry run) is told of the quota too, though it reserves nothing.
    let (held, limit) = (shared.held_by(&from.peer), shared.settings.reservations_per_peer);
    if held >= limit {
        bid::over_quota(&mut answer, held, limit);
    }
    if request.dry_run || answer.bids.is_empty() {
        return answer;
    }
    let ttl =
        Duration::from_millis(request.reservation_ms.max(1)).min(shared.settings.max_reservation);
    let id = format!("{}/{:08x}", request.deployment, rand::random::<u32>());
    // The public ports of every node bid on are held with the reservation.
    let bid_nodes: BTreeSet<&str> = answer.bids.iter().map(|b| b.node.as_str()).collect();
    let ports: BTreeSet<u16> = request
        .nodes
        .iter()
        .filter(|a| bid_nodes.contains(a.node.as_str()))
        .flat_map(|a| a.requirements.ports.iter().copied())
        .collect();
    if let Err(clashes) = shared.ports.hold(&id, &ports) {
        bid::unreserved(&mut answer, &format!("ports {clashes:?} were taken meanwhile"));
        return answer;
    }
    let (manager, claim) = (shared.manager.clone(), bid::largest(&claims));
    match tokio::task::spawn_blocking(move || manager.reserve(&id, claim, ttl)).await {
        Ok(Ok(reservation)) => {
            let reserver = Reserver { did: from.did, peer: from.peer };
            shared
                .reservers
                .lock()
                .expect("reservers lock")
                .insert(reservation.id.clone(), reserver);
            for bid in &mut answer.bids {
                bid.reservation = reservation.id.clone();
                bid.expires_ms = reservation.expires_ms;
            }
        }
        Ok(Err(error)) => bid::unreserved(&mut answer, &error.to_string()),
        Err(error) => bid::unreserved(&mut answer, &error.to_string()),
    }
    answer
}
