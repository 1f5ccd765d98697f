//! Background jobs under one contract (docs/design.md §4, docs/reliability.md A4, A5, D1–D3).
//!
//! Every loop of the earlier system failed in its own way; here a job only says *what* one
//! iteration does ([`Job::run_once`]), and [`JobRunner`] guarantees the rest for all of them:
//! an `ITERATION_START` and exactly one `ITERATION_END {job, outcome, items, duration_ms}` on
//! every path (success, error, panic, deadline, flag off, not the leader), a hard deadline,
//! panic isolation (the iteration runs in its own task), exponential backoff after failures
//! with a cap (a failing job never spins), a lease for singleton jobs, heartbeats for the
//! watchdog (a runner is a supervised [`Component`]) and metrics. Runtime flags are read at
//! the start of every iteration, so flipping one takes effect on the next.
//!
//! The runner beats its heartbeat while it waits for an iteration: the runner is what
//! enforces the deadline, so it is alive for as long as it waits, and a long iteration (an
//! expiry wave) must not look wedged to the watchdog — a watchdog restart would cut the
//! iteration without an `ITERATION_END` and, before this, left the iteration's task running
//! on its own with no deadline. The iteration's task is aborted whenever the runner stops
//! waiting for it, on every path.
//!
//! Shutdown (docs/reliability.md A7): the runner starts no new iteration once asked to stop, and a
//! running one is told to stop claiming ([`Job::run_once_until_stopped`]); it gets
//! [`SHUTDOWN_GRACE`] to return what it did, then it is aborted (its open transaction rolls
//! back) and ends with outcome `stopped`. Then a singleton's lease is released, so another
//! replica can take the role at once.

pub mod backups;
pub mod metrics;
pub mod monitor;
pub mod notices;
pub mod outcome;
pub mod renewal;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use tokio::sync::Notify;

use crate::backoff::{Backoff, jittered};
use crate::config::catalog::Catalog;
use crate::flags::{self, Flag};
use crate::i18n::Texts;
use crate::lease::{self, Lease};
use crate::nodes::{EnabledNodes, ProvisioningWake};
use crate::services::Services;
use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::time::SharedClock;

use self::metrics::JobMetrics;
pub use self::outcome::Outcome;

/// What the notice and auto-renewal jobs work with, handed to them by whoever wires the
/// service: the jobs sit below the application's wiring and do not reach into it.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    pub clock: SharedClock,
    pub texts: Arc<Texts>,
    pub catalog: Arc<Catalog>,
    /// The enabled nodes: a renewed key is wanted on each.
    pub nodes: EnabledNodes,
    /// Woken after committing an access change (an expiry, a renewal).
    pub provisioning: ProvisioningWake,
    /// Woken after committing outbox rows.
    pub outbox_wake: Arc<Notify>,
}

impl JobContext {
    /// The jobs' context on the running service's parts.
    pub fn of(s: &Services, texts: Arc<Texts>) -> JobContext {
        JobContext {
            db: s.db.clone(),
            clock: s.clock.clone(),
            texts,
            catalog: Arc::new(s.config.catalog.clone()),
            nodes: s.registry.enabled().clone(),
            provisioning: s.provisioning.clone(),
            outbox_wake: s.outbox_wake.clone(),
        }
    }
}

/// One iteration's future.
pub type IterationFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<u64>> + Send + 'a>>;

/// A periodic job: what one iteration does and how often.
pub trait Job: Send + Sync + 'static {
    /// Stable name for logs, metrics and the singleton lease.
    fn name(&self) -> &'static str;
    /// Time between iterations (jittered ±10 %).
    fn interval(&self) -> Duration;
    /// Hard limit of one iteration; past it the iteration is cancelled.
    fn deadline(&self) -> Duration;
    /// Whether only one replica may run it at a time (by lease `job:<name>`).
    fn singleton(&self) -> bool {
        false
    }
    /// The runtime flag that switches it off, if any.
    fn flag(&self) -> Option<Flag> {
        None
    }
    /// One iteration; returns how many items it handled. Claims work row by row, one
    /// transaction per item, no network I/O inside a transaction.
    fn run_once(&self) -> IterationFuture<'_>;
    /// [`Job::run_once`] that stops claiming new items once `stop` is cancelled (shutdown)
    /// and returns what it handled so far. Jobs that work through a batch override it; the
    /// default runs the whole iteration, which shutdown then cuts after [`SHUTDOWN_GRACE`].
    fn run_once_until_stopped(&self, stop: CancellationToken) -> IterationFuture<'_> {
        let _ = stop;
        self.run_once()
    }
}

/// How long a running iteration may go on after shutdown was requested, before it is
/// aborted. Below the supervisor's grace for a component (5 s), so the runner still logs the
/// iteration's end and releases its lease itself.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How often the runner beats its heartbeat, idle or waiting for an iteration: well below
/// the smallest watchdog threshold (`WATCHDOG_TIMEOUT` ≥ 1 s).
const BEAT_EVERY: Duration = Duration::from_millis(250);

/// Aborts the iteration's task when dropped, so no path leaves it running unsupervised.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one [`Job`] forever under the contract above.
pub struct JobRunner {
    job: Arc<dyn Job>,
    db: Db,
    clock: SharedClock,
    holder: String,
    metrics: JobMetrics,
    /// The job's own interval unless the deployment sets one for all (`JOBS_INTERVAL`).
    interval: Duration,
    /// Cap of the failure backoff.
    max_backoff: Duration,
}

impl JobRunner {
    pub fn new(
        job: Arc<dyn Job>,
        db: Db,
        clock: SharedClock,
        holder: String,
        metrics: JobMetrics,
    ) -> JobRunner {
        let interval = job.interval();
        JobRunner {
            job,
            db,
            clock,
            holder,
            metrics,
            interval,
            max_backoff: Self::backoff_cap(interval),
        }
    }

    /// Runs the job every `interval` instead of its own [`Job::interval`].
    pub fn with_interval(mut self, interval: Duration) -> JobRunner {
        self.interval = interval;
        self.max_backoff = Self::backoff_cap(interval);
        self
    }

    fn backoff_cap(interval: Duration) -> Duration {
        (interval * 16).clamp(Duration::from_secs(1), Duration::from_secs(300))
    }

    fn lease_ttl(&self) -> Duration {
        self.job.deadline() + self.interval * 2 + Duration::from_secs(5)
    }

    /// One iteration with its START/END pair; returns the outcome.
    pub async fn iteration(&self, lease: &mut Option<Lease>) -> Outcome {
        self.iteration_until_stopped(lease, &Heartbeat::new(), &CancellationToken::new())
            .await
    }

    /// [`JobRunner::iteration`], beating `hb` while it waits and cutting the iteration short
    /// when `stop` is cancelled (see the module docs on shutdown).
    pub async fn iteration_until_stopped(
        &self,
        lease: &mut Option<Lease>,
        hb: &Heartbeat,
        stop: &CancellationToken,
    ) -> Outcome {
        let name = self.job.name();
        let started = Instant::now();
        tracing::info!(job = name, "ITERATION_START");
        let (outcome, items) = self.guarded(lease, hb, stop).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let labels = metrics::JobLabels {
            job: name,
            outcome: outcome.as_str(),
        };
        self.metrics.iterations.get_or_create(&labels).inc();
        self.metrics
            .items
            .get_or_create(&metrics::JobName { job: name })
            .inc_by(items);
        self.metrics
            .duration
            .get_or_create(&metrics::JobName { job: name })
            .observe(started.elapsed().as_secs_f64());
        self.metrics.ended(name, outcome, self.clock.now());
        if outcome.failed() {
            tracing::warn!(
                job = name,
                outcome = outcome.as_str(),
                items,
                duration_ms,
                "ITERATION_END"
            );
        } else {
            tracing::info!(
                job = name,
                outcome = outcome.as_str(),
                items,
                duration_ms,
                "ITERATION_END"
            );
        }
        outcome
    }

    async fn guarded(
        &self,
        lease: &mut Option<Lease>,
        hb: &Heartbeat,
        stop: &CancellationToken,
    ) -> (Outcome, u64) {
        let name = self.job.name();
        if let Some(flag) = self.job.flag() {
            match flags::get(&self.db, flag).await {
                Ok(true) => {}
                Ok(false) => return (Outcome::FlagOff, 0),
                Err(e) => {
                    tracing::warn!(job = name, error = %e, "cannot read the job's flag");
                    return (Outcome::Error, 0);
                }
            }
        }
        if self.job.singleton() {
            let key = format!("job:{name}");
            match lease::acquire(
                &self.db,
                &key,
                &self.holder,
                self.lease_ttl(),
                self.clock.now(),
            )
            .await
            {
                Ok(Some(l)) => *lease = Some(l),
                Ok(None) => {
                    *lease = None;
                    return (Outcome::NotLeader, 0);
                }
                Err(e) => {
                    tracing::warn!(job = name, error = %e, "cannot take the job's lease");
                    return (Outcome::Error, 0);
                }
            }
        }
        // Its own task: a panic ends the task, not the runner; the deadline, shutdown and a
        // dropped runner abort it.
        let job = self.job.clone();
        let job_stop = stop.clone();
        let mut task = tokio::spawn(async move { job.run_once_until_stopped(job_stop).await });
        let _abort = AbortOnDrop(task.abort_handle());
        let deadline = Instant::now() + self.job.deadline();
        let mut grace_until: Option<Instant> = None;
        let mut beat = tokio::time::interval(BEAT_EVERY);
        loop {
            let cut_at = grace_until.map_or(deadline, |g| g.min(deadline));
            tokio::select! {
                joined = &mut task => return match joined {
                    Ok(Ok(items)) => (Outcome::Ok, items),
                    Ok(Err(e)) => {
                        tracing::warn!(job = name, error = %format!("{e:#}"), "iteration failed");
                        (Outcome::Error, 0)
                    }
                    Err(join) if join.is_panic() => {
                        tracing::error!(job = name, "iteration panicked; the job goes on");
                        (Outcome::Panic, 0)
                    }
                    Err(_) => (Outcome::Error, 0),
                },
                _ = tokio::time::sleep_until(cut_at) => {
                    task.abort();
                    return if cut_at < deadline {
                        tracing::warn!(job = name, grace = ?SHUTDOWN_GRACE,
                            "iteration did not stop within the shutdown grace and was aborted");
                        (Outcome::Stopped, 0)
                    } else {
                        tracing::warn!(job = name, deadline = ?self.job.deadline(),
                            "iteration exceeded its deadline and was cancelled");
                        (Outcome::Deadline, 0)
                    };
                }
                _ = beat.tick() => hb.beat(),
                _ = stop.cancelled(), if grace_until.is_none() => {
                    grace_until = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            }
        }
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let mut backoff = Backoff::new(
            self.interval.max(Duration::from_millis(10)),
            self.max_backoff,
        );
        let mut lease: Option<Lease> = None;
        // The first iteration waits one (jittered) interval: a restart never hammers.
        let mut wait = jittered(self.interval, 0.1);
        loop {
            if !idle(wait, &hb, BEAT_EVERY, &stop).await {
                break;
            }
            hb.beat();
            let outcome = self.iteration_until_stopped(&mut lease, &hb, &stop).await;
            hb.beat();
            wait = if outcome.failed() {
                backoff.fail()
            } else {
                backoff.succeed();
                jittered(self.interval, 0.1)
            };
        }
        if let Some(l) = lease {
            let _ = lease::release(&self.db, &l, self.clock.now()).await;
        }
    }
}

impl Component for JobRunner {
    fn name(&self) -> &'static str {
        self.job.name()
    }

    fn stall_after(&self) -> Duration {
        self.job.deadline() + Duration::from_secs(30)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}

/// Whether `e` (anywhere in its chain) is the database being unreachable or overloaded: then
/// the next item would fail the same way, so a batch stops and the iteration backs off,
/// instead of trying every remaining item.
pub fn database_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sqlx::Error>()
            .is_some_and(|s| crate::store::classify(s) == crate::store::Failure::Unavailable)
    })
}
