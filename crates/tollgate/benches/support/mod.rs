//! What the service benchmarks share: the backends to measure and a fresh database per run, the
//! service as a child process or in this process against the Telegram emulator, emulator users,
//! seeding and query plans, RSS, percentiles and timing. Included by each bench with `#[path]`
//! (benches are separate crates), so each uses what it needs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};
use telegram_emulator::{ControlClient, NewUser, RunningEmulator};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tollgate::app::{self, AppOptions, Plugged, Services};
use tollgate::config::{Config, DatabaseSettings, DatabaseUrl, Env};
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::store::migrate::{self, MigrateTimeouts};
use tollgate::time::Timestamp;

/// The catalog the benches' service sells: the example one (no nodes).
pub const CATALOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/tollgate.example.toml"
);

/// The webhook secret of a service in webhook mode ([`webhook_service`]).
pub const WEBHOOK_SECRET: &str = "bench-secret-0123456789abcdef-0123456789";

/// The environment variable `name` parsed, or `default` when it is unset or does not parse
/// (the benches' `BENCH_*` sizes).
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Which backends a run measures: SQLite and PostgreSQL, or the one `BENCH_BACKEND` names;
/// PostgreSQL on the server `TEST_DATABASE_URL` names (default
/// `postgres://postgres@127.0.0.1:5432/postgres`), when it is reachable.
pub struct Backends {
    /// The PostgreSQL server's URL, on which [`database`] creates each run's database.
    pub pg_admin: String,
    pg_reachable: bool,
    only: Option<String>,
}

impl Backends {
    pub async fn from_env() -> Backends {
        let pg_admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let pg_reachable = PgConnection::connect(&pg_admin).await.is_ok();
        Backends {
            pg_admin,
            pg_reachable,
            only: std::env::var("BENCH_BACKEND").ok(),
        }
    }

    pub fn postgres_reachable(&self) -> bool {
        self.pg_reachable
    }

    /// `sqlite`, then `postgres`, less the one `BENCH_BACKEND` leaves out. An unreachable
    /// PostgreSQL is skipped with a line saying so, printed in its turn (after SQLite's figures).
    pub fn each(&self) -> impl Iterator<Item = &'static str> + '_ {
        ["sqlite", "postgres"]
            .into_iter()
            .filter(|backend| self.only.as_deref().is_none_or(|o| o == *backend))
            .filter(|backend| {
                let skipped = *backend == "postgres" && !self.pg_reachable;
                if skipped {
                    println!("postgres: SKIPPED ({} unreachable)", self.pg_admin);
                }
                !skipped
            })
    }
}

/// A fresh database URL (`sqlite` in a temp dir, or a new PostgreSQL database named after
/// `name` and this process); the guard keeps the temp dir alive.
pub async fn database(
    backend: &str,
    pg_admin: &str,
    name: &str,
) -> (String, Option<tempfile::TempDir>) {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        return (url, Some(dir));
    }
    let name = format!("tollgate_{name}_{}", std::process::id());
    let mut c = PgConnection::connect(pg_admin).await.unwrap();
    c.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .await
    .unwrap();
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap();
    let mut u = url::Url::parse(pg_admin).unwrap();
    u.set_path(&format!("/{name}"));
    (u.to_string(), None)
}

/// A bench's pool on `url`: `max_connections`, a 30 s acquire timeout and statements of up to
/// 10 minutes (set-based seeding of millions of rows).
pub fn pool_settings(url: &str, max_connections: u32) -> DatabaseSettings {
    DatabaseSettings {
        url: DatabaseUrl::parse(url).unwrap(),
        max_connections,
        acquire_timeout: Duration::from_secs(30),
        statement_timeout: Duration::from_secs(600),
    }
}

/// A pool on `settings`' database with the migrations applied at `now`.
pub async fn migrated(settings: &DatabaseSettings, now: Timestamp) -> Db {
    let db = Db::connect_lazy(settings).unwrap();
    migrate::run(&db, now, MigrateTimeouts::default())
        .await
        .unwrap();
    db
}

/// `WITH s(i) AS (…)`: the numbers `0..count` as rows, in `db`'s dialect, for set-based seeding.
pub fn numbers(db: &Db, count: i64) -> String {
    match db {
        Db::Sqlite(_) => format!(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {count})"
        ),
        Db::Postgres(_) => {
            format!("WITH s(i) AS (SELECT generate_series(0, {count} - 1)::BIGINT)")
        }
    }
}

/// Runs the seeding statements one by one, then `ANALYZE` (a settled table's statistics).
pub async fn seed_with(db: &Db, statements: impl IntoIterator<Item = String>) {
    for sql in statements {
        on_db!(db, p => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(drop)).unwrap();
    }
    on_db!(db, p => sqlx::query("ANALYZE").execute(p).await.map(drop)).unwrap();
}

/// The one `BIGINT` that `sql` selects.
pub async fn count(db: &Db, sql: &'static str) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).unwrap()
}

/// The query plan of `sql` with `binds` bound, its lines joined by "; ".
pub async fn query_plan(db: &Db, sql: &str, binds: &[i64]) -> String {
    match db {
        Db::Sqlite(p) => {
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(
                format!("EXPLAIN QUERY PLAN {sql}"),
            ));
            for b in binds {
                query = query.bind(*b);
            }
            let rows = query.fetch_all(p).await.unwrap();
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
        }
        Db::Postgres(p) => {
            let mut query =
                sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")));
            for b in binds {
                query = query.bind(*b);
            }
            let rows = query.fetch_all(p).await.unwrap();
            rows.into_iter()
                .map(|r| r.0.trim().to_owned())
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `VmRSS` of process `pid` in MiB (0 when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// `VmHWM`, the peak resident set of process `pid`, in MiB (0 when it cannot be read).
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The largest RSS of a process, sampled every 50 ms from `start` until `stop`.
pub struct RssSampler {
    max_mib: Arc<Mutex<f64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let max_mib = Arc::new(Mutex::new(rss_mib(pid)));
        let max = max_mib.clone();
        let task = tokio::spawn(async move {
            loop {
                let r = rss_mib(pid);
                {
                    let mut m = max.lock().unwrap();
                    if r > *m {
                        *m = r;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { max_mib, task }
    }

    /// Stops sampling; the largest RSS seen, in MiB.
    pub fn stop(self) -> f64 {
        self.task.abort();
        *self.max_mib.lock().unwrap()
    }
}

pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

pub fn median(samples: &mut [f64]) -> f64 {
    percentile(samples, 0.5)
}

/// The median time of `runs` calls of `f`, in ms.
pub async fn median_ms<F, Fut>(runs: usize, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    median(&mut samples)
}

/// The `tollgate` binary a bench runs: the one built with it, or `BENCH_TOLLGATE_BIN`, so that
/// two builds (a setting before and after) are measured in one run, alternating.
pub fn tollgate_bin() -> String {
    std::env::var("BENCH_TOLLGATE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tollgate").to_owned())
}

/// `tollgate <command>` ([`tollgate_bin`]) against the emulator, on `db_url`, listening on
/// 127.0.0.1:`port`, selling [`CATALOG`], logging warnings to this process's stderr (its stdout
/// dropped); killed when dropped. Add settings with `env` (a later value replaces one set
/// here), then spawn it.
pub fn service(command: &str, emu: &RunningEmulator, db_url: &str, port: u16) -> Command {
    let mut service = Command::new(tollgate_bin());
    service
        .arg(command)
        .env_clear()
        .env("BOT_TOKEN", emu.token())
        .env("TELEGRAM_API_URL", emu.api_url())
        .env("DATABASE_URL", db_url)
        .env("TOLLGATE_CONFIG", CATALOG)
        .env("BIND_ADDR", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    service
}

/// [`service`] in webhook mode (its own address as `PUBLIC_URL`, [`WEBHOOK_SECRET`], 100
/// connections), sending up to 100,000 messages/s, so that the figures measure the service.
pub fn webhook_service(command: &str, emu: &RunningEmulator, db_url: &str, port: u16) -> Command {
    let mut service = service(command, emu, db_url, port);
    service
        .env("PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("WEBHOOK_MAX_CONNECTIONS", "100")
        .env("OUTBOX_RATE", "100000");
    service
}

/// Waits (60 s at most) until the service at `addr` answers `/readyz` with 200 and `also`
/// holds.
pub async fn wait_ready<F>(addr: &str, also: impl Fn() -> F)
where
    F: Future<Output = bool>,
{
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let ready = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready && also().await {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "service not ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the [`webhook_service`] on `port` is ready and its webhook is registered.
pub async fn wait_webhook_ready(emu: &RunningEmulator, port: u16) {
    let want = format!("http://127.0.0.1:{port}/telegram/webhook");
    wait_ready(&format!("127.0.0.1:{port}"), || async {
        emu.client().bots().await.unwrap()[0].webhook_url == want
    })
    .await;
}

/// Stops a service process with SIGTERM and waits up to `grace` for it to exit.
pub async fn stop(service: &mut Child, grace: Duration) {
    if let Some(pid) = service.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    let _ = tokio::time::timeout(grace, service.wait()).await;
}

/// The service in this process against a new emulator (limits off): the bot with its routes and
/// no background components, on `db_url` with the example catalog plus `settings`, started with
/// `options`; returned once ready, with the parts it was given.
pub async fn start_app(
    db_url: &str,
    settings: Vec<(String, String)>,
    options: AppOptions,
) -> (Services, app::RunningApp, RunningEmulator) {
    let emu = telegram_emulator::Emulator::start(
        telegram_emulator::EmulatorConfig::without_rate_limits(),
    )
    .await
    .unwrap();
    let mut vars = vec![
        ("BOT_TOKEN".to_owned(), emu.token().to_owned()),
        ("TELEGRAM_API_URL".to_owned(), emu.api_url()),
        ("DATABASE_URL".to_owned(), db_url.to_owned()),
        ("TOLLGATE_CONFIG".to_owned(), CATALOG.to_owned()),
        ("BIND_ADDR".to_owned(), "127.0.0.1".to_owned()),
        ("PORT".to_owned(), free_port().to_string()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    vars.extend(settings);
    let config = Config::load(&Env::from_pairs(vars)).expect("config");
    let slot: Arc<Mutex<Option<Services>>> = Arc::default();
    let keep = slot.clone();
    let app = app::start(config, options, move |s| {
        *keep.lock().unwrap() = Some(s.clone());
        let p = tollgate::app::bot(s)?;
        Ok(Plugged {
            handler: p.handler,
            components: Vec::new(),
            routes: p.routes,
        })
    })
    .await
    .unwrap();
    let s = slot.lock().unwrap().clone().unwrap();
    wait_ready(&app.addr.to_string(), || async { true }).await;
    (s, app, emu)
}

/// Creates `users` in the emulator, 32 at a time; their ids, in order.
pub async fn create_users(
    tg: &ControlClient,
    users: impl IntoIterator<Item = NewUser>,
) -> Vec<i64> {
    let permits = Arc::new(Semaphore::new(32));
    let mut made = Vec::new();
    for user in users {
        let tg = tg.clone();
        let permit = permits.clone().acquire_owned().await.unwrap();
        made.push(tokio::spawn(async move {
            let id = tg.create_user(user).await.unwrap().id;
            drop(permit);
            id
        }));
    }
    let mut ids = Vec::with_capacity(made.len());
    for m in made {
        ids.push(m.await.unwrap());
    }
    ids
}

/// Each of `users` sends `text` to the bot, `concurrency` at a time; returns when all are sent.
pub async fn send_each(tg: &ControlClient, users: &[i64], text: &str, concurrency: usize) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut sends = Vec::with_capacity(users.len());
    for user in users.iter().copied() {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (tg, text) = (tg.clone(), text.to_owned());
        sends.push(tokio::spawn(async move {
            tg.send_text(user, &text).await.unwrap();
            drop(permit);
        }));
    }
    for send in sends {
        send.await.unwrap();
    }
}

/// Waits until the emulator has received `messages` messages from the bot in total (`what`
/// they are, in the progress line every 10 s); fails past `limit`.
pub async fn drain(tg: &ControlClient, messages: u64, limit: Duration, what: &str) {
    let start = Instant::now();
    let mut reported = Instant::now();
    loop {
        let sent = tg.counters().await.unwrap().messages_sent;
        if sent >= messages {
            break;
        }
        if reported.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  … {sent} of {messages} {what} after {:?}",
                start.elapsed()
            );
            reported = Instant::now();
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not all arrive within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
