//! Property tests: the parsers never panic on arbitrary input, and writing an ensemble
//! out and reading it back gives the same ensemble.

use std::collections::BTreeMap;

use dms_ensemble::model::{Strategy as SupervisorStrategy, *};
use dms_ensemble::translate::{Source, translate};
use dms_ensemble::units::{Bandwidth, ByteSize, Duration, Frequency};
use proptest::collection::{btree_map, vec};
use proptest::option::of;
use proptest::prelude::*;
use proptest::strategy::Strategy;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}"
}

/// Any text, including quotes, colons, newlines and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        "[ -~]{0,12}",
        Just("true".to_string()),
        Just("8080".to_string()),
        Just("- x: #".to_string())
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![any::<u64>().prop_map(Duration), (0u64..100_000).prop_map(Duration::secs)]
}

fn port() -> impl Strategy<Value = Port> {
    (any::<u16>(), any::<bool>(), of(text())).prop_map(|(port, udp, name)| Port {
        port,
        protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
        name,
    })
}

fn allocation() -> impl Strategy<Value = Allocation> {
    let resources = (
        0.001f64..512.0,
        any::<u64>(),
        of(any::<u64>()),
        of(any::<u64>()),
        of(text()),
        vec((1u32..8, of(text()), of(any::<u64>())), 0..2),
    )
        .prop_map(|(cores, ram, disk, clock, arch, gpus)| Resources {
            cpu: Cpu { cores, clock: clock.map(Frequency), architecture: arch },
            ram: ByteSize(ram),
            disk: disk.map(ByteSize),
            gpus: gpus
                .into_iter()
                .map(|(count, model, vram)| Gpu {
                    count,
                    vendor: Some(GpuVendor::Nvidia),
                    model,
                    vram: vram.map(ByteSize),
                })
                .collect(),
        });
    let execution = (of(text()), vec(text(), 0..3), vec(text(), 0..3), of(text()), of(text()))
        .prop_map(|(image, entrypoint, command, working_dir, module)| Execution {
            image,
            entrypoint,
            command,
            working_dir,
            module,
            ..Execution::default()
        });
    let volume = (any::<bool>(), of(text()), text(), any::<bool>(), of(any::<u64>())).prop_map(
        |(bind, source, target, read_only, size)| Volume {
            kind: if bind { VolumeKind::Bind } else { VolumeKind::Volume },
            source,
            target,
            read_only,
            size: size.map(ByteSize),
        },
    );
    let health =
        (vec(text(), 0..3), of(any::<u16>()), of(text()), of(duration()), of(any::<u32>()))
            .prop_map(|(command, port, path, interval, retries)| HealthCheck {
                kind: HealthCheckKind::Http,
                command,
                port,
                path,
                interval,
                timeout: None,
                retries,
                start_period: None,
            });
    let restart = (of(any::<u32>()), of(duration()), of(duration())).prop_map(
        |(max_attempts, delay, window)| RestartPolicy {
            policy: Restart::OnFailure,
            max_attempts,
            delay,
            window,
        },
    );
    (
        any::<bool>(),
        resources,
        execution,
        vec(port(), 0..3),
        vec(volume, 0..2),
        btree_map(text(), text(), 0..3),
        of(health),
        vec(name(), 0..2),
        of(restart),
        of(name()),
    )
        .prop_map(
            |(
                task,
                resources,
                execution,
                ports,
                volumes,
                environment,
                healthcheck,
                depends_on,
                restart,
                dns_name,
            )| Allocation {
                kind: if task { AllocationType::Task } else { AllocationType::Service },
                executor: Executor::Docker,
                resources,
                execution,
                ports,
                volumes,
                inputs: Vec::new(),
                outputs: Vec::new(),
                environment,
                healthcheck,
                depends_on,
                restart,
                dns_name,
                keys: Vec::new(),
                provision: Vec::new(),
            },
        )
}

fn node() -> impl Strategy<Value = Node> {
    let map = (of(any::<u16>()), any::<u16>(), name()).prop_map(|(public, private, allocation)| {
        PortMap { public, private, allocation, protocol: Protocol::Tcp }
    });
    let place = (of(text()), of(text()), of(any::<u32>())).prop_map(|(continent, country, asn)| {
        Place { continent, country, city: None, asn, isp: None }
    });
    (
        vec(name(), 0..3),
        vec(map, 0..2),
        of(vec(place, 0..2)),
        of(text()),
        0u32..3,
        btree_map(text(), text(), 0..2),
    )
        .prop_map(|(allocations, ports, accept, peer, redundancy, attributes)| Node {
            allocations,
            ports,
            location: accept.map(|accept| Location { accept, reject: Vec::new() }),
            peer,
            redundancy,
            attributes,
        })
}

fn ensemble() -> impl Strategy<Value = Ensemble> {
    let edge = (name(), name(), of(duration()), of(any::<u64>())).prop_map(
        |(source, target, max_latency, bw)| Edge {
            source,
            target,
            max_latency,
            min_bandwidth: bw.map(Bandwidth),
        },
    );
    let leaf = || {
        (vec(name(), 0..3), of(any::<u32>())).prop_map(|(allocations, max_restarts)| Supervisor {
            strategy: SupervisorStrategy::OneForOne,
            allocations,
            children: Vec::new(),
            max_restarts,
            window: None,
        })
    };
    let supervisor = (leaf(), vec(leaf(), 0..2)).prop_map(|(mut root, children)| {
        root.children = children;
        root
    });
    let requirements =
        (of(-1e9f64..1e9), of(0.0f64..1e12), of(text()), of(duration()), of(duration())).prop_map(
            |(max_price_per_hour, budget, currency, max_duration, lost_after)| Requirements {
                max_price_per_hour,
                budget,
                currency,
                max_duration,
                lost_after,
                prefer: None,
            },
        );
    (
        btree_map(text(), text(), 0..3),
        btree_map(name(), allocation(), 1..3),
        btree_map(name(), node(), 0..3),
        vec(edge, 0..2),
        of(supervisor),
        btree_map(name(), text(), 0..2),
        vec(text(), 0..2),
        of(requirements),
    )
        .prop_map(
            |(
                metadata,
                allocations,
                nodes,
                edges,
                supervisor,
                scripts,
                exclude_peers,
                requirements,
            )| Ensemble {
                version: Version::V1,
                metadata,
                allocations,
                nodes,
                edges,
                supervisor,
                subnet: Some(Subnet { join: true, cidr: None }),
                scripts,
                keys: BTreeMap::new(),
                storage: BTreeMap::new(),
                exclude_peers,
                contracts: BTreeMap::new(),
                requirements,
                escalation: Some(Escalation::Redeploy),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = dms_ensemble::load(&text);
        let _ = dms_ensemble::tree::parse_documents(&text);
    }

    #[test]
    fn parsing_arbitrary_yaml_like_text_never_panics(text in "([a-z:\\-\\[\\]{}&*!|>'\" #\n]|  |\\d){0,200}") {
        let _ = dms_ensemble::load(&text);
        for source in [Source::Compose, Source::Kubernetes, Source::Nomad] {
            let _ = translate(&text, Some(source), "input");
        }
    }

    #[test]
    fn mutated_valid_ensembles_never_panic(cut in 0usize..2000, insert in ".{0,3}") {
        let text = dms_ensemble::scaffold::scaffold(Executor::Docker);
        let mut at = cut.min(text.len());
        while !text.is_char_boundary(at) { at -= 1; }
        let mutated = format!("{}{insert}{}", &text[..at], &text[at..]);
        let _ = dms_ensemble::load(&mutated);
    }

    #[test]
    fn write_then_read_is_identity(ensemble in ensemble()) {
        let yaml = dms_ensemble::to_yaml(&ensemble);
        let (tree, problems) = dms_ensemble::tree::parse(&yaml).expect("written YAML parses");
        prop_assert!(problems.is_empty(), "{problems:?}");
        let structural = dms_ensemble::schema::check(&tree);
        prop_assert!(structural.is_empty(), "generated ensembles fit the schema: {structural:?}\n{yaml}");
        let back: Ensemble = serde_json::from_value(tree.to_json()).expect("reads back");
        prop_assert_eq!(&back, &ensemble, "{}", yaml);
        let json = dms_ensemble::to_json(&ensemble);
        let from_json: Ensemble = serde_json::from_str(&json).expect("JSON reads back");
        prop_assert_eq!(&from_json, &ensemble);
    }
}
