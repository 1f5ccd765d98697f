//! The access API: grant/extend, revoke, expire, reissue — each a step of the caller's
//! transaction that records intent — and the reads the bot and the feed need.
//!
//! See the module docs of [`crate::access`] for the rules and how writes are serialized.

use std::time::Duration;

use uuid::Uuid;

use super::keys::{self, FeedToken};
use super::{
    AccessError, ExpireOutcome, Grant, GrantChange, Granted, Kind, Length, MAX_AHEAD_DAYS,
    MAX_GRANT_DAYS, NodeLink, NodeReadiness, ProvisioningState, Subscription,
};
use crate::nodes::membership::{self, KeyState, Presence};
use crate::nodes::{EnabledNodes, Registry, link};
use crate::store::{Db, Failure, Tx, classify};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

const DAY: Duration = Duration::from_secs(86_400);

macro_rules! select_subscription {
    ($where:literal, $lock:literal) => {
        concat!(
            "SELECT id, user_id, kind, plan_id, starts_at, expires_at, revoked_at, vpn_uuid, token, created_at, updated_at
             FROM subscriptions WHERE ",
            $where,
            $lock
        )
    };
}

type Row = (
    i64,
    i64,
    String,
    Option<String>,
    Timestamp,
    Timestamp,
    Option<Timestamp>,
    Uuid,
    String,
    Timestamp,
    Timestamp,
);

fn from_row(r: Row) -> Result<Subscription, AccessError> {
    let kind = Kind::parse(&r.2).ok_or_else(|| {
        // The schema's CHECK makes this unreachable; refuse rather than guess.
        AccessError::Database(sqlx::Error::Decode(
            format!("subscription {} has an unknown kind {:?}", r.0, r.2).into(),
        ))
    })?;
    Ok(Subscription {
        id: r.0,
        user_id: r.1,
        kind,
        plan_id: r.3,
        starts_at: r.4,
        expires_at: r.5,
        revoked_at: r.6,
        vpn_uuid: r.7,
        token: FeedToken::from_stored(r.8),
        created_at: r.9,
        updated_at: r.10,
    })
}

/// A subscription's columns as a `LEFT JOIN`ed `s` gives them, each named `sub_<column>`: for
/// a statement that reads a user's subscription with their other rows in one round trip
/// (on SQLite, one round trip to the writer). Read them as [`Joined`].
pub const JOINED_COLUMNS: &str = "s.id AS sub_id, s.user_id AS sub_user_id, s.kind AS sub_kind, \
     s.plan_id AS sub_plan_id, s.starts_at AS sub_starts_at, s.expires_at AS sub_expires_at, \
     s.revoked_at AS sub_revoked_at, s.vpn_uuid AS sub_vpn_uuid, s.token AS sub_token, \
     s.created_at AS sub_created_at, s.updated_at AS sub_updated_at";

/// Joins the subscription `s` (if any) of the user row `u` to another owner's statement, for
/// [`JOINED_COLUMNS`].
pub const JOIN_SUBSCRIPTION_OF_USER: &str = "LEFT JOIN subscriptions s ON s.user_id = u.id";

/// Auto-renewal candidates: live subscriptions with a plan ending in the window `$1`..=`$2`
/// after the keyset position (`$1`, `$3`) and still after `$5`, at most `$4`, in (expiry, id)
/// order, as `id, user_id, plan_id, expires_at` and the caller's last column; `[$filter]` (SQL
/// text, another owner's fragment) narrows them further.
macro_rules! renewal_candidates_sql {
    ([$($filter:tt)+], [$($last:tt)+]) => {
        concat!(
            "SELECT s.id, s.user_id, s.plan_id, s.expires_at, ",
            $($last)+,
            " FROM subscriptions s
             WHERE s.revoked_at IS NULL AND s.expires_at <= $2
               AND s.expires_at >= $1 AND (s.expires_at > $1 OR s.id > $3) AND s.expires_at > $5
               AND s.plan_id IS NOT NULL AND ",
            $($filter)+,
            " ORDER BY s.expires_at, s.id LIMIT $4"
        )
    };
}
pub(crate) use renewal_candidates_sql;

/// Whether the user row `u` has a subscription `s` matching `$cond` (SQL text on `s`): for
/// another owner's statement that picks users by their access (a broadcast's audience).
macro_rules! user_subscription_sql {
    ($cond:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = u.id AND ",
            $cond,
            ")"
        )
    };
}
pub(crate) use user_subscription_sql;

/// A subscription read through [`JOINED_COLUMNS`]: every column is NULL when there is none.
#[derive(Debug, sqlx::FromRow)]
pub struct Joined {
    sub_id: Option<i64>,
    sub_user_id: Option<i64>,
    sub_kind: Option<String>,
    sub_plan_id: Option<String>,
    sub_starts_at: Option<Timestamp>,
    sub_expires_at: Option<Timestamp>,
    sub_revoked_at: Option<Timestamp>,
    sub_vpn_uuid: Option<Uuid>,
    sub_token: Option<String>,
    sub_created_at: Option<Timestamp>,
    sub_updated_at: Option<Timestamp>,
}

impl Joined {
    /// The subscription, or `None` when the join found none.
    pub fn subscription(self) -> Result<Option<Subscription>, AccessError> {
        let Some(id) = self.sub_id else {
            return Ok(None);
        };
        let row = (|| {
            Some((
                id,
                self.sub_user_id?,
                self.sub_kind?,
                self.sub_plan_id,
                self.sub_starts_at?,
                self.sub_expires_at?,
                self.sub_revoked_at,
                self.sub_vpn_uuid?,
                self.sub_token?,
                self.sub_created_at?,
                self.sub_updated_at?,
            ))
        })()
        .ok_or_else(|| {
            // NOT NULL columns: unreachable while the schema holds.
            AccessError::Database(sqlx::Error::Decode(
                format!("subscription {id} was read with a NULL in a NOT NULL column").into(),
            ))
        })?;
        from_row(row).map(Some)
    }
}

/// Reads a subscription row and locks it until the transaction ends (PostgreSQL); SQLite's
/// `BEGIN IMMEDIATE` already holds the database's write lock.
async fn lock_where_id(tx: &mut Tx, id: i64) -> Result<Subscription, AccessError> {
    locked(tx, id, false)
        .await?
        .ok_or(AccessError::NotFound(id))
}

/// Subscription `id` locked until the transaction ends, or `None` when there is none or
/// another transaction holds it (PostgreSQL's `SKIP LOCKED`: for a job that must not wait on a
/// payment committing now; SQLite's `BEGIN IMMEDIATE` already holds the write lock).
pub async fn lock_unless_held(tx: &mut Tx, id: i64) -> Result<Option<Subscription>, AccessError> {
    locked(tx, id, true).await
}

async fn locked(
    tx: &mut Tx,
    id: i64,
    skip_held: bool,
) -> Result<Option<Subscription>, AccessError> {
    let row: Option<Row> = match tx {
        Tx::Sqlite(t) => {
            sqlx::query_as(select_subscription!("id = $1", ""))
                .bind(id)
                .fetch_optional(&mut *t)
                .await?
        }
        Tx::Postgres(t) if skip_held => {
            sqlx::query_as(select_subscription!("id = $1", " FOR UPDATE SKIP LOCKED"))
                .bind(id)
                .fetch_optional(&mut **t)
                .await?
        }
        Tx::Postgres(t) => {
            sqlx::query_as(select_subscription!("id = $1", " FOR UPDATE"))
                .bind(id)
                .fetch_optional(&mut **t)
                .await?
        }
    };
    row.map(from_row).transpose()
}

fn key_state(s: &Subscription, now: Timestamp) -> KeyState {
    KeyState {
        subscription_id: s.id,
        user_id: s.user_id,
        vpn_uuid: s.vpn_uuid,
        active: s.is_active(now),
    }
}

async fn align_all(
    tx: &mut Tx,
    s: &Subscription,
    nodes: &[&str],
    now: Timestamp,
) -> Result<(), AccessError> {
    Ok(membership::align(tx, &key_state(s, now), &s.node_email(), nodes, now).await?)
}

/// `names` as the `&str`s [`align_all`] takes.
fn refs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// The new expiry of a grant on `current` (None: a first subscription).
fn new_expiry(
    current: Option<&Subscription>,
    length: Length,
    now: Timestamp,
) -> Result<Timestamp, AccessError> {
    let base = match current {
        Some(s) if s.is_active(now) => s.expires_at,
        _ => now,
    };
    let longest = now.plus(DAY * MAX_GRANT_DAYS);
    let expires_at = match length {
        Length::Days(days) if (1..=MAX_GRANT_DAYS).contains(&days) => base.plus(DAY * days),
        Length::Days(days) => {
            return Err(AccessError::InvalidGrant(format!(
                "{days} days is outside 1..={MAX_GRANT_DAYS}"
            )));
        }
        Length::Until(until) if until > now && until <= longest => base.max(until),
        Length::Until(until) => {
            return Err(AccessError::InvalidGrant(format!(
                "until {until} is not between now ({now}) and {MAX_GRANT_DAYS} days ahead"
            )));
        }
    };
    if expires_at > now.plus(DAY * MAX_AHEAD_DAYS) {
        return Err(AccessError::InvalidGrant(format!(
            "the subscription would run until {expires_at}, more than {MAX_AHEAD_DAYS} days ahead"
        )));
    }
    Ok(expires_at)
}

/// A fresh key whose node email differs from every email in `taken`.
fn fresh_key(user_id: i64, taken: &[String]) -> Result<(Uuid, FeedToken), AccessError> {
    loop {
        let uuid = keys::new_vpn_uuid()?;
        if !taken.contains(&keys::node_email(user_id, &uuid)) {
            return Ok((uuid, FeedToken::generate()?));
        }
    }
}

/// Grants access to `user_id` or extends their subscription, in the caller's transaction.
///
/// Creates the subscription with a fresh key, extends it (`max(expires_at, now) + days`,
/// same key), or — when it was revoked — starts a new period with a new key. Then every
/// enabled node is made to want the current key, due now. A trial grant over an active
/// subscription extends it without changing its kind.
pub async fn grant_or_extend(
    tx: &mut Tx,
    nodes: &EnabledNodes,
    user_id: i64,
    grant: &Grant,
    now: Timestamp,
) -> Result<Granted, AccessError> {
    // One statement either creates the subscription or returns the existing one, locked: on
    // PostgreSQL the no-op update takes the row's lock as any update does (a concurrent grant
    // or expiry waits for this transaction), on SQLite the write transaction holds the
    // database. A first grant needs no other round trip; the fresh key tells which of the
    // two happened.
    let expires_at = new_expiry(None, grant.length, now)?;
    let (uuid, token) = fresh_key(user_id, &[])?;
    let row: Row = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO subscriptions (user_id, kind, plan_id, starts_at, expires_at, vpn_uuid, token, created_at, updated_at, notice_stage, notice_from, next_notice_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $4, $4, 0, $4, $4)
         ON CONFLICT (user_id) DO UPDATE SET updated_at = subscriptions.updated_at
         RETURNING id, user_id, kind, plan_id, starts_at, expires_at, revoked_at, vpn_uuid, token, created_at, updated_at"
    ).bind(user_id).bind(grant.kind.as_str()).bind(&grant.plan_id).bind(now).bind(expires_at)
        .bind(uuid).bind(token.expose()).fetch_one(c).await)
    .map_err(|e| match classify(&e) {
        Failure::ForeignKeyViolation => AccessError::UnknownUser(user_id),
        _ => AccessError::Database(e),
    })?;
    let current = from_row(row)?;
    if current.vpn_uuid == uuid {
        align_all(tx, &current, &refs(&nodes.names()), now).await?;
        return Ok(Granted {
            subscription: current,
            change: GrantChange::Created,
        });
    }
    let old = current;
    let expires_at = new_expiry(Some(&old), grant.length, now)?;
    let was_active = old.is_active(now);
    let kind = if was_active && grant.kind == Kind::Trial {
        old.kind
    } else {
        grant.kind
    };
    let plan_id = grant.plan_id.clone().or_else(|| old.plan_id.clone());
    let starts_at = if was_active { old.starts_at } else { now };
    let (change, uuid, token) = if old.revoked_at.is_some() {
        let taken = membership::emails_of(tx, old.id).await?;
        let (uuid, token) = fresh_key(user_id, &taken)?;
        retire_key(tx, &old, now).await?;
        (GrantChange::Reactivated, uuid, token)
    } else if was_active {
        let change = GrantChange::Extended {
            previous_expires_at: old.expires_at,
        };
        (change, old.vpn_uuid, old.token.clone())
    } else {
        let change = GrantChange::Renewed {
            previous_expires_at: old.expires_at,
        };
        (change, old.vpn_uuid, old.token.clone())
    };
    let row: Row = on_tx!(tx, c => sqlx::query_as(
        "UPDATE subscriptions SET kind = $2, plan_id = $3, starts_at = $4, expires_at = $5, revoked_at = NULL,
             vpn_uuid = $6, token = $7, updated_at = $8, notice_stage = 0, notice_from = $8, next_notice_at = $8
         WHERE id = $1
         RETURNING id, user_id, kind, plan_id, starts_at, expires_at, revoked_at, vpn_uuid, token, created_at, updated_at"
    ).bind(old.id).bind(kind.as_str()).bind(&plan_id).bind(starts_at).bind(expires_at).bind(uuid)
        .bind(token.expose()).bind(now).fetch_one(c).await)?;
    let subscription = from_row(row)?;
    align_all(tx, &subscription, &refs(&nodes.names()), now).await?;
    Ok(Granted {
        subscription,
        change,
    })
}

/// What [`import_subscription`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// The subscription was created with the given key.
    Created(Subscription),
    /// The user has a subscription already: nothing changed (a second import run).
    Exists(Subscription),
    /// Another subscription has (or had) this VPN UUID: nothing changed.
    UuidTaken,
}

/// Creates `user_id`'s subscription with a key they already have (`vpn_uuid`, from an earlier
/// system) and the dates it had there, in the caller's transaction, and makes every enabled
/// node want it. A user who has a subscription keeps it unchanged, and a UUID used by
/// another subscription (or retired) is never issued twice. For `tollgate import`.
#[allow(clippy::too_many_arguments)]
pub async fn import_subscription(
    tx: &mut Tx,
    nodes: &EnabledNodes,
    user_id: i64,
    kind: Kind,
    plan_id: Option<&str>,
    starts_at: Timestamp,
    expires_at: Timestamp,
    vpn_uuid: Uuid,
    now: Timestamp,
) -> Result<Imported, AccessError> {
    if expires_at <= now || expires_at > now.plus(DAY * MAX_AHEAD_DAYS) {
        return Err(AccessError::InvalidGrant(format!(
            "an imported subscription must end between now ({now}) and {MAX_AHEAD_DAYS} days ahead, not at {expires_at}"
        )));
    }
    if let Some(existing) = subscription_for_user_in(tx, user_id).await? {
        return Ok(Imported::Exists(existing));
    }
    let taken: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT 1 FROM subscriptions WHERE vpn_uuid = $1
         UNION ALL SELECT 1 FROM retired_keys WHERE vpn_uuid = $1 LIMIT 1"
    ).bind(vpn_uuid).fetch_optional(c).await)?;
    if taken.is_some() {
        return Ok(Imported::UuidTaken);
    }
    let token = FeedToken::generate()?;
    let starts_at = starts_at.min(now);
    let row: Row = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO subscriptions (user_id, kind, plan_id, starts_at, expires_at, vpn_uuid, token, created_at, updated_at, notice_stage, notice_from, next_notice_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 0, $8, $8)
         RETURNING id, user_id, kind, plan_id, starts_at, expires_at, revoked_at, vpn_uuid, token, created_at, updated_at"
    ).bind(user_id).bind(kind.as_str()).bind(plan_id).bind(starts_at).bind(expires_at)
        .bind(vpn_uuid).bind(token.expose()).bind(now).fetch_one(c).await)
    .map_err(|e| match classify(&e) {
        Failure::ForeignKeyViolation => AccessError::UnknownUser(user_id),
        _ => AccessError::Database(e),
    })?;
    let subscription = from_row(row)?;
    align_all(tx, &subscription, &refs(&nodes.names()), now).await?;
    Ok(Imported::Created(subscription))
}

/// Keeps a replaced key's token and UUID forever, so neither can ever be issued again.
async fn retire_key(tx: &mut Tx, old: &Subscription, now: Timestamp) -> Result<(), AccessError> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO retired_keys (vpn_uuid, token, subscription_id, retired_at) VALUES ($1, $2, $3, $4)"
    ).bind(old.vpn_uuid).bind(old.token.expose()).bind(old.id).bind(now).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// Takes access away now (admin action, refund): the key becomes unwanted everywhere and
/// the feed token stops working. Idempotent: revoking a revoked subscription changes nothing.
pub async fn revoke(
    tx: &mut Tx,
    subscription_id: i64,
    now: Timestamp,
) -> Result<Subscription, AccessError> {
    let old = lock_where_id(tx, subscription_id).await?;
    if old.revoked_at.is_some() {
        return Ok(old);
    }
    let row: Row = on_tx!(tx, c => sqlx::query_as(
        "UPDATE subscriptions SET revoked_at = $2, updated_at = $2 WHERE id = $1
         RETURNING id, user_id, kind, plan_id, starts_at, expires_at, revoked_at, vpn_uuid, token, created_at, updated_at"
    ).bind(subscription_id).bind(now).fetch_one(c).await)?;
    let subscription = from_row(row)?;
    align_all(tx, &subscription, &[], now).await?;
    Ok(subscription)
}

/// Takes `days` back (a refund): `expires_at - days`, but never before now. When that ends
/// the period, the key becomes unwanted on every node at once. An expired or revoked
/// subscription is left as it is.
pub async fn shorten(
    tx: &mut Tx,
    subscription_id: i64,
    days: u32,
    now: Timestamp,
) -> Result<Subscription, AccessError> {
    let old = lock_where_id(tx, subscription_id).await?;
    if !old.is_active(now) {
        return Ok(old);
    }
    let expires_at = old.expires_at.minus(DAY * days).max(now);
    let row: Row = on_tx!(tx, c => sqlx::query_as(
        "UPDATE subscriptions SET expires_at = $2, updated_at = $3, notice_stage = 0, notice_from = $3, next_notice_at = $3 WHERE id = $1
         RETURNING id, user_id, kind, plan_id, starts_at, expires_at, revoked_at, vpn_uuid, token, created_at, updated_at"
    ).bind(subscription_id).bind(expires_at).bind(now).fetch_one(c).await)?;
    let subscription = from_row(row)?;
    if !subscription.is_active(now) {
        align_all(tx, &subscription, &[], now).await?;
    }
    Ok(subscription)
}

/// For the expiry worker: once `expires_at` has passed, the key becomes unwanted on every
/// node. Idempotent; does nothing when a renewal moved the date (see the serialization note
/// in [`crate::access`]).
pub async fn expire(
    tx: &mut Tx,
    subscription_id: i64,
    now: Timestamp,
) -> Result<ExpireOutcome, AccessError> {
    let s = lock_where_id(tx, subscription_id).await?;
    if s.revoked_at.is_some() {
        return Ok(ExpireOutcome::Revoked);
    }
    if s.expires_at > now {
        return Ok(ExpireOutcome::StillActive {
            expires_at: s.expires_at,
        });
    }
    let changed_rows =
        membership::align_counting(tx, &key_state(&s, now), &s.node_email(), &[], now).await?;
    Ok(ExpireOutcome::Expired { changed_rows })
}

/// A new key: new UUID and feed token. The old token stops working at once; the old UUID
/// stays on each node until the new one is present there (docs/reliability.md E8: add the new key,
/// commit, then remove the old one — provisioning enforces the order per node).
pub async fn reissue(
    tx: &mut Tx,
    nodes: &EnabledNodes,
    subscription_id: i64,
    now: Timestamp,
) -> Result<Subscription, AccessError> {
    let old = lock_where_id(tx, subscription_id).await?;
    let taken = membership::emails_of(tx, old.id).await?;
    let (uuid, token) = fresh_key(old.user_id, &taken)?;
    retire_key(tx, &old, now).await?;
    let row: Row = on_tx!(tx, c => sqlx::query_as(
        "UPDATE subscriptions SET vpn_uuid = $2, token = $3, updated_at = $4 WHERE id = $1
         RETURNING id, user_id, kind, plan_id, starts_at, expires_at, revoked_at, vpn_uuid, token, created_at, updated_at"
    ).bind(subscription_id).bind(uuid).bind(token.expose()).bind(now).fetch_one(c).await)?;
    let subscription = from_row(row)?;
    align_all(tx, &subscription, &refs(&nodes.names()), now).await?;
    Ok(subscription)
}

/// Reconcile's safety net for one node, in its transaction: every subscription whose rows
/// on `node` disagree with its entitlement now (an active key not wanted there — a new or
/// re-enabled node —, or a wanted key that is expired, revoked or replaced) is locked and
/// aligned. Returns how many subscriptions were fixed (0 in a steady state).
pub async fn align_node(tx: &mut Tx, node: &str, now: Timestamp) -> Result<u64, AccessError> {
    align_node_where(tx, node, now, true).await
}

/// [`align_node`] for the additions only: active keys not yet wanted on `node` become
/// wanted; wanted keys that lost their entitlement are left for a pass that may remove them
/// (reconcile when its removal limit holds removals back; additions are never limited).
pub async fn align_node_additions(
    tx: &mut Tx,
    node: &str,
    now: Timestamp,
) -> Result<u64, AccessError> {
    align_node_where(tx, node, now, false).await
}

async fn align_node_where(
    tx: &mut Tx,
    node: &str,
    now: Timestamp,
    removals: bool,
) -> Result<u64, AccessError> {
    macro_rules! misaligned {
        ($lock:literal) => {
            concat!(
                "SELECT s.id FROM subscriptions s
                 WHERE (s.revoked_at IS NULL AND s.expires_at > $2 AND NOT ",
                membership::node_wants_key_sql!("$1", "s.vpn_uuid"),
                ")
                    OR ($3 AND (s.revoked_at IS NOT NULL OR s.expires_at <= $2) AND ",
                membership::node_wants_subscription_sql!("$1", "s.id", "s.vpn_uuid", "FALSE"),
                ")
                    OR ($3 AND ",
                membership::node_wants_subscription_sql!("$1", "s.id", "s.vpn_uuid", "TRUE"),
                ")
                 ORDER BY s.id",
                $lock
            )
        };
    }
    let ids: Vec<i64> = match tx {
        Tx::Sqlite(t) => {
            sqlx::query_scalar(misaligned!(""))
                .bind(node)
                .bind(now)
                .bind(removals)
                .fetch_all(&mut *t)
                .await?
        }
        Tx::Postgres(t) => {
            sqlx::query_scalar(misaligned!(" FOR UPDATE OF s"))
                .bind(node)
                .bind(now)
                .bind(removals)
                .fetch_all(&mut **t)
                .await?
        }
    };
    for id in &ids {
        // Decided from the row as it is now, under its lock.
        let s = lock_where_id(tx, *id).await?;
        align_all(tx, &s, &[node], now).await?;
    }
    Ok(ids.len() as u64)
}

/// A subscription by id.
/// When this subscription's key was last replaced by a reissue (for rate limiting).
pub async fn last_reissue(db: &Db, subscription_id: i64) -> Result<Option<Timestamp>, AccessError> {
    let at: Option<Timestamp> = on_db!(db, p => sqlx::query_scalar(
        "SELECT MAX(retired_at) FROM retired_keys WHERE subscription_id = $1"
    ).bind(subscription_id).fetch_one(p).await)?;
    Ok(at)
}

pub async fn subscription(db: &Db, id: i64) -> Result<Option<Subscription>, AccessError> {
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(select_subscription!("id = $1", ""))
        .bind(id).fetch_optional(p).await)?;
    row.map(from_row).transpose()
}

/// The user's current subscription, whatever its status.
pub async fn subscription_for_user(
    db: &Db,
    user_id: i64,
) -> Result<Option<Subscription>, AccessError> {
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(select_subscription!("user_id = $1", ""))
        .bind(user_id).fetch_optional(p).await)?;
    row.map(from_row).transpose()
}

/// [`subscription_for_user`] inside a transaction.
pub async fn subscription_for_user_in(
    tx: &mut Tx,
    user_id: i64,
) -> Result<Option<Subscription>, AccessError> {
    let row: Option<Row> = on_tx!(tx, c => sqlx::query_as(select_subscription!("user_id = $1", ""))
        .bind(user_id).fetch_optional(c).await)?;
    row.map(from_row).transpose()
}

/// The subscription whose *current* feed token this is. Revoked subscriptions and retired
/// tokens give `None`, exactly like unknown ones (one lookup, one answer shape).
pub async fn by_token(db: &Db, token: &str) -> Result<Option<Subscription>, AccessError> {
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(
        select_subscription!("token = $1 AND revoked_at IS NULL", "")
    ).bind(token).fetch_optional(p).await)?;
    row.map(from_row).transpose()
}

/// Where the subscription's current key stands on each enabled node.
pub async fn provisioning_state(
    db: &Db,
    subscription: &Subscription,
    nodes: &EnabledNodes,
    now: Timestamp,
) -> Result<ProvisioningState, AccessError> {
    let rows = membership::key_rows(db, &subscription.vpn_uuid).await?;
    let per_node = nodes
        .names()
        .into_iter()
        .map(|name| {
            let readiness = match rows.iter().find(|r| r.node == name) {
                Some(r) if r.observed == Presence::Present && r.desired == Presence::Present => {
                    NodeReadiness::Ready
                }
                Some(r) if r.attempts > 0 => NodeReadiness::Failing {
                    attempts: r.attempts,
                    last_error: r.last_error.clone(),
                },
                _ => NodeReadiness::Pending,
            };
            (name.to_owned(), readiness)
        })
        .collect();
    Ok(ProvisioningState {
        active: subscription.is_active(now),
        nodes: per_node,
    })
}

/// The subscription's `vless://` link on every enabled node, from each node's one link
/// definition.
pub fn share_links(subscription: &Subscription, registry: &Registry) -> Vec<NodeLink> {
    registry
        .enabled_nodes()
        .map(|node| NodeLink {
            node: node.name.clone(),
            name: node.display_name.clone(),
            link: link::share_link(&node.link, &subscription.vpn_uuid, &node.display_name),
        })
        .collect()
}

/// The subscription whose current key is `uuid`.
pub async fn by_vpn_uuid(db: &Db, uuid: Uuid) -> Result<Option<Subscription>, AccessError> {
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(select_subscription!("vpn_uuid = $1", ""))
        .bind(uuid).fetch_optional(p).await)?;
    row.map(from_row).transpose()
}

/// Subscriptions active at `now`, counted by kind (kinds with none left out): one range of
/// `subscriptions_active_kind` per kind, counted in the index alone.
pub async fn active_by_kind(db: &Db, now: Timestamp) -> Result<Vec<(Kind, i64)>, AccessError> {
    const ACTIVE: &str = "SELECT
        (SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions WHERE kind = 'trial' AND revoked_at IS NULL AND expires_at > $1),
        (SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions WHERE kind = 'paid' AND revoked_at IS NULL AND expires_at > $1),
        (SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions WHERE kind = 'gift' AND revoked_at IS NULL AND expires_at > $1),
        (SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions WHERE kind = 'admin' AND revoked_at IS NULL AND expires_at > $1)";
    let (trial, paid, gift, admin): (i64, i64, i64, i64) =
        on_db!(db, p => sqlx::query_as(ACTIVE).bind(now).fetch_one(p).await)?;
    Ok([
        (Kind::Trial, trial),
        (Kind::Paid, paid),
        (Kind::Gift, gift),
        (Kind::Admin, admin),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::access::fixtures::subscription as sub;

    const NOW: i64 = 1_800_000_000_000;
    const D: i64 = 86_400_000;

    #[test]
    fn extension_math_at_the_boundaries() {
        let now = Timestamp::from_millis(NOW);
        let days = |n| Length::Days(n);
        // First grant and long expired: from now.
        assert_eq!(
            new_expiry(None, days(30), now).unwrap().as_millis(),
            NOW + 30 * D
        );
        let long_ago = sub(NOW - 400 * D, false);
        assert_eq!(
            new_expiry(Some(&long_ago), days(30), now)
                .unwrap()
                .as_millis(),
            NOW + 30 * D
        );
        // Expiring exactly now counts as expired (active iff expires_at > now).
        let just = sub(NOW, false);
        assert_eq!(
            new_expiry(Some(&just), days(30), now).unwrap().as_millis(),
            NOW + 30 * D
        );
        // One millisecond left: extended from the old expiry.
        let active = sub(NOW + 1, false);
        assert_eq!(
            new_expiry(Some(&active), days(30), now)
                .unwrap()
                .as_millis(),
            NOW + 1 + 30 * D
        );
        // Revoked: the remaining time is gone.
        let revoked = sub(NOW + 10 * D, true);
        assert_eq!(
            new_expiry(Some(&revoked), days(30), now)
                .unwrap()
                .as_millis(),
            NOW + 30 * D
        );
        // Until: never shortens an active subscription.
        let until = Timestamp::from_millis(NOW + 5 * D);
        assert_eq!(
            new_expiry(Some(&sub(NOW + 9 * D, false)), Length::Until(until), now)
                .unwrap()
                .as_millis(),
            NOW + 9 * D
        );
        assert_eq!(
            new_expiry(Some(&just), Length::Until(until), now).unwrap(),
            until
        );
    }

    #[test]
    fn no_sentinel_dates() {
        let now = Timestamp::from_millis(NOW);
        for bad in [
            Length::Days(0),
            Length::Days(MAX_GRANT_DAYS + 1),
            Length::Until(now),
            Length::Until(now.plus(DAY * (MAX_GRANT_DAYS + 1))),
        ] {
            assert!(
                matches!(
                    new_expiry(None, bad, now),
                    Err(AccessError::InvalidGrant(_))
                ),
                "{bad:?}"
            );
        }
        let far = sub(now.plus(DAY * (MAX_AHEAD_DAYS - 10)).as_millis(), false);
        assert!(matches!(
            new_expiry(Some(&far), Length::Days(30), now),
            Err(AccessError::InvalidGrant(_))
        ));
    }
}
