-- Operations state for the admin console and the alerts (docs/product.md §5, §7).
--
-- settings.origin: how a flag's row got there: 'seed' (TOLLGATE_FLAG_<NAME> on a database
-- that had no row) or 'operator' (the console or `tollgate flags set`; updated_by is the
-- admin, NULL for the command line). Rows written before this column read as 'operator'.
ALTER TABLE settings ADD COLUMN origin TEXT CHECK (origin IN ('seed', 'operator'));

-- One row per alert condition ever raised (owner: alerts). A condition alerts when raised,
-- at most once an hour while it lasts (last_sent_at), and once more when it is resolved.
CREATE TABLE alert_conditions (
    key          TEXT PRIMARY KEY,
    text         TEXT NOT NULL,
    raised_at    BIGINT NOT NULL,
    last_sent_at BIGINT NOT NULL,
    resolved_at  BIGINT
);

-- Per node: the last reconcile pass and what it repaired, and an operator's request for a
-- pass now (owner: nodes::reconcile).
CREATE TABLE node_reconciles (
    node         TEXT PRIMARY KEY,
    finished_at  BIGINT,
    listed       BIGINT NOT NULL DEFAULT 0,
    restored     BIGINT NOT NULL DEFAULT 0,
    removed      BIGINT NOT NULL DEFAULT 0,
    refused      BIGINT NOT NULL DEFAULT 0,
    requested_at BIGINT
);

-- Nodes taken out of service at runtime by an operator (owner: nodes::switches); a node
-- without a row is as the catalog says.
CREATE TABLE node_switches (
    node       TEXT PRIMARY KEY,
    enabled    BOOLEAN NOT NULL,
    changed_at BIGINT NOT NULL,
    changed_by BIGINT
);
