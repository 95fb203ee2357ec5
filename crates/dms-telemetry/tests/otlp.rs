//! One process with telemetry installed (this test binary): spans, log records and
//! metrics reach an OTLP/HTTP receiver decoded with the opentelemetry-proto types, a
//! remote `traceparent` continues the trace, events reach the `_bulk` receiver with the
//! trace id, `/metrics` text names the counters, and the log level changes at run time.

use std::time::Duration;

use dms_telemetry::testing::Receiver;
use dms_telemetry::{Settings, elastic, metrics, propagate};
use dms_types::event::kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_logs_metrics_and_events_reach_their_receivers() {
    let receiver = Receiver::start().await.expect("receiver");
    let settings = Settings {
        log_level: "info".into(),
        service_name: "dms".into(),
        version: "test".into(),
        instance: Some("did:key:z6MkOtlpTest".into()),
        elasticsearch: Some(elastic::Target {
            url: receiver.url.clone(),
            index: "dms-events".into(),
        }),
        otlp_endpoint: Some(receiver.url.clone()),
        ..Settings::default()
    };
    let telemetry = dms_telemetry::init(&settings).expect("installed");
    assert!(dms_telemetry::init(&settings).is_err(), "installed once only");

    // A deployment's first span, and a span on "another node" continuing its trace.
    let root = tracing::info_span!(target: "dms_test", "deployment", id = "d-otlp");
    let traceparent = root.in_scope(|| {
        dms_telemetry::event!(INFO, kind: kind::DEPLOYMENT, deployment: "d-otlp", state: "running";
            "Deployment d-otlp is running.");
        propagate::current().expect("a traced span has a traceparent")
    });
    let trace_id = propagate::trace_id_of(&traceparent).expect("trace id");
    let remote =
        tracing::info_span!(target: "dms_test", "message", behavior = "/dms/deployment/allocate");
    propagate::adopt(&remote, &traceparent);
    remote.in_scope(|| assert_eq!(propagate::trace_id().as_deref(), Some(trace_id.as_str())));
    drop((root, remote));
    metrics::bid("provider", metrics::bid::REFUSED, "insufficient_ram", &["insufficient_ram"]);
    metrics::bid("provider", metrics::bid::REFUSED, "ʕ•ᴥ•ʔ", &["insufficient_ram"]);

    let text = metrics::render();
    assert!(text.contains("dms_bids_total{"), "{text}");
    assert!(text.contains(r#"reason="other""#), "an unknown reason is other: {text}");
    assert!(text.contains("dms_telemetry_events_total{kind=\"deployment\"} 1"), "{text}");

    assert_eq!(
        dms_telemetry::set_log_level("debug,hyper=info").expect("changed"),
        "debug,hyper=info"
    );
    assert_eq!(dms_telemetry::log_level().as_deref(), Some("debug,hyper=info"));
    assert!(matches!(
        dms_telemetry::set_log_level("=bad=["),
        Err(dms_telemetry::Error::Filter { .. })
    ));

    tokio::time::sleep(Duration::from_millis(1500)).await; // the event's batch flushes
    telemetry.shutdown().await;
    let received = receiver.received();

    let spans: Vec<_> = received.spans.iter().filter(|s| s.trace_id == trace_id).collect();
    assert!(
        spans.iter().any(|s| s.name == "deployment" && s.attributes["id"] == "d-otlp"),
        "{spans:?}"
    );
    assert!(spans.iter().any(|s| s.name == "message"), "the remote span joined: {spans:?}");
    assert!(spans.iter().all(|s| s.instance == "did:key:z6MkOtlpTest"), "{spans:?}");

    let log = received.logs.iter().find(|l| l.body.contains("Deployment d-otlp is running"));
    let log = log.expect("the event is a log record");
    assert_eq!(log.attributes.get("deployment").map(String::as_str), Some("d-otlp"));
    assert!(received.metrics.contains("dms_bids"), "{:?}", received.metrics);

    let doc = received.documents.iter().find(|d| d["deployment"] == "d-otlp").expect("shipped");
    assert_eq!(doc["trace_id"], trace_id.as_str());
    assert_eq!(doc["kind"], "deployment");
    assert_eq!(doc["state"], "running");
}
