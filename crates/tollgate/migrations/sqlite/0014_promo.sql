-- Promo codes and personal discounts (docs/product.md §3.9, §4; owner: billing::promo).
--
-- promo_codes: `code` is stored upper-case (codes are compared case-insensitively); `kind`
-- says what `value` is: a percent off (1-99), a fixed amount off in the base currency's minor
-- units, free days, or a balance credit in minor units. `used` counts uses reserved by an
-- unpaid purchase or consumed; it is raised by one conditional UPDATE (never past max_uses)
-- when a use is taken, so concurrent redemptions cannot overshoot. A payment is honoured even
-- after the code ran out or was disabled: consuming a use raises `used` unconditionally.
-- `plans` is a comma-separated list of plan ids the code applies to (NULL: every plan).
CREATE TABLE promo_codes (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    code                TEXT NOT NULL UNIQUE,
    kind                TEXT NOT NULL CHECK (kind IN ('percent', 'fixed', 'days', 'credit')),
    value               INTEGER NOT NULL CHECK (value > 0),
    max_uses            INTEGER CHECK (max_uses IS NULL OR max_uses > 0),
    used                INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    starts_at           INTEGER,
    ends_at             INTEGER,
    first_purchase_only INTEGER NOT NULL DEFAULT 0 CHECK (first_purchase_only IN (0, 1)),
    plans               TEXT,
    disabled_at         INTEGER,
    created_at          INTEGER NOT NULL,
    created_by          INTEGER,
    CHECK (kind <> 'percent' OR value <= 99),
    CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at)
) STRICT;

-- One row per (code, user), ever: 'chosen' (entered, waiting for a purchase), 'reserved' (an
-- unpaid purchase holds it: purchase_id), 'consumed' (paid, or free days / credit applied).
-- A reserved use goes back to 'chosen' when its purchase expires unpaid. At most one code is
-- chosen or reserved per user. purchase_id has no foreign key: unpaid purchases are pruned.
CREATE TABLE promo_uses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code_id     INTEGER NOT NULL REFERENCES promo_codes (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    status      TEXT NOT NULL CHECK (status IN ('chosen', 'reserved', 'consumed')),
    purchase_id INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (code_id, user_id),
    CHECK (status <> 'reserved' OR purchase_id IS NOT NULL),
    CHECK (status <> 'chosen' OR purchase_id IS NULL)
) STRICT;
CREATE UNIQUE INDEX promo_uses_open ON promo_uses (user_id) WHERE status IN ('chosen', 'reserved');
CREATE INDEX promo_uses_purchase ON promo_uses (purchase_id) WHERE status = 'reserved';

-- Users who opened the Promo code screen: their next text message (within 10 minutes) is read
-- as a code.
CREATE TABLE promo_prompts (
    user_id  INTEGER PRIMARY KEY REFERENCES users (id),
    asked_at INTEGER NOT NULL
) STRICT;

-- A percent off every purchase for one user, set by an admin, optionally until a date.
CREATE TABLE personal_discounts (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id),
    percent    INTEGER NOT NULL CHECK (percent BETWEEN 1 AND 99),
    until      INTEGER,
    set_at     INTEGER NOT NULL,
    set_by     INTEGER
) STRICT;

-- The price before discounts, on a purchase sold at a discount (NULL: none), so the
-- pre-checkout gate compares the catalog's current price with it. `promo_code` (from the
-- first schema) names the code whose use the purchase holds.
ALTER TABLE purchases ADD COLUMN list_amount INTEGER CHECK (list_amount IS NULL OR list_amount >= amount);
