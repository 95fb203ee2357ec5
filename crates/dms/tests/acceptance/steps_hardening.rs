//! Steps for hardening: input and terminals that must not crash the CLI.

use std::process::Stdio;

use cucumber::{then, when};
use tokio::io::AsyncReadExt as _;

use super::daemon::{DMS, Run, patience, run};
use super::world::DmsWorld;

/// Runs `command` with its standard output closed before it writes (as `| head -0`
/// does): every write fails with a broken pipe.
#[when(expr = "I run {string} with its output closed")]
async fn run_closed(world: &mut DmsWorld, command: String) {
    let args: Vec<&str> = command.split_whitespace().skip_while(|w| *w == "dms").collect();
    let mut child = tokio::process::Command::new(DMS)
        .arg("--home")
        .arg(world.home(0))
        .args(&args)
        .env("DMS_PASSPHRASE", "pw")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("dms binary runs");
    drop(child.stdout.take());
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    let status = tokio::time::timeout(patience(), child.wait())
        .await
        .expect("dms command timed out")
        .expect("dms exits");
    world.last = Some(Run { status, stdout: String::new(), stderr });
}

/// Ended by the broken pipe (SIGPIPE) or successfully, saying nothing on stderr: no
/// panic, and no other error that would keep the command from writing at all.
#[then("it ends quietly, without a panic")]
async fn quietly(world: &mut DmsWorld) {
    use std::os::unix::process::ExitStatusExt as _;
    let last = world.last();
    assert!(last.stderr.trim().is_empty(), "stderr: {}", last.stderr);
    let piped = last.status.signal() == Some(13);
    assert!(piped || last.status.success(), "{:?}", last.status);
}

/// A second Unix account for access scenarios (made once; root needed, as in CI).
const OTHER_USER: &str = "dms-test-other";

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot run: {e}"))
}

/// Makes the other account if missing, and a directory it can use: a copy of the dms
/// binary and a home of its own. Fails loudly when not root (the scenario cannot be
/// tested otherwise, and must not pass silently).
fn other_user(world: &mut DmsWorld) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let uid = String::from_utf8_lossy(&sh("id", &["-u"]).stdout).trim().to_string();
    assert_eq!(uid, "0", "this scenario makes a second Unix account: run it as root (CI does)");
    if !sh("id", &["-u", OTHER_USER]).status.success() {
        let made = sh("useradd", &["--system", "--no-create-home", OTHER_USER]);
        assert!(made.status.success(), "useradd: {}", String::from_utf8_lossy(&made.stderr));
    }
    let dir = world.add_home();
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut up = dir.parent();
    while let Some(parent) = up.filter(|p| *p != std::path::Path::new("/tmp")) {
        // The temporary parents are 0700: let the other user through (not list).
        let mode = std::fs::metadata(parent).map(|m| m.permissions().mode()).unwrap_or(0);
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o711));
        up = parent.parent();
    }
    let binary = dir.join("dms");
    std::fs::copy(DMS, &binary).expect("copy the dms binary");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let owned = sh("chown", &[OTHER_USER, &home.to_string_lossy()]);
    assert!(owned.status.success(), "chown: {}", String::from_utf8_lossy(&owned.stderr));
    (binary, home)
}

fn token_file(world: &DmsWorld) -> std::path::PathBuf {
    world.home(0).join("api.token")
}

#[then("the daemon's API token file is readable by its user only")]
async fn token_private(world: &mut DmsWorld) {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(token_file(world)).expect("the daemon wrote api.token");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[then(
    regex = r#"^another local user cannot read the token, and running "dms info" against the daemon is refused with "([^"]+)"$"#
)]
async fn other_user_refused(world: &mut DmsWorld, needle: String) {
    let (binary, home) = other_user(world);
    let token = token_file(world);
    let read = sh("runuser", &["-u", OTHER_USER, "--", "cat", &token.to_string_lossy()]);
    assert!(!read.status.success(), "the other user read the token");
    let api = world.daemons.first().expect("a daemon runs").ready().api.to_string();
    let (binary, home) = (binary.to_string_lossy(), home.to_string_lossy());
    let out = sh(
        "runuser",
        &["-u", OTHER_USER, "--", &binary, "--home", &home, "--api-addr", &api, "info"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the other user's dms info succeeded");
    assert!(stderr.contains(&needle), "{stderr}");
}

#[then(regex = r"^GET (\S+) without the token answers 401 in the JSON shape$")]
async fn no_token_401(world: &mut DmsWorld, path: String) {
    let api = world.daemons.first().expect("a daemon runs").ready().api;
    let body = super::http::get_body(api, &path).await.expect("answer");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(json["error"], "unauthorized", "{json}");
}

fn socket_file(world: &DmsWorld) -> std::path::PathBuf {
    world.home(0).join("api.sock")
}

#[then("the daemon's API socket is usable by its user only")]
async fn socket_private(world: &mut DmsWorld) {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let meta = std::fs::symlink_metadata(socket_file(world)).expect("the daemon made api.sock");
    assert!(meta.file_type().is_socket(), "api.sock is a socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[then(
    regex = r#"^another local user cannot use the daemon's API socket, even where it can reach the file, refused with "([^"]+)"$"#
)]
async fn other_user_socket_refused(world: &mut DmsWorld, needle: String) {
    use std::os::unix::fs::PermissionsExt as _;
    let (binary, home) = other_user(world);
    // Let the other user through the (0700) daemon home for this check only: the
    // socket's own permissions must still refuse it.
    let daemon_home = world.home(0);
    let mode = std::fs::metadata(&daemon_home).expect("home").permissions().mode();
    std::fs::set_permissions(&daemon_home, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let socket = socket_file(world);
    let (binary, home, socket) =
        (binary.to_string_lossy(), home.to_string_lossy(), socket.to_string_lossy());
    let out = sh(
        "runuser",
        &["-u", OTHER_USER, "--", &binary, "--home", &home, "--api-socket", &socket, "info"],
    );
    std::fs::set_permissions(&daemon_home, std::fs::Permissions::from_mode(mode)).expect("chmod");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the other user's dms info succeeded");
    assert!(stderr.contains(&needle), "{stderr}");
}

#[then(expr = "with the API token file removed, {string} through the socket shows the node's DID")]
async fn socket_without_token(world: &mut DmsWorld, command: String) {
    std::fs::remove_file(token_file(world)).expect("remove api.token");
    let did = world.daemons.first().expect("a daemon runs").ready().did.clone();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = run(&world.home(0), &args, &[]).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains(&did), "{}", out.stdout);
}

/// The raw request (head without the final blank line, and body) for a named case.
fn error_case(name: &str, token: &str) -> (String, Vec<u8>) {
    let auth = format!("Authorization: Bearer {token}");
    let put = |content_type: &str, length: usize| {
        format!(
            "PUT /api/v1/cap/contexts/x HTTP/1.1\r\n{auth}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {length}"
        )
    };
    match name {
        "GET /api/v1/info without the token" => ("GET /api/v1/info HTTP/1.1".into(), Vec::new()),
        "GET /api/v1/nowhere" => (format!("GET /api/v1/nowhere HTTP/1.1\r\n{auth}"), Vec::new()),
        "DELETE /health" => (format!("DELETE /health HTTP/1.1\r\n{auth}"), Vec::new()),
        "PUT a context of 2 MiB" => (put("application/json", 2 << 20), vec![b' '; 2 << 20]),
        "GET a path of 9 KiB" => {
            (format!("GET /api/v1/{} HTTP/1.1\r\n{auth}", "a".repeat(9 * 1024)), Vec::new())
        }
        "PUT a context that is not JSON" => (put("application/json", 5), b"{nope".to_vec()),
        "PUT a context as text/plain" => (put("text/plain", 2), b"{}".to_vec()),
        // Ten bytes announced, two sent.
        "PUT a context whose body never ends" => (put("application/json", 10), b"{}".to_vec()),
        other => panic!("no such request case: {other}"),
    }
}

#[then("each of these requests is answered with its status in the JSON shape:")]
async fn errors_shaped(world: &mut DmsWorld, step: &cucumber::gherkin::Step) {
    use tokio::io::AsyncWriteExt as _;
    let api = world.daemons.first().expect("a daemon runs").ready().api;
    let token = std::fs::read_to_string(token_file(world)).expect("api.token");
    let table = step.table.as_ref().expect("a table of requests");
    for row in table.rows.iter().skip(1) {
        let (name, status, code) = (&row[0], &row[1], &row[2]);
        let (head, body) = error_case(name, token.trim());
        let mut stream = tokio::net::TcpStream::connect(api).await.expect("connect");
        let request = format!("{head}\r\nHost: {api}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("head");
        // A body over the limit may be cut off by the answer; that is fine.
        let _ = stream.write_all(&body).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(patience(), stream.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer);
        let (headers, json) =
            text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{name}: {text}"));
        let got = headers.split_whitespace().nth(1).unwrap_or_default();
        assert_eq!(got, status, "{name}: {headers}");
        let json: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|_| panic!("{name}: not JSON: {json}"));
        assert_eq!(json["error"], code.as_str(), "{name}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {json}");
    }
}
