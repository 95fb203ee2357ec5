//! Fields that validate but that this version does not act on: each one used is a
//! warning saying so, never silence. [`UNSUPPORTED`] is the list; `docs/ensemble.md`
//! marks the same fields `ignored`, and a test keeps the two in step.

use super::Checker;

/// The fields this version accepts but does not act on, and why (schema paths:
/// `<name>` for any map key, `[]` for any list item).
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("allocations.<name>.execution.user", "containers run as the image's user"),
    ("allocations.<name>.keys", "keys are not installed into workloads yet"),
    ("allocations.<name>.provision", "provisioning scripts are not run yet"),
    ("allocations.<name>.resources.cpu.clock", "providers do not advertise clock speeds"),
    ("edges[].min_bandwidth", "providers do not measure bandwidth yet"),
    ("keys", "keys are not installed into workloads yet"),
    ("nodes.<name>.location.accept[].asn", "providers do not know their network (ASN)"),
    ("nodes.<name>.location.accept[].isp", "providers do not know their network (ISP)"),
    ("nodes.<name>.location.reject[].asn", "providers do not know their network (ASN)"),
    ("nodes.<name>.location.reject[].isp", "providers do not know their network (ISP)"),
    ("scripts", "provisioning scripts are not run yet"),
    ("subnet.join", "the orchestrating machine does not join the subnet yet"),
];

fn why(field: &str) -> &'static str {
    UNSUPPORTED.iter().find(|(f, _)| *f == field).map_or("", |(_, why)| why)
}

impl Checker<'_> {
    /// A warning for every field of [`UNSUPPORTED`] the ensemble uses.
    pub(crate) fn unsupported(&mut self) {
        let e = self.ensemble;
        let mut used: Vec<(String, String)> = Vec::new();
        for (name, a) in &e.allocations {
            let base = format!("allocations.{name}");
            let fields = [
                (a.execution.user.is_some(), "execution.user", "allocations.<name>.execution.user"),
                (!a.keys.is_empty(), "keys", "allocations.<name>.keys"),
                (!a.provision.is_empty(), "provision", "allocations.<name>.provision"),
                (
                    a.resources.cpu.clock.is_some(),
                    "resources.cpu.clock",
                    "allocations.<name>.resources.cpu.clock",
                ),
            ];
            for (present, path, field) in fields {
                if present {
                    used.push((format!("{base}.{path}"), field.to_string()));
                }
            }
        }
        for (i, edge) in e.edges.iter().enumerate() {
            if edge.min_bandwidth.is_some() {
                used.push((format!("edges[{i}].min_bandwidth"), "edges[].min_bandwidth".into()));
            }
        }
        for (name, node) in &e.nodes {
            let Some(location) = &node.location else { continue };
            for (list, places) in [("accept", &location.accept), ("reject", &location.reject)] {
                for (i, place) in places.iter().enumerate() {
                    for (key, present) in
                        [("asn", place.asn.is_some()), ("isp", place.isp.is_some())]
                    {
                        if present {
                            let field = format!("nodes.<name>.location.{list}[].{key}");
                            used.push((format!("nodes.{name}.location.{list}[{i}].{key}"), field));
                        }
                    }
                }
            }
        }
        let top = [
            (!e.keys.is_empty(), "keys"),
            (!e.scripts.is_empty(), "scripts"),
            (e.subnet.as_ref().is_some_and(|s| s.join), "subnet.join"),
        ];
        for (present, field) in top {
            if present {
                used.push((field.to_string(), field.to_string()));
            }
        }
        for (path, field) in used {
            self.warning(
                &path,
                format!("not supported by this version, so ignored: {}", why(&field)),
            );
        }
    }
}
