use crate::{Error, load};

const BASE: &str = "version: V1
allocations:
  web:
    type: service
    executor: docker
    resources: {cpu: {cores: 1}, ram: 256MiB}
    execution: {image: nginx:1.27}
    ports: [{port: 80}]
nodes:
  main:
    allocations: [web]
";

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(Error::Invalid(all)) => all
            .into_iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect(),
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn the_base_is_valid() {
    assert_eq!(errors(BASE), Vec::<String>::new());
}

#[test]
fn unplaced_and_doubly_placed_allocations() {
    let unplaced = BASE.replace("    allocations: [web]\n", "    allocations: []\n");
    assert_eq!(errors(&unplaced), ["allocations.web: allocation is not placed on any node"]);
    let twice = format!("{BASE}  other:\n    allocations: [web]\n");
    assert_eq!(
        errors(&twice),
        ["nodes.other.allocations[0]: allocation `web` is placed on more than one node"]
    );
}

#[test]
fn three_step_cycles_are_found_once() {
    let text = "version: V1
allocations:
  a: {type: task, executor: wasm, resources: {cpu: {cores: 1}, ram: 1MiB}, execution: {module: a.wasm}, depends_on: [b]}
  b: {type: task, executor: wasm, resources: {cpu: {cores: 1}, ram: 1MiB}, execution: {module: b.wasm}, depends_on: [c]}
  c: {type: task, executor: wasm, resources: {cpu: {cores: 1}, ram: 1MiB}, execution: {module: c.wasm}, depends_on: [a]}
nodes:
  n: {allocations: [a, b, c]}
";
    let found = load(text).expect_err("cycle");
    let cycles: Vec<_> =
        found.diagnostics().into_iter().filter(|d| d.message == "dependency cycle").collect();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].found.as_deref(), Some("a → b → c → a"));
}

#[test]
fn port_maps_check_clashes_and_declarations() {
    let text = format!(
        "{BASE}    ports:\n      - {{public: 18080, private: 80, allocation: web}}\n      - {{public: 18080, private: 80, allocation: web, protocol: udp}}\n"
    );
    assert_eq!(
        errors(&text),
        ["nodes.main.ports[1].private: allocation `web` does not declare port 80/udp"],
        "tcp and udp may share a number"
    );
}

#[test]
fn ports_on_an_executor_that_cannot_serve_them_are_refused() {
    let text = "version: V1\nallocations:\n  w:\n    type: service\n    executor: wasm\n    resources: {cpu: {cores: 1}, ram: 64MiB}\n    execution: {module: m.wasm}\n    ports: [{port: 8080}]\nnodes:\n  n: {allocations: [w]}\n";
    let errors = errors(text);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("allocations.w.ports: the wasm executor cannot serve ports")),
        "{errors:?}"
    );
}

#[test]
fn gpus_on_webassembly_are_refused() {
    let text = "version: V1\nallocations:\n  w:\n    type: task\n    executor: wasm\n    resources: {cpu: {cores: 1}, ram: 64MiB, gpus: [{count: 1}]}\n    execution: {module: m.wasm}\nnodes:\n  n: {allocations: [w]}\n";
    let errors = errors(text);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("allocations.w.resources.gpus: the wasm executor cannot use GPUs")),
        "{errors:?}"
    );
}

const VM: &str = "version: V1
allocations:
  v:
    type: task
    executor: vm
    resources: {cpu: {cores: 1}, ram: 256MiB}
    execution: {kernel: https://example.org/vmlinuz, initrd: ./initrd.gz}
nodes:
  n: {allocations: [v]}
";

#[test]
fn a_kernel_with_an_initramfs_alone_is_a_vm() {
    assert_eq!(errors(VM), Vec::<String>::new());
    let no_disk = VM.replace(", initrd: ./initrd.gz", "");
    assert_eq!(
        errors(&no_disk),
        ["allocations.v.execution: the vm executor needs `execution.initrd` or `execution.rootfs`"]
    );
}

#[test]
fn a_guest_asking_more_memory_than_its_allocation_is_refused() {
    let big = VM.replace("initrd: ./initrd.gz}", "initrd: ./initrd.gz, memory: 200MiB}");
    assert_eq!(
        errors(&big),
        ["allocations.v.execution.memory: the guest's memory and the hypervisor's 80MiB do \
             not fit the allocation's resources.ram"]
    );
    let fits = VM.replace("initrd: ./initrd.gz}", "initrd: ./initrd.gz, memory: 176MiB}");
    assert_eq!(errors(&fits), Vec::<String>::new());
    let tiny = VM.replace("ram: 256MiB", "ram: 64MiB");
    assert_eq!(errors(&tiny).len(), 1, "64 MiB cannot hold the overhead");
}

#[test]
fn vm_checksums_name_given_images_and_are_sha256() {
    let sum = "a".repeat(64);
    let text = VM.replace(
        "initrd: ./initrd.gz}",
        &format!("initrd: ./initrd.gz, checksums: {{kernel: \"sha256:{sum}\", rootfs: \"sha256:{sum}\", initrd: nope}}}}"),
    );
    assert_eq!(
        errors(&text),
        [
            "allocations.v.execution.checksums.rootfs: a checksum of `rootfs`, which is not given",
            "allocations.v.execution.checksums.initrd: not a SHA-256",
        ]
    );
    let ports = VM.replace("nodes:", "    ports: [{port: 80}]\nnodes:");
    assert_eq!(errors(&ports), Vec::<String>::new(), "a VM's ports are forwarded to it");
}

#[test]
fn a_vm_image_path_in_a_volume_never_leads_out_of_it() {
    let text =
        VM.replace("nodes:", "    volumes: [{source: boot, target: /boot, size: 64MiB}]\nnodes:");
    let loaded = load(&text).expect("valid");
    let allocation = &loaded.ensemble.allocations["v"];
    let rest = |p| allocation.in_volume(p).map(|(_, rest)| rest);
    assert_eq!(rest("/boot/vmlinuz"), Some("vmlinuz"));
    assert_eq!(rest("/boot/images/vmlinuz"), Some("images/vmlinuz"));
    for outside in
        ["/boot//etc/shadow", "/boot/../etc/shadow", "/boot/./x", "/bootx/y", "/boot", "/boot/"]
    {
        assert_eq!(rest(outside), None, "{outside}");
    }
}
