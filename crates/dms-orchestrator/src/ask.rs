//! From an ensemble to what is asked of providers: one [`NodeAsk`] per ensemble node,
//! what allocations need together ([`total`]), and the order allocations start in.

use std::collections::{BTreeMap, BTreeSet};

use dms_ensemble::model::{Allocation, Ensemble, GpuVendor, Place};
use dms_types::capability::{BenchmarkPreference, GpuRequirement, Location, Requirements, Weights};
use dms_types::resources::GpuVendor as Vendor;

use dms_protocol::NodeAsk;

/// One ask per ensemble node: the sum of its allocations' resources, every executor
/// they use, the architecture and GPUs they name, and the pin.
pub fn asks(ensemble: &Ensemble) -> Vec<NodeAsk> {
    ensemble
        .nodes
        .iter()
        .map(|(name, node)| {
            let mut requirements = Requirements::default();
            let mut executors = BTreeSet::new();
            let mut gpu: Option<GpuRequirement> = None;
            let allocations: Vec<&Allocation> =
                node.allocations.iter().filter_map(|a| ensemble.allocations.get(a)).collect();
            let (sum, _) = total(allocations.iter().copied());
            requirements.cpu_millicores = sum.cpu_millicores;
            requirements.ram_bytes = sum.ram_bytes;
            requirements.disk_bytes = sum.disk_bytes;
            for allocation in allocations {
                let r = &allocation.resources;
                if let Some(arch) = &r.cpu.architecture {
                    requirements.architecture = Some(arch.clone());
                }
                for g in &r.gpus {
                    let entry = gpu.get_or_insert(GpuRequirement {
                        count: 0,
                        vendor: None,
                        model: None,
                        min_vram_bytes: None,
                    });
                    entry.count = entry.count.saturating_add(g.count);
                    entry.vendor = g.vendor.map(vendor).or(entry.vendor);
                    entry.model = g.model.clone().or(entry.model.take());
                    entry.min_vram_bytes = match (entry.min_vram_bytes, g.vram.map(|v| v.0)) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
                executors.insert(allocation.executor.name().to_string());
            }
            requirements.gpu = gpu;
            // Fixed public ports must be free on the provider (checked when it bids).
            requirements.ports = node.ports.iter().filter_map(|p| p.public).collect();
            requirements.attributes = node.attributes.clone();
            let prefer = ensemble.requirements.as_ref().and_then(|r| r.prefer.as_ref());
            (requirements.weights, requirements.prefer_benchmark) = preferences(prefer);
            requirements.max_price_per_hour =
                ensemble.requirements.as_ref().and_then(|r| r.max_price_per_hour);
            requirements.max_duration_secs = ensemble
                .requirements
                .as_ref()
                .and_then(|r| r.max_duration)
                .map(|d| d.to_std().as_secs());
            let (accept, reject) = node
                .location
                .as_ref()
                .map_or_else(Default::default, |l| (places(&l.accept), places(&l.reject)));
            let binds = node
                .allocations
                .iter()
                .filter_map(|a| ensemble.allocations.get(a))
                .flat_map(|a| &a.volumes)
                .filter(|v| v.kind == dms_ensemble::model::VolumeKind::Bind)
                .filter_map(|v| v.source.clone())
                .collect();
            let subnet = ensemble.subnet.is_some()
                && node.allocations.iter().any(|a| joins_subnet(ensemble, a));
            NodeAsk {
                node: name.clone(),
                requirements,
                executors: executors.into_iter().collect(),
                pinned: node.peer.clone(),
                accept,
                reject,
                binds,
                subnet,
            }
        })
        .collect()
}

/// Whether allocation `name` gets an address on the ensemble's subnet: every allocation
/// but WebAssembly ones (WASI preview 1 has no sockets; `dms validate` warns).
pub fn joins_subnet(ensemble: &dms_ensemble::model::Ensemble, name: &str) -> bool {
    ensemble.subnet.is_some()
        && ensemble
            .allocations
            .get(name)
            .is_some_and(|a| a.executor != dms_ensemble::model::Executor::Wasm)
}

/// The addresses of the ensemble's subnet, when it has one; why they do not fit.
pub fn subnet(
    ensemble: &dms_ensemble::model::Ensemble,
) -> Result<Option<dms_protocol::subnet::SubnetPlan>, String> {
    let Some(subnet) = &ensemble.subnet else { return Ok(None) };
    let names = ensemble.allocations.keys().filter(|n| joins_subnet(ensemble, n));
    dms_protocol::subnet::assign(subnet.cidr.as_deref(), names.map(String::as_str)).map(Some)
}

/// The score weights and benchmark preference an ensemble's `requirements.prefer` asks
/// for (`None`: the defaults).
fn preferences(
    prefer: Option<&dms_ensemble::model::Prefer>,
) -> (Option<Weights>, Option<BenchmarkPreference>) {
    let Some(prefer) = prefer else { return (None, None) };
    let benchmark = prefer.benchmark.as_ref().map(|b| BenchmarkPreference {
        cpu_single: b.cpu_single,
        cpu_multi: b.cpu_multi,
        memory: b.memory,
        disk_seq: b.disk_seq,
        disk_random: b.disk_random,
    });
    let weights = Weights {
        fit: prefer.fit.unwrap_or(1.0),
        price: prefer.price.unwrap_or(1.0),
        benchmark: prefer.benchmark.as_ref().and_then(|b| b.weight).unwrap_or(1.0),
    };
    (Some(weights), benchmark)
}

/// The places providers can check: continent, country and city (a place given only by
/// ASN or ISP is left out — providers do not know theirs).
fn places(places: &[Place]) -> Vec<Location> {
    places
        .iter()
        .map(|p| Location {
            continent: p.continent.clone(),
            country: p.country.clone(),
            city: p.city.clone(),
        })
        .filter(|l| !l.is_anywhere())
        .collect()
}

fn vendor(v: GpuVendor) -> Vendor {
    match v {
        GpuVendor::Nvidia => Vendor::Nvidia,
        GpuVendor::Amd => Vendor::Amd,
        GpuVendor::Intel => Vendor::Intel,
    }
}

/// The port maps of ensemble node `node` that forward to allocation `allocation`.
pub fn port_maps(
    ensemble: &Ensemble,
    node: &str,
    allocation: &str,
) -> Vec<dms_ensemble::model::PortMap> {
    ensemble.nodes.get(node).map_or_else(Vec::new, |n| {
        n.ports.iter().filter(|p| p.allocation == allocation).cloned().collect()
    })
}

/// The ensemble node each allocation is placed on.
pub fn node_of(ensemble: &Ensemble) -> BTreeMap<String, String> {
    ensemble
        .nodes
        .iter()
        .flat_map(|(node, spec)| spec.allocations.iter().map(move |a| (a.clone(), node.clone())))
        .collect()
}

/// Allocation names in an order where each comes after everything it `depends_on`
/// (the validator has refused cycles; any left over come last, by name).
pub fn start_order(ensemble: &Ensemble) -> Vec<String> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < ensemble.allocations.len() {
        let ready: Vec<&String> = ensemble
            .allocations
            .iter()
            .filter(|(name, a)| {
                !done.contains(name.as_str())
                    && a.depends_on.iter().all(|d| done.contains(d.as_str()))
            })
            .map(|(name, _)| name)
            .collect();
        if ready.is_empty() {
            order.extend(
                ensemble.allocations.keys().filter(|n| !done.contains(n.as_str())).cloned(),
            );
            break;
        }
        for name in ready {
            done.insert(name);
            order.push(name.clone());
        }
    }
    order
}

pub use dms_protocol::total;
