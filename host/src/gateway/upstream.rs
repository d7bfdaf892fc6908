//! Where the model calls go: an OpenAI-compatible server, or the embedded mock model.
//!
//! The client's own headers are never forwarded: the gateway sends the (checked,
//! possibly redacted) body with the upstream's key from the environment.

use std::time::Duration;

use eventsource_stream::Eventsource as _;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde_json::Value;

use super::error::ApiError;
use super::mock::MockModel;
use super::settings::GatewaySection;

/// A stream of `chat.completion.chunk` objects.
pub type Chunks = BoxStream<'static, Result<Value, UpstreamError>>;

/// The model server.
pub enum Upstream {
    /// The embedded mock model.
    Mock(MockModel),
    /// An OpenAI-compatible server.
    Http(HttpUpstream),
}

/// An OpenAI-compatible server.
pub struct HttpUpstream {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
}

/// Why a model call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection.
    #[error("the upstream is unreachable: {0}")]
    Unreachable(String),
    /// No (complete) answer in time.
    #[error("the upstream did not answer within {0} ms")]
    Timeout(u64),
    /// An HTTP error status, with the upstream's error body.
    #[error("the upstream answered HTTP {status}")]
    Status {
        /// The status.
        status: u16,
        /// Its body (JSON, or the text as a string).
        body: Value,
    },
    /// An answer that is not a Chat Completions response.
    #[error("the upstream's answer is not valid: {0}")]
    Malformed(String),
}

impl UpstreamError {
    /// What a failed call is charged against a budget: nothing when the upstream
    /// refused the request, the prompt when it may have processed it.
    pub fn tokens_spent(&self, prompt_tokens: u64) -> u64 {
        match self {
            UpstreamError::Unreachable(_) => 0,
            UpstreamError::Status { status, .. } if (400..500).contains(status) => 0,
            _ => prompt_tokens,
        }
    }

    /// The answer the client gets. An upstream 4xx (the request was not acceptable to
    /// the model server) is passed through with its error object; anything else is
    /// a 502 or 504.
    pub fn to_api(&self) -> ApiError {
        match self {
            UpstreamError::Timeout(_) => ApiError::timeout(self.to_string()),
            UpstreamError::Status { status, body } if (400..500).contains(status) => {
                let mut e = ApiError::bad_gateway(self.to_string());
                e.status = axum::http::StatusCode::from_u16(*status)
                    .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
                e.kind = "upstream_error";
                e.code = "upstream_refused";
                if let Some(message) = body["error"]["message"].as_str() {
                    e.message = format!("the upstream refused the request: {message}");
                }
                e
            }
            _ => ApiError::bad_gateway(self.to_string()),
        }
    }
}

impl Upstream {
    /// The upstream `[gateway]` describes (the mock when none is configured). The
    /// upstream key must be present in the environment variable named.
    pub fn from_settings(gateway: &GatewaySection) -> Result<Upstream, String> {
        let Some(u) = &gateway.upstream else {
            return Ok(Upstream::Mock(MockModel::new(gateway.mock.clone())));
        };
        let api_key = match &u.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!("gateway.upstream.api_key_env: the environment variable {var} is not set")
            })?),
            None => None,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(u.connect_timeout_ms))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Upstream::Http(HttpUpstream {
            client,
            base_url: u.base_url.trim_end_matches('/').to_string(),
            api_key,
            timeout: Duration::from_millis(u.timeout_ms),
        }))
    }

    /// A complete response to `body`; `traceparent` goes with the call.
    pub async fn complete(&self, body: &Value, traceparent: &str) -> Result<Value, UpstreamError> {
        match self {
            Upstream::Mock(m) => Ok(m.complete(body)),
            Upstream::Http(h) => {
                let t = h.timeout;
                let call = async {
                    let response = h.post(body, traceparent).await?;
                    response
                        .json::<Value>()
                        .await
                        .map_err(|e| UpstreamError::Malformed(e.to_string()))
                };
                tokio::time::timeout(t, call)
                    .await
                    .map_err(|_| UpstreamError::Timeout(t.as_millis() as u64))?
            }
        }
    }

    /// A streamed response to `body` (which asks for `stream: true`); `traceparent`
    /// goes with the call. Dropping the stream cancels the upstream request.
    pub async fn stream(&self, body: &Value, traceparent: &str) -> Result<Chunks, UpstreamError> {
        match self {
            Upstream::Mock(m) => {
                Ok(futures::stream::iter(m.chunks(body).into_iter().map(Ok)).boxed())
            }
            Upstream::Http(h) => {
                let t = h.timeout;
                let millis = t.as_millis() as u64;
                let response = tokio::time::timeout(t, h.post(body, traceparent))
                    .await
                    .map_err(|_| UpstreamError::Timeout(millis))??;
                let events = response.bytes_stream().eventsource();
                // The same timeout applies to the wait for each event.
                let chunks = futures::stream::unfold(Some(events), move |events| async move {
                    let mut events = events?;
                    let next = match tokio::time::timeout(t, events.next()).await {
                        Err(_) => Some(Err(UpstreamError::Timeout(millis))),
                        Ok(None) => None,
                        Ok(Some(Err(e))) => Some(Err(UpstreamError::Malformed(e.to_string()))),
                        Ok(Some(Ok(event))) if event.data.trim() == "[DONE]" => None,
                        Ok(Some(Ok(event))) => Some(parse_chunk(&event.data)),
                    };
                    let failed = matches!(next, Some(Err(_)));
                    next.map(|item| (item, (!failed).then_some(events)))
                });
                Ok(chunks.boxed())
            }
        }
    }

    /// `GET /models`.
    pub async fn models(&self) -> Result<Value, UpstreamError> {
        match self {
            Upstream::Mock(m) => Ok(m.models()),
            Upstream::Http(h) => {
                let mut request = h.client.get(format!("{}/models", h.base_url));
                if let Some(key) = &h.api_key {
                    request = request.bearer_auth(key);
                }
                let call = async {
                    let response = check_status(request.send().await.map_err(classify)?).await?;
                    response
                        .json::<Value>()
                        .await
                        .map_err(|e| UpstreamError::Malformed(e.to_string()))
                };
                tokio::time::timeout(h.timeout, call)
                    .await
                    .map_err(|_| UpstreamError::Timeout(h.timeout.as_millis() as u64))?
            }
        }
    }
}

impl HttpUpstream {
    async fn post(
        &self,
        body: &Value,
        traceparent: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut request = self
            .client
            .post(format!("{}/chat/completions", self.base_url))
            .header("traceparent", traceparent)
            .json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        check_status(request.send().await.map_err(classify)?).await
    }
}

fn parse_chunk(data: &str) -> Result<Value, UpstreamError> {
    let chunk: Value = serde_json::from_str(data)
        .map_err(|e| UpstreamError::Malformed(format!("stream event: {e}")))?;
    if chunk.get("error").is_some() {
        return Err(UpstreamError::Status {
            status: 502,
            body: chunk,
        });
    }
    Ok(chunk)
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, UpstreamError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Err(UpstreamError::Status {
        status: status.as_u16(),
        body,
    })
}

/// A failed send: no connection (refused, DNS, TLS, connect timeout).
fn classify(e: reqwest::Error) -> UpstreamError {
    UpstreamError::Unreachable(e.to_string())
}
