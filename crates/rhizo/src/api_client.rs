//! A small client for the running node's local API.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rhizo_node::{Config, DataDir};
use serde::de::DeserializeOwned;

/// How long the CLI waits for the node's API.
const API_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// Finds the running node of `config`: the address in `<data_dir>/api.addr` (written by
    /// `rhizo run`) or else the configured one, and the token in `<data_dir>/api.token`.
    pub(crate) fn connect(config: &Config) -> anyhow::Result<Self> {
        let dir = DataDir::new(config.data_dir.clone());
        if !dir.is_initialised() {
            return Err(
                rhizo_node::data_dir::DataDirError::NotInitialised(dir.path().into()).into(),
            );
        }
        let addr = dir.read_api_addr().unwrap_or(config.api);
        let token = dir.read_api_token().map_err(|_| {
            anyhow!(
                "the rhizo node is not running for data dir {} (no API token): start it with \
                 `rhizo run`",
                dir.path().display()
            )
        })?;
        let http = reqwest::Client::builder()
            .timeout(API_TIMEOUT)
            .no_proxy()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base: format!("http://{addr}"),
            token,
            http,
        })
    }

    /// Whether a node answers at all.
    pub(crate) async fn is_up(&self) -> bool {
        self.http
            .get(format!("{}/health", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let body = serde_json::to_value(body)?;
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// The raw streaming response of `GET path` (for server-sent events).
    pub(crate) async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the rhizo node at {}: {e}", self.base))?;
        if !response.status().is_success() {
            bail!("the node answered {}", response.status());
        }
        Ok(response)
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "the rhizo node is not running (nothing answers at {}): start it with \
                         `rhizo run`",
                    self.base
                )
            } else {
                anyhow!("request to the rhizo node failed: {e}")
            }
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "the node at {} refused the API token: the token file belongs to another node or \
                 is stale; check --data-dir or restart the node",
                self.base
            );
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<rhizo_node::api::ErrorResponse>(&body)
                .map(|e| e.error)
                .unwrap_or(body);
            // A refused request (4xx) carries a message written for the user; say just that.
            if status.is_client_error() {
                bail!("{message}");
            }
            bail!("the node answered {status}: {message}");
        }
        response
            .json::<T>()
            .await
            .with_context(|| format!("unexpected answer from {url}"))
    }
}
