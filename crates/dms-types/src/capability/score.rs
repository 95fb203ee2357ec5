//! [`score`]: ranking the machines that can take a job.

use serde::{Deserialize, Serialize};

use super::{BenchmarkPreference, BenchmarkScores, Machine, Requirements, Weights, explain};
use crate::resources::Resources;

/// How well `machine` suits the job, in `[0, 1]`, higher is better; `None` when
/// [`explain`] finds a mismatch.
///
/// The score is the mean of these parts, each in `[0, 1]`, weighted by
/// [`Requirements::weights`] (all 1 by default; a part weighted 0 is left out):
///
/// - **fit**: the mean, over CPU, memory, disk and GPUs that the machine has free (more
///   than zero), of `needed / free`. A tight fit leaves less idle; a job that needs no GPU
///   rates a GPU machine lower, keeping GPUs for jobs that need them. 1 when the machine
///   has nothing free.
/// - **price**: 1 when the machine does not charge; `1 - price / max_price_per_hour`
///   when the job gives a maximum; else `1 / (1 + price)`.
/// - **benchmark**, only when the job gives a [`BenchmarkPreference`] with a positive
///   weight: the weighted mean of `s / (s + r)` over the benchmark scores `s`, where `r`
///   is the [`BenchmarkScores::REFERENCE`] value, so a reference machine rates one half
///   and the rating grows with `s`. A machine without benchmarks rates 0.
///
/// ```
/// use dms_types::capability::{Machine, Requirements, score};
///
/// let job = Requirements { cpu_millicores: 2000, ..Requirements::default() };
/// let mut small = Machine::default();
/// small.free.cpu_millicores = 2000;
/// let mut large = Machine::default();
/// large.free.cpu_millicores = 64_000;
/// assert!(score(&job, &small) > score(&job, &large));
/// ```
pub fn score(requirements: &Requirements, machine: &Machine) -> Option<f64> {
    parts(requirements, machine).map(|p| p.total)
}

/// The parts of a [`score`]: each in `[0, 1]`, and their weighted mean, so that a plan can
/// show how each preference moved it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreParts {
    /// How tightly the job fits the free resources.
    pub fit: f64,
    /// How cheap the machine is.
    pub price: f64,
    /// How fast, by the job's benchmark preference (`None`: the job gives none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<f64>,
    /// The weights used.
    pub weights: Weights,
    /// The score: the weighted mean of the parts.
    pub total: f64,
}

/// [`score`] with its parts; `None` when [`explain`] finds a mismatch.
pub fn parts(requirements: &Requirements, machine: &Machine) -> Option<ScoreParts> {
    if !explain(requirements, machine).is_empty() {
        return None;
    }
    let weights = requirements.weights.unwrap_or_default();
    let benchmark = requirements
        .prefer_benchmark
        .as_ref()
        .and_then(|preference| benchmark(preference, machine.benchmarks.as_ref()));
    let (fit, price) = (fit(requirements, &machine.free), price(requirements, machine));
    let weighted = [(fit, weights.fit), (price, weights.price)]
        .into_iter()
        .chain(benchmark.map(|b| (b, weights.benchmark)))
        .filter(|(_, w)| w.is_finite() && *w > 0.0);
    let (sum, total_weight) =
        weighted.fold((0.0, 0.0), |(sum, tw), (part, w)| (sum + part * w, tw + w));
    let mean = if total_weight > 0.0 { sum / total_weight } else { 0.0 };
    let total = if mean.is_nan() { 0.0 } else { mean.clamp(0.0, 1.0) };
    Some(ScoreParts { fit, price, benchmark, weights, total })
}

fn fit(requirements: &Requirements, free: &Resources) -> f64 {
    let gpus = requirements.gpu.as_ref().map_or(0, |gpu| u64::from(gpu.count));
    let ratios: Vec<f64> = [
        (requirements.cpu_millicores, free.cpu_millicores),
        (requirements.ram_bytes, free.ram_bytes),
        (requirements.disk_bytes, free.disk_bytes),
        (gpus, free.gpus.len() as u64),
    ]
    .into_iter()
    .filter(|&(_, free)| free > 0)
    .map(|(need, free)| need as f64 / free as f64)
    .collect();
    if ratios.is_empty() { 1.0 } else { ratios.iter().sum::<f64>() / ratios.len() as f64 }
}

fn price(requirements: &Requirements, machine: &Machine) -> f64 {
    let Some(asks) = machine.price_per_hour.filter(|&p| p.is_finite() && p > 0.0) else {
        return 1.0;
    };
    match requirements.max_price_per_hour.filter(|&max| max.is_finite() && max > 0.0) {
        Some(max) => 1.0 - asks / max,
        None => 1.0 / (1.0 + asks),
    }
}

fn benchmark(preference: &BenchmarkPreference, scores: Option<&BenchmarkScores>) -> Option<f64> {
    let (s, r) = (scores.copied().unwrap_or_default(), BenchmarkScores::REFERENCE);
    let terms = [
        (preference.cpu_single, s.cpu_single, r.cpu_single),
        (preference.cpu_multi, s.cpu_multi, r.cpu_multi),
        (preference.memory, s.memory_gib_s, r.memory_gib_s),
        (preference.disk_seq, s.disk_seq_mib_s, r.disk_seq_mib_s),
        (preference.disk_random, s.disk_random_iops, r.disk_random_iops),
    ];
    let weight = |w: f64| if w.is_finite() && w > 0.0 { w } else { 0.0 };
    let rating = |s: f64, r: f64| if s.is_finite() && s > 0.0 { s / (s + r) } else { 0.0 };
    let total: f64 = terms.iter().map(|&(w, _, _)| weight(w)).sum();
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    Some(terms.iter().map(|&(w, s, r)| weight(w) * rating(s, r)).sum::<f64>() / total)
}
