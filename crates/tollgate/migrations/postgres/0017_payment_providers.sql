-- Payment providers outside Telegram (Crypto Pay as 'crypto', YooKassa as 'yookassa'): the
-- providers stay a closed set in the database.
ALTER TABLE purchases DROP CONSTRAINT purchases_provider_check;
ALTER TABLE purchases ADD CONSTRAINT purchases_provider_check
    CHECK (provider IN ('stars', 'card', 'crypto', 'yookassa', 'balance'));
ALTER TABLE payments DROP CONSTRAINT payments_provider_check;
ALTER TABLE payments ADD CONSTRAINT payments_provider_check
    CHECK (provider IN ('stars', 'card', 'crypto', 'yookassa'));

-- What a provider outside Telegram was asked for, one per purchase: the row is written
-- before the call ('creating'), so a retry after a timeout reuses the purchase (and
-- YooKassa's idempotence key, derived from it) instead of making a second invoice; the
-- provider's id and payment page once it answered ('open'); 'paid' once finalized, 'closed'
-- when it ended unpaid. The watcher and the reconciler work the rows due at next_check_at.
CREATE TABLE provider_invoices (
    purchase_id   BIGINT PRIMARY KEY REFERENCES purchases (id) ON DELETE CASCADE,
    provider      TEXT NOT NULL CHECK (provider IN ('crypto', 'yookassa')),
    external_id   TEXT,
    url           TEXT,
    status        TEXT NOT NULL CHECK (status IN ('creating', 'open', 'paid', 'closed')),
    created_at    BIGINT NOT NULL,
    next_check_at BIGINT NOT NULL,
    checks        INTEGER NOT NULL DEFAULT 0 CHECK (checks >= 0),
    UNIQUE (provider, external_id),
    CHECK (status = 'creating' OR status = 'closed' OR external_id IS NOT NULL)
);
CREATE INDEX provider_invoices_due ON provider_invoices (provider, next_check_at)
    WHERE status IN ('creating', 'open');
