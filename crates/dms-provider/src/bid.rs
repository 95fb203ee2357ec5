//! Bidding as a pure evaluation: a bid request judged against one snapshot of the
//! machine, one answer per ensemble node (a bid or a refusal with every reason). The
//! reservation that backs the bids is the provider's next step ([`crate::Provider`]).

use std::collections::BTreeMap;

use dms_protocol::{Bid, BidAnswer, BidRequest, NodeAsk, Reason, Refusal};
use dms_types::capability::{Location, Machine, MismatchCode, ScoreParts, explain, parts};
use dms_types::resources::Resources;

use crate::contract::{Choice, price_short};

/// What a request is judged against.
pub struct Offer<'a> {
    /// This provider's peer id.
    pub me: &'a str,
    /// What the machine offers now (free resources, executors, price, place, scores).
    pub machine: &'a Machine,
    /// What is onboarded in total (`None`: nothing is).
    pub onboarded: Option<&'a Resources>,
    /// The contract the request binds this provider to, if any, or why it does not
    /// hold ([`crate::contract::choose`]).
    pub contract: &'a crate::contract::Choice,
    /// Round-trip times to the provider's connected peers, in milliseconds.
    pub rtt_ms: &'a BTreeMap<String, f64>,
    /// The public ports the request asks for that cannot be had here.
    pub ports_taken: &'a BTreeMap<u16, crate::ports::Taken>,
    /// The host paths `bind` volumes may name (`deployment.bind_paths`).
    pub bind_paths: &'a [std::path::PathBuf],
    /// Why allocations here cannot join a deployment's subnet (`None`: they can).
    pub subnet_unavailable: Option<&'a str>,
}

/// The answer to `request` (bids without reservations yet) and, per bid, the resources
/// it claims.
pub fn evaluate(request: &BidRequest, offer: &Offer<'_>) -> (BidAnswer, Vec<Resources>) {
    let mut answer = BidAnswer { peer: offer.me.to_string(), ..BidAnswer::default() };
    let refuse_all = |answer: &mut BidAnswer, code: &str, message: &str| {
        for ask in &request.nodes {
            answer.refusals.push(refusal(&ask.node, false, code, message.to_string()));
        }
    };
    if request.exclude.iter().any(|p| p == offer.me) {
        refuse_all(
            &mut answer,
            "excluded",
            "this peer is excluded by the ensemble or failed it before",
        );
        return (answer, Vec::new());
    }
    let Some(onboarded) = offer.onboarded else {
        refuse_all(&mut answer, "not_onboarded", "this node offers no resources (`dms onboard`)");
        return (answer, Vec::new());
    };
    let contract = match offer.contract {
        Choice::Refused { code, message } => {
            refuse_all(&mut answer, code, message);
            return (answer, Vec::new());
        }
        Choice::Bound(contract) => Some(contract.as_ref()),
        Choice::None => None,
    };
    let mut claims = Vec::new();
    for ask in &request.nodes {
        let judged = judge(ask, offer, onboarded).and_then(|fit| {
            let short = contract.and_then(|c| price_short(c, ask, offer.machine.price_per_hour));
            match short {
                Some(why) => Err(vec![reason(false, "contract_price", why)]),
                None => Ok(fit),
            }
        });
        match judged {
            Ok((claim, parts)) => {
                claims.push(claim);
                answer.bids.push(Bid {
                    node: ask.node.clone(),
                    reservation: String::new(),
                    expires_ms: 0,
                    machine: offer.machine.clone(),
                    score: parts.total,
                    rtt_ms: offer.rtt_ms.clone(),
                    parts: Some(parts),
                    contract: contract.map(|c| c.id()),
                });
            }
            Err(reasons) => answer.refusals.push(Refusal { node: ask.node.clone(), reasons }),
        }
    }
    (answer, claims)
}

/// One node: what it would claim and its score, or every reason it does not fit.
fn judge(
    ask: &NodeAsk,
    offer: &Offer<'_>,
    onboarded: &Resources,
) -> Result<(Resources, ScoreParts), Vec<Reason>> {
    let machine = offer.machine;
    if ask.pinned.as_ref().is_some_and(|p| p != offer.me) {
        return Err(vec![reason(
            false,
            "pinned_elsewhere",
            "the node is pinned to another peer".into(),
        )]);
    }
    let mut reasons: Vec<Reason> = ask
        .executors
        .iter()
        .filter(|e| !machine.executors.contains(e))
        .map(|e| reason(false, "executor", format!("no {e} executor here")))
        .collect();
    reasons.extend(location_reasons(ask, machine.location.as_ref()));
    for bind in &ask.binds {
        if let Err(why) =
            dms_storage::volume::bind_allowed(offer.bind_paths, std::path::Path::new(bind))
        {
            reasons.push(reason(false, "bind", why));
        }
    }
    if let Some(why) = offer.subnet_unavailable.filter(|_| ask.subnet) {
        reasons.push(reason(
            false,
            "subnet",
            format!("cannot join the deployment's subnet: {why}"),
        ));
    }
    for port in &ask.requirements.ports {
        if let Some(taken) = offer.ports_taken.get(port) {
            reasons.push(reason(taken.transient, "port", taken.why.clone()));
        }
    }
    let mut requirements = ask.requirements.clone();
    requirements.executors.clear();
    // Short of free resources the machine has in total: that passes when allocations end.
    let fits_offer = requirements.claim(onboarded).is_some();
    reasons.extend(explain(&requirements, machine).into_iter().map(|m| {
        let shortage = matches!(
            m.code,
            MismatchCode::InsufficientCpu
                | MismatchCode::InsufficientRam
                | MismatchCode::InsufficientDisk
                | MismatchCode::InsufficientGpus
        );
        let code = serde_json::to_value(m.code)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        reason(shortage && fits_offer, &code, m.message)
    }));
    match (requirements.claim(&machine.free), reasons.is_empty()) {
        (Some(claim), true) => Ok((claim, parts(&requirements, machine).unwrap_or_default())),
        _ => Err(reasons),
    }
}

fn reason(transient: bool, code: &str, message: String) -> Reason {
    Reason { transient, code: code.into(), message }
}

fn refusal(node: &str, transient: bool, code: &str, message: String) -> Refusal {
    Refusal { node: node.into(), reasons: vec![reason(transient, code, message)] }
}

/// Every bid of a request turns into a refusal: the reservation could not be made.
pub fn unreserved(answer: &mut BidAnswer, why: &str) {
    for bid in std::mem::take(&mut answer.bids) {
        answer.refusals.push(refusal(&bid.node, true, "reserve_failed", why.to_string()));
    }
}

/// Every bid of a request turns into a refusal: the asking peer holds as many
/// reservations here as its quota allows (transient: room comes back as they end).
pub fn over_quota(answer: &mut BidAnswer, held: usize, limit: usize) {
    let why = format!(
        "the asking peer holds {held} reservations or allocations on this node, its quota \
         (quotas.reservations_per_peer = {limit}); retry when some have ended"
    );
    for bid in std::mem::take(&mut answer.bids) {
        answer.refusals.push(refusal(&bid.node, true, "quota", why.clone()));
    }
}

/// Component by component, the largest of `claims` (GPUs: the longest list).
pub fn largest(claims: &[Resources]) -> Resources {
    let mut out = Resources::default();
    for c in claims {
        out.cpu_millicores = out.cpu_millicores.max(c.cpu_millicores);
        out.ram_bytes = out.ram_bytes.max(c.ram_bytes);
        out.disk_bytes = out.disk_bytes.max(c.disk_bytes);
        if c.gpus.len() > out.gpus.len() {
            out.gpus = c.gpus.clone();
        }
    }
    out
}

/// Why the machine's location does not suit the node, if it does not.
fn location_reasons(ask: &NodeAsk, here: Option<&Location>) -> Vec<Reason> {
    let show = |l: &Location| {
        [&l.continent, &l.country, &l.city]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut reasons = Vec::new();
    if !ask.accept.is_empty() {
        match here {
            None => reasons.push(Reason {
                transient: false,
                code: "location".into(),
                message: "this node does not say where it is (deployment.location)".into(),
            }),
            Some(here) if !ask.accept.iter().any(|a| a.includes(here)) => reasons.push(Reason {
                transient: false,
                code: "location".into(),
                message: format!(
                    "this node is in {}, not in {}",
                    show(here),
                    ask.accept.iter().map(show).collect::<Vec<_>>().join(" or ")
                ),
            }),
            Some(_) => {}
        }
    }
    if let Some(here) = here
        && let Some(rejected) = ask.reject.iter().find(|r| r.includes(here))
    {
        reasons.push(Reason {
            transient: false,
            code: "location".into(),
            message: format!(
                "this node is in {}, which the ensemble rejects ({})",
                show(here),
                show(rejected)
            ),
        });
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_checked_both_ways() {
        let berlin = Location {
            continent: Some("EU".into()),
            country: Some("DE".into()),
            city: Some("Berlin".into()),
        };
        let country = |c: &str| Location { country: Some(c.into()), ..Default::default() };
        let mut ask = NodeAsk {
            node: "n".into(),
            requirements: Default::default(),
            executors: Vec::new(),
            pinned: None,
            accept: vec![country("DE")],
            reject: Vec::new(),
            binds: Vec::new(),
            subnet: false,
        };
        assert!(location_reasons(&ask, Some(&berlin)).is_empty());
        assert_eq!(
            location_reasons(&ask, None)[0].code,
            "location",
            "unknown places are not accepted"
        );
        ask.accept = vec![country("FR")];
        assert!(location_reasons(&ask, Some(&berlin))[0].message.contains("not in FR"));
        ask.accept.clear();
        ask.reject = vec![country("de")];
        assert!(location_reasons(&ask, Some(&berlin))[0].message.contains("rejects"));
        assert!(location_reasons(&ask, None).is_empty(), "a reject list alone admits the unknown");
    }
}
