//! Taking a catalog node out of service at runtime, and back (table `node_switches`).
//!
//! A node disabled here is treated like one disabled in the catalog: it gets no new wanted
//! memberships, leaves the feeds and share links, and provisioning and reconcile stop calling
//! it; intent recorded meanwhile is applied when it is enabled again. A node without a row is
//! as the catalog says, and a node disabled in the catalog cannot be enabled here (its agent
//! may be gone: the catalog is the operator's statement of what exists).
//!
//! How replicas learn of a change: the registry's enabled set is refreshed from this table
//! every few seconds ([`refresh`], called by the reconcile component's loop, which runs on
//! every replica and already wakes that often). Not read per use: the set is consulted on
//! every grant, feed request and provisioning pass, and one indexed read every few seconds
//! per process costs nothing where a read per use would add a statement to the bot's hottest
//! paths. Not a message between replicas: there is no channel between them but the database,
//! and a missed message would leave a replica wrong until restart, where a periodic read
//! converges. The cost is a few seconds during which a replica may still want a new key on a
//! node just disabled; that key is only put on the node if it is enabled again (provisioning
//! pauses as soon as its process refreshes), and it is one the user is entitled to anyway.

use std::collections::HashSet;

use super::Registry;
use crate::admin::audit::{self, Actor, AuditAction, AuditEntry};
use crate::store::{Backend, Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// How often [`refresh`] is expected to run (the reconcile loop's tick).
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a node cannot be switched; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("no node {node:?} in the catalog; its nodes: {known}")]
    UnknownNode { node: String, known: String },
    #[error(
        "node {0} is disabled in the catalog; enable it there (enabled = true) and restart to put it in service"
    )]
    DisabledInCatalog(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Switches catalog node `node` on or off for `actor` in the caller's transaction, with its
/// audit row; returns whether it was enabled before. Every replica applies it within
/// [`REFRESH_EVERY`] or so (see the module doc).
pub async fn set_enabled(
    tx: &mut Tx,
    registry: &Registry,
    node: &str,
    on: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<bool, SwitchError> {
    let (before, entry) = switch(tx, registry, node, on, actor, now).await?;
    audit::record(tx, &entry, now).await?;
    Ok(before)
}

/// The catalog node named `node`, or why there is none (the error lists the catalog's).
pub(super) fn catalog_node<'r>(
    registry: &'r Registry,
    node: &str,
) -> Result<&'r super::Node, SwitchError> {
    registry.get(node).map(|n| n.as_ref()).ok_or_else(|| {
        let known: Vec<&str> = registry.all().iter().map(|n| n.name.as_str()).collect();
        SwitchError::UnknownNode {
            node: node.to_owned(),
            known: known.join(", "),
        }
    })
}

/// [`set_enabled`] without recording: whether it was enabled before and the audit entry
/// describing the change, for a caller that records it itself in the same transaction (with
/// the console's `request`).
pub async fn switch(
    tx: &mut Tx,
    registry: &Registry,
    node: &str,
    on: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<(bool, AuditEntry), SwitchError> {
    let n = catalog_node(registry, node)?;
    if !n.enabled {
        return Err(SwitchError::DisabledInCatalog(n.name.clone()));
    }
    let lock = match tx.backend() {
        Backend::Sqlite => "SELECT enabled FROM node_switches WHERE node = $1",
        Backend::Postgres => "SELECT enabled FROM node_switches WHERE node = $1 FOR UPDATE",
    };
    let before: Option<bool> =
        on_tx!(tx, c => sqlx::query_scalar(lock).bind(node).fetch_optional(c).await)?;
    let before = before.unwrap_or(true);
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO node_switches (node, enabled, changed_at, changed_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (node) DO UPDATE SET enabled = excluded.enabled,
             changed_at = excluded.changed_at, changed_by = excluded.changed_by"
    ).bind(node).bind(on).bind(now).bind(actor.admin_id()).execute(c).await.map(|_| ()))?;
    let word = |on: bool| if on { "enabled" } else { "disabled" };
    let action = if on {
        AuditAction::NodeEnabled
    } else {
        AuditAction::NodeDisabled
    };
    let entry = AuditEntry::new(actor, action)
        .subject(node)
        .change(word(before), word(on));
    Ok((before, entry))
}

/// The nodes disabled at runtime.
pub async fn disabled(db: &Db) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<String> = on_db!(db, p => sqlx::query_scalar(
        "SELECT node FROM node_switches WHERE enabled = $1"
    ).bind(false).fetch_all(p).await)?;
    Ok(rows.into_iter().collect())
}

/// Brings `registry`'s enabled set in line with the table; logs each change.
pub async fn refresh(db: &Db, registry: &Registry) -> Result<(), sqlx::Error> {
    let off = disabled(db).await?;
    for (node, on) in registry.apply_disabled(&off) {
        if on {
            tracing::info!(node = %node, "node enabled by an operator: back in service");
        } else {
            tracing::warn!(node = %node, "node disabled by an operator: out of service until enabled again");
        }
    }
    Ok(())
}
