-- Where each provider's transaction list was read up to, so a reconciler resumes there
-- instead of rereading the provider's whole history (docs/reliability.md F3).
CREATE TABLE provider_cursors (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL CHECK (position >= 0),
    updated_at BIGINT NOT NULL
);
-- Payments of a purchase, for refunds and audits.
CREATE INDEX payments_purchase ON payments (purchase_id) WHERE purchase_id IS NOT NULL;
