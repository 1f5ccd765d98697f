//! What an admin's next text message answers.
//!
//! Some console steps need typed input (a user to find, a number of days, an amount and a
//! reason, a banner's text). The button that asks stores the question here; the admin's next
//! text message takes it (in that update's transaction, so a redelivered message cannot answer
//! twice). One question per admin: a newer one replaces an older one, and a question older
//! than [`PROMPT_TTL`] is forgotten, so a message typed much later is an ordinary one.

use std::time::Duration;

use crate::on_tx;
use crate::store::Tx;
use crate::time::Timestamp;

/// How long a question waits for its answer.
pub const PROMPT_TTL: Duration = Duration::from_secs(15 * 60);

/// Stores `question` as what `admin`'s next text answers, replacing any other.
pub async fn ask(
    tx: &mut Tx,
    admin: i64,
    question: &str,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO admin_prompts (admin_id, question, asked_at) VALUES ($1, $2, $3)
         ON CONFLICT (admin_id) DO UPDATE SET question = excluded.question, asked_at = excluded.asked_at")
        .bind(admin).bind(question).bind(now).execute(c).await.map(|_| ()))
}

/// Takes `admin`'s pending question, if one was asked within [`PROMPT_TTL`]; an older one is
/// removed and not returned.
pub async fn take(tx: &mut Tx, admin: i64, now: Timestamp) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String, Timestamp)> = on_tx!(tx, c => sqlx::query_as(
        "DELETE FROM admin_prompts WHERE admin_id = $1 RETURNING question, asked_at")
        .bind(admin).fetch_optional(c).await)?;
    Ok(row
        .filter(|(_, at)| now.since(*at) <= PROMPT_TTL)
        .map(|(q, _)| q))
}

/// Forgets `admin`'s pending question (Cancel).
pub async fn clear(tx: &mut Tx, admin: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query("DELETE FROM admin_prompts WHERE admin_id = $1")
        .bind(admin).execute(c).await.map(|_| ()))
}
