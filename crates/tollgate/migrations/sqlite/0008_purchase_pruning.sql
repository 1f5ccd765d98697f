-- Unpaid purchases that expired are deleted once they are older than OUTBOX_RETENTION
-- (housekeeping); this index makes finding them a range instead of a scan of every purchase.
CREATE INDEX purchases_expired ON purchases (expires_at) WHERE status = 'expired';
