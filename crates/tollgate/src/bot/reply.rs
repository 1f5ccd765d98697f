//! Replies go out through the outbox, in the handler's transaction.
//!
//! A reply queued together with the change it reports, and with the update's completion,
//! is sent exactly once however often the update is retried (its dedupe key is derived from
//! the update id), and arrives in order after earlier messages to the same chat.

use serde_json::{Value, json};

use super::screens::{Extra, Screen};
use crate::store::Tx;
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::Timestamp;

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

    /// Queues every message in the caller's transaction; returns how many were new.
    pub async fn enqueue(self, tx: &mut Tx, now: Timestamp) -> Result<usize, sqlx::Error> {
        let mut queued = 0;
        for (i, (method, params)) in self.messages.into_iter().enumerate() {
            let msg = OutboxMessage {
                dedupe_key: format!("{}:{i}", self.key),
                chat_id: self.chat_id,
                priority: Priority::Transactional,
                method,
                params,
            };
            if outbox::enqueue(tx, &msg, now).await? {
                queued += 1;
            }
        }
        Ok(queued)
    }
}
