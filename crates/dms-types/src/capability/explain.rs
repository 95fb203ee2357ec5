//! [`explain`]: every limit a machine misses, with a message for people.

use super::{GpuRequirement, Machine, Mismatch, MismatchCode, Requirements};
use crate::resources::{format_bytes, format_cpu};

/// Every limit of `requirements` that `machine` misses, in the order of [`MismatchCode`];
/// empty when the machine can take the job.
///
/// Resources are compared with what is free. GPUs must number at least
/// [`GpuRequirement::count`] among those matching every condition; when too few do, the
/// code names the first condition that leaves too few (count, then vendor, model, memory).
/// The total price is checked only when the machine has a price and the job a duration.
///
/// ```
/// use dms_types::capability::{Machine, MismatchCode, Requirements, explain};
///
/// let job = Requirements { ram_bytes: 16 << 30, ..Requirements::default() };
/// let mut machine = Machine::default();
/// machine.free.ram_bytes = 6 << 30;
/// let mismatches = explain(&job, &machine);
/// assert_eq!(mismatches[0].code, MismatchCode::InsufficientRam);
/// assert_eq!(mismatches[0].message, "needs 16.0 GiB RAM, 6.0 GiB free");
/// ```
pub fn explain(requirements: &Requirements, machine: &Machine) -> Vec<Mismatch> {
    [
        cpu(requirements, machine),
        bytes(MismatchCode::InsufficientRam, "RAM", requirements.ram_bytes, machine.free.ram_bytes),
        bytes(
            MismatchCode::InsufficientDisk,
            "disk",
            requirements.disk_bytes,
            machine.free.disk_bytes,
        ),
        requirements.gpu.as_ref().and_then(|gpu| gpus(gpu, machine)),
        architecture(requirements, machine),
        executor(requirements, machine),
        location(requirements, machine),
        ports(requirements, machine),
        attributes(requirements, machine),
        price(requirements, machine),
        total_price(requirements, machine),
        duration(requirements, machine),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn mismatch(code: MismatchCode, message: String) -> Option<Mismatch> {
    Some(Mismatch { code, message })
}

fn cpu(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    let (need, free) = (requirements.cpu_millicores, machine.free.cpu_millicores);
    let cores = if need == 1000 { "core" } else { "cores" };
    (need > free).then(|| Mismatch {
        code: MismatchCode::InsufficientCpu,
        message: format!("needs {} CPU {cores}, {} free", format_cpu(need), format_cpu(free)),
    })
}

fn bytes(code: MismatchCode, what: &str, need: u64, free: u64) -> Option<Mismatch> {
    (need > free).then(|| Mismatch {
        code,
        message: format!("needs {} {what}, {} free", format_bytes(need), format_bytes(free)),
    })
}

fn gpus(requirement: &GpuRequirement, machine: &Machine) -> Option<Mismatch> {
    let gpus = &machine.free.gpus;
    let count = usize::try_from(requirement.count).unwrap_or(usize::MAX);
    let matching = |vendor, model: Option<&String>, min_vram_bytes| {
        let condition = GpuRequirement {
            count: requirement.count,
            vendor,
            model: model.cloned(),
            min_vram_bytes,
        };
        gpus.iter().filter(|gpu| condition.matches(gpu)).count()
    };
    let (vendor, model) = (requirement.vendor, requirement.model.as_ref());
    let matches = matching(vendor, model, requirement.min_vram_bytes);
    let stages = [
        (MismatchCode::InsufficientGpus, gpus.len()),
        (MismatchCode::GpuVendor, matching(vendor, None, None)),
        (MismatchCode::GpuModel, matching(vendor, model, None)),
        (MismatchCode::GpuVram, matches),
    ];
    let (code, _) = stages.into_iter().find(|&(_, matches)| matches < count)?;
    let unconditional = vendor.is_none() && model.is_none() && requirement.min_vram_bytes.is_none();
    let message = if unconditional {
        format!("needs {requirement}; {} free", gpus.len())
    } else {
        match matches {
            0 => format!("needs {requirement}; none match"),
            1 => format!("needs {requirement}; 1 matches"),
            n => format!("needs {requirement}; {n} match"),
        }
    };
    mismatch(code, message)
}

fn architecture(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    let need = requirements.architecture.as_deref()?;
    if canonical_architecture(need) == canonical_architecture(&machine.architecture) {
        return None;
    }
    let offers = if machine.architecture.is_empty() { "none said" } else { &machine.architecture };
    mismatch(MismatchCode::Architecture, format!("needs architecture {need}; offers {offers}"))
}

/// Lowercase, with the usual aliases resolved to the names Rust and Linux use.
fn canonical_architecture(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "amd64" | "x86-64" | "x64" => "x86_64".to_owned(),
        "arm64" => "aarch64".to_owned(),
        _ => name,
    }
}

fn executor(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    let need = &requirements.executors;
    let offered = |name: &String| machine.executors.iter().any(|e| e.eq_ignore_ascii_case(name));
    if need.is_empty() || need.iter().any(offered) {
        return None;
    }
    let offers =
        if machine.executors.is_empty() { "none".to_owned() } else { machine.executors.join(", ") };
    mismatch(
        MismatchCode::Executor,
        format!("needs executor {}; offers {offers}", need.join(" or ")),
    )
}

fn location(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    let need = requirements.location.as_ref().filter(|need| !need.is_anywhere())?;
    let message = match &machine.location {
        Some(place) if need.includes(place) => return None,
        Some(place) => format!("needs location {need}; offers {place}"),
        None => format!("needs location {need}; offers no location"),
    };
    mismatch(MismatchCode::Location, message)
}

fn ports(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    let free = machine.free_ports.as_ref()?;
    let mut missing: Vec<u16> = requirements
        .ports
        .iter()
        .copied()
        .filter(|&port| !free.iter().any(|range| range.contains(port)))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return None;
    }
    let list =
        |items: Vec<String>| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
    let ports = if missing.len() == 1 { "port" } else { "ports" };
    let message = format!(
        "needs {ports} {}; free: {}",
        list(missing.iter().map(u16::to_string).collect()),
        list(free.iter().map(ToString::to_string).collect())
    );
    mismatch(MismatchCode::Port, message)
}

fn price(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    let (max, asks) = (requirements.max_price_per_hour?, machine.price_per_hour?);
    (asks > max).then(|| Mismatch {
        code: MismatchCode::Price,
        message: format!(
            "needs a price of at most {}/h; asks {}/h",
            format_amount(max),
            format_amount(asks)
        ),
    })
}

fn total_price(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    let max = requirements.max_total_price?;
    let secs = requirements.max_duration_secs?;
    let asks = machine.price_per_hour?;
    let total = asks * secs as f64 / 3600.0;
    (total > max).then(|| Mismatch {
        code: MismatchCode::TotalPrice,
        message: format!(
            "needs a total price of at most {}; {} at {}/h costs {}",
            format_amount(max),
            format_duration(secs),
            format_amount(asks),
            format_amount(total)
        ),
    })
}

fn duration(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    let (need, accepts) = (requirements.max_duration_secs?, machine.max_duration_secs?);
    (need > accepts).then(|| Mismatch {
        code: MismatchCode::Duration,
        message: format!(
            "needs {}; accepts at most {}",
            format_duration(need),
            format_duration(accepts)
        ),
    })
}

/// A price with at most four decimals and no trailing zeros: `0.5`, `16`, `0.0001`.
fn format_amount(amount: f64) -> String {
    let text = format!("{amount:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_owned() } else { text.to_owned() }
}

/// `3 h`, `90 min`, `45 s`: the largest unit that divides the duration.
fn format_duration(secs: u64) -> String {
    match secs {
        0 => "0 s".to_owned(),
        s if s.is_multiple_of(3600) => format!("{} h", s / 3600),
        s if s.is_multiple_of(60) => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// The first required attribute the machine lacks or has with another value.
fn attributes(requirements: &Requirements, machine: &Machine) -> Option<Mismatch> {
    requirements.attributes.iter().find_map(|(key, wanted)| {
        let message = match machine.attributes.get(key) {
            Some(has) if has == wanted => return None,
            Some(has) => format!("needs attribute {key} = {wanted:?}; has {has:?}"),
            None => format!("needs attribute {key} = {wanted:?}; does not say"),
        };
        Some(Mismatch { code: MismatchCode::Attribute, message })
    })
}
