//! The emulator's configuration: credentials of the emulated accounts, webhook URLs and
//! schedules, lifetimes and bounds.
//!
//! Why defaults matter: tests start the emulator with `PaymentEmulatorConfig::default()` and read
//! the credentials back from the handle, so the defaults are valid credentials of the right shape
//! (a Crypto Pay token `\d+:[A-Za-z0-9]{35}`, a YooKassa `test_` secret key).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The default Crypto Pay app token (the reference test vector's token).
pub const DEFAULT_CRYPTOPAY_TOKEN: &str = "1234:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
/// The default YooKassa shop id.
pub const DEFAULT_YOOKASSA_SHOP_ID: &str = "100500";
/// The default YooKassa secret key.
pub const DEFAULT_YOOKASSA_SECRET_KEY: &str = "test_emulator_secret_key";

/// Everything the emulator needs to start.
#[derive(Clone, Debug)]
pub struct PaymentEmulatorConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Base URL written into payment links (`pay_url`, `confirmation_url`); `None` uses
    /// `http://<bound address>`.
    pub public_url: Option<String>,
    /// The emulated Crypto Pay app.
    pub cryptopay: CryptoPayConfig,
    /// The emulated YooKassa shop.
    pub yookassa: YooKassaConfig,
    /// How notifications are delivered and retried.
    pub webhooks: WebhookConfig,
    /// Bounds of the in-memory state.
    pub limits: Limits,
}

impl Default for PaymentEmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            public_url: None,
            cryptopay: CryptoPayConfig::default(),
            yookassa: YooKassaConfig::default(),
            webhooks: WebhookConfig::default(),
            limits: Limits::default(),
        }
    }
}

impl PaymentEmulatorConfig {
    /// Checks the configuration; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let token = &self.cryptopay.token;
        let valid_token = token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if !valid_token {
            return Err("cryptopay.token must look like <digits>:<letters and digits>".into());
        }
        if self.yookassa.shop_id.is_empty() || self.yookassa.shop_id.contains(':') {
            return Err("yookassa.shop_id must be non-empty and contain no ':'".into());
        }
        if self.yookassa.secret_key.is_empty() {
            return Err("yookassa.secret_key must be non-empty".into());
        }
        if self.webhooks.first_retry.is_zero()
            || self.webhooks.max_retry < self.webhooks.first_retry
        {
            return Err("webhooks.first_retry must be > 0 and <= webhooks.max_retry".into());
        }
        if self.webhooks.timeout.is_zero() {
            return Err("webhooks.timeout must be > 0".into());
        }
        if self.limits.max_objects == 0 || self.limits.max_notifications == 0 {
            return Err("limits must be > 0".into());
        }
        for url in [&self.cryptopay.webhook_url, &self.yookassa.webhook_url]
            .into_iter()
            .flatten()
        {
            check_url(url)?;
        }
        Ok(())
    }
}

/// Checks that `url` is an absolute http(s) URL.
pub fn check_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("not an http(s) URL: {url:?}")),
    }
}

/// Mainnet or testnet: changes the app's processing bot and the accepted assets (JET is testnet
/// only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Network {
    /// `testnet-pay.crypt.bot`, @CryptoTestnetBot.
    #[default]
    Testnet,
    /// `pay.crypt.bot`, @CryptoBot.
    Mainnet,
}

/// The emulated Crypto Pay app.
#[derive(Clone, Debug)]
pub struct CryptoPayConfig {
    /// The app token (`Crypto-Pay-API-Token`), also the webhook signing secret's source.
    pub token: String,
    /// The app's name (`getMe`).
    pub app_name: String,
    /// Which network the app lives on.
    pub network: Network,
    /// Where `invoice_paid` updates are POSTed; `None`: webhooks off.
    pub webhook_url: Option<String>,
}

impl Default for CryptoPayConfig {
    fn default() -> Self {
        Self {
            token: DEFAULT_CRYPTOPAY_TOKEN.into(),
            app_name: "Tollgate (emulated)".into(),
            network: Network::Testnet,
            webhook_url: None,
        }
    }
}

/// The emulated YooKassa shop.
#[derive(Clone, Debug)]
pub struct YooKassaConfig {
    /// The shop id (Basic auth user name).
    pub shop_id: String,
    /// The secret key (Basic auth password).
    pub secret_key: String,
    /// Where notifications are POSTed; `None`: notifications off.
    pub webhook_url: Option<String>,
    /// How long a `pending` payment waits for the payer before it is cancelled with
    /// `expired_on_confirmation` (YooKassa: 1 hour for cards).
    pub confirmation_window: Duration,
    /// How long a `waiting_for_capture` payment waits before `expired_on_capture`.
    pub capture_window: Duration,
    /// Whether payments must carry a 54-FZ `receipt` (a shop with fiscalization on).
    pub fiscalization_enabled: bool,
}

impl Default for YooKassaConfig {
    fn default() -> Self {
        Self {
            shop_id: DEFAULT_YOOKASSA_SHOP_ID.into(),
            secret_key: DEFAULT_YOOKASSA_SECRET_KEY.into(),
            webhook_url: None,
            confirmation_window: Duration::from_secs(3600),
            capture_window: Duration::from_secs(7 * 24 * 3600),
            fiscalization_enabled: false,
        }
    }
}

/// Notification delivery: one attempt waits `timeout`; a failed one (anything but HTTP 200) is
/// retried after `first_retry`, doubling up to `max_retry`, on emulated time, until the
/// provider's window ends (YooKassa 24 h; Crypto Pay 3 days or 17 attempts).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// How long one delivery attempt may take.
    pub timeout: Duration,
    /// Delay before the first retry.
    pub first_retry: Duration,
    /// Longest delay between two attempts.
    pub max_retry: Duration,
    /// Crypto Pay's attempts in all (1.5.2: 17).
    pub cryptopay_max_attempts: u32,
    /// Crypto Pay's retry window (1.5.2: 3 days).
    pub cryptopay_window: Duration,
    /// YooKassa's retry window (24 hours).
    pub yookassa_window: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(3 * 3600),
            cryptopay_max_attempts: 17,
            cryptopay_window: Duration::from_secs(3 * 24 * 3600),
            yookassa_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// Bounds of the in-memory state, so a long sandbox session or a benchmark cannot grow it
/// without end.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Invoices plus payments plus refunds kept; creating more answers an error.
    pub max_objects: usize,
    /// Notifications kept; the oldest finished ones are forgotten first.
    pub max_notifications: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_objects: 200_000,
            max_notifications: 20_000,
        }
    }
}
