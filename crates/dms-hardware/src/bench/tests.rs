use std::time::{Duration, Instant};

use super::*;

fn options(dir: &std::path::Path, budget: Duration) -> Options {
    Options { dir: dir.to_owned(), total_budget: budget, ..Options::default() }
}

#[test]
fn a_short_run_stays_in_budget_gives_positive_scores_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let budget = Duration::from_secs(2);
    let mut events = Vec::new();
    let started = Instant::now();
    let report = run_benchmarks(&options(dir.path(), budget), |p| events.push(p))
        .expect("benchmarks run in a writable temp dir");
    let took = started.elapsed();

    // Generous margin: this is a sanity bound on the budget logic, not a performance test.
    assert!(took < budget + Duration::from_secs(3), "took {took:?} for a {budget:?} budget");
    assert!(report.duration_secs > 0.0 && report.duration_secs <= took.as_secs_f64());
    assert!(report.logical_cores >= 1 && report.threads >= 1);
    assert!(report.timestamp > 1_600_000_000);
    assert_eq!(report.steps.iter().map(|s| s.step).collect::<Vec<_>>(), PLAN.map(|(step, _)| step));
    for step in &report.steps {
        assert!(step.score > 0.0 && step.work > 0, "{step:?}");
        assert_eq!(step.unit, step.step.unit());
    }
    let scores = report.scores;
    assert!(scores.cpu_single > 0.0 && scores.cpu_multi > 0.0 && scores.memory_gib_per_sec > 0.0);
    assert!(scores.disk_write_mib_per_sec.is_some_and(|s| s > 0.0));
    assert!(scores.disk_read_mib_per_sec.is_some_and(|s| s > 0.0));
    assert!(scores.disk_random_read_iops.is_some_and(|s| s > 0.0));

    let fractions: Vec<f32> = events.iter().map(|p| p.fraction).collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1] + 1e-6), "{fractions:?}");
    assert!(fractions.first().is_some_and(|f| *f == 0.0));
    assert!(fractions.last().is_some_and(|f| (*f - 1.0).abs() < 1e-6));
    assert!(events.iter().all(|p| (0.0..=1.0).contains(&p.step_fraction)));

    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read temp dir").collect();
    assert!(left.is_empty(), "test file left behind: {left:?}");
}

#[test]
fn without_disk_steps_there_are_no_disk_scores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options { disk: false, ..options(dir.path(), MIN_BUDGET) };
    let report = run_benchmarks(&options, |_| {}).expect("benchmarks run");
    assert_eq!(report.steps.len(), 3);
    assert!(report.scores.cpu_single > 0.0);
    assert_eq!(report.scores.disk_write_mib_per_sec, None);
    assert_eq!(report.scores.disk_random_read_iops, None);
}

#[test]
fn a_missing_dir_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let started = Instant::now();
    let error = run_benchmarks(&options(&missing, MIN_BUDGET), |_| {})
        .expect_err("a missing dir is refused");
    assert!(matches!(error, Error::DirNotFound { .. }), "{error:?}");
    assert!(started.elapsed() < MIN_BUDGET, "failed only after running steps");
    assert!(error.to_string().contains("create it or pass another directory"));
}

#[test]
fn an_unwritable_dir_gives_dir_not_writable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unwritable = read_only_dir(dir.path());
    let error = run_benchmarks(&options(&unwritable, MIN_BUDGET), |_| {})
        .expect_err("an unwritable dir is refused");
    assert!(matches!(error, Error::DirNotWritable { .. }), "{error:?}");
    assert!(error.to_string().contains("not writable"), "{error}");
}

/// A directory this process cannot create files in: a read-only directory, or, for root
/// (which ignores permissions), `/proc`.
#[cfg(unix)]
fn read_only_dir(parent: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join("read-only");
    std::fs::create_dir(&dir).expect("create dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let probe = dir.join("probe");
    if std::fs::write(&probe, b"").is_ok() {
        std::fs::remove_file(&probe).expect("remove probe");
        return "/proc".into();
    }
    dir
}

#[cfg(not(unix))]
fn read_only_dir(parent: &std::path::Path) -> std::path::PathBuf {
    let dir = parent.join("read-only");
    std::fs::create_dir(&dir).expect("create dir");
    let mut permissions = std::fs::metadata(&dir).expect("metadata").permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&dir, permissions).expect("set read-only");
    dir
}

#[test]
fn a_too_short_budget_is_refused() {
    let error = run_benchmarks(&options(&std::env::temp_dir(), Duration::ZERO), |_| {})
        .expect_err("a zero budget is refused");
    assert!(matches!(error, Error::BudgetTooShort { .. }), "{error:?}");
}

#[test]
fn reports_serialize_with_snake_case_steps() {
    let result = StepResult {
        step: Step::DiskRandomRead,
        score: 1.0,
        unit: Unit::Iops,
        work: 1,
        duration_secs: 1.0,
    };
    let json = serde_json::to_value(result).expect("serialize");
    assert_eq!(json["step"], "disk_random_read");
    assert_eq!(json["unit"], "iops");
}

#[test]
fn scores_convert_to_dms_benchmark_scores() {
    let scores = Scores {
        cpu_single: 1500.0,
        cpu_multi: 3000.0,
        memory_gib_per_sec: 20.0,
        disk_write_mib_per_sec: Some(900.0),
        disk_read_mib_per_sec: Some(500.0),
        disk_random_read_iops: Some(20_000.0),
    };
    let converted = BenchmarkScores::from(scores);
    assert_eq!(converted.cpu_single, 1500.0);
    assert_eq!(converted.memory_gib_s, 20.0);
    assert_eq!(converted.disk_seq_mib_s, 500.0, "the slower of write and read");
    assert_eq!(converted.disk_random_iops, 20_000.0);

    let no_disk = Scores {
        disk_write_mib_per_sec: None,
        disk_read_mib_per_sec: None,
        disk_random_read_iops: None,
        ..scores
    };
    let converted = BenchmarkScores::from(no_disk);
    assert_eq!((converted.disk_seq_mib_s, converted.disk_random_iops), (0.0, 0.0));
}
