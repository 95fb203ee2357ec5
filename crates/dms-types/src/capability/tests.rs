use super::*;

const GIB: u64 = 1 << 30;

fn gpu(index: u32, vendor: GpuVendor, model: &str, vram_gib: u64) -> Gpu {
    Gpu {
        index,
        vendor,
        model: model.to_owned(),
        vram_bytes: vram_gib * GIB,
        uuid: None,
        drm_card: None,
    }
}

/// A mid-sized x86 docker host in Berlin with one 24 GiB NVIDIA GPU and one AMD GPU.
fn machine() -> Machine {
    Machine {
        free: Resources {
            cpu_millicores: 8000,
            ram_bytes: 32 * GIB,
            disk_bytes: 500 * GIB,
            gpus: vec![
                gpu(0, GpuVendor::Nvidia, "NVIDIA GeForce RTX 4090", 24),
                gpu(1, GpuVendor::Amd, "AMD Instinct MI100", 32),
            ],
        },
        architecture: "x86_64".to_owned(),
        executors: vec!["docker".to_owned()],
        location: Some(Location {
            continent: Some("Europe".to_owned()),
            country: Some("DE".to_owned()),
            city: Some("Berlin".to_owned()),
        }),
        free_ports: Some(vec![
            PortRange { start: 8000, end: 8100 },
            PortRange { start: 443, end: 443 },
        ]),
        price_per_hour: Some(2.0),
        max_duration_secs: Some(4 * 3600),
        benchmarks: None,
        attributes: [
            ("os".to_owned(), "linux".to_owned()),
            ("gpu.driver".to_owned(), "550".to_owned()),
        ]
        .into(),
    }
}

/// A small docker job that `machine()` can take.
fn job() -> Requirements {
    Requirements {
        cpu_millicores: 2000,
        ram_bytes: 4 * GIB,
        disk_bytes: 10 * GIB,
        executors: vec!["docker".to_owned()],
        ..Requirements::default()
    }
}

fn gpus(count: u32) -> GpuRequirement {
    GpuRequirement { count, vendor: None, model: None, min_vram_bytes: None }
}

/// The single mismatch `explain` finds, as (code, message).
fn only_mismatch(requirements: &Requirements, machine: &Machine) -> (MismatchCode, String) {
    let mismatches = explain(requirements, machine);
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    let Mismatch { code, message } = mismatches.into_iter().next().expect("one mismatch");
    (code, message)
}

fn check(requirements: Requirements, code: MismatchCode, message: &str) {
    assert_eq!(only_mismatch(&requirements, &machine()), (code, message.to_owned()));
}

#[test]
fn a_fitting_job_has_no_mismatch() {
    assert_eq!(explain(&job(), &machine()), []);
    assert_eq!(explain(&Requirements::default(), &Machine::default()), []);
}

#[test]
fn explains_short_resources() {
    use MismatchCode::*;
    check(
        Requirements { cpu_millicores: 16_000, ..job() },
        InsufficientCpu,
        "needs 16 CPU cores, 8 free",
    );
    check(
        Requirements { cpu_millicores: 8500, ..job() },
        InsufficientCpu,
        "needs 8.5 CPU cores, 8 free",
    );
    check(
        Requirements { ram_bytes: 48 * GIB, ..job() },
        InsufficientRam,
        "needs 48.0 GiB RAM, 32.0 GiB free",
    );
    check(
        Requirements { disk_bytes: GIB << 10, ..job() },
        InsufficientDisk,
        "needs 1.0 TiB disk, 500.0 GiB free",
    );
}

#[test]
fn explains_gpu_shortfalls_by_the_first_condition_that_leaves_too_few() {
    let need = |gpu| Requirements { gpu: Some(gpu), ..job() };
    check(need(gpus(3)), MismatchCode::InsufficientGpus, "needs 3 GPUs; 2 free");
    check(
        need(GpuRequirement { vendor: Some(GpuVendor::Intel), ..gpus(1) }),
        MismatchCode::GpuVendor,
        "needs 1 Intel GPU; none match",
    );
    check(
        need(GpuRequirement {
            vendor: Some(GpuVendor::Nvidia),
            model: Some("a100".to_owned()),
            ..gpus(1)
        }),
        MismatchCode::GpuModel,
        "needs 1 NVIDIA GPU matching \"a100\"; none match",
    );
    check(
        need(GpuRequirement { min_vram_bytes: Some(32 * GIB), ..gpus(2) }),
        MismatchCode::GpuVram,
        "needs 2 GPUs with at least 32.0 GiB VRAM; 1 matches",
    );
    check(
        need(GpuRequirement {
            vendor: Some(GpuVendor::Nvidia),
            min_vram_bytes: Some(24 * GIB),
            ..gpus(2)
        }),
        MismatchCode::GpuVendor,
        "needs 2 NVIDIA GPUs with at least 24.0 GiB VRAM; 1 matches",
    );
    let fits = GpuRequirement {
        model: Some("RTX 4090".to_owned()),
        min_vram_bytes: Some(24 * GIB),
        ..gpus(1)
    };
    assert_eq!(explain(&need(fits), &machine()), []);
}

#[test]
fn selects_the_smallest_matching_gpus() {
    let free = machine().free;
    let pick = |requirement: GpuRequirement| {
        requirement.select(&free.gpus).map(|gpus| gpus.iter().map(|g| g.index).collect::<Vec<_>>())
    };
    assert_eq!(pick(gpus(1)), Some(vec![0]));
    assert_eq!(pick(GpuRequirement { min_vram_bytes: Some(30 * GIB), ..gpus(1) }), Some(vec![1]));
    assert_eq!(pick(GpuRequirement { vendor: Some(GpuVendor::Amd), ..gpus(1) }), Some(vec![1]));
    assert_eq!(
        pick(GpuRequirement { model: Some("instinct".to_owned()), ..gpus(1) }),
        Some(vec![1])
    );
    assert_eq!(pick(gpus(2)), Some(vec![0, 1]));
    assert_eq!(pick(gpus(3)), None);

    let claim = Requirements { gpu: Some(gpus(1)), ..job() }.claim(&free).expect("fits");
    assert_eq!(claim.gpus.iter().map(|g| g.index).collect::<Vec<_>>(), [0]);
    assert_eq!(free.checked_sub(&claim).map(|left| left.gpus.len()), Some(1));
    assert_eq!(Requirements { cpu_millicores: 9000, ..job() }.claim(&free), None);
}

#[test]
fn explains_platform_mismatches() {
    use MismatchCode::*;
    check(
        Requirements { architecture: Some("arm64".to_owned()), ..job() },
        Architecture,
        "needs architecture arm64; offers x86_64",
    );
    assert_eq!(
        explain(&Requirements { architecture: Some("AMD64".to_owned()), ..job() }, &machine()),
        []
    );
    check(
        Requirements { executors: vec!["wasm".to_owned()], ..job() },
        Executor,
        "needs executor wasm; offers docker",
    );
    check(
        Requirements { executors: vec!["wasm".to_owned(), "vm".to_owned()], ..job() },
        Executor,
        "needs executor wasm or vm; offers docker",
    );
    let executors = vec!["WASM".to_owned(), "Docker".to_owned()];
    assert_eq!(explain(&Requirements { executors, ..job() }, &machine()), []);
}

#[test]
fn explains_location_mismatches() {
    let in_country =
        |country: &str| Location { country: Some(country.to_owned()), ..Location::default() };
    check(
        Requirements { location: Some(in_country("FR")), ..job() },
        MismatchCode::Location,
        "needs location FR; offers Berlin, DE, Europe",
    );
    let unplaced = Machine { location: None, ..machine() };
    let requirements = Requirements { location: Some(in_country("de")), ..job() };
    assert_eq!(explain(&requirements, &machine()), []);
    assert_eq!(
        only_mismatch(&requirements, &unplaced),
        (MismatchCode::Location, "needs location de; offers no location".to_owned())
    );
    let anywhere = Requirements { location: Some(Location::default()), ..job() };
    assert_eq!(explain(&anywhere, &unplaced), []);
}

#[test]
fn explains_ports_that_are_not_free() {
    check(
        Requirements { ports: vec![443, 80, 8080, 22, 80], ..job() },
        MismatchCode::Port,
        "needs ports 22, 80; free: 8000-8100, 443",
    );
    let closed = Machine { free_ports: Some(Vec::new()), ..machine() };
    assert_eq!(
        only_mismatch(&Requirements { ports: vec![80], ..job() }, &closed),
        (MismatchCode::Port, "needs port 80; free: none".to_owned())
    );
    let unrestricted = Machine { free_ports: None, ..machine() };
    assert_eq!(explain(&Requirements { ports: vec![80], ..job() }, &unrestricted), []);
}

#[test]
fn explains_price_and_duration_limits() {
    use MismatchCode::*;
    check(
        Requirements { max_price_per_hour: Some(1.5), ..job() },
        Price,
        "needs a price of at most 1.5/h; asks 2/h",
    );
    check(
        Requirements { max_total_price: Some(5.0), max_duration_secs: Some(3 * 3600), ..job() },
        TotalPrice,
        "needs a total price of at most 5; 3 h at 2/h costs 6",
    );
    check(
        Requirements { max_duration_secs: Some(5 * 3600), ..job() },
        Duration,
        "needs 5 h; accepts at most 4 h",
    );
    // No duration: the total price is unknown and not checked; no price: nothing is charged.
    assert_eq!(explain(&Requirements { max_total_price: Some(0.01), ..job() }, &machine()), []);
    let free_of_charge = Machine { price_per_hour: None, ..machine() };
    let frugal = Requirements {
        max_price_per_hour: Some(0.0),
        max_total_price: Some(0.0),
        max_duration_secs: Some(3600),
        ..job()
    };
    assert_eq!(explain(&frugal, &free_of_charge), []);
}

#[test]
fn lists_every_mismatch_in_code_order() {
    let greedy = Requirements {
        cpu_millicores: 64_000,
        ram_bytes: 64 * GIB,
        executors: vec!["wasm".to_owned()],
        max_price_per_hour: Some(1.0),
        ..job()
    };
    let codes: Vec<MismatchCode> = explain(&greedy, &machine()).iter().map(|m| m.code).collect();
    use MismatchCode::*;
    assert_eq!(codes, [InsufficientCpu, InsufficientRam, Executor, Price]);
}

#[test]
fn mismatches_serialize_with_snake_case_codes() {
    let mismatch = Mismatch { code: MismatchCode::InsufficientRam, message: "m".to_owned() };
    let json = serde_json::to_value(&mismatch).expect("serializes");
    assert_eq!(json, serde_json::json!({"code": "insufficient_ram", "message": "m"}));
    for code in [MismatchCode::TotalPrice, MismatchCode::GpuVram, MismatchCode::InsufficientGpus] {
        assert_eq!(serde_json::to_value(code).expect("serializes"), code.as_str());
    }
}

#[test]
fn requirements_deserialize_from_a_partial_document() {
    let requirements: Requirements = serde_json::from_str(
        r#"{"cpu_millicores": 2000, "gpu": {"count": 1, "vendor": "nvidia"}, "max_price_per_hour": 0.5}"#,
    )
    .expect("parses");
    assert_eq!(
        requirements.gpu,
        Some(GpuRequirement { vendor: Some(GpuVendor::Nvidia), ..gpus(1) })
    );
    assert_eq!(requirements.max_price_per_hour, Some(0.5));
    assert!(requirements.executors.is_empty());
}

#[test]
fn score_is_none_exactly_when_a_limit_is_missed() {
    assert!(score(&job(), &machine()).is_some());
    assert_eq!(score(&Requirements { cpu_millicores: 64_000, ..job() }, &machine()), None);
}

#[test]
fn score_prefers_a_tighter_fit() {
    let snug = Machine {
        free: Resources {
            cpu_millicores: 2000,
            ram_bytes: 4 * GIB,
            disk_bytes: 10 * GIB,
            gpus: vec![],
        },
        ..machine()
    };
    let roomy = Machine { free: Resources { gpus: vec![], ..machine().free }, ..machine() };
    let with_gpus = machine();
    let [snug, roomy, with_gpus] =
        [snug, roomy, with_gpus].map(|m| score(&job(), &m).expect("compatible"));
    assert!(snug > roomy && roomy > with_gpus, "{snug} {roomy} {with_gpus}");
    assert!((0.0..=1.0).contains(&snug) && (0.0..=1.0).contains(&with_gpus));
}

#[test]
fn score_prefers_a_lower_price() {
    let at = |price| Machine { price_per_hour: price, ..machine() };
    let scores = [None, Some(0.5), Some(2.0), Some(10.0)]
        .map(|p| score(&job(), &at(p)).expect("compatible"));
    assert!(scores.windows(2).all(|w| w[0] > w[1]), "{scores:?}");
    let budget = Requirements { max_price_per_hour: Some(4.0), ..job() };
    let [cheap, dear] = [Some(1.0), Some(4.0)].map(|p| score(&budget, &at(p)).expect("compatible"));
    assert!(cheap > dear, "{cheap} {dear}");
}

#[test]
fn score_prefers_better_benchmarks_when_asked() {
    let with = |cpu_multi| Machine {
        benchmarks: Some(BenchmarkScores { cpu_multi, ..BenchmarkScores::REFERENCE }),
        ..machine()
    };
    let unmeasured = machine();
    let wants_cores = Requirements {
        prefer_benchmark: Some(BenchmarkPreference {
            cpu_multi: 1.0,
            ..BenchmarkPreference::default()
        }),
        ..job()
    };
    let [fast, slow, unknown] = [with(32_000.0), with(4000.0), unmeasured.clone()]
        .map(|m| score(&wants_cores, &m).expect("compatible"));
    assert!(fast > slow && slow > unknown, "{fast} {slow} {unknown}");
    // Without a preference, benchmarks do not count.
    assert_eq!(score(&job(), &with(32_000.0)), score(&job(), &unmeasured));
}

#[test]
fn attributes_must_match_exactly() {
    let wants = |key: &str, value: &str| Requirements {
        attributes: [(key.to_owned(), value.to_owned())].into(),
        ..job()
    };
    assert_eq!(explain(&wants("gpu.driver", "550"), &machine()), []);
    assert_eq!(
        only_mismatch(&wants("gpu.driver", "535"), &machine()),
        (MismatchCode::Attribute, "needs attribute gpu.driver = \"535\"; has \"550\"".to_owned())
    );
    assert_eq!(
        only_mismatch(&wants("gpu.cuda", "12.4"), &machine()),
        (MismatchCode::Attribute, "needs attribute gpu.cuda = \"12.4\"; does not say".to_owned())
    );
}

#[test]
fn weights_move_the_score_and_the_parts_say_how() {
    let cheap_loose = Machine { price_per_hour: None, ..machine() };
    let job = job();
    let even = super::parts(&job, &cheap_loose).expect("fits");
    assert_eq!(even.price, 1.0);
    assert!((even.total - (even.fit + even.price) / 2.0).abs() < 1e-9, "{even:?}");
    let price_first = Requirements {
        weights: Some(super::Weights { fit: 1.0, price: 3.0, benchmark: 1.0 }),
        ..job.clone()
    };
    let weighted = super::parts(&price_first, &cheap_loose).expect("fits");
    assert!((weighted.total - (weighted.fit + 3.0) / 4.0).abs() < 1e-9, "{weighted:?}");
    assert!(weighted.total > even.total, "weighting price raised a free machine's score");
    let fit_only = Requirements {
        weights: Some(super::Weights { fit: 1.0, price: 0.0, benchmark: 0.0 }),
        ..job
    };
    let parts = super::parts(&fit_only, &cheap_loose).expect("fits");
    assert!((parts.total - parts.fit).abs() < 1e-9, "a part weighted 0 is left out");
}
