//! The HTTP client for the daemon's local API.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where a daemon's API is.
#[derive(Clone, Debug)]
pub enum Target {
    /// Its TCP address (loopback clients present a token).
    Tcp(SocketAddr),
    /// Its Unix socket (the file's permissions admit the client; no token).
    Unix(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(addr) => write!(f, "{addr}"),
            Target::Unix(path) => write!(f, "{} (socket)", path.display()),
        }
    }
}

/// Talks to one daemon's local API.
pub struct ApiClient {
    addr: Target,
    http: reqwest::Client,
    /// The local API token (`$DMS_HOME/api.token`), sent as a bearer token.
    token: Option<String>,
}

impl ApiClient {
    /// A client for the daemon at `addr`, presenting `token` when given.
    pub fn new(addr: Target, token: Option<String>) -> anyhow::Result<ApiClient> {
        // The daemon closes a connection idle for `HEADER_TIMEOUT` (5 s): a kept-alive one
        // is reused only while younger than that, so a request sent after a slow step (a
        // key unlocked under load) never lands on a connection the daemon is closing.
        let idle = dms_api::conn::HEADER_TIMEOUT.saturating_sub(std::time::Duration::from_secs(2));
        let mut http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(60))
            .pool_idle_timeout(idle);
        if let Target::Unix(path) = &addr {
            http = http.unix_socket(path.as_path());
        }
        let http = http.build().context("cannot build the HTTP client")?;
        Ok(ApiClient { addr, http, token })
    }

    /// The daemon could not be reached: what to do, then the root cause (the OS error
    /// at the bottom of the chain, e.g. "Permission denied" on a socket of another user).
    fn unreachable(&self, error: &reqwest::Error) -> anyhow::Error {
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        let help = match &self.addr {
            Target::Tcp(_) => {
                "Start it with `dms run`, or point --api-addr / DMS_API_ADDR at \
                               the daemon you mean"
            }
            Target::Unix(_) => {
                "Start it with `dms run`; a socket of another user's daemon \
                                admits only that user or its api.socket_group"
            }
        };
        anyhow!("cannot reach the dms daemon at {}. {help}.\nCause: {cause}", self.addr)
    }

    /// The URL of `path` (over a socket, the host is only a name).
    fn url(&self, path: &str) -> String {
        match &self.addr {
            Target::Tcp(addr) => format!("http://{addr}{path}"),
            Target::Unix(_) => format!("http://localhost{path}"),
        }
    }

    /// Sends a request; errors say whether the daemon was unreachable or refused, and
    /// why. `Ok(None)` is a 404 (when `allow_missing`).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        allow_missing: bool,
    ) -> anyhow::Result<Option<reqwest::Response>> {
        let url = self.url(path);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        if allow_missing && status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let body: Option<dms_api::ErrorBody> = response.json().await.ok();
            let message = body.map(|b| b.message).unwrap_or_else(|| status.to_string());
            return Err(anyhow!("the daemon at {} refused {method} {path}: {message}", self.addr));
        }
        Ok(Some(response))
    }

    /// `GET path`, decoding a JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.json(Method::GET, path).await
    }

    /// `method path` without a body, decoding a JSON answer (a 404 is an error).
    async fn json<T: DeserializeOwned>(&self, method: Method, path: &str) -> anyhow::Result<T> {
        let response = self.send(method, path, None, false).await?.expect("404 is an error here");
        response
            .json()
            .await
            .with_context(|| format!("unexpected answer to {path} from {}", self.addr))
    }

    /// `GET path`, `None` on 404.
    pub async fn get_optional<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        match self.send(Method::GET, path, None, true).await? {
            Some(response) => Ok(Some(
                response.json().await.with_context(|| format!("unexpected answer to {path}"))?,
            )),
            None => Ok(None),
        }
    }

    /// `POST path` without a body, decoding a JSON answer.
    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.json(Method::POST, path).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        let body = serde_json::to_value(body).context("cannot encode the request body")?;
        self.send(Method::PUT, path, Some(body), false).await.map(drop)
    }

    /// `POST path` with a CBOR body (a signed envelope). A refusal by the daemon or by
    /// the actors it relayed to is `Ok(Err(..))`, so that callers can report it typed.
    pub async fn post_cbor(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Result<Vec<u8>, dms_api::ErrorBody>> {
        let url = self.url(path);
        let mut request = self.http.post(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/cbor")
            .body(body)
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let bytes = response.bytes().await.context("the daemon's answer was cut short")?;
        if status.is_success() {
            return Ok(Ok(bytes.to_vec()));
        }
        Ok(Err(serde_json::from_slice(&bytes).unwrap_or_else(|_| dms_api::ErrorBody {
            error: "http".into(),
            message: format!("{status}: {}", String::from_utf8_lossy(&bytes)),
            detail: None,
        })))
    }

    /// `DELETE path`; `false` on 404.
    pub async fn delete(&self, path: &str) -> anyhow::Result<bool> {
        Ok(self.send(Method::DELETE, path, None, true).await?.is_some())
    }
}
