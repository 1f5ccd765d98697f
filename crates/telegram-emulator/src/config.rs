//! Configuration of an emulator instance.
//!
//! Why this exists: every behaviour that a test may want to pin down (rate limits, the random
//! 60–120 s webhook backoff cap, the webhook response timeout, memory bounds) is a knob here, so
//! tests are deterministic and benchmarks can switch the limits off. The defaults follow what the
//! real Bot API does (see the Bot API documentation, <https://core.telegram.org/bots/api>).

use std::net::SocketAddr;
use std::time::Duration;

/// One bot served by the emulator. Its id is the number before the colon in the token, as with
/// real tokens issued by @BotFather.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BotConfig {
    /// The bot token, `"<bot id>:<secret>"`.
    pub token: String,
    /// The bot's username without `@`.
    pub username: String,
    /// The bot's display name.
    pub first_name: String,
}

impl BotConfig {
    /// A bot with the given token; the username and name are derived from the bot id.
    pub fn new(token: impl Into<String>) -> Self {
        let token = token.into();
        let id = bot_id_from_token(&token).unwrap_or(0);
        Self {
            token,
            username: format!("emulated_{id}_bot"),
            first_name: "Emulated Bot".to_owned(),
        }
    }

    /// Sets the username (without `@`).
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = username.into();
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn first_name(mut self, first_name: impl Into<String>) -> Self {
        self.first_name = first_name.into();
        self
    }

    /// The bot id encoded in the token, if the token has the `<digits>:<secret>` form.
    pub fn id(&self) -> Option<i64> {
        bot_id_from_token(&self.token)
    }
}

/// Extracts the numeric bot id from a `"<id>:<secret>"` token.
pub fn bot_id_from_token(token: &str) -> Option<i64> {
    let (id, secret) = token.split_once(':')?;
    if secret.is_empty() {
        return None;
    }
    id.parse::<i64>().ok().filter(|id| *id > 0)
}

/// The token of the default bot, used when no bot is configured explicitly.
pub const DEFAULT_BOT_TOKEN: &str = "7000000001:AAEmulatorDefaultTokenForTestsOnly";

/// Telegram's flood limits as the emulator applies them to sending methods (`sendMessage`,
/// `sendPhoto`, `sendInvoice`). Buckets refill continuously; `burst` is the bucket size.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitConfig {
    /// When false no 429 is ever returned because of message rates (pure-throughput benchmarks).
    pub enabled: bool,
    /// Messages per second to one private chat ("avoid sending more than one message per second").
    pub per_chat_per_sec: f64,
    /// How many messages a private chat accepts at once before the per-second rate applies
    /// ("we may allow short bursts").
    pub per_chat_burst: f64,
    /// Messages per second over all chats of one bot ("not more than 30 messages per second").
    pub global_per_sec: f64,
    /// Bucket size of the global limit.
    pub global_burst: f64,
    /// Messages per minute to one group ("not more than 20 messages per minute to the same group").
    pub group_per_min: f64,
    /// Bucket size of the per-group limit.
    pub group_burst: f64,
    /// Global messages per second for sends with `allow_paid_broadcast=true` ("up to 1000").
    pub paid_broadcast_per_sec: f64,
    /// `setWebhook` with a URL at most once per second (TBA answers 429 `retry_after: 1`).
    pub set_webhook_once_per_sec: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_chat_per_sec: 1.0,
            per_chat_burst: 3.0,
            global_per_sec: 30.0,
            global_burst: 30.0,
            group_per_min: 20.0,
            group_burst: 20.0,
            paid_broadcast_per_sec: 1000.0,
            set_webhook_once_per_sec: true,
        }
    }
}

impl RateLimitConfig {
    /// No flood limits at all (for throughput benchmarks).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            set_webhook_once_per_sec: false,
            ..Self::default()
        }
    }
}

/// Webhook delivery behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// A delivery that gets no complete response within this time counts as failed (TBA: 60 s).
    pub response_timeout: Duration,
    /// The random cap of the doubling backoff, `[min, max]` seconds (TBA: `[60, 120]`). Set both
    /// ends equal to make the schedule deterministic.
    pub max_backoff_secs: (u32, u32),
    /// `Retry-After` from the endpoint is honoured up to this many seconds (TBA: 3600).
    pub max_retry_after_secs: u32,
    /// `max_connections` when setWebhook does not specify it (cloud Bot API: 40).
    pub default_max_connections: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            response_timeout: Duration::from_secs(60),
            max_backoff_secs: (60, 120),
            max_retry_after_secs: 3600,
            default_max_connections: 40,
        }
    }
}

/// Memory bounds. Every in-memory collection of the emulator is capped by one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Messages kept per chat transcript; older ones are forgotten (and can no longer be edited).
    pub transcript_messages_per_chat: usize,
    /// Users that can be created.
    pub max_users: usize,
    /// Groups that can be created per bot.
    pub max_groups: usize,
    /// Pending (unconfirmed) updates per bot; beyond it the oldest are dropped and counted.
    pub max_pending_updates: usize,
    /// Total bytes of uploaded photos kept; the oldest photos are evicted beyond it.
    pub max_photo_bytes: usize,
    /// Largest document a bot may upload with `sendDocument` (Telegram: 50 MB); a larger file
    /// is refused with "Bad Request: file is too big". A body larger than the server's
    /// `MAX_BODY_BYTES` never gets that far: 413 "Request Entity Too Large".
    pub max_document_bytes: usize,
    /// Star transactions and charges kept per bot.
    pub max_transactions: usize,
    /// Invoice links kept per bot.
    pub max_invoice_links: usize,
    /// Open callback queries / pre-checkout queries kept per bot.
    pub max_open_queries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            transcript_messages_per_chat: 500,
            max_users: 200_000,
            max_groups: 10_000,
            max_pending_updates: 100_000,
            max_photo_bytes: 256 << 20,
            max_document_bytes: 50 << 20,
            max_transactions: 100_000,
            max_invoice_links: 10_000,
            max_open_queries: 10_000,
        }
    }
}

/// Everything an emulator instance needs to start.
#[derive(Clone, Debug, PartialEq)]
pub struct EmulatorConfig {
    /// Where to listen; `127.0.0.1:0` (an ephemeral port) by default.
    pub listen: SocketAddr,
    /// The bots served; the first one is the default bot of the control API.
    pub bots: Vec<BotConfig>,
    /// Flood limits.
    pub rate_limits: RateLimitConfig,
    /// Webhook delivery.
    pub webhook: WebhookConfig,
    /// Memory bounds.
    pub limits: Limits,
    /// Provider tokens accepted for non-XTR (card) invoices, as if issued by @BotFather.
    pub payment_provider_tokens: Vec<String>,
    /// Seed of the emulator's random numbers (ids, backoff jitter), for reproducible runs.
    pub seed: u64,
    /// How long the bot has to answer a pre-checkout query, in emulated seconds (Telegram: 10).
    pub pre_checkout_timeout_secs: u32,
    /// Callback queries older than this (emulated seconds) can no longer be answered (TBA: 150).
    pub callback_query_lifetime_secs: u32,
    /// Minimum spacing of consecutive 409 answers to getUpdates (TBA: 3 s). Zero disables it.
    pub conflict_spacing: Duration,
    /// How long a request with an injected `hang` fault is held before the emulator gives up.
    pub hang_duration: Duration,
}

/// The provider token accepted by default for card invoices.
pub const DEFAULT_PROVIDER_TOKEN: &str = "284685063:TEST:emulator-provider-token";

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bots: vec![BotConfig::new(DEFAULT_BOT_TOKEN).username("tollgate_test_bot")],
            rate_limits: RateLimitConfig::default(),
            webhook: WebhookConfig::default(),
            limits: Limits::default(),
            payment_provider_tokens: vec![DEFAULT_PROVIDER_TOKEN.to_owned()],
            seed: 0x5eed_1e57_7e1e_6a3d,
            pre_checkout_timeout_secs: 10,
            callback_query_lifetime_secs: 150,
            conflict_spacing: Duration::from_secs(3),
            hang_duration: Duration::from_secs(300),
        }
    }
}

impl EmulatorConfig {
    /// Same as `default()` but with rate limits off: the configuration for throughput benchmarks.
    pub fn without_rate_limits() -> Self {
        Self {
            rate_limits: RateLimitConfig::disabled(),
            ..Self::default()
        }
    }

    /// Replaces the bots with a single bot using `token`.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.bots = vec![BotConfig::new(token)];
        self
    }

    /// Checks the configuration and names the field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.bots.is_empty() {
            return Err("bots: at least one bot must be configured".to_owned());
        }
        for (index, bot) in self.bots.iter().enumerate() {
            if bot.id().is_none() {
                return Err(format!(
                    "bots[{index}].token: {:?} is not of the form <bot id>:<secret>",
                    bot.token
                ));
            }
            if bot.username.is_empty() {
                return Err(format!("bots[{index}].username: must not be empty"));
            }
        }
        for (i, a) in self.bots.iter().enumerate() {
            for b in &self.bots[i + 1..] {
                if a.id() == b.id() || a.username == b.username {
                    return Err(format!(
                        "bots: {} and {} share an id or a username",
                        a.username, b.username
                    ));
                }
            }
        }
        let (lo, hi) = self.webhook.max_backoff_secs;
        if lo == 0 || lo > hi {
            return Err(format!(
                "webhook.max_backoff_secs: ({lo}, {hi}) must be a non-empty range of positive seconds"
            ));
        }
        if self.webhook.default_max_connections == 0 || self.webhook.default_max_connections > 100 {
            return Err("webhook.default_max_connections: must be in 1..=100".to_owned());
        }
        let r = &self.rate_limits;
        if r.enabled {
            for (name, value) in [
                ("per_chat_per_sec", r.per_chat_per_sec),
                ("per_chat_burst", r.per_chat_burst),
                ("global_per_sec", r.global_per_sec),
                ("global_burst", r.global_burst),
                ("group_per_min", r.group_per_min),
                ("group_burst", r.group_burst),
                ("paid_broadcast_per_sec", r.paid_broadcast_per_sec),
            ] {
                if !(value.is_finite() && value > 0.0) {
                    return Err(format!("rate_limits.{name}: must be a positive number"));
                }
            }
        }
        if self.limits.transcript_messages_per_chat == 0 {
            return Err("limits.transcript_messages_per_chat: must be at least 1".to_owned());
        }
        Ok(())
    }
}
