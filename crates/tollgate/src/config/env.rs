//! Deployment settings and secrets from the environment.
//!
//! Operators already know these names from other bots (`BOT_TOKEN`, `DATABASE_URL`, …).
//! Every variable is parsed into a typed value once, at start; every problem is collected
//! (not just the first) and names the variable, the bad value (secrets masked) and the fix.
//! A misspelt `TOLLGATE_*` variable is an error rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::duration::{format_duration, parse_duration};
use super::secret::{Secret, describe_secret};
use super::{ConfigError, ConfigErrors};

/// A snapshot of environment variables; tests build one from a map instead of the process.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `key`; an empty value counts as unset (that is how `KEY=` in an env file
    /// is usually meant).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_owned(), value.to_owned());
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}

/// Every environment variable Tollgate reads, with its documentation line. The README's
/// reference table and the unknown-variable check both come from this list.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "BOT_TOKEN",
        "Telegram bot token from @BotFather (required for `run`; secret)",
    ),
    (
        "ADMIN_IDS",
        "comma-separated Telegram user ids of admins (default: none)",
    ),
    (
        "DATABASE_URL",
        "sqlite://PATH or postgres://USER:PASS@HOST/DB (default sqlite://data/tollgate.db)",
    ),
    (
        "DATABASE_MAX_CONNECTIONS",
        "connection pool size (default 8 for SQLite, 16 for PostgreSQL)",
    ),
    (
        "DATABASE_ACQUIRE_TIMEOUT",
        "longest wait for a pooled connection (default 5s)",
    ),
    (
        "DATABASE_STATEMENT_TIMEOUT",
        "server-side statement timeout on PostgreSQL (default 30s)",
    ),
    (
        "PUBLIC_URL",
        "public base URL of this service; when set, Telegram delivers updates by webhook, otherwise the service polls",
    ),
    (
        "WEBHOOK_SECRET",
        "secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (required with PUBLIC_URL; 32-256 of A-Z a-z 0-9 _ -, e.g. `openssl rand -hex 32`)",
    ),
    (
        "WEBHOOK_PATH",
        "path of the webhook endpoint (default /telegram/webhook)",
    ),
    ("BIND_ADDR", "IP address to listen on (default 0.0.0.0)"),
    (
        "PORT",
        "TCP port of the HTTP server (default 8080; 0 picks a free port and logs it)",
    ),
    (
        "TELEGRAM_API_URL",
        "Bot API base URL (default https://api.telegram.org; a local Bot API server or the emulator)",
    ),
    (
        "PAYMENT_PROVIDER_TOKEN",
        "Telegram payment provider token for card payments (optional; secret)",
    ),
    (
        "STARS_RECONCILE_INTERVAL",
        "how often Telegram's Stars transactions are compared with recorded payments, 10s-24h (default 5m)",
    ),
    (
        "JOBS_INTERVAL",
        "how often the notice and auto-renewal jobs look for due work, 50ms-1h (default: notices 30s, auto-renewal 5m)",
    ),
    (
        "TOLLGATE_TEST_CLOCK_OFFSET_FILE",
        "tests only: a file holding milliseconds added to the clock, read at every use (time travel shared by several processes); never set it in production",
    ),
    (
        "OUTBOX_RATE",
        "messages per second the outbox sender sends across all chats (default 25; Telegram allows about 30)",
    ),
    (
        "OUTBOX_PER_CHAT_INTERVAL",
        "least time between two messages to one chat, 0s-10s (default 1s; Telegram allows about one per second per chat)",
    ),
    (
        "WEBHOOK_MAX_CONNECTIONS",
        "max_connections registered with setWebhook, 1-100 (default 40)",
    ),
    (
        "HANDLER_DEADLINE",
        "longest a handler may spend on one update before it is cut and retried (default 30s)",
    ),
    (
        "POLL_TIMEOUT",
        "long-poll timeout of getUpdates in polling mode, 1s-50s (default 25s)",
    ),
    (
        "WATCHDOG_TIMEOUT",
        "a component without a heartbeat for this long is restarted in place (default 30s)",
    ),
    (
        "INBOX_RETENTION",
        "how long handled updates are kept before pruning (default 7d)",
    ),
    (
        "OUTBOX_RETENTION",
        "how long sent or failed messages and their attempts are kept (default 30d)",
    ),
    (
        "FEED_BASE_URL",
        "base URL of the subscription feed shown to users as <base>/sub/<token> (default PUBLIC_URL, else http://BIND_ADDR:PORT)",
    ),
    (
        "NODE_CALL_TIMEOUT",
        "deadline of each call to a node agent, 1s-2m (default 10s); provisioning claims last three times this",
    ),
    (
        "NODE_RECONCILE_INTERVAL",
        "how often each node's user list is compared with the database and repaired, 10s-24h (default 5m)",
    ),
    (
        "NODE_RECONCILE_MAX_REMOVALS",
        "reconcile removes more users from a node in one pass only with `tollgate reconcile --allow-removals` when it is over both this count and NODE_RECONCILE_MAX_REMOVAL_SHARE, 0-1000000 (default 10)",
    ),
    (
        "NODE_RECONCILE_MAX_REMOVAL_SHARE",
        "the same limit as a percentage of the node's users, 0-100 (default 10)",
    ),
    ("LOG_FORMAT", "text (default) or json"),
    (
        "RUST_LOG",
        "log filter, e.g. info or tollgate=debug (default info)",
    ),
    (
        "SHUTDOWN_TIMEOUT",
        "how long SIGTERM waits for in-flight work before exiting (default 25s)",
    ),
    (
        "TOLLGATE_CONFIG",
        "path of the catalog TOML file (default tollgate.toml)",
    ),
    (
        "TOLLGATE_REQUIRE_PG",
        "test harness only: 1 makes PostgreSQL tests fail instead of skip when the server is unreachable",
    ),
    (
        "TOLLGATE_REQUIRE_V2RAY",
        "test harness only: 1 makes V2Ray tests fail instead of skip when v2ray is missing",
    ),
    (
        "TOLLGATE_V2RAY_BIN",
        "test harness only: path of the v2ray binary the node tests start",
    ),
    (
        "TOLLGATE_REQUIRE_CHROMIUM",
        "test harness only: 1 makes browser tests fail instead of skip when chromium is missing",
    ),
];

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tollgate.db";
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
pub const DEFAULT_WEBHOOK_PATH: &str = "/telegram/webhook";
/// The shortest `WEBHOOK_SECRET` accepted (`openssl rand -hex 32` gives 64).
pub const MIN_WEBHOOK_SECRET: usize = 32;
/// Telegram redelivers an unacknowledged update for up to 24 hours; a handled update's inbox
/// row must outlive that window, or a late redelivery would be taken for a new update.
const MIN_INBOX_RETENTION: Duration = Duration::from_secs(25 * 3600);

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file; its folder is created at start.
    Sqlite { path: PathBuf },
    /// A PostgreSQL server; the URL may carry a password, so it is a secret.
    Postgres { url: Secret<String> },
}

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let hint = "use sqlite://PATH (e.g. sqlite://data/tollgate.db) or postgres://USER:PASSWORD@HOST:5432/DATABASE";
        if let Some(rest) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path.starts_with(':') {
                return Err(format!(
                    "{text:?} names no file: an in-memory database would lose every payment on restart; {hint}"
                ));
            }
            return Ok(DatabaseUrl::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let parsed = Url::parse(text)
                .map_err(|e| format!("{} is not a valid URL ({e}); {hint}", mask_url(text)))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!("{} has no host; {hint}", mask_url(text)));
            }
            return Ok(DatabaseUrl::Postgres {
                url: Secret::new(text.to_owned()),
            });
        }
        Err(format!(
            "{} is neither a SQLite nor a PostgreSQL URL; {hint}",
            mask_url(text)
        ))
    }

    /// A printable form: the PostgreSQL password is masked.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres { url } => mask_url(url.expose()),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DatabaseUrl::Sqlite { .. })
    }
}

/// Replaces the password of a URL with `***` (and keeps everything else readable).
pub fn mask_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, excluded above.
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Unparseable: show only the scheme, the rest may hold credentials.
        Err(_) => match text.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<unparseable>"),
            None => "<unparseable>".to_owned(),
        },
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

/// How updates reach us. Webhook mode needs a public URL and a secret; without a public URL
/// the service long-polls `getUpdates`.
#[derive(Debug, Clone)]
pub enum IntakeMode {
    Webhook {
        public_url: Url,
        secret: Secret<String>,
    },
    Polling,
}

impl IntakeMode {
    pub fn name(&self) -> &'static str {
        match self {
            IntakeMode::Webhook { .. } => "webhook",
            IntakeMode::Polling => "polling",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

/// The bot token, shaped `<bot id>:<secret>`; the bot id part is public.
#[derive(Debug, Clone)]
pub struct BotToken {
    pub bot_id: i64,
    pub token: Secret<String>,
}

impl BotToken {
    pub fn parse(text: &str) -> Result<BotToken, String> {
        let bad = || {
            format!(
                "{} does not look like a bot token: expected <digits>:<at least 30 of A-Z a-z 0-9 _ ->, as @BotFather prints it",
                describe_secret(text)
            )
        };
        let (id, rest) = text.split_once(':').ok_or_else(bad)?;
        let bot_id: i64 = id.parse().map_err(|_| bad())?;
        let ok_chars = rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if bot_id <= 0 || rest.len() < 30 || !ok_chars {
            return Err(bad());
        }
        Ok(BotToken {
            bot_id,
            token: Secret::new(text.to_owned()),
        })
    }

    pub fn redacted(&self) -> String {
        format!("{}:***", self.bot_id)
    }
}

/// Tuning of the Telegram pipeline.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub outbox_rate: f64,
    /// Least time between two messages to one chat.
    pub outbox_per_chat_interval: Duration,
    pub webhook_max_connections: u32,
    pub handler_deadline: Duration,
    pub poll_timeout: Duration,
    pub watchdog_timeout: Duration,
    pub inbox_retention: Duration,
    pub outbox_retention: Duration,
}

/// Talking to node agents.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Deadline of every agent call.
    pub call_timeout: Duration,
    /// Period of the reconcile job per node.
    pub reconcile_interval: Duration,
    /// Reconcile's removal limit per pass: refused when over this count *and* the share.
    pub reconcile_max_removals: usize,
    /// The same limit in percent of the node's users.
    pub reconcile_max_removal_share: u8,
}

/// Where client apps fetch the subscription feed: `<url>/sub/<token>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedBase {
    /// Without a trailing slash.
    pub url: String,
    pub source: FeedBaseSource,
}

/// Which setting the feed's base URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedBaseSource {
    FeedBaseUrl,
    PublicUrl,
    /// Neither was set: the listener's own address, which only works for local testing.
    Listener,
}

/// Everything `tollgate run` takes from the environment.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub bot_token: BotToken,
    pub admin_ids: Vec<i64>,
    pub database: DatabaseSettings,
    pub intake: IntakeMode,
    pub webhook_path: String,
    pub listen: SocketAddr,
    pub telegram_api_url: Url,
    pub payment_provider_token: Option<Secret<String>>,
    /// How often the Stars reconciler looks for payments whose update was lost.
    pub stars_reconcile_interval: Duration,
    /// The notice and auto-renewal jobs' interval instead of their own (tests run a month of
    /// jobs in a minute).
    pub jobs_interval: Option<Duration>,
    /// Tests only: the clock is real time plus the milliseconds in this file.
    pub test_clock_offset_file: Option<PathBuf>,
    pub pipeline: PipelineSettings,
    pub nodes: NodeSettings,
    pub feed_base: FeedBase,
    pub log: LogSettings,
    pub config_path: PathBuf,
    pub shutdown_timeout: Duration,
}

/// One line of the effective-configuration report: a variable, its printable value (secrets
/// masked) and whether it was set or defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingLine {
    pub key: String,
    pub value: String,
    pub source: &'static str,
}

/// Collects problems while reading variables, so one run reports all of them.
struct Reader<'a> {
    env: &'a Env,
    errors: Vec<ConfigError>,
    report: Vec<SettingLine>,
}

impl<'a> Reader<'a> {
    fn new(env: &'a Env) -> Self {
        Reader {
            env,
            errors: Vec::new(),
            report: Vec::new(),
        }
    }

    fn fail(&mut self, key: &str, problem: String, fix: &str) {
        self.errors.push(ConfigError::new(key, problem, fix));
    }

    /// Reads `key` with `parse`, or `default` when unset. `show` renders the value for the
    /// report (secrets must mask themselves there).
    fn read<T>(
        &mut self,
        key: &str,
        default: Option<&str>,
        fix: &str,
        parse: impl Fn(&str) -> Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Option<T> {
        let (raw, source) = match (self.env.get(key), default) {
            (Some(v), _) => (v.to_owned(), "set"),
            (None, Some(d)) => (d.to_owned(), "default"),
            (None, None) => return None,
        };
        match parse(raw.trim()) {
            Ok(v) => {
                self.report.push(SettingLine {
                    key: key.to_owned(),
                    value: show(&v),
                    source,
                });
                Some(v)
            }
            Err(problem) => {
                self.fail(key, problem, fix);
                None
            }
        }
    }

    fn required<T>(
        &mut self,
        key: &str,
        fix: &str,
        parse: impl Fn(&str) -> Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Option<T> {
        if self.env.get(key).is_none() {
            self.fail(key, "is not set".to_owned(), fix);
            return None;
        }
        self.read(key, None, fix, parse, show)
    }
}

fn parse_duration_var(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?} is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment"));
    }
    Ok(url)
}

/// Reads the variables every command needs to reach the database.
pub fn database_settings(env: &Env) -> Result<DatabaseSettings, ConfigErrors> {
    let mut r = Reader::new(env);
    let db = read_database(&mut r);
    match (db, r.errors.is_empty()) {
        (Some(db), true) => Ok(db),
        _ => Err(ConfigErrors(r.errors)),
    }
}

fn read_database(r: &mut Reader<'_>) -> Option<DatabaseSettings> {
    let url = r.read(
        "DATABASE_URL",
        Some(DEFAULT_DATABASE_URL),
        "set DATABASE_URL=sqlite://data/tollgate.db or DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DATABASE",
        DatabaseUrl::parse,
        DatabaseUrl::redacted,
    );
    let default_pool = match &url {
        Some(DatabaseUrl::Postgres { .. }) => "16",
        _ => "8",
    };
    let max_connections = r.read(
        "DATABASE_MAX_CONNECTIONS",
        Some(default_pool),
        "set DATABASE_MAX_CONNECTIONS to a pool size from 2 to 1000, e.g. 16",
        |t| match t.parse::<u32>() {
            Ok(n) if (2..=1000).contains(&n) => Ok(n),
            _ => Err(format!("{t:?} is not a pool size from 2 to 1000")),
        },
        u32::to_string,
    );
    let fix_timeout = "use a duration with a unit between 100ms and 10m, e.g. 5s";
    let bounded = |t: &str| {
        let d = parse_duration_var(t)?;
        if d < Duration::from_millis(100) || d > Duration::from_secs(600) {
            return Err(format!("{t:?} is outside 100ms..10m"));
        }
        Ok(d)
    };
    let acquire_timeout = r.read(
        "DATABASE_ACQUIRE_TIMEOUT",
        Some("5s"),
        fix_timeout,
        bounded,
        |d| format_duration(*d),
    );
    let statement_timeout = r.read(
        "DATABASE_STATEMENT_TIMEOUT",
        Some("30s"),
        fix_timeout,
        bounded,
        |d| format_duration(*d),
    );
    Some(DatabaseSettings {
        url: url?,
        max_connections: max_connections?,
        acquire_timeout: acquire_timeout?,
        statement_timeout: statement_timeout?,
    })
}

fn duration_between(min: Duration, max: Duration) -> impl Fn(&str) -> Result<Duration, String> {
    move |t| {
        let d = parse_duration(t)?;
        if d < min || d > max {
            return Err(format!(
                "{t:?} is outside {}..{}",
                format_duration(min),
                format_duration(max)
            ));
        }
        Ok(d)
    }
}

fn read_pipeline(r: &mut Reader<'_>) -> Option<PipelineSettings> {
    let show = |d: &Duration| format_duration(*d);
    let outbox_rate = r.read(
        "OUTBOX_RATE",
        Some("25"),
        "set OUTBOX_RATE to messages per second from 1 to 100000, e.g. 25 (Telegram allows about 30; paid broadcasts 1000; a local Bot API server or benchmark more)",
        |t| match t.parse::<f64>() {
            Ok(v) if (1.0..=100_000.0).contains(&v) => Ok(v),
            _ => Err(format!("{t:?} is not a rate from 1 to 100000 messages per second")),
        },
        |v| v.to_string(),
    );
    let outbox_per_chat_interval = r.read(
        "OUTBOX_PER_CHAT_INTERVAL",
        Some("1s"),
        "use a duration between 0s and 10s, e.g. 1s (Telegram allows about one message per second per chat; less only against a local Bot API server or the emulator)",
        duration_between(Duration::ZERO, Duration::from_secs(10)),
        show,
    );
    let webhook_max_connections = r.read(
        "WEBHOOK_MAX_CONNECTIONS",
        Some("40"),
        "set WEBHOOK_MAX_CONNECTIONS to a number from 1 to 100 (Telegram's range), e.g. 40",
        |t| match t.parse::<u32>() {
            Ok(v) if (1..=100).contains(&v) => Ok(v),
            _ => Err(format!("{t:?} is not a number from 1 to 100")),
        },
        u32::to_string,
    );
    let handler_deadline = r.read(
        "HANDLER_DEADLINE",
        Some("30s"),
        "use a duration between 1s and 10m, e.g. 30s",
        duration_between(Duration::from_secs(1), Duration::from_secs(600)),
        show,
    );
    let poll_timeout = r.read(
        "POLL_TIMEOUT",
        Some("25s"),
        "use a duration between 1s and 50s (Telegram's cap), e.g. 25s",
        duration_between(Duration::from_secs(1), Duration::from_secs(50)),
        show,
    );
    let watchdog_timeout = r.read(
        "WATCHDOG_TIMEOUT",
        Some("30s"),
        "use a duration between 1s and 10m, e.g. 30s",
        duration_between(Duration::from_secs(1), Duration::from_secs(600)),
        show,
    );
    let inbox_retention = r.read(
        "INBOX_RETENTION",
        Some("7d"),
        "use a duration between 25h and 365d, e.g. 7d: Telegram may redeliver an update for 24 h, and a shorter retention would handle a redelivered update twice",
        duration_between(MIN_INBOX_RETENTION, Duration::from_secs(365 * 86_400)),
        show,
    );
    let outbox_retention = r.read(
        "OUTBOX_RETENTION",
        Some("30d"),
        "use a duration between 1h and 365d, e.g. 30d",
        duration_between(Duration::from_secs(3600), Duration::from_secs(365 * 86_400)),
        show,
    );
    Some(PipelineSettings {
        outbox_rate: outbox_rate?,
        outbox_per_chat_interval: outbox_per_chat_interval?,
        webhook_max_connections: webhook_max_connections?,
        handler_deadline: handler_deadline?,
        poll_timeout: poll_timeout?,
        watchdog_timeout: watchdog_timeout?,
        inbox_retention: inbox_retention?,
        outbox_retention: outbox_retention?,
    })
}

fn read_nodes(r: &mut Reader<'_>) -> Option<NodeSettings> {
    let show = |d: &Duration| format_duration(*d);
    let call_timeout = r.read(
        "NODE_CALL_TIMEOUT",
        Some("10s"),
        "use a duration between 1s and 2m, e.g. 10s",
        duration_between(Duration::from_secs(1), Duration::from_secs(120)),
        show,
    );
    let reconcile_interval = r.read(
        "NODE_RECONCILE_INTERVAL",
        Some("5m"),
        "use a duration between 10s and 24h, e.g. 5m",
        duration_between(Duration::from_secs(10), Duration::from_secs(86_400)),
        show,
    );
    let reconcile_max_removals = r.read(
        "NODE_RECONCILE_MAX_REMOVALS",
        Some("10"),
        "set NODE_RECONCILE_MAX_REMOVALS to a number of users from 0 to 1000000, e.g. 10",
        |t| match t.parse::<usize>() {
            Ok(v) if v <= 1_000_000 => Ok(v),
            _ => Err(format!("{t:?} is not a number from 0 to 1000000")),
        },
        usize::to_string,
    );
    let reconcile_max_removal_share = r.read(
        "NODE_RECONCILE_MAX_REMOVAL_SHARE",
        Some("10"),
        "set NODE_RECONCILE_MAX_REMOVAL_SHARE to a percentage from 0 to 100, e.g. 10",
        |t| match t.trim_end_matches('%').trim().parse::<u8>() {
            Ok(v) if v <= 100 => Ok(v),
            _ => Err(format!("{t:?} is not a percentage from 0 to 100")),
        },
        |v| format!("{v}%"),
    );
    Some(NodeSettings {
        call_timeout: call_timeout?,
        reconcile_interval: reconcile_interval?,
        reconcile_max_removals: reconcile_max_removals?,
        reconcile_max_removal_share: reconcile_max_removal_share?,
    })
}

/// `FEED_BASE_URL`, else `PUBLIC_URL`, else the listener's address (loopback when it listens
/// on every interface).
fn read_feed_base(
    r: &mut Reader<'_>,
    public_url: Option<String>,
    bind: Option<IpAddr>,
    port: Option<u16>,
) -> Option<FeedBase> {
    let explicit = r.read(
        "FEED_BASE_URL",
        None,
        "set FEED_BASE_URL to the https address client apps reach this service at, e.g. https://vpn.example.com",
        parse_http_url,
        Url::to_string,
    );
    let trimmed = |u: String| u.trim_end_matches('/').to_owned();
    let base = match (explicit, public_url) {
        (Some(url), _) => FeedBase {
            url: trimmed(url.to_string()),
            source: FeedBaseSource::FeedBaseUrl,
        },
        // A FEED_BASE_URL that failed to parse is reported already.
        _ if r.env.get("FEED_BASE_URL").is_some() => return None,
        (None, Some(url)) => FeedBase {
            url: trimmed(url),
            source: FeedBaseSource::PublicUrl,
        },
        (None, None) => {
            let ip = match bind? {
                ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
                ip => ip,
            };
            let host = match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            };
            FeedBase {
                url: format!("http://{host}:{}", port?),
                source: FeedBaseSource::Listener,
            }
        }
    };
    if r.env.get("FEED_BASE_URL").is_none() {
        r.report.push(SettingLine {
            key: "FEED_BASE_URL".to_owned(),
            value: base.url.clone(),
            source: "default",
        });
    }
    Some(base)
}

/// Reads logging settings; usable before anything else so that errors can be logged.
pub fn log_settings(env: &Env) -> Result<LogSettings, ConfigErrors> {
    let mut r = Reader::new(env);
    let log = read_log(&mut r);
    match (log, r.errors.is_empty()) {
        (Some(log), true) => Ok(log),
        _ => Err(ConfigErrors(r.errors)),
    }
}

fn read_log(r: &mut Reader<'_>) -> Option<LogSettings> {
    let format = r.read(
        "LOG_FORMAT",
        Some("text"),
        "set LOG_FORMAT=text for people or LOG_FORMAT=json for log collectors",
        |t| match t {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format")),
        },
        |f| match f {
            LogFormat::Text => "text".to_owned(),
            LogFormat::Json => "json".to_owned(),
        },
    );
    let filter = r.read(
        "RUST_LOG",
        Some("info"),
        "use a tracing filter such as info, warn or tollgate=debug,sqlx=warn",
        |t| {
            tracing_subscriber::EnvFilter::try_new(t)
                .map(|_| t.to_owned())
                .map_err(|e| format!("{t:?} is not a log filter ({e})"))
        },
        Clone::clone,
    );
    Some(LogSettings {
        format: format?,
        filter: filter?,
    })
}

/// Reads and validates every deployment variable for `tollgate run`.
///
/// Returns the settings plus the lines of the effective-configuration report, or every
/// problem found.
pub fn deployment(env: &Env) -> Result<(Deployment, Vec<SettingLine>), ConfigErrors> {
    let mut r = Reader::new(env);

    let bot_token = r.required(
        "BOT_TOKEN",
        "set BOT_TOKEN to the token @BotFather gave you (or run `tollgate sandbox`, which needs none)",
        BotToken::parse,
        BotToken::redacted,
    );
    let admin_ids = r.read(
        "ADMIN_IDS",
        Some(""),
        "set ADMIN_IDS to comma-separated numeric Telegram user ids, e.g. ADMIN_IDS=12345,67890 (ask @userinfobot for yours)",
        |t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s.parse::<i64>() {
                    Ok(id) if id > 0 => Ok(id),
                    _ => Err(format!("{s:?} is not a Telegram user id")),
                })
                .collect::<Result<Vec<_>, _>>()
        },
        |ids| {
            if ids.is_empty() {
                "(none)".to_owned()
            } else {
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            }
        },
    );
    let database = read_database(&mut r);

    let public_url = r.read(
        "PUBLIC_URL",
        None,
        "set PUBLIC_URL to the https address Telegram can reach, e.g. https://bot.example.com, or unset it to poll",
        parse_http_url,
        Url::to_string,
    );
    // The secret is the only guard against forged updates, `successful_payment` included:
    // Telegram accepts one character, we demand enough randomness that guessing is hopeless.
    let secret_rule = |t: &str| {
        let charset = t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !charset || t.len() > 256 {
            Err(format!(
                "{} is not a valid secret token: Telegram allows 1-256 characters of A-Z a-z 0-9 _ -",
                describe_secret(t)
            ))
        } else if t.len() < MIN_WEBHOOK_SECRET {
            Err(format!(
                "{} is too short to guard against forged payments: use at least {MIN_WEBHOOK_SECRET}",
                describe_secret(t)
            ))
        } else {
            Ok(Secret::new(t.to_owned()))
        }
    };
    let secret_fix = "set WEBHOOK_SECRET to 32 or more random characters of A-Z a-z 0-9 _ -, e.g. from `openssl rand -hex 32`";
    let webhook_secret = r.read("WEBHOOK_SECRET", None, secret_fix, secret_rule, |_| {
        "***".to_owned()
    });
    let public_base = public_url.as_ref().map(Url::to_string);
    let intake = match (public_url, webhook_secret) {
        (Some(public_url), Some(secret)) => Some(IntakeMode::Webhook { public_url, secret }),
        (Some(_), None) if env.get("WEBHOOK_SECRET").is_none() => {
            r.fail(
                "WEBHOOK_SECRET",
                "is not set, but PUBLIC_URL is: without it anyone could post fake updates"
                    .to_owned(),
                secret_fix,
            );
            None
        }
        (None, _) if env.get("PUBLIC_URL").is_none() => Some(IntakeMode::Polling),
        // The variable that failed to parse has already been reported.
        _ => None,
    };
    let webhook_path = r.read(
        "WEBHOOK_PATH",
        Some(DEFAULT_WEBHOOK_PATH),
        "set WEBHOOK_PATH to an absolute path such as /telegram/webhook",
        |t| {
            let ok = t.starts_with('/')
                && t.len() > 1
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
            if ok {
                Ok(t.to_owned())
            } else {
                Err(format!(
                    "{t:?} is not an absolute path of letters, digits, / - _ ."
                ))
            }
        },
        Clone::clone,
    );
    let bind = r.read(
        "BIND_ADDR",
        Some("0.0.0.0"),
        "set BIND_ADDR to an IP address such as 0.0.0.0 (all interfaces) or 127.0.0.1",
        |t| {
            t.parse::<IpAddr>()
                .map_err(|_| format!("{t:?} is not an IP address"))
        },
        IpAddr::to_string,
    );
    let port = r.read(
        "PORT",
        Some("8080"),
        "set PORT to a TCP port from 1 to 65535, e.g. PORT=8080 (0 picks a free port and logs it)",
        |t| {
            t.parse::<u16>()
                .map_err(|_| format!("{t:?} is not a port number from 0 to 65535"))
        },
        u16::to_string,
    );
    let telegram_api_url = r.read(
        "TELEGRAM_API_URL",
        Some(DEFAULT_TELEGRAM_API_URL),
        "set TELEGRAM_API_URL to the Bot API base URL without a trailing path, e.g. https://api.telegram.org",
        |t| {
            let url = parse_http_url(t.trim_end_matches('/'))?;
            Ok(url)
        },
        Url::to_string,
    );
    let payment_provider_token = r.read(
        "PAYMENT_PROVIDER_TOKEN",
        None,
        "set PAYMENT_PROVIDER_TOKEN to the token @BotFather shows under Payments, or unset it to disable card payments",
        |t| {
            if t.contains(char::is_whitespace) {
                Err(format!("{} contains whitespace", describe_secret(t)))
            } else {
                Ok(Secret::new(t.to_owned()))
            }
        },
        |_| "***".to_owned(),
    );
    let stars_reconcile_interval = r.read(
        "STARS_RECONCILE_INTERVAL",
        Some("5m"),
        "use a duration between 10s and 24h, e.g. 5m",
        duration_between(Duration::from_secs(10), Duration::from_secs(86_400)),
        |d: &Duration| format_duration(*d),
    );
    let jobs_interval = r.read(
        "JOBS_INTERVAL",
        None,
        "use a duration between 50ms and 1h, e.g. 30s, or unset it to keep each job's own",
        duration_between(Duration::from_millis(50), Duration::from_secs(3_600)),
        |d: &Duration| format_duration(*d),
    );
    let test_clock_offset_file = r.read(
        "TOLLGATE_TEST_CLOCK_OFFSET_FILE",
        None,
        "unset TOLLGATE_TEST_CLOCK_OFFSET_FILE (it is for tests), or give a file path",
        |t| Ok(PathBuf::from(t)),
        |p| p.display().to_string(),
    );
    let pipeline = read_pipeline(&mut r);
    let nodes = read_nodes(&mut r);
    let feed_base = read_feed_base(&mut r, public_base, bind, port);
    let log = read_log(&mut r);
    let config_path = r.read(
        "TOLLGATE_CONFIG",
        Some("tollgate.toml"),
        "set TOLLGATE_CONFIG to the path of the catalog file",
        |t| Ok(PathBuf::from(t)),
        |p| p.display().to_string(),
    );
    let shutdown_timeout = r.read(
        "SHUTDOWN_TIMEOUT",
        Some("25s"),
        "use a duration between 1s and 10m, e.g. 25s (keep it below your orchestrator's kill timeout)",
        |t| {
            let d = parse_duration(t)?;
            if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
                return Err(format!("{t:?} is outside 1s..10m"));
            }
            Ok(d)
        },
        |d| format_duration(*d),
    );

    // Typos in our own namespace would otherwise be ignored silently.
    let known: Vec<&str> = ENV_VARS.iter().map(|(k, _)| *k).collect();
    let unknown: Vec<String> = env
        .keys()
        .filter(|k| k.starts_with("TOLLGATE_") && !known.contains(k))
        .map(str::to_owned)
        .collect();
    for key in unknown {
        let suggestion = known
            .iter()
            .filter(|k| k.starts_with("TOLLGATE_"))
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        r.fail(
            &key,
            "is not a Tollgate setting".to_owned(),
            &format!("remove it or fix its name; known TOLLGATE_ variables: {suggestion}"),
        );
    }

    if !r.errors.is_empty() {
        return Err(ConfigErrors(r.errors));
    }
    let built = (|| {
        Some(Deployment {
            bot_token: bot_token?,
            admin_ids: admin_ids?,
            database: database?,
            intake: intake?,
            webhook_path: webhook_path?,
            listen: SocketAddr::new(bind?, port?),
            telegram_api_url: telegram_api_url?,
            payment_provider_token,
            stars_reconcile_interval: stars_reconcile_interval?,
            jobs_interval,
            test_clock_offset_file,
            pipeline: pipeline?,
            nodes: nodes?,
            feed_base: feed_base?,
            log: log?,
            config_path: config_path?,
            shutdown_timeout: shutdown_timeout?,
        })
    })();
    match built {
        Some(d) => Ok((d, r.report)),
        // Every `None` above comes with an error; this is a defensive fallback.
        None => Err(ConfigErrors(vec![ConfigError::new(
            "environment",
            "could not be read".to_owned(),
            "check the variables listed in README.md",
        )])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr";

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut e = Env::from_pairs([("BOT_TOKEN", TOKEN)]);
        for (k, v) in pairs {
            e.set(k, v);
        }
        e
    }

    fn errors(pairs: &[(&str, &str)]) -> String {
        match deployment(&env(pairs)) {
            Ok(_) => panic!("expected an error for {pairs:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_polling_on_sqlite() {
        let (d, report) = deployment(&env(&[])).unwrap();
        assert!(matches!(d.intake, IntakeMode::Polling));
        assert_eq!(
            d.database.url,
            DatabaseUrl::Sqlite {
                path: "data/tollgate.db".into()
            }
        );
        assert_eq!(d.listen.port(), 8080);
        assert_eq!(d.database.max_connections, 8);
        assert_eq!(d.telegram_api_url.as_str(), "https://api.telegram.org/");
        assert!(
            report
                .iter()
                .any(|l| l.key == "PORT" && l.value == "8080" && l.source == "default")
        );
        assert!(report.iter().all(|l| !l.value.contains("AAbbCC")));
    }

    #[test]
    fn webhook_mode_needs_a_secret() {
        let e = errors(&[("PUBLIC_URL", "https://bot.example.com")]);
        assert!(e.contains("WEBHOOK_SECRET"), "{e}");
        let (d, _) = deployment(&env(&[
            ("PUBLIC_URL", "https://bot.example.com"),
            ("WEBHOOK_SECRET", "s3cr3t_-value-0123456789abcdef-xyz"),
        ]))
        .unwrap();
        assert!(matches!(d.intake, IntakeMode::Webhook { .. }));
    }

    #[test]
    fn each_bad_value_names_its_key_and_fix() {
        let cases: &[(&str, &str, &str)] = &[
            ("PORT", "80a", "not a port number"),
            ("PORT", "65536", "not a port number"),
            ("BIND_ADDR", "localhost", "not an IP address"),
            (
                "DATABASE_URL",
                "mysql://x",
                "neither a SQLite nor a PostgreSQL URL",
            ),
            ("DATABASE_URL", "sqlite::memory:", "in-memory"),
            ("DATABASE_MAX_CONNECTIONS", "1", "pool size"),
            ("DATABASE_ACQUIRE_TIMEOUT", "5", "no unit"),
            ("ADMIN_IDS", "12,abc", "\"abc\" is not a Telegram user id"),
            ("PUBLIC_URL", "ftp://x", "not an http(s) URL"),
            ("WEBHOOK_PATH", "telegram", "absolute path"),
            ("TELEGRAM_API_URL", "not a url", "not a URL"),
            ("LOG_FORMAT", "xml", "not a log format"),
            ("RUST_LOG", "tollgate=loud", "not a log filter"),
            ("SHUTDOWN_TIMEOUT", "2h", "outside 1s..10m"),
            ("OUTBOX_RATE", "0.5", "not a rate"),
            ("OUTBOX_PER_CHAT_INTERVAL", "11s", "outside 0s..10s"),
            ("WEBHOOK_MAX_CONNECTIONS", "0", "not a number from 1 to 100"),
            ("POLL_TIMEOUT", "60s", "outside 1s..50s"),
            ("INBOX_RETENTION", "5m", "outside 1d1h..365d"),
            ("INBOX_RETENTION", "24h", "outside 1d1h..365d"),
            (
                "WEBHOOK_SECRET",
                "abc",
                "too short to guard against forged payments",
            ),
            ("TOLLGATE_CONFIGG", "x.toml", "not a Tollgate setting"),
            ("FEED_BASE_URL", "vpn.example.com", "not a URL"),
            ("FEED_BASE_URL", "https://vpn.example.com/?x=1", "query"),
            ("NODE_CALL_TIMEOUT", "500ms", "outside 1s..2m"),
            ("NODE_RECONCILE_INTERVAL", "2s", "outside 10s..1d"),
            ("JOBS_INTERVAL", "10ms", "outside 50ms..1h"),
            ("JOBS_INTERVAL", "2h", "outside 50ms..1h"),
        ];
        for (key, value, needle) in cases {
            let e = errors(&[(key, value)]);
            assert!(e.contains(key), "{key}: {e}");
            assert!(e.contains(needle), "{key}={value}: {e}");
            assert!(e.contains("fix:"), "{key}: {e}");
        }
    }

    #[test]
    fn missing_and_malformed_token_never_echo_the_secret() {
        let mut e = Env::default();
        e.set("PORT", "8080");
        let missing = deployment(&e).unwrap_err().to_string();
        assert!(missing.contains("BOT_TOKEN: is not set"), "{missing}");

        let bad = errors(&[("BOT_TOKEN", "123:tooShortButSecretValue")]);
        assert!(bad.contains("BOT_TOKEN"));
        assert!(!bad.contains("tooShortButSecretValue"), "{bad}");

        let bad_secret = errors(&[
            ("PUBLIC_URL", "https://bot.example.com"),
            ("WEBHOOK_SECRET", "has spaces in it"),
        ]);
        assert!(!bad_secret.contains("has spaces"), "{bad_secret}");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let e = errors(&[("PORT", "x"), ("LOG_FORMAT", "y")]);
        assert!(e.contains("PORT") && e.contains("LOG_FORMAT"), "{e}");
    }

    #[test]
    fn the_feed_base_falls_back_to_public_url_then_the_listener() {
        let (d, report) = deployment(&env(&[])).unwrap();
        assert_eq!(d.feed_base.url, "http://127.0.0.1:8080");
        assert_eq!(d.feed_base.source, FeedBaseSource::Listener);
        assert!(
            report
                .iter()
                .any(|l| l.key == "FEED_BASE_URL" && l.source == "default")
        );
        let (d, _) = deployment(&env(&[("BIND_ADDR", "::1"), ("PORT", "9000")])).unwrap();
        assert_eq!(d.feed_base.url, "http://[::1]:9000");
        let (d, _) = deployment(&env(&[
            ("PUBLIC_URL", "https://bot.example.com/"),
            ("WEBHOOK_SECRET", "s3cr3t_-value-0123456789abcdef-xyz"),
        ]))
        .unwrap();
        assert_eq!(
            (d.feed_base.url.as_str(), d.feed_base.source),
            ("https://bot.example.com", FeedBaseSource::PublicUrl)
        );
        let (d, _) = deployment(&env(&[
            ("PUBLIC_URL", "https://bot.example.com"),
            ("WEBHOOK_SECRET", "s3cr3t_-value-0123456789abcdef-xyz"),
            ("FEED_BASE_URL", "https://vpn.example.com/feeds/"),
        ]))
        .unwrap();
        assert_eq!(
            (d.feed_base.url.as_str(), d.feed_base.source),
            ("https://vpn.example.com/feeds", FeedBaseSource::FeedBaseUrl)
        );
    }

    #[test]
    fn jobs_keep_their_own_interval_unless_told() {
        let (d, _) = deployment(&env(&[])).unwrap();
        assert_eq!((d.jobs_interval, d.test_clock_offset_file), (None, None));
        let (d, _) = deployment(&env(&[
            ("JOBS_INTERVAL", "50ms"),
            ("TOLLGATE_TEST_CLOCK_OFFSET_FILE", "/tmp/offset"),
        ]))
        .unwrap();
        assert_eq!(d.jobs_interval, Some(Duration::from_millis(50)));
        assert_eq!(d.test_clock_offset_file, Some(PathBuf::from("/tmp/offset")));
    }

    #[test]
    fn node_settings_have_defaults_and_bounds() {
        let (d, _) = deployment(&env(&[])).unwrap();
        assert_eq!(d.nodes.call_timeout, Duration::from_secs(10));
        assert_eq!(d.nodes.reconcile_interval, Duration::from_secs(300));
        let (d, _) = deployment(&env(&[
            ("NODE_CALL_TIMEOUT", "2s"),
            ("NODE_RECONCILE_INTERVAL", "30s"),
        ]))
        .unwrap();
        assert_eq!(d.nodes.call_timeout, Duration::from_secs(2));
        assert_eq!(d.nodes.reconcile_interval, Duration::from_secs(30));
    }

    #[test]
    fn the_reconcile_removal_limit_defaults_to_ten_users_and_ten_percent() {
        let (d, _) = deployment(&env(&[])).unwrap();
        assert_eq!(
            (
                d.nodes.reconcile_max_removals,
                d.nodes.reconcile_max_removal_share
            ),
            (10, 10)
        );
        let (d, _) = deployment(&env(&[
            ("NODE_RECONCILE_MAX_REMOVALS", "0"),
            ("NODE_RECONCILE_MAX_REMOVAL_SHARE", "25%"),
        ]))
        .unwrap();
        assert_eq!(
            (
                d.nodes.reconcile_max_removals,
                d.nodes.reconcile_max_removal_share
            ),
            (0, 25)
        );
        for (key, bad) in [
            ("NODE_RECONCILE_MAX_REMOVALS", "-1"),
            ("NODE_RECONCILE_MAX_REMOVAL_SHARE", "101"),
        ] {
            let e = errors(&[(key, bad)]);
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn postgres_password_is_masked() {
        let url = DatabaseUrl::parse("postgres://app:pa55@db.internal:5432/tollgate").unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://app:***@db.internal:5432/tollgate"
        );
        let e = errors(&[("DATABASE_URL", "postgres://app:pa55@/x")]);
        assert!(!e.contains("pa55"), "{e}");
    }
}
