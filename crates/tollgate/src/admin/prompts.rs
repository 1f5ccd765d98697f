//! What an admin's next text message answers.
//!
//! Some console steps need typed input (a user to find, a number of days, an amount and a
//! reason, a banner's text). The button that asks stores the question here; the admin's next
//! text message takes it (in that update's transaction, so a redelivered message cannot answer
//! twice). A confirmation whose details do not fit in a button (a balance adjustment with its
//! reason, a banner) is kept here too, as the admin's draft, until its button is pressed. One question per admin: a newer one replaces an older one, and a question older
//! than [`PROMPT_TTL`] is forgotten, so a message typed much later is an ordinary one.

use std::time::Duration;

use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

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

/// A question waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Pending {
    pub question: String,
    pub asked_at: Timestamp,
}

impl Pending {
    /// Whether it still waits for its answer at `now` (asked within [`PROMPT_TTL`]).
    pub fn in_force(&self, now: Timestamp) -> bool {
        now.since(self.asked_at) <= PROMPT_TTL
    }
}

/// The pending question `q` (if any) of the user row `u`, joined to another owner's statement
/// for [`JOINED_COLUMNS`]: the bot reads it with the sender, so an update that leaves a
/// question (a button, a command) can forget it without a statement of its own when none is
/// pending (`users::sender`).
pub const JOIN_QUESTION_OF_USER: &str = "LEFT JOIN admin_prompts q ON q.admin_id = u.id";

/// The columns of [`JOIN_QUESTION_OF_USER`], read as [`Joined`].
pub const JOINED_COLUMNS: &str = "q.question AS prompt_question, q.asked_at AS prompt_asked_at";

/// A question read through [`JOINED_COLUMNS`]: both NULL when none is stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Joined {
    prompt_question: Option<String>,
    prompt_asked_at: Option<Timestamp>,
}

impl Joined {
    /// The stored question, however old: forgetting an expired one is harmless.
    pub fn pending(self) -> Option<Pending> {
        Some(Pending {
            question: self.prompt_question?,
            asked_at: self.prompt_asked_at?,
        })
    }
}

/// `admin`'s pending question, if one was asked within [`PROMPT_TTL`]. Read through the pool
/// before the answer's transaction opens; [`take`] then claims it in that transaction.
pub async fn pending(db: &Db, admin: i64, now: Timestamp) -> Result<Option<Pending>, sqlx::Error> {
    let row: Option<Pending> = on_db!(db, p => sqlx::query_as(
        "SELECT question, asked_at FROM admin_prompts WHERE admin_id = $1")
        .bind(admin).fetch_optional(p).await)?;
    Ok(row.filter(|q| q.in_force(now)))
}

/// Claims `question` in the answer's transaction: `false` when it was answered, replaced or
/// cancelled meanwhile (the answer is then an ordinary message).
pub async fn take(tx: &mut Tx, admin: i64, question: &Pending) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "DELETE FROM admin_prompts WHERE admin_id = $1 AND question = $2 AND asked_at = $3")
        .bind(admin).bind(&question.question).bind(question.asked_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Forgets `admin`'s pending question (Cancel).
pub async fn clear(tx: &mut Tx, admin: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query("DELETE FROM admin_prompts WHERE admin_id = $1")
        .bind(admin).execute(c).await.map(|_| ()))
}
