-- Payment providers outside Telegram (Crypto Pay as 'crypto', YooKassa as 'yookassa'): the
-- providers stay a closed set in the database. SQLite cannot change a CHECK in place, so
-- purchases and payments are rebuilt with the wider one. Foreign keys stay on: the checks
-- of payments' references to purchases wait for the commit while purchases is re-filled.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE purchases_copy AS SELECT * FROM purchases;
CREATE TABLE purchases_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'purchases';
DROP TABLE purchases;
CREATE TABLE purchases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    kind          TEXT NOT NULL CHECK (kind IN ('plan', 'topup')),
    plan_id       TEXT,
    days          INTEGER CHECK (days IS NULL OR days > 0),
    amount        INTEGER NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL,
    credit_amount INTEGER CHECK (credit_amount IS NULL OR credit_amount > 0),
    provider      TEXT NOT NULL CHECK (provider IN ('stars', 'card', 'crypto', 'yookassa', 'balance')),
    promo_code    TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled', 'refunded')),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    paid_at       INTEGER,
    list_amount   INTEGER CHECK (list_amount IS NULL OR list_amount >= amount),
    CHECK ((kind = 'plan' AND plan_id IS NOT NULL AND days IS NOT NULL AND credit_amount IS NULL)
        OR (kind = 'topup' AND plan_id IS NULL AND days IS NULL AND credit_amount IS NOT NULL)),
    CHECK ((status IN ('paid', 'refunded')) = (paid_at IS NOT NULL))
) STRICT;
INSERT INTO purchases (id, user_id, kind, plan_id, days, amount, currency, credit_amount, provider,
                       promo_code, status, created_at, expires_at, paid_at, list_amount)
SELECT id, user_id, kind, plan_id, days, amount, currency, credit_amount, provider,
       promo_code, status, created_at, expires_at, paid_at, list_amount FROM purchases_copy;
-- Ids are never reused: the sequence goes on from where it was, not from the largest id left.
UPDATE sqlite_sequence SET seq = (SELECT seq FROM purchases_sequence)
 WHERE name = 'purchases' AND (SELECT seq FROM purchases_sequence) > seq;
INSERT INTO sqlite_sequence (name, seq)
SELECT 'purchases', seq FROM purchases_sequence
 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'purchases');
DROP TABLE purchases_copy;
DROP TABLE purchases_sequence;
CREATE INDEX purchases_user ON purchases (user_id, created_at);
CREATE INDEX purchases_pending ON purchases (expires_at) WHERE status = 'pending';
CREATE INDEX purchases_expired ON purchases (expires_at) WHERE status = 'expired';

CREATE TABLE payments_new (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    purchase_id         INTEGER REFERENCES purchases (id),
    user_id             INTEGER NOT NULL REFERENCES users (id),
    provider            TEXT NOT NULL CHECK (provider IN ('stars', 'card', 'crypto', 'yookassa')),
    provider_payment_id TEXT NOT NULL,
    amount              INTEGER NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('captured', 'refunded')),
    raw                 TEXT,
    created_at          INTEGER NOT NULL,
    refunded_at         INTEGER,
    invoice_payload     TEXT,
    UNIQUE (provider, provider_payment_id)
) STRICT;
INSERT INTO payments_new (id, purchase_id, user_id, provider, provider_payment_id, amount, currency,
                          status, raw, created_at, refunded_at, invoice_payload)
SELECT id, purchase_id, user_id, provider, provider_payment_id, amount, currency,
       status, raw, created_at, refunded_at, invoice_payload FROM payments;
CREATE TABLE payments_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'payments';
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;
UPDATE sqlite_sequence SET seq = (SELECT seq FROM payments_sequence)
 WHERE name = 'payments' AND (SELECT seq FROM payments_sequence) > seq;
INSERT INTO sqlite_sequence (name, seq)
SELECT 'payments', seq FROM payments_sequence
 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'payments');
DROP TABLE payments_sequence;
CREATE INDEX payments_user ON payments (user_id, created_at);
CREATE INDEX payments_purchase ON payments (purchase_id) WHERE purchase_id IS NOT NULL;
CREATE INDEX payments_captured ON payments (created_at, provider, currency, amount) WHERE status = 'captured';
CREATE INDEX payments_kept ON payments (created_at) WHERE purchase_id IS NULL AND status = 'captured';

-- What a provider outside Telegram was asked for, one per purchase: the row is written
-- before the call ('creating'), so a retry after a timeout reuses the purchase (and
-- YooKassa's idempotence key, derived from it) instead of making a second invoice; the
-- provider's id and payment page once it answered ('open'); 'paid' once finalized, 'closed'
-- when it ended unpaid. The watcher and the reconciler work the rows due at next_check_at.
CREATE TABLE provider_invoices (
    purchase_id   INTEGER PRIMARY KEY REFERENCES purchases (id) ON DELETE CASCADE,
    provider      TEXT NOT NULL CHECK (provider IN ('crypto', 'yookassa')),
    external_id   TEXT,
    url           TEXT,
    status        TEXT NOT NULL CHECK (status IN ('creating', 'open', 'paid', 'closed')),
    created_at    INTEGER NOT NULL,
    next_check_at INTEGER NOT NULL,
    checks        INTEGER NOT NULL DEFAULT 0 CHECK (checks >= 0),
    UNIQUE (provider, external_id),
    CHECK (status = 'creating' OR status = 'closed' OR external_id IS NOT NULL)
) STRICT;
CREATE INDEX provider_invoices_due ON provider_invoices (provider, next_check_at)
    WHERE status IN ('creating', 'open');
