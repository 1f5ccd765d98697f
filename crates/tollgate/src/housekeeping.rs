//! Housekeeping: pruning finished pipeline rows, expiring unpaid purchases, refreshing
//! backlog gauges, and keeping PostgreSQL's statistics of the queue tables current.
//!
//! Handled updates and sent messages are kept for a while (debugging, audits) and then
//! deleted in small batches, so the tables and their indexes stay the size of the live
//! backlog; purchases nobody paid within their TTL are marked expired (never a paid one), and
//! deleted after `OUTBOX_RETENTION` unless a payment points at them.
//! That is [`Pruning`], a job under the job runner's contract (`ITERATION_START` / `_END`,
//! deadline, backoff, metrics; `crate::jobs`). Backlog depth and age are read every few
//! seconds for `/metrics` by the [`Housekeeping`] component — too frequent and too trivial
//! for an iteration log line each time; every second it also lets
//! [`statistics::refresh`] analyze a queue table whose backlog moved. Every replica may run
//! both: deletes of already-deleted rows and updates of already-expired purchases are
//! no-ops, and analyzes are spaced across replicas.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::jobs::{IterationFuture, Job};

use crate::store::{Db, statistics};
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::telegram::metrics::PipelineMetrics;
use crate::telegram::{inbox, outbox};
use crate::time::SharedClock;

/// Rows deleted per statement: short transactions, no long locks.
const PRUNE_BATCH: i64 = 1000;
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// How often the queue tables' statistics are checked (a cheap read of PostgreSQL's
/// cumulative statistics; an analyze only when one is due).
const STATISTICS_EVERY: Duration = Duration::from_secs(1);
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Refreshes the backlog gauges every few seconds.
pub struct Housekeeping {
    db: Db,
    clock: SharedClock,
    metrics: PipelineMetrics,
}

impl Housekeeping {
    pub fn new(db: Db, clock: SharedClock, metrics: PipelineMetrics) -> Self {
        Housekeeping { db, clock, metrics }
    }

    async fn refresh_gauges(&self) -> Result<(), sqlx::Error> {
        let now = self.clock.now();
        let age =
            |t: Option<crate::time::Timestamp>| t.map_or(0, |t| now.since(t).as_secs() as i64);
        let d = inbox::depth(&self.db).await?;
        self.metrics.inbox_depth.set(d.pending);
        self.metrics
            .inbox_oldest_age_seconds
            .set(age(d.oldest_pending));
        self.metrics.inbox_dead.set(d.dead);
        let (depth, oldest) = outbox::depth(&self.db).await?;
        self.metrics.outbox_depth.set(depth);
        self.metrics.outbox_oldest_age_seconds.set(age(oldest));
        Ok(())
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let mut gauges_due = tokio::time::Instant::now();
        loop {
            hb.beat();
            if tokio::time::Instant::now() >= gauges_due {
                gauges_due += GAUGES_EVERY;
                if let Err(e) = self.refresh_gauges().await {
                    tracing::debug!(error = %e, "cannot read backlog gauges");
                }
            }
            match statistics::refresh(&self.db).await {
                Ok(analyzed) if !analyzed.is_empty() => {
                    tracing::debug!(tables = ?analyzed, "analyzed queue tables");
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "cannot refresh queue-table statistics"),
            }
            if !idle(STATISTICS_EVERY, &hb, Duration::from_millis(500), &stop).await {
                return;
            }
        }
    }
}

/// The pruning job: handled updates and finished messages past their retention, and
/// unpaid purchases past their TTL.
pub struct Pruning {
    db: Db,
    clock: SharedClock,
    inbox_retention: Duration,
    outbox_retention: Duration,
}

impl Pruning {
    pub fn new(
        db: Db,
        clock: SharedClock,
        inbox_retention: Duration,
        outbox_retention: Duration,
    ) -> Self {
        Pruning {
            db,
            clock,
            inbox_retention,
            outbox_retention,
        }
    }

    /// One pass, batch by batch until nothing is left or `stop` is cancelled; returns the
    /// rows deleted or expired.
    pub async fn prune_until(&self, stop: &CancellationToken) -> anyhow::Result<u64> {
        let now = self.clock.now();
        let full = |n: u64| n == PRUNE_BATCH as u64 && !stop.is_cancelled();
        let mut updates = 0;
        loop {
            let n = inbox::prune(&self.db, now.minus(self.inbox_retention), PRUNE_BATCH).await?;
            updates += n;
            if !full(n) {
                break;
            }
        }
        let mut messages = 0;
        loop {
            let n = outbox::prune(&self.db, now.minus(self.outbox_retention), PRUNE_BATCH).await?;
            messages += n;
            if !full(n) {
                break;
            }
        }
        // A late payment for an expired purchase is still honoured by finalize.
        let mut purchases = 0;
        loop {
            let n = crate::billing::expire_unpaid_purchases(&self.db, now, PRUNE_BATCH).await?;
            purchases += n;
            if !full(n) {
                break;
            }
        }
        // Expired intents are history for as long as sent messages are, then go: otherwise
        // every invoice ever opened and never paid would stay forever.
        let mut stale = 0;
        loop {
            let n = crate::billing::prune_expired_purchases(
                &self.db,
                now.minus(self.outbox_retention),
                PRUNE_BATCH,
            )
            .await?;
            stale += n;
            if !full(n) {
                break;
            }
        }
        if updates + messages + purchases + stale > 0 {
            tracing::info!(
                updates,
                messages,
                purchases,
                stale_purchases = stale,
                "pruned finished pipeline rows and stale purchases, expired unpaid purchases"
            );
        }
        Ok(updates + messages + purchases + stale)
    }
}

impl Job for Pruning {
    fn name(&self) -> &'static str {
        "housekeeping"
    }

    fn interval(&self) -> Duration {
        PRUNE_EVERY
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn run_once(&self) -> IterationFuture<'_> {
        Box::pin(async move { self.prune_until(&CancellationToken::new()).await })
    }

    fn run_once_until_stopped(&self, stop: CancellationToken) -> IterationFuture<'_> {
        Box::pin(async move { self.prune_until(&stop).await })
    }
}

impl Component for Housekeeping {
    fn name(&self) -> &'static str {
        "backlog-gauges"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}
