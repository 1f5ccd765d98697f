//! The audit log: who did what to whom, when, and what it was before and after.
//!
//! A row is written in the transaction of the action it records, so an action and its row
//! commit together or not at all. The service never updates or deletes a row (the schema's
//! triggers refuse it): the log is the operator's evidence, including against an admin.

use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An admin in Telegram, by id.
    Admin(i64),
    /// `tollgate …` on the command line of a deployment.
    CommandLine,
}

impl Actor {
    /// The admin's Telegram id; None for the command line.
    pub fn admin_id(self) -> Option<i64> {
        match self {
            Actor::Admin(id) => Some(id),
            Actor::CommandLine => None,
        }
    }
}

/// What was done: a closed set, so a screen can name each in both languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    GrantDays,
    Revoke,
    Reissue,
    AdjustBalance,
    Refund,
    ApplyPayment,
    Ban,
    Unban,
    SetFlag,
    SetBanner,
    NodeEnabled,
    NodeDisabled,
    NodeReconcile,
    Redrive,
    Discard,
    CreatePromo,
    DisablePromo,
    SetDiscount,
    WithdrawalPaid,
    WithdrawalRejected,
    BroadcastStart,
    BroadcastCancel,
    /// An unmatched payment marked settled outside the bot (`billing::unmatched`).
    SettleUnmatched,
}

impl AuditAction {
    pub const ALL: [AuditAction; 23] = [
        AuditAction::GrantDays,
        AuditAction::Revoke,
        AuditAction::Reissue,
        AuditAction::AdjustBalance,
        AuditAction::Refund,
        AuditAction::ApplyPayment,
        AuditAction::Ban,
        AuditAction::Unban,
        AuditAction::SetFlag,
        AuditAction::SetBanner,
        AuditAction::NodeEnabled,
        AuditAction::NodeDisabled,
        AuditAction::NodeReconcile,
        AuditAction::Redrive,
        AuditAction::Discard,
        AuditAction::CreatePromo,
        AuditAction::DisablePromo,
        AuditAction::SetDiscount,
        AuditAction::WithdrawalPaid,
        AuditAction::WithdrawalRejected,
        AuditAction::BroadcastStart,
        AuditAction::BroadcastCancel,
        AuditAction::SettleUnmatched,
    ];

    /// The name stored in the log (and the suffix of its text key, `audit-<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            AuditAction::GrantDays => "grant-days",
            AuditAction::Revoke => "revoke",
            AuditAction::Reissue => "reissue",
            AuditAction::AdjustBalance => "adjust-balance",
            AuditAction::Refund => "refund",
            AuditAction::ApplyPayment => "apply-payment",
            AuditAction::Ban => "ban",
            AuditAction::Unban => "unban",
            AuditAction::SetFlag => "set-flag",
            AuditAction::SetBanner => "set-banner",
            AuditAction::NodeEnabled => "node-enabled",
            AuditAction::NodeDisabled => "node-disabled",
            AuditAction::NodeReconcile => "node-reconcile",
            AuditAction::Redrive => "redrive",
            AuditAction::Discard => "discard",
            AuditAction::CreatePromo => "create-promo",
            AuditAction::DisablePromo => "disable-promo",
            AuditAction::SetDiscount => "set-discount",
            AuditAction::WithdrawalPaid => "withdrawal-paid",
            AuditAction::WithdrawalRejected => "withdrawal-rejected",
            AuditAction::BroadcastStart => "broadcast-start",
            AuditAction::BroadcastCancel => "broadcast-cancel",
            AuditAction::SettleUnmatched => "settle-unmatched",
        }
    }

    pub fn parse(name: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: Actor,
    pub action: AuditAction,
    pub target_user: Option<i64>,
    /// What else was acted on: a flag, a node, an update, a payment.
    pub subject: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub reason: Option<String>,
    /// The button press this carries out (its action and the update that drew it), unique:
    /// see [`record`].
    pub request: Option<String>,
}

impl AuditEntry {
    pub fn new(actor: Actor, action: AuditAction) -> AuditEntry {
        AuditEntry {
            actor,
            action,
            target_user: None,
            subject: None,
            before: None,
            after: None,
            reason: None,
            request: None,
        }
    }

    pub fn request(mut self, r: impl Into<String>) -> Self {
        self.request = Some(r.into());
        self
    }

    pub fn user(mut self, id: i64) -> Self {
        self.target_user = Some(id);
        self
    }

    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }

    pub fn change(mut self, before: impl Into<String>, after: impl Into<String>) -> Self {
        self.before = Some(before.into());
        self.after = Some(after.into());
        self
    }

    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = Some(r.into());
        self
    }
}

/// Records `entry` in the caller's transaction, after the action it describes: they commit
/// together or not at all. Returns `false`, recording nothing, when the entry's `request` was
/// recorded before (a second press of one confirmation): the caller then rolls its
/// transaction back, undoing the repeat. On PostgreSQL a concurrent second press waits here
/// for the first to commit and then finds its row; on SQLite the write lock orders them.
pub async fn record(tx: &mut Tx, entry: &AuditEntry, now: Timestamp) -> Result<bool, sqlx::Error> {
    let inserted = on_tx!(tx, c => sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target_user, subject, before, after, reason, request)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (request) DO NOTHING")
        .bind(now).bind(entry.actor.admin_id()).bind(entry.action.name()).bind(entry.target_user)
        .bind(&entry.subject).bind(&entry.before).bind(&entry.after).bind(&entry.reason)
        .bind(&entry.request)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(inserted == 1)
}

/// Which rows a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFilter {
    All,
    /// What this admin did.
    By(i64),
    /// What was done to this user.
    About(i64),
}

/// A recorded action.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub at: Timestamp,
    pub actor: Option<i64>,
    pub action: String,
    pub target_user: Option<i64>,
    pub subject: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub reason: Option<String>,
}

const COLUMNS: &str = "id, at, actor, action, target_user, subject, before, after, reason";

/// The latest `limit` rows matching `filter`, newest first (an index range each).
pub async fn latest(
    db: &Db,
    filter: AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let (condition, value) = match filter {
        AuditFilter::All => ("$1 = $1", 0),
        AuditFilter::By(id) => ("actor = $1", id),
        AuditFilter::About(id) => ("target_user = $1", id),
    };
    let sql =
        format!("SELECT {COLUMNS} FROM audit_log WHERE {condition} ORDER BY id DESC LIMIT $2");
    on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(value).bind(limit).fetch_all(p).await)
}
