//! Leases: single-holder roles without a global lock (docs/design.md §3.5).
//!
//! The earlier system ignored a failed single-instance lock and ran every worker twice.
//! A lease is a row `(name, holder, token, expires_at)` that works the same on SQLite and
//! PostgreSQL: whoever holds an unexpired lease owns the role (the poller, webhook
//! registration, a singleton job); holders renew before expiry; anyone may take an expired
//! lease, which bumps the fencing token. Writes done on behalf of a role can check the token
//! inside their transaction ([`is_current`]), so a paused ex-holder cannot act after losing it.
//! Nothing waits on a lease at startup: a process that does not hold it simply does not run
//! that role. A long-running role keeps its lease with a [`Keeper`], so the take / renew /
//! lose / release cycle is written once.

use std::time::Duration;

use tokio::time::Instant;

use crate::store::{Db, Tx};
use crate::time::{SharedClock, Timestamp};
use crate::{on_db, on_tx};

/// A held lease. `token` increases every time the lease changes hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub token: i64,
    pub expires_at: Timestamp,
}

/// Identifies this process as a lease holder: host, pid and a random suffix (a restarted
/// process with a recycled pid must not inherit its predecessor's leases).
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_owned());
    let suffix: u32 = rand::random();
    format!("{host}:{}:{suffix:08x}", std::process::id())
}

const ACQUIRE: &str = "
INSERT INTO leases (name, holder, token, acquired_at, expires_at) VALUES ($1, $2, 1, $3, $4)
ON CONFLICT (name) DO UPDATE SET
    token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > $3
                 THEN leases.token ELSE leases.token + 1 END,
    acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > $3
                 THEN leases.acquired_at ELSE excluded.acquired_at END,
    holder = excluded.holder,
    expires_at = excluded.expires_at
WHERE leases.expires_at <= $3 OR leases.holder = excluded.holder
RETURNING token";

/// Takes the lease if it is free, expired, or already ours (then it is extended and keeps
/// its token). Returns `None` while someone else holds it.
pub async fn acquire(
    db: &Db,
    name: &str,
    holder: &str,
    ttl: Duration,
    now: Timestamp,
) -> Result<Option<Lease>, sqlx::Error> {
    let expires_at = now.plus(ttl);
    let token: Option<i64> = on_db!(db, p => sqlx::query_scalar(ACQUIRE)
        .bind(name).bind(holder).bind(now).bind(expires_at)
        .fetch_optional(p).await)?;
    Ok(token.map(|token| Lease {
        name: name.to_owned(),
        holder: holder.to_owned(),
        token,
        expires_at,
    }))
}

/// Extends a held lease. `None` means it was lost (expired and taken, or released): the
/// caller must stop the role at once.
pub async fn renew(
    db: &Db,
    lease: &Lease,
    ttl: Duration,
    now: Timestamp,
) -> Result<Option<Lease>, sqlx::Error> {
    let expires_at = now.plus(ttl);
    let done = on_db!(db, p => sqlx::query(
        "UPDATE leases SET expires_at = $1
         WHERE name = $2 AND holder = $3 AND token = $4 AND expires_at > $5"
    ).bind(expires_at).bind(&lease.name).bind(&lease.holder).bind(lease.token).bind(now)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok((done == 1).then(|| Lease {
        expires_at,
        ..lease.clone()
    }))
}

/// Gives the lease up so another process can take it at once (on shutdown). The row stays,
/// so the next holder's token is still higher.
pub async fn release(db: &Db, lease: &Lease, now: Timestamp) -> Result<bool, sqlx::Error> {
    let done = on_db!(db, p => sqlx::query(
        "UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND token = $4 AND expires_at > $1"
    ).bind(now).bind(&lease.name).bind(&lease.holder).bind(lease.token).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// The fencing check: inside the caller's transaction, is this lease still the current one?
/// A role's writes call this first and abort when it returns false.
pub async fn is_current(tx: &mut Tx, lease: &Lease, now: Timestamp) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT token FROM leases WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > $4"
    ).bind(&lease.name).bind(&lease.holder).bind(lease.token).bind(now).fetch_optional(c).await)?;
    Ok(found.is_some())
}

/// Who holds `name` right now, if anyone (for status pages and tests).
pub async fn current_holder(
    db: &Db,
    name: &str,
    now: Timestamp,
) -> Result<Option<Lease>, sqlx::Error> {
    let row: Option<(String, i64, Timestamp)> = on_db!(db, p => sqlx::query_as(
        "SELECT holder, token, expires_at FROM leases WHERE name = $1 AND expires_at > $2"
    ).bind(name).bind(now).fetch_optional(p).await)?;
    Ok(row.map(|(holder, token, expires_at)| Lease {
        name: name.to_owned(),
        holder,
        token,
        expires_at,
    }))
}

/// Every lease someone holds right now, as (name, holder): a running service always holds
/// some (its sender's, its poller's or registrar's), so `tollgate restore` reads them to tell
/// whether a database is in use.
pub async fn live(db: &Db, now: Timestamp) -> Result<Vec<(String, String)>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT name, holder FROM leases WHERE expires_at > $1 ORDER BY name"
    ).bind(now).fetch_all(p).await)
}

/// What [`Keeper::keep`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Taken just now: a new term, so whatever the loop remembers from an earlier term (an
    /// offset, a check already done) is stale.
    Gained,
    /// Still ours.
    Held,
    /// Another process holds it (or ours lapsed): do none of the role's work.
    Elsewhere,
}

/// Keeps one named lease for a long-running work loop: takes it when it is free, renews it
/// when due, tells the loop whether it still holds it (and its fencing token), and releases
/// it at shutdown so another process takes the role at once.
///
/// The loop drives it ([`keep`](Keeper::keep) at the top of each turn) instead of a task of
/// its own renewing in the background: the loop then never starts a step on a lease it has
/// not confirmed within `renew_every`, sees a loss before its next step, and paces database
/// errors with the same backoff as its other statements (the keeper returns the error).
pub struct Keeper {
    db: Db,
    clock: SharedClock,
    name: &'static str,
    /// What the holder does, for the log ("sends the outbox").
    duty: &'static str,
    holder: String,
    ttl: Duration,
    renew_every: Duration,
    held: Option<Lease>,
    confirmed_at: Instant,
}

impl Keeper {
    /// A keeper for lease `name`, renewing at a third of `ttl` (see
    /// [`renewing_every`](Keeper::renewing_every)). It holds nothing until the first
    /// [`keep`](Keeper::keep).
    pub fn new(
        db: Db,
        clock: SharedClock,
        name: &'static str,
        duty: &'static str,
        holder: String,
        ttl: Duration,
    ) -> Self {
        Keeper {
            db,
            clock,
            name,
            duty,
            holder,
            ttl,
            renew_every: ttl / 3,
            held: None,
            confirmed_at: Instant::now(),
        }
    }

    /// Renews when this much time has passed since the lease was last confirmed;
    /// `Duration::ZERO` renews on every [`keep`](Keeper::keep) (a role whose next step may
    /// last almost the whole TTL, like a long poll).
    pub fn renewing_every(mut self, every: Duration) -> Self {
        self.renew_every = every;
        self
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The lease while it is held (its `token` fences the role's writes).
    pub fn lease(&self) -> Option<&Lease> {
        self.held.as_ref()
    }

    /// Takes the lease if this process does not hold it, renews it if it is due, and says
    /// where the role stands. On a database error the lease counts as lost (without a
    /// renewal it may lapse) and the error is returned for the caller to back off.
    pub async fn keep(&mut self) -> Result<Standing, sqlx::Error> {
        if self.held.is_some() && self.confirmed_at.elapsed() < self.renew_every {
            return Ok(Standing::Held);
        }
        let now = self.clock.now();
        let result = match &self.held {
            Some(l) => renew(&self.db, l, self.ttl, now).await,
            None => acquire(&self.db, self.name, &self.holder, self.ttl, now).await,
        };
        let was_held = self.held.is_some();
        self.held = None;
        match result? {
            Some(l) => {
                if !was_held {
                    tracing::info!(
                        lease = self.name,
                        token = l.token,
                        "this process now {}",
                        self.duty
                    );
                }
                self.held = Some(l);
                self.confirmed_at = Instant::now();
                Ok(if was_held {
                    Standing::Held
                } else {
                    Standing::Gained
                })
            }
            None => {
                if was_held {
                    tracing::warn!(
                        lease = self.name,
                        "lost the lease; another process {} now",
                        self.duty
                    );
                }
                Ok(Standing::Elsewhere)
            }
        }
    }

    /// Gives the lease up, if held, so another process takes the role at once (shutdown).
    pub async fn release(self) {
        if let Some(l) = &self.held
            && let Err(e) = release(&self.db, l, self.clock.now()).await
        {
            tracing::debug!(lease = self.name, error = %e, "cannot release the lease; it expires on its own");
        }
    }
}
