//! How validation scales with the size of the document: an ensemble whose `metadata`
//! holds 1,000, 10,000 and 100,000 keys, loaded and checked (`dms_ensemble::load`), and
//! the same with every key written twice (each duplicate reported). Linear work shows
//! as a constant time per key across the sizes.
//!
//! `cargo bench -p dms-ensemble --bench parse` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quick run). Throughput is in keys per second.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BASE: &str = "version: V1\nallocations:\n  web:\n    type: service\n    executor: docker\n    \
                    resources: {cpu: {cores: 1}, ram: 1GiB}\n    execution: {image: nginx}\n\
                    nodes:\n  n: {allocations: [web]}\nmetadata:\n";

fn document(keys: usize, twice: bool) -> String {
    let mut text = String::from(BASE);
    for i in 0..keys {
        text.push_str(&format!("  key-{i}: value\n"));
        if twice {
            text.push_str(&format!("  key-{i}: again\n"));
        }
    }
    text
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    for keys in [1_000, 10_000, 100_000] {
        group.throughput(Throughput::Elements(keys as u64));
        let unique = document(keys, false);
        group.bench_with_input(BenchmarkId::new("unique_keys", keys), &unique, |b, text| {
            b.iter(|| black_box(dms_ensemble::load(text)).is_ok())
        });
        let duplicated = document(keys, true);
        group.bench_with_input(
            BenchmarkId::new("every_key_twice", keys),
            &duplicated,
            |b, text| b.iter(|| black_box(dms_ensemble::load(text)).is_err()),
        );
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
