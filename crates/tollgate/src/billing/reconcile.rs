//! The Stars reconciler (RELIABILITY F3): Telegram's own list of Stars transactions is
//! compared with our payments, and any incoming payment we never recorded — its
//! `successful_payment` update lost, dead-lettered, or never delivered — is finalized
//! through the same [`finalize`] as the handler. Finalize is idempotent, so racing the
//! normal path is harmless; the confirmation is still sent once.
//!
//! One replica reads at a time (a lease), from a persisted cursor: `getStarTransactions`
//! lists in chronological order, so the position only grows.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::Services;
use crate::i18n::Texts;
use crate::lease;
use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

use super::{BillingError, Captured, Context, Finalized, Provider, finalize};

/// Telegram's page size limit.
const PAGE: usize = 100;
const CURSOR: &str = "stars";
const LEASE: &str = "stars-reconcile";

#[derive(Debug, Deserialize)]
struct StarTransactions {
    transactions: Vec<StarTransaction>,
}

#[derive(Debug, Deserialize)]
struct StarTransaction {
    id: String,
    amount: i64,
    #[serde(default)]
    source: Option<Partner>,
}

#[derive(Debug, Deserialize)]
struct Partner {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    transaction_type: Option<String>,
    #[serde(default)]
    user: Option<PartnerUser>,
    #[serde(default)]
    invoice_payload: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PartnerUser {
    id: i64,
}

/// Finds Stars payments that were captured but never finalized.
pub struct StarsReconciler {
    s: Services,
    texts: Arc<Texts>,
    interval: Duration,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub read: usize,
    /// Payments finalized by this pass (their updates never arrived).
    pub recovered: usize,
}

impl StarsReconciler {
    pub fn new(s: Services, texts: Arc<Texts>) -> StarsReconciler {
        let interval = s.config.deployment.stars_reconcile_interval;
        StarsReconciler { s, texts, interval }
    }

    /// One pass from the cursor to the end of the list; `None` when another replica holds
    /// the lease.
    pub async fn run_once(&self) -> Result<Option<Pass>, BillingError> {
        let db = &self.s.db;
        let now = self.s.clock.now();
        let ttl = (self.interval * 3).max(Duration::from_secs(60));
        let Some(held) = lease::acquire(db, LEASE, &self.s.holder, ttl, now).await? else {
            return Ok(None);
        };
        let mut position = cursor(db).await?;
        let mut pass = Pass::default();
        loop {
            let page: StarTransactions = match self
                .s
                .api
                .call(
                    "getStarTransactions",
                    &json!({ "offset": position, "limit": PAGE }),
                )
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list Stars transactions; will retry next pass");
                    break;
                }
            };
            let n = page.transactions.len();
            for t in &page.transactions {
                if self.recover(t).await? {
                    pass.recovered += 1;
                }
                position += 1;
                pass.read += 1;
            }
            save_cursor(db, position, self.s.clock.now()).await?;
            if n < PAGE {
                break;
            }
        }
        let _ = lease::release(db, &held, self.s.clock.now()).await;
        if pass.recovered > 0 {
            tracing::warn!(
                recovered = pass.recovered,
                "Stars payments finalized by reconciliation (their updates never arrived)"
            );
            self.s.outbox_wake.notify_one();
            self.s.provisioning.wake();
        }
        Ok(Some(pass))
    }

    /// Finalizes one listed transaction if it is an incoming invoice payment; true when this
    /// call applied it (it had not been recorded).
    async fn recover(&self, t: &StarTransaction) -> Result<bool, BillingError> {
        let Some(src) = &t.source else {
            return Ok(false); // outgoing (a refund, a withdrawal)
        };
        let invoice = src.kind == "user"
            && src
                .transaction_type
                .as_deref()
                .is_none_or(|k| k == "invoice_payment");
        let (Some(user), Some(payload)) = (&src.user, &src.invoice_payload) else {
            return Ok(false);
        };
        if !invoice || t.amount <= 0 {
            return Ok(false);
        }
        let pay = Captured {
            provider: Provider::Stars,
            charge_id: t.id.clone(),
            user_id: user.id,
            currency: "XTR".to_owned(),
            total_amount: t.amount,
            payload: payload.clone(),
            raw: Some(json!({ "star_transaction": t.id, "amount": t.amount }).to_string()),
        };
        let ctx = Context {
            catalog: &self.s.config.catalog,
            texts: &self.texts,
            nodes: self.s.registry.enabled(),
            admins: &self.s.config.deployment.admin_ids,
        };
        for _ in 0..3 {
            let mut tx = self.s.db.begin().await?;
            let payer = crate::users::get_in(&mut tx, user.id).await?;
            match finalize(&mut tx, &ctx, &pay, payer.as_ref(), self.s.clock.now()).await {
                Ok(f) => {
                    tx.commit().await?;
                    return Ok(matches!(f, Finalized::Applied { .. }));
                }
                // The handler recorded it at this very moment; look again.
                Err(BillingError::Raced) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        loop {
            hb.beat();
            match self.run_once().await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Stars reconciliation failed; will retry"),
            }
            if !idle(self.interval, &hb, Duration::from_secs(1), &stop).await {
                return;
            }
        }
    }
}

async fn cursor(db: &Db) -> Result<i64, BillingError> {
    let row: Option<(i64,)> = on_db!(db, p => sqlx::query_as(
        "SELECT position FROM provider_cursors WHERE name = $1"
    ).bind(CURSOR).fetch_optional(p).await)?;
    Ok(row.map_or(0, |r| r.0))
}

async fn save_cursor(db: &Db, position: i64, now: Timestamp) -> Result<(), BillingError> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO provider_cursors (name, position, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at
         WHERE provider_cursors.position < excluded.position"
    ).bind(CURSOR).bind(position).bind(now).execute(c).await.map(|_| ()))?;
    tx.commit().await?;
    Ok(())
}

impl Component for StarsReconciler {
    fn name(&self) -> &'static str {
        "stars-reconciler"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}
