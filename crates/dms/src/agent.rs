//! The key agent: keeps unlocked keys in memory for a bounded time and signs the owner's
//! requests with them, so that a signed CLI call does not pay for scrypt each time.
//!
//! Like ssh-agent, keys never leave it: a client sends the bytes to sign and gets the
//! signature. It listens on `<home>/agent.sock` (mode 0600, and every connection's peer
//! must be this user: `SO_PEERCRED`), signs only actor envelopes (input starting with
//! [`dms_actor::envelope::SIGNING_DOMAIN`], never a capability token), and exits — its
//! keys dropped and zeroized — when its lifetime ends or on `dms agent lock`.
//!
//! Protocol: one JSON request per line (`{"op":"sign","did":…,"data":<base64>}`,
//! `{"op":"status"}`, `{"op":"lock"}`), one JSON [`Answer`] per line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use dms_crypto::KeyPair;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A request to the agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Sign `data` (base64) with the key of `did`.
    Sign {
        /// The signer.
        did: String,
        /// The bytes to sign, base64.
        data: String,
    },
    /// Which keys it holds and when it locks.
    Status,
    /// Forget the keys and exit.
    Lock,
}

/// The agent's answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Answer {
    /// The signature, base64 (`sign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The DIDs of its keys (`status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dids: Vec<String>,
    /// Seconds until it locks (`status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locks_in_s: Option<u64>,
    /// Why the request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The agent's socket in `home`.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join("agent.sock")
}

/// How long a client waits for the agent.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one request; `None` when no agent answers on the socket (none running).
pub fn ask(home: &Path, request: &Request) -> Option<anyhow::Result<Answer>> {
    let stream = std::os::unix::net::UnixStream::connect(socket_path(home)).ok()?;
    Some(exchange(stream, request))
}

fn exchange(
    mut stream: std::os::unix::net::UnixStream,
    request: &Request,
) -> anyhow::Result<Answer> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    let answer: Answer = serde_json::from_str(&answer)
        .map_err(|e| anyhow::anyhow!("the key agent answered something else ({e})"))?;
    match answer.error {
        Some(error) => Err(anyhow::anyhow!("the key agent refused: {error}")),
        None => Ok(answer),
    }
}

/// Whether a running agent holds the key of `did`.
pub fn holds(home: &Path, did: &str) -> bool {
    matches!(ask(home, &Request::Status), Some(Ok(answer)) if answer.dids.iter().any(|d| d == did))
}

/// Signs `data` with the agent's key of `did`.
pub fn sign(home: &Path, did: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let request = Request::Sign {
        did: did.to_string(),
        data: base64::engine::general_purpose::STANDARD.encode(data),
    };
    let answer = ask(home, &request).ok_or_else(|| {
        anyhow::anyhow!("the key agent stopped (locked or timed out); sign again to unlock the key")
    })??;
    let signature =
        answer.signature.ok_or_else(|| anyhow::anyhow!("the key agent sent no signature"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(signature)?)
}

/// Binds the agent's socket, owner-only (replacing a stale one of an agent that died).
pub fn bind(socket: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves `keys` on `listener` (bound at `socket`) until `lifetime` has passed or a
/// client locks it; then removes the socket.
pub async fn serve(
    listener: tokio::net::UnixListener,
    socket: &Path,
    keys: Vec<KeyPair>,
    lifetime: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + lifetime;
    let me = rustix::process::getuid().as_raw();
    let (lock_tx, mut lock_rx) = tokio::sync::mpsc::channel::<()>(1);
    let keys = std::sync::Arc::new(keys);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if stream.peer_cred().map(|c| c.uid()).ok() != Some(me) {
                    continue; // Only this user; the mode already says so.
                }
                connections.spawn(connection(stream, keys.clone(), deadline, lock_tx.clone()));
            }
            _ = lock_rx.recv() => break,
            () = tokio::time::sleep_until(deadline.into()) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// Answers the requests of one client.
async fn connection(
    stream: tokio::net::UnixStream,
    keys: std::sync::Arc<Vec<KeyPair>>,
    deadline: Instant,
    lock: tokio::sync::mpsc::Sender<()>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (answer, locking) = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Lock) => (Answer::default(), true),
            Ok(request) => (answer(&keys, deadline, request), false),
            Err(e) => {
                (Answer { error: Some(format!("bad request: {e}")), ..Answer::default() }, false)
            }
        };
        let mut out = serde_json::to_vec(&answer).unwrap_or_default();
        out.push(b'\n');
        if write.write_all(&out).await.is_err() {
            return;
        }
        if locking {
            let _ = lock.send(()).await;
            return;
        }
    }
}

fn answer(keys: &[KeyPair], deadline: Instant, request: Request) -> Answer {
    let refuse = |why: String| Answer { error: Some(why), ..Answer::default() };
    match request {
        Request::Status => Answer {
            dids: keys.iter().map(|k| k.did().to_string()).collect(),
            locks_in_s: Some(deadline.saturating_duration_since(Instant::now()).as_secs()),
            ..Answer::default()
        },
        Request::Sign { did, data } => {
            let Some(key) = keys.iter().find(|k| k.did().to_string() == did) else {
                return refuse(format!("no key of {did} here"));
            };
            let Ok(data) = base64::engine::general_purpose::STANDARD.decode(data) else {
                return refuse("the data is not base64".into());
            };
            if !data.starts_with(dms_actor::envelope::SIGNING_DOMAIN) {
                return refuse("it signs actor requests only, not capability tokens".into());
            }
            let signature = key.sign(&data).into_bytes();
            Answer {
                signature: Some(base64::engine::general_purpose::STANDARD.encode(signature)),
                ..Answer::default()
            }
        }
        Request::Lock => Answer::default(),
    }
}

#[cfg(test)]
mod tests {
    use dms_crypto::KeyType;

    use super::*;

    async fn call(home: &Path, request: Request) -> Option<anyhow::Result<Answer>> {
        let home = home.to_path_buf();
        tokio::task::spawn_blocking(move || ask(&home, &request)).await.expect("client")
    }

    fn sign_request(did: &str, data: &[u8]) -> Request {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        Request::Sign { did: did.into(), data }
    }

    #[tokio::test]
    async fn it_signs_requests_only_for_its_keys_and_forgets_them_when_locked() {
        let home = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate(KeyType::Ed25519);
        let owner = key.did();
        let did = owner.to_string();
        let socket = socket_path(home.path());
        let listener = bind(&socket).expect("bind");
        let serving = socket.clone();
        let server = tokio::spawn(async move {
            serve(listener, &serving, vec![key], Duration::from_secs(60)).await
        });
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&socket).expect("socket").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");

        let status = call(home.path(), Request::Status).await.expect("running").expect("status");
        assert_eq!(status.dids, std::slice::from_ref(&did));
        assert!(status.locks_in_s.is_some_and(|s| s <= 60));

        let mut request = dms_actor::envelope::SIGNING_DOMAIN.to_vec();
        request.extend_from_slice(b"an envelope");
        let answer = call(home.path(), sign_request(&did, &request)).await.expect("running");
        let signature = base64::engine::general_purpose::STANDARD
            .decode(answer.expect("signed").signature.expect("a signature"))
            .expect("base64");
        owner.public_key().verify(&request, &signature).expect("a valid signature by the key");

        let token = call(home.path(), sign_request(&did, b"a capability token")).await;
        let error = token.expect("running").expect_err("refused").to_string();
        assert!(error.contains("actor requests only"), "{error}");
        let other = call(home.path(), sign_request("did:key:z6Mkother", &request)).await;
        assert!(other.expect("running").is_err(), "no key of another DID");

        call(home.path(), Request::Lock).await.expect("running").expect("locked");
        server.await.expect("server task").expect("served");
        assert!(!socket.exists(), "the socket goes with the agent");
        assert!(call(home.path(), Request::Status).await.is_none(), "no agent any more");
    }

    #[tokio::test]
    async fn it_locks_itself_when_its_lifetime_ends() {
        let home = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate(KeyType::Ed25519);
        let socket = socket_path(home.path());
        let listener = bind(&socket).expect("bind");
        let started = Instant::now();
        serve(listener, &socket, vec![key], Duration::from_millis(200)).await.expect("served");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(!socket.exists());
    }
}
