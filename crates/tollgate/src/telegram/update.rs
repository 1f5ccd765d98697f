//! Reading just enough of an update to store and order it.
//!
//! Intake parses only the routing head of an update — its id, its type and the chat (or
//! user) it belongs to; the raw JSON is stored untouched and handlers parse the rest. An
//! update of a type this code does not know is still stored (and later recorded as failed
//! with the reason), never dropped (docs/reliability.md B5).

use serde::Deserialize;

/// The update types Tollgate asks Telegram for (`allowed_updates`).
pub const ALLOWED_UPDATES: &[&str] = &[
    "message",
    "edited_message",
    "callback_query",
    "pre_checkout_query",
    "my_chat_member",
];

/// The kind of a `message` update that carries a `successful_payment`: money was taken, so
/// the dispatcher never gives up on it (see `telegram::dispatcher`).
pub const PAYMENT: &str = "payment";

/// The routing head of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateHead {
    pub update_id: i64,
    /// The update's type: `message`, `callback_query`, … or `unknown`; a message with a
    /// `successful_payment` is [`PAYMENT`].
    pub kind: String,
    /// Updates with the same key are handled one at a time in `update_id` order; `None`
    /// means no ordering constraint (pre-checkout queries must be answered within 10 s,
    /// whatever the chat is doing).
    pub chat_key: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a Telegram update: it has no integer update_id")]
    NoUpdateId,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct User {
    id: i64,
}

#[derive(Deserialize)]
struct WithChat {
    chat: Chat,
}

#[derive(Deserialize)]
struct MessageHead {
    chat: Chat,
    #[serde(default)]
    successful_payment: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct CallbackHead {
    from: User,
    #[serde(default)]
    message: Option<WithChat>,
}

#[derive(Deserialize)]
struct Envelope {
    update_id: Option<i64>,
    #[serde(default)]
    message: Option<MessageHead>,
    #[serde(default)]
    edited_message: Option<WithChat>,
    #[serde(default)]
    callback_query: Option<CallbackHead>,
    #[serde(default)]
    pre_checkout_query: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    my_chat_member: Option<WithChat>,
}

/// Reads the head of a raw update. The body is text already (the webhook refuses one that is
/// not UTF-8 first): serde skips the fields it ignores without checking their UTF-8, so bytes
/// could pass here that no JSON reader accepts (found by `parsers_fuzz`).
pub fn parse_head(raw: &str) -> Result<UpdateHead, HeadError> {
    let env: Envelope = match serde_json::from_str(raw) {
        Ok(e) => e,
        Err(e) if e.is_data() => {
            // Valid JSON, but a field has an unexpected shape: keep what we can.
            let v: serde_json::Value =
                serde_json::from_str(raw).map_err(|e| HeadError::NotJson(e.to_string()))?;
            let update_id = v
                .get("update_id")
                .and_then(serde_json::Value::as_i64)
                .ok_or(HeadError::NoUpdateId)?;
            // A payment stays a payment however odd its shape: its failure must reach a
            // human, not only the log.
            let pays = v
                .get("message")
                .and_then(|m| m.get("successful_payment"))
                .is_some();
            return Ok(UpdateHead {
                update_id,
                kind: if pays { PAYMENT } else { "unknown" }.to_owned(),
                chat_key: None,
            });
        }
        Err(e) => return Err(HeadError::NotJson(e.to_string())),
    };
    let update_id = env.update_id.ok_or(HeadError::NoUpdateId)?;
    let (kind, chat_key) = if let Some(m) = env.message {
        let kind = if m.successful_payment.is_some() {
            PAYMENT
        } else {
            "message"
        };
        (kind, Some(m.chat.id))
    } else if let Some(m) = env.edited_message {
        ("edited_message", Some(m.chat.id))
    } else if let Some(c) = env.callback_query {
        (
            "callback_query",
            Some(c.message.map_or(c.from.id, |m| m.chat.id)),
        )
    } else if env.pre_checkout_query.is_some() {
        ("pre_checkout_query", None)
    } else if let Some(m) = env.my_chat_member {
        ("my_chat_member", Some(m.chat.id))
    } else {
        ("unknown", None)
    };
    Ok(UpdateHead {
        update_id,
        kind: kind.to_owned(),
        chat_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_of_each_kind() {
        let h = |s: &str| parse_head(s).unwrap();
        assert_eq!(
            h(
                r#"{"update_id":5,"message":{"message_id":1,"date":0,"chat":{"id":42,"type":"private"},"text":"hi"}}"#
            ),
            UpdateHead {
                update_id: 5,
                kind: "message".into(),
                chat_key: Some(42)
            }
        );
        assert_eq!(
            h(r#"{"update_id":6,"callback_query":{"id":"q","from":{"id":7},"message":{"chat":{"id":42}},"data":"x"}}"#).chat_key,
            Some(42)
        );
        assert_eq!(
            h(r#"{"update_id":7,"callback_query":{"id":"q","from":{"id":7},"inline_message_id":"i"}}"#).chat_key,
            Some(7)
        );
        let pcq = h(
            r#"{"update_id":8,"pre_checkout_query":{"id":"p","from":{"id":7},"currency":"XTR","total_amount":1,"invoice_payload":"1"}}"#,
        );
        assert_eq!(
            (pcq.kind.as_str(), pcq.chat_key),
            ("pre_checkout_query", None)
        );
        assert_eq!(h(r#"{"update_id":9,"poll":{"id":"1"}}"#).kind, "unknown");
        // A known type with an unexpected shape is still stored, as unknown.
        let odd = h(r#"{"update_id":10,"message":{"chat":"not an object"}}"#);
        assert_eq!((odd.update_id, odd.kind.as_str()), (10, "unknown"));
        // Money taken: a kind of its own, even when the message is odd.
        let paid = h(
            r#"{"update_id":11,"message":{"message_id":2,"date":0,"chat":{"id":42,"type":"private"},"successful_payment":{"currency":"XTR","total_amount":100,"invoice_payload":"p","telegram_payment_charge_id":"c"}}}"#,
        );
        assert_eq!((paid.kind.as_str(), paid.chat_key), (PAYMENT, Some(42)));
        let odd_paid = h(r#"{"update_id":12,"message":{"chat":7,"successful_payment":{}}}"#);
        assert_eq!((odd_paid.kind.as_str(), odd_paid.chat_key), (PAYMENT, None));
        // A reply to a payment message is not a payment.
        let reply = h(
            r#"{"update_id":13,"message":{"message_id":3,"date":0,"chat":{"id":42,"type":"private"},"text":"thanks","reply_to_message":{"message_id":2,"date":0,"chat":{"id":42,"type":"private"},"successful_payment":{}}}}"#,
        );
        assert_eq!(reply.kind, "message");
    }

    #[test]
    fn bodies_that_are_not_updates_are_refused_with_the_reason() {
        assert!(matches!(parse_head("not json"), Err(HeadError::NotJson(_))));
        assert_eq!(parse_head("{}"), Err(HeadError::NoUpdateId));
        assert_eq!(
            parse_head(r#"{"update_id":"5"}"#),
            Err(HeadError::NoUpdateId)
        );
        assert_eq!(parse_head("[1,2]"), Err(HeadError::NoUpdateId));
    }
}
