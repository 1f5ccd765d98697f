//! Replies go out through the outbox, in the handler's transaction.
//!
//! A reply queued together with the change it reports, and with the update's completion,
//! is sent exactly once however often the update is retried (its dedupe key is derived from
//! the update id), and arrives in order after earlier messages to the same chat.

use serde_json::{Value, json};

use super::screens::{Extra, Screen};
use crate::store::Tx;
use crate::telegram::outbox::{Columns, OutboxMessage, Priority};
use crate::time::Timestamp;
use crate::users::TelegramUser;
#[cfg(doc)]
use crate::{telegram::inbox, telegram::outbox, users};

/// The messages one update sends.
pub struct Reply {
    key: String,
    chat_id: i64,
    messages: Vec<(String, Value)>,
}

impl Reply {
    /// `key` makes the dedupe keys unique per source (e.g. `u<update_id>`).
    pub fn new(key: impl Into<String>, chat_id: i64) -> Reply {
        Reply {
            key: key.into(),
            chat_id,
            messages: Vec::new(),
        }
    }

    /// A new message with the screen (and its extras).
    pub fn send(&mut self, screen: &Screen) {
        self.messages.push((
            "sendMessage".into(),
            json!({
                "chat_id": self.chat_id,
                "text": screen.text,
                "parse_mode": "HTML",
                "link_preview_options": { "is_disabled": true },
                "reply_markup": screen.reply_markup(),
            }),
        ));
        self.extras(screen);
    }

    /// The screen in place of message `message_id` (sent anew by the outbox sender if the
    /// message can no longer be edited); extras follow as new messages.
    pub fn edit(&mut self, message_id: i64, screen: &Screen) {
        self.messages.push((
            "editMessageText".into(),
            json!({
                "chat_id": self.chat_id,
                "message_id": message_id,
                "text": screen.text,
                "parse_mode": "HTML",
                "link_preview_options": { "is_disabled": true },
                "reply_markup": screen.reply_markup(),
            }),
        ));
        self.extras(screen);
    }

    /// Edits `message_id` when there is one, sends a new message otherwise.
    pub fn show(&mut self, message_id: Option<i64>, screen: &Screen) {
        match message_id {
            Some(id) => self.edit(id, screen),
            None => self.send(screen),
        }
    }

    /// Any Bot API call (an invoice), with the chat filled in.
    pub fn call(&mut self, method: &str, mut params: Value) {
        if let Some(obj) = params.as_object_mut() {
            obj.insert("chat_id".into(), json!(self.chat_id));
        }
        self.messages.push((method.to_owned(), params));
    }

    fn extras(&mut self, screen: &Screen) {
        for extra in &screen.extras {
            match extra {
                Extra::Qr { text, caption } => self.messages.push((
                    "sendPhoto".into(),
                    json!({
                        "chat_id": self.chat_id,
                        "photo": { "qr": text },
                        "caption": caption,
                    }),
                )),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The messages as outbox rows, keyed `<key>:<n>` in order.
    fn into_messages(self) -> Vec<OutboxMessage> {
        let Reply {
            key,
            chat_id,
            messages,
        } = self;
        messages
            .into_iter()
            .enumerate()
            .map(|(i, (method, params))| OutboxMessage {
                dedupe_key: format!("{key}:{i}"),
                chat_id,
                priority: Priority::Transactional,
                method,
                params,
            })
            .collect()
    }

    /// The last writes of an update's transaction, as one statement, then the commit (on
    /// SQLite both in one hand-off to the connection's thread; on PostgreSQL two round trips):
    /// queues the messages (as [`outbox::enqueue`] would, in order; a dedupe key already
    /// queued is skipped), refreshes the sender when that is owed (as [`users::refresh`]), and
    /// marks the update handled (as [`inbox::complete_and_commit`]).
    pub async fn finish_update(
        self,
        tx: Tx,
        refresh: Option<&TelegramUser>,
        update_id: i64,
        now: Timestamp,
    ) -> Result<(), sqlx::Error> {
        let msgs = self.into_messages();
        let (from_id, first, last, username, code) = match refresh {
            Some(f) => (
                f.id,
                Some(f.first_name.as_str()),
                f.last_name.as_deref(),
                f.username.as_deref(),
                f.language_code.as_deref(),
            ),
            None => (0, None, None, None, None),
        };
        match tx {
            Tx::Sqlite(c) => {
                let batch = serde_json::Value::Array(
                    msgs.iter()
                        .map(|m| {
                            json!([
                                m.dedupe_key,
                                m.chat_id,
                                m.priority.as_i16(),
                                m.method,
                                m.params.to_string()
                            ])
                        })
                        .collect(),
                )
                .to_string();
                c.commit_with(
                    sqlx::query(FINISH_SQLITE)
                        .bind(batch)
                        .bind(now)
                        .bind(from_id)
                        .bind(first)
                        .bind(last)
                        .bind(username)
                        .bind(code)
                        .bind(refresh.is_some())
                        .bind(update_id),
                )
                .await?;
            }
            Tx::Postgres(mut c) => {
                let columns = Columns::of(&msgs);
                columns
                    .bind(sqlx::query(FINISH_POSTGRES))
                    .bind(now)
                    .bind(from_id)
                    .bind(first)
                    .bind(last)
                    .bind(username)
                    .bind(code)
                    .bind(refresh.is_some())
                    .bind(update_id)
                    .execute(&mut *c)
                    .await?;
                c.commit().await?;
            }
        }
        Ok(())
    }
}

/// SQLite runs the statements of one query text in turn on its connection, in one hand-off;
/// the numbered parameters are shared. Messages travel as a JSON array of
/// `[dedupe_key, chat_id, priority, method, payload]`. (`WHERE true` resolves the parser
/// ambiguity of `ON CONFLICT` after `SELECT … FROM`.)
const FINISH_SQLITE: &str = "
INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, status, attempts, next_attempt_at, created_at)
SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, 'pending', 0, $2, $2
FROM json_each($1) AS j WHERE true ORDER BY j.key
ON CONFLICT (dedupe_key) DO NOTHING;
UPDATE users SET first_name = $4, last_name = $5, username = $6, language_code = $7,
    last_seen_at = $2, bot_blocked_at = NULL
WHERE id = $3 AND $8;
UPDATE tg_inbox SET status = 'done', finished_at = $2, claimed_by = NULL, claimed_until = NULL
WHERE update_id = $9 AND status = 'pending'";

/// PostgreSQL runs data-modifying `WITH` parts once and to completion, read or not.
const FINISH_POSTGRES: &str = "
WITH queued AS (
    INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, status, attempts, next_attempt_at, created_at)
    SELECT m.dedupe_key, m.chat_id, m.priority, m.method, m.payload, 'pending', 0, $6, $6
    FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::SMALLINT[], $4::TEXT[], $5::TEXT[]) WITH ORDINALITY
        AS m(dedupe_key, chat_id, priority, method, payload, n)
    ORDER BY m.n
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING 1),
refreshed AS (
    UPDATE users SET first_name = $8, last_name = $9, username = $10, language_code = $11,
        last_seen_at = $6, bot_blocked_at = NULL
    WHERE id = $7 AND $12::BOOLEAN
    RETURNING 1)
UPDATE tg_inbox SET status = 'done', finished_at = $6, claimed_by = NULL, claimed_until = NULL
WHERE update_id = $13 AND status = 'pending'";
