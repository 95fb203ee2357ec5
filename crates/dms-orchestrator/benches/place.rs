//! Placement throughput: choosing bids for ensembles of 1, 5 and 20 nodes among the
//! answers of 100 simulated providers (each bids on every node with its own score and
//! reports round trips to the others), with and without a latency edge.
//!
//! `cargo bench -p dms-orchestrator --bench place`

use std::collections::{BTreeMap, BTreeSet};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dms_ensemble::model::Edge;
use dms_orchestrator::select::place;
use dms_protocol::{Bid, BidAnswer, NodeAsk};
use dms_types::capability::{Machine, Requirements};

const PROVIDERS: usize = 100;

fn answers(nodes: &[NodeAsk]) -> Vec<BidAnswer> {
    (0..PROVIDERS)
        .map(|p| {
            let peer = format!("peer-{p:03}");
            let rtt_ms: BTreeMap<String, f64> = (0..PROVIDERS)
                .filter(|q| *q != p)
                .map(|q| (format!("peer-{q:03}"), ((p * 7 + q * 13) % 50) as f64))
                .collect();
            let bids = nodes
                .iter()
                .map(|ask| Bid {
                    node: ask.node.clone(),
                    reservation: format!("{}/{p}", ask.node),
                    expires_ms: 0,
                    machine: Machine::default(),
                    score: ((p * 31 + ask.node.len() * 17) % 100) as f64 / 100.0,
                    rtt_ms: rtt_ms.clone(),
                    parts: None,
                    contract: None,
                })
                .collect();
            BidAnswer { peer, bids, refusals: Vec::new() }
        })
        .collect()
}

fn asks(count: usize) -> Vec<NodeAsk> {
    (0..count)
        .map(|i| NodeAsk {
            node: format!("n{i}"),
            requirements: Requirements::default(),
            executors: vec!["wasm".into()],
            pinned: None,
            accept: Vec::new(),
            reject: Vec::new(),
            binds: Vec::new(),
            subnet: false,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("place_100_providers");
    for count in [1, 5, 20] {
        let nodes = asks(count);
        let answers = answers(&nodes);
        group.bench_with_input(BenchmarkId::new("nodes", count), &count, |b, _| {
            b.iter(|| place(&nodes, &answers, &BTreeSet::new(), &[]).expect("placeable"));
        });
        let edge: Edge = serde_json::from_value(serde_json::json!(
            {"source": "n0", "target": format!("n{}", count - 1), "max_latency": "10ms"}
        ))
        .expect("edge");
        let edges = if count > 1 { vec![edge] } else { Vec::new() };
        group.bench_with_input(BenchmarkId::new("nodes_with_edge", count), &count, |b, _| {
            b.iter(|| place(&nodes, &answers, &BTreeSet::new(), &edges).expect("placeable"));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
