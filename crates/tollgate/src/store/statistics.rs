//! PostgreSQL's planner statistics for the queue tables, kept in step with their backlog.
//!
//! The queue tables (`tg_inbox`, `outbox`, `node_memberships`) swing from nearly no pending
//! rows to a hundred thousand within seconds: a burst of updates, an expiry wave, a
//! broadcast. PostgreSQL plans from the statistics of its last `ANALYZE`, and a session keeps
//! a generic plan it built while a table was empty. Autovacuum analyzes a table at the
//! earliest a minute later, and on a large table only after a tenth of it changed. Until
//! then the claims are planned for "one pending row" and read the whole backlog on every
//! call: measured with `auto_explain` during a 100,000-row expiry wave, the sender's claim
//! became a sort of every pending message, growing to 555 ms per call. `ANALYZE` replaces
//! the statistics and invalidates every cached plan that uses the table.
//!
//! So the service analyzes a queue table itself once [`CHANGES`] rows (or a tenth of the
//! table, if more) changed since the last analyze, at most every [`MIN_INTERVAL`] per table
//! across all replicas (an analyze by autovacuum or a sibling counts). SQLite needs none of
//! this: Tollgate never runs `ANALYZE` there, so SQLite's planner picks indexes by rule.

use std::time::Duration;

use crate::store::Db;

/// The tables whose pending backlog swings; the claims and batch updates of the pipeline,
/// the outbox and provisioning are planned from their statistics.
pub const QUEUE_TABLES: [&str; 3] = ["tg_inbox", "outbox", "node_memberships"];
/// Changed rows since the last analyze that make a table worth analyzing again.
pub const CHANGES: i64 = 1_000;
/// Analyzes of one table are at least this far apart.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Queue tables due for an analyze: enough rows changed (`$2` at least, or a tenth of the
/// table) and neither this service nor autovacuum analyzed them in the last `$3` seconds.
/// `n_mod_since_analyze` comes from the cumulative statistics, which backends report at
/// most once a second.
const DUE_SQL: &str =
    "SELECT s.relname::TEXT FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
     WHERE s.schemaname = current_schema() AND s.relname = ANY($1::TEXT[])
       AND s.n_mod_since_analyze >= GREATEST($2, CAST(c.reltuples / 10 AS BIGINT))
       AND COALESCE(GREATEST(s.last_analyze, s.last_autoanalyze), '-infinity')
           < now() - make_interval(secs => $3)
     ORDER BY s.relname";

/// Analyzes the queue tables that changed enough since their last analyze; returns their
/// names. A no-op on SQLite.
pub async fn refresh(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let Db::Postgres(pool) = db else {
        return Ok(Vec::new());
    };
    let due: Vec<String> = sqlx::query_scalar(DUE_SQL)
        .bind(&QUEUE_TABLES[..])
        .bind(CHANGES)
        .bind(MIN_INTERVAL.as_secs_f64())
        .fetch_all(pool)
        .await?;
    for table in &due {
        // The name is one of QUEUE_TABLES (the query only returns those), never input.
        let sql = match table.as_str() {
            "tg_inbox" => "ANALYZE tg_inbox",
            "outbox" => "ANALYZE outbox",
            "node_memberships" => "ANALYZE node_memberships",
            _ => continue,
        };
        sqlx::query(sql).execute(pool).await?;
    }
    Ok(due)
}
