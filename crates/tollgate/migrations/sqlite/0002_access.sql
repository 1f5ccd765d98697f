-- Access and nodes (issue 5), SQLite. Keep in step with migrations/postgres/0002_access.sql.
--
-- node_memberships gains:
--  * traffic totals per (node, key): uplink/downlink_bytes are ours and only grow; the
--    agent_* columns hold the agent's last reported totals, which restart at zero whenever
--    the agent (re)creates the user, so each report adds only its difference;
--  * observed_at: when the node's state was last confirmed (by provisioning or reconcile);
--  * retire_after: for a key replaced by a reissue, the successor key that must be present
--    on the same node before this one may be removed (docs/reliability.md E8).
ALTER TABLE node_memberships ADD COLUMN uplink_bytes INTEGER NOT NULL DEFAULT 0 CHECK (uplink_bytes >= 0);
ALTER TABLE node_memberships ADD COLUMN downlink_bytes INTEGER NOT NULL DEFAULT 0 CHECK (downlink_bytes >= 0);
ALTER TABLE node_memberships ADD COLUMN agent_uplink_bytes INTEGER NOT NULL DEFAULT 0 CHECK (agent_uplink_bytes >= 0);
ALTER TABLE node_memberships ADD COLUMN agent_downlink_bytes INTEGER NOT NULL DEFAULT 0 CHECK (agent_downlink_bytes >= 0);
ALTER TABLE node_memberships ADD COLUMN observed_at INTEGER;
ALTER TABLE node_memberships ADD COLUMN retire_after BLOB;

-- Provisioning claims per node, oldest due first; the old index had no node column.
DROP INDEX node_memberships_due;
CREATE INDEX node_memberships_due ON node_memberships (node, next_attempt_at) WHERE desired <> observed;
-- Reissue and reads go from a key to its rows on every node.
CREATE INDEX node_memberships_key ON node_memberships (vpn_uuid);
CREATE INDEX retired_keys_subscription ON retired_keys (subscription_id);
