//! Withdrawals of referral earnings (docs/product.md §3.7, §4).
//!
//! The earlier system could debit a withdrawal twice. Here a request reserves its amount at
//! once — a ledger debit `withdrawal:<id>` in the request's transaction — and each later step
//! is one conditional `UPDATE … WHERE status = 'pending'`: whichever of two admins (or two
//! presses) comes first decides, the other finds the request decided and changes nothing. A
//! rejection returns the amount through the ledger (`withdrawal-returned:<id>`) in the same
//! transaction as its status, so "rejected" and "returned" are never apart.
//!
//! What may be withdrawn: referral earnings (every referral reward on the ledger) less what
//! was requested before and not rejected, and never more than the balance (earnings may have
//! been spent on access).

use crate::domain::money::{Currency, Money};
use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

use super::BillingError;
use super::ledger::{self, Reason};

/// Longest requisites text (a card number, a wallet and a name fit easily).
pub const MAX_REQUISITES_CHARS: usize = 500;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Paid,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Paid => "paid",
            Status::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        [Status::Pending, Status::Paid, Status::Rejected]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub id: i64,
    pub user_id: i64,
    pub amount: Money,
    pub requisites: String,
    pub status: Status,
    pub reject_reason: Option<String>,
    pub decided_by: Option<i64>,
    pub decided_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Brought over from the earlier bot under this id.
    pub external_id: Option<String>,
}

type Row = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<Timestamp>,
    Timestamp,
    Option<String>,
);

const COLUMNS: &str = "id, user_id, amount, currency, requisites, status, reject_reason, decided_by, decided_at, created_at, external_id";

fn from_row(r: Row) -> Result<Withdrawal, BillingError> {
    let (
        id,
        user_id,
        amount,
        currency,
        requisites,
        status,
        reject_reason,
        decided_by,
        decided_at,
        created_at,
        external_id,
    ) = r;
    let currency: Currency = currency
        .parse()
        .map_err(|_| BillingError::Corrupt(format!("withdrawal {id}: currency {currency:?}")))?;
    Ok(Withdrawal {
        id,
        user_id,
        amount: Money::new(amount, currency),
        requisites,
        status: Status::parse(&status)
            .ok_or_else(|| BillingError::Corrupt(format!("withdrawal {id}: status {status:?}")))?,
        reject_reason,
        decided_by,
        decided_at,
        created_at,
        external_id,
    })
}

/// Why a request is refused; nothing is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Below the catalog's `balance.withdrawal_min`.
    BelowMinimum { min: Money },
    /// More than may be withdrawn now.
    AboveAvailable { available: Money },
    /// Requisites empty (or only spaces).
    EmptyRequisites,
    /// Requisites longer than [`MAX_REQUISITES_CHARS`].
    LongRequisites,
}

/// The amount rules, before anything is written: at least `min`, at most `available`.
pub fn check_amount(amount: Money, min: Money, available: Money) -> Result<(), Refusal> {
    if amount.minor < min.minor {
        return Err(Refusal::BelowMinimum { min });
    }
    if amount.minor > available.minor {
        return Err(Refusal::AboveAvailable { available });
    }
    Ok(())
}

/// Characters that show nothing: spaces, and the fillers people send to post a "blank"
/// message (zero-width characters, the Hangul and Braille blanks).
fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'
                ..='\u{200D}'
                    | '\u{2060}'
                    | '\u{FEFF}'
                    | '\u{115F}'
                    | '\u{1160}'
                    | '\u{3164}'
                    | '\u{FFA0}'
                    | '\u{2800}'
        )
}

/// Requisites as typed, trimmed; empty (nothing visible) and overlong ones refused.
pub fn check_requisites(text: &str) -> Result<&str, Refusal> {
    let t = text.trim();
    if t.chars().all(is_blank) {
        return Err(Refusal::EmptyRequisites);
    }
    if t.chars().count() > MAX_REQUISITES_CHARS {
        return Err(Refusal::LongRequisites);
    }
    Ok(t)
}

/// What `user` requested and has not had rejected (requests of the earlier bot aside: they
/// were made from earnings this ledger never saw).
const RESERVED: &str = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM withdrawals
     WHERE user_id = $1 AND status <> 'rejected' AND external_id IS NULL";

/// How much `user` may withdraw now (in the base currency `base`).
pub async fn available(db: &Db, user: i64, base: Currency) -> Result<Money, BillingError> {
    let earned = ledger::total(db, user, Reason::ReferralReward).await?;
    let (reserved,): (i64,) =
        on_db!(db, p => sqlx::query_as(RESERVED).bind(user).fetch_one(p).await)?;
    let balance = crate::users::get(db, user).await?.map_or(0, |u| u.balance);
    Ok(Money::new((earned - reserved).min(balance).max(0), base))
}

/// The outcome of [`request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Reserved: the amount is debited and the request waits for an admin.
    Created(Withdrawal),
    /// This press (`request`) made a request before: nothing more happened.
    AlreadyRequested,
    /// Refused. The caller rolls the transaction back: the debit may have been written.
    Refused(Refusal),
}

/// A new request, in the caller's transaction: the row, and its amount debited at once.
/// `press` names the confirmation press (unique: a repeated press finds its request). The
/// rules are checked again here, after the debit has locked the user's balance, so two
/// requests racing cannot both take the same earnings.
pub async fn request(
    tx: &mut Tx,
    user: i64,
    amount: Money,
    requisites: &str,
    min: Money,
    press: &str,
    now: Timestamp,
) -> Result<Requested, BillingError> {
    let requisites = match check_requisites(requisites) {
        Ok(r) => r,
        Err(refusal) => return Ok(Requested::Refused(refusal)),
    };
    if amount.minor < min.minor {
        return Ok(Requested::Refused(Refusal::BelowMinimum { min }));
    }
    let select = format!(
        "INSERT INTO withdrawals (user_id, amount, currency, requisites, status, created_at, request)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6)
         ON CONFLICT (request) DO NOTHING
         RETURNING {COLUMNS}"
    );
    let row: Option<Row> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(user).bind(amount.minor).bind(amount.currency.code()).bind(requisites)
        .bind(now).bind(press).fetch_optional(c).await)
    .map_err(BillingError::from_db)?;
    let Some(row) = row else {
        return Ok(Requested::AlreadyRequested);
    };
    let created = from_row(row)?;
    let reference = format!("withdrawal:{}", created.id);
    let Some(balance_after) =
        ledger::change(tx, user, -amount.minor, Reason::Withdrawal, &reference, now).await?
    else {
        let balance = ledger::balance_in(tx, user).await?;
        let earned = ledger::total_in(tx, user, Reason::ReferralReward).await?;
        let reserved = reserved_in(tx, user, created.id).await?;
        let available = (earned - reserved).min(balance).max(0);
        return Ok(Requested::Refused(Refusal::AboveAvailable {
            available: Money::new(available, amount.currency),
        }));
    };
    let earned = ledger::total_in(tx, user, Reason::ReferralReward).await?;
    let reserved = reserved_in(tx, user, created.id).await?;
    if amount.minor > earned - reserved {
        let available = (earned - reserved).min(balance_after + amount.minor).max(0);
        return Ok(Requested::Refused(Refusal::AboveAvailable {
            available: Money::new(available, amount.currency),
        }));
    }
    tracing::info!(
        withdrawal = created.id,
        user,
        amount = amount.minor,
        "withdrawal requested"
    );
    Ok(Requested::Created(created))
}

/// What `user` reserved before request `except`.
async fn reserved_in(tx: &mut Tx, user: i64, except: i64) -> Result<i64, BillingError> {
    let sql = format!("{RESERVED} AND id <> $2");
    let (n,): (i64,) = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user).bind(except).fetch_one(c).await)?;
    Ok(n)
}

/// The outcome of an admin's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// This decision made it: the request as it is now.
    Done(Withdrawal),
    /// Decided before (another admin, a second press): nothing changed. The request as it is.
    AlreadyDecided(Withdrawal),
    NotFound,
}

/// Marks request `id` paid (the admin paid it out by hand), if it is pending.
pub async fn mark_paid(
    tx: &mut Tx,
    id: i64,
    admin: i64,
    now: Timestamp,
) -> Result<Decided, BillingError> {
    decide(tx, id, Status::Paid, admin, None, now).await
}

/// Rejects request `id` with `reason`, if it is pending, and returns its amount to the
/// balance through the ledger (a request of the earlier bot too: its amount was debited there).
pub async fn reject(
    tx: &mut Tx,
    id: i64,
    admin: i64,
    reason: &str,
    now: Timestamp,
) -> Result<Decided, BillingError> {
    let decided = decide(tx, id, Status::Rejected, admin, Some(reason), now).await?;
    if let Decided::Done(w) = &decided {
        ledger::change(
            tx,
            w.user_id,
            w.amount.minor,
            Reason::WithdrawalReturned,
            &format!("withdrawal-returned:{id}"),
            now,
        )
        .await?
        .ok_or_else(|| BillingError::Corrupt(format!("withdrawal {id}: a credit refused")))?;
    }
    Ok(decided)
}

async fn decide(
    tx: &mut Tx,
    id: i64,
    to: Status,
    admin: i64,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<Decided, BillingError> {
    let update = format!(
        "UPDATE withdrawals SET status = $2, decided_by = $3, decided_at = $4, reject_reason = $5
         WHERE id = $1 AND status = 'pending'
         RETURNING {COLUMNS}"
    );
    let row: Option<Row> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(update))
        .bind(id).bind(to.as_str()).bind(admin).bind(now).bind(reason)
        .fetch_optional(c).await)?;
    if let Some(row) = row {
        let w = from_row(row)?;
        tracing::info!(
            withdrawal = id,
            admin,
            status = to.as_str(),
            "withdrawal decided"
        );
        return Ok(Decided::Done(w));
    }
    let select = format!("SELECT {COLUMNS} FROM withdrawals WHERE id = $1");
    let row: Option<Row> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(id).fetch_optional(c).await)?;
    Ok(match row {
        Some(row) => Decided::AlreadyDecided(from_row(row)?),
        None => Decided::NotFound,
    })
}

/// One request.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Withdrawal>, BillingError> {
    let select = format!("SELECT {COLUMNS} FROM withdrawals WHERE id = $1");
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(id).fetch_optional(p).await)?;
    row.map(from_row).transpose()
}

/// The request made by the confirmation press `press`, if any.
pub async fn by_press(db: &Db, press: &str) -> Result<Option<Withdrawal>, BillingError> {
    let select = format!("SELECT {COLUMNS} FROM withdrawals WHERE request = $1");
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(press).fetch_optional(p).await)?;
    row.map(from_row).transpose()
}

/// How many requests are pending, and the oldest `limit` of them.
pub async fn pending(db: &Db, limit: i64) -> Result<(i64, Vec<Withdrawal>), BillingError> {
    let (count,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM withdrawals WHERE status = 'pending'"
    ).fetch_one(p).await)?;
    let select = format!(
        "SELECT {COLUMNS} FROM withdrawals WHERE status = 'pending' ORDER BY created_at, id LIMIT $1"
    );
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(limit).fetch_all(p).await)?;
    Ok((
        count,
        rows.into_iter().map(from_row).collect::<Result<_, _>>()?,
    ))
}

/// A user's latest `limit` requests, newest first.
pub async fn of_user(db: &Db, user: i64, limit: i64) -> Result<Vec<Withdrawal>, BillingError> {
    let select =
        format!("SELECT {COLUMNS} FROM withdrawals WHERE user_id = $1 ORDER BY id DESC LIMIT $2");
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(user).bind(limit).fetch_all(p).await)?;
    rows.into_iter().map(from_row).collect()
}

/// A pending request of the earlier bot, for the importer (issue 26): its amount was debited
/// there (and the balance brought over after it), so no ledger row is written here; an admin
/// decides it like any other, and a rejection returns the amount. Idempotent by
/// `external_id`: returns false when that request is here already.
pub async fn import_pending(
    tx: &mut Tx,
    user: i64,
    amount: Money,
    requisites: &str,
    created_at: Timestamp,
    external_id: &str,
) -> Result<bool, BillingError> {
    if amount.minor <= 0 {
        return Err(BillingError::Corrupt(format!(
            "imported withdrawal {external_id}: amount {}",
            amount.minor
        )));
    }
    // The earlier bot kept requests without requisites; the admin then asks the user.
    let requisites = match requisites.trim() {
        "" => "—",
        r => r,
    };
    let n = on_tx!(tx, c => sqlx::query(
        "INSERT INTO withdrawals (user_id, amount, currency, requisites, status, created_at, external_id)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6)
         ON CONFLICT (external_id) DO NOTHING"
    ).bind(user).bind(amount.minor).bind(amount.currency.code()).bind(requisites)
        .bind(created_at).bind(external_id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_requisites_are_checked_before_anything_is_written() {
        let rub = |m| Money::new(m, Currency::Rub);
        assert_eq!(check_amount(rub(50_000), rub(50_000), rub(60_000)), Ok(()));
        assert_eq!(
            check_amount(rub(49_999), rub(50_000), rub(60_000)),
            Err(Refusal::BelowMinimum { min: rub(50_000) })
        );
        assert_eq!(
            check_amount(rub(60_001), rub(50_000), rub(60_000)),
            Err(Refusal::AboveAvailable {
                available: rub(60_000)
            })
        );
        assert_eq!(check_requisites("  card 1234  "), Ok("card 1234"));
        for blank in [" \n\t ", "", "\u{3164}", " \u{200B}\u{2800} "] {
            assert_eq!(
                check_requisites(blank),
                Err(Refusal::EmptyRequisites),
                "{blank:?}"
            );
        }
        assert_eq!(
            check_requisites(&"x".repeat(MAX_REQUISITES_CHARS + 1)),
            Err(Refusal::LongRequisites)
        );
    }
}
