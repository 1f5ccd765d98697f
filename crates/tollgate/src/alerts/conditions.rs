//! Alert conditions: a state that lasts (a node's breaker open, Telegram failing to deliver to
//! the webhook, a payment provider failing, reconcile refusing removals) alerts the admins
//! when it begins, at most once per [`REMIND_EVERY`] while it lasts, and once more when it
//! ends.
//!
//! Whoever observes a condition reports it on every observation ([`Alerts::raise`] while it
//! holds, [`Alerts::resolve`] when it does not); the table `alert_conditions` decides what is
//! sent. Each report is one conditional statement, so the rule holds across restarts and
//! replicas: two processes that see the same condition at the same moment send one alert, a
//! restart does not alert again within the hour, and only the report that ends a raised
//! condition sends its "resolved" message. The messages are outbox rows queued in the same
//! transaction, keyed by the condition and the instant it was raised (or reminded), so a
//! retried transaction sends nothing twice.

use std::time::Duration;

use super::Alerts;
use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// The least time between two alerts about one condition while it lasts.
pub const REMIND_EVERY: Duration = Duration::from_secs(3600);

/// What a report of a holding condition sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// The condition began: alerted.
    New,
    /// It lasts, and the last alert is [`REMIND_EVERY`] old: alerted again.
    Reminder,
    /// It lasts and was alerted recently: nothing sent.
    Quiet,
}

/// A condition that holds now, for the console.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActiveCondition {
    pub key: String,
    pub text: String,
    pub raised_at: Timestamp,
    pub last_sent_at: Timestamp,
}

impl Alerts {
    /// Reports that condition `key` holds, described by `text` (plain text), in the caller's
    /// transaction; alerts when it begins or its last alert is [`REMIND_EVERY`] old.
    pub async fn raise_in(
        &self,
        tx: &mut Tx,
        key: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<Raised, sqlx::Error> {
        // Inserted, or updated only when resolved (raised anew) or due for a reminder; the
        // returned `raised_at` tells which.
        let raised_at: Option<Timestamp> = on_tx!(tx, c => sqlx::query_scalar(
            "INSERT INTO alert_conditions (key, text, raised_at, last_sent_at, resolved_at)
             VALUES ($1, $2, $3, $3, NULL)
             ON CONFLICT (key) DO UPDATE SET
                 text = excluded.text,
                 raised_at = CASE WHEN alert_conditions.resolved_at IS NULL
                     THEN alert_conditions.raised_at ELSE excluded.raised_at END,
                 last_sent_at = excluded.last_sent_at,
                 resolved_at = NULL
             WHERE alert_conditions.resolved_at IS NOT NULL OR alert_conditions.last_sent_at <= $4
             RETURNING raised_at"
        ).bind(key).bind(text).bind(now).bind(now.minus(REMIND_EVERY)).fetch_optional(c).await)?;
        let Some(raised_at) = raised_at else {
            return Ok(Raised::Quiet);
        };
        let since = raised_at.as_millis();
        if raised_at == now {
            tracing::warn!(condition = key, "{text}");
            self.queue_in(
                tx,
                &format!("cond:{key}:{since}"),
                &format!("⚠️ {text}"),
                now,
            )
            .await?;
            Ok(Raised::New)
        } else {
            tracing::warn!(condition = key, since = %raised_at, "still: {text}");
            let body = format!("⚠️ Still, since {raised_at}: {text}");
            let event = format!("cond:{key}:{since}:{}", now.as_millis());
            self.queue_in(tx, &event, &body, now).await?;
            Ok(Raised::Reminder)
        }
    }

    /// Reports that condition `key` does not hold, in the caller's transaction; when it was
    /// raised, marks it resolved and sends `text` (plain text) with how long it lasted.
    /// Returns whether it was raised.
    pub async fn resolve_in(
        &self,
        tx: &mut Tx,
        key: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<bool, sqlx::Error> {
        let raised_at: Option<Timestamp> = on_tx!(tx, c => sqlx::query_scalar(
            "UPDATE alert_conditions SET resolved_at = $2
             WHERE key = $1 AND resolved_at IS NULL RETURNING raised_at"
        ).bind(key).bind(now).fetch_optional(c).await)?;
        let Some(raised_at) = raised_at else {
            return Ok(false);
        };
        let minutes = now.since(raised_at).as_secs() / 60;
        tracing::info!(
            condition = key,
            lasted_minutes = minutes,
            "resolved: {text}"
        );
        let body = format!("✅ Resolved after {minutes} min: {text}");
        let event = format!("cond:{key}:{}:resolved", raised_at.as_millis());
        self.queue_in(tx, &event, &body, now).await?;
        Ok(true)
    }

    /// [`Alerts::resolve`] only if the condition was raised at or before `evidence` (the
    /// moment something showed it over): a report from a process that cannot tell, such as one
    /// that has not seen the node answer since the condition was raised, changes nothing.
    pub async fn resolve_seen(
        &self,
        db: &Db,
        key: &str,
        text: &str,
        evidence: Timestamp,
        now: Timestamp,
    ) -> Result<bool, sqlx::Error> {
        let raised: Option<Timestamp> = on_db!(db, p => sqlx::query_scalar(
            "SELECT raised_at FROM alert_conditions WHERE key = $1 AND resolved_at IS NULL"
        ).bind(key).fetch_optional(p).await)?;
        match raised {
            Some(at) if at <= evidence => self.resolve(db, key, text, now).await,
            _ => Ok(false),
        }
    }

    /// [`Alerts::raise_in`] in a transaction of its own.
    pub async fn raise(
        &self,
        db: &Db,
        key: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<Raised, sqlx::Error> {
        let mut tx = db.begin().await?;
        let raised = self.raise_in(&mut tx, key, text, now).await?;
        tx.commit().await?;
        Ok(raised)
    }

    /// [`Alerts::resolve_in`] in a transaction of its own.
    pub async fn resolve(
        &self,
        db: &Db,
        key: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = db.begin().await?;
        let resolved = self.resolve_in(&mut tx, key, text, now).await?;
        tx.commit().await?;
        Ok(resolved)
    }
}

/// The conditions that hold now, oldest first.
pub async fn active(db: &Db) -> Result<Vec<ActiveCondition>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT key, text, raised_at, last_sent_at FROM alert_conditions
         WHERE resolved_at IS NULL ORDER BY raised_at, key"
    ).fetch_all(p).await)
}
