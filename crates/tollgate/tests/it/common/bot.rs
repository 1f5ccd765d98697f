//! The whole bot in-process against the emulator (and, when asked, a real node), plus the
//! moves of a user: write, find a button, press it, wait for a screen.

use std::time::Duration;

use telegram_emulator::{
    ControlClient, Emulator, EmulatorConfig, RunningEmulator, TranscriptMessage,
};
use tollgate::app::{self, AppOptions, RunningApp};
use tollgate::bot::Bot;
use tollgate::config::{Config, Env};
use tollgate_node::testing::V2Ray;

use super::TestDb;
use super::nodes::{TestNode, catalog_text};
use super::telegram::{free_port, polling_env, test_logging, with};

pub struct World {
    pub emu: RunningEmulator,
    pub tg: ControlClient,
    pub app: RunningApp,
    pub port: u16,
    pub node: Option<TestNode>,
    _catalog: tempfile::TempDir,
}

impl World {
    /// The bot on `t`'s database; with a real V2Ray node when `node` (None: v2ray missing and
    /// not required — the caller skips).
    pub async fn start(t: &TestDb, node: bool, env: &[(&str, &str)]) -> Option<World> {
        Self::start_with(t, node, env, AppOptions::default()).await
    }

    pub async fn start_with(
        t: &TestDb,
        node: bool,
        env: &[(&str, &str)],
        options: AppOptions,
    ) -> Option<World> {
        let node = if node {
            let v2ray = V2Ray::or_skip("bot world with a node")?;
            Some(TestNode::start(&v2ray, "nl-1").await)
        } else {
            None
        };
        let mut config = EmulatorConfig::without_rate_limits();
        config.rate_limits.set_webhook_once_per_sec = false;
        let emu = Emulator::start(config).await.expect("emulator");
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
        let config = Config::load(&Env::from_pairs(vars)).expect("valid test config");
        let app = app::start(config, options, Bot::plug)
            .await
            .expect("bot starts");
        let tg = emu.client();
        Some(World {
            emu,
            tg,
            app,
            port,
            node,
            _catalog: dir,
        })
    }

    pub async fn stop(self) {
        self.app.shutdown().await.unwrap();
        self.emu.shutdown().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until a message from the bot in `chat` shows text containing `needle`; returns it.
    pub async fn screen(&self, chat: i64, needle: &str) -> TranscriptMessage {
        let start = tokio::time::Instant::now();
        loop {
            let t = self.tg.transcript(chat).await.unwrap();
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
