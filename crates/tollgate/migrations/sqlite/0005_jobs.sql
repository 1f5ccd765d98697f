-- The notice timeline of each subscription's current period (reminders, trial messages,
-- expiry): how many of its events are done and when the next one is due. Every grant,
-- renewal or refund restarts it (stage 0, due now), so a moved date yields the new
-- period's events and never the old ones (docs/reliability.md D1, D3).
ALTER TABLE subscriptions ADD COLUMN notice_stage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN notice_from INTEGER;
ALTER TABLE subscriptions ADD COLUMN next_notice_at INTEGER;
UPDATE subscriptions SET notice_from = updated_at, next_notice_at = updated_at WHERE revoked_at IS NULL;
-- "Anything due?" is an index range, empty when nothing is (no table scan).
CREATE INDEX subscriptions_next_notice ON subscriptions (next_notice_at) WHERE next_notice_at IS NOT NULL;
