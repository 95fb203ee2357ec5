//! Steps of `dashboard.feature`: the web dashboard in a real headless Chromium, driven
//! over WebDriver (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them).
//! Screenshots land in `target/ci-artifacts/dashboard/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cucumber::{then, when};
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use super::steps_deploy::{deploy, devnet_cli, node, write};
use super::world::DmsWorld;

/// How long the page may take to show what a step expects.
const PATIENCE: Duration = Duration::from_secs(30);

/// A chromedriver process (in its own process group, killed with its browsers on
/// drop) and the WebDriver session on it.
pub struct Browser {
    driver: std::process::Child,
    client: Client,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Browser(chromedriver pid {})", self.driver.id())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.driver.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port()
}

async fn open_browser() -> Browser {
    use std::os::unix::process::CommandExt as _;
    let port = free_port();
    let driver = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromedriver (apt-get install chromium chromium-driver; .ci/run does)");
    let profile = tempfile::tempdir().expect("a profile dir");
    let caps = json!({"goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--window-size=1280,1400",
            format!("--user-data-dir={}", profile.path().display())],
    }});
    let caps = caps.as_object().expect("an object").clone();
    let deadline = Instant::now() + PATIENCE;
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return Browser { driver, client, _profile: profile },
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no WebDriver session with chromedriver: {error}"),
        }
    }
}

fn browser(world: &DmsWorld) -> &Client {
    &world.browser.as_ref().expect("the dashboard is open").client
}

/// The page's visible text.
async fn text(client: &Client) -> String {
    let value = client.execute("return document.body.innerText", vec![]).await.expect("a script");
    value.as_str().unwrap_or_default().to_string()
}

/// Waits until the page's text satisfies `check`; the failure shows the page's text.
async fn until(world: &DmsWorld, what: &str, check: impl Fn(&str) -> bool) -> String {
    let client = browser(world);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = text(client).await;
        if check(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "the page never showed {what}; it shows:\n{seen}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[when("the devnet user deploys a WebAssembly service of two allocations that print a line")]
async fn deploy_printing_service(world: &mut DmsWorld) {
    let module = write(
        world,
        "print.wat",
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "serving requests\0a")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 17))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $l (br $l))))"#,
    );
    let allocation = format!(
        "    type: service\n    executor: wasm\n    resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {{module: {module}}}\n"
    );
    let ensemble = format!(
        "version: V1\nallocations:\n  web:\n{allocation}  worker:\n{allocation}nodes:\n  a: {{allocations: [web]}}\n  b: {{allocations: [worker]}}\n"
    );
    let file = write(world, "printing.yaml", &ensemble);
    deploy(world, &file, &[]).await;
    assert!(world.last().status.success(), "{}", world.last().stderr);
}

#[when(regex = r"^the devnet user opens node (\d+)'s dashboard in a headless browser$")]
async fn open_dashboard(world: &mut DmsWorld, index: usize) {
    let out = devnet_cli(world, index, &["dashboard", "--url"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let url = out.stdout.trim().to_string();
    assert!(url.contains("/dashboard/#login="), "not a login URL: {url}");
    let api = node(world, index)["api"].as_str().expect("api").to_string();
    assert!(url.starts_with(&format!("http://{api}/")), "{url} is not on the node's API {api}");
    world.dashboard_url = Some(url.clone());
    let browser = open_browser().await;
    browser.client.goto(&url).await.expect("the page opens");
    world.browser = Some(browser);
}

#[then("the page shows the node's identity and its peers")]
async fn shows_node(world: &mut DmsWorld) {
    let did = node(world, 0)["did"].as_str().expect("did").to_string();
    let peer = node(world, 1)["peer_id"].as_str().expect("peer id").to_string();
    until(world, "the node's DID and its peer", |t| t.contains(&did) && t.contains(&peer)).await;
    let url = browser(world).current_url().await.expect("a URL");
    assert!(!url.as_str().contains("login="), "the login token stayed in the address: {url}");
}

#[then("the page shows the deployment running with its two allocations on the map")]
async fn shows_deployment(world: &mut DmsWorld) {
    let id = world.deployment.clone().expect("a deployment");
    until(world, "the deployment running", |t| {
        t.contains(&id) && t.contains("running") && t.contains("web") && t.contains("worker")
    })
    .await;
    let client = browser(world);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let dots = client
            .execute(
                "return [...document.querySelectorAll('#map .alloc.running')].map(e => e.dataset.allocation)",
                vec![],
            )
            .await
            .expect("a script");
        let mut names: Vec<String> = serde_json::from_value(dots).unwrap_or_default();
        names.sort();
        if names == ["web", "worker"] {
            break;
        }
        assert!(Instant::now() < deadline, "running allocations on the map: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let providers = client
        .execute("return document.querySelectorAll('#map .provider').length", vec![])
        .await
        .expect("a script");
    assert_eq!(providers, Value::from(2), "two providers on the map");
}

#[then(regex = r#"^the page shows the allocation's log line "([^"]+)"$"#)]
async fn shows_logs(world: &mut DmsWorld, line: String) {
    until(world, &format!("the log line {line:?}"), |t| t.contains(&line)).await;
}

#[then(regex = r#"^the page shows the event "([^"]+)" as it happens, without a reload$"#)]
async fn shows_event_live(world: &mut DmsWorld, event: String) {
    // A marker set before the change: a reloaded page would have lost it.
    let marked = browser(world)
        .execute("return window.__dmsMarker === 'before'", vec![])
        .await
        .expect("a script");
    assert_eq!(marked, Value::Bool(true), "the marker was not set before the change");
    until(world, &format!("the event {event:?}"), |t| t.contains(&event)).await;
    let still = browser(world)
        .execute("return window.__dmsMarker === 'before'", vec![])
        .await
        .expect("a script");
    assert_eq!(still, Value::Bool(true), "the page was reloaded");
}

#[when("the page is marked")]
async fn mark(world: &mut DmsWorld) {
    browser(world).execute("window.__dmsMarker = 'before'", vec![]).await.expect("a script");
}

#[then(regex = r#"^a screenshot "([^"]+)" is saved$"#)]
async fn screenshot(world: &mut DmsWorld, name: String) {
    let png = browser(world).screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ci-artifacts/dashboard");
    std::fs::create_dir_all(&dir).expect("the artifacts folder");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is written");
}

/// The login URL's base and token.
fn login(world: &DmsWorld) -> (String, String) {
    let url = world.dashboard_url.clone().expect("a login URL");
    let (base, token) = url.split_once("/dashboard/#login=").expect("a login URL");
    (base.to_string(), token.to_string())
}

#[when(regex = r"^the devnet user asks node (\d+) for a dashboard login URL$")]
async fn ask_login(world: &mut DmsWorld, index: usize) {
    let out = devnet_cli(world, index, &["dashboard", "--url"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    world.dashboard_url = Some(out.stdout.trim().to_string());
}

async fn post(url: &str, body: String) -> (u16, Value) {
    let response = reqwest::Client::new().post(url).body(body).send().await.expect("an answer");
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

async fn read(url: &str, session: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(session) = session {
        request = request.bearer_auth(session);
    }
    let response = request.send().await.expect("an answer");
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

#[then("the login token works once, and the session reads but cannot change anything")]
async fn login_once(world: &mut DmsWorld) {
    let (base, token) = login(world);
    let session_url = format!("{base}/dashboard/session");
    let (status, body) = post(&session_url, token.clone()).await;
    assert_eq!(status, 200, "{body}");
    let session = body["token"].as_str().expect("a session token").to_string();
    let (status, body) = post(&session_url, token).await;
    assert_eq!(status, 401, "a second use: {body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("used already"), "{body}");

    let call = |behavior: &str| format!("{base}/dashboard/api/call?behavior={behavior}");
    let (status, body) = read(&call("/dms/node/deployment/list"), Some(&session)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.is_array(), "{body}");
    let (status, body) = read(&call("/dms/node/deployment/list"), None).await;
    assert_eq!(status, 401, "without a session: {body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("dms dashboard"), "{body}");
    let (status, body) = read(&call("/dms/node/onboarding/offboard"), Some(&session)).await;
    assert_eq!(status, 403, "a change through the dashboard: {body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("only reads"), "{body}");
    let (status, _) = read(&format!("{base}/dashboard/api/caps"), Some(&session)).await;
    assert_eq!(status, 200);
}

#[then("the page opened without a login link says how to log in")]
async fn no_login(world: &mut DmsWorld) {
    let (base, _) = login(world);
    let browser = open_browser().await;
    browser.client.goto(&format!("{base}/dashboard/")).await.expect("the page opens");
    world.browser = Some(browser);
    until(world, "how to log in", |t| t.contains("dms dashboard")).await;
}
