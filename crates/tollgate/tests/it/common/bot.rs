//! The whole bot in-process against the emulator (and, when asked, a real node), plus the
//! moves of a user: write, find a button, press it, wait for a screen.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use telegram_emulator::{
    ControlClient, Emulator, EmulatorConfig, RunningEmulator, TranscriptMessage,
};

use tollgate::app::{self, AppOptions, Plugged, RunningApp, Services};
use tollgate::bot::Bot;
use tollgate::config::{Config, Env};
use tollgate::telegram::dispatcher::{Handled, Handler, HandlerContext, HandlerError};
use tollgate::telegram::inbox::Claimed;
use tollgate_node::testing::V2Ray;

use super::nodes::{TestNode, catalog_text};
use super::telegram::{free_port, polling_env, test_logging, with};
use super::{TestDb, wait_for};
use tollgate::on_db;
use tollgate::store::Db;

pub struct World {
    pub emu: RunningEmulator,
    pub tg: ControlClient,
    pub app: RunningApp,
    pub port: u16,
    pub node: Option<TestNode>,
    /// What the service was started with (for restarts).
    vars: Vec<(String, String)>,
    catalog: std::path::PathBuf,
    _catalog_dir: tempfile::TempDir,
}

/// What a [`Gated`] bot does with `successful_payment` updates.
#[derive(Clone, Default)]
pub struct Gate(Arc<AtomicU8>);

impl Gate {
    /// Retried later: the process "never gets to" the payment.
    pub fn hold(&self) {
        self.0.store(1, Ordering::SeqCst);
    }
    /// Handled as usual again.
    pub fn open(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
    /// Marked done without effect: the update is lost.
    pub fn lose(&self) {
        self.0.store(2, Ordering::SeqCst);
    }
}

/// The bot, with a [`Gate`] in front of payment updates.
pub struct Gated {
    inner: Arc<Bot>,
    gate: Gate,
}

impl Handler for Gated {
    async fn handle(
        &self,
        update: Arc<Claimed>,
        ctx: HandlerContext,
    ) -> Result<Handled, HandlerError> {
        if update.payload.contains("\"successful_payment\"") {
            match self.gate.0.load(Ordering::SeqCst) {
                1 => return Err(HandlerError::Retry("held by the test".into())),
                2 => return Ok(Handled::Done),
                _ => {}
            }
        }
        self.inner.handle(update, ctx).await
    }
}

impl World {
    /// The bot on `t`'s database; with a real V2Ray node when `node` (None: v2ray missing and
    /// not required — the caller skips).
    pub async fn start_with(
        t: &TestDb,
        node: bool,
        env: &[(&str, &str)],
        options: AppOptions,
    ) -> Option<World> {
        Self::launch(t, node, env, options, app::bot).await
    }

    /// Like [`World::start_with`], with `gate` in front of payment updates.
    pub async fn start_gated(
        t: &TestDb,
        env: &[(&str, &str)],
        options: AppOptions,
        gate: Gate,
    ) -> Option<World> {
        Self::launch(t, false, env, options, move |s| {
            let p = app::bot(s)?;
            Ok(Plugged {
                handler: Arc::new(Gated {
                    inner: p.handler,
                    gate,
                }),
                components: p.components,
                routes: p.routes,
            })
        })
        .await
    }

    /// Like [`World::start_with`], against an emulator with Telegram's flood limits on.
    pub async fn start_limited(
        t: &TestDb,
        env: &[(&str, &str)],
        options: AppOptions,
    ) -> Option<World> {
        let mut config = EmulatorConfig::default();
        config.rate_limits.set_webhook_once_per_sec = false;
        Self::launch_on(t, false, env, options, app::bot, config).await
    }

    /// The service on `t`'s database (with a real node when `node`) with the handler and
    /// components `make` builds from the service's parts (a test may keep a clone of them).
    pub async fn launch<H, F>(
        t: &TestDb,
        node: bool,
        env: &[(&str, &str)],
        options: AppOptions,
        make: F,
    ) -> Option<World>
    where
        H: Handler,
        F: FnOnce(&Services) -> anyhow::Result<Plugged<H>>,
    {
        let mut config = EmulatorConfig::without_rate_limits();
        config.rate_limits.set_webhook_once_per_sec = false;
        Self::launch_on(t, node, env, options, make, config).await
    }

    /// [`World::launch`] against an emulator with `emulator` as its configuration.
    pub async fn launch_on<H, F>(
        t: &TestDb,
        node: bool,
        env: &[(&str, &str)],
        options: AppOptions,
        make: F,
        emulator: EmulatorConfig,
    ) -> Option<World>
    where
        H: Handler,
        F: FnOnce(&Services) -> anyhow::Result<Plugged<H>>,
    {
        let node = if node {
            let v2ray = V2Ray::or_skip("bot world with a node")?;
            Some(TestNode::start(&v2ray, "nl-1").await)
        } else {
            None
        };
        let emu = Emulator::start(emulator).await.expect("emulator");
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("tollgate.toml");
        std::fs::write(
            &catalog,
            catalog_text(&node.iter().collect::<Vec<_>>(), &[]),
        )
        .unwrap();
        let port = free_port();
        let mut vars = with(
            polling_env(&t.url, &emu),
            &[
                ("PORT", &port.to_string()),
                ("FEED_BASE_URL", &format!("http://127.0.0.1:{port}")),
                ("TOLLGATE_CONFIG", catalog.to_str().unwrap()),
            ],
        );
        if let Some(n) = &node {
            vars.push(n.env_pair());
        }
        let vars = with(vars, env);
        test_logging();
        let config = Config::load(&Env::from_pairs(vars.clone())).expect("valid test config");
        let app = app::start(config, options, make).await.expect("bot starts");
        let tg = emu.client();
        Some(World {
            emu,
            tg,
            app,
            port,
            node,
            vars,
            catalog,
            _catalog_dir: dir,
        })
    }

    /// Stops the service (gracefully, as a deploy would) and starts a plain bot on the same
    /// database and emulator, with `catalog_edit` applied to the catalog text first (a price
    /// change, say).
    pub async fn restart(
        self,
        options: AppOptions,
        catalog_edit: impl FnOnce(String) -> String,
    ) -> World {
        self.app.shutdown().await.unwrap();
        let text = std::fs::read_to_string(&self.catalog).unwrap();
        std::fs::write(&self.catalog, catalog_edit(text)).unwrap();
        let config = Config::load(&Env::from_pairs(self.vars.clone())).expect("valid test config");
        let app = app::start(config, options, app::bot)
            .await
            .expect("bot restarts");
        World { app, ..self }
    }

    pub async fn stop(self) {
        self.app.shutdown().await.unwrap();
        self.emu.shutdown().await;
    }

    /// Waits until a message from the bot in `chat` shows text containing `needle`; returns it.
    pub async fn screen(&self, chat: i64, needle: &str) -> TranscriptMessage {
        screen_in(&self.tg, chat, needle).await
    }

    /// Presses the button whose label contains `label` on `message`; panics if there is none.
    pub async fn press(&self, chat: i64, message: &TranscriptMessage, label: &str) {
        let data = message.button_data(label).unwrap_or_else(|| {
            panic!(
                "no button {label:?} on {:?}: {:?}",
                message.text,
                message.callback_buttons()
            )
        });
        self.tg
            .press_button(chat, message.message_id, &data)
            .await
            .unwrap();
    }

    /// Sends `data` as if a button of `message_id` carried it (a modified client, a replay).
    pub async fn forge(
        &self,
        chat: i64,
        message_id: i64,
        data: &str,
    ) -> telegram_emulator::CallbackOutcome {
        self.tg
            .press_button_with(telegram_emulator::control::types::PressButton {
                chat_id: chat,
                message_id,
                callback_data: data.to_owned(),
                wait_ms: Some(5_000),
                forged: true,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// Waits until message `id` in `chat` (a screen edited in place) shows `needle`.
    pub async fn screen_on(&self, chat: i64, id: i64, needle: &str) -> TranscriptMessage {
        wait_for(
            &format!("message {id} showing {needle:?}"),
            Duration::from_secs(30),
            || async {
                let t = self.tg.transcript(chat).await.unwrap();
                t.bot_messages()
                    .find(|m| {
                        m.message_id == id && m.text.as_deref().is_some_and(|x| x.contains(needle))
                    })
                    .cloned()
            },
        )
        .await
    }

    /// The bot's newest message in `chat`.
    pub async fn last(&self, chat: i64) -> TranscriptMessage {
        self.tg
            .transcript(chat)
            .await
            .unwrap()
            .last_bot_message()
            .cloned()
            .expect("the bot said something")
    }
}

/// Waits until the bot's newest message in `chat` containing `needle` shows; returns it.
pub async fn screen_in(tg: &ControlClient, chat: i64, needle: &str) -> TranscriptMessage {
    let start = tokio::time::Instant::now();
    loop {
        let t = tg.transcript(chat).await.unwrap();
        if let Some(m) = t
            .bot_messages()
            .filter(|m| m.text.as_deref().is_some_and(|x| x.contains(needle)))
            .last()
        {
            return m.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no screen containing {needle:?} in chat {chat}; bot said: {:#?}",
            t.bot_messages().map(|m| m.text.clone()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bot's oldest message after `after` whose text contains `needle` (its current state),
/// within a minute.
pub async fn screen_after(
    tg: &ControlClient,
    user: i64,
    after: i64,
    needle: &str,
) -> TranscriptMessage {
    screen_after_within(tg, user, after, needle, Duration::from_secs(60)).await
}

/// [`screen_after`] for a bot that may be down for longer (killed again and again).
pub async fn screen_after_within(
    tg: &ControlClient,
    user: i64,
    after: i64,
    needle: &str,
    within: Duration,
) -> TranscriptMessage {
    let filter = telegram_emulator::MessageFilter {
        text_contains: Some(needle.to_owned()),
        after_message_id: Some(after),
        ..telegram_emulator::MessageFilter::from_bot()
    };
    message_within(tg, user, filter, within)
        .await
        .unwrap_or_else(|e| panic!("user {user}: no {needle:?} after message {after}: {e}"))
}

/// The first message in `chat` matching `filter`, waited for up to `within`: several of the
/// emulator's waits, which each end after 120 s at most.
pub async fn message_within(
    tg: &ControlClient,
    chat: i64,
    filter: telegram_emulator::MessageFilter,
    within: Duration,
) -> Result<TranscriptMessage, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tg
            .wait_for_message(chat, filter.clone(), left.min(Duration::from_secs(100)))
            .await
        {
            Ok(m) => return Ok(m),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("none within {within:?}: {e}"));
            }
            Err(_) => continue,
        }
    }
}

/// `data` pressed twice on `message` at once, neither press waiting for its answer: the two
/// callback updates' ids.
pub async fn double_tap(
    tg: &telegram_emulator::ControlClient,
    chat: i64,
    message: i64,
    data: &str,
) -> [i64; 2] {
    let press = || {
        tg.press_button_with(telegram_emulator::control::types::PressButton {
            chat_id: chat,
            message_id: message,
            callback_data: data.to_owned(),
            wait_ms: Some(0),
            ..Default::default()
        })
    };
    let (a, b) = tokio::join!(press(), press());
    [a.unwrap().update_id.unwrap(), b.unwrap().update_id.unwrap()]
}

/// Waits until the updates `ids` are stored and handled.
pub async fn handled(db: &Db, ids: &[i64]) {
    for &id in ids {
        wait_for(
            &format!("update {id} handled"),
            Duration::from_secs(20),
            || async {
                let status: Option<String> = on_db!(db, p => sqlx::query_scalar(
                "SELECT status FROM tg_inbox WHERE update_id = $1"
            ).bind(id).fetch_optional(p).await)
                .unwrap();
                (status.as_deref() == Some("done")).then_some(())
            },
        )
        .await;
    }
}
