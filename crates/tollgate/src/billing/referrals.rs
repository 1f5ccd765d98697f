//! Referrals (docs/product.md §3.8, §4): who counts as a paying referral, the level that
//! count reaches, the reward, and what the referrer is told.
//!
//! The earlier system counted "paying referrals" three ways that disagreed. Here there is one
//! definition ([`paying`]): the Invite screen, the level it shows and the reward a payment
//! earns all read it, so what the screen says is what the next reward uses. A payment is
//! counted in its own transaction before its reward is worked out, so the payment that makes a
//! referral paying already earns at the level it reaches.

use crate::config::catalog::{ReferralLevel, ReferralSettings};
use crate::domain::money::Money;
use crate::i18n::{Arg, format};
use crate::on_tx;
use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::users::{self, User};

use super::ledger::{self, Entry, Reason};
use super::{BillingError, Context, queue};

/// How many paying referrals `referrer` has. The one definition of a paying referral: a user
/// `referrer` referred who has a captured payment for a purchase (a plan or a top-up through a
/// provider; spending from the balance is no payment) that was not refunded. It is kept as the
/// referral's `users.paying_since`, set in the transaction of their first such payment
/// ([`reward`]) and cleared by the refund that leaves them none ([`refunded`]), so the count is
/// an index range however many referrals there are (BENCHMARKS.md).
pub async fn paying(db: &Db, referrer: i64) -> Result<i64, BillingError> {
    Ok(users::paying_referral_count(db, referrer).await?)
}

/// After a refund of `payer`'s payment: no captured payment left, no longer a paying referral.
pub(super) async fn refunded(tx: &mut Tx, payer: i64) -> Result<(), BillingError> {
    let (left,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM payments
         WHERE user_id = $1 AND status = 'captured' AND purchase_id IS NOT NULL"
    ).bind(payer).fetch_one(c).await)?;
    if left == 0 {
        users::clear_paying(tx, payer).await?;
    }
    Ok(())
}

/// Where a count of paying referrals stands among the catalog's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// The share of a referee's payment the referrer earns now.
    pub percent: u32,
    /// The next level up, if any.
    pub next: Option<ReferralLevel>,
}

/// The level `paying` referrals reach (levels are sorted, the first at 0).
pub fn level(settings: &ReferralSettings, paying: i64) -> Level {
    let reached = |l: &&ReferralLevel| i64::from(l.paying_referrals) <= paying;
    Level {
        percent: settings
            .levels
            .iter()
            .filter(reached)
            .map(|l| l.percent)
            .next_back()
            .unwrap_or(0),
        next: settings.levels.iter().find(|l| !reached(l)).copied(),
    }
}

/// What the Invite screen shows about a referrer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub invited: i64,
    pub paying: i64,
    pub level: Level,
    /// Every referral reward, in minor units of the base currency.
    pub earned: i64,
    /// The latest rewards, newest first.
    pub recent: Vec<Entry>,
}

/// A referrer's summary: four reads through the pool, each an index range.
pub async fn summary(
    db: &Db,
    settings: &ReferralSettings,
    referrer: i64,
    recent: i64,
) -> Result<Summary, BillingError> {
    let invited = users::referral_count(db, referrer).await?;
    let paying = paying(db, referrer).await?;
    let earned = ledger::total(db, referrer, Reason::ReferralReward).await?;
    let recent = ledger::recent_of(db, referrer, Reason::ReferralReward, recent).await?;
    Ok(Summary {
        invited,
        paying,
        level: level(settings, paying),
        earned,
        recent,
    })
}

/// Tells `referrer` that `referee` (registered in this transaction through their link) started
/// the bot; one message per referee.
pub async fn joined(
    tx: &mut Tx,
    ctx: &Context<'_>,
    referrer: i64,
    referee: &User,
    now: Timestamp,
) -> Result<(), BillingError> {
    let who = users::get_in(tx, referrer).await?;
    let lang = ctx.lang(who.as_ref());
    let text = ctx.texts.fmt(
        lang,
        "referral-joined",
        &[("name", Arg::Text(referee.first_name.clone()))],
    );
    queue(
        tx,
        &format!("referral-joined:{}", referee.id),
        referrer,
        text,
        now,
    )
    .await
}

/// docs/product.md §4: a share of money the referee (`payer`) paid in, by the referrer's paying
/// referrals counted with this payment. The referrer is told once per payment; the payer's
/// first payment is told as such (with the count and level it brings), once per payer.
pub(super) async fn reward(
    tx: &mut Tx,
    ctx: &Context<'_>,
    referrer: i64,
    payer: i64,
    value: Option<Money>,
    payment_id: i64,
    now: Timestamp,
) -> Result<(), BillingError> {
    // The payer counts from this payment on (the payment is stored already).
    let first = users::mark_paying(tx, payer, now).await?;
    let paying = users::paying_referral_count_in(tx, referrer).await?;
    let level = level(&ctx.catalog.referral, paying);
    let reward = value
        .map(|v| v.percent_floor(level.percent))
        .filter(|r| r.minor > 0);
    let credited = match reward {
        Some(r) => ledger::change(
            tx,
            referrer,
            r.minor,
            Reason::ReferralReward,
            &format!("referral:{payment_id}"),
            now,
        )
        .await?
        .map(|_| r),
        None => None,
    };
    if !first && credited.is_none() {
        return Ok(());
    }
    let who = users::get_in(tx, referrer).await?;
    let lang = ctx.lang(who.as_ref());
    let amount = |r: Money| Arg::Text(format::money(lang, r));
    if first {
        let mut text = ctx.texts.fmt(
            lang,
            "referral-first-payment",
            &[("paying", paying.into()), ("percent", level.percent.into())],
        );
        if let Some(r) = credited {
            text.push('\n');
            text.push_str(
                &ctx.texts
                    .fmt(lang, "referral-reward", &[("amount", amount(r))]),
            );
        }
        return queue(tx, &format!("referral-paid:{payer}"), referrer, text, now).await;
    }
    let Some(r) = credited else { return Ok(()) };
    let text = ctx
        .texts
        .fmt(lang, "referral-reward", &[("amount", amount(r))]);
    queue(tx, &format!("referral:{payment_id}"), referrer, text, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(levels: &[(u32, u32)]) -> ReferralSettings {
        ReferralSettings {
            levels: levels
                .iter()
                .map(|&(paying_referrals, percent)| ReferralLevel {
                    paying_referrals,
                    percent,
                })
                .collect(),
        }
    }

    #[test]
    fn a_level_is_the_highest_reached_and_names_the_next() {
        let s = settings(&[(0, 10), (25, 25), (50, 45)]);
        let at = |n| {
            let l = level(&s, n);
            (l.percent, l.next.map(|n| (n.paying_referrals, n.percent)))
        };
        assert_eq!(at(0), (10, Some((25, 25))));
        assert_eq!(at(24), (10, Some((25, 25))));
        assert_eq!(at(25), (25, Some((50, 45))));
        assert_eq!(at(49), (25, Some((50, 45))));
        assert_eq!(at(50), (45, None));
        assert_eq!(at(100_000), (45, None));
    }
}
