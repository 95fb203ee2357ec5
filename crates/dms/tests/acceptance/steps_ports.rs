//! Steps for published ports: a Docker web service (busybox httpd) on a devnet, the
//! address `dms deployments info` shows, and a public port that is already taken.

use std::time::{Duration, Instant};

use cucumber::{given, then, when};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::steps_deploy::{IMAGE, deploy, dms, write};
use super::world::DmsWorld;

/// A busybox httpd serving `text` on `port`, published at `public` when given.
fn web_service(text: &str, port: u16, public: Option<u16>) -> String {
    let script = format!(
        "mkdir -p /www && echo '{text}' > /www/index.html && exec httpd -f -p {port} -h /www"
    );
    let map = public.map_or_else(String::new, |public| {
        format!("    ports: [{{public: {public}, private: {port}, allocation: web}}]\n")
    });
    format!(
        "version: V1\nallocations:\n  web:\n    type: service\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    \
         execution: {{image: \"{IMAGE}\", command: [sh, -c, \"{script}\"]}}\n    \
         ports: [{{port: {port}}}]\nnodes:\n  only:\n    allocations: [web]\n{map}"
    )
}

#[when(
    regex = r#"^the devnet user deploys a Docker web service answering "([^"]+)" on port (\d+)$"#
)]
async fn deploy_web(world: &mut DmsWorld, text: String, port: u16) {
    let file = write(world, "web.yaml", &web_service(&text, port, None));
    deploy(world, &file, &[]).await;
}

#[given("a free public port is chosen")]
async fn free_port(world: &mut DmsWorld) {
    let listener = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("a free port");
    world.public_port = Some(listener.local_addr().expect("address").port());
}

fn public_port(world: &DmsWorld) -> u16 {
    world.public_port.expect("a public port was chosen")
}

#[when(
    regex = r#"^the devnet user (deploys|plans) a Docker web service answering "([^"]+)" on port (\d+) published at that port$"#
)]
async fn deploy_web_at(world: &mut DmsWorld, verb: String, text: String, port: u16) {
    let public = public_port(world);
    let file = write(world, &format!("web-{text}.yaml"), &web_service(&text, port, Some(public)));
    let extra: &[&str] = if verb == "plans" { &["--plan"] } else { &[] };
    deploy(world, &file, extra).await;
}

#[then(regex = r#"^"dms deployments info" shows where port (\d+)/tcp is reachable$"#)]
async fn info_shows_endpoint(world: &mut DmsWorld, port: u16) {
    let id = world.deployment.clone().expect("a deployment");
    let out = dms(world, &["devnet", "cli", "deployments", "info", &id]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(&format!("{port}/tcp")))
        .unwrap_or_else(|| panic!("no endpoint for {port}/tcp in:\n{}", out.stdout));
    let address = line.split_whitespace().last().expect("an address").to_string();
    assert!(address.parse::<std::net::SocketAddr>().is_ok(), "{address:?} in {line:?}");
    world.endpoint = Some(address);
}

/// `GET /` at `address`, retried for a few seconds while the server starts.
async fn get(address: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            stream.write_all(b"GET / HTTP/1.0\r\nHost: dms\r\n\r\n").await?;
            let mut body = String::new();
            stream.read_to_string(&mut body).await?;
            Ok::<_, std::io::Error>(body)
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(body)) if body.starts_with("HTTP/1.") => return body,
            other if Instant::now() >= deadline => panic!("no answer at {address}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

#[then(regex = r#"^a request to that address is answered with "([^"]+)"$"#)]
async fn request_answered(world: &mut DmsWorld, text: String) {
    let address = world.endpoint.clone().expect("an endpoint was shown");
    let body = get(&address).await;
    assert!(body.contains(&text), "{address} answered:\n{body}");
}

#[then(regex = r#"^a request to that public port on this machine is answered with "([^"]+)"$"#)]
async fn public_port_answered(world: &mut DmsWorld, text: String) {
    let body = get(&format!("127.0.0.1:{}", public_port(world))).await;
    assert!(body.contains(&text), "{body}");
}

#[then(regex = r#"^no peer would take it, each refusing with "([^"]+)" or "([^"]+)"$"#)]
async fn nobody_takes_it(world: &mut DmsWorld, first: String, second: String) {
    let out = world.last();
    let text = format!("{}\n{}", out.stdout, out.stderr);
    assert!(!text.contains("would place"), "a peer would take the same public port:\n{text}");
    let refusals = text.lines().filter(|l| l.contains("port: port")).count();
    assert_eq!(refusals, 3, "each of the 3 peers refuses for the port:\n{text}");
    assert!(
        text.lines()
            .filter(|l| l.contains("port: port"))
            .all(|l| l.contains(&first) || l.contains(&second)),
        "{text}"
    );
}
