//! A small client for the running node's local API.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rhizo_node::{Config, DataDir, events::ApiEvent};
use serde::de::DeserializeOwned;

/// How long the CLI waits for the node's API.
const API_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
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

    /// The API's base URL (`http://ADDR`).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The same client, waiting up to `timeout` for each answer (for a route that itself waits
    /// longer than the usual bound, e.g. `agents ask`).
    pub(crate) fn waiting(mut self, timeout: Duration) -> anyhow::Result<Self> {
        self.http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(self)
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

    /// `PATCH path` with a JSON body.
    pub(crate) async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let body = serde_json::to_value(body)?;
        self.request(reqwest::Method::PATCH, path, Some(body)).await
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

    /// `POST path` whose answer may be `204 No Content` (then `None`).
    pub(crate) async fn post_opt<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<Option<T>> {
        let body = serde_json::to_value(body)?;
        let response = self.send(reqwest::Method::POST, path, Some(body)).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Self::decode(response, path).await.map(Some)
    }

    /// The event stream (`GET /v1/events{query}`), decoded.
    pub(crate) async fn events(&self, query: &str) -> anyhow::Result<EventStream> {
        Ok(EventStream::new(
            self.stream(&format!("/v1/events{query}")).await?,
        ))
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let response = self.send(method, path, body).await?;
        Self::decode(response, path).await
    }

    async fn decode<T: DeserializeOwned>(
        response: reqwest::Response,
        path: &str,
    ) -> anyhow::Result<T> {
        // An empty success (204) reads as JSON `null`, so `()`/`Value`/`Option` targets work.
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return serde_json::from_value(serde_json::Value::Null)
                .with_context(|| format!("the node answered {path} with no content"));
        }
        response
            .json::<T>()
            .await
            .with_context(|| format!("unexpected answer from {path}"))
    }

    /// Sends a request; a refused one becomes an [`ApiError`] (status, code and message).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<reqwest::Response> {
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
            let (message, code) =
                match serde_json::from_str::<rhizo_node::api::ErrorResponse>(&body) {
                    Ok(e) => (e.error, Some(e.code)),
                    Err(_) => (body, None),
                };
            return Err(ApiError {
                status: status.as_u16(),
                code,
                message,
            }
            .into());
        }
        Ok(response)
    }
}

/// A request the node refused: its HTTP status, its stable code (`NO_CARD`, `UNKNOWN_TASK`, …)
/// and its message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: Option<String>,
    pub(crate) message: String,
}

impl ApiError {
    /// Whether `err` is a refusal with this code.
    pub(crate) fn has_code(err: &anyhow::Error, code: &str) -> bool {
        err.downcast_ref::<Self>()
            .is_some_and(|e| e.code.as_deref() == Some(code))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A refused request (4xx) carries a message written for the user; say just that.
        if (400..500).contains(&self.status) {
            f.write_str(&self.message)
        } else {
            write!(f, "the node answered {}: {}", self.status, self.message)
        }
    }
}

impl std::error::Error for ApiError {}

/// Most bytes of one event frame kept while it is incomplete: a malformed stream must not grow
/// memory.
const MAX_EVENT_FRAME_BYTES: usize = 1 << 20;

/// What the event stream delivers.
#[derive(Debug)]
pub(crate) enum StreamItem {
    /// An event.
    Event(Box<ApiEvent>),
    /// Events were dropped because we read too slowly: re-read the state.
    Lagged,
}

/// The node's server-sent events, decoded; event types this build does not know are skipped.
#[derive(Debug)]
pub(crate) struct EventStream {
    response: reqwest::Response,
    buffer: String,
    ready: std::collections::VecDeque<StreamItem>,
}

impl EventStream {
    fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
            ready: std::collections::VecDeque::new(),
        }
    }

    /// The next item; `None` when the node closed the stream.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<StreamItem>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(Some(item));
            }
            let Some(bytes) = self.response.chunk().await.context("event stream")? else {
                return Ok(None);
            };
            self.buffer.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(item) = parse_frame(&frame) {
                    self.ready.push_back(item);
                }
            }
            if self.buffer.len() > MAX_EVENT_FRAME_BYTES {
                self.buffer.clear();
                self.ready.push_back(StreamItem::Lagged);
            }
        }
    }
}

/// One SSE frame: `event: lagged` or `data: {json}` lines.
fn parse_frame(frame: &str) -> Option<StreamItem> {
    if frame.lines().any(|l| l.trim() == "event: lagged") {
        return Some(StreamItem::Lagged);
    }
    let data: String = frame
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str::<ApiEvent>(&data)
        .ok()
        .map(|e| StreamItem::Event(Box::new(e)))
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

#[cfg(test)]
mod frame_tests {
    use super::*;

    #[test]
    fn frames_decode_to_events_lagged_or_nothing() {
        let frame = "data: {\"type\":\"agent_liveness\",\"uid\":\"u\",\"liveness\":\"late\"}\n\n";
        let Some(StreamItem::Event(event)) = parse_frame(frame) else {
            panic!("no event");
        };
        assert!(matches!(*event, ApiEvent::AgentLiveness { .. }));
        assert!(matches!(
            parse_frame("event: lagged\ndata: 3 events were dropped\n\n"),
            Some(StreamItem::Lagged)
        ));
        assert!(parse_frame("data: {\"type\":\"from_the_future\"}\n\n").is_none());
        assert!(parse_frame(": keep-alive\n\n").is_none());
    }
}
