//! Checks across fields that a schema cannot express: references between allocations,
//! nodes, scripts and keys; placement; dependency cycles; ports; executor parameters.
//!
//! Runs on a structurally valid [`Ensemble`]; positions come from the source tree by path.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Diagnostic, did_you_mean};
use crate::model::{
    Allocation, Ensemble, Executor, HealthCheckKind, KeyKind, Place, Supervisor, VolumeKind,
};
use crate::tree::{Path, Value};

mod allocation;
mod storage;
mod unsupported;

pub use storage::volume_of;

pub use unsupported::UNSUPPORTED;

/// Every semantic error and warning of `ensemble`, positioned through `tree` (the parsed
/// source; a tree without positions gives line 0).
pub fn check(ensemble: &Ensemble, tree: &Value) -> Vec<Diagnostic> {
    let mut c = Checker { tree, ensemble, out: Vec::new() };
    for (name, allocation) in &ensemble.allocations {
        c.allocation(name, allocation);
    }
    c.placement();
    c.dependencies();
    c.nodes();
    c.edges();
    if let Some(supervisor) = &ensemble.supervisor {
        let mut seen = BTreeMap::new();
        c.supervisor(supervisor, "supervisor", &mut seen);
    }
    c.top_level();
    c.stores();
    c.unsupported();
    c.out
}

pub(crate) struct Checker<'a> {
    tree: &'a Value,
    ensemble: &'a Ensemble,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) -> Pending<'_> {
        let position = self.tree.position(&Path::parse(path));
        Pending { out: &mut self.out, diagnostic: Some(Diagnostic::error(position, path, message)) }
    }

    pub(crate) fn warning(&mut self, path: &str, message: impl Into<String>) -> Pending<'_> {
        let position = self.tree.position(&Path::parse(path));
        Pending {
            out: &mut self.out,
            diagnostic: Some(Diagnostic::warning(position, path, message)),
        }
    }

    /// Reports `name` at `path` when it is not one of `known` (a `what`).
    pub(crate) fn reference<'k>(
        &mut self,
        path: &str,
        name: &str,
        what: &str,
        known: impl Iterator<Item = &'k String> + Clone,
    ) {
        if known.clone().any(|k| k == name) {
            return;
        }
        let names: Vec<&str> = known.map(String::as_str).collect();
        let listed = if names.is_empty() {
            format!("a defined {what} (none is defined)")
        } else {
            format!("one of: {}", names.join(", "))
        };
        let suggestion = did_you_mean(name, names.iter().copied());
        self.error(path, format!("unknown {what} `{name}`"))
            .expected(listed)
            .maybe_suggest(suggestion);
    }

    /// Every allocation is on exactly one node.
    fn placement(&mut self) {
        let mut homes: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
        for (node, spec) in &self.ensemble.nodes {
            for (i, name) in spec.allocations.iter().enumerate() {
                let path = format!("nodes.{node}.allocations[{i}]");
                self.reference(&path, name, "allocation", self.ensemble.allocations.keys());
                homes.entry(name).or_default().push((node, i));
            }
        }
        for name in self.ensemble.allocations.keys() {
            match homes.get(name.as_str()).map(Vec::as_slice).unwrap_or_default() {
                [] => {
                    let nodes: Vec<&String> = self.ensemble.nodes.keys().collect();
                    let hint = match nodes.first() {
                        Some(first) => format!(
                            "add `{name}` to the allocations of a node, e.g. nodes.{first}.allocations"
                        ),
                        None => format!(
                            "add a node: `nodes: {{ {name}-node: {{ allocations: [{name}] }} }}`"
                        ),
                    };
                    self.error(
                        &format!("allocations.{name}"),
                        "allocation is not placed on any node",
                    )
                    .expected("exactly one node lists it")
                    .suggest(hint);
                }
                [_] => {}
                [(first, _), rest @ ..] => {
                    for (node, i) in rest {
                        let first = first.to_string();
                        self.error(&format!("nodes.{node}.allocations[{i}]"), format!("allocation `{name}` is placed on more than one node"))
                            .found(format!("also on node `{first}`"))
                            .expected("exactly one node per allocation")
                    .suggest("to run copies, define one allocation per copy (or use node redundancy for standbys)");
                    }
                }
            }
        }
    }

    /// `depends_on` names existing allocations and has no cycles.
    fn dependencies(&mut self) {
        let allocations = &self.ensemble.allocations;
        for (name, allocation) in allocations {
            for (i, dep) in allocation.depends_on.iter().enumerate() {
                let path = format!("allocations.{name}.depends_on[{i}]");
                if dep == name {
                    self.error(&path, "an allocation cannot depend on itself")
                        .found(format!("`{dep}`"));
                } else {
                    self.reference(&path, dep, "allocation", allocations.keys());
                }
            }
        }
        // Depth-first search for cycles; each cycle is reported once, at its first member.
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
        for start in allocations.keys() {
            let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
            let mut trail: Vec<&str> = vec![start];
            if state.contains_key(start.as_str()) {
                continue;
            }
            state.insert(start, 1);
            while let Some((node, next)) = stack.pop() {
                let deps =
                    allocations.get(node).map(|a| a.depends_on.as_slice()).unwrap_or_default();
                let Some(dep) = deps.get(next) else {
                    state.insert(node, 2);
                    trail.pop();
                    continue;
                };
                stack.push((node, next + 1));
                if dep == node || !allocations.contains_key(dep) {
                    continue;
                }
                match state.get(dep.as_str()) {
                    None => {
                        state.insert(dep, 1);
                        stack.push((dep, 0));
                        trail.push(dep);
                    }
                    Some(1) => {
                        let from = trail.iter().position(|n| n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            trail[from..].iter().map(|s| s.to_string()).collect();
                        let mut key = cycle.clone();
                        key.sort();
                        if reported.insert(key) {
                            cycle.push(dep.clone());
                            let first = cycle[0].clone();
                            self.error(
                                &format!("allocations.{first}.depends_on"),
                                "dependency cycle",
                            )
                            .found(cycle.join(" → "))
                            .suggest("remove one of these depends_on entries");
                        }
                    }
                    Some(_) => {}
                }
            }
        }
    }

    fn nodes(&mut self) {
        for (node, spec) in &self.ensemble.nodes {
            let base = format!("nodes.{node}");
            allocation::check_dns_label(self, &base, node, "node name");
            let mut public: BTreeMap<(u16, crate::model::Protocol), usize> = BTreeMap::new();
            for (i, map) in spec.ports.iter().enumerate() {
                let path = format!("{base}.ports[{i}]");
                if !spec.allocations.contains(&map.allocation) {
                    self.error(
                        &format!("{path}.allocation"),
                        format!(
                            "port map targets allocation `{}`, which is not on node `{node}`",
                            map.allocation
                        ),
                    )
                    .expected(format!(
                        "one of this node's allocations: {}",
                        spec.allocations.join(", ")
                    ));
                } else if let Some(target) = self.ensemble.allocations.get(&map.allocation)
                    && !target
                        .ports
                        .iter()
                        .any(|p| p.port == map.private && p.protocol == map.protocol)
                {
                    let declared: Vec<String> = target
                        .ports
                        .iter()
                        .map(|p| format!("{}/{}", p.port, p.protocol.name()))
                        .collect();
                    let expected = if declared.is_empty() {
                        "a port listed in the allocation's ports (it has none)".into()
                    } else {
                        format!("one of its ports: {}", declared.join(", "))
                    };
                    self.error(
                        &format!("{path}.private"),
                        format!(
                            "allocation `{}` does not declare port {}/{}",
                            map.allocation,
                            map.private,
                            map.protocol.name()
                        ),
                    )
                    .expected(expected)
                    .suggest(format!(
                        "add `{{port: {}}}` to allocations.{}.ports",
                        map.private, map.allocation
                    ));
                }
                if map.private == 0 {
                    self.error(&format!("{path}.private"), "port 0 is not a port")
                        .expected("1-65535");
                }
                if let Some(port) = map.public {
                    if port == 0 {
                        self.error(&format!("{path}.public"), "port 0 is not a port")
                            .expected("1-65535, or leave `public` out for a dynamic port");
                    } else if let Some(first) = public.insert((port, map.protocol), i) {
                        self.error(
                            &format!("{path}.public"),
                            format!(
                                "public port {port}/{} is already mapped on this node",
                                map.protocol.name()
                            ),
                        )
                        .found(format!("also at {base}.ports[{first}]"))
                        .suggest(
                            "use another public port, or leave `public` out for a dynamic one",
                        );
                    } else if port < 1024 {
                        self.warning(&format!("{path}.public"), format!("public port {port} is privileged; most providers only open ports from 1024 (often 16384-32768)"))
                    .suggest("use a port of 1024 or more, or leave `public` out for a dynamic one");
                    }
                }
            }
            if let Some(location) = &spec.location {
                for (side, places) in [("accept", &location.accept), ("reject", &location.reject)] {
                    for (i, place) in places.iter().enumerate() {
                        self.place(&format!("{base}.location.{side}[{i}]"), place);
                    }
                }
            }
            if let Some(peer) = &spec.peer
                && self.ensemble.exclude_peers.contains(peer)
            {
                self.error(
                    &format!("{base}.peer"),
                    "the node is pinned to a peer that exclude_peers excludes",
                )
                .found(peer.clone());
            }
            if spec.peer.is_some() && spec.redundancy > 0 {
                self.error(
                    &format!("{base}.redundancy"),
                    "a node pinned to one peer cannot have standbys on other peers",
                )
                .found(format!("redundancy: {} with peer pinned", spec.redundancy))
                .suggest("remove `peer` to let standbys run elsewhere, or set redundancy: 0");
            }
        }
    }

    fn place(&mut self, path: &str, place: &Place) {
        if *place == Place::default() {
            self.error(path, "an empty place matches nothing")
                .expected("at least one of continent, country, city, asn, isp");
        }
        if place.city.is_some() && place.country.is_none() {
            self.error(&format!("{path}.city"), "a city needs its country")
                .suggest("add `country` (ISO code, e.g. DE)");
        }
        if let Some(country) = &place.country
            && (country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()))
        {
            self.error(&format!("{path}.country"), "not an ISO 3166-1 alpha-2 country code")
                .found(format!("{country:?}"))
                .expected("two capital letters, e.g. DE, US, KE");
        }
        if let Some(continent) = &place.continent {
            const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];
            if !CONTINENTS.contains(&continent.as_str()) {
                let suggestion = did_you_mean(&continent.to_uppercase(), CONTINENTS);
                self.error(&format!("{path}.continent"), "unknown continent code")
                    .found(format!("{continent:?}"))
                    .expected(CONTINENTS.join(", "))
                    .maybe_suggest(suggestion);
            }
        }
    }

    fn edges(&mut self) {
        for (i, edge) in self.ensemble.edges.iter().enumerate() {
            let path = format!("edges[{i}]");
            self.reference(
                &format!("{path}.source"),
                &edge.source,
                "node",
                self.ensemble.nodes.keys(),
            );
            self.reference(
                &format!("{path}.target"),
                &edge.target,
                "node",
                self.ensemble.nodes.keys(),
            );
            if edge.source == edge.target {
                self.error(&format!("{path}.target"), "an edge joins a node to itself")
                    .found(edge.target.clone());
            }
            if edge.max_latency.is_none() && edge.min_bandwidth.is_none() {
                self.error(&path, "an edge without constraints")
                    .expected("max_latency, min_bandwidth or both");
            }
        }
    }

    fn supervisor<'s>(
        &mut self,
        supervisor: &'s Supervisor,
        path: &str,
        seen: &mut BTreeMap<&'s str, String>,
    ) {
        for (i, name) in supervisor.allocations.iter().enumerate() {
            let here = format!("{path}.allocations[{i}]");
            self.reference(&here, name, "allocation", self.ensemble.allocations.keys());
            if let Some(first) = seen.insert(name, here.clone()) {
                self.error(&here, format!("allocation `{name}` is supervised twice"))
                    .found(format!("also at {first}"));
            }
        }
        for (i, child) in supervisor.children.iter().enumerate() {
            self.supervisor(child, &format!("{path}.children[{i}]"), seen);
        }
        if supervisor.allocations.is_empty() && supervisor.children.is_empty() {
            self.warning(path, "this supervisor watches nothing");
        }
    }

    fn top_level(&mut self) {
        let e = self.ensemble;
        if e.allocations.is_empty() {
            self.error("allocations", "the ensemble runs nothing")
                .expected("at least one allocation");
        }
        for (name, key) in &e.keys {
            if key.kind == KeyKind::Gpg && key.dest.is_none() {
                self.error(&format!("keys.{name}"), "a gpg key needs `dest`")
                    .expected("the path to install the key at");
            }
        }
        for (name, contract) in &e.contracts {
            let id = &contract.id;
            if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                self.error(&format!("contracts.{name}.id"), "not a contract id")
                    .found(format!("{id:?}"))
                    .expected("the id `dms contract new` printed, such as bafyrei…");
            }
            if let Some(host) = contract.host.as_ref().filter(|h| !h.starts_with("did:")) {
                self.error(&format!("contracts.{name}.host"), "not a DID")
                    .found(format!("{host:?}"))
                    .expected("a DID such as did:key:z6Mk…");
            }
        }
        if let Some(cidr) = e.subnet.as_ref().and_then(|s| s.cidr.as_ref())
            && let Err(problem) = allocation::check_cidr(cidr)
        {
            self.error("subnet.cidr", problem)
                .found(format!("{cidr:?}"))
                .expected("an IPv4 range inside 10.0.0.0/8, e.g. 10.42.0.0/16");
        }
        if let Some(r) = &e.requirements {
            for (field, value) in
                [("max_price_per_hour", r.max_price_per_hour), ("budget", r.budget)]
            {
                if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
                    self.error(&format!("requirements.{field}"), "a price cannot be negative")
                        .found(format!("{value:?}"));
                }
            }
            if let Some(lost_after) = r.lost_after
                && lost_after.to_std() < std::time::Duration::from_secs(1)
            {
                self.error("requirements.lost_after", "too short to tell a slow provider from a lost one")
                    .found(lost_after.to_string())
                    .expected("1s or more (several heartbeats; the default is the node's deployment.lost_after)");
            }
        }
        let mut dns: BTreeMap<String, &str> = BTreeMap::new();
        for (name, allocation) in &e.allocations {
            let host = allocation.dns_name.clone().unwrap_or_else(|| name.clone());
            if let Some(first) = dns.insert(host.clone(), name) {
                self.error(
                    &format!("allocations.{name}.dns_name"),
                    format!("DNS name `{host}` is already used by allocation `{first}`"),
                );
            }
        }
    }
}

/// A diagnostic being built; it is recorded when dropped.
pub(crate) struct Pending<'c> {
    out: &'c mut Vec<Diagnostic>,
    diagnostic: Option<Diagnostic>,
}

impl Pending<'_> {
    fn map(mut self, f: impl FnOnce(Diagnostic) -> Diagnostic) -> Self {
        self.diagnostic = self.diagnostic.take().map(f);
        self
    }

    /// Adds what was found.
    pub(crate) fn found(self, found: impl Into<String>) -> Self {
        self.map(|d| d.found(found))
    }

    /// Adds what was expected.
    pub(crate) fn expected(self, expected: impl Into<String>) -> Self {
        self.map(|d| d.expected(expected))
    }

    /// Adds a suggested fix.
    pub(crate) fn suggest(self, suggestion: impl Into<String>) -> Self {
        self.map(|d| d.suggest(suggestion))
    }

    /// Adds a suggestion when there is one.
    pub(crate) fn maybe_suggest(self, suggestion: Option<String>) -> Self {
        self.map(|d| d.maybe_suggest(suggestion))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(diagnostic) = self.diagnostic.take() {
            self.out.push(diagnostic);
        }
    }
}

/// Which executor each execution parameter belongs to.
pub(crate) fn parameter_owners(a: &Allocation) -> Vec<(&'static str, Executor, bool)> {
    let x = &a.execution;
    vec![
        ("image", Executor::Docker, x.image.is_some()),
        ("entrypoint", Executor::Docker, !x.entrypoint.is_empty()),
        ("command", Executor::Docker, !x.command.is_empty()),
        ("working_dir", Executor::Docker, x.working_dir.is_some()),
        ("user", Executor::Docker, x.user.is_some()),
        ("module", Executor::Wasm, x.module.is_some()),
        ("args", Executor::Wasm, !x.args.is_empty()),
        ("kernel", Executor::Vm, x.kernel.is_some()),
        ("rootfs", Executor::Vm, x.rootfs.is_some()),
        ("initrd", Executor::Vm, x.initrd.is_some()),
        ("kernel_args", Executor::Vm, x.kernel_args.is_some()),
        ("memory", Executor::Vm, x.memory.is_some()),
        ("checksums", Executor::Vm, !x.checksums.is_empty()),
    ]
}

pub(crate) fn health_needs_port(kind: HealthCheckKind) -> bool {
    matches!(kind, HealthCheckKind::Http | HealthCheckKind::Tcp)
}

pub(crate) fn volume_needs_source(kind: VolumeKind) -> bool {
    matches!(kind, VolumeKind::Volume | VolumeKind::Bind)
}

#[cfg(test)]
mod tests;
