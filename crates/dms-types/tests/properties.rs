//! Properties of resource arithmetic and of the capability model, on generated values.

use std::collections::BTreeSet;

use dms_types::{
    BenchmarkPreference, BenchmarkScores, Gpu, GpuRequirement, GpuVendor, Location, Machine,
    PortRange, Requirements, Resources, explain, score,
};
use proptest::prelude::*;

fn vendor() -> impl Strategy<Value = GpuVendor> {
    prop_oneof![
        Just(GpuVendor::Nvidia),
        Just(GpuVendor::Amd),
        Just(GpuVendor::Intel),
        Just(GpuVendor::Other)
    ]
}

fn gpu(index: u32) -> impl Strategy<Value = Gpu> {
    (vendor(), prop::sample::select(vec!["RTX 4090", "A100", "MI100"]), 0..64_u64).prop_map(
        move |(vendor, model, vram_gib)| Gpu {
            index,
            vendor,
            model: model.to_owned(),
            vram_bytes: vram_gib << 30,
            uuid: None,
            drm_card: None,
        },
    )
}

/// GPUs with distinct indices drawn from `indices`.
fn gpus(indices: std::ops::Range<u32>) -> impl Strategy<Value = Vec<Gpu>> {
    prop::collection::btree_set(indices, 0..4)
        .prop_flat_map(|set: BTreeSet<u32>| set.into_iter().map(gpu).collect::<Vec<_>>())
}

/// Resources whose amounts are below `max` and whose GPU indices are in `indices`.
fn resources(max: u64, indices: std::ops::Range<u32>) -> impl Strategy<Value = Resources> {
    (0..max, 0..max, 0..max, gpus(indices)).prop_map(|(cpu, ram, disk, gpus)| Resources {
        cpu_millicores: cpu,
        ram_bytes: ram,
        disk_bytes: disk,
        gpus,
    })
}

/// Small amounts (so that comparisons go both ways) or any amounts.
fn any_resources() -> impl Strategy<Value = Resources> {
    prop_oneof![resources(8, 0..6), resources(u64::MAX, 0..6)]
}

fn indices(resources: &Resources) -> BTreeSet<u32> {
    resources.gpus.iter().map(|gpu| gpu.index).collect()
}

proptest! {
    #[test]
    fn adding_then_subtracting_is_the_identity(
        a in resources(u64::MAX / 2, 0..8),
        b in resources(u64::MAX / 2, 8..16),
    ) {
        let sum = a.checked_add(&b).expect("halves do not overflow and GPUs are distinct");
        prop_assert_eq!(sum.checked_sub(&b), Some(a));
    }

    #[test]
    fn checked_sub_never_underflows(a in any_resources(), b in any_resources()) {
        match a.checked_sub(&b) {
            Some(left) => {
                prop_assert_eq!(left.cpu_millicores + b.cpu_millicores, a.cpu_millicores);
                prop_assert_eq!(left.ram_bytes + b.ram_bytes, a.ram_bytes);
                prop_assert_eq!(left.disk_bytes + b.disk_bytes, a.disk_bytes);
                prop_assert!(indices(&b).is_subset(&indices(&a)));
                let expected: BTreeSet<u32> = indices(&a).difference(&indices(&b)).copied().collect();
                prop_assert_eq!(indices(&left), expected);
            }
            None => prop_assert!(
                b.cpu_millicores > a.cpu_millicores
                    || b.ram_bytes > a.ram_bytes
                    || b.disk_bytes > a.disk_bytes
                    || !indices(&b).is_subset(&indices(&a))
            ),
        }
        let left = a.saturating_sub(&b);
        prop_assert!(left.fits_in(&a));
    }

    #[test]
    fn fits_in_agrees_with_checked_sub(a in any_resources(), b in any_resources()) {
        prop_assert_eq!(b.fits_in(&a), a.checked_sub(&b).is_some());
    }

    #[test]
    fn explain_is_empty_exactly_when_score_is_some(
        (requirements, machine) in (requirements(), machine()),
    ) {
        let mismatches = explain(&requirements, &machine);
        let score = score(&requirements, &machine);
        prop_assert_eq!(mismatches.is_empty(), score.is_some(), "{:?}", mismatches);
        if let Some(score) = score {
            prop_assert!((0.0..=1.0).contains(&score), "score {}", score);
        }
        if mismatches.is_empty() {
            let claim = requirements.claim(&machine.free).expect("a compatible job fits");
            prop_assert!(claim.fits_in(&machine.free));
        }
    }
}

fn some_of<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> impl Strategy<Value = Vec<T>> {
    prop::sample::subsequence(items.clone(), 0..=items.len())
}

fn location() -> impl Strategy<Value = Location> {
    let part = |names: Vec<&'static str>| {
        prop::option::of(prop::sample::select(names).prop_map(str::to_owned))
    };
    (part(vec!["Europe", "Asia"]), part(vec!["DE", "FR"]), part(vec!["Berlin", "Paris"]))
        .prop_map(|(continent, country, city)| Location { continent, country, city })
}

fn requirements() -> impl Strategy<Value = Requirements> {
    let gpu = (0..3_u32, prop::option::of(vendor()), prop::option::of(0..64_u64)).prop_map(
        |(count, vendor, min_vram_gib)| GpuRequirement {
            count,
            vendor,
            model: None,
            min_vram_bytes: min_vram_gib.map(|gib| gib << 30),
        },
    );
    let weights = (0.0..2.0_f64, 0.0..2.0_f64).prop_map(|(cpu_single, cpu_multi)| {
        BenchmarkPreference { cpu_single, cpu_multi, ..BenchmarkPreference::default() }
    });
    (
        (0..8_000_u64, 0..32_u64, 0..32_u64, prop::option::weighted(0.3, gpu)),
        (
            prop::option::weighted(
                0.3,
                prop::sample::select(vec!["x86_64", "arm64"]).prop_map(str::to_owned),
            ),
            some_of(vec!["docker".to_owned(), "wasm".to_owned()]),
            prop::option::weighted(0.2, location()),
            prop::collection::vec(prop::sample::select(vec![22_u16, 80, 8080]), 0..2),
        ),
        (
            prop::option::weighted(0.3, 0.0..5.0_f64),
            prop::option::weighted(0.3, 0.0..50.0_f64),
            prop::option::of(0..100_000_u64),
            prop::option::of(weights),
        ),
    )
        .prop_map(
            |((cpu, ram, disk, gpu), (architecture, executors, location, ports), soft)| {
                let (max_price_per_hour, max_total_price, max_duration_secs, prefer_benchmark) =
                    soft;
                Requirements {
                    cpu_millicores: cpu,
                    ram_bytes: ram << 30,
                    disk_bytes: disk << 30,
                    gpu,
                    architecture,
                    executors,
                    location,
                    ports,
                    max_price_per_hour,
                    max_total_price,
                    max_duration_secs,
                    prefer_benchmark,
                    attributes: Default::default(),
                    weights: None,
                }
            },
        )
}

fn machine() -> impl Strategy<Value = Machine> {
    let ports = prop::option::of(some_of(vec![
        PortRange { start: 22, end: 22 },
        PortRange { start: 80, end: 443 },
        PortRange { start: 8000, end: 9000 },
    ]));
    let benchmarks = prop::option::of((0.0..20_000.0_f64, 0.0..50_000.0_f64).prop_map(
        |(cpu_single, cpu_multi)| BenchmarkScores {
            cpu_single,
            cpu_multi,
            ..BenchmarkScores::REFERENCE
        },
    ));
    (
        (0..16_000_u64, 0..64_u64, 0..64_u64, gpus(0..4)),
        prop::sample::select(vec!["x86_64", "aarch64"]).prop_map(str::to_owned),
        some_of(vec!["docker".to_owned(), "wasm".to_owned()]),
        (prop::option::of(location()), ports),
        (prop::option::of(0.0..5.0_f64), prop::option::of(0..100_000_u64), benchmarks),
    )
        .prop_map(
            |((cpu, ram, disk, gpus), architecture, executors, (location, free_ports), soft)| {
                let (price_per_hour, max_duration_secs, benchmarks) = soft;
                Machine {
                    free: Resources {
                        cpu_millicores: cpu,
                        ram_bytes: ram << 30,
                        disk_bytes: disk << 30,
                        gpus,
                    },
                    architecture,
                    executors,
                    location,
                    free_ports,
                    price_per_hour,
                    max_duration_secs,
                    benchmarks,
                    attributes: Default::default(),
                }
            },
        )
}

/// The generators must reach both sides of `explain_is_empty_exactly_when_score_is_some`.
#[test]
fn generated_jobs_are_often_compatible_and_often_not() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let pairs = (requirements(), machine());
    let compatible = (0..1000)
        .filter(|_| {
            let (requirements, machine) =
                pairs.new_tree(&mut runner).expect("generates a pair").current();
            explain(&requirements, &machine).is_empty()
        })
        .count();
    assert!((100..=900).contains(&compatible), "{compatible} of 1000 compatible");
}
