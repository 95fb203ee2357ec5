//! The Elasticsearch sink: events go to `<url>/_bulk` as NDJSON `create` actions, in
//! batches of at most [`BATCH`] or every [`FLUSH`], whichever comes first.
//!
//! - Bounded: the hub's queue (8192 events) and one batch in flight; what does not fit
//!   is dropped and counted (`dms_telemetry_events_dropped_total{sink="elasticsearch"}`).
//! - Retried with the one back-off (1 s doubling to 60 s) while the server is down or
//!   answers 429 or 5xx; items it answers 429/5xx are sent again (at most 10 times),
//!   items it rejects for good (a mapping error) are dropped with a warning and counted
//!   as `elasticsearch-rejected`.
//! - Idempotent: each document's `_id` is `<node DID>/<event id>`, so a batch retried
//!   after a lost answer is not indexed twice (409 counts as done).
//! - The index template shipped in `assets/index-template.json` is installed once
//!   (`PUT _index_template/<index>`) before the first batch.
//! - Never slows the work: it runs on its own task, fed by a queue publishing never waits
//!   on.

use std::time::Duration;

use dms_types::backoff::Backoff;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::hub::Shared;

/// Most events in one `_bulk` request.
pub const BATCH: usize = 500;
/// Longest an event waits for its batch to fill.
pub const FLUSH: Duration = Duration::from_secs(1);
/// The index template (`index_patterns` is set to `<index>*` when installed).
pub const INDEX_TEMPLATE: &str = include_str!("../assets/index-template.json");

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Resends of items answered 429/5xx before they are dropped (the batch is otherwise
/// taken: the server is up and refuses these).
const MAX_RESENDS: u32 = 10;
/// How long a stopping sink keeps trying to deliver what it holds.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Where events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The server's base URL without a trailing `/`, e.g. `http://127.0.0.1:9200`
    /// ([`Target::new`] removes one).
    pub url: String,
    /// The index (or data stream) written to.
    pub index: String,
}

impl Target {
    /// A target, checked: an `http://` URL (TLS servers are reached through a local
    /// proxy) and an index name Elasticsearch accepts.
    pub fn new(url: &str, index: &str) -> Result<Target, String> {
        let (url, index) = (url.trim(), index.trim());
        check_http_url(url)?;
        let bad = |c: char| c.is_ascii_uppercase() || " \"*\\<|,>/?#:".contains(c);
        if index.is_empty() || index.starts_with(['-', '_', '+']) || index.chars().any(bad) {
            return Err(format!(
                "index {index:?}: expected a lower-case name without spaces or any of \\/*?\"<>|,#: \
                 that does not start with -, _ or + (e.g. dms-events)"
            ));
        }
        Ok(Target { url: url.trim_end_matches('/').to_string(), index: index.to_string() })
    }
}

/// Checks that `url` is an `http://` URL with a host.
pub fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!(
            "{url:?}: expected an http:// URL such as http://127.0.0.1:9200 (https is not \
             supported: reach a TLS server through a local proxy)"
        )
    })?;
    if rest.split(['/', '?']).next().is_none_or(str::is_empty) {
        return Err(format!("{url:?}: no host after http://"));
    }
    Ok(())
}

/// The running sink.
#[derive(Debug)]
pub struct Sink {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Starts shipping what arrives on `feed` to `target`.
    pub fn start(target: Target, feed: mpsc::Receiver<Shared>) -> Sink {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(target, feed, stopped));
        Sink { stop, task }
    }

    /// Sends what is queued (trying for at most 3 s), then stops.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Why a batch was not delivered.
enum Failure {
    /// Try again later: the server is down, overloaded or failing.
    Retry(String),
    /// The server refused the request for good.
    Refused(String),
}

struct Shipper {
    client: reqwest::Client,
    target: Target,
    template_installed: bool,
}

async fn run(target: Target, mut feed: mpsc::Receiver<Shared>, mut stopped: oneshot::Receiver<()>) {
    let built = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build();
    let client = match built {
        Ok(client) => client,
        Err(error) => {
            // The hub counts what it can no longer queue (a closed queue) as dropped.
            warn!(%error, "Cannot build the Elasticsearch client; events are not shipped.");
            return;
        }
    };
    let mut shipper = Shipper { client, target, template_installed: false };
    let mut batch: Vec<Shared> = Vec::with_capacity(BATCH);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut partial = 0;
    // Set once the sink is told to stop: what it holds is tried until then, no longer.
    let mut deadline: Option<Instant> = None;
    loop {
        match deadline {
            None if fill(&mut feed, &mut batch, &mut stopped).await => {
                deadline = Some(Instant::now() + STOP_GRACE);
            }
            None => {}
            Some(_) => top_up(&mut feed, &mut batch),
        }
        if batch.is_empty() {
            if deadline.is_some() {
                return;
            }
            continue;
        }
        let shipped = {
            // A stop cuts a request short at its deadline, also one already waiting.
            let ship = shipper.ship(&batch);
            tokio::pin!(ship);
            let late = || Err(Failure::Retry("no answer before the stop deadline".into()));
            match deadline {
                Some(at) => tokio::time::timeout_at(at, &mut ship).await.unwrap_or_else(|_| late()),
                None => tokio::select! {
                    shipped = &mut ship => shipped,
                    _ = &mut stopped => {
                        let at = Instant::now() + STOP_GRACE;
                        deadline = Some(at);
                        tokio::time::timeout_at(at, &mut ship).await.unwrap_or_else(|_| late())
                    }
                },
            }
        };
        match shipped {
            Ok(resend) if resend.is_empty() => {
                backoff.reset();
                partial = 0;
                batch.clear();
                continue;
            }
            Ok(resend) if partial >= MAX_RESENDS => {
                warn!(url = %shipper.target.url, dropped = resend.len(),
                    "Elasticsearch kept refusing events with 429/5xx; dropping them.");
                count_dropped("elasticsearch-rejected", resend.len());
                partial = 0;
                batch.clear();
                continue;
            }
            Ok(resend) => {
                partial += 1;
                batch = resend;
            }
            Err(Failure::Refused(why)) => {
                warn!(url = %shipper.target.url, dropped = batch.len(),
                    "Elasticsearch refused a batch of events for good: {why}");
                count_dropped("elasticsearch-rejected", batch.len());
                batch.clear();
                continue;
            }
            Err(Failure::Retry(why)) => {
                debug!(url = %shipper.target.url, "Elasticsearch unavailable, retrying: {why}");
            }
        }
        let wait = backoff.take(Duration::MAX);
        match deadline {
            Some(at) if Instant::now() + wait >= at => {
                return give_up(&shipper.target, &feed, &batch);
            }
            Some(_) => tokio::time::sleep(wait).await,
            None => tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut stopped => deadline = Some(Instant::now() + STOP_GRACE),
            },
        }
    }
}

/// Adds what is queued now to `batch`, up to [`BATCH`].
fn top_up(feed: &mut mpsc::Receiver<Shared>, batch: &mut Vec<Shared>) {
    while batch.len() < BATCH {
        let Ok(event) = feed.try_recv() else { break };
        batch.push(event);
    }
}

/// Stops with events the server did not take: counted as dropped.
fn give_up(target: &Target, feed: &mpsc::Receiver<Shared>, batch: &[Shared]) {
    let dropped = batch.len() + feed.len();
    warn!(url = %target.url, dropped, "Stopping with events Elasticsearch did not take.");
    count_dropped("elasticsearch", dropped);
}

/// Waits for a first event, then up to [`FLUSH`] for the batch to fill; true when the
/// sink is told to stop (or every sender is gone).
async fn fill(
    feed: &mut mpsc::Receiver<Shared>,
    batch: &mut Vec<Shared>,
    stopped: &mut oneshot::Receiver<()>,
) -> bool {
    if batch.is_empty() {
        tokio::select! {
            n = feed.recv_many(batch, BATCH) => if n == 0 { return true },
            _ = &mut *stopped => return true,
        }
    }
    let deadline = Instant::now() + FLUSH;
    while batch.len() < BATCH {
        let room = BATCH - batch.len();
        tokio::select! {
            n = feed.recv_many(batch, room) => if n == 0 { return true },
            _ = tokio::time::sleep_until(deadline) => return false,
            _ = &mut *stopped => return true,
        }
    }
    false
}

fn count_dropped(sink: &'static str, n: usize) {
    crate::metrics::events_dropped(sink, n);
}

impl Shipper {
    /// Ships `batch`; the events the server asked to resend (429 or 5xx per item).
    async fn ship(&mut self, batch: &[Shared]) -> Result<Vec<Shared>, Failure> {
        if !self.template_installed {
            self.install_template().await?;
            self.template_installed = true;
        }
        let url = format!("{}/_bulk", self.target.url);
        let request = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(bulk_body(&self.target.index, batch));
        let response = send("POST", &url, request).await?;
        let status = response.status();
        let body = response.text().await.map_err(|e| Failure::Retry(e.to_string()))?;
        if !status.is_success() {
            return Err(Failure::Refused(format!("POST {url}: {status}: {}", clip(&body))));
        }
        let (retry, rejected) = outcome(&body, batch.len())
            .map_err(|e| Failure::Refused(format!("POST {url}: unreadable answer: {e}")))?;
        if !rejected.is_empty() {
            warn!(url = %url, rejected = rejected.len(),
                "Elasticsearch rejected events: {}", rejected.join("; "));
            count_dropped("elasticsearch-rejected", rejected.len());
        }
        Ok(retry.into_iter().map(|i| batch[i].clone()).collect())
    }

    async fn install_template(&self) -> Result<(), Failure> {
        let url = format!("{}/_index_template/{}", self.target.url, self.target.index);
        let template = template_for(&self.target.index)
            .map_err(|e| Failure::Refused(format!("the shipped index template: {e}")))?;
        let response = send("PUT", &url, self.client.put(&url).json(&template)).await?;
        let status = response.status();
        if !status.is_success() {
            // An older server or a missing privilege: events still index, unmapped.
            let body = response.text().await.unwrap_or_default();
            warn!(%url, %status, "Could not install the dms index template: {}", clip(&body));
        }
        Ok(())
    }
}

/// Sends `request` (`method url`, for messages): a failure to reach the server and a
/// 429 or 5xx answer are worth a retry; any other answer is the caller's to read.
async fn send(
    method: &str,
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, Failure> {
    let response =
        request.send().await.map_err(|e| Failure::Retry(format!("{method} {url}: {e}")))?;
    let status = response.status();
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(Failure::Retry(format!("{method} {url}: {status}")));
    }
    Ok(response)
}

/// The shipped template with its pattern set to `<index>*`.
pub fn template_for(index: &str) -> Result<serde_json::Value, serde_json::Error> {
    let mut template: serde_json::Value = serde_json::from_str(INDEX_TEMPLATE)?;
    template["index_patterns"] = json!([format!("{index}*")]);
    Ok(template)
}

/// The NDJSON body of a `_bulk` request creating `batch` in `index`.
pub fn bulk_body(index: &str, batch: &[Shared]) -> String {
    let mut body = String::with_capacity(batch.len() * 512);
    for event in batch {
        let id = format!("{}/{}", event.node, event.id);
        let action = json!({"create": {"_index": index, "_id": id}});
        body.push_str(&action.to_string());
        body.push('\n');
        body.push_str(&serde_json::to_string(event.as_ref()).unwrap_or_else(|_| "{}".into()));
        body.push('\n');
    }
    body
}

/// Reads a `_bulk` answer: the positions to resend (429 or 5xx) and why the others that
/// failed were rejected (a conflict means the document is there already: done).
fn outcome(body: &str, sent: usize) -> Result<(Vec<usize>, Vec<String>), String> {
    let answer: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let listed = answer["items"].as_array().map_or(0, Vec::len);
    if answer["errors"] != json!(true) && listed >= sent {
        return Ok((Vec::new(), Vec::new()));
    }
    let items = answer["items"].as_array().ok_or("no items")?;
    // Items the answer does not mention were not taken: sent again.
    let (mut retry, mut rejected): (Vec<usize>, Vec<String>) =
        ((items.len()..sent).collect(), Vec::new());
    for (i, item) in items.iter().enumerate().take(sent) {
        let result = item.as_object().and_then(|o| o.values().next()).cloned().unwrap_or_default();
        let status = result["status"].as_u64().unwrap_or(0);
        match status {
            200..=299 | 409 => {}
            429 | 500..=599 => retry.push(i),
            _ => rejected.push(format!("{status} {}", clip(&result["error"].to_string()))),
        }
    }
    Ok((retry, rejected))
}

fn clip(text: &str) -> &str {
    let end = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dms_types::event::Event;

    use super::*;

    #[test]
    fn a_bulk_body_is_action_then_document_per_event() {
        let event = Arc::new(Event {
            id: "0001700000000000-00000001".into(),
            node: "did:key:z6Mk".into(),
            kind: "bid".into(),
            deployment: Some("d1".into()),
            ..Event::default()
        });
        let body = bulk_body("dms-events", &[event.clone(), event]);
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 4);
        let action: serde_json::Value = serde_json::from_str(lines[0]).expect("action");
        assert_eq!(action["create"]["_index"], "dms-events");
        assert_eq!(action["create"]["_id"], "did:key:z6Mk/0001700000000000-00000001");
        let doc: serde_json::Value = serde_json::from_str(lines[1]).expect("doc");
        assert_eq!(doc["deployment"], "d1");
        assert!(body.ends_with('\n'));
    }

    #[test]
    fn item_failures_are_resent_or_rejected_by_status() {
        let body = r#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409}},
            {"create":{"status":429}},
            {"create":{"status":503}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}}]}"#;
        let (retry, rejected) = outcome(body, 5).expect("outcome");
        assert_eq!(retry, [2, 3]);
        assert_eq!(rejected.len(), 1);
        assert!(rejected[0].starts_with("400"), "{rejected:?}");
        assert_eq!(outcome(r#"{"errors":false,"items":[]}"#, 0).expect("ok"), (vec![], vec![]));
    }

    #[test]
    fn the_shipped_template_matches_the_index() {
        let template = template_for("dms-events").expect("template");
        assert_eq!(template["index_patterns"], json!(["dms-events*"]));
        let properties = &template["template"]["mappings"]["properties"];
        for field in ["@timestamp", "deployment", "kind", "node", "trace_id"] {
            assert!(properties.get(field).is_some(), "{field} is mapped");
        }
    }
}
