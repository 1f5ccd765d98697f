//! A small Bot API client.
//!
//! Not a framework: one `call` that posts JSON parameters to `/bot<token>/<method>`, a
//! deadline on every call (docs/reliability.md A3), and errors classified the way the pipeline acts
//! on them — wait (`429 retry_after`), retry (5xx, network, timeout), mark the user blocked
//! (403), give up with the reason (other 4xx). Telegram's descriptions are kept verbatim.
//! The token is part of every URL, so transport errors are stripped of their URL before they
//! can reach a log (docs/reliability.md H1).
//!
//! Where Telegram is blocked, every call and upload goes through `TELEGRAM_PROXY` (HTTP
//! CONNECT or SOCKS5): the client is built once with it, so no call can go around it. A proxy
//! that refuses or hangs is a network error or a timeout like any other, retried by the
//! caller's usual backoff; the error says it was the proxy.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::config::Secret;
use crate::config::env::TelegramProxy;

/// Deadline of an ordinary Bot API call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 429: wait `retry_after` seconds before any further sends.
    #[error("rate limited by Telegram: retry after {retry_after} s")]
    RetryAfter { retry_after: u64 },
    /// 403: the user blocked the bot, was deactivated, or the bot was removed from the chat.
    #[error("forbidden: {description}")]
    Forbidden { description: String },
    /// 409: webhook/getUpdates conflict.
    #[error("conflict: {description}")]
    Conflict { description: String },
    /// 401: the token is wrong. Retrying cannot help.
    #[error("Telegram rejected the bot token ({code} {description}); check BOT_TOKEN")]
    Unauthorized { code: u16, description: String },
    /// Other 4xx: the request itself is wrong; retrying the same request cannot help.
    #[error("bad request: {description}")]
    BadRequest { code: u16, description: String },
    /// 5xx: Telegram's side failed; retry later.
    #[error("Telegram server error {code}: {description}")]
    Server { code: u16, description: String },
    /// No answer within the deadline.
    #[error("Telegram did not answer within {0:?}")]
    Timeout(Duration),
    /// No answer within the deadline through `TELEGRAM_PROXY` (the proxy may be what hangs).
    #[error(
        "no answer within {timeout:?} through TELEGRAM_PROXY {proxy} (check that the proxy runs and lets this host reach Telegram)"
    )]
    ProxyTimeout { timeout: Duration, proxy: String },
    /// Connection-level failure.
    #[error("cannot reach Telegram: {0}")]
    Network(String),
    /// An answer that is not the Bot API's envelope.
    #[error("unexpected answer from Telegram: {0}")]
    InvalidResponse(String),
}

/// What the caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Wait this long, then retry (also pause other sends).
    Wait(Duration),
    /// Retry with backoff.
    Retry,
    /// The recipient blocked the bot; do not retry.
    Blocked,
    /// Do not retry; the reason is in the error.
    Fail,
}

impl ApiError {
    pub fn disposition(&self) -> Disposition {
        match self {
            ApiError::RetryAfter { retry_after } => {
                Disposition::Wait(Duration::from_secs((*retry_after).max(1)))
            }
            ApiError::Forbidden { .. } => Disposition::Blocked,
            ApiError::Server { .. }
            | ApiError::Timeout(_)
            | ApiError::ProxyTimeout { .. }
            | ApiError::Network(_) => Disposition::Retry,
            ApiError::InvalidResponse(_) => Disposition::Retry,
            ApiError::Conflict { .. } => Disposition::Retry,
            ApiError::Unauthorized { .. } | ApiError::BadRequest { .. } => Disposition::Fail,
        }
    }

    /// Telegram's own description, where there is one.
    pub fn description(&self) -> &str {
        match self {
            ApiError::Forbidden { description }
            | ApiError::Conflict { description }
            | ApiError::Unauthorized { description, .. }
            | ApiError::BadRequest { description, .. }
            | ApiError::Server { description, .. } => description,
            _ => "",
        }
    }

    /// "message is not modified": an edit that would change nothing (harmless).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, ApiError::BadRequest { description, .. } if description.contains("message is not modified"))
    }

    /// The message to edit is gone or cannot be edited: send a new one instead.
    pub fn is_uneditable(&self) -> bool {
        matches!(self, ApiError::BadRequest { description, .. }
            if description.contains("message to edit not found")
                || description.contains("message can't be edited")
                || description.contains("there is no text in the message to edit")
                || description.contains("message to delete not found"))
    }

    /// A callback or pre-checkout query that can no longer be answered.
    pub fn is_stale_query(&self) -> bool {
        // Telegram says "query ID is invalid"; match case-insensitively as teloxide does not.
        matches!(self, ApiError::BadRequest { description, .. }
            if description.to_ascii_lowercase().contains("query is too old"))
    }

    /// HTTP status of the answer, if there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ApiError::RetryAfter { .. } => Some(429),
            ApiError::Forbidden { .. } => Some(403),
            ApiError::Conflict { .. } => Some(409),
            ApiError::Unauthorized { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A Bot API endpoint for one bot.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    /// `<api>/bot<token>/` — secret because it carries the token.
    base: Secret<Url>,
    timeout: Duration,
    /// The proxy's printable URL, named in transport errors.
    via: Option<String>,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(serde::Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

impl BotApi {
    /// `api_url` is the Bot API base (e.g. `https://api.telegram.org`), `token` the bot's.
    pub fn new(api_url: &Url, token: &Secret<String>) -> Result<BotApi, String> {
        Self::with_proxy(api_url, token, None)
    }

    /// [`BotApi::new`] whose every call goes through `proxy` when there is one.
    pub fn with_proxy(
        api_url: &Url,
        token: &Secret<String>,
        proxy: Option<&TelegramProxy>,
    ) -> Result<BotApi, String> {
        let mut base = api_url.clone();
        // Always end the path with exactly one slash before appending `bot<token>/`.
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&format!("{path}/bot{}/", token.expose()));
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        if let Some(proxy) = proxy {
            // The URL carries the credentials (basic auth for HTTP, user/password for SOCKS5).
            let p = reqwest::Proxy::all(proxy.expose().as_str()).map_err(|e| {
                format!(
                    "TELEGRAM_PROXY {} cannot be used: {}",
                    proxy.redacted(),
                    e.without_url()
                )
            })?;
            builder = builder.proxy(p);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))?;
        Ok(BotApi {
            http,
            base: Secret::new(base),
            timeout: CALL_TIMEOUT,
            via: proxy.map(TelegramProxy::redacted),
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn method_url(&self, method: &str) -> Result<Url, ApiError> {
        self.base
            .expose()
            .join(method)
            .map_err(|_| ApiError::InvalidResponse(format!("bad method name {method:?}")))
    }

    /// Calls `method` with JSON parameters and decodes `result`.
    pub async fn call<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ApiError> {
        self.call_with_timeout(method, params, self.timeout).await
    }

    /// [`BotApi::call`] with an explicit deadline (long polling needs more than the default).
    pub async fn call_with_timeout<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
        timeout: Duration,
    ) -> Result<R, ApiError> {
        let url = self.method_url(method)?;
        let request = self.http.post(url).json(params).timeout(timeout);
        let value = self.send(request, timeout).await?;
        serde_json::from_value(value)
            .map_err(|e| ApiError::InvalidResponse(format!("{method} result: {e}")))
    }

    /// Calls `method` with parameters that are already JSON text (outbox rows).
    pub async fn call_json(&self, method: &str, params_json: &str) -> Result<Value, ApiError> {
        let url = self.method_url(method)?;
        let request = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(params_json.to_owned())
            .timeout(self.timeout);
        self.send(request, self.timeout).await
    }

    /// Sends a photo given as bytes (multipart), e.g. a QR code, with JSON-encoded fields.
    pub async fn send_photo_bytes(
        &self,
        fields: &serde_json::Map<String, Value>,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, ApiError> {
        let url = self.method_url("sendPhoto")?;
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            form = form.text(k.clone(), text);
        }
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str("image/png")
            .map_err(|e| ApiError::InvalidResponse(e.without_url().to_string()))?;
        form = form.part("photo", part);
        let request = self.http.post(url).multipart(form).timeout(self.timeout);
        self.send(request, self.timeout).await
    }

    /// Classifies a transport failure; with a proxy, a failure to get through it names it.
    fn transport(&self, e: reqwest::Error, timeout: Duration) -> ApiError {
        // `without_url`: the URL carries the bot token.
        match &self.via {
            Some(via) if e.is_connect() => ApiError::Network(format!(
                "cannot get through TELEGRAM_PROXY {via} (check that the proxy runs and lets this host reach Telegram): {}",
                error_chain(&e.without_url())
            )),
            Some(via) if e.is_timeout() => ApiError::ProxyTimeout {
                timeout,
                proxy: via.clone(),
            },
            _ if e.is_timeout() => ApiError::Timeout(timeout),
            Some(via) => ApiError::Network(format!(
                "through TELEGRAM_PROXY {via}: {}",
                error_chain(&e.without_url())
            )),
            None => ApiError::Network(e.without_url().to_string()),
        }
    }

    /// Sends a file as a document (multipart), e.g. a database backup. Uses the call deadline
    /// given, since an upload takes longer than an ordinary call.
    pub async fn send_document_bytes(
        &self,
        chat_id: i64,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
        caption: &str,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let url = self.method_url("sendDocument")?;
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(mime)
            .map_err(|e| ApiError::InvalidResponse(e.without_url().to_string()))?;
        let form = reqwest::multipart::Form::new()
            .text("chat_id", chat_id.to_string())
            .text("caption", caption.to_owned())
            .part("document", part);
        let request = self.http.post(url).multipart(form).timeout(timeout);
        self.send(request, timeout).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let response = request
            .send()
            .await
            .map_err(|e| self.transport(e, timeout))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport(e, timeout))?;
        let envelope: Envelope = serde_json::from_slice(&body).map_err(|_| {
            let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            if status >= 500 {
                return ApiError::Server {
                    code: status,
                    description: snippet,
                };
            }
            ApiError::InvalidResponse(format!("HTTP {status}: {snippet}"))
        })?;
        if envelope.ok {
            return Ok(envelope.result.unwrap_or(Value::Null));
        }
        let code = envelope.error_code.unwrap_or(status);
        let description = envelope.description.unwrap_or_default();
        let retry_after = envelope.parameters.and_then(|p| p.retry_after);
        Err(if code == 429 || retry_after.is_some() {
            ApiError::RetryAfter {
                retry_after: retry_after.unwrap_or(1),
            }
        } else {
            match code {
                401 => ApiError::Unauthorized { code, description },
                403 => ApiError::Forbidden { description },
                409 => ApiError::Conflict { description },
                c if c >= 500 => ApiError::Server { code, description },
                _ => ApiError::BadRequest { code, description },
            }
        })
    }
}

/// An error with its sources, `a: b: c` (reqwest's own text says only "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_follow_telegram_semantics() {
        let bad = |d: &str| ApiError::BadRequest {
            code: 400,
            description: d.to_owned(),
        };
        assert_eq!(
            ApiError::RetryAfter { retry_after: 7 }.disposition(),
            Disposition::Wait(Duration::from_secs(7))
        );
        assert_eq!(
            ApiError::Forbidden {
                description: "Forbidden: bot was blocked by the user".into()
            }
            .disposition(),
            Disposition::Blocked
        );
        assert_eq!(
            ApiError::Server {
                code: 502,
                description: String::new()
            }
            .disposition(),
            Disposition::Retry
        );
        assert_eq!(
            bad("Bad Request: chat not found").disposition(),
            Disposition::Fail
        );
        assert!(bad("Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message").is_not_modified());
        assert!(
            bad(
                "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
            .is_stale_query()
        );
        assert!(bad("Bad Request: message to edit not found").is_uneditable());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let api = BotApi::new(
            &Url::parse("https://api.telegram.org").unwrap(),
            &Secret::new("123:SECRETSECRET".to_owned()),
        )
        .unwrap();
        assert!(!format!("{api:?}").contains("SECRETSECRET"));
        assert_eq!(
            api.method_url("getMe").unwrap().as_str(),
            "https://api.telegram.org/bot123:SECRETSECRET/getMe"
        );
        let prefixed = BotApi::new(
            &Url::parse("http://127.0.0.1:9/tg/").unwrap(),
            &Secret::new("1:x".to_owned()),
        )
        .unwrap();
        assert_eq!(
            prefixed.method_url("getMe").unwrap().as_str(),
            "http://127.0.0.1:9/tg/bot1:x/getMe"
        );
    }
}
