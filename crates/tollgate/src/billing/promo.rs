//! Promo codes and personal discounts (docs/product.md §3.9, §4): what a user pays for a plan.
//!
//! The price of a plan is computed in one place, [`quote`], from the catalog and the user's
//! [`Offer`] (their personal discount and the code they entered); the Buy and pay screens, the
//! invoice and a payment from the balance all use it, and the purchase row keeps what it gave
//! (`amount`, `list_amount`, `promo_code`), so a payment is honoured at that price whatever
//! happens to the code afterwards.
//!
//! A discount code's use moves through one row per (code, user): entered (`chosen`), held by an
//! unpaid purchase (`reserved`, taken when the purchase is created by one conditional
//! `UPDATE` of the code's counter that never passes `max_uses`), and `consumed` when the
//! purchase is paid. A purchase that expires unpaid gives its use back ([`release`]). Free
//! days and balance credits are consumed at once, when the code is entered.
//!
//! Owns `promo_codes`, `promo_uses`, `personal_discounts` and `promo_prompts`.

use crate::access::{self, Grant, Kind, Subscription};
use crate::admin::audit::{Actor, AuditAction, AuditEntry};
use crate::config::catalog::Plan;
use crate::domain::money::{Currency, Money};
use crate::nodes::EnabledNodes;
use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

use super::BillingError;
use super::ledger::{self, Reason};

/// Longest code; codes are letters, digits, `-` and `_`, compared case-insensitively.
pub const MAX_CODE_LEN: usize = 32;
/// Most plans one code can be limited to.
pub const MAX_PLANS: usize = 16;

/// A promo code as typed, normalized: upper-case ASCII letters, digits, `-`, `_`; 3–32 long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    pub fn parse(text: &str) -> Option<Code> {
        let t = text.trim();
        let ok = (3..=MAX_CODE_LEN).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Code(t.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a code gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benefit {
    /// A percent off the next purchase (1–99).
    Percent(u32),
    /// An amount off the next purchase, in the base currency (other currencies in proportion).
    Fixed(Money),
    /// Days of access, applied when the code is entered.
    Days(u32),
    /// Money on the balance, credited when the code is entered.
    Credit(Money),
}

impl Benefit {
    fn kind(self) -> &'static str {
        match self {
            Benefit::Percent(_) => "percent",
            Benefit::Fixed(_) => "fixed",
            Benefit::Days(_) => "days",
            Benefit::Credit(_) => "credit",
        }
    }

    fn value(self) -> i64 {
        match self {
            Benefit::Percent(p) | Benefit::Days(p) => i64::from(p),
            Benefit::Fixed(m) | Benefit::Credit(m) => m.minor,
        }
    }

    fn from_row(kind: &str, value: i64, base: Currency) -> Option<Benefit> {
        let small = u32::try_from(value).ok();
        Some(match kind {
            "percent" => Benefit::Percent(small.filter(|p| (1..=99).contains(p))?),
            "fixed" => Benefit::Fixed(Money::new(value, base)),
            "days" => Benefit::Days(small.filter(|d| *d > 0)?),
            "credit" => Benefit::Credit(Money::new(value, base)),
            _ => return None,
        })
    }

    /// Whether it changes a price (rather than applying at once).
    pub fn is_discount(self) -> bool {
        matches!(self, Benefit::Percent(_) | Benefit::Fixed(_))
    }
}

/// A code and its rules, as the admin list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoCode {
    pub id: i64,
    pub code: String,
    pub benefit: Benefit,
    pub max_uses: Option<i64>,
    /// Uses reserved by unpaid purchases or consumed.
    pub used: i64,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub first_purchase_only: bool,
    /// The plans it applies to; `None`: every plan.
    pub plans: Option<Vec<String>>,
    pub disabled_at: Option<Timestamp>,
}

impl PromoCode {
    /// Can be entered at `now` (uses aside).
    pub fn live(&self, now: Timestamp) -> bool {
        self.disabled_at.is_none()
            && self.starts_at.is_none_or(|t| t <= now)
            && self.ends_at.is_none_or(|t| t > now)
    }
}

/// A code to create, with every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    pub code: Code,
    pub benefit: Benefit,
    pub max_uses: Option<i64>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub first_purchase_only: bool,
    pub plans: Option<Vec<String>>,
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    id: i64,
    code: String,
    kind: String,
    value: i64,
    max_uses: Option<i64>,
    used: i64,
    starts_at: Option<Timestamp>,
    ends_at: Option<Timestamp>,
    first_purchase_only: bool,
    plans: Option<String>,
    disabled_at: Option<Timestamp>,
}

macro_rules! code_columns {
    () => {
        "c.id, c.code, c.kind, c.value, c.max_uses, c.used, c.starts_at, c.ends_at, c.first_purchase_only, c.plans, c.disabled_at"
    };
}

fn split_plans(plans: Option<String>) -> Option<Vec<String>> {
    plans.map(|p| p.split(',').map(str::to_owned).collect())
}

impl CodeRow {
    fn into_code(self, base: Currency) -> Result<PromoCode, BillingError> {
        let benefit = Benefit::from_row(&self.kind, self.value, base).ok_or_else(|| {
            BillingError::Corrupt(format!("promo code {}: kind and value", self.id))
        })?;
        Ok(PromoCode {
            id: self.id,
            code: self.code,
            benefit,
            max_uses: self.max_uses,
            used: self.used,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            first_purchase_only: self.first_purchase_only,
            plans: split_plans(self.plans),
            disabled_at: self.disabled_at,
        })
    }
}

/// The code a user entered and has not used yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub code_id: i64,
    pub code: String,
    pub benefit: Benefit,
    pub plans: Option<Vec<String>>,
    /// Held by an unpaid purchase already (a new purchase takes the hold over).
    pub reserved: bool,
    /// Not disabled, inside its window, and not refused by first-purchase-only.
    pub usable: bool,
}

impl Chosen {
    fn applies_to(&self, plan_id: &str) -> bool {
        self.usable
            && self
                .plans
                .as_ref()
                .is_none_or(|p| p.iter().any(|id| id == plan_id))
    }
}

/// What a user's prices are computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// The personal discount in force, a percent.
    pub personal: Option<u32>,
    pub chosen: Option<Chosen>,
}

#[derive(sqlx::FromRow)]
struct OfferRow {
    personal: Option<i64>,
    paid_before: bool,
    code_id: Option<i64>,
    status: Option<String>,
    code: Option<String>,
    kind: Option<String>,
    value: Option<i64>,
    plans: Option<String>,
    first_purchase_only: Option<bool>,
    disabled_at: Option<Timestamp>,
    starts_at: Option<Timestamp>,
    ends_at: Option<Timestamp>,
}

const OFFER: &str = "SELECT
    (SELECT d.percent FROM personal_discounts d WHERE d.user_id = $1 AND (d.until IS NULL OR d.until > $2)) AS personal,
    EXISTS (SELECT 1 FROM purchases p WHERE p.user_id = $1 AND p.status IN ('paid', 'refunded')) AS paid_before,
    u.code_id, u.status, c.code, c.kind, c.value, c.plans, c.first_purchase_only, c.disabled_at, c.starts_at, c.ends_at
 FROM (SELECT 1 AS one) me
 LEFT JOIN promo_uses u ON u.user_id = $1 AND u.status IN ('chosen', 'reserved')
 LEFT JOIN promo_codes c ON c.id = u.code_id";

impl OfferRow {
    fn into_offer(self, base: Currency, now: Timestamp) -> Offer {
        let personal = self
            .personal
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| (1..=99).contains(p));
        let chosen = match (self.code_id, self.code, self.kind, self.value) {
            (Some(code_id), Some(code), Some(kind), Some(value)) => {
                Benefit::from_row(&kind, value, base).map(|benefit| Chosen {
                    code_id,
                    code,
                    benefit,
                    plans: split_plans(self.plans),
                    reserved: self.status.as_deref() == Some("reserved"),
                    usable: self.disabled_at.is_none()
                        && self.starts_at.is_none_or(|t| t <= now)
                        && self.ends_at.is_none_or(|t| t > now)
                        && !(self.first_purchase_only.unwrap_or(false) && self.paid_before),
                })
            }
            _ => None,
        };
        Offer { personal, chosen }
    }
}

/// The user's offer, read in the update's transaction.
pub async fn offer_in(
    tx: &mut Tx,
    base: Currency,
    user_id: i64,
    now: Timestamp,
) -> Result<Offer, sqlx::Error> {
    let row: OfferRow =
        on_tx!(tx, c => sqlx::query_as(OFFER).bind(user_id).bind(now).fetch_one(c).await)?;
    Ok(row.into_offer(base, now))
}

/// The user's offer, read through the pool.
pub async fn offer(
    db: &Db,
    base: Currency,
    user_id: i64,
    now: Timestamp,
) -> Result<Offer, sqlx::Error> {
    let row: OfferRow =
        on_db!(db, p => sqlx::query_as(OFFER).bind(user_id).bind(now).fetch_one(p).await)?;
    Ok(row.into_offer(base, now))
}

/// A plan's price for one user in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The catalog's price.
    pub list: Money,
    /// What the user pays (at least one minor unit).
    pub price: Money,
    /// The personal discount applied, a percent.
    pub personal: Option<u32>,
    /// The code applied.
    pub promo: Option<Chosen>,
}

impl Quote {
    pub fn discounted(&self) -> bool {
        self.price != self.list
    }
}

/// `price` less `benefit`; a fixed amount (in the base currency, against `base_price`) is taken
/// from another currency in proportion. Never below one minor unit.
fn less(price: Money, base_price: Option<Money>, benefit: Benefit) -> Money {
    let off = match benefit {
        Benefit::Percent(p) => price.percent_floor(p).minor,
        Benefit::Fixed(m) if m.currency == price.currency => m.minor,
        Benefit::Fixed(m) => match base_price.filter(|b| b.minor > 0) {
            Some(b) => {
                let share = i128::from(price.minor) * i128::from(m.minor) / i128::from(b.minor);
                i64::try_from(share).unwrap_or(i64::MAX)
            }
            None => 0,
        },
        Benefit::Days(_) | Benefit::Credit(_) => 0,
    };
    Money::new(
        price.minor.saturating_sub(off.max(0)).max(1),
        price.currency,
    )
}

/// The one price computation (docs/product.md §4): `plan` in `currency` for a user with
/// `offer`. The best of the personal discount and the code applies; both only when the
/// catalog says they stack (the personal percent first, then the code). `None` when the plan
/// has no price in `currency`.
pub fn quote(
    plan: &Plan,
    currency: Currency,
    base: Currency,
    offer: &Offer,
    stack: bool,
) -> Option<Quote> {
    let list = plan.price(currency)?;
    let base_price = plan.price(base);
    let code = offer
        .chosen
        .as_ref()
        .filter(|c| c.benefit.is_discount() && c.applies_to(&plan.id));
    let personal = offer.personal;
    let with_personal = personal.map(|p| less(list, base_price, Benefit::Percent(p)));
    let with_code = code.map(|c| less(list, base_price, c.benefit));
    let plain = Quote {
        list,
        price: list,
        personal: None,
        promo: None,
    };
    Some(match (with_personal, with_code) {
        (None, None) => plain,
        (Some(price), None) => Quote {
            price,
            personal,
            ..plain
        },
        (None, Some(price)) => Quote {
            price,
            promo: code.cloned(),
            ..plain
        },
        (Some(p), Some(_)) if stack => {
            // The code on the personally discounted price (a fixed amount in proportion).
            let base_after =
                base_price.map(|b| less(b, Some(b), Benefit::Percent(personal.unwrap_or(1))));
            let price = match code {
                Some(c) => less(p, base_after, c.benefit),
                None => p,
            };
            Quote {
                price,
                personal,
                promo: code.cloned(),
                ..plain
            }
        }
        (Some(p), Some(c)) if p.minor <= c.minor => Quote {
            price: p,
            personal,
            ..plain
        },
        (Some(_), Some(c)) => Quote {
            price: c,
            promo: code.cloned(),
            ..plain
        },
    })
}

/// Why an entered code does nothing; each has its own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such code (or not a code at all).
    Unknown,
    /// Its validity window has not begun.
    NotStarted,
    /// Its window is over, or an admin disabled it.
    Expired,
    /// Every use is taken.
    UsedUp,
    /// This user used it before.
    AlreadyUsed,
    /// This user entered it and has not bought yet.
    AlreadyChosen,
    /// First purchase only, and this user has paid before.
    NotApplicable,
}

impl Refusal {
    pub fn text_key(self) -> &'static str {
        match self {
            Refusal::Unknown => "promo-unknown",
            Refusal::NotStarted => "promo-not-started",
            Refusal::Expired => "promo-expired",
            Refusal::UsedUp => "promo-used-up",
            Refusal::AlreadyUsed => "promo-already-used",
            Refusal::AlreadyChosen => "promo-already-chosen",
            Refusal::NotApplicable => "promo-not-applicable",
        }
    }
}

/// What an accepted code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// A discount, waiting for the next purchase.
    Chosen { code: String, benefit: Benefit },
    /// Days of access, granted now.
    Days {
        days: u32,
        subscription: Subscription,
    },
    /// Money on the balance, credited now.
    Credit { amount: Money, balance_after: i64 },
}

#[derive(sqlx::FromRow)]
struct Lookup {
    #[sqlx(flatten)]
    code: CodeRow,
    mine: Option<String>,
    paid_before: bool,
}

/// A user enters a code (the `/promo` command, the Promo screen, a `promo_<CODE>` start link),
/// in the update's transaction: a discount becomes their chosen code (replacing another not
/// yet used, whose hold is given back); free days and credit are applied at once and use the
/// code up for them. A refusal changes nothing.
pub async fn redeem(
    tx: &mut Tx,
    nodes: &EnabledNodes,
    base: Currency,
    user_id: i64,
    text: &str,
    now: Timestamp,
) -> Result<Result<Redeemed, Refusal>, BillingError> {
    let Some(code) = Code::parse(text) else {
        return Ok(Err(Refusal::Unknown));
    };
    const LOOKUP: &str = concat!(
        "SELECT ",
        code_columns!(),
        ", (SELECT u.status FROM promo_uses u WHERE u.code_id = c.id AND u.user_id = $2) AS mine,
         EXISTS (SELECT 1 FROM purchases p WHERE p.user_id = $2 AND p.status IN ('paid', 'refunded')) AS paid_before
         FROM promo_codes c WHERE c.code = $1"
    );
    let found: Option<Lookup> = on_tx!(tx, c => sqlx::query_as(LOOKUP)
        .bind(code.as_str()).bind(user_id).fetch_optional(c).await)?;
    let Some(found) = found else {
        return Ok(Err(Refusal::Unknown));
    };
    let (mine, paid_before) = (found.mine.clone(), found.paid_before);
    let promo = found.code.into_code(base)?;
    if promo.disabled_at.is_some() || promo.ends_at.is_some_and(|t| t <= now) {
        return Ok(Err(Refusal::Expired));
    }
    if promo.starts_at.is_some_and(|t| t > now) {
        return Ok(Err(Refusal::NotStarted));
    }
    match mine.as_deref() {
        Some("consumed") => return Ok(Err(Refusal::AlreadyUsed)),
        Some(_) => return Ok(Err(Refusal::AlreadyChosen)),
        None => {}
    }
    if promo.max_uses.is_some_and(|max| promo.used >= max) {
        return Ok(Err(Refusal::UsedUp));
    }
    if promo.first_purchase_only && paid_before {
        return Ok(Err(Refusal::NotApplicable));
    }
    if promo.benefit.is_discount() {
        // One code waits for the next purchase: another one not used yet gives way, and a
        // hold it had goes back to its code (its invoice is then refused at pre-checkout).
        let gone: Vec<(i64, String)> = on_tx!(tx, c => sqlx::query_as(
            "DELETE FROM promo_uses WHERE user_id = $1 AND status IN ('chosen', 'reserved') RETURNING code_id, status")
            .bind(user_id).fetch_all(c).await)?;
        for (code_id, _) in gone.iter().filter(|(_, s)| s == "reserved") {
            give_back(tx, *code_id).await?;
        }
        insert_use(tx, promo.id, user_id, "chosen", None, now).await?;
        return Ok(Ok(Redeemed::Chosen {
            code: promo.code,
            benefit: promo.benefit,
        }));
    }
    if !take_counted(tx, promo.id, now).await? {
        return Ok(Err(Refusal::UsedUp));
    }
    insert_use(tx, promo.id, user_id, "consumed", None, now).await?;
    Ok(Ok(match promo.benefit {
        Benefit::Days(days) => {
            let grant = Grant::days(Kind::Gift, days, None);
            let granted = access::grant_or_extend(tx, nodes, user_id, &grant, now).await?;
            access::notices::expect(tx, &granted.subscription, now).await?;
            Redeemed::Days {
                days,
                subscription: granted.subscription,
            }
        }
        Benefit::Credit(amount) => {
            // The ledger has no promo reason of its own; the reference names the code.
            let reference = format!("promo:{}:{user_id}", promo.id);
            let after = ledger::change(tx, user_id, amount.minor, Reason::Admin, &reference, now)
                .await?
                .ok_or_else(|| BillingError::Corrupt(format!("{reference} credited twice")))?;
            Redeemed::Credit {
                amount,
                balance_after: after,
            }
        }
        Benefit::Percent(_) | Benefit::Fixed(_) => {
            return Err(BillingError::Corrupt("a discount fell through".into()));
        }
    }))
}

async fn insert_use(
    tx: &mut Tx,
    code_id: i64,
    user_id: i64,
    status: &str,
    purchase_id: Option<i64>,
    now: Timestamp,
) -> Result<(), BillingError> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO promo_uses (code_id, user_id, status, purchase_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)")
        .bind(code_id).bind(user_id).bind(status).bind(purchase_id).bind(now)
        .execute(c).await.map(drop))
    .map_err(BillingError::from_db)?;
    Ok(())
}

/// Counts one more use of a code if it is live and has a use left: one conditional statement,
/// so concurrent takers never pass `max_uses`.
async fn take_counted(tx: &mut Tx, code_id: i64, now: Timestamp) -> Result<bool, BillingError> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE promo_codes SET used = used + 1
         WHERE id = $1 AND disabled_at IS NULL AND (max_uses IS NULL OR used < max_uses)
           AND (starts_at IS NULL OR starts_at <= $2) AND (ends_at IS NULL OR ends_at > $2)")
        .bind(code_id).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// One use of a code given back.
async fn give_back(tx: &mut Tx, code_id: i64) -> Result<(), BillingError> {
    on_tx!(tx, c => sqlx::query("UPDATE promo_codes SET used = used - 1 WHERE id = $1 AND used > 0")
        .bind(code_id).execute(c).await.map(drop))?;
    Ok(())
}

/// Takes a use of `chosen` for a purchase about to be created at its discount: `true` when
/// taken (or already held by an earlier unpaid purchase of this user, whose hold the new one
/// takes over), `false` when the code cannot be used any more (ran out, disabled, window over).
pub async fn take(tx: &mut Tx, chosen: &Chosen, now: Timestamp) -> Result<bool, BillingError> {
    if chosen.reserved {
        return Ok(true);
    }
    take_counted(tx, chosen.code_id, now).await
}

/// Why `take` refused `chosen` (the rare path: one more read).
pub async fn why_not(
    tx: &mut Tx,
    chosen: &Chosen,
    now: Timestamp,
) -> Result<Refusal, BillingError> {
    let row: Option<(Option<Timestamp>, Option<Timestamp>)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT disabled_at, ends_at FROM promo_codes WHERE id = $1")
        .bind(chosen.code_id).fetch_optional(c).await)?;
    Ok(match row {
        Some((None, ends)) if ends.is_none_or(|t| t > now) => Refusal::UsedUp,
        _ => Refusal::Expired,
    })
}

/// The use `take` took, now held by `purchase_id`.
pub async fn hold(
    tx: &mut Tx,
    user_id: i64,
    code_id: i64,
    purchase_id: i64,
    now: Timestamp,
) -> Result<(), BillingError> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE promo_uses SET status = 'reserved', purchase_id = $3, updated_at = $4
         WHERE code_id = $1 AND user_id = $2 AND status IN ('chosen', 'reserved')")
        .bind(code_id).bind(user_id).bind(purchase_id).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n == 1 {
        Ok(())
    } else {
        Err(BillingError::Raced)
    }
}

/// Gives back a use `take` took when the purchase did not happen after all (a balance short
/// of the price).
pub async fn untake(tx: &mut Tx, chosen: &Chosen) -> Result<(), BillingError> {
    if chosen.reserved {
        return Ok(());
    }
    give_back(tx, chosen.code_id).await
}

/// Forgets a chosen code that can no longer be used (the user is told why).
pub async fn forget(tx: &mut Tx, user_id: i64, code_id: i64) -> Result<(), BillingError> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM promo_uses WHERE code_id = $1 AND user_id = $2 AND status = 'chosen'")
        .bind(code_id).bind(user_id).execute(c).await.map(drop))?;
    Ok(())
}

/// The purchase is paid: its code's use is consumed. A use that was given back meanwhile (the
/// purchase had expired) is taken again even past `max_uses`: the price was promised (F1).
/// Nothing when this user's use is consumed already.
pub async fn consume(
    tx: &mut Tx,
    user_id: i64,
    code: &str,
    purchase_id: i64,
    now: Timestamp,
) -> Result<(), BillingError> {
    let held = on_tx!(tx, c => sqlx::query(
        "UPDATE promo_uses SET status = 'consumed', purchase_id = $3, updated_at = $4
         WHERE user_id = $1 AND status = 'reserved' AND code_id = (SELECT id FROM promo_codes WHERE code = $2)")
        .bind(user_id).bind(code).bind(purchase_id).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if held == 1 {
        return Ok(());
    }
    let taken = on_tx!(tx, c => sqlx::query(
        "INSERT INTO promo_uses (code_id, user_id, status, purchase_id, created_at, updated_at)
         SELECT id, $1, 'consumed', $3, $4, $4 FROM promo_codes WHERE code = $2
         ON CONFLICT (code_id, user_id) DO UPDATE SET status = 'consumed',
             purchase_id = excluded.purchase_id, updated_at = excluded.updated_at
         WHERE promo_uses.status = 'chosen'")
        .bind(user_id).bind(code).bind(purchase_id).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if taken == 1 {
        on_tx!(tx, c => sqlx::query("UPDATE promo_codes SET used = used + 1 WHERE code = $1")
            .bind(code).execute(c).await.map(drop))?;
    }
    Ok(())
}

/// Purchase `purchase_id` expired unpaid: the use it held goes back to its code, and the
/// user's code is theirs to use again.
pub async fn release(tx: &mut Tx, purchase_id: i64, now: Timestamp) -> Result<(), BillingError> {
    let released: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "UPDATE promo_uses SET status = 'chosen', purchase_id = NULL, updated_at = $2
         WHERE purchase_id = $1 AND status = 'reserved' RETURNING code_id")
        .bind(purchase_id).bind(now).fetch_optional(c).await)?;
    if let Some((code_id,)) = released {
        give_back(tx, code_id).await?;
    }
    Ok(())
}

/// Whether purchase `purchase_id` still holds its code's use (the pre-checkout gate: an
/// invoice whose hold moved to a newer one, or was given back, is closed).
pub async fn holds(db: &Db, purchase_id: i64) -> Result<bool, sqlx::Error> {
    let n: Option<(i64,)> = on_db!(db, p => sqlx::query_as(
        "SELECT id FROM promo_uses WHERE purchase_id = $1 AND status = 'reserved'")
        .bind(purchase_id).fetch_optional(p).await)?;
    Ok(n.is_some())
}

/// The codes, newest first, with their uses (the admin list).
pub async fn list(db: &Db, base: Currency, limit: i64) -> Result<Vec<PromoCode>, BillingError> {
    const SQL: &str = concat!(
        "SELECT ",
        code_columns!(),
        " FROM promo_codes c ORDER BY c.id DESC LIMIT $1"
    );
    let rows: Vec<CodeRow> = on_db!(db, p => sqlx::query_as(SQL).bind(limit).fetch_all(p).await)?;
    rows.into_iter().map(|r| r.into_code(base)).collect()
}

/// One page of the console's list: codes not disabled first, each part newest first, with
/// how many codes there are in all. Disabling is what an admin looks for, so a code that can
/// still be disabled is never behind pages of disabled ones.
pub async fn page(
    db: &Db,
    base: Currency,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<PromoCode>), BillingError> {
    const SQL: &str = concat!(
        "SELECT ",
        code_columns!(),
        " FROM promo_codes c ORDER BY (c.disabled_at IS NULL) DESC, c.id DESC LIMIT $1 OFFSET $2"
    );
    let (total,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_codes").fetch_one(p).await)?;
    let rows: Vec<CodeRow> =
        on_db!(db, p => sqlx::query_as(SQL).bind(limit).bind(offset).fetch_all(p).await)?;
    let codes = rows
        .into_iter()
        .map(|r| r.into_code(base))
        .collect::<Result<_, _>>()?;
    Ok((total, codes))
}

async fn insert_code(
    tx: &mut Tx,
    new: &NewCode,
    used: i64,
    by: Option<i64>,
    now: Timestamp,
) -> Result<Option<i64>, BillingError> {
    let plans = new.plans.as_ref().map(|p| p.join(","));
    let id: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO promo_codes (code, kind, value, max_uses, used, starts_at, ends_at,
             first_purchase_only, plans, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (code) DO NOTHING RETURNING id")
        .bind(new.code.as_str()).bind(new.benefit.kind()).bind(new.benefit.value())
        .bind(new.max_uses).bind(used).bind(new.starts_at).bind(new.ends_at)
        .bind(new.first_purchase_only).bind(plans).bind(now).bind(by)
        .fetch_optional(c).await)?;
    Ok(id.map(|(id,)| id))
}

/// Creates a code for `actor`: its id and the audit entry the caller records in `tx`, or
/// `None` when the code exists already (nothing written).
pub async fn create(
    tx: &mut Tx,
    new: &NewCode,
    actor: Actor,
    now: Timestamp,
) -> Result<Option<(i64, AuditEntry)>, BillingError> {
    let Some(id) = insert_code(tx, new, 0, actor.admin_id(), now).await? else {
        return Ok(None);
    };
    let entry = AuditEntry::new(actor, AuditAction::CreatePromo)
        .subject(format!("promo {}", new.code.as_str()))
        .change("—", describe(new));
    Ok(Some((id, entry)))
}

/// The rules of `new` in one line, for the audit log.
pub fn describe(new: &NewCode) -> String {
    let mut parts = vec![format!("{} {}", new.benefit.kind(), new.benefit.value())];
    if let Some(m) = new.max_uses {
        parts.push(format!("uses {m}"));
    }
    if let Some(t) = new.starts_at {
        parts.push(format!("from {t}"));
    }
    if let Some(t) = new.ends_at {
        parts.push(format!("until {t}"));
    }
    if new.first_purchase_only {
        parts.push("first purchase only".into());
    }
    if let Some(p) = &new.plans {
        parts.push(format!("plans {}", p.join(",")));
    }
    parts.join(", ")
}

/// For the importer (`tollgate import`): a code with its rules and how many times it was
/// used, created once — a second run finds it by code and changes nothing (`false`).
pub async fn import_code(
    tx: &mut Tx,
    new: &NewCode,
    used: i64,
    disabled: bool,
    now: Timestamp,
) -> Result<bool, BillingError> {
    let Some(id) = insert_code(tx, new, used.max(0), None, now).await? else {
        return Ok(false);
    };
    if disabled {
        on_tx!(tx, c => sqlx::query("UPDATE promo_codes SET disabled_at = $2 WHERE id = $1")
            .bind(id).bind(now).execute(c).await.map(drop))?;
    }
    Ok(true)
}

/// Whether a code exists, live or not (the importer's dry run asks before counting one).
pub async fn exists(db: &Db, code: &Code) -> Result<bool, sqlx::Error> {
    let found: Option<(i64,)> = on_db!(db, p => sqlx::query_as(
        "SELECT id FROM promo_codes WHERE code = $1")
        .bind(code.as_str()).fetch_optional(p).await)?;
    Ok(found.is_some())
}

/// Disables code `id` for `actor`: the audit entry, or `None` when it was disabled already or
/// does not exist. Unpaid purchases holding it keep their price (F1).
pub async fn disable(
    tx: &mut Tx,
    id: i64,
    actor: Actor,
    now: Timestamp,
) -> Result<Option<AuditEntry>, BillingError> {
    let code: Option<(String,)> = on_tx!(tx, c => sqlx::query_as(
        "UPDATE promo_codes SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL RETURNING code")
        .bind(id).bind(now).fetch_optional(c).await)?;
    Ok(code.map(|(code,)| {
        AuditEntry::new(actor, AuditAction::DisablePromo)
            .subject(format!("promo {code}"))
            .change("active", "disabled")
    }))
}

/// How long the Promo code screen waits for a code typed as a plain message.
pub const PROMPT_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// The user opened the Promo code screen: their next text is read as a code.
pub async fn ask_code(tx: &mut Tx, user_id: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO promo_prompts (user_id, asked_at) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET asked_at = excluded.asked_at")
        .bind(user_id).bind(now).execute(c).await.map(drop))
}

/// Whether the user's text is the answer to the Promo code screen (asked within
/// [`PROMPT_TTL`]).
pub async fn awaits_code(tx: &mut Tx, user_id: i64, now: Timestamp) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT user_id FROM promo_prompts WHERE user_id = $1 AND asked_at > $2")
        .bind(user_id).bind(now.minus(PROMPT_TTL)).fetch_optional(c).await)?;
    Ok(row.is_some())
}

/// A code was accepted: the Promo code screen waits no more.
pub async fn answered(tx: &mut Tx, user_id: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query("DELETE FROM promo_prompts WHERE user_id = $1")
        .bind(user_id).execute(c).await.map(drop))
}

/// A user's personal discount: the percent and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Personal {
    pub percent: u32,
    pub until: Option<Timestamp>,
}

/// The personal discount of `user_id`, if one is in force at `now`.
pub async fn personal(
    db: &Db,
    user_id: i64,
    now: Timestamp,
) -> Result<Option<Personal>, sqlx::Error> {
    let row: Option<(i64, Option<Timestamp>)> = on_db!(db, p => sqlx::query_as(
        "SELECT percent, until FROM personal_discounts WHERE user_id = $1 AND (until IS NULL OR until > $2)")
        .bind(user_id).bind(now).fetch_optional(p).await)?;
    Ok(row.and_then(|(p, until)| {
        Some(Personal {
            percent: u32::try_from(p).ok()?,
            until,
        })
    }))
}

/// Sets (or with `None` removes) a user's personal discount for `actor`: the audit entry the
/// caller records in `tx`.
pub async fn set_personal(
    tx: &mut Tx,
    user_id: i64,
    discount: Option<Personal>,
    actor: Actor,
    now: Timestamp,
) -> Result<AuditEntry, BillingError> {
    let before: Option<(i64, Option<Timestamp>)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT percent, until FROM personal_discounts WHERE user_id = $1")
        .bind(user_id).fetch_optional(c).await)?;
    let show = |p: i64, until: Option<Timestamp>| match until {
        Some(t) => format!("{p}% until {t}"),
        None => format!("{p}%"),
    };
    let before = before.map_or("—".to_owned(), |(p, u)| show(p, u));
    let after = match discount {
        Some(d) => {
            on_tx!(tx, c => sqlx::query(
                "INSERT INTO personal_discounts (user_id, percent, until, set_at, set_by) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (user_id) DO UPDATE SET percent = excluded.percent, until = excluded.until,
                     set_at = excluded.set_at, set_by = excluded.set_by")
                .bind(user_id).bind(i64::from(d.percent)).bind(d.until).bind(now).bind(actor.admin_id())
                .execute(c).await.map(drop))?;
            show(i64::from(d.percent), d.until)
        }
        None => {
            on_tx!(tx, c => sqlx::query("DELETE FROM personal_discounts WHERE user_id = $1")
                .bind(user_id).execute(c).await.map(drop))?;
            "—".to_owned()
        }
    };
    Ok(AuditEntry::new(actor, AuditAction::SetDiscount)
        .user(user_id)
        .change(before, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::catalog::Localized;
    use std::collections::BTreeMap;

    fn plan(rub: i64, xtr: i64) -> Plan {
        let mut prices = BTreeMap::new();
        prices.insert(Currency::Rub, Money::new(rub, Currency::Rub));
        prices.insert(Currency::Xtr, Money::new(xtr, Currency::Xtr));
        Plan {
            id: "m1".into(),
            days: 30,
            prices,
            title: Localized(BTreeMap::new()),
            description: Localized(BTreeMap::new()),
        }
    }

    fn chosen(benefit: Benefit) -> Option<Chosen> {
        Some(Chosen {
            code_id: 1,
            code: "X".into(),
            benefit,
            plans: None,
            reserved: false,
            usable: true,
        })
    }

    #[test]
    fn codes_are_normalized_and_strict() {
        assert_eq!(Code::parse(" spring20 ").unwrap().as_str(), "SPRING20");
        for bad in ["", "ab", "a b c", "ÄBC", &"x".repeat(33), "a;b"] {
            assert_eq!(Code::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_best_discount_applies_and_stacking_is_opt_in() {
        let p = plan(14_900, 100);
        let rub = Currency::Rub;
        let q = |offer: &Offer, c, stack| quote(&p, c, rub, offer, stack).unwrap().price.minor;
        let none = Offer::default();
        assert_eq!(q(&none, rub, false), 14_900);
        let pct = Offer {
            personal: None,
            chosen: chosen(Benefit::Percent(20)),
        };
        assert_eq!(q(&pct, rub, false), 11_920);
        assert_eq!(q(&pct, Currency::Xtr, false), 80);
        let fixed = Offer {
            personal: Some(10),
            chosen: chosen(Benefit::Fixed(Money::new(5_000, rub))),
        };
        // Fixed 50 ₽ beats 10 %; in Stars a third of the price (50 of 149).
        assert_eq!(q(&fixed, rub, false), 9_900);
        assert_eq!(q(&fixed, Currency::Xtr, false), 67);
        // Stacked: 10 % first (134.10), then 50 ₽.
        assert_eq!(q(&fixed, rub, true), 8_410);
        let huge = Offer {
            personal: None,
            chosen: chosen(Benefit::Fixed(Money::new(1_000_000, rub))),
        };
        assert_eq!(q(&huge, rub, false), 1, "never free");
        let other_plan = Offer {
            personal: None,
            chosen: Some(Chosen {
                plans: Some(vec!["y1".into()]),
                ..chosen(Benefit::Percent(50)).unwrap()
            }),
        };
        assert_eq!(q(&other_plan, rub, false), 14_900, "not for this plan");
    }
}
