//! Helpers shared by the integration tests: starting an emulator, raw Bot API calls, a scripted
//! webhook receiver, and bounded waits on conditions (never fixed sleeps as assertions).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use telegram_emulator::control::types::PendingUpdate;
use telegram_emulator::{
    BotApiResponse, ControlClient, Emulator, EmulatorConfig, NewUser, RunningEmulator, User,
};
use tokio::sync::Notify;

/// A test configuration: default limits, but no 3 s spacing of 409s (tests start fresh
/// emulators, so it would only slow them down) and a fixed backoff cap.
pub fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig {
        conflict_spacing: Duration::ZERO,
        ..EmulatorConfig::default()
    };
    config.webhook.max_backoff_secs = (60, 60);
    config
}

/// Same as `config()` with flood limits off.
pub fn config_without_limits() -> EmulatorConfig {
    let mut config = config();
    config.rate_limits = telegram_emulator::RateLimitConfig::disabled();
    config
}

pub async fn start(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(config).await.expect("emulator starts")
}

/// A Bot API call with a JSON body, for the default bot.
pub async fn call(emulator: &RunningEmulator, method: &str, params: Value) -> BotApiResponse {
    emulator
        .client()
        .bot_call(emulator.token(), method, &params)
        .await
        .expect("bot api reachable")
}

/// Asserts an error answer: status, `error_code` and exact description.
#[track_caller]
pub fn assert_error(response: &BotApiResponse, code: u16, description: &str) {
    assert_eq!(response.status, code, "status of {:?}", response.body);
    assert_eq!(response.body["ok"], json!(false), "{:?}", response.body);
    assert_eq!(
        response.body["error_code"],
        json!(code),
        "{:?}",
        response.body
    );
    assert_eq!(response.description(), description, "{:?}", response.body);
}

/// Asserts a successful answer and returns `result`.
#[track_caller]
pub fn ok(response: &BotApiResponse) -> Value {
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["ok"], json!(true), "{:?}", response.body);
    response.result().clone()
}

/// Creates a user who has started the bot.
pub async fn started_user(control: &ControlClient, id: i64, first_name: &str) -> User {
    control
        .create_user(NewUser::new(first_name).id(id).language("en").started())
        .await
        .expect("user created")
}

/// Polls `condition` every 5 ms until it yields `Some` or `deadline` passes.
pub async fn wait_until<T, F, Fut>(deadline: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The pending update with this id (from the control API).
pub async fn pending(control: &ControlClient, update_id: i64) -> Option<PendingUpdate> {
    control
        .pending_updates()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.update_id == update_id)
}

/// What the webhook receiver answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// This status with a `Retry-After` header.
    RetryAfter(u16, u32),
    /// Wait, then answer 200.
    Slow(Duration),
    /// Hold the request until `Receiver::release` is called, then 200.
    Hold,
    /// 200 with this JSON body.
    Json(Value),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub update: Value,
    /// The body exactly as sent.
    pub raw: String,
}

impl Received {
    pub fn update_id(&self) -> i64 {
        self.update["update_id"].as_i64().unwrap()
    }

    /// The text of a message update.
    pub fn text(&self) -> Option<&str> {
        self.update["message"]["text"].as_str()
    }
}

type Script = dyn Fn(&Value, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct ReceiverState {
    log: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<Mutex<HashMap<i64, usize>>>,
    held: Arc<Mutex<usize>>,
    release: Arc<Notify>,
    arrived: Arc<Notify>,
    script: Arc<Script>,
}

/// A local webhook endpoint whose answers follow a script `(update, previous attempts) -> Reply`.
pub struct Receiver {
    pub addr: SocketAddr,
    state: ReceiverState,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    let update: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = update["update_id"].as_i64().unwrap_or(-1);
    let attempt = {
        let mut attempts = state.attempts.lock().unwrap();
        let count = attempts.entry(id).or_insert(0);
        *count += 1;
        *count - 1
    };
    let reply = (state.script)(&update, attempt);
    let raw = String::from_utf8_lossy(&body).into_owned();
    state.log.lock().unwrap().push(Received {
        headers,
        update,
        raw,
    });
    state.arrived.notify_waiters();
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::RetryAfter(code, secs) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Reply::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
        Reply::Hold => {
            *state.held.lock().unwrap() += 1;
            let released = state.release.notified();
            released.await;
            *state.held.lock().unwrap() -= 1;
            StatusCode::OK.into_response()
        }
        Reply::Json(value) => axum::Json(value).into_response(),
    }
}

impl Receiver {
    pub async fn start(script: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) -> Self {
        let state = ReceiverState {
            log: Arc::default(),
            attempts: Arc::default(),
            held: Arc::default(),
            release: Arc::new(Notify::new()),
            arrived: Arc::new(Notify::new()),
            script: Arc::new(script),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// A receiver answering 200 to everything.
    pub async fn ok() -> Self {
        Self::start(|_, _| Reply::Status(200)).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }

    /// Requests currently held by `Reply::Hold`.
    pub fn held(&self) -> usize {
        *self.state.held.lock().unwrap()
    }

    /// Releases every held request.
    pub fn release_all(&self) {
        self.state.release.notify_waiters();
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Received> {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let arrived = self.state.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let log = self.received();
            if log.len() >= n {
                return log;
            }
            let now = tokio::time::Instant::now();
            assert!(
                now < end,
                "only {} of {n} webhook requests within {deadline:?}",
                log.len()
            );
            let _ = tokio::time::timeout(end - now, arrived).await;
        }
    }
}

/// Sets the webhook of the default bot to `url`.
pub async fn set_webhook(emulator: &RunningEmulator, url: &str, extra: Value) -> BotApiResponse {
    let mut params = json!({ "url": url });
    if let (Value::Object(p), Value::Object(e)) = (&mut params, extra) {
        p.extend(e);
    }
    call(emulator, "setWebhook", params).await
}
