//! The HTTP client for the daemon's local API.

use std::net::SocketAddr;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Talks to one daemon's local API.
pub struct ApiClient {
    addr: SocketAddr,
    http: reqwest::Client,
    /// The local API token (`$DMS_HOME/api.token`), sent as a bearer token.
    token: Option<String>,
}

impl ApiClient {
    /// A client for the daemon at `addr`, presenting `token` when given.
    pub fn new(addr: SocketAddr, token: Option<String>) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(ApiClient { addr, http, token })
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
        let url = format!("http://{}{path}", self.addr);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|error| {
            let why =
                if error.is_connect() { "nothing answers there" } else { "the request failed" };
            anyhow!(
                "cannot reach the dms daemon at {}: {why} ({error}). Start it with `dms run`, \
                 or point --api-addr / DMS_API_ADDR at the daemon you mean",
                self.addr
            )
        })?;
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
        let response =
            self.send(Method::GET, path, None, false).await?.expect("404 is an error here");
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
        let url = format!("http://{}{path}", self.addr);
        let mut request = self.http.post(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/cbor")
            .body(body)
            .send()
            .await
            .map_err(|error| {
                anyhow!(
                    "cannot reach the dms daemon at {}: {error}. Start it with `dms run`, or \
                     point --api-addr / DMS_API_ADDR at the daemon you mean",
                    self.addr
                )
            })?;
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
