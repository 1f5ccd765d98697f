-- The notices job (crates/tollgate/src/jobs/notices.rs) hands PostgreSQL a chunk of due
-- subscriptions in one call instead of one round trip each: the round trips, not the rows,
-- were most of an expiry wave's cost. Each item still runs in its own subtransaction (a
-- savepoint: docs/reliability.md C3), so an item that fails rolls back alone, its error is returned as
-- its outcome, and the chunk's other items commit. Per item, as the job did in one statement
-- before: the timeline moves on only if the row is exactly as the job read it and nobody else
-- holds its lock (a renewal, a refund, another replica: then nothing happens and the row comes
-- back later with fresh values); only if it moved are the keys retired on every node (an
-- expiry: the membership statement of `access::expire`) and the message queued (the columns
-- of `outbox::enqueue`). The items are derived from their rows and redone if a crash loses
-- them, so their commit need not wait for its WAL flush.
CREATE FUNCTION notice_items(
    now_ms      BIGINT,
    sub_ids     BIGINT[],
    sub_keys    UUID[],
    old_stages  INTEGER[],
    old_nexts   BIGINT[],
    old_expiries BIGINT[],
    old_froms   BIGINT[],
    old_revokes BIGINT[],
    new_stages  INTEGER[],
    new_nexts   BIGINT[],
    expiring    BOOLEAN[],
    msg_keys    TEXT[],
    msg_chats   BIGINT[],
    msg_priorities SMALLINT[],
    msg_methods TEXT[],
    msg_payloads TEXT[]
) RETURNS TABLE (item_id BIGINT, outcome TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    i INTEGER;
    moved BIGINT;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR i IN 1 .. COALESCE(array_length(sub_ids, 1), 0) LOOP
        item_id := sub_ids[i];
        BEGIN
            moved := NULL;
            UPDATE subscriptions SET notice_stage = new_stages[i], next_notice_at = new_nexts[i]
            WHERE id = (SELECT s.id FROM subscriptions s
                        WHERE s.id = sub_ids[i] AND s.vpn_uuid = sub_keys[i]
                          AND s.notice_stage = old_stages[i] AND s.next_notice_at = old_nexts[i]
                          AND s.expires_at = old_expiries[i]
                          AND s.notice_from IS NOT DISTINCT FROM old_froms[i]
                          AND s.revoked_at IS NOT DISTINCT FROM old_revokes[i]
                        FOR UPDATE SKIP LOCKED)
            RETURNING id INTO moved;
            IF moved IS NULL THEN
                outcome := 'changed';
            ELSE
                IF expiring[i] THEN
                    UPDATE node_memberships
                    SET desired = 'absent', attempts = 0, next_attempt_at = now_ms, updated_at = now_ms,
                        retire_after = CASE WHEN vpn_uuid = sub_keys[i] THEN retire_after ELSE sub_keys[i] END
                    WHERE subscription_id = sub_ids[i]
                      AND ((vpn_uuid = sub_keys[i] AND desired = 'present')
                           OR (vpn_uuid <> sub_keys[i]
                               AND (desired = 'present'
                                    OR (observed <> 'absent'
                                        AND (retire_after IS NULL OR retire_after <> sub_keys[i])))));
                END IF;
                IF msg_keys[i] IS NOT NULL THEN
                    INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, status,
                                        attempts, next_attempt_at, created_at)
                    VALUES (msg_keys[i], msg_chats[i], msg_priorities[i], msg_methods[i],
                            msg_payloads[i], 'pending', 0, now_ms, now_ms)
                    ON CONFLICT (dedupe_key) DO NOTHING;
                END IF;
                outcome := 'done';
            END IF;
        EXCEPTION WHEN OTHERS THEN
            outcome := 'failed: ' || SQLSTATE || ' ' || SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
