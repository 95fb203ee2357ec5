//! The HTTP client for the daemon's local API.

use std::net::SocketAddr;

use anyhow::{Context, anyhow};
use serde::de::DeserializeOwned;

/// Talks to one daemon's local API.
pub struct ApiClient {
    addr: SocketAddr,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for the daemon at `addr`.
    pub fn new(addr: SocketAddr) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(ApiClient { addr, http })
    }

    /// `GET path`, decoding a JSON answer; errors say whether the daemon was unreachable
    /// or refused, and why.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("http://{}{path}", self.addr);
        let response = self.http.get(&url).send().await.map_err(|error| {
            let why =
                if error.is_connect() { "nothing answers there" } else { "the request failed" };
            anyhow!(
                "cannot reach the dms daemon at {}: {why} ({error}). Start it with `dms run`, \
                 or point --api-addr / DMS_API_ADDR at the daemon you mean",
                self.addr
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            let body: Option<dms_api::ErrorBody> = response.json().await.ok();
            let message = body.map(|b| b.message).unwrap_or_else(|| status.to_string());
            return Err(anyhow!("the daemon at {} refused {path}: {message}", self.addr));
        }
        response
            .json()
            .await
            .with_context(|| format!("unexpected answer to {path} from {}", self.addr))
    }
}
