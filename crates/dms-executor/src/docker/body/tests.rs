use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::spec::{Mount, PortBinding, PullPolicy, Resources};

fn spec() -> Spec {
    Spec::new(
        "alloc-1",
        "dep-1",
        Workload::Docker { image: "busybox:1".into(), entrypoint: None, pull: PullPolicy::Never },
    )
}

#[test]
fn limits_become_cgroup_settings() {
    let mut s = spec();
    s.resources = Resources {
        cpu_cores: Some(0.5),
        memory_bytes: Some(64 << 20),
        pids: Some(50),
        gpus: Some(GpuRequest::Count(2)),
    };
    let body = create_body(&s, "node-a", false).expect("valid spec");
    let host = body.host_config.expect("host config set");
    assert_eq!(host.cpu_period, Some(100_000));
    assert_eq!(host.cpu_quota, Some(50_000));
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.memory_swap, Some(64 << 20), "swap disabled");
    assert_eq!(host.pids_limit, Some(50));
    let gpu = &host.device_requests.expect("gpu request")[0];
    assert_eq!(gpu.count, Some(2));
    assert_eq!(gpu.capabilities, Some(vec![vec!["gpu".to_owned()]]));
}

#[test]
fn labels_cannot_be_spoofed_by_the_spec() {
    let mut s = spec();
    s.labels.insert("dms.allocation".into(), "someone-else".into());
    s.labels.insert("app".into(), "web".into());
    let labels = create_body(&s, "node-a", false).expect("valid").labels.expect("labels");
    assert_eq!(labels["dms.allocation"], "alloc-1");
    assert_eq!(labels["dms.deployment"], "dep-1");
    assert_eq!(labels["dms.executor"], "node-a");
    assert_eq!(labels["app"], "web");
}

#[test]
fn privileged_needs_provider_consent() {
    let mut s = spec();
    s.privileged = true;
    assert!(matches!(create_body(&s, "n", false), Err(Error::Refused(_))));
    let body = create_body(&s, "n", true).expect("allowed");
    assert_eq!(body.host_config.expect("host").privileged, Some(true));
}

#[test]
fn ports_mounts_env_and_command() {
    let mut s = spec();
    s.args = vec!["sh".into(), "-c".into(), "true".into()];
    s.env.insert("A".into(), "1".into());
    s.working_dir = Some("/work".into());
    s.mounts.push(Mount {
        source: "/tmp/in".into(),
        target: "/in".into(),
        read_only: true,
        tmpfs: None,
    });
    s.ports.push(PortBinding {
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        host_port: None,
    });
    let body = create_body(&s, "n", false).expect("valid");
    assert_eq!(body.cmd, Some(s.args.clone()));
    assert_eq!(body.env, Some(vec!["A=1".to_owned()]));
    assert_eq!(body.working_dir.as_deref(), Some("/work"));
    assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_owned()]));
    assert_eq!(body.tty, Some(false));
    let host = body.host_config.expect("host");
    let binding = &host.port_bindings.expect("ports")["80/tcp"].clone().expect("bindings")[0];
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(binding.host_port.as_deref(), Some(""));
    let mount = &host.mounts.expect("mounts")[0];
    assert_eq!(mount.read_only, Some(true));
    assert_eq!(mount.typ, Some(MountType::BIND));
}

#[test]
fn invalid_limits_and_kinds_are_rejected() {
    let mut s = spec();
    s.resources.cpu_cores = Some(0.0);
    assert!(matches!(create_body(&s, "n", false), Err(Error::InvalidSpec(_))));
    let mut s = spec();
    s.resources.memory_bytes = Some(1024);
    assert!(matches!(create_body(&s, "n", false), Err(Error::InvalidSpec(_))));
    let s = Spec::new(
        "a",
        "d",
        Workload::Wasm { module: crate::ModuleSource::Bytes(vec![]), cpu_time: None, fuel: None },
    );
    assert!(matches!(create_body(&s, "n", false), Err(Error::InvalidSpec(_))));
}

#[test]
fn names_are_docker_safe() {
    assert_eq!(container_name("a/b c", 255), "dms-a_b_c-ff");
    assert_eq!(cpu_quota(0.001).expect("tiny"), 1_000);
    assert_eq!(cpu_quota(2.0).expect("two"), 200_000);
}

#[test]
fn published_ports_are_read_from_the_engines_bindings() {
    let binding = |port: &str| DockerPortBinding {
        host_ip: Some("0.0.0.0".into()),
        host_port: Some(port.into()),
    };
    let ports = HashMap::from([
        ("8080/tcp".to_string(), Some(vec![binding("32768"), binding("32768")])),
        ("53/udp".to_string(), Some(vec![binding("30053")])),
        ("9000/tcp".to_string(), None),
    ]);
    let published = published(Some(&ports));
    assert_eq!(
        published,
        vec![
            crate::execution::Published { port: 53, protocol: Protocol::Udp, host_port: 30053 },
            crate::execution::Published { port: 8080, protocol: Protocol::Tcp, host_port: 32768 },
        ],
        "one entry per port; an unpublished one is left out"
    );
}

#[test]
fn gpu_devices_are_mapped_into_the_container() {
    let mut s = spec();
    s.resources.gpus = Some(GpuRequest::Devices(vec!["GPU-aaaa".into()]));
    s.devices = vec!["/dev/dri/card1".into(), "/dev/kfd".into()];
    let host = create_body(&s, "n", false).expect("body").host_config.expect("host config");
    let request = &host.device_requests.expect("a device request")[0];
    assert_eq!(request.driver.as_deref(), Some("nvidia"));
    assert_eq!(request.device_ids, Some(vec!["GPU-aaaa".to_string()]));
    let devices = host.devices.expect("device mappings");
    let paths: Vec<_> = devices
        .iter()
        .map(|d| (d.path_on_host.as_deref(), d.path_in_container.as_deref()))
        .collect();
    assert_eq!(
        paths,
        [(Some("/dev/dri/card1"), Some("/dev/dri/card1")), (Some("/dev/kfd"), Some("/dev/kfd"))]
    );
    assert!(devices.iter().all(|d| d.cgroup_permissions.as_deref() == Some("rwm")));
}
