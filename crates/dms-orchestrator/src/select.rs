//! Choosing one bid per ensemble node, and saying why when no choice works.
//!
//! Hard constraints: a node goes only to a peer that bid on it; two nodes never share a
//! peer (they name different machines); excluded and failed peers are skipped; an
//! edge's `max_latency` must hold between the chosen peers (measured round trips, as
//! the bids report them). Among the placements that satisfy them, the search takes the
//! highest-scoring bid for each node first (nodes with the fewest bids are placed
//! first), backtracking when a later node cannot be placed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use dms_ensemble::model::Edge;
use serde::{Deserialize, Serialize};

use dms_protocol::node::NodePlan;
use dms_protocol::{Bid, BidAnswer, NodeAsk};

/// Most search steps before the search gives up (bounds the work on huge networks).
const MAX_STEPS: usize = 200_000;

/// The chosen bid of one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The provider's peer id.
    pub peer: String,
    /// Its reservation.
    pub reservation: String,
    /// The bid's score.
    pub score: f64,
    /// The contract the bid was made under (its id).
    pub contract: Option<String>,
}

/// Every node's chosen bid, or why there is none.
pub fn place(
    asks: &[NodeAsk],
    answers: &[BidAnswer],
    skip: &BTreeSet<String>,
    edges: &[Edge],
) -> Result<BTreeMap<String, Choice>, String> {
    let mut candidates: Vec<(&NodeAsk, Vec<(&str, &Bid)>)> = asks
        .iter()
        .map(|ask| {
            let mut bids: Vec<(&str, &Bid)> = answers
                .iter()
                .filter(|a| !skip.contains(&a.peer))
                .flat_map(|a| a.bids.iter().map(move |b| (a.peer.as_str(), b)))
                .filter(|(peer, b)| {
                    b.node == ask.node && ask.pinned.as_deref().is_none_or(|p| p == *peer)
                })
                .collect();
            bids.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(b.0)));
            (ask, bids)
        })
        .collect();
    let unplaceable: Vec<String> = candidates
        .iter()
        .filter(|(_, bids)| bids.is_empty())
        .map(|(ask, _)| explain_node(ask, answers, skip))
        .collect();
    if !unplaceable.is_empty() {
        return Err(unplaceable.join("; "));
    }
    candidates.sort_by_key(|(ask, bids)| (bids.len(), ask.node.clone()));
    let mut chosen: Vec<(&str, &str, &Bid)> = Vec::new();
    let mut steps = 0;
    if search(&candidates, edges, &mut chosen, &mut steps) {
        return Ok(chosen
            .into_iter()
            .map(|(node, peer, bid)| {
                (
                    node.to_string(),
                    Choice {
                        peer: peer.to_string(),
                        reservation: bid.reservation.clone(),
                        score: bid.score,
                        contract: bid.contract.clone(),
                    },
                )
            })
            .collect());
    }
    if steps >= MAX_STEPS {
        return Err(format!("no placement found within {MAX_STEPS} search steps"));
    }
    let mut reason = String::from(
        "every node has bids, but no choice gives each node its own peer with the edges' \
         latency limits met",
    );
    if let Some(max) = asks.first().and_then(|a| a.requirements.max_price_per_hour) {
        let _ = write!(reason, " and all of them together at {max}/h at most (max_price_per_hour)");
    }
    let skipped = answers.iter().filter(|a| skip.contains(&a.peer)).count();
    if skipped > 0 {
        let _ =
            write!(reason, " ({skipped} peers skipped: excluded or failed this deployment before)");
    }
    if !edges.is_empty() {
        let _ = write!(reason, " (edges: {})", edges_text(edges));
    }
    Err(reason)
}

fn search<'a>(
    candidates: &[(&'a NodeAsk, Vec<(&'a str, &'a Bid)>)],
    edges: &[Edge],
    chosen: &mut Vec<(&'a str, &'a str, &'a Bid)>,
    steps: &mut usize,
) -> bool {
    let Some((ask, bids)) = candidates.get(chosen.len()) else { return true };
    for &(peer, bid) in bids {
        *steps += 1;
        if *steps >= MAX_STEPS {
            return false;
        }
        if chosen.iter().any(|(_, p, _)| *p == peer) {
            continue;
        }
        if !edges_hold(&ask.node, peer, bid, chosen, edges) || !price_holds(ask, bid, chosen) {
            continue;
        }
        chosen.push((ask.node.as_str(), peer, bid));
        if search(candidates, edges, chosen, steps) {
            return true;
        }
        chosen.pop();
    }
    false
}

fn edges_hold(
    node: &str,
    peer: &str,
    bid: &Bid,
    chosen: &[(&str, &str, &Bid)],
    edges: &[Edge],
) -> bool {
    edges.iter().all(|edge| {
        let Some(max) = edge.max_latency else { return true };
        let other = if edge.source == node {
            &edge.target
        } else if edge.target == node {
            &edge.source
        } else {
            return true;
        };
        let Some((_, other_peer, other_bid)) = chosen.iter().find(|(n, _, _)| n == other) else {
            return true;
        };
        let rtt = bid.rtt_ms.get(*other_peer).or_else(|| other_bid.rtt_ms.get(peer));
        rtt.is_some_and(|ms| *ms <= max.to_std().as_secs_f64() * 1000.0)
    })
}

/// The ensemble's `max_price_per_hour` (every ask carries it) holds for the whole
/// placement: the prices per hour of the bids chosen so far and of `bid` add up to it at
/// most. A machine without a price charges nothing.
fn price_holds(ask: &NodeAsk, bid: &Bid, chosen: &[(&str, &str, &Bid)]) -> bool {
    let Some(max) = ask.requirements.max_price_per_hour else { return true };
    let price = |b: &Bid| b.machine.price_per_hour.filter(|p| p.is_finite() && *p > 0.0);
    let total: f64 =
        chosen.iter().filter_map(|(_, _, b)| price(b)).sum::<f64>() + price(bid).unwrap_or(0.0);
    total <= max + 1e-9
}

fn edges_text(edges: &[Edge]) -> String {
    edges
        .iter()
        .map(|e| match e.max_latency {
            Some(l) => format!("{}–{} within {:?}", e.source, e.target, l.to_std()),
            None => format!("{}–{}", e.source, e.target),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why no peer bid on `ask`: "node `main`: 0 of 3 peers: 2 insufficient_ram (needs
/// 16.0 GiB RAM, 6.0 GiB free), 1 executor (no docker executor)".
pub fn explain_node(ask: &NodeAsk, answers: &[BidAnswer], skip: &BTreeSet<String>) -> String {
    let mut by_code: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    let mut add = |code: &str, message: String| {
        let entry = by_code.entry(code.to_string()).or_default();
        entry.0 += 1;
        if entry.1.len() < 2 && !entry.1.contains(&message) {
            entry.1.push(message);
        }
    };
    for answer in answers {
        if skip.contains(&answer.peer) {
            add("failed_before", format!("{} failed this deployment before", short(&answer.peer)));
            continue;
        }
        if let Some(refusal) = answer.refusals.iter().find(|r| r.node == ask.node) {
            for reason in &refusal.reasons {
                add(&reason.code, reason.message.clone());
            }
        } else if !answer.bids.iter().any(|b| b.node == ask.node) {
            add("no_answer_for_node", "answered without this node".into());
        }
    }
    let mut text = format!("node `{}`: 0 of {} peers could take it", ask.node, answers.len());
    if let Some(pinned) = &ask.pinned
        && !answers.iter().any(|a| &a.peer == pinned)
    {
        // A pinned node can only go to its peer: say that this peer is the one missing.
        let _ = write!(
            text,
            ": it is pinned to peer {pinned}, which did not answer the bid request (is it \
             reachable from this node? see `dms peers list`)"
        );
        return text;
    }
    if answers.is_empty() {
        text.push_str(
            ": no peer answered the bid request (are peers connected? see `dms peers list`)",
        );
        return text;
    }
    let parts: Vec<String> = by_code
        .iter()
        .map(|(code, (count, messages))| format!("{count} {code} ({})", messages.join("; ")))
        .collect();
    let _ = write!(text, ": {}", parts.join(", "));
    text
}

/// Candidates and rejections of every node.
pub fn plan(asks: &[NodeAsk], answers: &[BidAnswer]) -> BTreeMap<String, NodePlan> {
    asks.iter()
        .map(|ask| {
            let mut plan = NodePlan::default();
            for answer in answers {
                if let Some(bid) = answer.bids.iter().find(|b| b.node == ask.node) {
                    plan.candidates.push((answer.peer.clone(), bid.score));
                    if let Some(parts) = bid.parts {
                        plan.parts.insert(answer.peer.clone(), parts);
                    }
                } else if let Some(refusal) = answer.refusals.iter().find(|r| r.node == ask.node) {
                    plan.rejected.push((
                        answer.peer.clone(),
                        refusal
                            .reasons
                            .iter()
                            .map(|r| format!("{}: {}", r.code, r.message))
                            .collect(),
                    ));
                }
            }
            plan.candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            (ask.node.clone(), plan)
        })
        .collect()
}

/// The last characters of a peer id, enough to tell peers apart in messages.
pub fn short(peer: &str) -> String {
    let tail: String = peer.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dms_protocol::{Reason, Refusal};
    use dms_types::capability::{Machine, Requirements};

    fn ask(node: &str) -> NodeAsk {
        NodeAsk {
            node: node.into(),
            requirements: Requirements::default(),
            executors: vec!["wasm".into()],
            pinned: None,
            accept: Vec::new(),
            reject: Vec::new(),
            binds: Vec::new(),
            subnet: false,
        }
    }

    fn bid(node: &str, score: f64) -> Bid {
        Bid {
            node: node.into(),
            reservation: format!("r-{node}"),
            expires_ms: 0,
            machine: Machine::default(),
            score,
            rtt_ms: BTreeMap::new(),
            parts: None,
            contract: None,
        }
    }

    fn answer(peer: &str, bids: Vec<Bid>) -> BidAnswer {
        BidAnswer { peer: peer.into(), bids, refusals: Vec::new() }
    }

    #[test]
    fn best_scores_win_and_peers_are_distinct() {
        let asks = [ask("a"), ask("b")];
        let answers = [
            answer("p1", vec![bid("a", 0.9), bid("b", 0.9)]),
            answer("p2", vec![bid("a", 0.5), bid("b", 0.4)]),
        ];
        let placed = place(&asks, &answers, &BTreeSet::new(), &[]).expect("valid");
        assert_ne!(placed["a"].peer, placed["b"].peer);
        // Ties on the first node are broken by peer id; the other node takes the rest.
        assert_eq!(placed.len(), 2);
    }

    #[test]
    fn max_price_per_hour_holds_for_the_whole_ensemble() {
        let priced = |node: &str, score: f64, price: f64| {
            let mut b = bid(node, score);
            b.machine.price_per_hour = Some(price);
            b
        };
        let mut asks = [ask("a"), ask("b")];
        for a in &mut asks {
            a.requirements.max_price_per_hour = Some(1.0);
        }
        // The best-scored pair costs 1.2/h together; the one that fits 1/h is chosen.
        let answers = [
            answer("p1", vec![priced("a", 0.9, 0.6), priced("b", 0.9, 0.6)]),
            answer("p2", vec![priced("a", 0.5, 0.4), priced("b", 0.5, 0.4)]),
        ];
        let placed = place(&asks, &answers, &BTreeSet::new(), &[]).expect("a pair fits");
        assert_ne!(placed["a"].peer, placed["b"].peer);
        let dear = [
            answer("p1", vec![priced("a", 0.9, 0.6), priced("b", 0.9, 0.6)]),
            answer("p2", vec![priced("a", 0.5, 0.6), priced("b", 0.5, 0.6)]),
        ];
        let why = place(&asks, &dear, &BTreeSet::new(), &[]).expect_err("1.2/h > 1/h");
        assert!(why.contains("max_price_per_hour"), "{why}");
    }

    #[test]
    fn skipped_peers_are_not_chosen() {
        let asks = [ask("a")];
        let answers = [answer("p1", vec![bid("a", 0.9)]), answer("p2", vec![bid("a", 0.1)])];
        let skip = BTreeSet::from(["p1".to_string()]);
        assert_eq!(place(&asks, &answers, &skip, &[]).expect("places")["a"].peer, "p2");
    }

    #[test]
    fn pinned_node_only_goes_to_its_peer() {
        let mut pinned = ask("a");
        pinned.pinned = Some("p2".into());
        let answers = [answer("p1", vec![bid("a", 0.9)]), answer("p2", vec![bid("a", 0.1)])];
        assert_eq!(
            place(&[pinned], &answers, &BTreeSet::new(), &[]).expect("places")["a"].peer,
            "p2"
        );
    }

    #[test]
    fn a_pinned_node_whose_peer_is_silent_says_so() {
        let mut pinned = ask("a");
        pinned.pinned = Some("p2".into());
        let answers = [answer("p1", vec![bid("a", 0.9)])];
        let why = explain_node(&pinned, &answers, &BTreeSet::new());
        assert!(why.contains("pinned to peer p2, which did not answer"), "{why}");
        let why = explain_node(&pinned, &[], &BTreeSet::new());
        assert!(why.contains("pinned to peer p2"), "{why}");
    }

    #[test]
    fn refusals_are_aggregated_by_code() {
        let refuse = |peer: &str, code: &str, message: &str| BidAnswer {
            peer: peer.into(),
            bids: Vec::new(),
            refusals: vec![Refusal {
                node: "main".into(),
                reasons: vec![Reason {
                    transient: false,
                    code: code.into(),
                    message: message.into(),
                }],
            }],
        };
        let answers = [
            refuse("p1", "insufficient_ram", "needs 16.0 GiB RAM, 6.0 GiB free"),
            refuse("p2", "insufficient_ram", "needs 16.0 GiB RAM, 2.0 GiB free"),
            refuse("p3", "executor", "no docker executor"),
        ];
        let error =
            place(&[ask("main")], &answers, &BTreeSet::new(), &[]).expect_err("must not place");
        assert_eq!(
            error,
            "node `main`: 0 of 3 peers could take it: 1 executor (no docker executor), \
             2 insufficient_ram (needs 16.0 GiB RAM, 6.0 GiB free; needs 16.0 GiB RAM, 2.0 GiB free)"
        );
    }

    #[test]
    fn latency_edges_are_enforced() {
        let edge: Edge = serde_json::from_value(serde_json::json!(
            {"source": "a", "target": "b", "max_latency": "10ms"}
        ))
        .expect("valid");
        let mut a1 = bid("a", 0.9);
        a1.rtt_ms.insert("p2".into(), 50.0);
        a1.rtt_ms.insert("p3".into(), 2.0);
        let answers = [
            answer("p1", vec![a1]),
            answer("p2", vec![bid("b", 0.9)]),
            answer("p3", vec![bid("b", 0.1)]),
        ];
        let placed =
            place(&[ask("a"), ask("b")], &answers, &BTreeSet::new(), &[edge]).expect("valid");
        assert_eq!(placed["b"].peer, "p3", "p2 is 50 ms away, over the 10 ms limit");
    }

    #[test]
    fn many_nodes_place_quickly() {
        let asks: Vec<NodeAsk> = (0..20).map(|i| ask(&format!("n{i}"))).collect();
        let answers: Vec<BidAnswer> = (0..100)
            .map(|p| {
                answer(
                    &format!("p{p:03}"),
                    asks.iter().map(|a| bid(&a.node, f64::from(p) / 100.0)).collect(),
                )
            })
            .collect();
        let placed = place(&asks, &answers, &BTreeSet::new(), &[]).expect("valid");
        let peers: BTreeSet<&String> = placed.values().map(|c| &c.peer).collect();
        assert_eq!(peers.len(), 20);
        assert!(peers.contains(&"p099".to_string()), "the best peer is used");
    }
}
