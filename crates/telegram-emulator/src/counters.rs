//! Counters a test can read to assert on what happened.
//!
//! Why this exists: reliability tests need to prove negatives — "nobody dropped pending updates",
//! "no 429 was provoked", "each update was delivered once despite retries". Plain atomics keyed by
//! the closed `Method` enum keep this cheap on the hot path and bounded in memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::methods::Method;

/// Live counters of one bot.
#[derive(Debug)]
pub struct Counters {
    calls: Vec<AtomicU64>,
    /// Calls of methods the emulator does not know (answered 404).
    pub unknown_method_calls: AtomicU64,
    /// Calls with an unknown token (answered 401).
    pub unauthorized_calls: AtomicU64,
    /// 429 answers (flood limits and injected faults).
    pub responses_429: AtomicU64,
    /// 409 answers.
    pub responses_409: AtomicU64,
    /// Other 4xx answers.
    pub responses_4xx_other: AtomicU64,
    /// 5xx answers (injected faults).
    pub responses_5xx: AtomicU64,
    /// Injected faults that fired.
    pub faults_fired: AtomicU64,
    /// Messages stored (sent by the bot).
    pub messages_sent: AtomicU64,
    /// Messages sent with `allow_paid_broadcast`.
    pub paid_broadcast_messages: AtomicU64,
    /// Updates created.
    pub updates_created: AtomicU64,
    /// Updates not created because `allowed_updates` excluded their type.
    pub updates_filtered: AtomicU64,
    /// Updates confirmed through getUpdates offsets.
    pub updates_confirmed: AtomicU64,
    /// Updates delivered to the webhook (2xx).
    pub updates_delivered_webhook: AtomicU64,
    /// Updates dropped because their lifetime ended before delivery.
    pub updates_dropped_expired: AtomicU64,
    /// Updates dropped by `drop_pending_updates` or a negative getUpdates offset.
    pub updates_dropped_by_request: AtomicU64,
    /// Updates dropped because the pending queue was full.
    pub updates_dropped_overflow: AtomicU64,
    /// Webhook POSTs attempted.
    pub webhook_attempts: AtomicU64,
    /// Webhook POSTs that failed (non-2xx, timeout, connection error).
    pub webhook_failures: AtomicU64,
    /// Webhook POSTs that were retries of an update that failed before.
    pub webhook_retries: AtomicU64,
    /// Methods executed from webhook responses (`{"method": …}` in a 2xx body).
    pub webhook_reply_methods: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            calls: Method::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            unknown_method_calls: AtomicU64::new(0),
            unauthorized_calls: AtomicU64::new(0),
            responses_429: AtomicU64::new(0),
            responses_409: AtomicU64::new(0),
            responses_4xx_other: AtomicU64::new(0),
            responses_5xx: AtomicU64::new(0),
            faults_fired: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            paid_broadcast_messages: AtomicU64::new(0),
            updates_created: AtomicU64::new(0),
            updates_filtered: AtomicU64::new(0),
            updates_confirmed: AtomicU64::new(0),
            updates_delivered_webhook: AtomicU64::new(0),
            updates_dropped_expired: AtomicU64::new(0),
            updates_dropped_by_request: AtomicU64::new(0),
            updates_dropped_overflow: AtomicU64::new(0),
            webhook_attempts: AtomicU64::new(0),
            webhook_failures: AtomicU64::new(0),
            webhook_retries: AtomicU64::new(0),
            webhook_reply_methods: AtomicU64::new(0),
        }
    }
}

/// Adds one.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n`.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// Counts a call of `method`.
    pub fn count_call(&self, method: Method) {
        if let Some(counter) = self.calls.get(method.index()) {
            bump(counter);
        }
    }

    /// Counts an error answer by status.
    pub fn count_error(&self, code: u16) {
        match code {
            429 => bump(&self.responses_429),
            409 => bump(&self.responses_409),
            500..=599 => bump(&self.responses_5xx),
            _ => bump(&self.responses_4xx_other),
        }
    }

    /// A copy for the control API.
    pub fn snapshot(&self) -> CountersSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let calls = Method::ALL
            .iter()
            .zip(&self.calls)
            .filter(|(_, c)| load(c) > 0)
            .map(|(m, c)| (m.name().to_owned(), load(c)))
            .collect();
        CountersSnapshot {
            calls,
            unknown_method_calls: load(&self.unknown_method_calls),
            unauthorized_calls: load(&self.unauthorized_calls),
            responses_429: load(&self.responses_429),
            responses_409: load(&self.responses_409),
            responses_4xx_other: load(&self.responses_4xx_other),
            responses_5xx: load(&self.responses_5xx),
            faults_fired: load(&self.faults_fired),
            messages_sent: load(&self.messages_sent),
            paid_broadcast_messages: load(&self.paid_broadcast_messages),
            updates_created: load(&self.updates_created),
            updates_filtered: load(&self.updates_filtered),
            updates_confirmed: load(&self.updates_confirmed),
            updates_delivered_webhook: load(&self.updates_delivered_webhook),
            updates_dropped_expired: load(&self.updates_dropped_expired),
            updates_dropped_by_request: load(&self.updates_dropped_by_request),
            updates_dropped_overflow: load(&self.updates_dropped_overflow),
            webhook_attempts: load(&self.webhook_attempts),
            webhook_failures: load(&self.webhook_failures),
            webhook_retries: load(&self.webhook_retries),
            webhook_reply_methods: load(&self.webhook_reply_methods),
        }
    }
}

/// A point-in-time copy of a bot's counters (see [`Counters`] for the meaning of each field).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct CountersSnapshot {
    /// Calls per method name (methods never called are absent).
    pub calls: BTreeMap<String, u64>,
    pub unknown_method_calls: u64,
    pub unauthorized_calls: u64,
    pub responses_429: u64,
    pub responses_409: u64,
    pub responses_4xx_other: u64,
    pub responses_5xx: u64,
    pub faults_fired: u64,
    pub messages_sent: u64,
    pub paid_broadcast_messages: u64,
    pub updates_created: u64,
    pub updates_filtered: u64,
    pub updates_confirmed: u64,
    pub updates_delivered_webhook: u64,
    pub updates_dropped_expired: u64,
    pub updates_dropped_by_request: u64,
    pub updates_dropped_overflow: u64,
    pub webhook_attempts: u64,
    pub webhook_failures: u64,
    pub webhook_retries: u64,
    pub webhook_reply_methods: u64,
}

impl CountersSnapshot {
    /// Calls of one method.
    pub fn calls_of(&self, method: Method) -> u64 {
        self.calls.get(method.name()).copied().unwrap_or(0)
    }

    /// Updates dropped for any reason (expired, by request, overflow).
    pub fn updates_dropped(&self) -> u64 {
        self.updates_dropped_expired
            + self.updates_dropped_by_request
            + self.updates_dropped_overflow
    }
}
