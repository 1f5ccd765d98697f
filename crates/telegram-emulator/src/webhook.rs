//! Webhooks: `setWebhook` / `deleteWebhook` / `getWebhookInfo` and the delivery engine.
//!
//! Why this exists: webhook delivery is where a bot loses or doubles updates. The engine follows
//! TBA's `WebhookActor`:
//! - updates are POSTed as JSON with `X-Telegram-Bot-Api-Secret-Token` when a secret is set;
//! - they are grouped into FIFO queues (chat id for messages; user id plus a type offset for
//!   callback and pre-checkout queries) and each queue has **one update in flight**; different
//!   queues run in parallel up to `max_connections`; only the oldest `2 × max_connections`
//!   pending updates are considered at a time;
//! - success is a 2xx answer; anything else, a connection error or no complete answer within the
//!   response timeout is a failure, recorded in `last_error_date` / `last_error_message`;
//! - retries: the first is immediate, then the delay doubles from 2 s, capped at a random value in
//!   `[60, 120]` s (configurable, so tests can make it deterministic); a `Retry-After` header of
//!   the answer replaces the delay (up to 3600 s); an update is dropped when the next attempt would
//!   fall after its lifetime;
//! - a 2xx answer whose body carries `{"method": …}` is executed as a Bot API call.
//!
//! Delays run on emulated time, so a test advances the clock instead of waiting. The emulator
//! behaves like a `--local` Bot API server regarding URLs: `http://` URLs and any port are
//! accepted. It has no TLS client, so `https://` URLs are accepted but deliveries to them fail
//! (with a `last_error_message` saying so).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method as HttpMethod, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::counters::bump;
use crate::error::{ApiError, text};
use crate::params::Params;
use crate::state::{BotState, lock};
use crate::updates::{allowed_mask, default_allowed_mask, mask_names};

/// The HTTP client used for deliveries (keep-alive connection pool).
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client suitable for webhook delivery.
pub fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// A registered webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The URL as given.
    pub url: String,
    /// The URL to POST to (`None` for https URLs, which the emulator cannot reach).
    pub target: Option<Uri>,
    /// `Authorization: Basic …` value when the URL has user info.
    pub authorization: Option<String>,
    /// The secret token header value (empty: no header).
    pub secret_token: String,
    /// Parallel deliveries.
    pub max_connections: u32,
    /// `ip_address` as given (empty: resolved from the URL).
    pub ip_address: String,
    /// The address shown in getWebhookInfo.
    pub resolved_ip: String,
}

fn parse_webhook_url(url: &str) -> Option<(Option<Uri>, Option<String>, String)> {
    // TBA parses with https as the default protocol.
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("https".to_owned(), url),
    };
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    if host_port.is_empty() || host_port.chars().any(|c| c.is_whitespace() || c == '%') {
        return None;
    }
    let path = path.split('#').next().unwrap_or("");
    let path = if path.is_empty() || path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let uri: Uri = format!("http://{host_port}{path}").parse().ok()?;
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let resolved_ip = if host.parse::<std::net::IpAddr>().is_ok() {
        host
    } else if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1".to_owned()
    } else {
        // The emulator resolves nothing; a host name is shown as loopback.
        "127.0.0.1".to_owned()
    };
    let target = (scheme == "http").then_some(uri);
    Some((target, userinfo.map(base64), resolved_ip))
}

fn base64(input: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The result of setWebhook / deleteWebhook: `true` plus a description.
pub struct WebhookAnswer {
    /// "Webhook was set", "Webhook is already set", …
    pub description: &'static str,
}

/// `setWebhook` (and `deleteWebhook` when `delete` is true), following TBA's
/// `process_set_webhook_query` / `do_set_webhook`.
pub fn set_webhook(
    bot: &BotState,
    params: &Params,
    delete: bool,
) -> Result<WebhookAnswer, ApiError> {
    let config = &bot.shared.config;
    let new_url = if delete { "" } else { params.arg("url") };
    let drop_pending = params.bool_arg("drop_pending_updates");
    let mut updates = lock(&bot.updates);
    if !new_url.is_empty() && config.rate_limits.set_webhook_once_per_sec {
        let now = std::time::Instant::now();
        if let Some(last) = updates.last_set_webhook
            && now.saturating_duration_since(last) < Duration::from_secs(1)
        {
            return Err(ApiError::too_many_requests(1));
        }
        updates.last_set_webhook = Some(now);
    }
    let new_max_connections = if new_url.is_empty() {
        0
    } else {
        u32::try_from(params.int_arg(
            "max_connections",
            i64::from(config.webhook.default_max_connections),
            1,
            100,
        ))
        .unwrap_or(40)
    };
    let new_secret = if new_url.is_empty() {
        ""
    } else {
        params.arg("secret_token")
    };
    let new_ip = if new_url.is_empty() {
        ""
    } else {
        params.arg("ip_address")
    };
    let same = match &updates.webhook {
        None => new_url.is_empty(),
        Some(current) => {
            current.url == new_url
                && current.max_connections == new_max_connections
                && current.secret_token == new_secret
                && current.ip_address == new_ip
        }
    };
    if same && !drop_pending {
        if !new_url.is_empty() {
            let mask = allowed_mask(params.arg("allowed_updates"));
            if mask != 0 {
                updates.allowed_mask = mask;
            }
        }
        return Ok(WebhookAnswer {
            description: if new_url.is_empty() {
                "Webhook is already deleted"
            } else {
                "Webhook is already set"
            },
        });
    }
    if !new_url.is_empty() {
        updates.abort_long_poll(text::CONFLICT_SET_WEBHOOK);
    }
    let had_webhook = updates.webhook.is_some();
    if drop_pending {
        updates.drop_all(&bot.counters);
    }
    if new_url.is_empty() {
        updates.webhook = None;
        updates.webhook_generation += 1;
        updates.last_error = None;
        return Ok(WebhookAnswer {
            description: if had_webhook {
                "Webhook was deleted"
            } else {
                "Webhook is already deleted"
            },
        });
    }
    let Some((target, authorization, resolved_ip)) = parse_webhook_url(new_url) else {
        updates.webhook = None;
        return Err(ApiError::bad_request("invalid webhook URL specified"));
    };
    if new_secret.len() > 256 {
        updates.webhook = None;
        return Err(ApiError::bad_request("secret token is too long"));
    }
    if !new_secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        updates.webhook = None;
        return Err(ApiError::bad_request(
            "secret token contains unallowed characters",
        ));
    }
    let mask = allowed_mask(params.arg("allowed_updates"));
    if mask != 0 {
        updates.allowed_mask = mask;
    }
    updates.webhook = Some(WebhookSettings {
        url: new_url.to_owned(),
        target,
        authorization,
        secret_token: new_secret.to_owned(),
        max_connections: new_max_connections,
        ip_address: new_ip.to_owned(),
        resolved_ip: if new_ip.is_empty() {
            resolved_ip
        } else {
            new_ip.to_owned()
        },
    });
    updates.webhook_generation += 1;
    updates.last_error = None;
    // A new delivery actor starts from scratch: every pending update is due now.
    let now = bot.shared.clock.now_ms();
    for update in updates.queue.values_mut() {
        update.fail_count = 0;
        update.delay_secs = 1;
        update.wakeup_at_ms = now;
    }
    drop(updates);
    bot.webhook_kick.notify_one();
    Ok(WebhookAnswer {
        description: "Webhook was set",
    })
}

/// `getWebhookInfo` (TBA `JsonWebhookInfo`).
pub fn webhook_info(bot: &BotState) -> serde_json::Value {
    let mut updates = lock(&bot.updates);
    updates.purge_expired(bot.shared.clock.now_ms(), &bot.counters);
    let mut info = json!({
        "url": updates.webhook.as_ref().map_or("", |w| w.url.as_str()),
        "has_custom_certificate": false,
        "pending_update_count": updates.pending_count(),
    });
    if let Some((date, message)) = &updates.last_error {
        info["last_error_date"] = json!(date);
        info["last_error_message"] = json!(message);
    }
    if let Some(webhook) = &updates.webhook {
        info["max_connections"] = json!(webhook.max_connections);
        info["ip_address"] = json!(webhook.resolved_ip);
    }
    if updates.allowed_mask != default_allowed_mask() {
        info["allowed_updates"] = json!(mask_names(updates.allowed_mask));
    }
    info
}

/// A delivery that was started.
struct Delivery {
    update_id: i64,
    body: String,
    retry: bool,
}

/// Runs the webhook engine of one bot until shutdown.
pub async fn run_engine(bot: Arc<BotState>, client: HttpClient) {
    let mut clock = bot.shared.clock.subscribe();
    let mut shutdown = bot.shared.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next_wakeup = schedule(&bot, &client);
        let sleep = next_wakeup.map_or(Duration::from_secs(3600), |at| {
            bot.shared
                .clock
                .real_duration_until(at)
                .max(Duration::from_millis(1))
        });
        tokio::select! {
            () = bot.webhook_kick.notified() => {}
            _ = clock.changed() => {}
            () = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Starts every delivery that is due; returns the earliest future wake-up (emulated ms).
fn schedule(bot: &Arc<BotState>, client: &HttpClient) -> Option<i64> {
    let now = bot.shared.clock.now_ms();
    let mut started = Vec::new();
    let mut next_wakeup: Option<i64> = None;
    let settings = {
        let mut guard = lock(&bot.updates);
        let updates = &mut *guard;
        let settings = updates.webhook.clone()?;
        let generation = updates.webhook_generation;
        updates.purge_expired(now, &bot.counters);
        let loaded = usize::try_from(settings.max_connections * 2).unwrap_or(200);
        let mut seen_queues = HashSet::with_capacity(loaded);
        let mut in_flight = updates.in_flight;
        for update in updates.queue.values_mut().take(loaded) {
            if !seen_queues.insert(update.queue_id) || update.in_flight {
                continue;
            }
            if update.wakeup_at_ms > now {
                next_wakeup =
                    Some(next_wakeup.map_or(update.wakeup_at_ms, |n| n.min(update.wakeup_at_ms)));
                continue;
            }
            if in_flight >= settings.max_connections {
                continue;
            }
            update.in_flight = true;
            in_flight += 1;
            started.push(Delivery {
                update_id: update.id,
                body: update.json(),
                retry: update.fail_count > 0,
            });
        }
        updates.in_flight = in_flight;
        (settings, generation)
    };
    let (settings, generation) = settings;
    let settings = Arc::new(settings);
    for delivery in started {
        let bot = bot.clone();
        let client = client.clone();
        let settings = settings.clone();
        tokio::spawn(async move { deliver(bot, client, settings, generation, delivery).await });
    }
    next_wakeup
}

/// The outcome of one POST.
enum Outcome {
    Ok(Bytes),
    Failed { message: String, retry_after: u32 },
}

async fn post(
    bot: &BotState,
    client: &HttpClient,
    settings: &WebhookSettings,
    body: String,
) -> Outcome {
    if bot.webhook_unreachable.load(Ordering::Relaxed) {
        return Outcome::Failed {
            message: "Connection refused".to_owned(),
            retry_after: 0,
        };
    }
    let Some(target) = &settings.target else {
        return Outcome::Failed {
            message: "The emulator can't deliver to HTTPS URLs; use an http:// webhook URL"
                .to_owned(),
            retry_after: 0,
        };
    };
    let mut request = Request::builder()
        .method(HttpMethod::POST)
        .uri(target.clone())
        .header(header::CONTENT_TYPE, "application/json");
    if !settings.secret_token.is_empty() {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", &settings.secret_token);
    }
    if let Some(authorization) = &settings.authorization {
        request = request.header(header::AUTHORIZATION, format!("Basic {authorization}"));
    }
    let Ok(request) = request.body(Full::new(Bytes::from(body))) else {
        return Outcome::Failed {
            message: "URL is too long".to_owned(),
            retry_after: 0,
        };
    };
    let timeout = bot.shared.config.webhook.response_timeout;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            if e.is_connect() {
                "Connection refused".to_owned()
            } else {
                "Webhook connection closed".to_owned()
            }
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0);
        let body = Limited::new(response.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|_| "Webhook connection closed".to_owned())?
            .to_bytes();
        Ok::<_, String>((status, retry_after, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Outcome::Failed {
            message: "Read timeout expired".to_owned(),
            retry_after: 0,
        },
        Ok(Err(message)) => Outcome::Failed {
            message,
            retry_after: 0,
        },
        Ok(Ok((status, _, body))) if status.is_success() => Outcome::Ok(body),
        Ok(Ok((status, retry_after, _))) => Outcome::Failed {
            message: format!(
                "Wrong response from the webhook: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Unknown")
            ),
            retry_after,
        },
    }
}

async fn deliver(
    bot: Arc<BotState>,
    client: HttpClient,
    settings: Arc<WebhookSettings>,
    generation: u64,
    delivery: Delivery,
) {
    bump(&bot.counters.webhook_attempts);
    if delivery.retry {
        bump(&bot.counters.webhook_retries);
    }
    let outcome = post(&bot, &client, &settings, delivery.body).await;
    let config = &bot.shared.config.webhook;
    let reply = {
        let mut updates = lock(&bot.updates);
        updates.in_flight = updates.in_flight.saturating_sub(1);
        let now = bot.shared.clock.now_ms();
        match outcome {
            Outcome::Ok(body) => {
                if updates.queue.remove(&delivery.update_id).is_some() {
                    bump(&bot.counters.updates_delivered_webhook);
                }
                Some(body)
            }
            Outcome::Failed {
                message,
                retry_after,
            } => {
                bump(&bot.counters.webhook_failures);
                if updates.webhook_generation == generation {
                    updates.last_error = Some((now.div_euclid(1000), message));
                }
                let drop = match updates.queue.get_mut(&delivery.update_id) {
                    None => false,
                    Some(update) => {
                        update.in_flight = false;
                        let retry_after = retry_after.min(config.max_retry_after_secs);
                        let mut next_delay = update.delay_secs;
                        let mut effective = retry_after;
                        if retry_after == 0 && update.fail_count > 0 {
                            let (lo, hi) = config.max_backoff_secs;
                            let cap = u32::try_from(
                                bot.shared.rng.range_inclusive(u64::from(lo), u64::from(hi)),
                            )
                            .unwrap_or(hi);
                            next_delay = cap.min(next_delay.saturating_mul(2));
                            effective = next_delay;
                        }
                        if now + i64::from(effective) * 1000 > update.expires_at_ms {
                            true
                        } else {
                            update.delay_secs = next_delay;
                            update.wakeup_at_ms = now + i64::from(effective) * 1000;
                            update.fail_count += 1;
                            false
                        }
                    }
                };
                if drop && updates.queue.remove(&delivery.update_id).is_some() {
                    bump(&bot.counters.updates_dropped_expired);
                }
                None
            }
        }
    };
    bot.webhook_kick.notify_one();
    if let Some(body) = reply {
        execute_reply(&bot, &body).await;
    }
}

/// Executes a Bot API call carried in a webhook answer (`{"method": "sendMessage", …}`).
async fn execute_reply(bot: &Arc<BotState>, body: &[u8]) {
    if body.is_empty() {
        return;
    }
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return;
    };
    let params = Params::from_json_object(&object);
    let method = params.arg("method").to_ascii_lowercase();
    if method.is_empty()
        || method.starts_with("get")
        || matches!(
            method.as_str(),
            "setwebhook" | "deletewebhook" | "close" | "logout"
        )
    {
        return;
    }
    let Some(method) = crate::methods::Method::from_name(&method) else {
        return;
    };
    bump(&bot.counters.webhook_reply_methods);
    bot.counters.count_call(method);
    // The result is never seen by anyone (as with Telegram).
    let _ = crate::bot_api::execute(bot, method, params).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        let (target, auth, ip) = parse_webhook_url("http://127.0.0.1:8080/tg/hook").unwrap();
        assert_eq!(target.unwrap().to_string(), "http://127.0.0.1:8080/tg/hook");
        assert!(auth.is_none());
        assert_eq!(ip, "127.0.0.1");
        let (target, _, _) = parse_webhook_url("example.com/hook").unwrap();
        assert!(
            target.is_none(),
            "https is the default scheme and is not deliverable"
        );
        let (_, auth, _) = parse_webhook_url("http://user:pass@localhost:1/x").unwrap();
        assert_eq!(auth.as_deref(), Some("dXNlcjpwYXNz"));
        assert!(parse_webhook_url("ftp://x/y").is_none());
        assert!(parse_webhook_url("http:///nohost").is_none());
    }
}
