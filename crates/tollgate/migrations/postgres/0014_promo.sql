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
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                TEXT NOT NULL UNIQUE,
    kind                TEXT NOT NULL CHECK (kind IN ('percent', 'fixed', 'days', 'credit')),
    value               BIGINT NOT NULL CHECK (value > 0),
    max_uses            BIGINT CHECK (max_uses IS NULL OR max_uses > 0),
    used                BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    starts_at           BIGINT,
    ends_at             BIGINT,
    first_purchase_only BOOLEAN NOT NULL DEFAULT FALSE,
    plans               TEXT,
    disabled_at         BIGINT,
    created_at          BIGINT NOT NULL,
    created_by          BIGINT,
    CHECK (kind <> 'percent' OR value <= 99),
    CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at)
);

-- One row per (code, user), ever: 'chosen' (entered, waiting for a purchase), 'reserved' (an
-- unpaid purchase holds it: purchase_id), 'consumed' (paid, or free days / credit applied).
-- A reserved use goes back to 'chosen' when its purchase expires unpaid. At most one code is
-- chosen or reserved per user. purchase_id has no foreign key: unpaid purchases are pruned.
CREATE TABLE promo_uses (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code_id     BIGINT NOT NULL REFERENCES promo_codes (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    status      TEXT NOT NULL CHECK (status IN ('chosen', 'reserved', 'consumed')),
    purchase_id BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (code_id, user_id),
    CHECK (status <> 'reserved' OR purchase_id IS NOT NULL),
    CHECK (status <> 'chosen' OR purchase_id IS NULL)
);
CREATE UNIQUE INDEX promo_uses_open ON promo_uses (user_id) WHERE status IN ('chosen', 'reserved');
CREATE INDEX promo_uses_purchase ON promo_uses (purchase_id) WHERE status = 'reserved';

-- Users who opened the Promo code screen: their next text message (within 10 minutes) is read
-- as a code.
CREATE TABLE promo_prompts (
    user_id  BIGINT PRIMARY KEY REFERENCES users (id),
    asked_at BIGINT NOT NULL
);

-- A percent off every purchase for one user, set by an admin, optionally until a date.
CREATE TABLE personal_discounts (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id),
    percent    BIGINT NOT NULL CHECK (percent BETWEEN 1 AND 99),
    until      BIGINT,
    set_at     BIGINT NOT NULL,
    set_by     BIGINT
);

-- The price before discounts, on a purchase sold at a discount (NULL: none), so the
-- pre-checkout gate compares the catalog's current price with it. `promo_code` (from the
-- first schema) names the code whose use the purchase holds.
ALTER TABLE purchases ADD COLUMN list_amount BIGINT CHECK (list_amount IS NULL OR list_amount >= amount);
