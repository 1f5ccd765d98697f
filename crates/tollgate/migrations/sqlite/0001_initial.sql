-- Tollgate initial schema (SQLite). Keep in step with migrations/postgres/0001_initial.sql.
-- Tables are STRICT so a value of the wrong type is an error, as on PostgreSQL.
-- Instants are INTEGER Unix milliseconds (UTC) bound by the application; no now() defaults.
-- Money is INTEGER minor units with a currency code. Internal ids are identity sequences;
-- identities that leave the system (VPN UUIDs, subscription tokens) are random.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,               -- Telegram user id
    first_name     TEXT NOT NULL,
    last_name      TEXT,
    username       TEXT,
    language_code  TEXT,                             -- as Telegram reported it
    language       TEXT NOT NULL CHECK (language IN ('en', 'ru')),
    referral_code  TEXT NOT NULL UNIQUE,
    referrer_id    INTEGER REFERENCES users (id),
    balance        INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),   -- base currency, minor units
    auto_renew     INTEGER NOT NULL DEFAULT 0 CHECK (auto_renew IN (0, 1)),
    trial_used_at  INTEGER,
    bot_blocked_at INTEGER,                           -- 403 from Telegram; cleared when the user writes
    banned_at      INTEGER,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    CHECK (referrer_id IS NULL OR referrer_id <> id)
) STRICT;
CREATE INDEX users_referrer ON users (referrer_id) WHERE referrer_id IS NOT NULL;
CREATE INDEX users_username ON users (lower(username)) WHERE username IS NOT NULL;

-- One current subscription per user; kind is the entitlement source (docs/reliability.md D8).
CREATE TABLE subscriptions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL UNIQUE REFERENCES users (id),
    kind        TEXT NOT NULL CHECK (kind IN ('trial', 'paid', 'gift', 'admin')),
    plan_id     TEXT,
    starts_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    vpn_uuid    BLOB NOT NULL UNIQUE,
    token       TEXT NOT NULL UNIQUE CHECK (length(token) >= 22),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX subscriptions_expiry ON subscriptions (expires_at) WHERE revoked_at IS NULL;

-- Keys retired by reissue: kept so their tokens stay unique forever and never come back.
CREATE TABLE retired_keys (
    vpn_uuid        BLOB PRIMARY KEY,
    token           TEXT NOT NULL UNIQUE,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id),
    retired_at      INTEGER NOT NULL
) STRICT;

-- An intent to pay, persisted before any invoice or provider call (docs/reliability.md F7).
CREATE TABLE purchases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    kind          TEXT NOT NULL CHECK (kind IN ('plan', 'topup')),
    plan_id       TEXT,
    days          INTEGER CHECK (days IS NULL OR days > 0),
    amount        INTEGER NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL,
    credit_amount INTEGER CHECK (credit_amount IS NULL OR credit_amount > 0),
    provider      TEXT NOT NULL CHECK (provider IN ('stars', 'card', 'crypto', 'balance')),
    promo_code    TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled', 'refunded')),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    paid_at       INTEGER,
    CHECK ((kind = 'plan' AND plan_id IS NOT NULL AND days IS NOT NULL AND credit_amount IS NULL)
        OR (kind = 'topup' AND plan_id IS NULL AND days IS NULL AND credit_amount IS NOT NULL)),
    CHECK ((status IN ('paid', 'refunded')) = (paid_at IS NOT NULL))
) STRICT;
CREATE INDEX purchases_user ON purchases (user_id, created_at);
CREATE INDEX purchases_pending ON purchases (expires_at) WHERE status = 'pending';

-- Money a provider confirmed; unique per provider payment id, so a redelivery does nothing.
CREATE TABLE payments (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    purchase_id         INTEGER REFERENCES purchases (id),
    user_id             INTEGER NOT NULL REFERENCES users (id),
    provider            TEXT NOT NULL CHECK (provider IN ('stars', 'card', 'crypto')),
    provider_payment_id TEXT NOT NULL,
    amount              INTEGER NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('captured', 'refunded')),
    raw                 TEXT,
    created_at          INTEGER NOT NULL,
    refunded_at         INTEGER,
    UNIQUE (provider, provider_payment_id)
) STRICT;
CREATE INDEX payments_user ON payments (user_id, created_at);

-- Every balance change, with a unique reference per cause (e.g. payment:42, renewal:7:1790000000000).
CREATE TABLE balance_ledger (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    delta         INTEGER NOT NULL CHECK (delta <> 0),
    balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
    reason        TEXT NOT NULL CHECK (reason IN ('topup', 'purchase', 'renewal', 'referral_reward',
                                                  'refund', 'withdrawal', 'withdrawal_returned', 'admin')),
    reference     TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX balance_ledger_user ON balance_ledger (user_id, id);

-- Updates as Telegram delivered them; update_id is the dedupe key (docs/reliability.md B2).
CREATE TABLE tg_inbox (
    update_id       INTEGER PRIMARY KEY,
    chat_key        INTEGER,                          -- ordering key: chat id, else user id
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,                   -- raw JSON, unparsed beyond update_id
    status          TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_by      TEXT,
    claimed_until   INTEGER,
    last_error      TEXT,
    received_at     INTEGER NOT NULL,
    finished_at     INTEGER
) STRICT;
CREATE INDEX tg_inbox_due ON tg_inbox (next_attempt_at, update_id) WHERE status = 'pending';
CREATE INDEX tg_inbox_chat ON tg_inbox (chat_key, update_id) WHERE status = 'pending';
CREATE INDEX tg_inbox_finished ON tg_inbox (finished_at) WHERE status <> 'pending';

-- Messages to send, written in the business transaction that caused them (docs/reliability.md G1).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key      TEXT NOT NULL UNIQUE,
    chat_id         INTEGER NOT NULL,
    priority        INTEGER NOT NULL CHECK (priority IN (0, 1, 2)),  -- transactional, reminder, broadcast
    method          TEXT NOT NULL,
    payload         TEXT NOT NULL,                   -- JSON parameters of the Bot API call
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'blocked')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_by      TEXT,
    claimed_until   INTEGER,
    last_error      TEXT,
    message_id      INTEGER,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
) STRICT;
CREATE INDEX outbox_due ON outbox (priority, next_attempt_at, id) WHERE status = 'pending';
-- Per-chat order (the head of each chat's queue) and per-chat spacing look messages up by chat.
CREATE INDEX outbox_chat ON outbox (chat_id, priority, id) WHERE status = 'pending';
CREATE INDEX outbox_finished ON outbox (finished_at) WHERE status <> 'pending';

-- Every send attempt's outcome.
CREATE TABLE outbox_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id   INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempted_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    http_status INTEGER,
    detail      TEXT
) STRICT;
CREATE INDEX outbox_attempts_outbox ON outbox_attempts (outbox_id);

-- Single-holder roles with fencing tokens (docs/design.md §3.5).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    token       INTEGER NOT NULL CHECK (token > 0),
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

-- Runtime flags and settings, changeable without a restart.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by INTEGER
) STRICT;

-- Per (node, key): what should be there and what was last seen (docs/reliability.md E1, E2).
CREATE TABLE node_memberships (
    node            TEXT NOT NULL,
    vpn_uuid        BLOB NOT NULL,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id),
    email           TEXT NOT NULL,
    desired         TEXT NOT NULL CHECK (desired IN ('present', 'absent')),
    observed        TEXT NOT NULL CHECK (observed IN ('present', 'absent', 'unknown')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_by      TEXT,
    claimed_until   INTEGER,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (node, vpn_uuid),
    UNIQUE (node, email)
) STRICT;
CREATE INDEX node_memberships_due ON node_memberships (next_attempt_at) WHERE desired <> observed;
CREATE INDEX node_memberships_subscription ON node_memberships (subscription_id);

-- Who did what, for admin actions and sensitive system transitions.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor    INTEGER,                                 -- admin's Telegram id; NULL = the system
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    details  TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
