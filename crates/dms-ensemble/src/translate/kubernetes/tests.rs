use crate::Position;
use crate::error::Error;
use crate::model::{GpuVendor, HealthCheckKind};
use crate::translate::{MAX_ALLOCATIONS, Source, Translation, translate};

fn kube(text: &str) -> Translation {
    translate(text, Some(Source::Kubernetes), "k.yaml").expect("translates")
}

fn warning<'t>(t: &'t Translation, path: &str) -> &'t crate::Diagnostic {
    t.warnings
        .iter()
        .find(|w| w.path == path)
        .unwrap_or_else(|| panic!("no warning at {path}: {:#?}", t.warnings))
}

fn deployment(replicas: &str, container: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n{container}"
    )
}

#[test]
fn replicas_are_kept_and_too_many_refused() {
    assert_eq!(kube(&deployment("120", "")).ensemble.nodes.len(), 120);
    let t = kube(&deployment(&(MAX_ALLOCATIONS + 1).to_string(), ""));
    let error = t.errors.iter().find(|e| e.path == "document0.spec.replicas").expect("refused");
    assert_eq!(error.position, Position::new(6, 13));
    assert_eq!(t.ensemble.nodes.len(), 1);
}

#[test]
fn replication_controllers_are_workloads() {
    let text = "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: redis\nspec:\n  replicas: 2\n  selector:\n    app: redis\n  template:\n    metadata:\n      labels:\n        app: redis\n    spec:\n      containers:\n        - name: redis\n          image: redis:7\n";
    let t = kube(text);
    assert_eq!(t.errors, []);
    assert_eq!(t.ensemble.nodes.len(), 2);
}

#[test]
fn a_file_without_workloads_names_the_kinds_found() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: i\n";
    let Err(Error::Untranslatable(message)) = translate(text, Some(Source::Kubernetes), "k.yaml")
    else {
        panic!("refused")
    };
    assert!(message.ends_with("found: Service, Ingress"), "{message}");
}

#[test]
fn partial_resources_and_other_resources_are_named() {
    let container = "          resources:\n            limits:\n              nvidia.com/gpu: 2\n              google.com/tpu: 4\n              memory: 1Gi\n            requests:\n              memory: 512Mi\n";
    let t = kube(&deployment("1", container));
    let r = &t.ensemble.allocations["web"].resources;
    assert_eq!((r.gpus[0].count, r.gpus[0].vendor), (2, Some(GpuVendor::Nvidia)));
    let path = "document0.spec.template.spec.containers[0]";
    assert_eq!(
        warning(&t, path).message,
        "no cpu given; assumed 1 core (set resources.limits to choose)"
    );
    let tpu = warning(&t, &format!("{path}.resources.limits.google.com/tpu"));
    assert_eq!(tpu.position, Position::new(19, 31));
    assert!(tpu.message.starts_with("not translated: resource `google.com/tpu`"));
    let request = warning(&t, &format!("{path}.resources.requests.memory"));
    assert_eq!(request.message, "request 512Mi dropped: the allocation asks for its limit, 1Gi");
}

#[test]
fn grpc_probes_are_approximated_and_unknown_ports_named() {
    let container = "          ports:\n            - containerPort: 9000\n          livenessProbe:\n            grpc:\n              port: 9000\n";
    let t = kube(&deployment("1", container));
    let check = t.ensemble.allocations["web"].healthcheck.as_ref().expect("check");
    assert_eq!((check.kind, check.port), (HealthCheckKind::Tcp, Some(9000)));
    let container = "          livenessProbe:\n            httpGet:\n              port: http\n";
    let t = kube(&deployment("1", container));
    assert!(t.ensemble.allocations["web"].healthcheck.is_none());
    let path = "document0.spec.template.spec.containers[0].livenessProbe";
    assert!(warning(&t, path).message.contains("names no container port"));
}
