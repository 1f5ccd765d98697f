//! The update queue of a bot and `getUpdates` (long polling).
//!
//! Why this exists: how updates are confirmed, kept and expired decides whether a bot loses or
//! doubles work. This module follows the Bot API server (TBA `Client.cpp`): updates get
//! increasing ids; `getUpdates` with `offset` confirms everything below it; a negative offset
//! keeps only the newest updates; every update has a lifetime (24 h from the message date for
//! messages, 150 s for callback and pre-checkout queries) after which it is dropped undelivered;
//! `allowed_updates` filters updates when they are created and persists until changed; a waiting
//! long poll is woken by a new update and terminated with 409 by a newer poll or by setWebhook.
//! The same queue feeds the webhook engine ([`crate::webhook`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::counters::{Counters, add, bump};
use crate::error::{ApiError, text};
use crate::params::Params;
use crate::state::{BotState, lock};
use crate::webhook::WebhookSettings;

macro_rules! update_types {
    ($($variant:ident => $name:literal,)*) => {
        /// The type of an update (the name of its one non-`update_id` field).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum UpdateType {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl UpdateType {
            /// All types, in the order of the Bot API documentation (bit order of the mask).
            pub const ALL: &'static [UpdateType] = &[$(UpdateType::$variant,)*];

            /// The Bot API name.
            pub fn name(self) -> &'static str {
                match self {
                    $(UpdateType::$variant => $name,)*
                }
            }
        }
    };
}

update_types! {
    Message => "message",
    EditedMessage => "edited_message",
    ChannelPost => "channel_post",
    EditedChannelPost => "edited_channel_post",
    BusinessConnection => "business_connection",
    BusinessMessage => "business_message",
    EditedBusinessMessage => "edited_business_message",
    DeletedBusinessMessages => "deleted_business_messages",
    MessageReaction => "message_reaction",
    MessageReactionCount => "message_reaction_count",
    InlineQuery => "inline_query",
    ChosenInlineResult => "chosen_inline_result",
    CallbackQuery => "callback_query",
    ShippingQuery => "shipping_query",
    PreCheckoutQuery => "pre_checkout_query",
    PurchasedPaidMedia => "purchased_paid_media",
    Poll => "poll",
    PollAnswer => "poll_answer",
    MyChatMember => "my_chat_member",
    ChatMember => "chat_member",
    ChatJoinRequest => "chat_join_request",
    ChatBoost => "chat_boost",
    RemovedChatBoost => "removed_chat_boost",
}

impl UpdateType {
    fn bit(self) -> u32 {
        let index = Self::ALL.iter().position(|t| *t == self).unwrap_or(0);
        1 << index
    }
}

/// All types except `chat_member`, `message_reaction` and `message_reaction_count` (the default
/// of `allowed_updates`).
pub fn default_allowed_mask() -> u32 {
    let all = (1u32 << UpdateType::ALL.len()) - 1;
    all & !UpdateType::ChatMember.bit()
        & !UpdateType::MessageReaction.bit()
        & !UpdateType::MessageReactionCount.bit()
}

/// Parses `allowed_updates` like TBA: 0 means "not specified / unusable, keep the old setting";
/// an array with no known names means the default.
pub fn allowed_mask(raw: &str) -> u32 {
    if raw.is_empty() {
        return 0;
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(raw) else {
        return 0;
    };
    let mut mask = 0;
    for item in items {
        let serde_json::Value::String(name) = item else {
            return 0;
        };
        let name = name.to_ascii_lowercase();
        if let Some(t) = UpdateType::ALL.iter().find(|t| t.name() == name) {
            mask |= t.bit();
        }
    }
    if mask == 0 {
        default_allowed_mask()
    } else {
        mask
    }
}

/// The names in a mask, in documentation order.
pub fn mask_names(mask: u32) -> Vec<&'static str> {
    UpdateType::ALL
        .iter()
        .filter(|t| mask & t.bit() != 0)
        .map(|t| t.name())
        .collect()
}

/// One queued update.
#[derive(Debug)]
pub struct QueuedUpdate {
    /// `update_id`.
    pub id: i64,
    /// Its type.
    pub kind: UpdateType,
    /// The JSON of the update without `update_id` and braces, e.g. `"message":{…}`.
    pub body: Arc<str>,
    /// Webhook ordering queue: the chat id for messages, the user id plus a type offset for
    /// callback and pre-checkout queries (as TBA does).
    pub queue_id: i64,
    /// When it was created (emulated ms).
    pub created_ms: i64,
    /// When it expires undelivered (emulated ms).
    pub expires_at_ms: i64,
    /// Failed webhook deliveries so far.
    pub fail_count: u32,
    /// Current backoff delay (seconds) of the webhook schedule.
    pub delay_secs: u32,
    /// Earliest next webhook attempt (emulated ms).
    pub wakeup_at_ms: i64,
    /// A webhook delivery is in progress.
    pub in_flight: bool,
}

impl QueuedUpdate {
    /// The complete update JSON.
    pub fn json(&self) -> String {
        render_update(self.id, &self.body)
    }
}

/// The complete JSON of one update.
pub fn render_update(id: i64, body: &str) -> String {
    format!("{{\"update_id\":{id},{body}}}")
}

/// What a waiting long poll is told when it is cut short.
type PollerCancel = oneshot::Sender<&'static str>;

/// Update queue, webhook registration and long-poll bookkeeping of one bot.
#[derive(Debug)]
pub struct UpdateState {
    next_id: i64,
    /// Pending updates by id.
    pub queue: BTreeMap<i64, QueuedUpdate>,
    /// Current `allowed_updates`.
    pub allowed_mask: u32,
    /// The registered webhook.
    pub webhook: Option<WebhookSettings>,
    /// Incremented on every webhook change.
    pub webhook_generation: u64,
    /// Webhook deliveries in progress.
    pub in_flight: u32,
    /// Last webhook error: (emulated Unix time, message).
    pub last_error: Option<(i64, String)>,
    /// When the last setWebhook with a URL was accepted (TBA allows one per second).
    pub last_set_webhook: Option<Instant>,
    poller: Option<(u64, PollerCancel)>,
    poller_seq: u64,
    next_conflict_at: Option<Instant>,
    prev_get_updates: Option<(i64, Instant)>,
}

impl UpdateState {
    /// An empty queue whose first update will have `first_id`.
    pub fn new(first_id: i64) -> Self {
        Self {
            next_id: first_id,
            queue: BTreeMap::new(),
            allowed_mask: default_allowed_mask(),
            webhook: None,
            webhook_generation: 0,
            in_flight: 0,
            last_error: None,
            last_set_webhook: None,
            poller: None,
            poller_seq: 0,
            next_conflict_at: None,
            prev_get_updates: None,
        }
    }

    /// Queues an update (see [`BotState::push_update`]).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        kind: UpdateType,
        body: String,
        queue_id: i64,
        now_ms: i64,
        lifetime_secs: u32,
        max_pending: usize,
        counters: &Counters,
    ) -> Option<i64> {
        if self.allowed_mask & kind.bit() == 0 {
            bump(&counters.updates_filtered);
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.queue.insert(
            id,
            QueuedUpdate {
                id,
                kind,
                body: Arc::from(body),
                queue_id,
                created_ms: now_ms,
                expires_at_ms: now_ms + i64::from(lifetime_secs) * 1000,
                fail_count: 0,
                delay_secs: 1,
                wakeup_at_ms: now_ms,
                in_flight: false,
            },
        );
        bump(&counters.updates_created);
        while self.queue.len() > max_pending {
            if self.queue.pop_first().is_some() {
                bump(&counters.updates_dropped_overflow);
            }
        }
        Some(id)
    }

    /// Drops updates whose lifetime is over (except ones being delivered right now).
    pub fn purge_expired(&mut self, now_ms: i64, counters: &Counters) {
        let before = self.queue.len();
        self.queue
            .retain(|_, u| u.in_flight || u.expires_at_ms > now_ms);
        add(
            &counters.updates_dropped_expired,
            (before - self.queue.len()) as u64,
        );
    }

    /// Drops everything (`drop_pending_updates`).
    pub fn drop_all(&mut self, counters: &Counters) {
        add(
            &counters.updates_dropped_by_request,
            self.queue.len() as u64,
        );
        self.queue.clear();
        self.in_flight = 0;
    }

    /// Unconfirmed updates (`pending_update_count`).
    pub fn pending_count(&self) -> usize {
        self.queue.len()
    }

    /// The id the next update will get.
    pub fn next_id(&self) -> i64 {
        self.next_id
    }

    /// Whether a getUpdates long poll is waiting.
    pub fn long_poll_waiting(&self) -> bool {
        self.poller.is_some()
    }

    /// Terminates a waiting long poll with a 409 description.
    pub fn abort_long_poll(&mut self, description: &'static str) {
        if let Some((_, cancel)) = self.poller.take() {
            let _ = cancel.send(description);
        }
    }

    /// Applies `offset` and returns up to `limit` updates.
    fn take_batch(
        &mut self,
        offset: i64,
        limit: usize,
        now_ms: i64,
        counters: &Counters,
    ) -> Vec<String> {
        self.purge_expired(now_ms, counters);
        if offset < 0 {
            // Keep only the newest `-offset` updates; the rest are forgotten.
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            while self.queue.len() > keep {
                if self.queue.pop_first().is_some() {
                    bump(&counters.updates_dropped_by_request);
                }
            }
        } else if offset > 0 && offset <= self.next_id {
            // Everything below the offset is confirmed. An offset in the future is ignored, as
            // TBA falls back to the queue head.
            let mut confirmed = 0;
            while let Some((&first, _)) = self.queue.first_key_value() {
                if first >= offset {
                    break;
                }
                self.queue.pop_first();
                confirmed += 1;
            }
            add(&counters.updates_confirmed, confirmed);
        }
        self.queue
            .values()
            .take(limit)
            .map(QueuedUpdate::json)
            .collect()
    }

    /// How long a 409 must be held back so that consecutive ones are `spacing` apart.
    fn conflict_delay(&mut self, spacing: Duration) -> Duration {
        let now = Instant::now();
        match self.next_conflict_at {
            Some(at) if now < at => spacing,
            _ => {
                self.next_conflict_at = Some(now + spacing);
                Duration::ZERO
            }
        }
    }
}

/// Longest long-poll timeout (TBA `LONG_POLL_MAX_TIMEOUT`).
pub const LONG_POLL_MAX_TIMEOUT_SECS: i64 = 50;

/// `getUpdates`.
pub async fn get_updates(bot: &BotState, params: &Params) -> Result<String, ApiError> {
    let spacing = bot.shared.config.conflict_spacing;
    let mut offset = params.int_arg("offset", 0, i64::from(i32::MIN), i64::from(i32::MAX));
    let mut limit = params.int_arg("limit", 100, 1, 100);
    let mut timeout = params.int_arg("timeout", 0, 0, LONG_POLL_MAX_TIMEOUT_SECS);
    let conflict = {
        let mut updates = lock(&bot.updates);
        if updates.webhook.is_some() {
            Some(updates.conflict_delay(spacing))
        } else {
            let mask = allowed_mask(params.arg("allowed_updates"));
            if mask != 0 {
                updates.allowed_mask = mask;
            }
            // TBA: a repeated poll with the same offset within 3 s waits at least 3 s, and within
            // 0.5 s returns at most one update (protects against tight polling loops).
            let now = Instant::now();
            if let Some((prev_offset, at)) = updates.prev_get_updates
                && prev_offset == offset
            {
                let since = now.saturating_duration_since(at);
                if timeout < 3 && since < Duration::from_secs(3) {
                    timeout = 3;
                }
                if since < Duration::from_millis(500) {
                    limit = 1;
                }
            }
            updates.prev_get_updates = Some((offset, now));
            None
        }
    };
    if let Some(delay) = conflict {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        return Err(ApiError::conflict(text::CONFLICT_WEBHOOK_ACTIVE));
    }
    let limit = usize::try_from(limit).unwrap_or(100);
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(u64::try_from(timeout).unwrap_or(0));
    let mut shutdown = bot.shared.shutdown.clone();
    loop {
        let arrived = bot.updates_arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let (batch, cancelled) = {
            let mut updates = lock(&bot.updates);
            let now_ms = bot.shared.clock.now_ms();
            let batch = updates.take_batch(offset, limit, now_ms, &bot.counters);
            if offset < 0 {
                // The negative offset has been applied; from now on read from the head.
                offset = 0;
            }
            if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
                (Some(batch), None)
            } else {
                // Become the long poll; a previous one is terminated.
                updates.abort_long_poll(text::CONFLICT_OTHER_POLLER);
                updates.poller_seq += 1;
                let (cancel_tx, cancel_rx) = oneshot::channel();
                updates.poller = Some((updates.poller_seq, cancel_tx));
                (None, Some((updates.poller_seq, cancel_rx)))
            }
        };
        if let Some(batch) = batch {
            return Ok(format!("[{}]", batch.join(",")));
        }
        let Some((seq, cancel_rx)) = cancelled else {
            return Ok("[]".to_owned());
        };
        let outcome = tokio::select! {
            () = &mut arrived => {
                // TBA waits a millisecond more to batch updates that arrive together.
                tokio::time::sleep(Duration::from_millis(1)).await;
                None
            }
            () = tokio::time::sleep_until(deadline) => None,
            description = cancel_rx => description.ok(),
            _ = shutdown.changed() => Some(text::CONFLICT_OTHER_POLLER),
        };
        {
            let mut updates = lock(&bot.updates);
            if updates.poller.as_ref().is_some_and(|(s, _)| *s == seq) {
                updates.poller = None;
            }
        }
        if let Some(description) = outcome {
            let delay = lock(&bot.updates).conflict_delay(spacing);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            return Err(ApiError::conflict(description));
        }
        if tokio::time::Instant::now() >= deadline {
            // One last look, then answer (possibly empty).
            let mut updates = lock(&bot.updates);
            let now_ms = bot.shared.clock.now_ms();
            let batch = updates.take_batch(offset, limit, now_ms, &bot.counters);
            return Ok(format!("[{}]", batch.join(",")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_updates_parsing() {
        assert_eq!(allowed_mask(""), 0);
        assert_eq!(allowed_mask("not json"), 0);
        assert_eq!(allowed_mask("[]"), default_allowed_mask());
        let mask = allowed_mask(r#"["message","callback_query"]"#);
        assert_eq!(mask_names(mask), vec!["message", "callback_query"]);
        assert!(!mask_names(default_allowed_mask()).contains(&"chat_member"));
    }

    #[test]
    fn offset_confirms_and_negative_offset_forgets() {
        let counters = Counters::default();
        let mut state = UpdateState::new(10);
        for _ in 0..5 {
            state.push(
                UpdateType::Message,
                "\"message\":{}".into(),
                1,
                0,
                86_400,
                100,
                &counters,
            );
        }
        let batch = state.take_batch(12, 100, 0, &counters);
        assert_eq!(batch.len(), 3);
        assert!(batch[0].starts_with("{\"update_id\":12,"));
        let batch = state.take_batch(-1, 100, 0, &counters);
        assert_eq!(batch.len(), 1);
        assert!(batch[0].starts_with("{\"update_id\":14,"));
        assert_eq!(counters.snapshot().updates_confirmed, 2);
        assert_eq!(counters.snapshot().updates_dropped_by_request, 2);
    }

    #[test]
    fn expired_updates_are_dropped() {
        let counters = Counters::default();
        let mut state = UpdateState::new(1);
        state.push(
            UpdateType::CallbackQuery,
            "\"callback_query\":{}".into(),
            1,
            0,
            150,
            100,
            &counters,
        );
        assert_eq!(state.take_batch(0, 100, 149_999, &counters).len(), 1);
        assert_eq!(state.take_batch(0, 100, 150_000, &counters).len(), 0);
        assert_eq!(counters.snapshot().updates_dropped_expired, 1);
    }

    #[test]
    fn filtered_types_are_not_queued() {
        let counters = Counters::default();
        let mut state = UpdateState::new(1);
        state.allowed_mask = allowed_mask(r#"["message"]"#);
        assert!(
            state
                .push(
                    UpdateType::CallbackQuery,
                    String::new(),
                    1,
                    0,
                    150,
                    100,
                    &counters
                )
                .is_none()
        );
        assert!(
            state
                .push(
                    UpdateType::Message,
                    String::new(),
                    1,
                    0,
                    150,
                    100,
                    &counters
                )
                .is_some()
        );
        assert_eq!(counters.snapshot().updates_filtered, 1);
    }
}
