//! The emulated world: users, bots, chats and messages, and their Bot API JSON shapes.
//!
//! Why this exists: every object the emulator hands to a bot (in a method result or inside an
//! update) must have the shape a real client library parses — `from`, `chat`, `date`,
//! `message_id`, `entities`, `is_bot`, `type`, … . Keeping the records and their serialisation in
//! one place makes that shape consistent between `sendMessage` results, `getUpdates`, webhook
//! bodies and callback queries. Serialisation writes directly from the records (no intermediate
//! `serde_json::Value`), which keeps the hot path of `sendMessage` cheap.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::entities::FormattedText;
use crate::markup::InlineKeyboard;

/// A Telegram user (a person, not a bot) created through the control API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// User id (also the id of the private chat with any bot).
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: Option<String>,
    /// Username without `@`.
    pub username: Option<String>,
    /// IETF language tag of the user's client.
    pub language_code: Option<String>,
    /// Telegram Premium.
    pub is_premium: bool,
}

impl Serialize for UserRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("is_bot", &false)?;
        map.serialize_entry("first_name", &self.first_name)?;
        if let Some(last_name) = &self.last_name {
            map.serialize_entry("last_name", last_name)?;
        }
        if let Some(username) = &self.username {
            map.serialize_entry("username", username)?;
        }
        if let Some(language_code) = &self.language_code {
            map.serialize_entry("language_code", language_code)?;
        }
        if self.is_premium {
            map.serialize_entry("is_premium", &true)?;
        }
        map.end()
    }
}

/// The identity of an emulated bot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BotIdentity {
    /// Bot id (from the token).
    pub id: i64,
    /// Display name.
    pub first_name: String,
    /// Username without `@`.
    pub username: String,
}

impl Serialize for BotIdentity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("is_bot", &true)?;
        map.serialize_entry("first_name", &self.first_name)?;
        map.serialize_entry("username", &self.username)?;
        map.end()
    }
}

/// The `getMe` result: the bot user plus its capabilities.
pub struct MeJson<'a>(pub &'a BotIdentity);

impl Serialize for MeJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.0.id)?;
        map.serialize_entry("is_bot", &true)?;
        map.serialize_entry("first_name", &self.0.first_name)?;
        map.serialize_entry("username", &self.0.username)?;
        map.serialize_entry("can_join_groups", &true)?;
        map.serialize_entry("can_read_all_group_messages", &false)?;
        map.serialize_entry("supports_inline_queries", &false)?;
        map.serialize_entry("can_connect_to_business", &false)?;
        map.serialize_entry("has_main_web_app", &false)?;
        map.end()
    }
}

/// What kind of chat this is.
#[derive(Clone, Debug)]
pub enum ChatKind {
    /// The private chat between a user and the bot.
    Private(Arc<UserRecord>),
    /// A basic group.
    Group {
        /// Group title.
        title: String,
    },
}

/// A chat as the Bot API `Chat` object.
pub struct ChatJson<'a> {
    /// Chat id.
    pub id: i64,
    /// Chat kind.
    pub kind: &'a ChatKind,
}

impl Serialize for ChatJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        match self.kind {
            ChatKind::Private(user) => {
                map.serialize_entry("first_name", &user.first_name)?;
                if let Some(last_name) = &user.last_name {
                    map.serialize_entry("last_name", last_name)?;
                }
                if let Some(username) = &user.username {
                    map.serialize_entry("username", username)?;
                }
                map.serialize_entry("type", "private")?;
            }
            ChatKind::Group { title } => {
                map.serialize_entry("title", title)?;
                map.serialize_entry("type", "group")?;
            }
        }
        map.end()
    }
}

/// Who sent a message.
#[derive(Clone, Debug)]
pub enum Sender {
    /// The bot itself.
    Bot,
    /// A user.
    User(Arc<UserRecord>),
}

impl Sender {
    /// Whether the bot sent it.
    pub fn is_bot(&self) -> bool {
        matches!(self, Self::Bot)
    }
}

/// One size of an uploaded photo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PhotoSize {
    /// Identifier to download or resend the file.
    pub file_id: String,
    /// Identifier that is the same for the same bytes.
    pub file_unique_id: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size in bytes (absent for photos given by URL, whose bytes the emulator never fetches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A document a bot uploaded (`Message.document`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Document {
    /// Identifier to download or resend the file.
    pub file_id: String,
    /// Identifier that is the same for the same bytes.
    pub file_unique_id: String,
    /// The file name the bot gave.
    pub file_name: String,
    /// MIME type, from the part's `Content-Type` or the file name.
    pub mime_type: String,
    /// Size in bytes.
    pub file_size: u64,
}

/// An invoice shown in a chat (`Message.invoice`) plus what the emulator needs to pay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceSpec {
    /// Product name.
    pub title: String,
    /// Product description.
    pub description: String,
    /// Bot-defined payload, echoed in pre-checkout and successful_payment.
    pub payload: String,
    /// `XTR` for Telegram Stars, else an ISO 4217 code.
    pub currency: String,
    /// Price parts `(label, amount)`.
    pub prices: Vec<(String, i64)>,
    /// Sum of the price parts, in the smallest units.
    pub total_amount: i64,
    /// Deep-link start parameter (empty when not given).
    pub start_parameter: String,
    /// Provider token used (empty for Stars).
    pub provider_token: String,
    /// Subscription period in seconds (invoice links only).
    pub subscription_period: Option<u32>,
    /// Product photo URL.
    pub photo_url: Option<String>,
}

/// A successful payment (`Message.successful_payment`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuccessfulPayment {
    /// Currency.
    pub currency: String,
    /// Total price.
    pub total_amount: i64,
    /// The invoice payload.
    pub invoice_payload: String,
    /// For subscriptions: when the subscription ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_expiration_date: Option<i64>,
    /// For subscriptions.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_recurring: bool,
    /// For subscriptions: the first payment.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_first_recurring: bool,
    /// Telegram's charge id (the key for refunds).
    pub telegram_payment_charge_id: String,
    /// The provider's charge id (empty for Stars).
    pub provider_payment_charge_id: String,
}

/// A refunded payment (`Message.refunded_payment`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefundedPayment {
    /// Currency (always XTR today).
    pub currency: String,
    /// Amount refunded.
    pub total_amount: i64,
    /// The invoice payload.
    pub invoice_payload: String,
    /// The refunded charge.
    pub telegram_payment_charge_id: String,
    /// The provider's charge id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_payment_charge_id: Option<String>,
}

/// The content of a message.
#[derive(Clone, Debug)]
pub enum Content {
    /// Text with entities.
    Text(FormattedText),
    /// A photo with an optional caption.
    Photo {
        /// Sizes, smallest first.
        sizes: Vec<PhotoSize>,
        /// Caption and its entities.
        caption: Option<FormattedText>,
    },
    /// A document with an optional caption.
    Document {
        /// The file.
        document: Document,
        /// Caption and its entities.
        caption: Option<FormattedText>,
    },
    /// An invoice.
    Invoice(Arc<InvoiceSpec>),
    /// A payment the user made.
    SuccessfulPayment(SuccessfulPayment),
    /// A payment the bot refunded.
    RefundedPayment(RefundedPayment),
}

impl Content {
    /// A short name of the content kind, used in transcripts.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Photo { .. } => "photo",
            Self::Document { .. } => "document",
            Self::Invoice(_) => "invoice",
            Self::SuccessfulPayment(_) => "successful_payment",
            Self::RefundedPayment(_) => "refunded_payment",
        }
    }
}

/// One stored message. Records are immutable once shared; edits replace the `Arc`.
#[derive(Clone, Debug)]
pub struct MessageRecord {
    /// Message id, unique within the chat.
    pub message_id: i64,
    /// Sender.
    pub sender: Sender,
    /// Unix time (emulated) it was sent.
    pub date: i64,
    /// Unix time (emulated) of the last edit.
    pub edit_date: Option<i64>,
    /// Content.
    pub content: Content,
    /// Inline keyboard under the message.
    pub reply_markup: Option<InlineKeyboard>,
    /// The message this one replies to (a snapshot).
    pub reply_to: Option<Arc<MessageRecord>>,
    /// Deleted by the bot.
    pub deleted: bool,
    /// How many times it was edited.
    pub edit_count: u32,
    /// For invoices: the charge that paid it.
    pub paid_by_charge: Option<String>,
}

/// A message as the Bot API `Message` object.
pub struct MessageJson<'a> {
    /// The record.
    pub record: &'a MessageRecord,
    /// Chat id.
    pub chat_id: i64,
    /// Chat kind.
    pub chat: &'a ChatKind,
    /// The bot (for `from` of bot messages).
    pub bot: &'a BotIdentity,
    /// Whether to include `reply_to_message` (not nested twice).
    pub with_reply: bool,
}

impl Serialize for MessageJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("message_id", &r.message_id)?;
        match &r.sender {
            Sender::Bot => map.serialize_entry("from", self.bot)?,
            Sender::User(user) => map.serialize_entry("from", user.as_ref())?,
        }
        map.serialize_entry(
            "chat",
            &ChatJson {
                id: self.chat_id,
                kind: self.chat,
            },
        )?;
        map.serialize_entry("date", &r.date)?;
        if let Some(edit_date) = r.edit_date {
            map.serialize_entry("edit_date", &edit_date)?;
        }
        if self.with_reply
            && let Some(reply) = &r.reply_to
        {
            map.serialize_entry(
                "reply_to_message",
                &MessageJson {
                    record: reply,
                    chat_id: self.chat_id,
                    chat: self.chat,
                    bot: self.bot,
                    with_reply: false,
                },
            )?;
        }
        match &r.content {
            Content::Text(text) => {
                map.serialize_entry("text", &text.text)?;
                if !text.entities.is_empty() {
                    map.serialize_entry("entities", &text.entities)?;
                }
            }
            Content::Photo { sizes, caption } => {
                map.serialize_entry("photo", sizes)?;
                if let Some(caption) = caption {
                    map.serialize_entry("caption", &caption.text)?;
                    if !caption.entities.is_empty() {
                        map.serialize_entry("caption_entities", &caption.entities)?;
                    }
                }
            }
            Content::Document { document, caption } => {
                map.serialize_entry("document", document)?;
                if let Some(caption) = caption {
                    map.serialize_entry("caption", &caption.text)?;
                    if !caption.entities.is_empty() {
                        map.serialize_entry("caption_entities", &caption.entities)?;
                    }
                }
            }
            Content::Invoice(invoice) => {
                map.serialize_entry(
                    "invoice",
                    &serde_json::json!({
                        "title": invoice.title,
                        "description": invoice.description,
                        "start_parameter": invoice.start_parameter,
                        "currency": invoice.currency,
                        "total_amount": invoice.total_amount,
                    }),
                )?;
            }
            Content::SuccessfulPayment(payment) => {
                map.serialize_entry("successful_payment", payment)?;
            }
            Content::RefundedPayment(refund) => {
                map.serialize_entry("refunded_payment", refund)?;
            }
        }
        if let Some(markup) = &r.reply_markup {
            map.serialize_entry("reply_markup", markup)?;
        }
        map.end()
    }
}
