-- Withdrawals of referral earnings (docs/product.md §3.7, §4), owned by billing::withdrawals.
--
-- A request reserves its amount at once (a ledger debit `withdrawal:<id>` in the request's
-- transaction); an admin then marks it paid (paid out by hand) or rejects it with a reason
-- (a ledger credit `withdrawal-returned:<id>`). Every transition is one conditional UPDATE
-- from 'pending', so two admins, or a double tap, decide a request once. `request` names the
-- user's confirmation press (unique: one request per press); `external_id` a pending request
-- brought over from the earlier bot (unique: a repeated import adds nothing; its amount was
-- debited there, so no ledger row here).
CREATE TABLE withdrawals (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    amount        BIGINT NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL,
    requisites    TEXT NOT NULL CHECK (length(trim(requisites)) > 0),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'rejected')),
    reject_reason TEXT,
    decided_by    BIGINT,
    decided_at    BIGINT,
    created_at    BIGINT NOT NULL,
    request       TEXT UNIQUE,
    external_id   TEXT UNIQUE,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (status <> 'rejected' OR reject_reason IS NOT NULL)
);
CREATE INDEX withdrawals_pending ON withdrawals (created_at, id) WHERE status = 'pending';
CREATE INDEX withdrawals_user ON withdrawals (user_id, id);

-- A referrer's earnings (the sum of their referral rewards) without reading their other rows.
CREATE INDEX balance_ledger_reason ON balance_ledger (user_id, reason, id);
