//! Replies go out through the outbox, in the handler's transaction.
//!
//! A reply queued together with the change it reports, and with the update's completion,
//! is sent exactly once however often the update is retried (its dedupe key is derived from
//! the update id), and arrives in order after earlier messages to the same chat.

use serde_json::{Value, json};

use super::screens::{Extra, Screen};
use crate::store::Tx;
use crate::telegram::outbox::{OutboxMessage, Priority};
use crate::telegram::{inbox, outbox};
use crate::time::Timestamp;
use crate::users::{self, TelegramUser};

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

    /// The last writes of an update's transaction, then the commit: queues the messages
    /// ([`outbox::enqueue_all`], in order; a dedupe key already queued is skipped), refreshes
    /// the sender when that is owed ([`users::refresh`]) and marks the update handled
    /// ([`inbox::complete_and_commit`]). On SQLite the first two wait for the completion and
    /// the three go to the connection with the `COMMIT` in one round trip.
    pub async fn finish_update(
        self,
        mut tx: Tx,
        refresh: Option<&TelegramUser>,
        update_id: i64,
        now: Timestamp,
    ) -> Result<(), sqlx::Error> {
        outbox::enqueue_all(&mut tx, &self.into_messages(), now).await?;
        if let Some(from) = refresh {
            users::refresh(&mut tx, from, now).await?;
        }
        inbox::complete_and_commit(tx, update_id, now).await
    }
}
