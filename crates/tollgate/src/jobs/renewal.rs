//! Auto-renewal from the balance (PRODUCT §4, RELIABILITY D4, D5): from 24 h before expiry
//! until expiry, every run renews each opted-in subscription whose owner's balance covers
//! its plan's current price. The debit's ledger reference is (subscription, the expiry it
//! renews), so a period is renewed at most once however often or on however many replicas
//! the job runs; while the balance is short, every run tries again (a top-up an hour before
//! expiry is picked up), and the user gets one "top up X" message per period. Reachability
//! plays no part: a user who blocked the bot still renews.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::access;
use crate::app::Services;
use crate::billing::{self, BalanceCharge, BalancePaid, BillingError, Reason};
use crate::bot::action::Action;
use crate::config::Language;
use crate::domain::money::Money;
use crate::flags::Flag;
use crate::i18n::{Arg, Texts, format};
use crate::on_db;
use crate::store::Tx;
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::Timestamp;

use super::{IterationFuture, Job};

/// How long before expiry renewal starts trying.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
const BATCH: i64 = 500;

pub struct AutoRenewal {
    s: Services,
    texts: Arc<Texts>,
}

/// What one renewal attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Renewed,
    Short,
    Nothing,
}

impl AutoRenewal {
    pub fn new(s: Services, texts: Arc<Texts>) -> AutoRenewal {
        AutoRenewal { s, texts }
    }

    pub async fn run_batch(&self) -> anyhow::Result<u64> {
        let now = self.s.clock.now();
        let due: Vec<(i64, i64, i64, String, Timestamp, String)> = on_db!(&self.s.db, p => sqlx::query_as(
            "SELECT s.id, s.user_id, u.balance, s.plan_id, s.expires_at, u.language
             FROM subscriptions s JOIN users u ON u.id = s.user_id
             WHERE s.revoked_at IS NULL AND s.expires_at > $1 AND s.expires_at <= $2
               AND u.auto_renew = $4 AND s.plan_id IS NOT NULL
             ORDER BY s.expires_at LIMIT $3"
        ).bind(now).bind(now.plus(WINDOW)).bind(BATCH).bind(true).fetch_all(p).await)?;
        let mut handled = 0;
        let mut renewed = false;
        for (id, user_id, _, plan_id, expires_at, language) in due {
            let lang = Language::parse(&language).unwrap_or(Language::En);
            for _ in 0..3 {
                let mut tx = self.s.db.begin().await?;
                match self
                    .one(&mut tx, id, user_id, &plan_id, expires_at, lang, now)
                    .await
                {
                    Ok(a) => {
                        tx.commit().await?;
                        handled += u64::from(a != Attempt::Nothing);
                        renewed |= a == Attempt::Renewed;
                        break;
                    }
                    // Another replica renewed this period at this moment: look again.
                    Err(BillingError::Raced) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if handled > 0 {
            self.s.outbox_wake.notify_one();
        }
        if renewed {
            self.s.provisioning.wake();
        }
        Ok(handled)
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
        let catalog = &self.s.config.catalog;
        let base = catalog.bot.base_currency;
        let Some(plan) = catalog.plans.iter().find(|p| p.id == plan_id) else {
            tracing::warn!(
                subscription = id,
                plan = plan_id,
                "auto-renewal: the plan left the catalog; not renewed"
            );
            return Ok(Attempt::Nothing);
        };
        // Still the period we selected (a renewal by hand may have moved it)?
        let current = access::subscription_for_user_in(tx, user_id).await?;
        if current.as_ref().map(|s| s.expires_at) != Some(expires_at) {
            return Ok(Attempt::Nothing);
        }
        let reference = format!("renewal:{id}:{}", expires_at.as_millis());
        let charge = BalanceCharge {
            user_id,
            plan,
            reason: Reason::Renewal,
            reference: &reference,
        };
        let paid =
            billing::pay_plan_from_balance(tx, self.s.registry.enabled(), base, &charge, now)
                .await?;
        let offset = catalog.bot.utc_offset_minutes;
        let (key, text, button) = match paid {
            BalancePaid::Paid {
                subscription,
                balance_after,
                ..
            } => {
                let price = plan.price(base).unwrap_or(Money::new(0, base));
                let text = self.texts.fmt(
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
            BalancePaid::AlreadyPaid => return Ok(Attempt::Nothing),
            BalancePaid::Short { balance, price } => {
                let text = self.texts.fmt(
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
                    "text": self.texts.get(lang, "btn-balance"),
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
}
