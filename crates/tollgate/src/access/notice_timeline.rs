//! The notice timeline columns of `subscriptions` (`notice_stage`, `next_notice_at`), as the
//! notices job moves them on. `access` owns the table, so the one statement that writes them
//! for the job is here; the job (`jobs::notices`) decides the new values.

use uuid::Uuid;

use crate::store::{DeferredWrite, Tx};
use crate::time::Timestamp;

/// A subscription's row as the notices job read it: the columns its step was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsRead {
    pub id: i64,
    pub vpn_uuid: Uuid,
    pub notice_stage: i32,
    pub next_notice_at: Timestamp,
    pub expires_at: Timestamp,
    pub notice_from: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// The subscriptions whose next notice is due at `$1`, at most `$2`, earliest first, with the
/// columns the notices job computes a step from (and checks with the advance below), then the
/// caller's last column (SQL text: another owner's fragment, such as the user's language).
macro_rules! notices_due_sql {
    ($($last:tt)+) => {
        concat!(
            "SELECT s.id, s.user_id, s.kind, s.starts_at, s.expires_at, s.revoked_at, s.vpn_uuid,
                    s.notice_stage, s.notice_from, s.next_notice_at, ",
            $($last)+,
            " FROM subscriptions s
             WHERE s.next_notice_at IS NOT NULL AND s.next_notice_at <= $1
             ORDER BY s.next_notice_at LIMIT $2"
        )
    };
}
pub(crate) use notices_due_sql;

/// The row is still exactly as read (`$1` id, `$2` key, `$3` stage, `$4` next, `$5` expiry,
/// `$6` notice_from, `$7` revoked_at).
macro_rules! unchanged_sql {
    () => {
        "id = $1 AND vpn_uuid = $2 AND notice_stage = $3 AND next_notice_at = $4
           AND expires_at = $5 AND notice_from IS NOT DISTINCT FROM $6
           AND revoked_at IS NOT DISTINCT FROM $7"
    };
}

/// SQLite: the transaction's `BEGIN IMMEDIATE` holds the write lock already.
const ADVANCE_SQLITE: &str = concat!(
    "UPDATE subscriptions SET notice_stage = $8, next_notice_at = $9 WHERE ",
    unchanged_sql!()
);
/// PostgreSQL: a row another transaction holds (a renewal in progress, a killed process's
/// transaction not yet rolled back) is skipped rather than waited for; it stays due.
const ADVANCE_POSTGRES: &str = concat!(
    "UPDATE subscriptions SET notice_stage = $8, next_notice_at = $9
     WHERE id = (SELECT id FROM subscriptions WHERE ",
    unchanged_sql!(),
    " FOR UPDATE SKIP LOCKED)"
);

/// Moves the timeline of `row` on to `stage`, next due at `next` (`None`: done), only if the
/// row is unchanged since it was read; returns whether it moved. This conditional update is
/// the item's lock and re-check in one: another replica that did the item first, a renewal, a
/// refund, a revoke or a new key changes one of those columns, and then nothing happens here
/// (the row, if still due, comes back with fresh values).
pub async fn advance(
    tx: &mut Tx,
    row: &AsRead,
    stage: i32,
    next: Option<Timestamp>,
) -> Result<bool, sqlx::Error> {
    let sql = match tx {
        Tx::Sqlite(_) => ADVANCE_SQLITE,
        Tx::Postgres(_) => ADVANCE_POSTGRES,
    };
    let update = DeferredWrite::new(sql)
        .bind(row.id)
        .bind(row.vpn_uuid)
        .bind(row.notice_stage)
        .bind(row.next_notice_at)
        .bind(row.expires_at)
        .bind(row.notice_from)
        .bind(row.revoked_at)
        .bind(stage)
        .bind(next);
    Ok(tx.execute(update).await? == 1)
}
