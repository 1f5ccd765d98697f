//! docs/reliability.md A8, C5: migrations only, serialized, checksummed, complete.

use tollgate::store::migrate::{self, MigrateError, MigrateTimeouts, Migration, SchemaState};
use tollgate::time::{Clock, SystemClock};
use tollgate::{on_db, store::Db};

use crate::common::TestDb;
use crate::common::service::{base_env, run_to_end};
use crate::db_test;

async fn applied(db: &Db) -> Vec<(i64, String)> {
    on_db!(db, p => sqlx::query_as("SELECT version, name FROM schema_migrations ORDER BY version")
        .fetch_all(p).await)
    .unwrap()
}

async fn table_exists(db: &Db, table: &str) -> bool {
    let sql = match db {
        Db::Sqlite(_) => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Db::Postgres(_) => "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = $1",
    };
    let n: i64 = on_db!(db, p => sqlx::query_scalar(sql).bind(table).fetch_one(p).await).unwrap();
    n == 1
}

const TABLES: &[&str] = &[
    "users",
    "subscriptions",
    "retired_keys",
    "purchases",
    "payments",
    "balance_ledger",
    "tg_inbox",
    "outbox",
    "outbox_attempts",
    "leases",
    "settings",
    "node_memberships",
    "audit_log",
];

db_test!(async fn apply_to_empty_then_rerun_is_a_noop(t) {
    let fresh = if t.is_postgres() {
        TestDb::postgres_with(false).await.unwrap()
    } else {
        TestDb::sqlite_with(false).await
    };
    let db = &fresh.db;
    let first = migrate::run(db, SystemClock.now(), MigrateTimeouts::default()).await.unwrap();
    let expected: Vec<String> = migrate::for_backend(db.backend()).iter().map(Migration::file_name).collect();
    assert_eq!(first.applied, expected);
    for table in TABLES {
        assert!(table_exists(db, table).await, "{table} exists after migrating");
    }
    assert_eq!(migrate::schema_state(db).await.unwrap(), SchemaState::Current);

    let second = migrate::run(db, SystemClock.now(), MigrateTimeouts::default()).await.unwrap();
    assert!(second.applied.is_empty(), "rerun applied {:?}", second.applied);
    assert_eq!(second.current_version, first.current_version);
    assert_eq!(applied(db).await.len(), expected.len());
});

db_test!(async fn an_edited_migration_refuses_to_start_naming_it(t) {
    // The binary's set with its first migration's text changed, as if the file was edited.
    let mut set: Vec<Migration> = migrate::for_backend(t.db.backend()).to_vec();
    set[0].sql = "SELECT 1; -- edited";
    let err = migrate::run_set(&t.db, &set, SystemClock.now(), MigrateTimeouts::default()).await.unwrap_err();
    match &err {
        MigrateError::ChecksumMismatch { file, .. } => assert_eq!(file, "0001_initial.sql"),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("0001_initial.sql"));
    assert!(err.to_string().contains("restore the original file"));

    // The real binary refuses too, both `migrate` and `run`, after the recorded checksum is
    // changed underneath it.
    on_db!(&t.db, p => sqlx::query("UPDATE schema_migrations SET checksum = 'feedface' WHERE version = 1")
        .execute(p).await.map(|_| ())).unwrap();
    let env = base_env(&t.url);
    let (status, _out, err) = run_to_end(&["migrate"], &env).await;
    assert!(!status.success());
    assert!(err.contains("0001_initial.sql"), "{err}");
    let (status, _out, err) = run_to_end(&["run"], &env).await;
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("0001_initial.sql"), "{err}");
});

db_test!(async fn a_database_newer_than_the_binary_is_refused(t) {
    on_db!(&t.db, p => sqlx::query(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'from_the_future', 'x', 0)"
    ).execute(p).await.map(|_| ())).unwrap();
    assert!(matches!(migrate::schema_state(&t.db).await.unwrap(), SchemaState::Ahead { database: 9999, .. }));
    let err = migrate::run(&t.db, SystemClock.now(), MigrateTimeouts::default()).await.unwrap_err();
    assert!(matches!(err, MigrateError::UnknownVersion { version: 9999, .. }), "{err:?}");
    assert!(err.to_string().contains("newer release"));
});

db_test!(async fn the_migrate_command_reports_what_it_did(t) {
    let fresh = if t.is_postgres() {
        TestDb::postgres_with(false).await.unwrap()
    } else {
        TestDb::sqlite_with(false).await
    };
    let env = base_env(&fresh.url);
    let (status, out, err) = run_to_end(&["migrate"], &env).await;
    assert!(status.success(), "{err}");
    let set = migrate::for_backend(fresh.db.backend());
    let files: Vec<String> = set.iter().map(Migration::file_name).collect();
    let applied_line = format!("applied {} migration(s): {}", set.len(), files.join(", "));
    assert!(out.contains(&applied_line), "{out}");
    let (status, out, _) = run_to_end(&["migrate"], &env).await;
    assert!(status.success());
    let current = format!("schema is current at version {}", migrate::latest_version(fresh.db.backend()));
    assert!(out.contains(&current), "{out}");
});

/// Several processes migrating one PostgreSQL database at once end with one correct schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_processes_migrate_once() {
    let Some(t) = TestDb::postgres_with(false).await else {
        return;
    };
    let env = base_env(&t.url);
    let runs = (0..4).map(|_| run_to_end(&["migrate"], &env));
    let results = futures::future::join_all(runs).await;
    let mut applied_by = 0;
    for (status, out, err) in &results {
        assert!(status.success(), "migrate failed: {err}");
        if out.contains("applied ") {
            applied_by += 1;
        } else {
            assert!(out.contains("schema is current"), "{out}");
        }
    }
    assert_eq!(
        applied_by, 1,
        "exactly one process applied the migration: {results:?}"
    );
    let expected: Vec<(i64, String)> = migrate::POSTGRES
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect();
    assert_eq!(applied(&t.db).await, expected);
    for table in TABLES {
        assert!(table_exists(&t.db, table).await);
    }
}

/// The same, in-process with separate pools, for SQLite (its write lock serializes them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pools_migrate_sqlite_once() {
    let t = TestDb::sqlite_with(false).await;
    let pools: Vec<Db> = (0..4).map(|_| t.another_pool()).collect();
    let runs = pools
        .iter()
        .map(|db| migrate::run(db, SystemClock.now(), MigrateTimeouts::default()));
    let results = futures::future::join_all(runs).await;
    let applied_count: usize = results
        .iter()
        .map(|r| r.as_ref().unwrap().applied.len())
        .sum();
    assert_eq!(
        applied_count,
        migrate::SQLITE.len(),
        "each migration applied once"
    );
    assert_eq!(applied(&t.db).await.len(), migrate::SQLITE.len());
}

// 0017 widens the providers' CHECK (on SQLite by rebuilding purchases and payments): every row,
// its id, the references between them and the id sequences survive, and the next purchase gets
// an id never used before.
db_test!(async fn the_providers_migration_keeps_purchases_and_payments(t) {
    let t = match t.db {
        Db::Sqlite(_) => TestDb::sqlite_with(false).await,
        Db::Postgres(_) => match TestDb::postgres_with(false).await { Some(t) => t, None => return },
    };
    let db = &t.db;
    let all = migrate::for_backend(db.backend());
    let before: Vec<Migration> = all.iter().filter(|m| m.version < 17).cloned().collect();
    migrate::run_set(db, &before, SystemClock.now(), MigrateTimeouts::default()).await.unwrap();
    let exec = async |sql: &'static str| on_db!(db, p => sqlx::query(sql).execute(p).await.map(drop)).unwrap();
    exec("INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at) VALUES (7, 'Ann', 'en', 'r7', 0, 0)").await;
    for _ in 0..3 {
        exec("INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at, paid_at)
              VALUES (7, 'plan', 'm1', 30, 100, 'XTR', 'stars', 'paid', 0, 1, 1)").await;
    }
    exec("INSERT INTO payments (purchase_id, user_id, provider, provider_payment_id, amount, currency, status, created_at, invoice_payload)
          VALUES (2, 7, 'stars', 'ch-2', 100, 'XTR', 'captured', 5, 'purchase:2')").await;
    exec("UPDATE purchases SET list_amount = 150, promo_code = 'SPRING' WHERE id = 2").await;
    // The newest purchase is gone (pruned): its id must not come back.
    exec("DELETE FROM purchases WHERE id = 3").await;
    migrate::run(db, SystemClock.now(), MigrateTimeouts::default()).await.unwrap();
    let rows: Vec<(i64, Option<i64>, String, Option<String>)> = on_db!(db, p => sqlx::query_as(
        "SELECT id, purchase_id, provider_payment_id, invoice_payload FROM payments").fetch_all(p).await).unwrap();
    assert_eq!(rows, [(1, Some(2), "ch-2".to_owned(), Some("purchase:2".to_owned()))]);
    let ids: Vec<i64> = on_db!(db, p => sqlx::query_scalar("SELECT id FROM purchases ORDER BY id").fetch_all(p).await).unwrap();
    assert_eq!(ids, [1, 2]);
    let kept: (Option<i64>, Option<String>) = on_db!(db, p => sqlx::query_as(
        "SELECT list_amount, promo_code FROM purchases WHERE id = 2").fetch_one(p).await).unwrap();
    assert_eq!(kept, (Some(150), Some("SPRING".to_owned())), "every column survives");
    let next: i64 = on_db!(db, p => sqlx::query_scalar(
        "INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at)
         VALUES (7, 'plan', 'm1', 30, 14900, 'RUB', 'yookassa', 'pending', 0, 1) RETURNING id").fetch_one(p).await).unwrap();
    assert_eq!(next, 4, "ids are never reused");
    // The reference from payments to purchases is still enforced.
    let orphan = on_db!(db, p => sqlx::query(
        "INSERT INTO payments (purchase_id, user_id, provider, provider_payment_id, amount, currency, status, created_at)
         VALUES (99, 7, 'yookassa', 'p-99', 100, 'RUB', 'captured', 0)").execute(p).await.map(drop));
    assert!(orphan.is_err(), "a payment of no purchase is refused");
    assert!(table_exists(db, "provider_invoices").await);
});
