//! Checks of storage: the top-level stores, and each allocation's `inputs` and
//! `outputs` — known stores, keys that name something, and workload paths inside a
//! volume (inputs inside a writable one), never a tmpfs.

use super::Checker;
use crate::model::{Allocation, AllocationType, Volume, VolumeKind, object_ref};

/// The volume of `a` that holds `path` (the one mounted deepest), if any.
pub fn volume_of<'a>(a: &'a Allocation, path: &str) -> Option<&'a Volume> {
    a.volumes
        .iter()
        .filter(|v| {
            let target = v.target.trim_end_matches('/');
            path == target
                || path.strip_prefix(target).is_some_and(|rest| rest.starts_with('/'))
                || target.is_empty()
        })
        .max_by_key(|v| v.target.len())
}

impl Checker<'_> {
    /// The top-level `storage` map.
    pub(super) fn stores(&mut self) {
        for (name, store) in &self.ensemble.storage {
            let path = format!("storage.{name}");
            if store.bucket.is_empty() || store.bucket.contains('/') {
                self.error(&format!("{path}.bucket"), "not a bucket name")
                    .found(format!("{:?}", store.bucket))
                    .expected("a bucket name, without `/`");
            }
            if let Some(endpoint) = &store.endpoint {
                let scheme = endpoint.split_once("://").map(|(s, _)| s);
                if !matches!(scheme, Some("http" | "https")) {
                    self.error(&format!("{path}.endpoint"), "not an http(s) URL")
                        .found(format!("{endpoint:?}"))
                        .expected("e.g. http://127.0.0.1:9000 or https://s3.example.com");
                }
            }
        }
    }

    /// An allocation's `inputs` and `outputs`.
    pub(super) fn transfers(&mut self, base: &str, a: &Allocation) {
        for (i, input) in a.inputs.iter().enumerate() {
            let path = format!("{base}.inputs[{i}]");
            let prefix = input.from.ends_with('/');
            self.object(&format!("{path}.from"), &input.from);
            let to = format!("{path}.to");
            if !input.to.starts_with('/') {
                self.error(&to, "an input's destination must be an absolute path")
                    .found(format!("{:?}", input.to));
                continue;
            }
            if prefix && !input.to.ends_with('/') {
                self.error(&to, "a prefix is copied into a directory")
                    .found(format!("{:?}", input.to))
                    .suggest(format!("end it with `/`: {}/", input.to));
            }
            match volume_of(a, &input.to) {
                None => self.outside(&to, &input.to, a),
                Some(v) if v.read_only => {
                    self.error(
                        &to,
                        format!("{} is in the read-only volume at {}", input.to, v.target),
                    )
                    .suggest("stage inputs into a writable volume, or drop `read_only`");
                }
                Some(v) if v.kind == VolumeKind::Tmpfs => self.in_tmpfs(&to, &input.to, v),
                Some(_) => {}
            }
        }
        if a.kind == AllocationType::Service && !a.outputs.is_empty() {
            self.warning(
                &format!("{base}.outputs"),
                "a service never ends, so its outputs are published only on request",
            )
            .suggest("publish them with `dms deployments outputs <id> --publish`");
        }
        for (i, output) in a.outputs.iter().enumerate() {
            let path = format!("{base}.outputs[{i}]");
            let from = format!("{path}.from");
            self.object(&format!("{path}.to"), &output.to);
            if !output.from.starts_with('/') {
                self.error(&from, "an output must be an absolute path in the workload")
                    .found(format!("{:?}", output.from));
                continue;
            }
            if output.from.ends_with('/') && !output.to.ends_with('/') {
                self.error(&format!("{path}.to"), "a directory is published under a prefix")
                    .found(format!("{:?}", output.to))
                    .suggest(format!("end it with `/`: {}/", output.to));
            }
            match volume_of(a, &output.from) {
                None => self.outside(&from, &output.from, a),
                Some(v) if v.kind == VolumeKind::Tmpfs => self.in_tmpfs(&from, &output.from, v),
                Some(_) => {}
            }
        }
    }

    /// `<store>:<key>` naming a known store and a key.
    fn object(&mut self, path: &str, text: &str) {
        let Some((store, key)) = object_ref(text) else {
            self.error(path, "not a store reference")
                .found(format!("{text:?}"))
                .expected("<store>:<key>, e.g. lake:in/input.txt (or lake:in/ for a prefix)");
            return;
        };
        self.reference(path, store, "store", self.ensemble.storage.keys());
        if key.is_empty() || key.starts_with('/') || key.split('/').any(|p| p == "..") {
            self.error(path, "not an object key")
                .found(format!("{key:?}"))
                .expected("a key such as in/input.txt, without a leading `/` or `..`");
        }
    }

    /// A tmpfs lives in the workload's memory: nothing can be copied into it before it
    /// starts or out of it after it ends.
    fn in_tmpfs(&mut self, path: &str, target: &str, v: &Volume) {
        self.error(
            path,
            format!("{target} is in the tmpfs at {}, which only the workload sees", v.target),
        )
        .suggest("use a volume (type: volume) for data that is staged in or published");
    }

    fn outside(&mut self, path: &str, target: &str, a: &Allocation) {
        let mounted: Vec<&str> = a.volumes.iter().map(|v| v.target.as_str()).collect();
        let expected = if mounted.is_empty() {
            "a path inside a volume (this allocation has none)".to_string()
        } else {
            format!("a path inside a volume: {}", mounted.join(", "))
        };
        self.error(path, format!("{target} is not inside any volume"))
            .expected(expected)
            .suggest("add a volume, e.g. volumes: [{source: work, target: /data, size: 1GiB}]");
    }
}
