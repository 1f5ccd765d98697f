//! The one list of environment variables Tollgate reads. The README's settings table is
//! checked against it (`config::tests::readme_documents_every_setting`), and a `TOLLGATE_*`
//! variable missing from it is refused as a typo.

use super::reader::Reader;

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
        "TELEGRAM_PROXY",
        "proxy for every Bot API call and upload where Telegram is blocked: http://, https://, socks5:// or socks5h://[user:password@]host:port (password redacted in output; default: direct)",
    ),
    (
        "BACKUP_INTERVAL",
        "SQLite only: how often the `backups` job sends a gzip-compressed copy of the database to BACKUP_CHAT_ID, 1s-30d (default: off)",
    ),
    (
        "BACKUP_CHAT_ID",
        "chat that receives the backups (a user id, or a group's negative id; default: the first of ADMIN_IDS)",
    ),
    (
        "PAYMENT_PROVIDER_TOKEN",
        "Telegram payment provider token for card payments (optional; secret)",
    ),
    (
        "CRYPTOPAY_TOKEN",
        "API token of a Crypto Pay app (@CryptoBot; @CryptoTestnetBot for testnet): turns crypto payments on (optional; secret)",
    ),
    (
        "CRYPTOPAY_NETWORK",
        "mainnet (default) or testnet: which Crypto Pay API the token is for",
    ),
    (
        "CRYPTOPAY_API_URL",
        "base URL of the Crypto Pay API, like https://pay.crypt.bot/api, instead of CRYPTOPAY_NETWORK's (the local emulator; default: none)",
    ),
    (
        "CRYPTOPAY_POLL_INTERVAL",
        "how often the watcher asks Crypto Pay about open invoices, 100ms-1h (default 30s)",
    ),
    (
        "YOOKASSA_SHOP_ID",
        "YooKassa shopId; with YOOKASSA_SECRET_KEY turns card/SBP payments through YooKassa on (optional)",
    ),
    (
        "YOOKASSA_SECRET_KEY",
        "YooKassa secret key (test_… or live_…; secret)",
    ),
    (
        "YOOKASSA_API_URL",
        "base URL of the YooKassa API (default https://api.yookassa.ru/v3/; the local emulator)",
    ),
    (
        "YOOKASSA_POLL_INTERVAL",
        "first interval of the YooKassa reconciler for a payment without its outcome, growing to 10m, 100ms-1h (default 30s)",
    ),
    (
        "YOOKASSA_NOTIFY_FROM",
        "addresses or CIDR ranges (comma-separated) YooKassa notifications are taken from, or any (default: the ranges YooKassa publishes); others get 403",
    ),
    (
        "TRUSTED_PROXIES",
        "addresses or CIDR ranges (comma-separated) of your reverse proxies, whose X-Forwarded-For names the sender of a YooKassa notification, or none (default: loopback, private and shared 100.64.0.0/10 ranges)",
    ),
    (
        "PROVIDER_CALL_TIMEOUT",
        "deadline of each call to Crypto Pay or YooKassa, 100ms-60s (default 10s)",
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
        "TOLLGATE_FLAG_<NAME>",
        "on or off: the value runtime flag NAME (PAYMENTS, TRIALS, AUTO_RENEWAL, BROADCASTS, MAINTENANCE) starts with on a database that has none; never overrides a value set later (default: the flag's own)",
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

/// Typos in our own namespace would otherwise be ignored silently.
pub(super) fn reject_unknown(r: &mut Reader<'_>) {
    let known: Vec<&str> = ENV_VARS.iter().map(|(k, _)| *k).collect();
    let unknown: Vec<String> = r
        .env
        .keys()
        // Flag seeds are checked, name by name, where they are read (`flags`).
        .filter(|k| {
            k.starts_with("TOLLGATE_")
                && !k.starts_with(crate::domain::flag::ENV_PREFIX)
                && !known.contains(k)
        })
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
}
