//! What the console reads and asks of reconcile (table `node_reconciles`): each node's last
//! pass with the drift it repaired, and an operator's request for a pass now (see the parent
//! module's doc for why a stored request rather than a call).

use super::{ReconcileReport, RefusedRemovals};
use crate::admin::audit::{self, Actor, AuditAction, AuditEntry};
use crate::nodes::{Registry, switches};
use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// A node's last reconcile pass, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LastPass {
    pub node: String,
    /// When the last pass finished (None: no pass yet, only a request).
    pub finished_at: Option<Timestamp>,
    /// Users the node listed.
    pub listed: i64,
    /// Missing keys handed back to provisioning.
    pub restored: i64,
    /// Users removed or handed to provisioning for removal.
    pub removed: i64,
    /// Removals held back over the limit (0: none).
    pub refused: i64,
    /// An operator's pending request for a pass.
    pub requested_at: Option<Timestamp>,
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records a pass that started at `started_at` and finished at `now`; a request made before
/// it started is done.
pub async fn record_pass(
    db: &Db,
    node: &str,
    r: &ReconcileReport,
    started_at: Timestamp,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let refused = r.refused.as_ref().map_or(0, RefusedRemovals::total);
    on_db!(db, p => sqlx::query(
        "INSERT INTO node_reconciles (node, finished_at, listed, restored, removed, refused, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL)
         ON CONFLICT (node) DO UPDATE SET finished_at = excluded.finished_at,
             listed = excluded.listed, restored = excluded.restored, removed = excluded.removed,
             refused = excluded.refused,
             requested_at = CASE WHEN node_reconciles.requested_at <= $7 THEN NULL
                 ELSE node_reconciles.requested_at END"
    ).bind(node).bind(now).bind(count(r.listed)).bind(count(r.restored))
        .bind(count(r.to_remove + r.unknown_removed)).bind(count(refused)).bind(started_at)
        .execute(p).await.map(|_| ()))
}

/// Every node's last pass and pending request, by node name.
pub async fn last_passes(db: &Db) -> Result<Vec<LastPass>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT node, finished_at, listed, restored, removed, refused, requested_at
         FROM node_reconciles ORDER BY node"
    ).fetch_all(p).await)
}

/// Asks for a reconcile pass of catalog node `node` now, for `actor`, in the caller's
/// transaction with its audit row. The holder of the node's lease runs it within a few
/// seconds (see the parent module's doc); [`last_passes`] shows it pending until then.
pub async fn request(
    tx: &mut Tx,
    registry: &Registry,
    node: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<(), switches::SwitchError> {
    let entry = ask(tx, registry, node, actor, now).await?;
    audit::record(tx, &entry, now).await?;
    Ok(())
}

/// [`request`] without recording: the audit entry describing it, for a caller that records it
/// itself in the same transaction (with the console's `request`).
pub async fn ask(
    tx: &mut Tx,
    registry: &Registry,
    node: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<AuditEntry, switches::SwitchError> {
    let n = switches::catalog_node(registry, node)?;
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO node_reconciles (node, requested_at) VALUES ($1, $2)
         ON CONFLICT (node) DO UPDATE SET requested_at = excluded.requested_at"
    ).bind(&n.name).bind(now).execute(c).await.map(|_| ()))?;
    Ok(AuditEntry::new(actor, AuditAction::NodeReconcile).subject(&n.name))
}

/// The nodes with a pending request.
pub(super) async fn requested(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    on_db!(db, p => sqlx::query_scalar(
        "SELECT node FROM node_reconciles WHERE requested_at IS NOT NULL"
    ).fetch_all(p).await)
}

/// Marks `node`'s request made up to `now` as done.
pub(super) async fn clear_request(db: &Db, node: &str, now: Timestamp) -> Result<(), sqlx::Error> {
    on_db!(db, p => sqlx::query(
        "UPDATE node_reconciles SET requested_at = NULL WHERE node = $1 AND requested_at <= $2"
    ).bind(node).bind(now).execute(p).await.map(|_| ()))
}
