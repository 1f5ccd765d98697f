-- Payments a provider reports paid that name no purchase of this bot (an invoice another app
-- made with the same account, a payload that is not ours): there is no payer to credit, so
-- they are kept here, once per provider payment, until an admin settles them — refunded
-- through the provider, or marked settled outside the bot.
CREATE TABLE unmatched_payments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT NOT NULL CHECK (provider IN ('crypto', 'yookassa')),
    external_id TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    raw         TEXT NOT NULL,
    seen_at     INTEGER NOT NULL,
    resolution  TEXT CHECK (resolution IN ('refunded', 'settled')),
    resolved_at INTEGER,
    resolved_by INTEGER,
    UNIQUE (provider, external_id),
    CHECK ((resolution IS NULL) = (resolved_at IS NULL))
) STRICT;
CREATE INDEX unmatched_payments_open ON unmatched_payments (seen_at) WHERE resolution IS NULL;

