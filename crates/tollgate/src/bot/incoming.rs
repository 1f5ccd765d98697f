//! What the bot reads from an update: the few fields of Telegram's objects it acts on.
//!
//! Parsing is strict about what matters (who, which chat, which button) and ignores the
//! rest, so new fields Telegram adds never break a handler.

use serde::Deserialize;

use crate::users::TelegramUser;

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SuccessfulPayment {
    pub currency: String,
    pub total_amount: i64,
    pub invoice_payload: String,
    pub telegram_payment_charge_id: String,
    #[serde(default)]
    pub provider_payment_charge_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefundedPayment {
    pub currency: String,
    pub total_amount: i64,
    #[serde(default)]
    pub invoice_payload: Option<String>,
    pub telegram_payment_charge_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
    #[serde(default)]
    pub from: Option<TelegramUser>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub successful_payment: Option<SuccessfulPayment>,
    #[serde(default)]
    pub refunded_payment: Option<RefundedPayment>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: TelegramUser,
    #[serde(default)]
    pub message: Option<CallbackMessage>,
    #[serde(default)]
    pub data: Option<String>,
}

/// The message a button belongs to (possibly inaccessible: then only ids are known).
#[derive(Debug, Clone, Deserialize)]
pub struct CallbackMessage {
    pub message_id: i64,
    pub chat: Chat,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PreCheckoutQuery {
    pub id: String,
    pub from: TelegramUser,
    pub currency: String,
    pub total_amount: i64,
    pub invoice_payload: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
    #[serde(default)]
    pub pre_checkout_query: Option<PreCheckoutQuery>,
}

/// A command in a message: `/start ref_abc` → ("start", "ref_abc"); `/menu@my_bot` → "menu".
pub fn command(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix('/')?;
    let (head, args) = match rest.split_once(char::is_whitespace) {
        Some((h, a)) => (h, a.trim()),
        None => (rest, ""),
    };
    let name = head.split('@').next().unwrap_or_default();
    if name.is_empty()
        || name.len() > 32
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    Some((name, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(command("/start ref_abc"), Some(("start", "ref_abc")));
        assert_eq!(command("/menu@tollgate_bot"), Some(("menu", "")));
        assert_eq!(command("/start   "), Some(("start", "")));
        assert_eq!(command("hello"), None);
        assert_eq!(command("/"), None);
        assert_eq!(command("/bad-name"), None);
    }
}
