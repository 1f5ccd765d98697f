//! Access: who is entitled to a VPN, with which key — the database as the source of truth.
//!
//! The earlier system let a node call decide what the database said (ghost subscriptions,
//! orphan UUIDs, a cleanup that deleted a paid user's key). Here a subscription row decides
//! who should have access (docs/reliability.md E1–E3, E9), and every function of this API is a step
//! of the caller's own business transaction that only records intent: it writes the
//! subscription and, through `nodes::membership`, what each node should hold. Nothing here
//! talks to a node; the provisioning job (`nodes::provisioning`) makes the nodes follow,
//! retrying until they do. The caller commits, then wakes provisioning
//! ([`ProvisioningWake::wake`](crate::nodes::ProvisioningWake::wake)) so access follows
//! within moments.
//!
//! Rules (docs/product.md §4):
//! - one current subscription per user (`subscriptions.user_id` is unique); kind trial / paid
//!   / gift / admin; **active iff `expires_at > now` and not revoked**;
//! - granting to an active or expired subscription extends it with the same key:
//!   `max(expires_at, now) + days`; granting to a revoked one starts a new period with a new
//!   key (a revoked token must never work again, H4);
//! - no sentinel dates for "unlimited" (E9): a grant is 1–3650 days, and no subscription
//!   reaches more than 100 years ahead;
//! - reissue: new UUID and token; the old key is removed from a node only after the new one
//!   is present there (E8); the old token stops working at once.
//!
//! Serialization (E2, "expiry and renewal of one subscription are serialized"): every write
//! starts by locking the subscription row — `SELECT … FOR UPDATE` on PostgreSQL (a grant:
//! its insert's `ON CONFLICT … DO UPDATE`, which creates the row or locks and returns the
//! existing one in one statement), the database write lock of `BEGIN IMMEDIATE` on SQLite —
//! and decides from what it reads under that lock. So an expiry that races a renewal either
//! runs first (and the renewal then re-wants the key) or finds the subscription active and
//! does nothing.

pub mod feed;
pub mod keys;
pub mod notice_timeline;
pub mod notices;
mod subscriptions;

use uuid::Uuid;

use crate::time::Timestamp;

pub use keys::FeedToken;
pub use subscriptions::{
    Imported, JOIN_SUBSCRIPTION_OF_USER, JOINED_COLUMNS, Joined, active_by_kind, align_node,
    align_node_additions, by_token, by_vpn_uuid, expire, grant_or_extend, import_subscription,
    last_reissue, lock_unless_held, provisioning_state, reissue, revoke, share_links, shorten,
    subscription, subscription_for_user, subscription_for_user_in,
};
pub(crate) use subscriptions::{renewal_candidates_sql, user_subscription_sql};

pub use crate::domain::MAX_GRANT_DAYS;
/// No subscription reaches further than this ahead of now (no "forever" by repetition).
pub const MAX_AHEAD_DAYS: u32 = 36_500;

/// Where an entitlement comes from (docs/reliability.md D8): reminders and messages target kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Trial,
    Paid,
    Gift,
    Admin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Trial => "trial",
            Kind::Paid => "paid",
            Kind::Gift => "gift",
            Kind::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        [Kind::Trial, Kind::Paid, Kind::Gift, Kind::Admin]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// How long a grant lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// `max(expires_at, now) + days`.
    Days(u32),
    /// At least until this instant: `max(expires_at, until)` when active, else `until`.
    Until(Timestamp),
}

/// One grant: a purchase, a trial, a gift, an admin's days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub kind: Kind,
    pub length: Length,
    /// The plan sold, for paid grants (kept when a grant has none).
    pub plan_id: Option<String>,
}

impl Grant {
    pub fn days(kind: Kind, days: u32, plan_id: Option<&str>) -> Grant {
        Grant {
            kind,
            length: Length::Days(days),
            plan_id: plan_id.map(str::to_owned),
        }
    }
}

/// A user's subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub user_id: i64,
    pub kind: Kind,
    pub plan_id: Option<String>,
    /// Start of the current continuous period.
    pub starts_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// The current VLESS credential.
    pub vpn_uuid: Uuid,
    /// The current feed token.
    pub token: FeedToken,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whether a subscription gives access now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Expired,
    Revoked,
}

impl Subscription {
    pub fn status(&self, now: Timestamp) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if self.expires_at > now {
            Status::Active
        } else {
            Status::Expired
        }
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.status(now) == Status::Active
    }

    /// The email the current key has on every node.
    pub fn node_email(&self) -> String {
        keys::node_email(self.user_id, &self.vpn_uuid)
    }
}

/// What a grant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantChange {
    /// A first subscription for this user.
    Created,
    /// An active subscription got longer (same key).
    Extended { previous_expires_at: Timestamp },
    /// An expired subscription started a new period (same key).
    Renewed { previous_expires_at: Timestamp },
    /// A revoked subscription started a new period with a new key.
    Reactivated,
}

/// A grant's result: the subscription after it, and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub subscription: Subscription,
    pub change: GrantChange,
}

/// What an expiry did (idempotent; the expiry worker calls it per subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireOutcome {
    /// Past `expires_at`: the key is now unwanted on every node (`changed_rows` memberships
    /// flipped; 0 when a previous call did it already).
    Expired { changed_rows: u64 },
    /// Renewed meanwhile: nothing changed.
    StillActive { expires_at: Timestamp },
    /// Revoked earlier: the revoke took access away already; nothing changed.
    Revoked,
}

/// Whether a subscription's access is live on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeReadiness {
    /// The node holds the current key.
    Ready,
    /// Not yet: provisioning has not tried, or is about to.
    Pending,
    /// Attempts failed; provisioning keeps retrying with backoff.
    Failing {
        attempts: i32,
        last_error: Option<String>,
    },
}

/// Where a subscription's key stands on the enabled nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningState {
    pub active: bool,
    /// Per enabled node, in catalog order.
    pub nodes: Vec<(String, NodeReadiness)>,
}

/// The one-word answer for a user's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisioningSummary {
    /// Live on every enabled node.
    Ready,
    /// Live on some nodes, on its way to the others.
    Partial,
    /// Not live anywhere yet, no failure so far: "ready in a moment".
    Pending,
    /// Not live anywhere and attempts failed: still retrying; worth an admin's look.
    Failing,
    /// The subscription is expired or revoked.
    Inactive,
    /// No node is enabled in the catalog.
    NoNodes,
}

impl ProvisioningState {
    pub fn summary(&self) -> ProvisioningSummary {
        if !self.active {
            return ProvisioningSummary::Inactive;
        }
        if self.nodes.is_empty() {
            return ProvisioningSummary::NoNodes;
        }
        let ready = self
            .nodes
            .iter()
            .filter(|(_, r)| *r == NodeReadiness::Ready)
            .count();
        if ready == self.nodes.len() {
            ProvisioningSummary::Ready
        } else if ready > 0 {
            ProvisioningSummary::Partial
        } else if self
            .nodes
            .iter()
            .any(|(_, r)| matches!(r, NodeReadiness::Failing { .. }))
        {
            ProvisioningSummary::Failing
        } else {
            ProvisioningSummary::Pending
        }
    }
}

/// One node's share link for a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLink {
    pub node: String,
    /// What client apps show: flag and node name.
    pub name: String,
    /// `vless://…`
    pub link: String,
}

/// Why an access operation failed. Nothing was written (the caller's transaction should be
/// rolled back, which dropping it does).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("no subscription with id {0}")]
    NotFound(i64),
    #[error("no user with id {0}: register the user before granting access")]
    UnknownUser(i64),
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
    #[error(transparent)]
    Random(#[from] keys::RandomUnavailable),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A paid subscription of user 7 with the nil key, for unit tests.
    pub(crate) fn subscription(expires_at_ms: i64, revoked: bool) -> Subscription {
        Subscription {
            id: 1,
            user_id: 7,
            kind: Kind::Paid,
            plan_id: None,
            starts_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(expires_at_ms),
            revoked_at: revoked.then(|| Timestamp::from_millis(1)),
            vpn_uuid: Uuid::nil(),
            token: FeedToken::from_stored("t".repeat(32)),
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }
}
