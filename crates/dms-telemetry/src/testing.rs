//! A receiver speaking the sinks' wire protocols, for tests (feature `testing`): the
//! Elasticsearch `_bulk` and `_index_template` APIs, and OTLP/HTTP protobuf for traces,
//! logs and metrics, decoded with the `opentelemetry-proto` types. No Elasticsearch or
//! collector can be installed where the tests run; this one answers as they do (a
//! document created twice under one `_id` is a 409 item) and keeps what it received.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::{Value, json};

/// A span as received.
#[derive(Clone, Debug)]
pub struct Span {
    /// 32 hex digits.
    pub trace_id: String,
    /// Its name.
    pub name: String,
    /// Its attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// The `service.instance.id` of the process that sent it.
    pub instance: String,
}

/// A log record as received.
#[derive(Clone, Debug)]
pub struct LogRecord {
    /// Its body, as text.
    pub body: String,
    /// Its attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// The `service.instance.id` of the process that sent it.
    pub instance: String,
}

/// Everything received so far.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// `_bulk` requests answered (failed ones included).
    pub bulk_requests: usize,
    /// Documents created, in order.
    pub documents: Vec<Value>,
    /// Index templates installed, by name.
    pub templates: BTreeMap<String, Value>,
    /// Spans.
    pub spans: Vec<Span>,
    /// Log records.
    pub logs: Vec<LogRecord>,
    /// Names of the metrics pushed.
    pub metrics: BTreeSet<String>,
}

#[derive(Default)]
struct Inner {
    received: Received,
    ids: BTreeSet<String>,
    fail_bulk: usize,
}

type Shared = Arc<Mutex<Inner>>;

/// The running receiver; it stops when dropped.
pub struct Receiver {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Serves on a free loopback port.
    pub async fn start() -> std::io::Result<Receiver> {
        let inner: Shared = Arc::default();
        let app = Router::new()
            .route("/_bulk", post(bulk))
            .route("/_index_template/{name}", put(template))
            .route("/v1/traces", post(traces))
            .route("/v1/logs", post(logs))
            .route("/v1/metrics", post(metrics))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, inner, task })
    }

    /// A copy of what was received.
    pub fn received(&self) -> Received {
        self.inner.lock().expect("receiver lock").received.clone()
    }

    /// Answers the next `n` `_bulk` requests 503, as a server that is overloaded.
    pub fn fail_bulk(&self, n: usize) {
        self.inner.lock().expect("receiver lock").fail_bulk = n;
    }
}

async fn bulk(State(inner): State<Shared>, body: String) -> (StatusCode, String) {
    let mut inner = inner.lock().expect("receiver lock");
    inner.received.bulk_requests += 1;
    if inner.fail_bulk > 0 {
        inner.fail_bulk -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"overloaded"}"#.into());
    }
    let mut lines = body.lines().filter(|l| !l.trim().is_empty());
    let mut items = Vec::new();
    while let Some(action) = lines.next() {
        let (Ok(action), Some(doc)) = (serde_json::from_str::<Value>(action), lines.next()) else {
            return (
                StatusCode::BAD_REQUEST,
                r#"{"error":"not NDJSON action/document pairs"}"#.into(),
            );
        };
        let Ok(doc) = serde_json::from_str::<Value>(doc) else {
            items.push(
                json!({"create": {"status": 400, "error": {"type": "mapper_parsing_exception"}}}),
            );
            continue;
        };
        let id = action["create"]["_id"].as_str().unwrap_or_default().to_string();
        if action["create"]["_index"].as_str().is_none() {
            items.push(json!({"create": {"status": 400, "error": {"type": "action_request_validation_exception"}}}));
        } else if !inner.ids.insert(id.clone()) {
            items.push(json!({"create": {"_id": id, "status": 409}}));
        } else {
            inner.received.documents.push(doc);
            items.push(json!({"create": {"_id": id, "status": 201}}));
        }
    }
    let errors = items.iter().any(|i| i["create"]["status"] != 201);
    (StatusCode::OK, json!({"took": 1, "errors": errors, "items": items}).to_string())
}

async fn template(
    State(inner): State<Shared>,
    Path(name): Path<String>,
    body: String,
) -> StatusCode {
    let Ok(template) = serde_json::from_str::<Value>(&body) else { return StatusCode::BAD_REQUEST };
    inner.lock().expect("receiver lock").received.templates.insert(name, template);
    StatusCode::OK
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect()
}

fn instance(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .map(|r| attributes(&r.attributes))
        .and_then(|mut a| a.remove("service.instance.id"))
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const PROTOBUF: [(&str, &str); 1] = [("content-type", "application/x-protobuf")];

async fn traces(
    State(inner): State<Shared>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, PROTOBUF);
    };
    let mut inner = inner.lock().expect("receiver lock");
    for resource_spans in request.resource_spans {
        let instance = instance(resource_spans.resource.as_ref());
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                inner.received.spans.push(Span {
                    trace_id: hex(&span.trace_id),
                    name: span.name,
                    attributes: attributes(&span.attributes),
                    instance: instance.clone(),
                });
            }
        }
    }
    (StatusCode::OK, PROTOBUF)
}

async fn logs(
    State(inner): State<Shared>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    let Ok(request) = ExportLogsServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, PROTOBUF);
    };
    let mut inner = inner.lock().expect("receiver lock");
    for resource_logs in request.resource_logs {
        let instance = instance(resource_logs.resource.as_ref());
        for scope in resource_logs.scope_logs {
            for record in scope.log_records {
                inner.received.logs.push(LogRecord {
                    body: text(record.body.as_ref()),
                    attributes: attributes(&record.attributes),
                    instance: instance.clone(),
                });
            }
        }
    }
    (StatusCode::OK, PROTOBUF)
}

async fn metrics(
    State(inner): State<Shared>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, PROTOBUF);
    };
    let mut inner = inner.lock().expect("receiver lock");
    for resource_metrics in request.resource_metrics {
        for scope in resource_metrics.scope_metrics {
            for metric in scope.metrics {
                inner.received.metrics.insert(metric.name);
            }
        }
    }
    (StatusCode::OK, PROTOBUF)
}
