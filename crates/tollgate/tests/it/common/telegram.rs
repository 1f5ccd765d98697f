//! Telegram side of the end-to-end tests: the emulator and services wired to it.

use std::sync::Arc;
use std::time::Duration;

use telegram_emulator::{
    ControlClient, Emulator, EmulatorConfig, MessageFilter, RunningEmulator, Transcript,
};
use tollgate::app::{self, AppOptions, Plugged, RunningApp};
use tollgate::config::{Config, Env};
use tollgate::telegram::dispatcher::Handler;

use super::service::base_env;

/// Webhook secret used by the tests.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret_0123456789abcdefgh";

/// An emulator with Telegram's default limits (or none).
pub async fn emulator(rate_limits: bool) -> RunningEmulator {
    let mut config = if rate_limits {
        EmulatorConfig::default()
    } else {
        EmulatorConfig::without_rate_limits()
    };
    // Tests re-register webhooks quickly; the 1/s setWebhook limit is tested in the emulator.
    config.rate_limits.set_webhook_once_per_sec = false;
    config.webhook.max_backoff_secs = (5, 5);
    Emulator::start(config).await.expect("emulator starts")
}

/// A port that was free a moment ago (webhook tests must know the URL before start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

/// A polling service on `database_url` talking to `emu`, tuned for quick tests.
pub fn polling_env(database_url: &str, emu: &RunningEmulator) -> Vec<(String, String)> {
    let mut env = base_env(database_url);
    set(&mut env, "BOT_TOKEN", emu.token());
    set(&mut env, "TELEGRAM_API_URL", &emu.api_url());
    set(&mut env, "POLL_TIMEOUT", "1s");
    set(&mut env, "OUTBOX_RATE", "1000");
    env
}

/// A webhook service on `port`, registering `http://127.0.0.1:port/telegram/webhook`.
pub fn webhook_env(database_url: &str, emu: &RunningEmulator, port: u16) -> Vec<(String, String)> {
    let mut env = polling_env(database_url, emu);
    set(&mut env, "PORT", &port.to_string());
    set(&mut env, "PUBLIC_URL", &format!("http://127.0.0.1:{port}"));
    set(&mut env, "WEBHOOK_SECRET", WEBHOOK_SECRET);
    env
}

pub fn with(mut env: Vec<(String, String)>, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in changes {
        set(&mut env, k, v);
    }
    env
}

/// Logs of in-process services go to the test output when `TEST_LOG` is set (a filter).
pub fn test_logging() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Starts the service in this process with `handler`.
pub async fn in_process<H: Handler>(
    env: &[(String, String)],
    handler: Arc<H>,
    options: AppOptions,
) -> RunningApp {
    test_logging();
    let config = Config::load(&Env::from_pairs(env.iter().cloned())).expect("valid test config");
    app::start(config, options, move |_| {
        Ok(Plugged {
            handler,
            components: Vec::new(),
            routes: Default::default(),
        })
    })
    .await
    .expect("service starts")
}

/// A user of `emu` who has started the bot; their id.
pub async fn started_user(emu: &RunningEmulator, name: &str) -> i64 {
    let mut u = telegram_emulator::NewUser::new(name);
    u.started = true;
    emu.client().create_user(u).await.expect("user created").id
}

/// Waits until the bot sent a message containing `text` to `chat`.
pub async fn wait_reply(tg: &ControlClient, chat: i64, text: &str) {
    let filter = MessageFilter {
        text_contains: Some(text.to_owned()),
        ..MessageFilter::from_bot()
    };
    tg.wait_for_message(chat, filter, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("no reply containing {text:?} in chat {chat}: {e}"));
}

/// The texts the bot sent to `chat`, oldest first.
pub async fn bot_texts(tg: &ControlClient, chat: i64) -> Vec<String> {
    let t: Transcript = tg.transcript(chat).await.expect("transcript");
    t.bot_messages().filter_map(|m| m.text.clone()).collect()
}

/// Waits until the emulator's bot has its webhook set to this service's (on `port`).
pub async fn wait_registered(emu: &RunningEmulator, port: u16) {
    let want = format!("http://127.0.0.1:{port}/telegram/webhook");
    crate::common::wait_for(
        "the webhook to be registered",
        std::time::Duration::from_secs(20),
        || {
            let tg = emu.client();
            let want = want.clone();
            async move {
                let bots = tg.bots().await.ok()?;
                (bots[0].webhook_url == want).then_some(())
            }
        },
    )
    .await;
}
