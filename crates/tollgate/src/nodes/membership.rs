//! `node_memberships`: per (node, key), what should be on the node and what was last seen.
//!
//! This table is the queue between intent and effect (docs/reliability.md E1, E2, D4). Business
//! transactions only ever write `desired` ([`align`]); the provisioning job claims rows whose
//! `desired` differs from `observed`, calls the agent outside any transaction and then writes
//! `observed` ([`record`]); the reconcile job corrects `observed` from the node's own list.
//! So a change is recorded before it is attempted, a failed attempt stays due with its error
//! and backoff, and nothing here ever needs a network call to commit.
//!
//! Row life: a key gets one row per node (`present`/`absent` wanted, `present`/`absent`/
//! `unknown` seen). Rows are never deleted: a settled `absent`/`absent` row costs nothing (it
//! is outside the due index) and keeps the key's traffic totals for the feed.
//!
//! Claims: a claim is `claimed_by` + `claimed_until`; a process that dies leaves its claims
//! to expire, then another takes them. On PostgreSQL claimers skip each other's rows
//! (`FOR UPDATE SKIP LOCKED`); on SQLite the claim is one write transaction.

use uuid::Uuid;

use crate::store::{self, Db, DeferredWrite, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// A state of a key on a node, wanted or seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    Present,
    Absent,
    /// Seen state not known (never used for `desired`).
    Unknown,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Present => "present",
            Presence::Absent => "absent",
            Presence::Unknown => "unknown",
        }
    }

    /// The schema's CHECK allows only the three names; anything else would be a bug, and
    /// reading it as `unknown` makes the row due, which is the safe direction.
    pub fn parse(text: &str) -> Presence {
        match text {
            "present" => Presence::Present,
            "absent" => Presence::Absent,
            _ => Presence::Unknown,
        }
    }
}

/// What the access module says about one subscription's current key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub subscription_id: i64,
    pub user_id: i64,
    /// The subscription's current key; every other key of it is on its way out.
    pub vpn_uuid: Uuid,
    /// Entitled now (`expires_at > now`, not revoked).
    pub active: bool,
}

/// Whether node `$node` is meant to serve key `$key` (SQL text each; a fragment of another
/// owner's statement, so this table's text stays here).
macro_rules! node_wants_key_sql {
    ($node:literal, $key:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM node_memberships m WHERE m.node = ",
            $node,
            " AND m.vpn_uuid = ",
            $key,
            " AND m.desired = 'present')"
        )
    };
}
/// Whether node `$node` is meant to serve some key of subscription `$sub` other than `$key`
/// (`$other` = `TRUE`) or any key of it (`$other` = `FALSE`).
macro_rules! node_wants_subscription_sql {
    ($node:literal, $sub:literal, $key:literal, $other:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM node_memberships m WHERE m.node = ",
            $node,
            " AND m.subscription_id = ",
            $sub,
            " AND m.desired = 'present' AND (NOT ",
            $other,
            " OR m.vpn_uuid <> ",
            $key,
            "))"
        )
    };
}
pub(crate) use {node_wants_key_sql, node_wants_subscription_sql};

/// The keys of subscription `sub` other than its current `key` become unwanted on every node
/// and may leave a node only after `key` is present there or no longer wanted (docs/reliability.md
/// E8, `retire_after`); with `current` = `TRUE` the current key becomes unwanted too. Each
/// argument is SQL text (a placeholder such as `"$1"`, or `TRUE`/`FALSE`).
macro_rules! retire_keys_sql {
    ($sub:literal, $key:literal, $now:literal, $current:literal) => {
        concat!(
            "UPDATE node_memberships
             SET desired = 'absent', attempts = 0, next_attempt_at = ", $now, ", updated_at = ", $now, ",
                 retire_after = CASE WHEN vpn_uuid = ", $key, " THEN retire_after ELSE ", $key, " END
             WHERE subscription_id = ", $sub, "
               AND ((vpn_uuid = ", $key, " AND ", $current, " AND desired = 'present')
                    OR (vpn_uuid <> ", $key, "
                        AND (desired = 'present'
                             OR (observed <> 'absent' AND (retire_after IS NULL OR retire_after <> ", $key, ")))))"
        )
    };
}

/// Makes the rows of one subscription say what should be on the nodes. Runs inside the
/// caller's business transaction and only records intent; on SQLite the writes travel with
/// the transaction's next statement ([`DeferredWrite`]), as nothing here is read back.
///
/// * active: the current key is wanted on every node of `nodes` (rows created or flipped,
///   and made due now unless already settled);
/// * inactive: the current key is unwanted everywhere;
/// * every other key of the subscription is unwanted everywhere and may leave a node only
///   after the current key is present there (`retire_after`, docs/reliability.md E8).
///
/// `nodes` are the enabled nodes: a disabled node gets no new wanted rows.
pub async fn align(
    tx: &mut Tx,
    key: &KeyState,
    email: &str,
    nodes: &[&str],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    for write in align_writes(key, email, nodes, now) {
        tx.defer(write).await?;
    }
    Ok(())
}

/// [`align`] run at once, returning how many rows changed (the expiry reports it).
pub async fn align_counting(
    tx: &mut Tx,
    key: &KeyState,
    email: &str,
    nodes: &[&str],
    now: Timestamp,
) -> Result<u64, sqlx::Error> {
    let mut changed = 0;
    for write in align_writes(key, email, nodes, now) {
        changed += tx.execute(write).await?;
    }
    Ok(changed)
}

/// The statements of [`align`].
fn align_writes(key: &KeyState, email: &str, nodes: &[&str], now: Timestamp) -> Vec<DeferredWrite> {
    let retire = |sql: &'static str| {
        DeferredWrite::new(sql)
            .bind(key.subscription_id)
            .bind(key.vpn_uuid)
            .bind(now)
    };
    if !key.active {
        return vec![retire(retire_keys_sql!("$1", "$2", "$3", "TRUE"))];
    }
    let mut writes: Vec<DeferredWrite> = nodes
        .iter()
        .map(|node| {
            DeferredWrite::new(
                "INSERT INTO node_memberships
                     (node, vpn_uuid, subscription_id, email, desired, observed, attempts, next_attempt_at, updated_at)
                 VALUES ($1, $2, $3, $4, 'present', 'absent', 0, $5, $5)
                 ON CONFLICT (node, vpn_uuid) DO UPDATE SET
                     desired = 'present', retire_after = NULL, attempts = 0, next_attempt_at = $5, updated_at = $5
                 WHERE node_memberships.desired <> 'present' OR node_memberships.observed <> 'present'
                    OR node_memberships.attempts > 0",
            )
            .bind((*node).to_owned())
            .bind(key.vpn_uuid)
            .bind(key.subscription_id)
            .bind(email.to_owned())
            .bind(now)
        })
        .collect();
    writes.push(retire(retire_keys_sql!("$1", "$2", "$3", "FALSE")));
    writes
}

/// A claimed row: what to do on which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub vpn_uuid: Uuid,
    pub subscription_id: i64,
    pub email: String,
    pub desired: Presence,
    /// Failed attempts so far (consecutive).
    pub attempts: i32,
}

/// Due rows of one node: wanted ≠ seen, retry time reached, not claimed, and — for a key
/// being retired — its successor on the same node is present (or no longer wanted).
macro_rules! due_rows {
    () => {
        "SELECT m.vpn_uuid FROM node_memberships m
         WHERE m.node = $1 AND m.desired <> m.observed AND m.next_attempt_at <= $2
           AND (m.claimed_until IS NULL OR m.claimed_until <= $2)
           AND (m.retire_after IS NULL OR NOT EXISTS (
               SELECT 1 FROM node_memberships n
               WHERE n.node = m.node AND n.vpn_uuid = m.retire_after
                 AND n.desired = 'present' AND n.observed <> 'present'))
         ORDER BY m.next_attempt_at LIMIT $5"
    };
}

/// SQLite: the claim runs inside one `BEGIN IMMEDIATE` transaction, so the subquery sees a
/// stable set.
const CLAIM_SQLITE: &str = concat!(
    "UPDATE node_memberships SET claimed_by = $3, claimed_until = $4
     WHERE node = $1 AND vpn_uuid IN (",
    due_rows!(),
    ")
     RETURNING vpn_uuid, subscription_id, email, desired, attempts"
);

/// PostgreSQL: `SKIP LOCKED` lets replicas claim side by side. The locked selection is a
/// CTE, which PostgreSQL runs exactly once: as an `IN (subquery)` the planner may rescan it,
/// and every rescan skips different rows, so a claim could take more than `LIMIT` rows (seen
/// in `nodes_provisioning::an_agent_outage_…`: half-open probes claimed several rows).
const CLAIM_POSTGRES: &str = concat!(
    "WITH due AS (",
    due_rows!(),
    " FOR UPDATE SKIP LOCKED)
     UPDATE node_memberships SET claimed_by = $3, claimed_until = $4
     WHERE node_memberships.node = $1 AND node_memberships.vpn_uuid = ANY(ARRAY(SELECT vpn_uuid FROM due))
     RETURNING node_memberships.vpn_uuid, node_memberships.subscription_id, node_memberships.email,
               node_memberships.desired, node_memberships.attempts"
);

/// Claims up to `limit` due rows of `node` for `worker` until `until`.
pub async fn claim(
    db: &Db,
    node: &str,
    worker: &str,
    limit: i64,
    now: Timestamp,
    until: Timestamp,
) -> Result<Vec<Claimed>, sqlx::Error> {
    type Row = (Uuid, i64, String, String, i32);
    let rows: Vec<Row> = match db {
        Db::Sqlite(p) => {
            // One write transaction: the select and the update see the same rows. Sent with
            // its BEGIN and COMMIT in one round trip.
            p.write_rows(
                sqlx::query(CLAIM_SQLITE)
                    .bind(node)
                    .bind(now)
                    .bind(worker)
                    .bind(until)
                    .bind(limit),
            )
            .await?
        }
        Db::Postgres(p) => {
            sqlx::query_as(CLAIM_POSTGRES)
                .bind(node)
                .bind(now)
                .bind(worker)
                .bind(until)
                .bind(limit)
                .fetch_all(p)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(
            |(vpn_uuid, subscription_id, email, desired, attempts)| Claimed {
                vpn_uuid,
                subscription_id,
                email,
                desired: Presence::parse(&desired),
                attempts,
            },
        )
        .collect())
}

/// How an attempt on a claimed row ended, as the database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The node now holds (`Present`) or lacks (`Absent`) the key. `traffic_restarted`: the
    /// agent's totals for this email start from zero again (it created or dropped the user).
    Applied {
        observed: Presence,
        traffic_restarted: bool,
    },
    /// The attempt failed; try again at `retry_at`.
    Failed { error: String, retry_at: Timestamp },
}

/// Records the outcome of an attempt on a row this worker claimed (one statement, so one
/// short transaction). Returns false when the claim was lost meanwhile (nothing changes).
pub async fn record(
    db: &Db,
    node: &str,
    vpn_uuid: &Uuid,
    worker: &str,
    outcome: &Recorded,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let n = match outcome {
        Recorded::Applied {
            observed,
            traffic_restarted,
        } => on_db!(db, p => sqlx::query(
            "UPDATE node_memberships SET observed = $4, observed_at = $5, attempts = 0, last_error = NULL,
                 claimed_by = NULL, claimed_until = NULL, updated_at = $5,
                 agent_uplink_bytes = CASE WHEN $6 THEN 0 ELSE agent_uplink_bytes END,
                 agent_downlink_bytes = CASE WHEN $6 THEN 0 ELSE agent_downlink_bytes END
             WHERE node = $1 AND vpn_uuid = $2 AND claimed_by = $3"
        ).bind(node).bind(vpn_uuid).bind(worker).bind(observed.as_str()).bind(now).bind(*traffic_restarted)
            .execute(p).await.map(|r| r.rows_affected()))?,
        Recorded::Failed { error, retry_at } => on_db!(db, p => sqlx::query(
            "UPDATE node_memberships SET attempts = attempts + 1, next_attempt_at = $4, last_error = $5,
                 claimed_by = NULL, claimed_until = NULL, updated_at = $6
             WHERE node = $1 AND vpn_uuid = $2 AND claimed_by = $3"
        ).bind(node).bind(vpn_uuid).bind(worker).bind(*retry_at).bind(store::clip(error, 1000)).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))?,
    };
    Ok(n == 1)
}

/// Gives back every claim of `worker` (graceful shutdown): other replicas take them at once.
pub async fn release_claims(db: &Db, worker: &str) -> Result<u64, sqlx::Error> {
    on_db!(db, p => sqlx::query(
        "UPDATE node_memberships SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1"
    ).bind(worker).execute(p).await.map(|r| r.rows_affected()))
}

/// One row of a node, as reconcile compares it with the node's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub vpn_uuid: Uuid,
    pub subscription_id: i64,
    pub email: String,
    pub desired: Presence,
    pub observed: Presence,
    pub updated_at: Timestamp,
    pub claimed_until: Option<Timestamp>,
    pub agent_uplink_bytes: i64,
    pub agent_downlink_bytes: i64,
}

type NodeRowColumns = (
    Uuid,
    i64,
    String,
    String,
    String,
    Timestamp,
    Option<Timestamp>,
    i64,
    i64,
);

const NODE_ROWS_SQL: &str =
    "SELECT vpn_uuid, subscription_id, email, desired, observed, updated_at, claimed_until,
        agent_uplink_bytes, agent_downlink_bytes
 FROM node_memberships WHERE node = $1";

fn node_row(r: NodeRowColumns) -> NodeRow {
    NodeRow {
        vpn_uuid: r.0,
        subscription_id: r.1,
        email: r.2,
        desired: Presence::parse(&r.3),
        observed: Presence::parse(&r.4),
        updated_at: r.5,
        claimed_until: r.6,
        agent_uplink_bytes: r.7,
        agent_downlink_bytes: r.8,
    }
}

/// Every row of `node`.
pub async fn rows_for_node(db: &Db, node: &str) -> Result<Vec<NodeRow>, sqlx::Error> {
    let rows: Vec<NodeRowColumns> = on_db!(db, p => sqlx::query_as(NODE_ROWS_SQL)
        .bind(node).fetch_all(p).await)?;
    Ok(rows.into_iter().map(node_row).collect())
}

/// Every row of `node` as the caller's transaction sees it (its own writes included).
pub async fn rows_for_node_in(tx: &mut Tx, node: &str) -> Result<Vec<NodeRow>, sqlx::Error> {
    let rows: Vec<NodeRowColumns> = on_tx!(tx, c => sqlx::query_as(NODE_ROWS_SQL)
        .bind(node).fetch_all(c).await)?;
    Ok(rows.into_iter().map(node_row).collect())
}

/// Reconcile's correction of what a node holds: sets `observed` (and makes the row due at
/// once) unless the row changed or was claimed after `listed_at`, when the list was taken:
/// then provisioning's newer knowledge wins. Returns whether the row changed.
pub async fn correct_observed(
    tx: &mut Tx,
    node: &str,
    vpn_uuid: &Uuid,
    observed: Presence,
    listed_at: Timestamp,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE node_memberships SET observed = $3, observed_at = $5, next_attempt_at = $5, attempts = 0,
             last_error = NULL, updated_at = $5
         WHERE node = $1 AND vpn_uuid = $2 AND observed <> $3 AND updated_at <= $4
           AND (claimed_until IS NULL OR claimed_until <= $5)"
    ).bind(node).bind(vpn_uuid).bind(observed.as_str()).bind(listed_at).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Adds what the agent reported since its last report to a row's traffic totals.
///
/// The agent's totals count from when it created the user; a report lower than the last
/// one means the user was created again, so all of it is new. Skipped (false) when the row
/// changed after `listed_at` (provisioning may have restarted the agent's count since).
pub async fn add_traffic(
    tx: &mut Tx,
    node: &str,
    vpn_uuid: &Uuid,
    agent_uplink: i64,
    agent_downlink: i64,
    listed_at: Timestamp,
) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE node_memberships SET
             uplink_bytes = uplink_bytes + CASE WHEN $3 >= agent_uplink_bytes THEN $3 - agent_uplink_bytes ELSE $3 END,
             downlink_bytes = downlink_bytes + CASE WHEN $4 >= agent_downlink_bytes THEN $4 - agent_downlink_bytes ELSE $4 END,
             agent_uplink_bytes = $3, agent_downlink_bytes = $4
         WHERE node = $1 AND vpn_uuid = $2 AND updated_at <= $5
           AND (agent_uplink_bytes <> $3 OR agent_downlink_bytes <> $4)"
    ).bind(node).bind(vpn_uuid).bind(agent_uplink).bind(agent_downlink).bind(listed_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Traffic of a subscription over all its keys and nodes: (uplink, downlink) bytes.
pub async fn traffic(db: &Db, subscription_id: i64) -> Result<(i64, i64), sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(uplink_bytes), 0) AS BIGINT), CAST(COALESCE(SUM(downlink_bytes), 0) AS BIGINT)
         FROM node_memberships WHERE subscription_id = $1"
    ).bind(subscription_id).fetch_one(p).await)
}

/// One node's view of a key, for "is my access ready" screens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOnNode {
    pub node: String,
    pub desired: Presence,
    pub observed: Presence,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// Every row of a key.
pub async fn key_rows(db: &Db, vpn_uuid: &Uuid) -> Result<Vec<KeyOnNode>, sqlx::Error> {
    let rows: Vec<(String, String, String, i32, Option<String>)> = on_db!(db, p => sqlx::query_as(
        "SELECT node, desired, observed, attempts, last_error FROM node_memberships
         WHERE vpn_uuid = $1 ORDER BY node"
    ).bind(vpn_uuid).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(
            |(node, desired, observed, attempts, last_error)| KeyOnNode {
                node,
                desired: Presence::parse(&desired),
                observed: Presence::parse(&observed),
                attempts,
                last_error,
            },
        )
        .collect())
}

/// Emails a subscription has used on any node (a new key's email must differ from all).
pub async fn emails_of(tx: &mut Tx, subscription_id: i64) -> Result<Vec<String>, sqlx::Error> {
    on_tx!(tx, c => sqlx::query_scalar(
        "SELECT DISTINCT email FROM node_memberships WHERE subscription_id = $1"
    ).bind(subscription_id).fetch_all(c).await)
}

/// Rows waiting for the node to change, per node (the provisioning backlog).
pub async fn backlog(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT node, CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE desired <> observed GROUP BY node"
    ).fetch_all(p).await)
}

/// Keys a node holds and should, per node (its users, as the console shows them).
pub async fn present(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT node, CAST(COUNT(*) AS BIGINT) FROM node_memberships
         WHERE desired = 'present' AND observed = 'present' GROUP BY node"
    ).fetch_all(p).await)
}
