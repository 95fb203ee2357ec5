//! Commented starter ensembles (`dms scaffold`). Each one validates as written.

use crate::model::Executor;

/// A commented starter ensemble for `executor` (docker and wasm have their own; vm shares
/// the structure with a kernel and ramdisk or disk instead of an image).
pub fn scaffold(executor: Executor) -> String {
    let execution = match executor {
        Executor::Docker => DOCKER,
        Executor::Wasm => WASM,
        Executor::Vm => VM,
    };
    // WebAssembly modules get no network.
    let ports = if executor == Executor::Wasm { "" } else { PORTS };
    let node_ports = if executor == Executor::Wasm { "" } else { NODE_PORTS };
    format!(
        "{HEAD}    executor: {}\n{execution}{RESOURCES}{ports}{REST}{node_ports}{TAIL}",
        executor.name()
    )
}

const HEAD: &str = "# An ensemble: what to run, and where. Check it with `dms validate <file>`.
# Reference: docs/ensemble.md; JSON Schema: docs/ensemble.schema.json.
version: V1

# Free-form labels, to find the deployment later.
metadata:
  project: hello

# The workloads, by name (lower-case letters, digits and '-').
allocations:
  app:
    # service: runs until stopped. task: runs to completion.
    type: service
    # docker | wasm | vm
";

const DOCKER: &str = "    execution:
      image: nginx:1.27            # any image reference
      # command: [nginx, -g, daemon off;]
      # working_dir: /srv
";

const WASM: &str = "    execution:
      module: ./hello.wasm         # path or URL of a WASI module
      args: [--greeting, hello]
";

const VM: &str = "    execution:
      kernel: https://example.org/vmlinuz  # bzImage (QEMU) or vmlinux (Firecracker: only vmlinux)
      initrd: https://example.org/initrd.gz
      # rootfs: https://example.org/rootfs.ext4   # a raw disk, the guest's /dev/vda
      # kernel_args: loglevel=7    # added after what the executor sets (console, panic)
      # memory: 256MiB             # the guest's; resources.ram must hold it + 80MiB
      checksums:                   # providers check them and cache images by them
        kernel: sha256:0000000000000000000000000000000000000000000000000000000000000000
        initrd: sha256:0000000000000000000000000000000000000000000000000000000000000000
      # The guest reports its exit code by printing `dms-exit-code: N` on ttyS0.
";

const RESOURCES: &str = "    resources:
      cpu:
        cores: 1                   # fractions allowed: 0.5
        # clock: 2GHz
      ram: 512MiB                  # B, KB, MB, GB, KiB, MiB, GiB, TiB
      disk: 1GiB
      # gpus:
      #   - vendor: nvidia
      #     vram: 16GiB
";

const PORTS: &str = "    # Ports the workload listens on.
    ports:
      - port: 80
        name: http
    healthcheck:
      type: http                   # command | http | tcp
      port: 80
      path: /
      interval: 30s
";

const REST: &str = "    environment:
      GREETING: hello
    restart:
      policy: on_failure           # never | on_failure | always
      max_attempts: 3
      delay: 5s
    # depends_on: [db]             # start after these allocations

# The machines to find; every allocation is on exactly one node.
nodes:
  main:
    allocations: [app]
";

const NODE_PORTS: &str = "    # Forward a public port of the machine to the allocation.
    ports:
      - public: 18080              # leave out for a port the provider picks
        private: 80
        allocation: app
";

const TAIL: &str = "    # location:
    #   accept: [{continent: EU}]
    # peer: 12D3KooW...            # pin to one provider

# Soft requirements the orchestrator tries to honour.
requirements:
  max_price_per_hour: 0.5
  max_duration: 2h
  # lost_after: 10s              # silence before a provider's work moves elsewhere
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scaffold_validates_without_warnings() {
        for executor in [Executor::Docker, Executor::Wasm, Executor::Vm] {
            let text = scaffold(executor);
            let loaded = crate::load(&text).unwrap_or_else(|e| {
                panic!(
                    "{} scaffold is invalid:\n{}",
                    executor.name(),
                    crate::error::render_all(&e.diagnostics(), "scaffold")
                )
            });
            assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
            assert_eq!(loaded.ensemble.allocations["app"].executor, executor);
        }
    }
}
