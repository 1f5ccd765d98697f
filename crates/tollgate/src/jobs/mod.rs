//! Background jobs under one contract (DESIGN §4, RELIABILITY A4, A5, D1–D3).
//!
//! Every loop of the earlier system failed in its own way; here a job only says *what* one
//! iteration does ([`Job::run_once`]), and [`JobRunner`] guarantees the rest for all of them:
//! an `ITERATION_START` and exactly one `ITERATION_END {job, outcome, items, duration_ms}` on
//! every path (success, error, panic, deadline, flag off, not the leader), a hard deadline,
//! panic isolation (the iteration runs in its own task), exponential backoff after failures
//! with a cap (a failing job never spins), a lease for singleton jobs, heartbeats for the
//! watchdog (a runner is a supervised [`Component`]) and metrics. Runtime flags are read at
//! the start of every iteration, so flipping one takes effect on the next.

pub mod metrics;
pub mod notices;
pub mod renewal;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, jittered};
use crate::flags::{self, Flag};
use crate::lease::{self, Lease};
use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::time::SharedClock;

use self::metrics::JobMetrics;

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
}

/// How an iteration ended (the `outcome` label; a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Error,
    Panic,
    Deadline,
    /// Its runtime flag is off.
    FlagOff,
    /// A singleton whose lease another replica holds.
    NotLeader,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Deadline => "deadline",
            Outcome::FlagOff => "flag_off",
            Outcome::NotLeader => "not_leader",
        }
    }

    fn failed(self) -> bool {
        matches!(self, Outcome::Error | Outcome::Panic | Outcome::Deadline)
    }
}

/// Runs one [`Job`] forever under the contract above.
pub struct JobRunner {
    job: Arc<dyn Job>,
    db: Db,
    clock: SharedClock,
    holder: String,
    metrics: JobMetrics,
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
        let max_backoff =
            (job.interval() * 16).clamp(Duration::from_secs(1), Duration::from_secs(300));
        JobRunner {
            job,
            db,
            clock,
            holder,
            metrics,
            max_backoff,
        }
    }

    fn lease_ttl(&self) -> Duration {
        self.job.deadline() + self.job.interval() * 2 + Duration::from_secs(5)
    }

    /// One iteration with its START/END pair; returns the outcome.
    pub async fn iteration(&self, lease: &mut Option<Lease>) -> Outcome {
        let name = self.job.name();
        let started = Instant::now();
        tracing::info!(job = name, "ITERATION_START");
        let (outcome, items) = self.guarded(lease).await;
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

    async fn guarded(&self, lease: &mut Option<Lease>) -> (Outcome, u64) {
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
        // Its own task: a panic ends the task, not the runner; the deadline aborts it.
        let job = self.job.clone();
        let task = tokio::spawn(async move { job.run_once().await });
        let abort = task.abort_handle();
        match tokio::time::timeout(self.job.deadline(), task).await {
            Ok(Ok(Ok(items))) => (Outcome::Ok, items),
            Ok(Ok(Err(e))) => {
                tracing::warn!(job = name, error = %format!("{e:#}"), "iteration failed");
                (Outcome::Error, 0)
            }
            Ok(Err(join)) if join.is_panic() => {
                tracing::error!(job = name, "iteration panicked; the job goes on");
                (Outcome::Panic, 0)
            }
            Ok(Err(_)) => (Outcome::Error, 0),
            Err(_) => {
                abort.abort();
                tracing::warn!(job = name, deadline = ?self.job.deadline(), "iteration exceeded its deadline and was cancelled");
                (Outcome::Deadline, 0)
            }
        }
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let mut backoff = Backoff::new(
            self.job.interval().max(Duration::from_millis(10)),
            self.max_backoff,
        );
        let mut lease: Option<Lease> = None;
        // The first iteration waits one (jittered) interval: a restart never hammers.
        let mut wait = jittered(self.job.interval(), 0.1);
        loop {
            if !idle(wait, &hb, Duration::from_millis(500), &stop).await {
                break;
            }
            hb.beat();
            let outcome = self.iteration(&mut lease).await;
            hb.beat();
            wait = if outcome.failed() {
                backoff.fail()
            } else {
                backoff.succeed();
                jittered(self.job.interval(), 0.1)
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
