//! Wiring: configuration → database → HTTP → components, and the way back down.
//!
//! Start order matters for reliability. The HTTP server comes up first, so `/healthz`
//! answers and `/readyz` explains what the process is waiting for. The database may be down
//! at boot: the bootstrap retries migrations with backoff until it succeeds and only then
//! starts the components, so a boot during an outage ends in exactly the same running set
//! as a healthy boot (docs/reliability.md A9). Misconfiguration (bad credentials, a missing database,
//! an edited migration) is not retried: the process exits with the fix (A10).

pub mod access_wiring;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use tokio::sync::Notify;

use crate::alerts::Alerts;
use crate::backoff::Backoff;
use crate::bot::Bot;
use crate::bot::notices::AccessNotices;
use crate::bot::providers::{self, Settler, Watcher};
use crate::bot::stars::StarsReconciler;
use crate::broadcast::feeder::{Feeder, FeederConfig};
use crate::config::{Config, IntakeMode};
use crate::flags;
use crate::housekeeping::{Housekeeping, Pruning};
use crate::http::{self, HttpState, Readiness};
use crate::i18n::Texts;
use crate::jobs::backups::Backups;
use crate::jobs::monitor::{Monitor, MonitorContext};
use crate::jobs::notices::Notices;
use crate::jobs::renewal::AutoRenewal;
use crate::jobs::{Job, JobContext, JobRunner};
use crate::lease;
use crate::metrics::Metrics;
use crate::store::migrate::{self, MigrateError, MigrateTimeouts};
use crate::store::{self, Db};
use crate::supervisor::{self, Component, RestartHook, Statuses, Watched, WatchedDyn};
use crate::telegram::api::BotApi;
use crate::telegram::dispatcher::{Dispatcher, DispatcherConfig, Handler, HandlerContext};
use crate::telegram::inbox::InboxWriter;
use crate::telegram::poller::{Poller, PollerConfig};
use crate::telegram::sender::{OutboxSender, SenderConfig};
use crate::telegram::webhook::{self, Registrar, WebhookTarget};
use crate::time::SharedClock;

pub use crate::services::{Plugged, Services};

/// The bot handler with its components: the owed access notices, the Stars reconciler and the
/// jobs (notices, auto-renewal), from the running service's parts. The wiring lives here, so
/// the bot and the jobs know nothing of each other.
pub fn bot(s: &Services) -> anyhow::Result<Plugged<Bot>> {
    let texts = Arc::new(Texts::load().map_err(|e| anyhow::anyhow!("{e}"))?);
    let notices = AccessNotices::new(s.clone(), texts.clone());
    let stars = StarsReconciler::new(s.clone(), texts.clone());
    let runner = |job: Arc<dyn Job>| -> Arc<dyn Component> {
        let r = JobRunner::new(
            job,
            s.db.clone(),
            s.clock.clone(),
            s.holder.clone(),
            s.metrics.jobs.clone(),
        );
        Arc::new(match s.config.deployment.jobs_interval {
            Some(every) => r.with_interval(every),
            None => r,
        })
    };
    let jobs_context = JobContext::of(s, texts.clone());
    let jobs = [
        runner(Arc::new(Notices::new(jobs_context.clone()))),
        runner(Arc::new(AutoRenewal::new(jobs_context))),
    ];
    let mut components: Vec<Arc<dyn Component>> = vec![Arc::new(notices), Arc::new(stars)];
    components.extend(jobs);
    // Broadcasts: fed to the outbox as it drains, at the sender's rates.
    components.push(Arc::new(Feeder::new(
        s.db.clone(),
        s.clock.clone(),
        texts.clone(),
        FeederConfig {
            free_rate: s.config.deployment.pipeline.outbox_rate,
            paid_rate: SenderConfig::default().paid_broadcast_rate,
            ..FeederConfig::default()
        },
        s.holder.clone(),
        s.outbox_wake.clone(),
        s.config.catalog.bot.fallback_language(),
    )));
    // Payment providers outside Telegram: their notification routes and a watcher each.
    let settler = Settler::new(s.clone(), texts.clone());
    for client in [&s.providers.crypto, &s.providers.yookassa]
        .into_iter()
        .flatten()
    {
        components.push(Arc::new(Watcher::new(settler.clone(), client.clone())));
    }
    // The alert monitor keeps its own 15 s (JOBS_INTERVAL is for the notice and renewal jobs).
    let monitor = Monitor::new(MonitorContext {
        db: s.db.clone(),
        clock: s.clock.clone(),
        registry: s.registry.clone(),
        alerts: s.alerts.clone(),
        webhook_api: matches!(s.config.deployment.intake, IntakeMode::Webhook { .. })
            .then(|| s.api.clone()),
    });
    components.push(Arc::new(JobRunner::new(
        Arc::new(monitor),
        s.db.clone(),
        s.clock.clone(),
        s.holder.clone(),
        s.metrics.jobs.clone(),
    )));
    Ok(Plugged {
        handler: Arc::new(Bot::new(s.clone(), texts)),
        components,
        routes: providers::routes(settler),
    })
}

/// Knobs tests turn; production uses the defaults.
#[derive(Clone)]
pub struct AppOptions {
    pub clock: SharedClock,
    pub readiness_timeout: Duration,
    pub migrate: MigrateTimeouts,
    /// First retry delay of a failed update (doubles per attempt).
    pub handler_retry_base: Duration,
    /// Attempts before an update is dead-lettered.
    pub handler_max_attempts: i32,
    /// First retry delay of a message after a 5xx or timeout (doubles per attempt).
    pub send_retry_base: Duration,
    /// Least time between two messages to one chat (Telegram: about a second); `tollgate
    /// run` takes it from `OUTBOX_PER_CHAT_INTERVAL`.
    pub per_chat_interval: Duration,
    /// Deadline of an ordinary Bot API call (`getUpdates` has its own); tests shorten it.
    pub telegram_call_timeout: Duration,
    /// How often webhook mode compares Telegram's registration (`getWebhookInfo`) with ours.
    pub webhook_check_every: Duration,
    /// More components to supervise (tests use it to plant a misbehaving one).
    pub extra_components: Vec<Arc<dyn Component>>,
}

impl Default for AppOptions {
    fn default() -> Self {
        let dispatch = DispatcherConfig::for_pool(2);
        AppOptions {
            clock: Arc::new(crate::time::SystemClock),
            readiness_timeout: http::health::READINESS_TIMEOUT,
            migrate: MigrateTimeouts::default(),
            handler_retry_base: dispatch.retry_base,
            handler_max_attempts: dispatch.max_attempts,
            send_retry_base: SenderConfig::default().retry_base,
            per_chat_interval: SenderConfig::default().per_chat_interval,
            telegram_call_timeout: crate::telegram::api::CALL_TIMEOUT,
            webhook_check_every: crate::telegram::webhook::CHECK_EVERY,
            extra_components: Vec::new(),
        }
    }
}

/// A started service. Dropping it does not stop it; call [`RunningApp::shutdown`].
pub struct RunningApp {
    pub addr: SocketAddr,
    pub db: Db,
    pub metrics: Metrics,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningApp {
    /// The token that stops the service; cancelling it is what SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the service stops (after shutdown, or a fatal startup error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .map_err(|e| anyhow::anyhow!("service task failed: {e}"))?
    }

    /// Requests shutdown and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// The Telegram side of a running service, built at start.
struct Pipeline {
    components: Vec<Arc<dyn Component>>,
    routes: axum::Router,
}

/// Builds intake (webhook route or poller), the dispatcher with `handler`, the outbox
/// sender and housekeeping, for `config`'s intake mode.
fn pipeline<H, F>(
    config: &Config,
    options: &AppOptions,
    db: &Db,
    metrics: &Metrics,
    readiness: &Arc<Readiness>,
    make_handler: F,
) -> anyhow::Result<Pipeline>
where
    H: Handler,
    F: FnOnce(&Services) -> anyhow::Result<Plugged<H>>,
{
    let d = &config.deployment;
    let p = &d.pipeline;
    let api = BotApi::with_proxy(
        &d.telegram_api_url,
        &d.bot_token.token,
        d.telegram_proxy.as_ref(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .with_timeout(options.telegram_call_timeout);
    let holder = lease::holder_id();
    let pruning_holder = holder.clone();
    let backups_holder = holder.clone();
    let backups_api = api.clone();
    let inbox_wake = Arc::new(Notify::new());
    let outbox_wake = Arc::new(Notify::new());
    let alerts = Alerts::new(d.admin_ids.clone());
    let writer = InboxWriter::spawn(db.clone(), options.clock.clone(), INTAKE_STORE_TIMEOUT);
    let stall = p.watchdog_timeout;

    let mut components: Vec<Arc<dyn Component>> = Vec::new();
    let mut routes = axum::Router::new();
    match &d.intake {
        IntakeMode::Webhook { public_url, secret } => {
            routes = webhook::routes(
                &d.webhook_path,
                secret.clone(),
                writer,
                inbox_wake.clone(),
                metrics.telegram.clone(),
            );
            let url = webhook_url(public_url, &d.webhook_path);
            components.push(Arc::new(Watched::new(
                Registrar::new(
                    db.clone(),
                    api.clone(),
                    options.clock.clone(),
                    WebhookTarget {
                        url,
                        secret: secret.clone(),
                        max_connections: p.webhook_max_connections,
                    },
                    holder.clone(),
                    options.webhook_check_every,
                    readiness.clone(),
                    metrics.telegram.clone(),
                ),
                stall,
            )));
        }
        IntakeMode::Polling => {
            components.push(Arc::new(Watched::new(
                Poller::new(
                    db.clone(),
                    api.clone(),
                    writer,
                    options.clock.clone(),
                    PollerConfig {
                        long_poll: p.poll_timeout,
                        lease_ttl: crate::telegram::poller::lease_ttl(p.poll_timeout),
                        ..PollerConfig::default()
                    },
                    holder.clone(),
                    inbox_wake.clone(),
                    readiness.clone(),
                    metrics.telegram.clone(),
                ),
                stall,
            )));
        }
    }
    // Access and nodes: provisioning, node reconcile, the subscription feed route.
    let access = access_wiring::build(config, db, &options.clock, metrics, &holder)?;
    components.extend(access.components);
    routes = routes.merge(access.routes);
    let services = Services {
        config: Arc::new(config.clone()),
        db: db.clone(),
        api: api.clone(),
        clock: options.clock.clone(),
        registry: access.registry.clone(),
        provisioning: access.wake.clone(),
        feed_base: access.feed_base.clone(),
        alerts: alerts.clone(),
        outbox_wake: outbox_wake.clone(),
        holder: holder.clone(),
        metrics: metrics.clone(),
        providers: Arc::new(
            crate::billing::providers::Configured::from_config(config)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    };
    let plugged = make_handler(&services)?;
    routes = routes.merge(plugged.routes);
    let handler = plugged.handler;
    components.extend(
        plugged
            .components
            .into_iter()
            .map(|c| Arc::new(WatchedDyn::new(c, stall)) as Arc<dyn Component>),
    );
    let ctx = HandlerContext {
        db: db.clone(),
        api: api.clone(),
        clock: options.clock.clone(),
        outbox_wake: outbox_wake.clone(),
    };
    let dispatch = DispatcherConfig {
        deadline: p.handler_deadline,
        retry_base: options.handler_retry_base,
        max_attempts: options.handler_max_attempts,
        ..DispatcherConfig::for_pool(db.concurrency_budget(&d.database))
    };
    components.push(Arc::new(Watched::new(
        Dispatcher::new(
            handler,
            ctx,
            dispatch,
            holder.clone(),
            inbox_wake,
            alerts,
            metrics.telegram.clone(),
        ),
        stall,
    )));
    components.push(Arc::new(Watched::new(
        OutboxSender::new(
            db.clone(),
            api,
            options.clock.clone(),
            SenderConfig {
                rate_per_second: p.outbox_rate,
                retry_base: options.send_retry_base,
                per_chat_interval: options.per_chat_interval,
                provider_token: config.deployment.payment_provider_token.clone(),
                ..SenderConfig::default()
            },
            holder,
            outbox_wake,
            metrics.telegram.clone(),
        ),
        stall,
    )));
    components.push(Arc::new(Watched::new(
        Housekeeping::new(db.clone(), options.clock.clone(), metrics.telegram.clone()),
        stall,
    )));
    let pruning = Pruning::new(
        db.clone(),
        options.clock.clone(),
        p.inbox_retention,
        p.outbox_retention,
    );
    components.push(Arc::new(WatchedDyn::new(
        Arc::new(JobRunner::new(
            Arc::new(pruning),
            db.clone(),
            options.clock.clone(),
            pruning_holder,
            metrics.jobs.clone(),
        )),
        stall,
    )));
    if let Some(b) = &d.backup
        && let Some(job) = Backups::new(
            db,
            backups_api,
            options.clock.clone(),
            b.chat_id,
            b.interval,
        )
    {
        components.push(Arc::new(WatchedDyn::new(
            Arc::new(JobRunner::new(
                Arc::new(job),
                db.clone(),
                options.clock.clone(),
                backups_holder,
                metrics.jobs.clone(),
            )),
            stall,
        )));
    }
    components.extend(options.extra_components.iter().cloned());
    Ok(Pipeline { components, routes })
}

/// The public URL Telegram posts to: `PUBLIC_URL` + `WEBHOOK_PATH`.
pub fn webhook_url(public_url: &url::Url, path: &str) -> String {
    format!("{}{}", public_url.as_str().trim_end_matches('/'), path)
}

/// Longest a webhook request waits for its update to be committed before answering 503.
const INTAKE_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the listener and starts the service in the background; `make_handler` builds the
/// update handler (and its components) from the service's parts.
pub async fn start<H, F>(
    config: Config,
    options: AppOptions,
    make_handler: F,
) -> anyhow::Result<RunningApp>
where
    H: Handler,
    F: FnOnce(&Services) -> anyhow::Result<Plugged<H>>,
{
    let d = &config.deployment;
    let db = Db::connect_lazy(&d.database).map_err(|e| {
        anyhow::anyhow!(
            "{}",
            store::misconfiguration(&e).unwrap_or_else(|| format!("cannot open the database: {e}"))
        )
    })?;
    let metrics = Metrics::new();
    let readiness = Readiness::new(db.clone(), options.readiness_timeout);
    readiness.set_detail(
        "intake",
        serde_json::json!({ "mode": d.intake.name(), "state": "not started" }),
    );
    let pipeline = pipeline(&config, &options, &db, &metrics, &readiness, make_handler)?;
    let statuses = Statuses::default();
    readiness.attach_components(statuses.clone());
    let listener = http::bind(d.listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let router = http::router(
        HttpState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        },
        pipeline.routes,
    );
    let alerts = Alerts::new(d.admin_ids.clone());
    let restart_db = db.clone();
    let clock = options.clock.clone();
    let on_restart: RestartHook = Arc::new(move |name, reason| {
        let (db, alerts, clock) = (restart_db.clone(), alerts.clone(), clock.clone());
        let text = format!("⚠️ Component {name} was restarted: {reason}.");
        tokio::spawn(async move {
            let now = clock.now();
            let key = format!("restart:{name}:{}", now.as_millis());
            if let Err(e) = alerts.queue(&db, &key, &text, now).await {
                tracing::warn!(error = %e, "cannot queue the admin alert about a restart");
            }
        });
    });

    let task = tokio::spawn(run_service(
        config,
        options,
        db.clone(),
        listener,
        router,
        shutdown.clone(),
        Supervised {
            components: pipeline.components,
            statuses,
            on_restart,
        },
    ));
    Ok(RunningApp {
        addr,
        db,
        metrics,
        shutdown,
        task,
    })
}

struct Supervised {
    components: Vec<Arc<dyn Component>>,
    statuses: Statuses,
    on_restart: RestartHook,
}

async fn run_service(
    config: Config,
    options: AppOptions,
    db: Db,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
    supervised: Supervised,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let server_stop = CancellationToken::new();
    let mut server = tokio::spawn(http::serve(listener, router, server_stop.clone()));
    tracing::info!(%addr, "http server listening");

    let boot = tokio::select! {
        r = bootstrap(&db, &options, &config.deployment.flag_seeds) => r,
        _ = shutdown.cancelled() => Ok(()),
        r = &mut server => Err(anyhow::anyhow!("http server stopped unexpectedly: {r:?}")),
    };
    if let Err(e) = boot {
        server_stop.cancel();
        let deadline = tokio::time::Instant::now() + config.deployment.shutdown_timeout;
        let _ = tokio::time::timeout_at(deadline, server).await;
        close_db(&db, deadline).await;
        return Err(e);
    }

    // Components run until shutdown; the supervisor restarts any that wedge or end.
    let components_stop = shutdown.child_token();
    let supervisor = tokio::spawn(supervisor::supervise(
        supervised.components,
        components_stop.clone(),
        supervised.statuses,
        supervised.on_restart,
    ));
    if !shutdown.is_cancelled() {
        tracing::info!("components started");
    }
    shutdown.cancelled().await;

    tracing::info!(
        deadline_ms = config.deployment.shutdown_timeout.as_millis() as u64,
        "shutting down: no new requests or claims, finishing in-flight work"
    );
    // Intake stops (the listener closes) while components stop claiming; both drain in
    // parallel under one deadline.
    server_stop.cancel();
    let deadline = tokio::time::Instant::now() + config.deployment.shutdown_timeout;
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(Ok(Ok(()))) => tracing::info!("http server drained"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "http server task failed"),
        Err(_) => {
            server.abort();
            tracing::warn!(
                "in-flight requests did not finish within the shutdown deadline; closing them"
            );
        }
    }
    if tokio::time::timeout_at(deadline, supervisor).await.is_err() {
        tracing::warn!("components did not stop within the shutdown deadline");
    } else {
        tracing::info!("components stopped");
    }
    close_db(&db, deadline).await;
    tracing::info!("stopped");
    Ok(())
}

/// Closes the pool within what is left of the shutdown deadline: a connection stuck on a
/// partitioned network must not hold the process past it.
async fn close_db(db: &Db, deadline: tokio::time::Instant) {
    let floor = tokio::time::Instant::now() + Duration::from_millis(100);
    if tokio::time::timeout_at(deadline.max(floor), db.close())
        .await
        .is_err()
    {
        tracing::warn!(
            "database connections did not close in time; leaving them to the operating system"
        );
    }
}

/// Brings the schema to this binary's version, waiting out database outages; then stores
/// the `TOLLGATE_FLAG_<NAME>` seeds where the database has no value and logs every flag.
async fn bootstrap(
    db: &Db,
    options: &AppOptions,
    seeds: &[(flags::Flag, bool)],
) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(15));
    loop {
        match migrate::run(db, options.clock.now(), options.migrate).await {
            Ok(report) => {
                tracing::info!(backend = db.backend().name(), "{report}");
                break;
            }
            Err(MigrateError::Database(e)) if store::misconfiguration(&e).is_some() => {
                let fix = store::misconfiguration(&e).unwrap_or_default();
                return Err(anyhow::anyhow!("{fix} ({e})"));
            }
            Err(e) if e.is_transient() => {
                let wait = backoff.fail();
                tracing::warn!(
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    attempt = backoff.failures(),
                    "database not available yet; the service keeps waiting (readiness reports it)"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        }
    }
    loop {
        match flags::seed(db, seeds, options.clock.now()).await {
            Ok(seeded) => {
                for flag in seeded {
                    tracing::info!(flag = flag.name(), variable = %flag.env_var(),
                        "runtime flag seeded from the environment (the database had no value)");
                }
                break;
            }
            Err(e) => {
                let wait = backoff.fail();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot seed runtime flags yet");
                tokio::time::sleep(wait).await;
            }
        }
    }
    loop {
        match flags::log_all(db).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let wait = backoff.fail();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot read runtime flags yet");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Logs the effective configuration once at start (secrets are redacted in the report).
pub fn log_effective_config(config: &Config) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        intake = config.deployment.intake.name(),
        database = %config.deployment.database.url.redacted(),
        listen = %config.deployment.listen,
        catalog = %config.deployment.config_path.display(),
        "starting tollgate"
    );
    for l in &config.env_report {
        tracing::info!(
            key = l.key.as_str(),
            value = l.value.as_str(),
            source = l.source,
            "setting"
        );
    }
    let c = &config.catalog;
    tracing::info!(
        plans = c.plans.len(),
        nodes = c.nodes.len(),
        enabled_nodes = c.nodes.iter().filter(|n| n.enabled).count(),
        languages = ?c.bot.languages.iter().map(|l| l.code()).collect::<Vec<_>>(),
        base_currency = c.bot.base_currency.code(),
        "catalog loaded"
    );
    if c.nodes.iter().all(|n| !n.enabled) {
        tracing::warn!(
            "no enabled node in the catalog: users get subscriptions but nowhere to connect"
        );
    }
    if config.deployment.admin_ids.is_empty() {
        tracing::warn!("ADMIN_IDS is empty: nobody can use admin commands or receive alerts");
    }
}
