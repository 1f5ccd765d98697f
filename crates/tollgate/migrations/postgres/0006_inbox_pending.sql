-- The dispatcher claims pending updates in update_id order. Without this index the claim
-- walked the whole table in key order — handled rows kept for INBOX_RETENTION included —
-- on every claim, so its cost grew with the table instead of the backlog.
CREATE INDEX tg_inbox_pending ON tg_inbox (update_id) WHERE status = 'pending';
