//! What the provider side tells telemetry: bids made and refused (events and
//! `dms_bids_total{side="provider"}`), allocation state changes and executor failures.

use dms_protocol::{BidAnswer, BidRequest, REASON_CODES};
use dms_telemetry::metrics::{self, bid};
use dms_types::event::kind;

/// Records the answer to a bid request (not a dry run's).
pub(crate) fn bid_answered(request: &BidRequest, answer: &BidAnswer) {
    let deployment = request.deployment.as_str();
    for made in &answer.bids {
        metrics::bid("provider", bid::SENT, "", REASON_CODES);
        dms_telemetry::event!(INFO, kind: kind::BID, deployment: deployment;
            "Bid for node {} of deployment {deployment}.", made.node);
    }
    for refusal in &answer.refusals {
        let code = refusal.reasons.first().map_or("", |r| r.code.as_str());
        metrics::bid("provider", bid::REFUSED, code, REASON_CODES);
        let why: Vec<&str> = refusal.reasons.iter().map(|r| r.message.as_str()).collect();
        dms_telemetry::event!(INFO, kind: kind::BID, deployment: deployment, reason: code;
            "Refused to bid for node {}: {}", refusal.node, why.join("; "));
    }
}

/// Records what one step of an allocation's life cycle changed: its state (an event),
/// a restart (`dms_allocation_restarts_total`), an executor's failure to start it.
pub(crate) fn allocation_stepped(
    hosted: &crate::hosted::Hosted,
    before: dms_protocol::AllocationState,
    restarts_before: u32,
    failed_start: Option<String>,
) {
    if hosted.status.restarts > restarts_before {
        metrics::allocation_restarted();
    }
    let state = hosted.status.state;
    if failed_start.is_none() && state == before {
        return;
    }
    in_trace(hosted, || {
        if let Some(error) = failed_start {
            let (deployment, allocation) = (hosted.deployment.as_str(), hosted.id.as_str());
            let executor = hosted.spec.allocation.executor.name();
            dms_telemetry::event!(WARN, kind: kind::EXECUTOR, deployment: deployment, allocation: allocation, reason: executor;
                "The {executor} executor could not start allocation {allocation}: {error}");
        }
        if state != before {
            state_changed(hosted, state);
        }
    });
}

/// Runs `emit` in the deployment's trace when no traced span is current (an
/// allocation's state changes on its own: its workload exits, a health check fails).
fn in_trace(hosted: &crate::hosted::Hosted, emit: impl FnOnce()) {
    match &hosted.trace {
        Some(trace) if dms_telemetry::propagate::trace_id().is_none() => {
            let span = tracing::info_span!("allocation", id = %hosted.id);
            dms_telemetry::propagate::adopt(&span, trace);
            span.in_scope(emit);
        }
        _ => emit(),
    }
}

fn state_changed(hosted: &crate::hosted::Hosted, state: dms_protocol::AllocationState) {
    let (deployment, allocation) = (hosted.deployment.as_str(), hosted.id.as_str());
    let why = hosted.status.message.as_deref().unwrap_or("");
    let name = state.name();
    if state == dms_protocol::AllocationState::Failed {
        dms_telemetry::event!(WARN, kind: kind::ALLOCATION, deployment: deployment, allocation: allocation, state: name;
            "Allocation {allocation} {name}: {why}");
    } else {
        dms_telemetry::event!(INFO, kind: kind::ALLOCATION, deployment: deployment, allocation: allocation, state: name;
            "Allocation {allocation} {name}{}{why}", if why.is_empty() { "" } else { ": " });
    }
}

impl crate::Provider {
    /// Allocations hosted here by state name (every state present, zeros included), for
    /// the node's metrics; reads the store (blocking).
    pub fn allocation_states(&self) -> Result<Vec<(&'static str, usize)>, dms_store::Error> {
        let hosted = crate::hosted::HOSTED.list_now(&self.shared.store)?;
        Ok(dms_protocol::AllocationState::ALL
            .iter()
            .map(|state| {
                (state.name(), hosted.iter().filter(|(_, h)| h.status.state == *state).count())
            })
            .collect())
    }

    /// The resource accounts (onboarded, free, ...).
    pub fn accounts(&self) -> dms_protocol::onboarding::Accounts {
        self.shared.manager.status()
    }
}
