-- The notices job no longer calls `notice_items` (migration 0007): a notice item is now one
-- Rust implementation for both backends (crates/tollgate/src/jobs/notices.rs, `notice_item`),
-- written with the APIs of the modules that own the tables, so its rule can change without a
-- migration. The function goes.
DROP FUNCTION IF EXISTS notice_items(
    BIGINT, BIGINT[], UUID[], INTEGER[], BIGINT[], BIGINT[], BIGINT[], BIGINT[],
    INTEGER[], BIGINT[], BOOLEAN[], TEXT[], BIGINT[], SMALLINT[], TEXT[], TEXT[]
);
