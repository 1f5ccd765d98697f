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
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    amount        INTEGER NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL,
    requisites    TEXT NOT NULL CHECK (length(trim(requisites)) > 0),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'rejected')),
    reject_reason TEXT,
    decided_by    INTEGER,
    decided_at    INTEGER,
    created_at    INTEGER NOT NULL,
    request       TEXT UNIQUE,
    external_id   TEXT UNIQUE,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (status <> 'rejected' OR reject_reason IS NOT NULL)
) STRICT;
CREATE INDEX withdrawals_pending ON withdrawals (created_at, id) WHERE status = 'pending';
CREATE INDEX withdrawals_user ON withdrawals (user_id, id);

-- A referrer's earnings (the sum of their referral rewards) and latest rewards from an index.
CREATE INDEX balance_ledger_reason ON balance_ledger (user_id, reason, id, delta);

-- A referred user counts as a paying referral from their first captured payment for a purchase
-- until a refund leaves them none (billing::referrals sets and clears it in those payments' and
-- refunds' transactions), so a referrer's count of paying referrals is an index range instead
-- of a join over every payment of every referral. Started here from the payments stored.
ALTER TABLE users ADD COLUMN paying_since INTEGER;
UPDATE users SET paying_since = paid.first_at
FROM (SELECT user_id, MIN(created_at) AS first_at FROM payments
      WHERE status = 'captured' AND purchase_id IS NOT NULL GROUP BY user_id) AS paid
WHERE users.id = paid.user_id AND users.referrer_id IS NOT NULL;
CREATE INDEX users_paying_referrals ON users (referrer_id) WHERE paying_since IS NOT NULL;
