//! Provisioning: make each node hold what its membership rows want.
//!
//! The earlier system called nodes inside database transactions and from several workers at
//! once, which held connections across network waits and provisioned users twice
//! (docs/reliability.md C1, D4). Here the order is fixed and visible in the code:
//!
//! 1. [`membership::claim`] — one short statement marks due rows of one node as ours for a
//!    while (`claimed_until`); replicas skip each other's claims, no lease needed;
//! 2. [`apply`] — the agent call. It takes a node and a claimed row and **no database
//!    handle**, so it cannot run inside a transaction. Adds and removes are idempotent
//!    (already there / already gone are success);
//! 3. [`membership::record`] — one short statement writes what the node now holds, or the
//!    error and the next attempt time (exponential backoff with jitter per row).
//!
//! One worker per enabled node runs these steps, so a slow or dead node only delays itself;
//! its [`Breaker`] stops calls to a node that keeps failing and probes it after a cooldown
//! (E7). All workers share one bound on agent calls in flight. A worker wakes when a business
//! transaction asks for it ([`ProvisioningWake`]) and polls otherwise (other replicas'
//! grants, retries coming due). On shutdown in-flight calls are abandoned and the claims
//! released; an abandoned call that did reach the node is simply repeated (idempotent).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tollgate_node::NodeError;
use uuid::Uuid;

use super::breaker::{Admission, Breaker, BreakerConfig, CallHealth};
use super::membership::{self, Claimed, Presence, Recorded};
use super::metrics::{NodeMetrics, NodeOutcomeLabels};
use super::{Node, NodeJobs, link};
use crate::backoff::Backoff;
use crate::supervisor::{Component, Heartbeat, RunFuture};

#[derive(Debug, Clone)]
pub struct ProvisioningConfig {
    /// Rows one node's worker claims at a time (and calls in flight per node).
    pub batch: usize,
    /// Agent calls in flight across all nodes.
    pub max_in_flight: usize,
    /// Look for due rows this often when nothing woke us.
    pub poll_interval: Duration,
    /// Deadline of one agent call (the client has the same; this one also bounds the rest).
    pub call_timeout: Duration,
    /// How long a claim lasts: a process that died holding it delays its rows this long.
    pub claim_ttl: Duration,
    /// First retry delay of a failed row; doubles per failure up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub breaker: BreakerConfig,
    /// A node worker silent for longer than this counts as wedged: the component stops
    /// beating its heartbeat and the supervisor restarts it.
    pub worker_silence: Duration,
}

impl ProvisioningConfig {
    /// Defaults for agents called with `call_timeout`.
    pub fn for_call_timeout(call_timeout: Duration) -> ProvisioningConfig {
        ProvisioningConfig {
            batch: 32,
            max_in_flight: 64,
            poll_interval: Duration::from_secs(1),
            call_timeout,
            claim_ttl: (call_timeout * 3).max(Duration::from_secs(3)),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            breaker: BreakerConfig::default(),
            worker_silence: call_timeout * 2 + Duration::from_secs(10),
        }
    }
}

/// What one attempt on a claimed row did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The node now holds the key (`Present`) or not (`Absent`).
    Applied {
        observed: Presence,
        traffic_restarted: bool,
    },
    /// The call failed; `health` says whether the node itself is the problem.
    Failed { health: CallHealth, error: String },
}

impl Attempt {
    fn label(&self) -> &'static str {
        match self {
            Attempt::Applied {
                observed: Presence::Present,
                ..
            } => "added",
            Attempt::Applied { .. } => "removed",
            Attempt::Failed {
                health: CallHealth::Failed,
                ..
            } => "retry",
            Attempt::Failed { .. } => "refused",
        }
    }

    fn health(&self) -> CallHealth {
        match self {
            Attempt::Applied { .. } => CallHealth::Answered,
            Attempt::Failed { health, .. } => *health,
        }
    }
}

/// Puts or removes one claimed key on `node`. No database handle reaches this function: the
/// network call can never happen inside a transaction or while a row lock is held.
pub async fn apply(node: &Node, row: &Claimed, deadline: Duration) -> Attempt {
    let call = async {
        match row.desired {
            Presence::Present => {
                let entry = link::user_entry(&node.link, &row.vpn_uuid);
                let done = node.client.put_user(&row.email, &entry).await?;
                // The node must echo our UUID (docs/reliability.md E3).
                if Uuid::parse_str(&done.uuid).ok() != Some(row.vpn_uuid) {
                    return Ok(Attempt::Failed {
                        health: CallHealth::Answered,
                        error: format!(
                            "the agent stored {} under {}, not the key we sent",
                            done.uuid, done.email
                        ),
                    });
                }
                Ok(Attempt::Applied {
                    observed: Presence::Present,
                    traffic_restarted: done.created,
                })
            }
            // Desired is never `unknown`; treating it as absent is the safe reading.
            Presence::Absent | Presence::Unknown => {
                node.client.remove_user(&row.email).await?;
                Ok(Attempt::Applied {
                    observed: Presence::Absent,
                    traffic_restarted: true,
                })
            }
        }
    };
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(attempt)) => attempt,
        Ok(Err(e)) => {
            let e: NodeError = e;
            // Not an outage but a misconfiguration or an impostor: say it where operators look
            // (the breaker keeps this to a few lines per cooldown).
            if e.is_certificate_mismatch() {
                tracing::error!(node = %node.name, error = %e,
                    "the agent's TLS certificate is not the pinned one; nothing is sent to this node until that is fixed");
            }
            Attempt::Failed {
                health: node_health(&e),
                error: e.to_string(),
            }
        }
        Err(_) => Attempt::Failed {
            health: CallHealth::Failed,
            error: format!("no answer within {} ms", deadline.as_millis()),
        },
    }
}

/// Whether an error says the node is unwell (counts for the breaker) or only that it
/// refused this request.
fn node_health(e: &NodeError) -> CallHealth {
    match e {
        NodeError::Unavailable { .. } => CallHealth::Failed,
        NodeError::Other {
            status: Some(status),
            ..
        } if *status < 500 => CallHealth::Answered,
        NodeError::Other { .. } => CallHealth::Failed,
        NodeError::Unauthorized | NodeError::BadRequest { .. } | NodeError::Conflict { .. } => {
            CallHealth::Answered
        }
    }
}

/// What one pass over a node did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub claimed: usize,
    pub applied: usize,
    pub failed: usize,
}

impl PassReport {
    fn add(&mut self, other: &PassReport) {
        self.claimed += other.claimed;
        self.applied += other.applied;
        self.failed += other.failed;
    }
}

/// The provisioning component.
pub struct Provisioner {
    jobs: NodeJobs,
    config: ProvisioningConfig,
    permits: Arc<Semaphore>,
}

impl Provisioner {
    pub fn new(jobs: NodeJobs, config: ProvisioningConfig) -> Provisioner {
        let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        Provisioner {
            jobs,
            config,
            permits,
        }
    }

    /// Claims up to `limit` due rows of `node`, applies them (bounded, in parallel) and
    /// records each outcome; feeds every call's health to `breaker`.
    pub async fn pass(
        self: &Arc<Self>,
        node: &Arc<Node>,
        limit: usize,
        breaker: &mut Breaker,
        alive: &(dyn Fn() + Sync),
    ) -> Result<PassReport, sqlx::Error> {
        let now = self.jobs.clock.now();
        let rows = membership::claim(
            &self.jobs.db,
            &node.name,
            &self.jobs.holder,
            i64::try_from(limit).unwrap_or(i64::MAX),
            now,
            now.plus(self.config.claim_ttl),
        )
        .await?;
        let mut report = PassReport {
            claimed: rows.len(),
            ..PassReport::default()
        };
        let mut tasks = JoinSet::new();
        for row in rows {
            let me = self.clone();
            let node = node.clone();
            tasks.spawn(async move {
                let attempt = {
                    // Permits are never closed; a closed semaphore would only mean no bound.
                    let _permit = me.permits.acquire().await.ok();
                    apply(&node, &row, me.config.call_timeout).await
                };
                let recorded = me.record(&node, &row, &attempt).await;
                (attempt, recorded)
            });
        }
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(Ok((attempt, recorded))) => {
                        let was_tripped = breaker.is_tripped();
                        breaker.record(attempt.health(), Instant::now());
                        if attempt.health() == CallHealth::Answered {
                            self.jobs.registry.node_answered(&node.name, self.jobs.clock.now());
                        }
                        self.breaker_changed(node, was_tripped, breaker);
                        if let Err(e) = recorded {
                            tracing::warn!(node = %node.name, error = %e,
                                "cannot record a provisioning outcome; the claim will expire and the row be retried");
                        }
                        match attempt {
                            Attempt::Applied { .. } => report.applied += 1,
                            Attempt::Failed { .. } => report.failed += 1,
                        }
                    }
                    Some(Err(e)) => {
                        report.failed += 1;
                        tracing::error!(node = %node.name, error = %e, "a provisioning task failed");
                    }
                },
                // Every await in the tasks has a deadline; beat while they run.
                _ = ticker.tick() => alive(),
            }
        }
        Ok(report)
    }

    async fn record(
        &self,
        node: &Node,
        row: &Claimed,
        attempt: &Attempt,
    ) -> Result<bool, sqlx::Error> {
        self.jobs
            .metrics
            .provision_attempts
            .get_or_create(&NodeOutcomeLabels {
                node: node.name.clone(),
                outcome: attempt.label(),
            })
            .inc();
        let now = self.jobs.clock.now();
        let outcome = match attempt {
            Attempt::Applied {
                observed,
                traffic_restarted,
            } => {
                tracing::debug!(node = %node.name, email = %row.email, observed = observed.as_str(), "provisioned");
                Recorded::Applied {
                    observed: *observed,
                    traffic_restarted: *traffic_restarted,
                }
            }
            Attempt::Failed { error, .. } => {
                let failures = u32::try_from(row.attempts).unwrap_or(0).saturating_add(1);
                let wait = retry_delay(&self.config, failures);
                tracing::debug!(node = %node.name, email = %row.email, attempts = failures,
                    retry_in_ms = wait.as_millis() as u64, error = %error, "provisioning attempt failed");
                Recorded::Failed {
                    error: error.clone(),
                    retry_at: now.plus(wait),
                }
            }
        };
        membership::record(
            &self.jobs.db,
            &node.name,
            &row.vpn_uuid,
            &self.jobs.holder,
            &outcome,
            now,
        )
        .await
    }

    fn breaker_changed(&self, node: &Node, was_tripped: bool, breaker: &Breaker) {
        let tripped = breaker.is_tripped();
        self.jobs
            .registry
            .set_breaker(&node.name, tripped, self.jobs.clock.now());
        self.jobs
            .metrics
            .breaker_open
            .get_or_create(&NodeMetrics::node(&node.name))
            .set(i64::from(tripped));
        match (was_tripped, tripped) {
            (false, true) => tracing::warn!(node = %node.name,
                "node keeps failing: circuit breaker open, its rows wait until a probe succeeds"),
            (true, false) => {
                tracing::info!(node = %node.name, "node answers again: circuit breaker closed")
            }
            _ => {}
        }
    }

    /// Passes over every enabled node until nothing is due or a round made no progress,
    /// ignoring breakers (tests and tooling; the component runs [`Provisioner::pass`] per
    /// node with its breaker).
    pub async fn drain(self: &Arc<Self>) -> Result<PassReport, sqlx::Error> {
        let mut total = PassReport::default();
        loop {
            let mut round = PassReport::default();
            for node in self.jobs.registry.enabled_nodes() {
                let mut breaker = Breaker::new(self.config.breaker);
                let report = self
                    .pass(node, self.config.batch, &mut breaker, &|| {})
                    .await?;
                round.add(&report);
            }
            total.add(&round);
            // Done when nothing was due, or nothing succeeded (only failing nodes are left:
            // their rows wait for their backoff).
            if round.claimed == 0 || round.applied == 0 {
                return Ok(total);
            }
        }
    }

    async fn node_loop(
        self: Arc<Self>,
        node: Arc<Node>,
        liveness: Arc<Liveness>,
        wake: Arc<Notify>,
        stop: CancellationToken,
    ) {
        let mut breaker = Breaker::new(self.config.breaker);
        let mut db_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let alive = || liveness.beat();
        self.jobs
            .metrics
            .breaker_open
            .get_or_create(&NodeMetrics::node(&node.name))
            .set(0);
        self.jobs
            .registry
            .set_breaker(&node.name, false, self.jobs.clock.now());
        while !stop.is_cancelled() {
            alive();
            if !self.jobs.registry.is_enabled(&node.name) {
                // Disabled by an operator at runtime: no calls until enabled again.
                if !wait(Duration::from_secs(1), &alive, None, &stop).await {
                    break;
                }
                continue;
            }
            let admission = breaker.admit(Instant::now());
            let limit = match admission {
                Admission::Call => self.config.batch,
                Admission::Probe => 1,
                Admission::Wait(d) => {
                    // Open breaker: the node's rows are left alone, not even claimed.
                    if !wait(d, &alive, None, &stop).await {
                        break;
                    }
                    continue;
                }
            };
            let pass = tokio::select! {
                r = self.pass(&node, limit, &mut breaker, &alive) => r,
                _ = stop.cancelled() => break,
            };
            match pass {
                Ok(report) => {
                    db_backoff.succeed();
                    if report.claimed == 0 && admission == Admission::Probe {
                        breaker.probe_unused();
                    }
                    if report.claimed < limit
                        && !wait(self.config.poll_interval, &alive, Some(&wake), &stop).await
                    {
                        break;
                    }
                }
                Err(e) => {
                    if admission == Admission::Probe {
                        breaker.probe_unused();
                    }
                    let d = db_backoff.fail();
                    tracing::warn!(node = %node.name, error = %e, retry_in_ms = d.as_millis() as u64,
                        "cannot claim provisioning work; the database is unavailable");
                    if !wait(d, &alive, None, &stop).await {
                        break;
                    }
                }
            }
        }
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let workers_stop = stop.child_token();
        let mut workers = JoinSet::new();
        let mut lives = Vec::new();
        let mut wakes = Vec::new();
        // A worker per node the catalog enables; one disabled at runtime pauses (its node
        // may be enabled again without a restart).
        for node in self.jobs.registry.catalog_enabled_nodes() {
            let liveness = Arc::new(Liveness::new());
            let wake = Arc::new(Notify::new());
            lives.push((node.name.clone(), liveness.clone()));
            wakes.push(wake.clone());
            workers.spawn(self.clone().node_loop(
                node.clone(),
                liveness,
                wake,
                workers_stop.clone(),
            ));
        }
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        let mut next_gauges = Instant::now();
        loop {
            tokio::select! {
                _ = self.jobs.wake.woken() => {
                    for w in &wakes {
                        w.notify_one();
                    }
                }
                _ = ticker.tick() => {
                    match lives.iter().find(|(_, l)| l.age() > self.config.worker_silence) {
                        None => hb.beat(),
                        Some((node, l)) => tracing::error!(node = %node, silent_ms = l.age().as_millis() as u64,
                            "a provisioning worker stopped making progress; the supervisor will restart provisioning"),
                    }
                    if Instant::now() >= next_gauges {
                        self.refresh_backlog().await;
                        next_gauges = Instant::now() + Duration::from_secs(5);
                    }
                }
                joined = workers.join_next(), if !workers.is_empty() => {
                    // Workers only end when stopped; anything else is a bug: restart everything.
                    tracing::error!(result = ?joined.map(|r| r.is_ok()), "a provisioning worker ended unexpectedly");
                    workers_stop.cancel();
                    break;
                }
                _ = stop.cancelled() => break,
            }
        }
        workers_stop.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(2), async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            workers.abort_all();
        }
        // Give unfinished claims back so another replica can take them at once.
        match tokio::time::timeout(
            Duration::from_secs(2),
            membership::release_claims(&self.jobs.db, &self.jobs.holder),
        )
        .await
        {
            Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "released provisioning claims"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release provisioning claims; they expire on their own")
            }
            Err(_) => {
                tracing::warn!("releasing provisioning claims timed out; they expire on their own")
            }
        }
    }

    async fn refresh_backlog(&self) {
        match membership::backlog(&self.jobs.db).await {
            Ok(rows) => {
                for node in self.jobs.registry.catalog_enabled_nodes() {
                    let n = rows
                        .iter()
                        .find(|(name, _)| *name == node.name)
                        .map_or(0, |(_, n)| *n);
                    self.jobs
                        .metrics
                        .provision_backlog
                        .get_or_create(&NodeMetrics::node(&node.name))
                        .set(n);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the provisioning backlog"),
        }
    }
}

/// The retry delay after `failures` consecutive failures of a row.
fn retry_delay(config: &ProvisioningConfig, failures: u32) -> Duration {
    let mut backoff = Backoff::new(config.retry_base, config.retry_max);
    for _ in 1..failures.min(32) {
        backoff.fail();
    }
    backoff.fail()
}

/// Waits `d` (beating `alive`), or until woken or stopped. False when stopped.
async fn wait(
    d: Duration,
    alive: &(dyn Fn() + Sync),
    wake: Option<&Notify>,
    stop: &CancellationToken,
) -> bool {
    let deadline = Instant::now() + d;
    let woken = async {
        match wake {
            Some(w) => w.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(woken);
    loop {
        alive();
        let step = (Instant::now() + Duration::from_millis(250)).min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(step) => {
                if Instant::now() >= deadline {
                    return true;
                }
            }
            _ = &mut woken => return true,
            _ = stop.cancelled() => return false,
        }
    }
}

/// A node worker's last sign of progress.
struct Liveness {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Liveness {
    fn new() -> Liveness {
        Liveness {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn beat(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn age(&self) -> Duration {
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

impl Component for Provisioner {
    fn name(&self) -> &'static str {
        "provisioning"
    }

    fn stall_after(&self) -> Duration {
        self.config.worker_silence + Duration::from_secs(10)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_grow_and_cap() {
        let c = ProvisioningConfig {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..ProvisioningConfig::for_call_timeout(Duration::from_secs(1))
        };
        let first = retry_delay(&c, 1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let fourth = retry_delay(&c, 4);
        assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(800));
        for n in [10, 1000, u32::MAX] {
            assert!(retry_delay(&c, n) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn only_node_failures_count_for_the_breaker() {
        let other = |status| NodeError::Other {
            status,
            error: String::new(),
            message: String::new(),
        };
        assert_eq!(
            node_health(&NodeError::Unavailable {
                message: String::new()
            }),
            CallHealth::Failed
        );
        assert_eq!(node_health(&other(Some(502))), CallHealth::Failed);
        assert_eq!(node_health(&other(None)), CallHealth::Failed);
        assert_eq!(node_health(&other(Some(404))), CallHealth::Answered);
        assert_eq!(node_health(&NodeError::Unauthorized), CallHealth::Answered);
        assert_eq!(
            node_health(&NodeError::Conflict {
                message: String::new()
            }),
            CallHealth::Answered
        );
    }
}
