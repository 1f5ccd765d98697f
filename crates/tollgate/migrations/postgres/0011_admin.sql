-- The admin console (docs/product.md §5).
--
-- audit_log: every admin action, written in the transaction of the action itself, never
-- updated or deleted (the triggers refuse it). `actor` is the admin's Telegram id, or NULL
-- for the command line; `target_user` is the user acted on, if any; `subject` names what
-- else was acted on (a flag, a node, an update, a payment). `request` identifies the press
-- of a confirmation button (its action and the update that drew it): unique, so a double tap
-- or a redelivered press is carried out once. The first schema's audit_log had
-- no writer and so no rows; it is replaced by this shape.
DROP TABLE audit_log;
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       BIGINT,
    action      TEXT NOT NULL,
    target_user BIGINT,
    subject     TEXT,
    before      TEXT,
    after       TEXT,
    reason      TEXT,
    request     TEXT UNIQUE
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target_user ON audit_log (target_user, id) WHERE target_user IS NOT NULL;
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- What an admin's next text message answers (Find, grant days, balance, banner): one pending
-- question per admin, replaced by the next button that asks one.
CREATE TABLE admin_prompts (
    admin_id   BIGINT PRIMARY KEY,
    question   TEXT NOT NULL,
    asked_at   BIGINT NOT NULL
);

-- The console's stats (counts by date, unreachable users, trials, revenue) as index ranges.
CREATE INDEX users_created ON users (created_at);
CREATE INDEX users_unreachable ON users (bot_blocked_at) WHERE bot_blocked_at IS NOT NULL;
CREATE INDEX users_trial ON users (trial_used_at) WHERE trial_used_at IS NOT NULL;
CREATE INDEX payments_captured ON payments (created_at, provider, currency, amount) WHERE status = 'captured';
CREATE INDEX payments_kept ON payments (created_at) WHERE purchase_id IS NULL AND status = 'captured';
CREATE INDEX subscriptions_active_kind ON subscriptions (kind, expires_at) WHERE revoked_at IS NULL;

-- Captured, unrefunded money by provider and currency since the start: the console's all-time
-- revenue without summing every payment. Changed in the transaction of each payment and refund
-- (billing::stats::count), started here from the payments already stored.
CREATE TABLE revenue_totals (
    provider TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount   BIGINT NOT NULL,
    payments BIGINT NOT NULL,
    PRIMARY KEY (provider, currency)
);
INSERT INTO revenue_totals (provider, currency, amount, payments)
SELECT provider, currency, SUM(amount), COUNT(*) FROM payments WHERE status = 'captured'
GROUP BY provider, currency;
