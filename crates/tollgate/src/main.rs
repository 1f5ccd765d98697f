//! The `tollgate` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use tollgate::app::{self, AppOptions, Plugged, Services};
use tollgate::config::{self, Config, Env};
use tollgate::sandbox::{self, NodeMode, Sandbox, SandboxOptions};
use tollgate::store::Db;
use tollgate::store::migrate::{self, MigrateTimeouts};
use tollgate::telegram::dispatcher::Handler;
use tollgate::telegram::echo::EchoHandler;
use tollgate::time::{Clock, OffsetFileClock, SystemClock};
use tollgate::{shutdown, telemetry};

/// Exit code for configuration errors (distinct from runtime failures).
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A Telegram bot that sells VPN subscriptions and keeps access provisioned on Xray/V2Ray nodes",
    long_about = "A Telegram bot that sells VPN subscriptions and keeps access provisioned on Xray/V2Ray nodes.\n\n\
        Settings and secrets come from the environment (BOT_TOKEN, DATABASE_URL, PUBLIC_URL, …); \
        the catalog (plans, prices, nodes) from the TOML file named by TOLLGATE_CONFIG \
        (default tollgate.toml). See README.md for every key."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service until SIGTERM or SIGINT.
    ///
    /// Starts the HTTP server (/healthz, /readyz, /metrics), applies pending migrations
    /// (waiting for the database if it is down) and then the components. On SIGTERM it stops
    /// taking work, finishes in-flight requests within SHUTDOWN_TIMEOUT and exits 0.
    Run,
    /// Run the service with an echo bot, to check the Telegram wiring end to end.
    ///
    /// Same configuration, intake (webhook or polling), database, outbox and rate limits as
    /// `run`, but every text message is answered with "echo: <text>" and no business data is
    /// touched. Use it when setting up a bot: if echoes come back, the deployment works.
    Echo,
    /// Apply pending database migrations, print what was done, and exit.
    ///
    /// Safe to run while the service runs, and from several processes at once: migrations
    /// are serialized by a database lock. Refuses to continue when an applied migration was
    /// edited or the database is newer than this binary.
    Migrate,
    /// Validate the environment and the catalog and print the effective configuration.
    ///
    /// Secrets are redacted. Exits non-zero listing every problem, each with its key and
    /// how to fix it. Touches neither the database nor the network.
    CheckConfig,
    /// Try the whole product on this machine: no bot token, no setup. Open the printed web
    /// chat page in a browser.
    ///
    /// Runs, on 127.0.0.1 and in this one process: a Telegram Bot API emulator with a web chat
    /// page (create a user, press START, chat with the bot as in Telegram, pay invoices with
    /// emulated Stars); the service in polling mode against it, on SQLite, selling the example
    /// catalog built into the binary; and, when a `v2ray` binary is installed
    /// ($TOLLGATE_V2RAY_BIN, /usr/bin/v2ray or PATH), a local VPN node: a V2Ray core plus a
    /// tollgate-node agent, so the trial really provisions a VLESS user. Without v2ray the bot
    /// runs with no nodes: it shows the subscription URL and reports that no server is
    /// available.
    ///
    /// Every run starts from scratch (the emulator keeps its chats in memory): the data lives
    /// in a new temporary directory removed on exit, or in --data-dir. The service's
    /// environment settings (BOT_TOKEN, DATABASE_URL, PORT, TOLLGATE_CONFIG, ...) are not
    /// read; RUST_LOG and LOG_FORMAT are (default: warnings only). Ctrl-C stops everything,
    /// the V2Ray core included.
    Sandbox(SandboxArgs),
    /// Reconcile one node now, once, and print what was done.
    ///
    /// The same pass the service runs every NODE_RECONCILE_INTERVAL: the node's users are
    /// listed and compared with the database; missing entitled users are handed to
    /// provisioning, users the database does not know are removed. A pass that would remove
    /// more users than the limit (NODE_RECONCILE_MAX_REMOVALS and NODE_RECONCILE_MAX_REMOVAL_SHARE)
    /// removes nobody; with --allow-removals this one pass removes them all. Check first that
    /// DATABASE_URL is the production database and the node is not shared with another
    /// deployment: the database decides who keeps access. Same environment as `run`.
    Reconcile(ReconcileArgs),
    /// List the runtime flags with their values and sources, or change one.
    ///
    /// `tollgate flags` shows every flag (payments, trials, auto_renewal, broadcasts,
    /// maintenance) with its value and where it comes from: its default, the environment seed
    /// (TOLLGATE_FLAG_<NAME> on a database that had no value) or the database (who set it and
    /// when). `tollgate flags set NAME on|off` changes one in the database of the deployment
    /// (DATABASE_URL), audited as done from the command line; a running service applies it at
    /// the next use, on every replica, without a restart.
    Flags(FlagsArgs),
    /// Back the database up into FILE, while the service runs.
    ///
    /// SQLite: a consistent copy (one read transaction, the service keeps writing), checked
    /// (PRAGMA integrity_check, migrations known to this binary) before it gets its name;
    /// gzip-compressed when FILE ends in .gz. PostgreSQL: pg_dump in its custom format (restore
    /// it with pg_restore); where pg_dump is not installed the error says how. Reads
    /// DATABASE_URL only; never overwrites FILE.
    Backup(BackupArgs),
    /// Replace the SQLite database with the backup FILE (plain or .gz).
    ///
    /// The backup is checked first: it opens, passes PRAGMA integrity_check, and its migrations
    /// are all known to this binary (an older one is migrated at the next start, a newer one
    /// refused). A database that a running service holds (live leases) is not replaced: stop
    /// the service first, or pass --force. The replaced database is kept beside it as
    /// <name>.before-restore-<unix time>. PostgreSQL: the error shows the pg_restore command.
    Restore(RestoreArgs),
    /// Exit 0 when this host's service answers GET /healthz with 200 within 3 s, else 1.
    ///
    /// For container health checks (the image has no curl): asks http://BIND_ADDR:PORT/healthz,
    /// loopback when BIND_ADDR is 0.0.0.0 or unset. Reads PORT and BIND_ADDR only.
    Healthcheck,
    /// Bring users over from another bot's database.
    #[command(subcommand)]
    Import(ImportSource),
}

#[derive(Subcommand)]
enum ImportSource {
    /// From the earlier bot's PostgreSQL database: users (Telegram id, username, language,
    /// referrer, trial used), balances (one opening ledger entry each), active subscriptions
    /// with their expiry and VPN UUIDs (links users have keep working once tollgate-node serves
    /// the same inbound), auto-renew choices.
    ///
    /// Into the database of DATABASE_URL, with the catalog of TOLLGATE_CONFIG (run it with the
    /// service's environment). Prints every row it cannot take, with the reason. A second run
    /// changes nothing. Refuses a database that has users who are not in the source unless
    /// --merge. Pending withdrawals and promo codes are counted, not imported.
    Atcbot(AtcbotArgs),
}

#[derive(clap::Args)]
struct AtcbotArgs {
    /// The earlier bot's database, postgres://USER:PASSWORD@HOST:5432/DB (read only).
    #[arg(long, value_name = "URL")]
    from: String,
    /// Print what would be imported and every row that cannot be; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Import even though this database already has other users (they are left as they are).
    #[arg(long)]
    merge: bool,
    /// The catalog plan imported paid subscriptions renew on when auto-renew is on (without
    /// it they have no plan until the user buys one).
    #[arg(long, value_name = "PLAN_ID")]
    renew_plan: Option<String>,
}

#[derive(clap::Args)]
struct BackupArgs {
    /// Where to write the backup (must not exist; `.gz` compresses it).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The backup to restore (a SQLite file, plain or gzip-compressed).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Replace the database even though a service seems to hold it.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct FlagsArgs {
    #[command(subcommand)]
    action: Option<FlagsAction>,
}

#[derive(Subcommand)]
enum FlagsAction {
    /// Set flag NAME to on or off in the database.
    Set {
        /// The flag: payments, trials, auto_renewal, broadcasts or maintenance.
        name: String,
        /// on or off.
        value: String,
    },
}

#[derive(clap::Args)]
struct ReconcileArgs {
    /// The node's name in the catalog.
    #[arg(long, value_name = "NAME")]
    node: String,
    /// Lift the removal limit for this one pass.
    #[arg(long)]
    allow_removals: bool,
}

#[derive(clap::Args)]
struct SandboxArgs {
    /// Port of the web chat page (and the emulated Bot API) on 127.0.0.1; 0 picks a free port.
    #[arg(long, value_name = "PORT", default_value_t = sandbox::DEFAULT_WEB_PORT)]
    port: u16,
    /// Port of the service (/healthz, /readyz, /metrics, /sub/<token>) on 127.0.0.1; 0 picks
    /// a free port.
    #[arg(long, value_name = "PORT", default_value_t = sandbox::DEFAULT_SERVICE_PORT)]
    service_port: u16,
    /// Keep the database, the catalog in use and the node's state in this new or empty
    /// directory instead of a temporary one removed on exit.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Run without a local node even when v2ray is installed.
    #[arg(long)]
    no_node: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::CheckConfig => check_config(&env),
        Command::Migrate => runtime.block_on(migrate_command(&env)),
        Command::Run => runtime.block_on(run(&env, app::bot)),
        Command::Echo => runtime.block_on(run(&env, |_| Plugged::handler(EchoHandler))),
        Command::Sandbox(args) => runtime.block_on(sandbox_command(&env, args)),
        Command::Reconcile(args) => runtime.block_on(reconcile_command(&env, args)),
        Command::Flags(args) => runtime.block_on(flags_command(&env, args)),
        Command::Backup(args) => runtime.block_on(backup_command(&env, args)),
        Command::Healthcheck => runtime.block_on(healthcheck(&env)),
        Command::Restore(args) => runtime.block_on(restore_command(&env, args)),
        Command::Import(ImportSource::Atcbot(args)) => runtime.block_on(import_command(&env, args)),
    }
}

fn check_config(env: &Env) -> ExitCode {
    match Config::load(env) {
        Ok(config) => {
            print!("{}", config.report());
            println!("\nconfiguration OK");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("\nconfiguration has {} error(s)", errors.0.len());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Sets up logging from the environment; configuration errors are printed plainly.
/// Logging set up, then the configuration; a bad one is listed on stderr (exit 2).
fn logged_config(env: &Env) -> Result<Config, ExitCode> {
    init_logging(env)?;
    Config::load(env).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!(
            "\nconfiguration has {} error(s); `tollgate check-config` shows the same list",
            errors.0.len()
        );
        ExitCode::from(EXIT_CONFIG)
    })
}

fn init_logging(env: &Env) -> Result<(), ExitCode> {
    let log = config::env::log_settings(env).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    telemetry::init(&log).map_err(|e| {
        eprintln!("error: cannot set up logging: {e}");
        ExitCode::FAILURE
    })?;
    Ok(())
}

/// The database `DATABASE_URL` names (the only setting `migrate` and `flags` need).
fn open_env_db(env: &Env) -> Result<(config::DatabaseSettings, Db), ExitCode> {
    let settings = config::env::database_settings(env).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let db = open_db(&settings)?;
    Ok((settings, db))
}

/// The deployment's database, or the exit code after saying why it cannot be opened.
fn open_db(settings: &config::DatabaseSettings) -> Result<Db, ExitCode> {
    Db::connect_lazy(settings).map_err(|e| {
        eprintln!(
            "error: cannot open the database {}: {e}",
            settings.url.redacted()
        );
        ExitCode::FAILURE
    })
}

async fn migrate_command(env: &Env) -> ExitCode {
    if let Err(code) = init_logging(env) {
        return code;
    }
    let (_, db) = match open_env_db(env) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let result = migrate::run(&db, SystemClock.now(), MigrateTimeouts::default()).await;
    db.close().await;
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let hint = match &e {
                migrate::MigrateError::Database(inner) => tollgate::store::misconfiguration(inner)
                    .map(|fix| format!("\n  fix: {fix}"))
                    .unwrap_or_else(|| {
                        "\n  fix: check that the database in DATABASE_URL is running and reachable"
                            .to_owned()
                    }),
                _ => String::new(),
            };
            eprintln!("error: {e}{hint}");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(env: &Env) -> ExitCode {
    let port = env.get("PORT").unwrap_or("8080");
    let host = match env.get("BIND_ADDR") {
        None | Some("0.0.0.0") => "127.0.0.1".to_owned(),
        Some("::") => "[::1]".to_owned(),
        Some(ip) if ip.contains(':') => format!("[{ip}]"),
        Some(ip) => ip.to_owned(),
    };
    let url = format!("http://{host}:{port}/healthz");
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("unhealthy: cannot build an HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `DATABASE_URL` and the pool settings alone, or exit 2 with the problems.
fn database_only(env: &Env) -> Result<config::DatabaseSettings, ExitCode> {
    init_logging(env)?;
    config::env::database_settings(env).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

async fn backup_command(env: &Env, args: BackupArgs) -> ExitCode {
    let settings = match database_only(env) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = match &settings.url {
        config::DatabaseUrl::Sqlite { path } => match Db::connect_lazy(&settings) {
            Ok(Db::Sqlite(db)) => {
                let r = tollgate::backup::backup_sqlite(&db, path, &args.file).await;
                db.close().await;
                r.map(|report| format!("backup written to {}: {report}", args.file.display()))
            }
            Ok(Db::Postgres(_)) => Err(anyhow::anyhow!("DATABASE_URL is not SQLite")),
            Err(e) => Err(anyhow::anyhow!("cannot open {}: {e}", settings.url.redacted())),
        },
        config::DatabaseUrl::Postgres { url } => {
            tollgate::backup::backup_postgres(url.expose(), &args.file)
                .await
                .map(|()| {
                    format!(
                        "pg_dump of {} written to {}; restore it with pg_restore --clean --if-exists --no-owner --dbname \"$DATABASE_URL\" {}",
                        settings.url.redacted(),
                        args.file.display(),
                        args.file.display()
                    )
                })
        }
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn restore_command(env: &Env, args: RestoreArgs) -> ExitCode {
    let settings = match database_only(env) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match tollgate::backup::restore_sqlite(&settings, &args.file, args.force, SystemClock.now())
        .await
    {
        Ok(report) => {
            println!(
                "restored {} into {}: {}",
                args.file.display(),
                settings.url.redacted(),
                report.copy
            );
            if let Some(kept) = report.kept {
                println!("the database it replaced is kept at {}", kept.display());
            }
            println!("start the service: it applies any migrations the backup lacks");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn import_command(env: &Env, args: AtcbotArgs) -> ExitCode {
    use tollgate::import::atcbot;
    let config = match logged_config(env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let d = &config.deployment;
    let masked = config::env::mask_url(&args.from);
    let result = async {
        let db = Db::connect_lazy(&d.database)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", d.database.url.redacted()))?;
        if !args.dry_run {
            let migrated = migrate::run(&db, SystemClock.now(), MigrateTimeouts::default())
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot bring {} to this binary's schema: {e}",
                        d.database.url.redacted()
                    )
                });
            if let Err(e) = migrated {
                db.close().await;
                return Err(e);
            }
        }
        let source = atcbot::connect(&args.from).await;
        let source = match source {
            Ok(s) => s,
            Err(e) => {
                db.close().await;
                return Err(e.context(format!("source {masked}")));
            }
        };
        let registry =
            tollgate::nodes::Registry::from_catalog(&config.catalog, d.nodes.call_timeout)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        let options = atcbot::Options {
            dry_run: args.dry_run,
            merge: args.merge,
            renew_plan: args.renew_plan.clone(),
        };
        let report = atcbot::run(
            &source,
            &db,
            &config.catalog,
            registry.enabled(),
            &options,
            SystemClock.now(),
        )
        .await;
        source.close().await;
        db.close().await;
        report
    }
    .await;
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `tollgate flags [set NAME on|off]`: needs only the database of the deployment.
async fn flags_command(env: &Env, args: FlagsArgs) -> ExitCode {
    use tollgate::admin::audit::Actor;
    use tollgate::flags::{self, Flag};

    if let Err(code) = init_logging(env) {
        return code;
    }
    // What to change is checked before the database is opened: a typo changes nothing.
    let change = match &args.action {
        None => None,
        Some(FlagsAction::Set { name, value }) => {
            let Some(flag) = Flag::lenient(name) else {
                eprintln!(
                    "error: NAME: {name:?} is not a runtime flag\n  fix: use one of {}",
                    Flag::names()
                );
                return ExitCode::from(EXIT_CONFIG);
            };
            match flags::parse_switch(value) {
                Ok(on) => Some((flag, on)),
                Err(problem) => {
                    eprintln!("error: {}: {problem}\n  fix: use on or off", flag.name());
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
    };
    let (settings, db) = match open_env_db(env) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let result = async {
        current_schema(&db, &settings.url.redacted()).await?;
        if let Some((flag, on)) = change {
            let before =
                flags::set_committed(&db, flag, on, Actor::CommandLine, SystemClock.now()).await?;
            println!(
                "{}: {} → {} (stored in the database; a running service applies it at the next use, no restart)",
                flag.name(),
                flags::switch_word(before),
                flags::switch_word(on)
            );
        } else {
            for state in flags::all(&db).await? {
                println!("{}", flags::describe(&state));
            }
        }
        anyhow::Ok(())
    }
    .await;
    db.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Fails unless `db` is at this binary's schema (a wrong or empty database has none).
async fn current_schema(db: &Db, shown_url: &str) -> anyhow::Result<()> {
    match migrate::schema_state(db).await {
        Ok(migrate::SchemaState::Current) => Ok(()),
        Ok(other) => anyhow::bail!(
            "the database {shown_url} is not at this binary's schema ({other:?}); run `tollgate migrate` first, \
             and check that DATABASE_URL names the production database"
        ),
        Err(e) => anyhow::bail!(
            "cannot read the schema version of {shown_url}: {e}; check DATABASE_URL (an empty or wrong database has no schema)"
        ),
    }
}

async fn reconcile_command(env: &Env, args: ReconcileArgs) -> ExitCode {
    let config = match logged_config(env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let d = &config.deployment;
    let db = match open_db(&d.database) {
        Ok(db) => db,
        Err(code) => return code,
    };
    let result = reconcile_once(&config, &db, &args).await;
    db.close().await;
    match result {
        Ok((text, refused)) => {
            println!("{text}");
            if refused {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One pass of `tollgate reconcile`: what it did, and whether it refused removals.
async fn reconcile_once(
    config: &Config,
    db: &Db,
    args: &ReconcileArgs,
) -> anyhow::Result<(String, bool)> {
    use tollgate::nodes::reconcile::{Reconciler, Removals, lease_name};
    use tollgate::nodes::{NodeJobs, ProvisioningWake, Registry};

    let d = &config.deployment;
    current_schema(db, &d.database.url.redacted()).await?;
    let registry = Arc::new(
        Registry::from_catalog(&config.catalog, d.nodes.call_timeout)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let Some(node) = registry.get(&args.node).cloned() else {
        let names: Vec<&str> = registry.all().iter().map(|n| n.name.as_str()).collect();
        anyhow::bail!(
            "no node {:?} in the catalog {}; its nodes: {}",
            args.node,
            d.config_path.display(),
            names.join(", ")
        );
    };
    if !node.enabled {
        anyhow::bail!(
            "node {} is disabled in the catalog; the service does not reconcile it (enable it first)",
            node.name
        );
    }
    tollgate::nodes::switches::refresh(db, &registry).await?;
    if !registry.is_enabled(&node.name) {
        anyhow::bail!(
            "node {} was taken out of service by an admin (the console); the service does not reconcile it \
             (put it back in service first)",
            node.name
        );
    }
    let clock: tollgate::time::SharedClock = Arc::new(SystemClock);
    let holder = format!("tollgate-reconcile:{}", std::process::id());
    let jobs = NodeJobs {
        db: db.clone(),
        registry: registry.clone(),
        clock: clock.clone(),
        holder: holder.clone(),
        wake: ProvisioningWake::new(),
        metrics: tollgate::metrics::Metrics::new().nodes,
    };
    let reconciler = Reconciler::new(jobs, tollgate::app::access_wiring::reconcile_config(config))
        .with_alerts(tollgate::alerts::Alerts::new(d.admin_ids.clone()));
    // A running service keeps the node's lease between its passes; this pass then runs
    // alongside it (its own passes only repair or refuse, and row updates are guarded).
    let ttl = std::time::Duration::from_secs(120);
    let lease = tollgate::lease::acquire(db, &lease_name(&node.name), &holder, ttl, clock.now())
        .await
        .ok()
        .flatten();
    let removals = if args.allow_removals {
        Removals::Allowed
    } else {
        Removals::Limited
    };
    let result = reconciler
        .reconcile_node_with(&node, lease.as_ref(), &|| {}, removals)
        .await;
    if let Some(l) = &lease {
        let _ = tollgate::lease::release(db, l, clock.now()).await;
    }
    let r = result?;
    let mut text = format!(
        "node {}: {} users listed; {} unknown to the database removed{}; {} no longer entitled handed to provisioning for removal; {} missing handed to provisioning to restore; {} subscriptions aligned",
        node.name,
        r.listed,
        r.unknown_removed,
        if r.unknown_failed > 0 {
            format!(" ({} failed, run again)", r.unknown_failed)
        } else {
            String::new()
        },
        r.to_remove,
        r.restored,
        r.aligned,
    );
    if let Some(refused) = &r.refused {
        text.push_str(&format!(
            "\nrefused: {} removals ({} unknown, {} no longer entitled) of the node's {} users are over the limit; nobody was removed. \
             If the database is right, run `{}`",
            refused.total(),
            refused.unknown,
            refused.unwanted,
            refused.node_users,
            tollgate::nodes::reconcile::allow_command(&node.name),
        ));
    }
    Ok((text, r.refused.is_some()))
}

async fn run<H, F>(env: &Env, make_handler: F) -> ExitCode
where
    H: Handler,
    F: FnOnce(&Services) -> anyhow::Result<Plugged<H>>,
{
    let config = match logged_config(env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    app::log_effective_config(&config);
    let token = CancellationToken::new();
    if let Err(e) = shutdown::cancel_on_signal(token.clone()) {
        eprintln!("error: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let mut options = AppOptions {
        per_chat_interval: config.deployment.pipeline.outbox_per_chat_interval,
        ..AppOptions::default()
    };
    if let Some(path) = &config.deployment.test_clock_offset_file {
        tracing::warn!(path = %path.display(),
            "TOLLGATE_TEST_CLOCK_OFFSET_FILE is set: the clock is shifted by that file (tests only)");
        options.clock = Arc::new(OffsetFileClock::new(path.clone()));
    }
    let running = match app::start(config, options, make_handler).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let stop = running.shutdown_token();
    tokio::spawn(async move {
        token.cancelled().await;
        stop.cancel();
    });
    match running.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn sandbox_command(env: &Env, args: SandboxArgs) -> ExitCode {
    // Quiet by default: the printed summary is what a person needs; RUST_LOG shows more. The
    // agent's complaints are left out: Ctrl-C in a terminal reaches the V2Ray core too, and the
    // agent would report the core lost while everything stops.
    let mut log_env = vec![(
        "RUST_LOG",
        env.get("RUST_LOG").unwrap_or("warn,tollgate_node=error"),
    )];
    if let Some(format) = env.get("LOG_FORMAT") {
        log_env.push(("LOG_FORMAT", format));
    }
    if let Err(code) = init_logging(&Env::from_pairs(log_env)) {
        return code;
    }
    let token = CancellationToken::new();
    if let Err(e) = shutdown::cancel_on_signal(token.clone()) {
        eprintln!("error: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let options = SandboxOptions {
        web_port: args.port,
        service_port: args.service_port,
        data_dir: args.data_dir,
        node: if args.no_node {
            NodeMode::Off
        } else {
            NodeMode::Auto
        },
    };
    let started = tokio::select! {
        started = Sandbox::start(options) => started,
        () = token.cancelled() => {
            eprintln!("tollgate sandbox: interrupted while starting");
            return ExitCode::FAILURE;
        }
    };
    let running = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", running.summary());
    let result = running.run_until(token).await;
    match result {
        Ok(()) => {
            println!("tollgate sandbox: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
