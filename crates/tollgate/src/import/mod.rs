//! `tollgate import`: bringing users over from another bot's database.
//!
//! Why a module of its own, above the domain: an import writes users, balances and
//! subscriptions, and it must write them exactly as the service would — through the owners'
//! APIs (`users::import`, `billing::ledger::change`, `access::import_subscription`), in their
//! transactions, with their rules — so that nothing imported is a row the rest of the code
//! could not have written (`billing::withdrawals::import_pending`, `billing::promo::import_code`
//! and `set_personal` too). What it reads from the other bot's database is its own business.
//! One source today: the earlier bot ([`atcbot`]).

pub mod atcbot;

use std::fmt;

/// A row that was not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Which row: `user 123`, `subscription of 123`, `referrer of 123`.
    pub what: String,
    pub reason: String,
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub dry_run: bool,
    /// Users in the source.
    pub users_read: u64,
    pub users_created: u64,
    /// Users this database had already (an earlier run, or merged): left as they are.
    pub users_present: u64,
    pub balances_opened: u64,
    /// Sum of the opening balances, minor units of the base currency.
    pub balance_total: i64,
    pub subscriptions_created: u64,
    pub subscriptions_present: u64,
    pub referrers_set: u64,
    pub auto_renew_on: u64,
    /// Pending withdrawals brought over (money still owed), and their sum in minor units.
    pub withdrawals_created: u64,
    pub withdrawal_total: i64,
    pub promo_codes_created: u64,
    pub discounts_set: u64,
    pub skipped: Vec<Skip>,
    /// Facts worth knowing that are not skipped rows (disagreeing ledgers, what is not
    /// imported yet).
    pub notes: Vec<String>,
}

impl Report {
    pub(crate) fn skip(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skip {
            what: what.into(),
            reason: reason.into(),
        });
    }

    /// Whether the run changed nothing (a repeated run).
    pub fn changed_nothing(&self) -> bool {
        self.users_created == 0
            && self.balances_opened == 0
            && self.subscriptions_created == 0
            && self.referrers_set == 0
            && self.withdrawals_created == 0
            && self.promo_codes_created == 0
            && self.discounts_set == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would be" } else { "were" };
        for s in &self.skipped {
            writeln!(f, "skipped {}: {}", s.what, s.reason)?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        writeln!(
            f,
            "{} users read; {} {verb} created, {} were here already (left as they are)",
            self.users_read, self.users_created, self.users_present
        )?;
        writeln!(
            f,
            "{} opening balances {verb} recorded ({} minor units in all); {} subscriptions {verb} created with their VPN UUIDs, {} were here already",
            self.balances_opened,
            self.balance_total,
            self.subscriptions_created,
            self.subscriptions_present
        )?;
        writeln!(
            f,
            "{} pending withdrawals {verb} brought over ({} minor units still owed); {} promo codes {verb} created; {} personal discounts {verb} set",
            self.withdrawals_created,
            self.withdrawal_total,
            self.promo_codes_created,
            self.discounts_set
        )?;
        write!(
            f,
            "{} referrers {verb} set; {} users have auto-renew on; {} rows skipped{}",
            self.referrers_set,
            self.auto_renew_on,
            self.skipped.len(),
            if self.dry_run {
                "; dry run: nothing was written"
            } else {
                ""
            }
        )
    }
}
