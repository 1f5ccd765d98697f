//! The request and response types of the control API, shared by the server and the Rust client.
//!
//! Why this exists: the control API is used from Rust tests (through [`super::ControlClient`]),
//! from the web page (JavaScript) and from a separately running emulator process. One set of
//! serde types keeps all three in agreement.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::counters::CountersSnapshot as Counters;
pub use crate::faults::FaultKind;
pub use crate::queries::CallbackAnswer;

/// A user to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    /// The id; a fresh one is chosen when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// First name (required, non-empty).
    pub first_name: String,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Username without `@`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Client language, e.g. `"ru"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    /// Telegram Premium.
    #[serde(default)]
    pub is_premium: bool,
    /// Whether the user has already started every bot. When false (the default) the bot gets
    /// `403 bot can't initiate conversation with a user` until the user writes to it.
    #[serde(default)]
    pub started: bool,
}

impl NewUser {
    /// A user with this first name.
    pub fn new(first_name: impl Into<String>) -> Self {
        Self {
            first_name: first_name.into(),
            ..Self::default()
        }
    }

    /// Sets the id.
    #[must_use]
    pub fn id(mut self, id: i64) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the last name.
    #[must_use]
    pub fn last_name(mut self, last_name: impl Into<String>) -> Self {
        self.last_name = Some(last_name.into());
        self
    }

    /// Sets the username.
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the language code.
    #[must_use]
    pub fn language(mut self, language_code: impl Into<String>) -> Self {
        self.language_code = Some(language_code.into());
        self
    }

    /// Marks the user as Premium.
    #[must_use]
    pub fn premium(mut self) -> Self {
        self.is_premium = true;
        self
    }

    /// The user has already started the bots (the bot may message them first).
    #[must_use]
    pub fn started(mut self) -> Self {
        self.started = true;
        self
    }
}

/// A user as the control API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id (also the private chat id).
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Language code.
    pub language_code: Option<String>,
    /// Premium.
    pub is_premium: bool,
}

/// A group to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGroup {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// Negative id; a fresh one is chosen when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Title.
    pub title: String,
    /// Members (existing user ids).
    #[serde(default)]
    pub members: Vec<i64>,
}

/// A group as the control API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Chat id (negative).
    pub id: i64,
    /// Title.
    pub title: String,
    /// Member user ids.
    pub members: Vec<i64>,
}

/// A text the user writes to the bot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendText {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// The writing user.
    pub user_id: i64,
    /// The chat (the user's private chat when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<i64>,
    /// The text; commands (`/start payload`) get `bot_command` entities.
    pub text: String,
    /// Reply to this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_message_id: Option<i64>,
}

/// The message a user sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// Chat id.
    pub chat_id: i64,
    /// Message id.
    pub message_id: i64,
    /// The `message` update queued for the bot (`None` if `allowed_updates` excludes messages).
    pub update_id: Option<i64>,
}

/// A press on an inline button.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PressButton {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// The pressing user (the private chat's user when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// The chat of the message.
    pub chat_id: i64,
    /// The message with the keyboard.
    pub message_id: i64,
    /// The button's `callback_data`.
    pub callback_data: String,
    /// How long to wait for `answerCallbackQuery` (real milliseconds; default 10 000, 0 = don't).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Send `callback_data` even when the message has no such button, as a modified client
    /// or a replayed request could: for tests of forged and tampered callback data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forged: bool,
}

/// What happened after a button press.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackOutcome {
    /// The callback query id.
    pub callback_query_id: String,
    /// The `callback_query` update (`None` if `allowed_updates` excludes it).
    pub update_id: Option<i64>,
    /// The bot's answer, if it answered within the wait.
    pub answer: Option<CallbackAnswer>,
}

/// Paying an invoice message or an invoice link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayInvoice {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// The paying user (the private chat's user when absent and a chat is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// Chat of the invoice message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<i64>,
    /// The invoice message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    /// An invoice link from createInvoiceLink (instead of a message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_link: Option<String>,
}

/// How a payment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The bot accepted the pre-checkout query; the payment was made.
    Paid,
    /// The bot answered `ok=false`.
    Declined,
    /// The bot did not answer within the pre-checkout timeout (10 s of emulated time).
    Timeout,
}

/// The result of a payment attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOutcome {
    /// How it ended.
    pub status: PaymentStatus,
    /// The pre-checkout query that was sent.
    pub pre_checkout_query_id: String,
    /// The charge id (paid only).
    pub telegram_payment_charge_id: Option<String>,
    /// The provider's charge id (paid only; empty for Stars).
    pub provider_payment_charge_id: Option<String>,
    /// The bot's `error_message` (declined only).
    pub error_message: Option<String>,
    /// The `successful_payment` message (paid only).
    pub message_id: Option<i64>,
}

/// Charges the next period of a Stars subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewSubscription {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// Any charge id of the subscription (usually the first one).
    pub telegram_payment_charge_id: String,
}

/// A user opens the payment form and closes it without paying (nothing reaches the bot).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonInvoice {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// Chat of the invoice message.
    pub chat_id: i64,
    /// The invoice message.
    pub message_id: i64,
}

/// Block or unblock the bot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRequest {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// The user.
    pub user_id: i64,
}

/// A chat in a transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatInfo {
    /// Chat id.
    pub id: i64,
    /// `"private"` or `"group"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Group title or the user's name.
    pub title: String,
}

/// A photo in a transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoInfo {
    /// The file id (largest size).
    pub file_id: String,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Where the emulator serves the bytes (`/control/files/<file_id>`), or the original URL for
    /// photos sent by URL.
    pub url: String,
}

/// A document in a transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentInfo {
    /// The file id.
    pub file_id: String,
    /// The file name the bot gave.
    pub file_name: String,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes.
    pub file_size: u64,
    /// Where the emulator serves the bytes (`/control/files/<file_id>`).
    pub url: String,
}

/// An invoice in a transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceInfo {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Currency.
    pub currency: String,
    /// Total amount.
    pub total_amount: i64,
    /// Payload.
    pub payload: String,
    /// The charge that paid it, if paid.
    pub paid_by_charge: Option<String>,
}

/// One message of a transcript, with everything a test or the web page needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptMessage {
    /// Message id.
    pub message_id: i64,
    /// Sent by the bot.
    pub from_bot: bool,
    /// Sender id (bot or user).
    pub sender_id: i64,
    /// Emulated Unix time.
    pub date: i64,
    /// Last edit (emulated Unix time).
    pub edit_date: Option<i64>,
    /// Number of edits.
    pub edit_count: u32,
    /// Deleted by the bot.
    pub deleted: bool,
    /// `text`, `photo`, `invoice`, `successful_payment` or `refunded_payment`.
    pub kind: String,
    /// Text or caption.
    pub text: Option<String>,
    /// Photo.
    pub photo: Option<PhotoInfo>,
    /// Document.
    #[serde(default)]
    pub document: Option<DocumentInfo>,
    /// Invoice.
    pub invoice: Option<InvoiceInfo>,
    /// The inline keyboard (`{"inline_keyboard": …}`).
    pub reply_markup: Option<Value>,
    /// Replied-to message.
    pub reply_to_message_id: Option<i64>,
    /// The message exactly as the Bot API shows it.
    pub api: Value,
}

impl TranscriptMessage {
    /// Whether an inline keyboard is attached.
    pub fn has_keyboard(&self) -> bool {
        self.reply_markup.is_some()
    }

    /// `(text, callback_data)` of every callback button.
    pub fn callback_buttons(&self) -> Vec<(String, String)> {
        let Some(rows) = self
            .reply_markup
            .as_ref()
            .and_then(|m| m.get("inline_keyboard"))
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        rows.iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|b| {
                Some((
                    b.get("text")?.as_str()?.to_owned(),
                    b.get("callback_data")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    /// The callback data of the first button whose label contains `label`.
    pub fn button_data(&self, label: &str) -> Option<String> {
        self.callback_buttons()
            .into_iter()
            .find(|(text, _)| text.contains(label))
            .map(|(_, data)| data)
    }
}

/// The last chat action (`sendChatAction`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAction {
    /// `typing`, `upload_photo`, …
    pub action: String,
    /// Emulated Unix time.
    pub date: i64,
}

/// A chat's transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The chat.
    pub chat: ChatInfo,
    /// Changes with every new message, edit or deletion.
    pub version: u64,
    /// The user blocked the bot.
    pub blocked: bool,
    /// The user started the bot.
    pub started: bool,
    /// The custom keyboard currently shown (`{"keyboard": …}`), if any.
    pub reply_keyboard: Option<Value>,
    /// The last chat action.
    pub last_action: Option<ChatAction>,
    /// Messages, oldest first (bounded by the retention limit; deleted ones are included).
    pub messages: Vec<TranscriptMessage>,
}

impl Transcript {
    /// Messages sent by the bot and not deleted.
    pub fn bot_messages(&self) -> impl Iterator<Item = &TranscriptMessage> {
        self.messages.iter().filter(|m| m.from_bot && !m.deleted)
    }

    /// The newest message sent by the bot and not deleted.
    pub fn last_bot_message(&self) -> Option<&TranscriptMessage> {
        self.bot_messages().last()
    }
}

/// A condition on a transcript message (all given fields must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFilter {
    /// Sent by the bot (`Some(true)`), by a user (`Some(false)`), or either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_bot: Option<bool>,
    /// Text or caption contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_contains: Option<String>,
    /// Message kind (`text`, `photo`, `invoice`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Has (or has not) an inline keyboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_keyboard: Option<bool>,
    /// Has a callback button with this data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    /// Message id greater than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_message_id: Option<i64>,
    /// Also match edited messages whose edit counter is above this (wait for an edit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_edit_count: Option<u32>,
}

impl MessageFilter {
    /// Any message from the bot.
    pub fn from_bot() -> Self {
        Self {
            from_bot: Some(true),
            ..Self::default()
        }
    }

    /// Requires the text or caption to contain `needle`.
    #[must_use]
    pub fn text_contains(mut self, needle: impl Into<String>) -> Self {
        self.text_contains = Some(needle.into());
        self
    }

    /// Requires the message kind.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Requires an inline keyboard (or its absence).
    #[must_use]
    pub fn has_keyboard(mut self, has: bool) -> Self {
        self.has_keyboard = Some(has);
        self
    }

    /// Requires a button with this callback data.
    #[must_use]
    pub fn callback_data(mut self, data: impl Into<String>) -> Self {
        self.callback_data = Some(data.into());
        self
    }

    /// Requires a message id greater than `message_id`.
    #[must_use]
    pub fn after(mut self, message_id: i64) -> Self {
        self.after_message_id = Some(message_id);
        self
    }

    /// Requires at least `edits + 1` edits.
    #[must_use]
    pub fn edited_more_than(mut self, edits: u32) -> Self {
        self.min_edit_count = Some(edits);
        self
    }

    /// Whether `message` satisfies the filter (deleted messages never do).
    pub fn matches(&self, message: &TranscriptMessage) -> bool {
        if message.deleted {
            return false;
        }
        if self.from_bot.is_some_and(|b| b != message.from_bot) {
            return false;
        }
        if let Some(needle) = &self.text_contains
            && !message
                .text
                .as_deref()
                .is_some_and(|t| t.contains(needle.as_str()))
        {
            return false;
        }
        if self.kind.as_ref().is_some_and(|k| *k != message.kind) {
            return false;
        }
        if self
            .has_keyboard
            .is_some_and(|h| h != message.has_keyboard())
        {
            return false;
        }
        if let Some(data) = &self.callback_data
            && !message.callback_buttons().iter().any(|(_, d)| d == data)
        {
            return false;
        }
        if self
            .after_message_id
            .is_some_and(|after| message.message_id <= after)
        {
            return false;
        }
        if self
            .min_edit_count
            .is_some_and(|min| message.edit_count <= min)
        {
            return false;
        }
        true
    }
}

/// A wait for a message matching a filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitForMessage {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// The chat.
    pub chat_id: i64,
    /// The condition.
    #[serde(default)]
    pub filter: MessageFilter,
    /// How long to wait (real milliseconds, at most 120 000).
    pub timeout_ms: u64,
}

/// Injects a fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectFault {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// Method name (any case), or `"*"` / absent for every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// How the calls fail.
    pub fault: FaultKind,
    /// How many calls fail.
    pub count: u32,
}

/// Makes the webhook endpoint (un)reachable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookReachability {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// When true, deliveries fail with "Connection refused".
    pub unreachable: bool,
}

/// The order `getStarTransactions` lists in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StarTransactionOrder {
    /// Bot (username); the default bot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// When true, newest first; when false, chronological (the documented order, the default).
    pub newest_first: bool,
}

/// Advances emulated time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdvanceTime {
    /// Seconds to add.
    pub seconds: f64,
}

/// Emulated time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeInfo {
    /// Emulated Unix time, seconds.
    pub now: i64,
    /// Emulated Unix time, milliseconds.
    pub now_ms: i64,
    /// Emulated minus real time, milliseconds.
    pub offset_ms: i64,
}

/// A bot served by the emulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BotInfo {
    /// Bot id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Name.
    pub first_name: String,
    /// Token.
    pub token: String,
    /// Commands set for the default scope and no language (`[{command, description}]`).
    pub commands: Vec<Value>,
    /// Current webhook URL (empty when polling).
    pub webhook_url: String,
    /// A getUpdates long poll is waiting right now.
    pub long_poll_waiting: bool,
    /// Pending (unconfirmed, undelivered) updates.
    pub pending_update_count: usize,
}

/// A pending update (debugging aid).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingUpdate {
    /// update_id.
    pub update_id: i64,
    /// Type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Webhook delivery failures so far.
    pub fail_count: u32,
    /// Current backoff delay of the webhook schedule (seconds).
    pub delay_secs: u32,
    /// Earliest next webhook attempt (emulated Unix ms).
    pub next_attempt_at_ms: i64,
    /// When the update expires undelivered (emulated Unix ms).
    pub expires_at_ms: i64,
    /// A webhook delivery is in progress.
    pub in_flight: bool,
    /// The update JSON.
    pub update: Value,
}
