//! Users: people who started the bot, keyed by their Telegram id.
//!
//! This module owns the `users` table. So far it tracks reachability: a 403 from Telegram
//! marks the user as having blocked the bot, and any update from the user clears it.
//! Reachability only affects delivery; it never gates money or access (RELIABILITY D6).

use crate::on_db;
use crate::store::Db;
use crate::time::Timestamp;

/// Records that sends to this user fail with 403 (blocked, deactivated).
pub async fn mark_bot_blocked(db: &Db, user_id: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    on_db!(db, p => sqlx::query(
        "UPDATE users SET bot_blocked_at = $2 WHERE id = $1 AND bot_blocked_at IS NULL"
    ).bind(user_id).bind(now).execute(p).await.map(|_| ()))
}

/// The user wrote again (or unblocked the bot): deliver to them again.
///
/// Called for every update, so it reads first and writes only for a blocked user (a write
/// statement takes SQLite's write lock even when it matches nothing).
pub async fn clear_bot_blocked(db: &Db, user_id: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    if bot_blocked_at(db, user_id).await?.is_none() {
        return Ok(());
    }
    on_db!(db, p => sqlx::query(
        "UPDATE users SET bot_blocked_at = NULL, last_seen_at = $2 WHERE id = $1 AND bot_blocked_at IS NOT NULL"
    ).bind(user_id).bind(now).execute(p).await.map(|_| ()))
}

/// When the user was last found to have blocked the bot, if they have.
pub async fn bot_blocked_at(db: &Db, user_id: i64) -> Result<Option<Timestamp>, sqlx::Error> {
    let v: Option<Option<Timestamp>> = on_db!(db, p => sqlx::query_scalar(
        "SELECT bot_blocked_at FROM users WHERE id = $1"
    ).bind(user_id).fetch_optional(p).await)?;
    Ok(v.flatten())
}
