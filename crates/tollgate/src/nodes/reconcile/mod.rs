//! Reconcile: compare each node's user list with the database and repair drift both ways.
//!
//! The earlier system never looked at the nodes again after a change: users removed behind
//! its back stayed without access, expired or hand-added users kept it (docs/reliability.md E1, E4).
//! Periodically, per enabled node, under a lease so replicas do not fight over a node
//! (`nodes:reconcile:<node>`):
//!
//! 1. `GET /v1/users` through the agent. **If it fails, nothing happens for that node** —
//!    no row is touched, no user removed; an unreadable node is no evidence of anything.
//! 2. The database's intent for the node is aligned with entitlement ([`align_node`]): keys
//!    of active subscriptions wanted (new or re-enabled nodes), keys of expired, revoked or
//!    replaced ones unwanted. Never anything beyond what was paid for (E9).
//! 3. Each row is compared with the list. Wanted but missing → `observed = absent`, due now
//!    (provisioning puts it back). Listed but unwanted → `observed = present`, due now
//!    (provisioning removes it, still honouring the reissue order). Rows changed or claimed
//!    after the list was taken are left alone: provisioning knows better than the list.
//! 4. Listed users that no row knows (added by hand, or an email bound to another UUID) are
//!    removed directly through the agent, outside any transaction.
//! 5. Traffic totals from the list are added to the rows (the feed shows them).
//!
//! **Removal limit.** A database that entitles nobody on a node looks the same to reconcile
//! as a node full of strangers: a wrong `DATABASE_URL` (a new, empty database), an old backup
//! restored, a node shared with a staging deployment. So steps 2–4 are planned first, in one
//! transaction, and the removals they imply are counted: listed users no row knows (step 4)
//! and listed users whose rows this pass makes unwanted or finds on the node though marked
//! gone (steps 2–3; removals provisioning already had pending are not this pass's doing).
//! When they exceed both [`RemovalLimit`] thresholds (by default more than 10 users and more
//! than 10 % of the users the node lists), the transaction is rolled back and nothing is
//! removed: the pass then makes only its additions (active keys wanted, missing keys
//! restored — never limited), sets `nodes_reconcile_removals_refused{node}`, logs what it
//! refused with the command that allows it, and raises the alert condition
//! `node-removals-refused:<node>` (alerted when it begins, at most hourly while passes keep
//! refusing, resolved by the first pass that does not). `tollgate reconcile --node <name>
//! --allow-removals` runs one pass without the limit.
//!
//! **For the console** (table `node_reconciles`): every pass records when it finished and the
//! drift it repaired (listed, restored, removed, refused). An operator asks for a pass now
//! with [`request`]: a row the reconcile loop of every replica looks at every
//! [`switches::REFRESH_EVERY`](super::switches::REFRESH_EVERY) and the holder of the node's
//! lease acts on; any pass that starts after the request satisfies it. A row rather than a
//! direct call: the console runs in the bot's handler on whichever replica took the update,
//! under the handler's deadline and with the rule that handlers never call a node, while the
//! right to reconcile a node is a lease another replica may hold; the row reaches that
//! replica, survives a restart, and the console shows it pending until the pass records its
//! result.
//!
//! Why not the agent's converge endpoint (`PUT /v1/users` with the full set): the set would
//! be computed from a snapshot, so a user provisioned or removed between the snapshot and the
//! call would be undone, and the reissue order (old key only after the new one is present)
//! would be bypassed. Repairs go through the rows and provisioning instead: one path for every
//! change. Large drifts (a node's agent reinstalled with an empty state) are fast enough this
//! way (thousands of puts a second per node).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tollgate_node::NodeError;
use tollgate_node::api::UserEntry;
use uuid::Uuid;

mod passes;

use super::membership::{self, NodeRow, Presence};
use super::metrics::{DriftLabels, NodeMetrics};
use super::{Node, NodeJobs, switches};
use crate::access::{self, AccessError};
use crate::alerts::Alerts;
use crate::backoff::jittered;
use crate::lease::{self, Lease};
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::time::Timestamp;

pub use self::passes::{LastPass, ask, last_passes, record_pass, request};
use self::passes::{clear_request, requested};

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Time between two runs over every node (jittered ±10 %).
    pub interval: Duration,
    /// The first run after start (a restart is when drift is most likely).
    pub first_run_after: Duration,
    /// How long a node's reconcile lease lasts without renewal.
    pub lease_ttl: Duration,
    /// Direct removals of unknown users in flight per node.
    pub removal_concurrency: usize,
    /// The most removals one pass makes on its own (more wait for an operator).
    pub removal_limit: RemovalLimit,
}

impl ReconcileConfig {
    pub fn every(interval: Duration) -> ReconcileConfig {
        ReconcileConfig {
            interval,
            first_run_after: interval.min(Duration::from_secs(30)),
            lease_ttl: (interval * 2).max(Duration::from_secs(60)),
            removal_concurrency: 8,
            removal_limit: RemovalLimit::default(),
        }
    }
}

/// How many users one reconcile pass may remove from a node on its own. A pass is refused
/// only when its removals exceed **both** thresholds, so small nodes and small drifts are
/// always repaired, and a database that suddenly entitles nobody (a wrong `DATABASE_URL`, an
/// old backup, a node shared with another deployment) cannot wipe a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovalLimit {
    /// Absolute threshold (`NODE_RECONCILE_MAX_REMOVALS`).
    pub max_users: usize,
    /// Threshold as a share of the node's users, in percent
    /// (`NODE_RECONCILE_MAX_REMOVAL_SHARE`).
    pub max_percent: u8,
}

impl Default for RemovalLimit {
    fn default() -> Self {
        RemovalLimit {
            max_users: 10,
            max_percent: 10,
        }
    }
}

impl RemovalLimit {
    /// Whether removing `removals` of the `node_users` users a node listed stays within the
    /// limit. The node's users are what its agent listed (its own reserved entries aside): a
    /// node that lists nobody has nothing to remove, and one that lists a few users can always
    /// lose them all, as they are under the absolute threshold.
    pub fn allows(&self, removals: usize, node_users: usize) -> bool {
        let share_ok =
            (removals as u128) * 100 <= u128::from(self.max_percent) * (node_users as u128);
        removals <= self.max_users || share_ok
    }
}

/// Whether a pass honours the [`RemovalLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removals {
    /// The periodic passes: removals over the limit are refused.
    Limited,
    /// One pass an operator asked for (`tollgate reconcile --allow-removals`).
    Allowed,
}

/// The command that lets one pass remove over the limit (named in the refusal's log line
/// and alert).
pub fn allow_command(node: &str) -> String {
    format!("tollgate reconcile --node {node} --allow-removals")
}

/// Removals a pass held back because they were over the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusedRemovals {
    /// Listed users no row knows (they would have been removed directly).
    pub unknown: usize,
    /// Listed users whose rows this pass would have handed to provisioning for removal.
    pub unwanted: usize,
    /// The node's users the limit's share was measured against.
    pub node_users: usize,
    /// A few of the emails, sorted, for the log.
    pub sample: Vec<String>,
}

impl RefusedRemovals {
    pub fn total(&self) -> usize {
        self.unknown + self.unwanted
    }
}

/// A pass's comparison of the node's list with the rows, made before anything is changed.
struct Plan {
    /// Listed users, the agent's own reserved entries aside.
    node_users: usize,
    /// Keys of known rows the node lists.
    seen: HashSet<Uuid>,
    /// Listed emails no row knows (or bound to another UUID): removed directly.
    unknown: Vec<String>,
    /// Listed emails whose removal this pass causes: rows the alignment made unwanted, or
    /// unwanted rows provisioning believed gone. Removals provisioning had pending already
    /// (unwanted, not yet seen absent) are not this pass's doing and not counted.
    unwanted: Vec<String>,
    /// (key, uplink, downlink) of the known listed users.
    traffic: Vec<(Uuid, u64, u64)>,
}

impl Plan {
    fn new(listed: &[UserEntry], before: &[NodeRow], after: &[NodeRow]) -> Plan {
        let by_email: HashMap<&str, &NodeRow> =
            after.iter().map(|r| (r.email.as_str(), r)).collect();
        let pending: HashSet<Uuid> = before
            .iter()
            .filter(|r| r.desired == Presence::Absent && r.observed != Presence::Absent)
            .map(|r| r.vpn_uuid)
            .collect();
        let mut plan = Plan {
            node_users: 0,
            seen: HashSet::new(),
            unknown: Vec::new(),
            unwanted: Vec::new(),
            traffic: Vec::new(),
        };
        for entry in listed {
            // The agent reserves `.invalid` emails for itself.
            if entry.email.ends_with(".invalid") {
                continue;
            }
            plan.node_users += 1;
            let known = by_email
                .get(entry.email.as_str())
                .filter(|r| Uuid::parse_str(&entry.uuid).ok() == Some(r.vpn_uuid));
            match known {
                Some(row) => {
                    plan.seen.insert(row.vpn_uuid);
                    plan.traffic
                        .push((row.vpn_uuid, entry.uplink_bytes, entry.downlink_bytes));
                    if row.desired == Presence::Absent && !pending.contains(&row.vpn_uuid) {
                        plan.unwanted.push(entry.email.clone());
                    }
                }
                None => plan.unknown.push(entry.email.clone()),
            }
        }
        plan
    }

    fn removals(&self) -> usize {
        self.unknown.len() + self.unwanted.len()
    }

    fn sample(&self, n: usize) -> Vec<String> {
        let mut all: Vec<&String> = self.unknown.iter().chain(&self.unwanted).collect();
        all.sort();
        all.into_iter().take(n).cloned().collect()
    }
}

/// What one reconcile of a node found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Users the agent listed.
    pub listed: usize,
    /// Subscriptions whose rows on this node were aligned with their entitlement.
    pub aligned: u64,
    /// Wanted keys missing on the node, handed back to provisioning.
    pub restored: usize,
    /// Keys on the node that are not wanted, handed to provisioning for removal.
    pub to_remove: usize,
    /// Unknown users removed directly.
    pub unknown_removed: usize,
    /// Unknown users whose removal failed (tried again next run).
    pub unknown_failed: usize,
    /// Rows whose traffic totals grew.
    pub traffic_updated: usize,
    /// Set when the pass's removals were over the limit and none was made.
    pub refused: Option<RefusedRemovals>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the node's user list could not be read, so nothing was changed: {0}")]
    ListFailed(NodeError),
    #[error("the reconcile lease was lost; another process reconciles this node")]
    LeaseLost,
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub struct Reconciler {
    jobs: NodeJobs,
    config: ReconcileConfig,
    alerts: Alerts,
}

/// The alert condition of a node whose passes refuse removals.
pub fn refusal_condition(node: &str) -> String {
    format!("node-removals-refused:{node}")
}

/// Name of the lease that makes one process the reconciler of `node`.
pub fn lease_name(node: &str) -> String {
    format!("nodes:reconcile:{node}")
}

impl Reconciler {
    /// A reconciler whose alerts go to the log only; see [`Reconciler::with_alerts`].
    pub fn new(jobs: NodeJobs, config: ReconcileConfig) -> Reconciler {
        Reconciler {
            jobs,
            config,
            alerts: Alerts::default(),
        }
    }

    /// Refused removals are also reported to these admins.
    pub fn with_alerts(mut self, alerts: Alerts) -> Reconciler {
        self.alerts = alerts;
        self
    }

    /// Reconciles one node once, within the removal limit. With `lease`, the database
    /// changes are fenced: they commit only while the lease is still ours.
    pub async fn reconcile_node(
        &self,
        node: &Node,
        lease: Option<&Lease>,
        alive: &(dyn Fn() + Sync),
    ) -> Result<ReconcileReport, ReconcileError> {
        self.reconcile_node_with(node, lease, alive, Removals::Limited)
            .await
    }

    /// Reconciles one node once; `removals` says whether the removal limit applies (an
    /// operator's `tollgate reconcile --allow-removals` lifts it for one pass).
    pub async fn reconcile_node_with(
        &self,
        node: &Node,
        lease: Option<&Lease>,
        alive: &(dyn Fn() + Sync),
        removals: Removals,
    ) -> Result<ReconcileReport, ReconcileError> {
        let labels = NodeMetrics::node(&node.name);
        // Rows that change after this instant may be newer than the list: leave them alone.
        let listed_at = self.jobs.clock.now();
        let listed = match beating(node.client.list_users(), alive).await {
            Ok(l) => l,
            Err(e) => {
                self.jobs
                    .metrics
                    .reconcile_failures
                    .get_or_create(&labels)
                    .inc();
                tracing::warn!(node = %node.name, error = %e,
                    "cannot list the node's users; reconcile leaves this node alone until the next run");
                return Err(ReconcileError::ListFailed(e));
            }
        };
        alive();
        let mut report = ReconcileReport {
            listed: listed.users.len(),
            ..ReconcileReport::default()
        };
        self.jobs
            .metrics
            .node_users
            .get_or_create(&labels)
            .set(i64::try_from(listed.users.len()).unwrap_or(i64::MAX));

        // The plan, before anything is changed: intent aligned with entitlement (what should
        // this node hold now?) and compared with the list, in one transaction that is rolled
        // back if the removals it implies are over the limit.
        let now = self.jobs.clock.now();
        let mut tx = self.jobs.db.begin().await?;
        self.fence(&mut tx, lease, now).await?;
        let before = membership::rows_for_node_in(&mut tx, &node.name).await?;
        report.aligned = access::align_node(&mut tx, &node.name, now).await?;
        let mut rows = if report.aligned > 0 {
            membership::rows_for_node_in(&mut tx, &node.name).await?
        } else {
            before.clone()
        };
        alive();
        let mut plan = Plan::new(&listed.users, &before, &rows);
        let node_users = plan.node_users;
        let refused = match removals {
            Removals::Limited
                if !self
                    .config
                    .removal_limit
                    .allows(plan.removals(), node_users) =>
            {
                Some(RefusedRemovals {
                    unknown: plan.unknown.len(),
                    unwanted: plan.unwanted.len(),
                    node_users,
                    sample: plan.sample(5),
                })
            }
            _ => None,
        };
        if refused.is_some() {
            // Nothing of the plan's removals happens; its additions do (never limited).
            tx.rollback().await?;
            tx = self.jobs.db.begin().await?;
            self.fence(&mut tx, lease, now).await?;
            report.aligned = access::align_node_additions(&mut tx, &node.name, now).await?;
            rows = membership::rows_for_node_in(&mut tx, &node.name).await?;
            plan = Plan::new(&listed.users, &rows, &rows);
        }
        alive();

        let now = self.jobs.clock.now();
        self.fence(&mut tx, lease, now).await?;
        for row in &rows {
            let on_node = plan.seen.contains(&row.vpn_uuid);
            let correction = match (on_node, row.observed) {
                // A refused pass does not hand a listed, unwanted key to provisioning.
                (true, Presence::Absent)
                    if refused.is_some() && row.desired == Presence::Absent =>
                {
                    None
                }
                (true, Presence::Absent | Presence::Unknown) => Some(Presence::Present),
                (false, Presence::Present | Presence::Unknown) => Some(Presence::Absent),
                _ => None,
            };
            let Some(observed) = correction else { continue };
            if membership::correct_observed(
                &mut tx,
                &node.name,
                &row.vpn_uuid,
                observed,
                listed_at,
                now,
            )
            .await?
            {
                let direction = match (observed, row.desired) {
                    (Presence::Absent, Presence::Present) => {
                        report.restored += 1;
                        "restore"
                    }
                    (Presence::Present, Presence::Absent) => {
                        report.to_remove += 1;
                        "remove"
                    }
                    // Bookkeeping only: the node already agrees with the intent.
                    _ => continue,
                };
                tracing::info!(node = %node.name, email = %row.email, direction, "drift found; provisioning repairs it");
                self.jobs
                    .metrics
                    .drift_repaired
                    .get_or_create(&DriftLabels {
                        node: node.name.clone(),
                        direction,
                    })
                    .inc();
            }
        }
        for (i, (uuid, up, down)) in std::mem::take(&mut plan.traffic).into_iter().enumerate() {
            if i % 512 == 0 {
                alive();
            }
            let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            if membership::add_traffic(
                &mut tx,
                &node.name,
                &uuid,
                clamp(up),
                clamp(down),
                listed_at,
            )
            .await?
            {
                report.traffic_updated += 1;
            }
        }
        tx.commit().await?;
        alive();
        if report.restored + report.to_remove > 0 || report.aligned > 0 {
            self.jobs.wake.wake();
        }
        let refused_count = refused.as_ref().map_or(0, RefusedRemovals::total);
        self.jobs
            .metrics
            .removals_refused
            .get_or_create(&labels)
            .set(i64::try_from(refused_count).unwrap_or(i64::MAX));
        if let Some(r) = refused {
            self.refuse(node, &r).await;
            report.refused = Some(r);
            self.finished(node, &report, listed_at).await;
            return Ok(report);
        }
        self.refusals_ended(node).await;

        // Users nobody asked for: removed directly (never inside a transaction).
        let removals = futures::stream::iter(std::mem::take(&mut plan.unknown))
            .map(|email| async move {
                let result = node.client.remove_user(&email).await;
                (email, result)
            })
            .buffer_unordered(self.config.removal_concurrency.max(1));
        tokio::pin!(removals);
        while let Some((email, result)) = removals.next().await {
            alive();
            match result {
                Ok(_) => {
                    report.unknown_removed += 1;
                    tracing::warn!(node = %node.name, %email, "removed a user the database does not know");
                    self.jobs
                        .metrics
                        .drift_repaired
                        .get_or_create(&DriftLabels {
                            node: node.name.clone(),
                            direction: "unknown_removed",
                        })
                        .inc();
                }
                Err(e) => {
                    report.unknown_failed += 1;
                    tracing::warn!(node = %node.name, %email, error = %e, "cannot remove an unknown user; next run tries again");
                }
            }
        }
        self.finished(node, &report, listed_at).await;
        Ok(report)
    }

    /// Counts a completed pass and records it for the console, marking requests made before
    /// it started as done. A failure to record is logged: the pass itself is done, and the
    /// next one records again.
    async fn finished(&self, node: &Node, report: &ReconcileReport, started_at: Timestamp) {
        self.jobs
            .metrics
            .reconcile_runs
            .get_or_create(&NodeMetrics::node(&node.name))
            .inc();
        let now = self.jobs.clock.now();
        if let Err(e) = record_pass(&self.jobs.db, &node.name, report, started_at, now).await {
            tracing::warn!(node = %node.name, error = %e, "cannot record the reconcile pass for the console");
        }
    }

    /// A pass that refused nothing ends the refused-removals condition, if it was raised.
    async fn refusals_ended(&self, node: &Node) {
        let now = self.jobs.clock.now();
        let text = format!(
            "Node {}: reconcile no longer refuses removals (a pass made them or none are over the limit).",
            node.name
        );
        if let Err(e) = self
            .alerts
            .resolve(&self.jobs.db, &refusal_condition(&node.name), &text, now)
            .await
        {
            tracing::warn!(node = %node.name, error = %e, "cannot resolve the refused-removals alert");
        }
    }

    /// Says what a pass refused and how to allow it: the log, and the alert condition (the
    /// same incident seen pass after pass alerts once, then at most hourly while it lasts).
    /// The gauge was set by the caller.
    async fn refuse(&self, node: &Node, r: &RefusedRemovals) {
        let limit = self.config.removal_limit;
        let command = allow_command(&node.name);
        tracing::warn!(
            node = %node.name,
            refused = r.total(),
            unknown = r.unknown,
            unwanted = r.unwanted,
            node_users = r.node_users,
            max_removals = limit.max_users,
            max_removal_share_percent = limit.max_percent,
            sample = %r.sample.join(", "),
            allow = %command,
            "reconcile refused to remove {} of the node's {} users in one pass (over NODE_RECONCILE_MAX_REMOVALS={} \
             and NODE_RECONCILE_MAX_REMOVAL_SHARE={}%); nobody was removed, missing users are still restored. \
             A wrong DATABASE_URL, a restored old backup or a node shared with another deployment looks like this: \
             check those first. If the removals are right, run `{command}`",
            r.total(),
            r.node_users,
            limit.max_users,
            limit.max_percent,
        );
        let now = self.jobs.clock.now();
        let text = format!(
            "Node {node}: reconcile refused to remove {total} of its {users} users \
             ({unknown} unknown to the database, {unwanted} no longer entitled), over the limit \
             of {max} users and {pct}% of the node in one pass. Nobody was removed.\n\n\
             Check DATABASE_URL, whether a backup was restored, and that the node is not shared \
             with another deployment. If the removals are right, run:\n{command}",
            node = node.name,
            total = r.total(),
            users = r.node_users,
            unknown = r.unknown,
            unwanted = r.unwanted,
            max = limit.max_users,
            pct = limit.max_percent,
        );
        let key = refusal_condition(&node.name);
        if let Err(e) = self.alerts.raise(&self.jobs.db, &key, &text, now).await {
            tracing::warn!(node = %node.name, error = %e, "cannot queue the admin alert about refused removals");
        }
    }

    async fn fence(
        &self,
        tx: &mut crate::store::Tx,
        lease: Option<&Lease>,
        now: crate::time::Timestamp,
    ) -> Result<(), ReconcileError> {
        match lease {
            Some(l) if !lease::is_current(tx, l, now).await? => Err(ReconcileError::LeaseLost),
            _ => Ok(()),
        }
    }

    /// Takes (or renews) `node`'s reconcile lease; None when another process holds it or the
    /// database cannot say (logged).
    async fn take_lease(&self, node: &Node) -> Option<Lease> {
        let held = lease::acquire(
            &self.jobs.db,
            &lease_name(&node.name),
            &self.jobs.holder,
            self.config.lease_ttl,
            self.jobs.clock.now(),
        )
        .await;
        match held {
            Ok(Some(l)) => Some(l),
            Ok(None) => {
                tracing::debug!(node = %node.name, "another process reconciles this node");
                None
            }
            Err(e) => {
                tracing::warn!(node = %node.name, error = %e, "cannot take the reconcile lease; skipping this run");
                None
            }
        }
    }

    /// Takes (or keeps) each enabled node's lease and reconciles the nodes it holds; returns
    /// the leases held.
    pub async fn run_once(&self, alive: &(dyn Fn() + Sync)) -> Vec<Lease> {
        let mut leases = Vec::new();
        for node in self.jobs.registry.enabled_nodes() {
            alive();
            let Some(lease) = self.take_lease(node).await else {
                continue;
            };
            match self.reconcile_node(node, Some(&lease), alive).await {
                Ok(r) => {
                    let drift = r.restored + r.to_remove + r.unknown_removed;
                    if drift > 0 || r.aligned > 0 {
                        tracing::info!(node = %node.name, listed = r.listed, aligned = r.aligned,
                            restored = r.restored, to_remove = r.to_remove, unknown_removed = r.unknown_removed,
                            "reconciled node");
                    } else {
                        tracing::debug!(node = %node.name, listed = r.listed, "node matches the database");
                    }
                }
                Err(ReconcileError::ListFailed(_)) => {} // logged where it happened
                Err(e) => {
                    tracing::warn!(node = %node.name, error = %e, "reconcile failed; next run tries again")
                }
            }
            leases.push(lease);
        }
        leases
    }

    /// Reconciles now the enabled nodes an operator asked for ([`request`]) whose lease this
    /// process holds or can take; returns the leases taken.
    pub async fn run_requested(&self, alive: &(dyn Fn() + Sync)) -> Vec<Lease> {
        let asked = match requested(&self.jobs.db).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read reconcile requests");
                return Vec::new();
            }
        };
        let mut leases = Vec::new();
        for node in self.jobs.registry.enabled_nodes() {
            if !asked.contains(&node.name) {
                continue;
            }
            alive();
            let Some(lease) = self.take_lease(node).await else {
                continue;
            };
            tracing::info!(node = %node.name, "reconciling now, as an operator asked");
            match self.reconcile_node(node, Some(&lease), alive).await {
                Ok(_) | Err(ReconcileError::ListFailed(_)) => {}
                Err(e) => {
                    tracing::warn!(node = %node.name, error = %e, "requested reconcile failed")
                }
            }
            // Done whatever the outcome: a node that cannot be listed would be asked again
            // every few seconds; the console shows the last pass unchanged.
            if let Err(e) = clear_request(&self.jobs.db, &node.name, self.jobs.clock.now()).await {
                tracing::warn!(node = %node.name, error = %e, "cannot clear the reconcile request");
            }
            leases.push(lease);
        }
        leases
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let beat = Duration::from_millis(500);
        let mut next_pass =
            tokio::time::Instant::now() + jittered(self.config.first_run_after, 0.2);
        let mut held: Vec<Lease> = Vec::new();
        loop {
            hb.beat();
            // Every few seconds: runtime node switches, then operators' requests, then the
            // periodic pass when due.
            if let Err(e) = switches::refresh(&self.jobs.db, &self.jobs.registry).await {
                tracing::debug!(error = %e, "cannot refresh the nodes switched at runtime");
            }
            let alive = || hb.beat();
            let periodic = tokio::time::Instant::now() >= next_pass;
            let work = async {
                if periodic {
                    self.run_once(&alive).await
                } else {
                    self.run_requested(&alive).await
                }
            };
            tokio::select! {
                leases = work => {
                    if periodic {
                        held = leases;
                        next_pass = tokio::time::Instant::now() + jittered(self.config.interval, 0.1);
                    } else {
                        for l in leases {
                            if !held.iter().any(|h| h.name == l.name) {
                                held.push(l);
                            }
                        }
                    }
                }
                _ = stop.cancelled() => break,
            }
            let pause = switches::REFRESH_EVERY
                .min(next_pass.saturating_duration_since(tokio::time::Instant::now()));
            if !idle(pause, &hb, beat, &stop).await {
                break;
            }
        }
        // Hand the nodes over at once instead of making another replica wait for expiry.
        let now = self.jobs.clock.now();
        for lease in &held {
            let released = tokio::time::timeout(
                Duration::from_secs(2),
                lease::release(&self.jobs.db, lease, now),
            );
            if !matches!(released.await, Ok(Ok(_))) {
                tracing::debug!(lease = %lease.name, "cannot release a reconcile lease; it expires on its own");
            }
        }
    }
}

/// Awaits `fut` (which has its own deadline), beating `alive` meanwhile.
async fn beating<F: std::future::Future>(fut: F, alive: &(dyn Fn() + Sync)) -> F::Output {
    tokio::pin!(fut);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = ticker.tick() => alive(),
        }
    }
}

impl Component for Reconciler {
    fn name(&self) -> &'static str {
        "node-reconcile"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}

#[cfg(test)]
mod tests {
    use super::RemovalLimit;

    #[test]
    fn a_pass_is_refused_only_over_both_the_count_and_the_share() {
        let limit = RemovalLimit::default();
        // (removals, node's users, allowed)
        let cases = [
            (0, 0, true),
            (10, 10, true),    // all of a small node: under the count
            (11, 11, false),   // over both
            (11, 110, true),   // exactly 10 %
            (12, 110, false),  // over both
            (100, 1000, true), // 10 % of a large node
            (1000, 1000, false),
        ];
        for (removals, users, allowed) in cases {
            assert_eq!(
                limit.allows(removals, users),
                allowed,
                "{removals} of {users}"
            );
        }
        let strict = RemovalLimit {
            max_users: 0,
            max_percent: 0,
        };
        assert!(strict.allows(0, 5));
        assert!(!strict.allows(1, 1000));
    }
}
