//! Deployment settings and secrets from the environment.
//!
//! Operators already know these names from other bots (`BOT_TOKEN`, `DATABASE_URL`, …).
//! Every variable is parsed into a typed value once, at start; every problem is collected
//! (not just the first) and names the variable, the bad value (secrets masked) and the fix.
//! A misspelt `TOLLGATE_*` variable is an error rather than a silently ignored setting.
//!
//! One module per group of settings, each reading its variables in the order the
//! effective-configuration report lists them; `deployment` reads the groups and assembles
//! the whole. The list of every variable is `ENV_VARS` (in `vars`).

mod backups;
mod database;
mod feed;
mod flags;
mod intake;
mod jobs;
mod logging;
mod nodes;
mod pipeline;
mod process;
mod providers;
mod reader;
mod telegram;
#[cfg(test)]
mod testing;
mod vars;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use backups::BackupSettings;
pub use database::{
    DEFAULT_DATABASE_URL, DatabaseSettings, DatabaseUrl, database_settings, mask_url,
};
pub use feed::{FeedBase, FeedBaseSource};
pub use intake::{DEFAULT_WEBHOOK_PATH, IntakeMode, MIN_WEBHOOK_SECRET};
pub use logging::{LogFormat, LogSettings, log_settings};
pub use nodes::NodeSettings;
pub use pipeline::PipelineSettings;
pub use providers::{
    CryptoNetwork, CryptoPaySettings, NotifySources, PAGE_RECHECK_DEADLINE, ProviderSettings,
    YooKassaSettings,
};
pub use telegram::{BotToken, DEFAULT_TELEGRAM_API_URL, PROXY_SCHEMES, TelegramProxy};
pub use vars::ENV_VARS;

use super::secret::Secret;
use super::{ConfigError, ConfigErrors};
use reader::Reader;

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
    /// `TELEGRAM_PROXY`: every Bot API call goes through it when set.
    pub telegram_proxy: Option<TelegramProxy>,
    /// The `backups` job's settings; `None` when `BACKUP_INTERVAL` is unset.
    pub backup: Option<BackupSettings>,
    pub payment_provider_token: Option<Secret<String>>,
    /// Crypto Pay and YooKassa, when configured, and their calls' deadline.
    pub providers: ProviderSettings,
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
    /// `TOLLGATE_FLAG_<NAME>`: values the runtime flags start with where the database has none.
    pub flag_seeds: Vec<(crate::domain::flag::Flag, bool)>,
}

/// One line of the effective-configuration report: a variable, its printable value (secrets
/// masked) and whether it was set or defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingLine {
    pub key: String,
    pub value: String,
    pub source: &'static str,
}

/// Reads and validates every deployment variable for `tollgate run`.
///
/// Returns the settings plus the lines of the effective-configuration report, or every
/// problem found.
pub fn deployment(env: &Env) -> Result<(Deployment, Vec<SettingLine>), ConfigErrors> {
    let mut r = Reader::new(env);
    // Groups in the order the report lists them.
    let (bot_token, admin_ids) = telegram::read_bot(&mut r);
    let database = database::read_database(&mut r);
    let intake = intake::read_intake(&mut r);
    let (bind, port) = intake::read_listener(&mut r);
    let api = telegram::read_bot_api(&mut r);
    let jobs = jobs::read_jobs(&mut r);
    let backup = backups::read_backups(&mut r, admin_ids.as_deref(), database.as_ref());
    let providers = providers::read_providers(&mut r);
    let pipeline = pipeline::read_pipeline(&mut r);
    let nodes = nodes::read_nodes(&mut r);
    let feed_base = feed::read_feed_base(&mut r, intake.public_base, bind, port);
    let log = logging::read_log(&mut r);
    let (config_path, shutdown_timeout) = process::read_process(&mut r);
    let flag_seeds = flags::read_flag_seeds(&mut r);
    vars::reject_unknown(&mut r);
    if let (Some(p), Some(pl)) = (&providers, &pipeline)
        && let Some((problem, fix)) = p.exceeds(pl.handler_deadline)
    {
        r.fail("PROVIDER_CALL_TIMEOUT", problem, &fix);
    }

    if !r.errors.is_empty() {
        return Err(ConfigErrors(r.errors));
    }
    let built = (|| {
        Some(Deployment {
            bot_token: bot_token?,
            admin_ids: admin_ids?,
            database: database?,
            intake: intake.mode?,
            webhook_path: intake.webhook_path?,
            listen: SocketAddr::new(bind?, port?),
            telegram_api_url: api.telegram_api_url?,
            telegram_proxy: api.telegram_proxy,
            backup,
            payment_provider_token: api.payment_provider_token,
            providers: providers?,
            stars_reconcile_interval: jobs.stars_reconcile_interval?,
            jobs_interval: jobs.jobs_interval,
            test_clock_offset_file: jobs.test_clock_offset_file,
            pipeline: pipeline?,
            nodes: nodes?,
            feed_base: feed_base?,
            log: log?,
            config_path: config_path?,
            shutdown_timeout: shutdown_timeout?,
            flag_seeds,
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
    use super::testing::{env, errors};
    use super::*;

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
    fn all_problems_are_reported_at_once() {
        let e = errors(&[("PORT", "x"), ("LOG_FORMAT", "y")]);
        assert!(e.contains("PORT") && e.contains("LOG_FORMAT"), "{e}");
    }
}
