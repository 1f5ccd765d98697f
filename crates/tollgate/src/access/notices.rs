//! "Access ready" notices owed to users: the `access_notices` table.
//!
//! A grant owes its user a notice in the grant's own transaction ([`expect`]); the bot's
//! notices component later finds the owed ones ([`owed`]) and settles each in the
//! transaction that queues the message ([`settle`]), so the notice is sent exactly once. The
//! table belongs here, with the grants that create its rows; the bot only reads and settles
//! through these functions.

use uuid::Uuid;

use super::Subscription;
use crate::store::{Db, DeferredWrite, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// Owes the user of `sub` a notice when its current key is live (a newer key replaces an
/// older owed one).
pub async fn expect(tx: &mut Tx, sub: &Subscription, now: Timestamp) -> Result<(), sqlx::Error> {
    tx.defer(
        DeferredWrite::new(
            "INSERT INTO access_notices (subscription_id, user_id, vpn_uuid, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (subscription_id) DO UPDATE SET vpn_uuid = excluded.vpn_uuid, created_at = excluded.created_at",
        )
        .bind(sub.id)
        .bind(sub.user_id)
        .bind(sub.vpn_uuid)
        .bind(now),
    )
    .await
}

/// A notice owed for a subscription's key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OwedNotice {
    pub subscription_id: i64,
    pub user_id: i64,
    pub vpn_uuid: Uuid,
    pub created_at: Timestamp,
}

/// The oldest owed notices, at most `limit`.
pub async fn owed(db: &Db, limit: i64) -> Result<Vec<OwedNotice>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT subscription_id, user_id, vpn_uuid, created_at FROM access_notices ORDER BY created_at LIMIT $1"
    ).bind(limit).fetch_all(p).await)
}

/// Settles `notice` in the caller's transaction: true when this call removed it (so the caller
/// queues the message, once), false when it was settled already or replaced by a newer key.
pub async fn settle(tx: &mut Tx, notice: &OwedNotice) -> Result<bool, sqlx::Error> {
    let removed = on_tx!(tx, c => sqlx::query(
        "DELETE FROM access_notices WHERE subscription_id = $1 AND vpn_uuid = $2"
    ).bind(notice.subscription_id).bind(notice.vpn_uuid).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(removed == 1)
}
