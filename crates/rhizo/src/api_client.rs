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
    /// Finds the running node of `config`: the address in `<data_dir>/api.addr`, written by
    /// the node that holds the data dir's lock, and the token in `<data_dir>/api.token`.
    ///
    /// The token goes only to that address, never to the configured or default `api` port:
    /// with no node running, whatever listens there (any local process) would receive it. No
    /// address file, or one left by a node that died: a "not running" error, nothing is sent.
    pub(crate) fn connect(config: &Config) -> anyhow::Result<Self> {
        let dir = DataDir::new(config.data_dir.clone());
        if !dir.is_initialised() {
            return Err(
                rhizo_node::data_dir::DataDirError::NotInitialised(dir.path().into()).into(),
            );
        }
        let addr = dir.running_api_addr()?;
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
            .get(format!("{}/v1/health", self.base))
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A fake "node" on another port: records every byte it is sent and answers `{}`.
    async fn fake_listener() -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                          content-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            }
        });
        (addr, received)
    }

    /// Connects as the CLI does and makes one authenticated request.
    async fn cli_request(config: &Config) -> anyhow::Result<serde_json::Value> {
        ApiClient::connect(config)?.get("/v1/stats").await
    }

    #[tokio::test]
    async fn the_token_never_goes_to_a_port_no_running_node_wrote() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        dir.init(1_700_000_000).unwrap();
        let token = dir.load_or_create_api_token().unwrap();
        let (fake, received) = fake_listener().await;
        let mut config = Config::resolve(std::iter::empty()).unwrap();
        config.data_dir = tmp.path().into();
        // The configured API port is the fake listener's; no node is running.
        config.api = fake;
        let err = cli_request(&config).await.unwrap_err();
        assert!(format!("{err:#}").contains("not running"), "{err:#}");

        // An api.addr left behind by a node that was killed, naming the fake listener's port.
        dir.write_api_addr(fake).unwrap();
        let err = cli_request(&config).await.unwrap_err();
        assert!(format!("{err:#}").contains("not running"), "{err:#}");
        let seen = received.lock().unwrap().clone();
        assert!(
            !String::from_utf8_lossy(&seen).contains(&token),
            "the token reached a listener no running node wrote"
        );
        assert!(seen.is_empty(), "no request at all");

        // The node that holds the data dir's lock wrote the address: that one gets it.
        let _lock = dir.lock().unwrap();
        cli_request(&config).await.unwrap();
        let seen = received.lock().unwrap().clone();
        assert!(String::from_utf8_lossy(&seen).contains(&token));
    }
}
