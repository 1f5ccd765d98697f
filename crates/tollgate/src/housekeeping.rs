//! Housekeeping: pruning finished pipeline rows and refreshing backlog gauges.
//!
//! Handled updates and sent messages are kept for a while (debugging, audits) and then
//! deleted in small batches, so the tables and their indexes stay the size of the live
//! backlog. Backlog depth and age are read here every few seconds for `/metrics`. Every
//! replica may run this: deletes of already-deleted rows are no-ops.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::telegram::metrics::PipelineMetrics;
use crate::telegram::{inbox, outbox};
use crate::time::SharedClock;

/// Rows deleted per statement: short transactions, no long locks.
const PRUNE_BATCH: i64 = 1000;
const GAUGES_EVERY: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub struct Housekeeping {
    db: Db,
    clock: SharedClock,
    inbox_retention: Duration,
    outbox_retention: Duration,
    metrics: PipelineMetrics,
}

impl Housekeeping {
    pub fn new(
        db: Db,
        clock: SharedClock,
        inbox_retention: Duration,
        outbox_retention: Duration,
        metrics: PipelineMetrics,
    ) -> Self {
        Housekeeping {
            db,
            clock,
            inbox_retention,
            outbox_retention,
            metrics,
        }
    }

    /// Deletes handled updates and finished messages past their retention; returns how many.
    pub async fn prune_once(&self, hb: &Heartbeat) -> Result<(u64, u64), sqlx::Error> {
        let now = self.clock.now();
        let mut updates = 0;
        loop {
            hb.beat();
            let n = inbox::prune(&self.db, now.minus(self.inbox_retention), PRUNE_BATCH).await?;
            updates += n;
            if n < PRUNE_BATCH as u64 {
                break;
            }
        }
        let mut messages = 0;
        loop {
            hb.beat();
            let n = outbox::prune(&self.db, now.minus(self.outbox_retention), PRUNE_BATCH).await?;
            messages += n;
            if n < PRUNE_BATCH as u64 {
                break;
            }
        }
        // Unpaid purchases past their TTL; a paid one is never touched (a late payment for
        // an expired purchase is still honoured by finalize).
        loop {
            hb.beat();
            match crate::billing::expire_unpaid_purchases(&self.db, now, PRUNE_BATCH).await {
                Ok(n) if n == PRUNE_BATCH as u64 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot expire unpaid purchases; will try again");
                    break;
                }
            }
        }
        Ok((updates, messages))
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
        // The first prune waits a full period: a restart loop must not turn into a prune loop.
        let mut next_prune = Instant::now() + PRUNE_EVERY;
        loop {
            hb.beat();
            if let Err(e) = self.refresh_gauges().await {
                tracing::debug!(error = %e, "cannot read backlog gauges");
            }
            if Instant::now() >= next_prune {
                match self.prune_once(&hb).await {
                    Ok((u, m)) if u + m > 0 => {
                        tracing::info!(updates = u, messages = m, "pruned finished pipeline rows")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning failed; will try again"),
                }
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            if !idle(GAUGES_EVERY, &hb, Duration::from_millis(500), &stop).await {
                return;
            }
        }
    }
}

impl Component for Housekeeping {
    fn name(&self) -> &'static str {
        "housekeeping"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}
