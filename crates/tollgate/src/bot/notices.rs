//! "Your access is ready": told once the nodes have caught up with a new key.
//!
//! A trial or purchase grants access in the database at once; the nodes follow within
//! moments. The user is shown "ready in a moment" right away, and this component sends
//! "ready" when the key is live — on every enabled node, or on some of them when the rest
//! keep failing. The notice is owed in the grant's transaction (a row here) and queued in
//! the outbox in the transaction that removes the row, so it is sent exactly once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::access::{self, ProvisioningSummary, Subscription};
use crate::app::Services;
use crate::i18n::Texts;
use crate::store::{Db, DeferredWrite, Tx};
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::Timestamp;
use crate::users;
use crate::{on_db, on_tx};

/// How often owed notices are checked.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// A notice still owed after this long is dropped (the user has long since looked).
const GIVE_UP_AFTER: Duration = Duration::from_secs(86_400);

/// Owes the user of `sub` a notice when its current key is live.
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

#[derive(sqlx::FromRow)]
struct Owed {
    subscription_id: i64,
    user_id: i64,
    vpn_uuid: Uuid,
    created_at: Timestamp,
}

pub struct AccessNotices {
    s: Services,
    texts: Arc<Texts>,
}

impl AccessNotices {
    pub fn new(s: Services, texts: Arc<Texts>) -> Self {
        AccessNotices { s, texts }
    }

    /// One pass over the owed notices; returns how many were queued (or found queued).
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let db = &self.s.db;
        let now = self.s.clock.now();
        let owed: Vec<Owed> = on_db!(db, p => sqlx::query_as(
            "SELECT subscription_id, user_id, vpn_uuid, created_at FROM access_notices ORDER BY created_at LIMIT 500"
        ).fetch_all(p).await)?;
        let mut queued = 0;
        for o in owed {
            let sub = access::subscription(db, o.subscription_id)
                .await
                .map_err(to_sqlx)?;
            let ready = match &sub {
                // A newer key replaced this one, or the access ended: nothing to tell.
                Some(s) if s.vpn_uuid != o.vpn_uuid || !s.is_active(now) => Some(false),
                None => Some(false),
                Some(s) => {
                    let state = access::provisioning_state(db, s, self.s.registry.enabled(), now)
                        .await
                        .map_err(to_sqlx)?;
                    match state.summary() {
                        ProvisioningSummary::Ready => Some(true),
                        ProvisioningSummary::Partial
                            if now.since(o.created_at) > Duration::from_secs(60) =>
                        {
                            Some(true)
                        }
                        _ if now.since(o.created_at) > GIVE_UP_AFTER => Some(false),
                        _ => None,
                    }
                }
            };
            let Some(tell) = ready else { continue };
            let user = users::get(db, o.user_id).await?;
            let mut tx = db.begin().await?;
            let removed = on_tx!(&mut tx, c => sqlx::query(
                "DELETE FROM access_notices WHERE subscription_id = $1 AND vpn_uuid = $2"
            ).bind(o.subscription_id).bind(o.vpn_uuid).execute(c).await.map(|r| r.rows_affected()))?;
            if removed == 1 && tell {
                let fallback = self.s.config.catalog.bot.fallback_language();
                let lang = user.map_or(fallback, |u| u.language_or(fallback));
                let msg = OutboxMessage::text(
                    format!("ready:{}:{}", o.subscription_id, o.vpn_uuid.simple()),
                    o.user_id,
                    Priority::Transactional,
                    self.texts.get(lang, "access-ready-notice"),
                    None,
                );
                outbox::enqueue(&mut tx, &msg, now).await?;
                queued += 1;
            }
            tx.commit().await?;
        }
        if queued > 0 {
            self.s.outbox_wake.notify_one();
        }
        Ok(queued)
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        loop {
            hb.beat();
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "cannot check owed access notices; will retry");
            }
            if !idle(CHECK_EVERY, &hb, Duration::from_millis(500), &stop).await {
                return;
            }
        }
    }
}

fn to_sqlx(e: access::AccessError) -> sqlx::Error {
    sqlx::Error::Protocol(e.to_string())
}

impl Component for AccessNotices {
    fn name(&self) -> &'static str {
        "access-notices"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}

/// How many notices are still owed (tests).
pub async fn owed(db: &Db) -> Result<i64, sqlx::Error> {
    on_db!(db, p => sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM access_notices").fetch_one(p).await)
}
