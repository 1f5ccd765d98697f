//! What the admin console shows per node, gathered from the owners of each part: the catalog
//! and this process's breakers (the registry), runtime switches, memberships, and the last
//! reconcile pass. Read-only; the console's actions are [`switches::set_enabled`] and
//! [`reconcile::request`].

use std::collections::HashSet;

use super::reconcile::{self, LastPass};
use super::{Registry, membership, switches};
use crate::store::Db;
use crate::time::Timestamp;

/// One node as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConsoleState {
    pub name: String,
    /// Enabled in the catalog (a node disabled there cannot be enabled from the console).
    pub in_catalog: bool,
    /// In service as stored now: enabled in the catalog and not disabled by an operator
    /// (read from the database, so a change shows at once; replicas apply it within seconds).
    pub enabled: bool,
    /// Since when this process's provisioning has its breaker open; None: closed (or the node
    /// is out of service and not called).
    pub breaker_open_since: Option<Timestamp>,
    /// Keys the node holds and should (its users).
    pub users: i64,
    /// Membership rows waiting for the node to change (the provisioning backlog).
    pub backlog: i64,
    /// The last reconcile pass, with the drift it repaired and the removals it refused; and a
    /// pending "reconcile now" request.
    pub last_reconcile: Option<LastPass>,
}

/// Every catalog node, in catalog order.
pub async fn console_state(
    db: &Db,
    registry: &Registry,
) -> Result<Vec<NodeConsoleState>, sqlx::Error> {
    let off: HashSet<String> = switches::disabled(db).await?;
    let users = membership::present(db).await?;
    let backlog = membership::backlog(db).await?;
    let passes = reconcile::last_passes(db).await?;
    let of = |rows: &[(String, i64)], name: &str| {
        rows.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
    };
    Ok(registry
        .all()
        .iter()
        .map(|n| NodeConsoleState {
            name: n.name.clone(),
            in_catalog: n.enabled,
            enabled: n.enabled && !off.contains(&n.name),
            breaker_open_since: registry.breaker_open_since(&n.name),
            users: of(&users, &n.name),
            backlog: of(&backlog, &n.name),
            last_reconcile: passes.iter().find(|p| p.node == n.name).cloned(),
        })
        .collect())
}
