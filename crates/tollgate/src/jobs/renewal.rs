//! Auto-renewal from the balance (docs/product.md §4, docs/reliability.md D4, D5): from 24 h before expiry
//! until expiry, every run renews each opted-in subscription whose owner's balance covers
//! its plan's current price. The debit's ledger reference is (subscription, the expiry it
//! renews), so a period is renewed at most once however often or on however many replicas
//! the job runs; while the balance is short, every run tries again (a top-up an hour before
//! expiry is picked up), and the user gets one "top up X" message per period. Reachability
//! plays no part: a user who blocked the bot still renews.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::access;
use crate::action::Action;
use crate::billing::{self, BalanceCharge, BalancePaid, BillingError, Reason};
use crate::config::Language;
use crate::domain::money::Money;
use crate::flags::Flag;
use crate::i18n::{Arg, format};
use crate::on_db;
use crate::store::Tx;
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::Timestamp;
use crate::users;

use super::{IterationFuture, Job, JobContext};

/// How long before expiry renewal starts trying.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// One page of candidates: opted-in, with a plan, expiring in `($5 now, $2 now + window]`,
/// after `($1 expires_at, $3 id)` in that order, `$4` rows; `$6` is `true`. A range of
/// `subscriptions_expiry` (a test checks the plan on both backends).
pub const CANDIDATES_QUERY: &str = access::renewal_candidates_sql!(
    [users::user_auto_renew_sql!("s.user_id", "$6")],
    [users::user_language_sql!("s.user_id"), " AS language"]
);
/// Candidates read per query; a run reads pages until the window is exhausted.
const PAGE: i64 = 500;

pub struct AutoRenewal {
    ctx: JobContext,
    /// Candidates read per query.
    page: i64,
}

/// What one renewal attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Renewed,
    Short,
    Nothing,
}

impl AutoRenewal {
    pub fn new(ctx: JobContext) -> AutoRenewal {
        AutoRenewal { ctx, page: PAGE }
    }

    /// Page size of the candidate scan (tests make it small).
    pub fn with_page_size(mut self, page: i64) -> AutoRenewal {
        self.page = page.max(1);
        self
    }

    /// One run over every opted-in subscription that expires within [`WINDOW`].
    pub async fn run_batch(&self) -> anyhow::Result<u64> {
        self.run_batch_until(&CancellationToken::new()).await
    }

    /// [`AutoRenewal::run_batch`] that stops taking new subscriptions once `stop` is
    /// cancelled.
    ///
    /// The candidates are read page by page in `(expires_at, id)` order until the window is
    /// exhausted: users who stay short of money are tried on every run, so a single page
    /// (`LIMIT`) would let them crowd out everyone behind them. A subscription whose
    /// transaction fails for a reason other than the database being unreachable is logged
    /// and skipped; the run goes on and ends in `error`.
    pub async fn run_batch_until(&self, stop: &CancellationToken) -> anyhow::Result<u64> {
        let now = self.ctx.clock.now();
        let mut handled = 0;
        let mut renewed = false;
        let mut failed = Vec::new();
        let mut after: (Timestamp, i64) = (now, 0);
        'pages: loop {
            let page: Vec<(i64, i64, String, Timestamp, String)> = on_db!(&self.ctx.db, p => sqlx::query_as(CANDIDATES_QUERY)
                .bind(after.0).bind(now.plus(WINDOW)).bind(after.1).bind(self.page).bind(now).bind(true)
                .fetch_all(p).await)?;
            let last_page = i64::try_from(page.len()).unwrap_or(i64::MAX) < self.page;
            for (id, user_id, plan_id, expires_at, language) in page {
                if stop.is_cancelled() {
                    break 'pages;
                }
                after = (expires_at, id);
                let lang = Language::parse(&language).unwrap_or(Language::En);
                match self
                    .attempt(id, user_id, &plan_id, expires_at, lang, now)
                    .await
                {
                    Ok(a) => {
                        handled += u64::from(a != Attempt::Nothing);
                        renewed |= a == Attempt::Renewed;
                    }
                    Err(e) => {
                        let e = anyhow::Error::from(e);
                        if super::database_unavailable(&e) {
                            return Err(e);
                        }
                        tracing::warn!(job = "auto-renewal", subscription = id, error = %format!("{e:#}"),
                            "cannot auto-renew this subscription; the others go on");
                        failed.push(id);
                    }
                }
            }
            if last_page {
                break;
            }
        }
        if handled > 0 {
            self.ctx.outbox_wake.notify_one();
        }
        if renewed {
            self.ctx.provisioning.wake();
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{} subscription(s) could not be auto-renewed (ids {failed:?}); {handled} handled",
                failed.len()
            );
        }
        Ok(handled)
    }

    /// One subscription in its own transaction; a lost race with another replica is retried.
    async fn attempt(
        &self,
        id: i64,
        user_id: i64,
        plan_id: &str,
        expires_at: Timestamp,
        lang: Language,
        now: Timestamp,
    ) -> Result<Attempt, BillingError> {
        let mut raced = 0;
        loop {
            let mut tx = self.ctx.db.begin().await?;
            match self
                .one(&mut tx, id, user_id, plan_id, expires_at, lang, now)
                .await
            {
                Ok(a) => {
                    tx.commit().await?;
                    return Ok(a);
                }
                // Another replica renewed this period at this moment: look again.
                Err(BillingError::Raced) if raced < 3 => raced += 1,
                Err(e) => return Err(e),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn one(
        &self,
        tx: &mut Tx,
        id: i64,
        user_id: i64,
        plan_id: &str,
        expires_at: Timestamp,
        lang: Language,
        now: Timestamp,
    ) -> Result<Attempt, BillingError> {
        let catalog = &self.ctx.catalog;
        let base = catalog.bot.base_currency;
        let Some(plan) = catalog.plans.iter().find(|p| p.id == plan_id) else {
            tracing::warn!(
                subscription = id,
                plan = plan_id,
                "auto-renewal: the plan left the catalog; not renewed"
            );
            return Ok(Attempt::Nothing);
        };
        // Still the period we selected (a renewal by hand may have moved it)? The row is
        // locked first (PostgreSQL; SQLite's transaction holds the write lock): a payment by
        // hand that is committing now must not be paid a second time on top of it. A row
        // another transaction holds is skipped this run rather than waited for; the next run
        // (every few minutes, for 24 hours) sees what that transaction did.
        let current = access::lock_unless_held(tx, id).await?;
        if current.is_none_or(|s| (s.expires_at, s.revoked_at) != (expires_at, None)) {
            // Locked by someone else (skipped), renewed meanwhile, or revoked.
            return Ok(Attempt::Nothing);
        }
        let reference = format!("renewal:{id}:{}", expires_at.as_millis());
        let charge = BalanceCharge {
            user_id,
            plan,
            reason: Reason::Renewal,
            reference: &reference,
        };
        let paid = billing::pay_plan_from_balance(tx, &self.ctx.nodes, base, &charge, now).await?;
        let offset = catalog.bot.utc_offset_minutes;
        let (key, text, button) = match paid {
            BalancePaid::Paid {
                subscription,
                balance_after,
                price,
                ..
            } => {
                let text = self.ctx.texts.fmt(
                    lang,
                    "auto-renewed-text",
                    &[
                        ("price", format::money(lang, price).into()),
                        (
                            "until",
                            Arg::Text(format::date_time(lang, subscription.expires_at, offset)),
                        ),
                        (
                            "balance",
                            format::money(lang, Money::new(balance_after, base)).into(),
                        ),
                    ],
                );
                (format!("renewed:{reference}"), text, None)
            }
            // Never for a renewal: only purchases by hand use promo codes.
            BalancePaid::AlreadyPaid | BalancePaid::PromoRefused(_) => return Ok(Attempt::Nothing),
            BalancePaid::Short { balance, price } => {
                let text = self.ctx.texts.fmt(
                    lang,
                    "auto-renew-short-text",
                    &[
                        (
                            "missing",
                            format::money(lang, Money::new(price - balance, base)).into(),
                        ),
                        (
                            "until",
                            Arg::Text(format::date_time(lang, expires_at, offset)),
                        ),
                    ],
                );
                let button = json!({ "inline_keyboard": [[{
                    "text": self.ctx.texts.get(lang, "btn-balance"),
                    "callback_data": Action::Balance.encode(),
                }]] });
                (format!("renew-short:{reference}"), text, Some(button))
            }
        };
        let renewed = button.is_none();
        let msg = OutboxMessage::text(key, user_id, Priority::Transactional, text, button);
        outbox::enqueue(tx, &msg, now).await?;
        Ok(if renewed {
            Attempt::Renewed
        } else {
            Attempt::Short
        })
    }
}

impl Job for AutoRenewal {
    fn name(&self) -> &'static str {
        "auto-renewal"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(240)
    }

    fn flag(&self) -> Option<Flag> {
        Some(Flag::AutoRenewal)
    }

    fn run_once(&self) -> IterationFuture<'_> {
        Box::pin(self.run_batch())
    }

    fn run_once_until_stopped(&self, stop: CancellationToken) -> IterationFuture<'_> {
        Box::pin(async move { self.run_batch_until(&stop).await })
    }
}
