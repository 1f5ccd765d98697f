//! Wiring: configuration → database → HTTP → components, and the way back down.
//!
//! Start order matters for reliability. The HTTP server comes up first, so `/healthz`
//! answers and `/readyz` explains what the process is waiting for. The database may be down
//! at boot: the bootstrap retries migrations with backoff until it succeeds and only then
//! starts the components, so a boot during an outage ends in exactly the same running set
//! as a healthy boot (RELIABILITY A9). Misconfiguration (bad credentials, a missing database,
//! an edited migration) is not retried: the process exits with the fix (A10).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::flags;
use crate::http::{self, HttpState, Readiness};
use crate::metrics::Metrics;
use crate::store::migrate::{self, MigrateError, MigrateTimeouts};
use crate::store::{self, Db};
use crate::time::SharedClock;

/// Knobs tests turn; production uses the defaults.
#[derive(Clone)]
pub struct AppOptions {
    pub clock: SharedClock,
    pub readiness_timeout: Duration,
    pub migrate: MigrateTimeouts,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            clock: Arc::new(crate::time::SystemClock),
            readiness_timeout: http::health::READINESS_TIMEOUT,
            migrate: MigrateTimeouts::default(),
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

/// Binds the listener and starts the service in the background.
pub async fn start(config: Config, options: AppOptions) -> anyhow::Result<RunningApp> {
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
    let listener = http::bind(d.listen).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let router = http::router(
        HttpState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        },
        axum::Router::new(),
    );

    let task = tokio::spawn(run_service(
        config,
        options,
        db.clone(),
        listener,
        router,
        shutdown.clone(),
    ));
    Ok(RunningApp {
        addr,
        db,
        metrics,
        shutdown,
        task,
    })
}

async fn run_service(
    config: Config,
    options: AppOptions,
    db: Db,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let server_stop = CancellationToken::new();
    let mut server = tokio::spawn(http::serve(listener, router, server_stop.clone()));
    tracing::info!(%addr, "http server listening");

    let boot = tokio::select! {
        r = bootstrap(&db, &options) => r,
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

    // Components of later pipelines start here, each with a child of `shutdown`.
    shutdown.cancelled().await;

    tracing::info!(
        deadline_ms = config.deployment.shutdown_timeout.as_millis() as u64,
        "shutting down: no new requests, draining in-flight ones"
    );
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

/// Brings the schema to this binary's version, waiting out database outages.
async fn bootstrap(db: &Db, options: &AppOptions) -> anyhow::Result<()> {
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
