//! The bot with both payment providers pointed at the local payment emulator
//! (crates/payment-emulator), whose webhooks go to the bot's notification routes.

use std::time::Duration;

use payment_emulator::{
    ControlClient, PaymentEmulator, PaymentEmulatorConfig, Provider, RunningPaymentEmulator,
};
use std::sync::Arc;
use telegram_emulator::{NewUser, TranscriptMessage};

use tollgate::app::AppOptions;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::ShiftedClock;

use super::TestDb;
use super::bot::World;

/// The admin (the emulator's first user).
pub const ADMIN: i64 = 100_000_001;

/// A bot selling through Crypto Pay and YooKassa, both emulated.
pub struct Shop {
    pub w: World,
    pub pay: RunningPaymentEmulator,
    pub ctl: ControlClient,
}

impl Shop {
    /// The bot on `t` with both providers; `env` overrides the defaults (a 200 ms watcher
    /// interval, a 1 s call deadline).
    pub async fn start(t: &TestDb, env: &[(&str, &str)], options: AppOptions) -> Option<Shop> {
        Shop::start_on(t, env, options, PaymentEmulatorConfig::default()).await
    }

    /// [`Shop::start`] with the payment emulator configured as `config` says.
    pub async fn start_on(
        t: &TestDb,
        env: &[(&str, &str)],
        options: AppOptions,
        config: PaymentEmulatorConfig,
    ) -> Option<Shop> {
        let pay = PaymentEmulator::start(config)
            .await
            .expect("payment emulator");
        let crypto_url = pay.cryptopay_api_url();
        let yoo_url = pay.yookassa_api_url();
        let mut vars: Vec<(&str, &str)> = vec![
            ("ADMIN_IDS", "100000001"),
            ("CRYPTOPAY_TOKEN", pay.cryptopay_token()),
            ("CRYPTOPAY_API_URL", &crypto_url),
            ("CRYPTOPAY_POLL_INTERVAL", "200ms"),
            ("YOOKASSA_SHOP_ID", pay.yookassa_shop_id()),
            ("YOOKASSA_SECRET_KEY", pay.yookassa_secret_key()),
            ("YOOKASSA_API_URL", &yoo_url),
            ("YOOKASSA_POLL_INTERVAL", "200ms"),
            // The emulator notifies from this machine.
            ("YOOKASSA_NOTIFY_FROM", "127.0.0.1"),
            ("PROVIDER_CALL_TIMEOUT", "1s"),
        ];
        vars.extend_from_slice(env);
        let w = World::start_with(t, false, &vars, options).await?;
        let ctl = pay.client();
        let base = format!("http://127.0.0.1:{}", w.port);
        ctl.set_webhook(
            Provider::Cryptopay,
            Some(&format!("{base}/payments/cryptopay")),
        )
        .await
        .unwrap();
        ctl.set_webhook(
            Provider::Yookassa,
            Some(&format!("{base}/payments/yookassa")),
        )
        .await
        .unwrap();
        Some(Shop { w, pay, ctl })
    }

    /// The id of `user`'s latest purchase.
    pub async fn latest_purchase(&self, user: i64) -> i64 {
        let (purchase,): (i64,) = on_db!(self.db(), p => sqlx::query_as(
            "SELECT MAX(id) FROM purchases WHERE user_id = $1").bind(user).fetch_one(p).await)
        .unwrap();
        purchase
    }

    pub fn db(&self) -> &Db {
        &self.w.app.db
    }

    /// The bot's notification URL of a provider.
    pub fn hook(&self, provider: &str) -> String {
        format!("http://127.0.0.1:{}/payments/{provider}", self.w.port)
    }

    /// A new English-speaking user with this id who has pressed START.
    pub async fn user(&self, id: i64, name: &str) -> i64 {
        let u = self
            .w
            .tg
            .create_user(NewUser::new(name).id(id).language("en"))
            .await
            .unwrap();
        self.w.tg.send_text(u.id, "/start").await.unwrap();
        self.w.screen(u.id, "Choose an action below.").await;
        u.id
    }

    /// /buy → the plan → the way to pay: the screen that answered.
    pub async fn choose(&self, user: i64, plan: &str, method: &str) -> TranscriptMessage {
        let w = &self.w;
        w.tg.send_text(user, "/buy").await.unwrap();
        let plans = w.screen(user, "Choose a plan").await;
        w.press(user, &plans, plan).await;
        let pay = w.screen(user, "Choose how to pay").await;
        w.press(user, &pay, method).await;
        let id = pay.message_id;
        // The answer edits the pay screen or follows it; a confirmation may follow it too, so
        // every message from the pay screen on is looked at, not only the newest.
        super::wait_for(
            "the answer to the pay button",
            Duration::from_secs(20),
            || {
                let w = &self.w;
                async move {
                    let t = w.tg.transcript(user).await.unwrap();
                    t.bot_messages()
                        .filter(|m| m.message_id >= id)
                        .find(|m| {
                            let text = m.text.as_deref().unwrap_or_default();
                            text.contains("payment page")
                                || text.contains("The confirmation is on its way")
                                || text.contains("did not answer")
                                || text.contains("paused")
                        })
                        .cloned()
                }
            },
        )
        .await
    }

    pub async fn stop(self) {
        self.w.stop().await;
        self.pay.shutdown().await;
    }
}

/// The URL of the button labelled `label` on `m`.
pub fn url_button(m: &TranscriptMessage, label: &str) -> Option<String> {
    m.reply_markup
        .as_ref()?
        .get("inline_keyboard")?
        .as_array()?
        .iter()
        .filter_map(|r| r.as_array())
        .flatten()
        .find(|b| {
            b.get("text")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.contains(label))
        })?
        .get("url")?
        .as_str()
        .map(str::to_owned)
}

pub async fn count(db: &Db, sql: &'static str) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).unwrap()
}

/// Messages from the bot in `chat` whose text contains `needle`.
pub async fn messages_with(w: &World, chat: i64, needle: &str) -> usize {
    let t = w.tg.transcript(chat).await.unwrap();
    t.messages
        .iter()
        .filter(|m| m.from_bot && m.text.as_deref().is_some_and(|x| x.contains(needle)))
        .count()
}

/// The service's options for a shop test: `clock` moves time, replies go fast and handlers
/// retry quickly and long (a provider outage lasts a while in these tests).
pub fn shop_options(clock: &ShiftedClock) -> AppOptions {
    AppOptions {
        clock: Arc::new(clock.clone()),
        per_chat_interval: Duration::from_millis(10),
        handler_retry_base: Duration::from_millis(50),
        handler_max_attempts: 1000,
        ..AppOptions::default()
    }
}
