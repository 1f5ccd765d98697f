//! Provider cursors and the payments a provider reconciler already knows: the `payments` and
//! `provider_cursors` SQL a reconciler needs, kept with the rest of billing's tables.

use std::collections::HashSet;

use super::BillingError;
use crate::store::Db;
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// Which of these Stars charge ids have a payment row already.
pub async fn recorded_stars_charges(
    db: &Db,
    ids: &[String],
) -> Result<HashSet<String>, BillingError> {
    let rows: Vec<(String,)> = match db {
        Db::Sqlite(p) => {
            sqlx::query_as(
                "SELECT provider_payment_id FROM payments
                 WHERE provider = 'stars' AND provider_payment_id IN (SELECT j.value FROM json_each($1) AS j)",
            )
            .bind(serde_json::Value::from(ids.to_vec()).to_string())
            .fetch_all(p)
            .await?
        }
        Db::Postgres(p) => {
            sqlx::query_as(
                "SELECT provider_payment_id FROM payments
                 WHERE provider = 'stars' AND provider_payment_id = ANY($1)",
            )
            .bind(ids)
            .fetch_all(p)
            .await?
        }
    };
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn cursor(db: &Db, name: &str) -> Result<Option<i64>, BillingError> {
    let row: Option<(i64,)> = on_db!(db, p => sqlx::query_as(
        "SELECT position FROM provider_cursors WHERE name = $1"
    ).bind(name).fetch_optional(p).await)?;
    Ok(row.map(|r| r.0))
}

/// Moves a cursor forward (never back: a pass that raced an older one keeps the larger value).
pub async fn advance_cursor(
    db: &Db,
    name: &str,
    position: i64,
    now: Timestamp,
) -> Result<(), BillingError> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO provider_cursors (name, position, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at
         WHERE provider_cursors.position < excluded.position"
    ).bind(name).bind(position.max(0)).bind(now).execute(c).await.map(|_| ()))?;
    tx.commit().await?;
    Ok(())
}
