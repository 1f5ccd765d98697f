//! The echo handler: `tollgate echo` runs the whole pipeline with it.
//!
//! It answers every text message with "echo: <text>" and every button press with an empty
//! callback answer, touching no business data. Operators use it to check a deployment's
//! Telegram wiring end to end (webhook or polling, database, outbox, rate limits) before
//! the bot goes live; the crash and throughput tests use it because its effect is visible
//! from outside: exactly one reply per update, in order per chat. The reply is queued in
//! the same transaction that marks the update handled, so a crash at any point neither
//! loses nor repeats it.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::dispatcher::{Handled, Handler, HandlerContext, HandlerError};
use super::inbox::{self, Claimed};
use super::outbox::{OutboxMessage, Priority};
use crate::i18n::escape_html;

pub struct EchoHandler;

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct Message {
    chat: Chat,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Callback {
    id: String,
}

#[derive(Deserialize)]
struct Update {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    callback_query: Option<Callback>,
}

/// Telegram's limit on a message's text.
const MAX_TEXT: usize = 4096;

/// `text` cut to at most `max` UTF-16 units, ending with "…" when cut.
fn truncate_utf16(text: &str, max: usize) -> String {
    if text.encode_utf16().count() <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        if used + c.len_utf16() > max - 1 {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

impl Handler for EchoHandler {
    async fn handle(
        &self,
        update: Arc<Claimed>,
        ctx: HandlerContext,
    ) -> Result<Handled, HandlerError> {
        if update.kind == "unknown" {
            return Err(HandlerError::Permanent(
                "unsupported update type: the update has none of the types Tollgate asks for"
                    .to_owned(),
            ));
        }
        let parsed: Update = serde_json::from_str(&update.payload).map_err(|e| {
            HandlerError::Permanent(format!("malformed {} update: {e}", update.kind))
        })?;
        if let Some(cb) = parsed.callback_query {
            // Answer first: the user's button spins until we do (docs/reliability.md B3).
            let answered: Result<bool, _> = ctx
                .api
                .call(
                    "answerCallbackQuery",
                    &json!({ "callback_query_id": cb.id }),
                )
                .await;
            match answered {
                Ok(_) => {}
                Err(e) if e.is_stale_query() => {}
                Err(e) => return Err(HandlerError::Retry(e.to_string())),
            }
        }
        let now = ctx.clock.now();
        let reply = match parsed.message {
            Some(Message {
                chat,
                text: Some(text),
            }) => {
                // Telegram measures text after entity parsing, in UTF-16 units.
                let reply = format!(
                    "echo: {}",
                    escape_html(&truncate_utf16(&text, MAX_TEXT - 6))
                );
                Some(OutboxMessage::text(
                    format!("echo:{}", update.update_id),
                    chat.id,
                    Priority::Transactional,
                    reply,
                    None,
                ))
            }
            _ => None,
        };
        inbox::complete_replying(&ctx.db, update.update_id, reply.as_ref(), now).await?;
        let queued = reply.is_some();
        if queued {
            ctx.outbox_wake.notify_one();
        }
        Ok(Handled::MarkedInTransaction)
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_utf16;

    #[test]
    fn truncates_by_utf16_units() {
        assert_eq!(truncate_utf16("hello", 5), "hello");
        assert_eq!(truncate_utf16("hello!", 5), "hell…");
        // An emoji is two UTF-16 units and is never split.
        assert_eq!(truncate_utf16("ab😀cd", 4), "ab…");
        assert_eq!(
            truncate_utf16(&"x".repeat(5000), 4090)
                .encode_utf16()
                .count(),
            4090
        );
    }
}
