//! The database itself rejects what must never be stored (docs/design.md §3.3, docs/reliability.md C6, F10).

use tollgate::store::{Db, Failure, classify};
use tollgate::{on_db, on_tx};
use uuid::Uuid;

use crate::db_test;

async fn insert_user(db: &Db, id: i64, balance: i64) -> Result<u64, sqlx::Error> {
    on_db!(db, p => sqlx::query(
        "INSERT INTO users (id, first_name, language, referral_code, balance, created_at, last_seen_at)
         VALUES ($1, 'Ann', 'en', $2, $3, 0, 0)"
    ).bind(id).bind(format!("code{id}")).bind(balance).execute(p).await.map(|r| r.rows_affected()))
}

fn failure(r: Result<u64, sqlx::Error>) -> Failure {
    classify(&r.expect_err("the database must reject this"))
}

db_test!(async fn balance_can_never_be_negative(t) {
    assert_eq!(failure(insert_user(&t.db, 1, -1).await), Failure::CheckViolation);
    insert_user(&t.db, 1, 100).await.unwrap();
    let debit = async |amount: i64| on_db!(&t.db, p => sqlx::query(
        "UPDATE users SET balance = balance - $1 WHERE id = 1"
    ).bind(amount).execute(p).await.map(|r| r.rows_affected()));
    assert_eq!(failure(debit(101).await), Failure::CheckViolation);
    assert_eq!(debit(100).await.unwrap(), 1);
    let balance: i64 = on_db!(&t.db, p => sqlx::query_scalar("SELECT balance FROM users WHERE id = 1")
        .fetch_one(p).await).unwrap();
    assert_eq!(balance, 0, "the rejected debit left the balance untouched until the valid one");
});

db_test!(async fn a_provider_payment_id_is_stored_once(t) {
    insert_user(&t.db, 1, 0).await.unwrap();
    let pay = async |provider: &'static str, id: &'static str| on_db!(&t.db, p => sqlx::query(
        "INSERT INTO payments (user_id, provider, provider_payment_id, amount, currency, status, created_at)
         VALUES (1, $1, $2, 100, 'XTR', 'captured', 0)"
    ).bind(provider).bind(id).execute(p).await.map(|r| r.rows_affected()));
    pay("stars", "charge-1").await.unwrap();
    assert_eq!(failure(pay("stars", "charge-1").await), Failure::UniqueViolation);
    // The same id at another provider is a different payment.
    pay("card", "charge-1").await.unwrap();
    assert_eq!(failure(pay("paypal", "charge-2").await), Failure::CheckViolation);
});

db_test!(async fn an_outbox_dedupe_key_is_stored_once(t) {
    let enqueue = async |key: &'static str| on_db!(&t.db, p => sqlx::query(
        "INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, status, next_attempt_at, created_at)
         VALUES ($1, 7, 1, 'sendMessage', '{}', 'pending', 0, 0)"
    ).bind(key).execute(p).await.map(|r| r.rows_affected()));
    enqueue("reminder:1:1790000000000:24h").await.unwrap();
    assert_eq!(failure(enqueue("reminder:1:1790000000000:24h").await), Failure::UniqueViolation);

    // Inside a transaction the violation aborts the whole business change.
    let mut tx = t.db.begin().await.unwrap();
    on_tx!(&mut tx, c => sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ('x', 'y', 0)")
        .execute(c).await.map(|_| ())).unwrap();
    let dup = on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, status, next_attempt_at, created_at)
         VALUES ('reminder:1:1790000000000:24h', 7, 1, 'sendMessage', '{}', 'pending', 0, 0)"
    ).execute(c).await.map(|_| ()));
    assert!(dup.is_err());
    drop(tx);
    let n: i64 = on_db!(&t.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM settings").fetch_one(p).await).unwrap();
    assert_eq!(n, 0, "the rolled-back transaction left nothing behind");
});

db_test!(async fn vpn_uuids_and_subscription_tokens_are_unique(t) {
    insert_user(&t.db, 1, 0).await.unwrap();
    insert_user(&t.db, 2, 0).await.unwrap();
    insert_user(&t.db, 3, 0).await.unwrap();
    let uuid = Uuid::new_v4();
    let sub = async |user: i64, uuid: Uuid, token: String| on_db!(&t.db, p => sqlx::query(
        "INSERT INTO subscriptions (user_id, kind, starts_at, expires_at, vpn_uuid, token, created_at, updated_at)
         VALUES ($1, 'paid', 0, 1, $2, $3, 0, 0)"
    ).bind(user).bind(uuid).bind(token).execute(p).await.map(|r| r.rows_affected()));
    let token = "A".repeat(22);
    sub(1, uuid, token.clone()).await.unwrap();
    assert_eq!(failure(sub(2, uuid, "B".repeat(22)).await), Failure::UniqueViolation);
    assert_eq!(failure(sub(2, Uuid::new_v4(), token).await), Failure::UniqueViolation);
    // A short (guessable) token is refused outright.
    assert_eq!(failure(sub(2, Uuid::new_v4(), "short".to_owned()).await), Failure::CheckViolation);
    // One subscription per user.
    assert_eq!(failure(sub(1, Uuid::new_v4(), "C".repeat(22)).await), Failure::UniqueViolation);
    // The UUID reads back as the same value on both backends.
    let back: Uuid = on_db!(&t.db, p => sqlx::query_scalar("SELECT vpn_uuid FROM subscriptions WHERE user_id = 1")
        .fetch_one(p).await).unwrap();
    assert_eq!(back, uuid);
});

db_test!(async fn closed_enums_are_enforced(t) {
    insert_user(&t.db, 1, 0).await.unwrap();
    let purchase = async |kind: &'static str, plan: Option<&'static str>, credit: Option<i64>| on_db!(&t.db, p => sqlx::query(
        "INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, credit_amount, provider, status, created_at, expires_at)
         VALUES (1, $1, $2, $3, 100, 'XTR', $4, 'stars', 'pending', 0, 1)"
    ).bind(kind).bind(plan).bind(plan.map(|_| 30_i32)).bind(credit).execute(p).await.map(|r| r.rows_affected()));
    purchase("plan", Some("m1"), None).await.unwrap();
    purchase("topup", None, Some(15_000)).await.unwrap();
    assert_eq!(failure(purchase("gift_card", None, None).await), Failure::CheckViolation);
    // A plan purchase without a plan, or a top-up without a credited amount, cannot exist.
    assert_eq!(failure(purchase("plan", None, None).await), Failure::CheckViolation);
    assert_eq!(failure(purchase("topup", None, None).await), Failure::CheckViolation);
});

// F9: the providers are a closed set in both tables (Crypto Pay is `crypto`, YooKassa
// `yookassa`), and so are the provider invoices' providers and states.
db_test!(async fn the_providers_are_a_closed_set(t) {
    insert_user(&t.db, 1, 0).await.unwrap();
    let purchase = async |provider: &'static str| on_db!(&t.db, p => sqlx::query_scalar::<_, i64>(
        "INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at)
         VALUES (1, 'plan', 'm1', 30, 14900, 'RUB', $1, 'pending', 0, 1) RETURNING id"
    ).bind(provider).fetch_one(p).await);
    let payment = async |provider: &'static str, id: &'static str| on_db!(&t.db, p => sqlx::query(
        "INSERT INTO payments (user_id, provider, provider_payment_id, amount, currency, status, created_at)
         VALUES (1, $1, $2, 14900, 'RUB', 'captured', 0)"
    ).bind(provider).bind(id).execute(p).await.map(|r| r.rows_affected()));
    let invoice = async |purchase: i64, provider: &'static str, status: &'static str| on_db!(&t.db, p => sqlx::query(
        "INSERT INTO provider_invoices (purchase_id, provider, external_id, status, created_at, next_check_at)
         VALUES ($1, $2, $3, $4, 0, 0)"
    ).bind(purchase).bind(provider).bind(format!("x{purchase}")).bind(status).execute(p).await.map(|r| r.rows_affected()));
    let crypto = purchase("crypto").await.unwrap();
    let yoo = purchase("yookassa").await.unwrap();
    assert_eq!(failure(purchase("paypal").await.map(|_| 0)), Failure::CheckViolation);
    payment("crypto", "1").await.unwrap();
    payment("yookassa", "2").await.unwrap();
    assert_eq!(failure(payment("paypal", "3").await), Failure::CheckViolation);
    assert_eq!(failure(payment("balance", "4").await), Failure::CheckViolation);
    invoice(crypto, "crypto", "open").await.unwrap();
    assert_eq!(failure(invoice(yoo, "stars", "open").await), Failure::CheckViolation);
    assert_eq!(failure(invoice(yoo, "yookassa", "lost").await), Failure::CheckViolation);
    // An open invoice has the provider's id.
    let no_id = on_db!(&t.db, p => sqlx::query(
        "INSERT INTO provider_invoices (purchase_id, provider, status, created_at, next_check_at) VALUES ($1, 'yookassa', 'open', 0, 0)"
    ).bind(yoo).execute(p).await.map(|r| r.rows_affected()));
    assert_eq!(failure(no_id), Failure::CheckViolation);
});
