//! Verifications per second of delegation chains of length 1, 3 and 5, cold (every
//! signature checked) and cached, and a full `CapContext::authorize` on a cached 3-link
//! chain.
//!
//! Run with `cargo bench -p dms-ucan` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quick run). Throughput is reported in elements (verifications) per second.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dms_crypto::{KeyPair, KeyType};
use dms_ucan::{CapContext, Chain, Command, Limits, Request, Spec, Verifier};

const NOW: u64 = 1_700_000_000;

fn key(kind: KeyType, seed: u8) -> KeyPair {
    KeyPair::from_secret_bytes(kind, &[seed; 32]).expect("valid fixed secret")
}

fn cmd(path: &str) -> Command {
    Command::parse(path).expect("valid path")
}

/// A chain of `len` links from `keys[0]` down the list, each narrowing a little, with
/// expiries so that the time checks are exercised.
fn chain_of(keys: &[KeyPair], len: usize, verifier: &Verifier) -> Chain {
    let paths =
        ["/dms", "/dms/node", "/dms/node/peers", "/dms/node/peers/list", "/dms/node/peers/list/a"];
    let spec = |i: usize| Spec {
        commands: vec![cmd(paths[i])],
        expires: Some(NOW + 3600 - i as u64),
        ..Spec::default()
    };
    let root = CapContext::new("bench", keys[0].did());
    let mut chain = root.grant(&keys[0], keys[1].did(), &spec(0)).expect("grant");
    for i in 1..len {
        let mut holder = CapContext::new("bench", keys[i].did());
        holder.add_provide(chain.clone(), verifier, NOW).expect("valid anchor");
        chain = holder
            .delegate(&keys[i], keys[i + 1].did(), &spec(i), verifier, NOW)
            .expect("delegate");
    }
    assert_eq!(chain.len(), len);
    chain
}

fn ed25519_keys() -> Vec<KeyPair> {
    (1..=6).map(|i| key(KeyType::Ed25519, i)).collect()
}

fn verify(c: &mut Criterion) {
    let keys = ed25519_keys();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    for len in [1, 3, 5] {
        let verifier = Verifier::default();
        let chain = chain_of(&keys, len, &verifier);
        group.bench_with_input(BenchmarkId::new("cold", len), &chain, |b, chain| {
            b.iter(|| verifier.verify_uncached(black_box(chain), black_box(NOW)).expect("valid"))
        });
        verifier.verify(&chain, NOW).expect("valid");
        group.bench_with_input(BenchmarkId::new("cached", len), &chain, |b, chain| {
            b.iter(|| verifier.verify(black_box(chain), black_box(NOW)).expect("valid"))
        });
    }
    group.finish();

    // The same cold verification with secp256k1 issuers, and decoding from the text form.
    let mut group = c.benchmark_group("verify_other");
    group.throughput(Throughput::Elements(1));
    let secp: Vec<KeyPair> = (1..=4).map(|i| key(KeyType::Secp256k1, i)).collect();
    let verifier = Verifier::default();
    let chain = chain_of(&secp, 3, &verifier);
    group.bench_function("cold_secp256k1/3", |b| {
        b.iter(|| verifier.verify_uncached(black_box(&chain), NOW).expect("valid"))
    });
    let text = chain_of(&keys, 3, &verifier).to_text();
    group.bench_function("decode_text_and_verify_cold/3", |b| {
        b.iter(|| {
            let chain = Chain::from_text(black_box(&text), Limits::default()).expect("decodes");
            verifier.verify_uncached(&chain, NOW).expect("valid")
        })
    });
    group.finish();
}

fn authorize(c: &mut Criterion) {
    let keys = ed25519_keys();
    let verifier = Verifier::default();
    let chain = chain_of(&keys, 3, &verifier);
    let node = CapContext::new("dms", keys[0].did());
    let (invoker, behavior) = (keys[3].did(), cmd("/dms/node/peers/list"));
    let request = Request {
        invoker: &invoker,
        subject: &node.did,
        behavior: &behavior,
        topic: None,
        args: None,
        chain: &chain,
    };
    node.authorize(&verifier, request, NOW).expect("authorized");
    let mut group = c.benchmark_group("authorize");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cached/3", |b| {
        b.iter(|| node.authorize(&verifier, black_box(request), NOW).expect("authorized"))
    });
    group.finish();
}

criterion_group!(benches, verify, authorize);
criterion_main!(benches);
