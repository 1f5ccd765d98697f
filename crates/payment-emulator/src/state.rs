//! The emulator's memory: invoices, payments, refunds, idempotence answers, queued faults and
//! notification rules, notifications, behind one lock.
//!
//! Why one lock: every operation is short and in memory, and one lock makes "pay an invoice and
//! queue its webhook" or "check an idempotence key and create the payment" atomic without
//! reasoning about orderings. Nothing awaits while holding it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::config::PaymentEmulatorConfig;
use crate::model::{
    FaultKind, FaultSpec, Invoice, Notification, NotificationAction, NotificationRule,
    NotificationState, Payment, Provider, Refund, WebhookUrls,
};

/// Most faults or notification rules queued at once.
pub const MAX_QUEUED_RULES: usize = 1_000;

/// Everything the handlers and background tasks share.
#[derive(Debug)]
pub struct App {
    /// The configuration it started with.
    pub config: PaymentEmulatorConfig,
    /// Base URL of payment pages (no trailing slash).
    pub public_url: String,
    /// Emulated time.
    pub clock: Clock,
    /// The state.
    pub state: Mutex<State>,
    /// Wakes the notification engine (a new notification, a changed schedule).
    pub wake: Notify,
    /// Becomes true at shutdown.
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    /// Locks the state (a poisoned lock is still usable: every change is complete or absent).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Emulated now, Unix ms.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Locks the state as of `now_ms`: every deadline due by then has fired (invoices expired,
    /// payments cancelled), so each request sees what the provider would show.
    pub fn lock_at(&self, now_ms: i64) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        crate::notify::fire_deadlines(self, &mut state, now_ms);
        state
    }
}

/// Why a control or page operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// The object is in a state that does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong.
    #[error("{0}")]
    BadRequest(String),
}

/// An invoice and what the emulator tracks beside it.
#[derive(Clone, Debug)]
pub struct InvoiceRecord {
    /// The wire object.
    pub invoice: Invoice,
    /// When it expires (Unix ms).
    pub expires_at_ms: Option<i64>,
}

/// A payment and what the emulator tracks beside it.
#[derive(Clone, Debug)]
pub struct PaymentRecord {
    /// The wire object.
    pub payment: Payment,
    /// Creation order (list cursor).
    pub seq: u64,
    /// Creation instant (Unix ms).
    pub created_at_ms: i64,
    /// Capture instant (Unix ms).
    pub captured_at_ms: Option<i64>,
    /// Refunded so far, minor units.
    pub refunded_minor: i64,
    /// Whether paying completes it (`capture: true`) or leaves it waiting for capture.
    pub capture: bool,
    /// The 54-FZ `receipt` the merchant sent (YooKassa does not echo it in the payment
    /// object; the control API shows it so that tests can check what a receipt carried).
    pub receipt: Option<serde_json::Value>,
}

/// Something that happens at an instant unless the object moved on first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deadline {
    /// An active invoice expires.
    Invoice(i64),
    /// A pending payment is cancelled (`expired_on_confirmation`).
    PaymentConfirmation(String),
    /// A payment waiting for capture is cancelled (`expired_on_capture`).
    PaymentCapture(String),
}

/// A stored answer to a YooKassa POST, replayed for the same `Idempotence-Key`.
#[derive(Clone, Debug)]
pub struct IdempotentAnswer {
    /// Hash of the operation and its canonical body.
    pub fingerprint: String,
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// When it was stored (Unix ms); kept 24 h.
    pub at_ms: i64,
}

/// How long YooKassa keeps an idempotence key (24 hours).
pub const IDEMPOTENCE_TTL_MS: i64 = 24 * 3600 * 1000;

/// A notification about to be queued.
#[derive(Clone, Debug)]
pub struct NewNotification {
    /// Which provider sends it.
    pub provider: Provider,
    /// Its event name.
    pub event: String,
    /// The object it is about.
    pub object_id: String,
    /// The exact body.
    pub body: String,
    /// The Crypto Pay signature header.
    pub signature: Option<String>,
}

/// The whole state.
#[derive(Debug)]
pub struct State {
    /// Next Crypto Pay invoice id.
    pub next_invoice_id: i64,
    /// Invoices by id.
    pub invoices: BTreeMap<i64, InvoiceRecord>,
    /// Invoice ids by hash (payment page).
    pub invoice_by_hash: HashMap<String, i64>,
    /// Payments by id.
    pub payments: HashMap<String, PaymentRecord>,
    /// Payment ids in creation order.
    pub payment_order: BTreeMap<u64, String>,
    /// Next payment sequence number.
    pub next_payment_seq: u64,
    /// Refunds by id.
    pub refunds: HashMap<String, Refund>,
    /// Refund ids in creation order (list cursor; sequence numbers shared with payments).
    pub refund_order: BTreeMap<u64, String>,
    /// YooKassa idempotence answers by key.
    pub idempotence: HashMap<String, IdempotentAnswer>,
    /// When old idempotence answers were last swept (Unix ms).
    pub idempotence_swept_at_ms: i64,
    /// Pending deadlines, soonest first.
    pub deadlines: BTreeSet<(i64, Deadline)>,
    /// Queued faults, in order.
    pub faults: Vec<FaultSpec>,
    /// Queued notification rules, in order.
    pub rules: Vec<NotificationRule>,
    /// Notifications by id.
    pub notifications: BTreeMap<u64, Notification>,
    /// Pending notification attempts, soonest first: (instant, notification id). An entry whose
    /// notification moved on is stale and skipped.
    pub schedule: BTreeSet<(i64, u64)>,
    /// Notifications `deliver_now` asked for: attempted even past the retry window.
    pub forced: HashSet<u64>,
    /// Next notification id.
    pub next_notification_id: u64,
    /// Next Crypto Pay `update_id`.
    pub next_update_id: i64,
    /// Where notifications go.
    pub webhooks: WebhookUrls,
    /// API calls per method (Crypto Pay method or YooKassa operation name).
    pub calls: BTreeMap<String, u64>,
}

impl State {
    /// Empty state with the configured webhook URLs.
    pub fn new(config: &PaymentEmulatorConfig) -> Self {
        Self {
            next_invoice_id: 1,
            invoices: BTreeMap::new(),
            invoice_by_hash: HashMap::new(),
            payments: HashMap::new(),
            payment_order: BTreeMap::new(),
            next_payment_seq: 1,
            refunds: HashMap::new(),
            refund_order: BTreeMap::new(),
            idempotence: HashMap::new(),
            idempotence_swept_at_ms: 0,
            deadlines: BTreeSet::new(),
            faults: Vec::new(),
            rules: Vec::new(),
            notifications: BTreeMap::new(),
            schedule: BTreeSet::new(),
            forced: HashSet::new(),
            next_notification_id: 1,
            next_update_id: 1,
            calls: BTreeMap::new(),
            webhooks: WebhookUrls {
                cryptopay: config.cryptopay.webhook_url.clone(),
                yookassa: config.yookassa.webhook_url.clone(),
            },
        }
    }

    /// Invoices, payments and refunds held.
    pub fn object_count(&self) -> usize {
        self.invoices.len() + self.payments.len() + self.refunds.len()
    }

    /// Takes one use of the first queued fault matching `method` (or `*`).
    pub fn take_fault(&mut self, method: &str) -> Option<FaultKind> {
        let index = self
            .faults
            .iter()
            .position(|f| f.method == "*" || f.method == method)?;
        let fault = self.faults.get_mut(index)?;
        let kind = fault.fault.clone();
        fault.count = fault.count.saturating_sub(1);
        if fault.count == 0 {
            self.faults.remove(index);
        }
        Some(kind)
    }

    /// Queues a notification of `provider` (if its webhook URL is set), after the queued rules.
    /// Returns whether one was queued for sending.
    pub fn queue_notification(
        &mut self,
        config: &PaymentEmulatorConfig,
        now_ms: i64,
        new: NewNotification,
    ) -> bool {
        let NewNotification {
            provider,
            event,
            object_id,
            body,
            signature,
        } = new;
        let url = match provider {
            Provider::Cryptopay => &self.webhooks.cryptopay,
            Provider::Yookassa => &self.webhooks.yookassa,
        };
        if url.is_none() {
            return false;
        }
        let action = self.take_rule(provider);
        let (state, next) = match action {
            Some(NotificationAction::Drop) => (NotificationState::Dropped, None),
            Some(NotificationAction::Delay { ms }) => (
                NotificationState::Pending,
                Some(now_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX / 4))),
            ),
            None => (NotificationState::Pending, Some(now_ms)),
        };
        let id = self.next_notification_id;
        self.next_notification_id += 1;
        self.notifications.insert(
            id,
            Notification {
                id,
                provider,
                event,
                object_id,
                body,
                signature,
                state,
                next_attempt_at_ms: next,
                created_at_ms: now_ms,
                repeat_of: None,
                attempts: Vec::new(),
            },
        );
        if let Some(at) = next {
            self.schedule.insert((at, id));
        }
        self.forget_old_notifications(config.limits.max_notifications);
        state == NotificationState::Pending
    }

    fn take_rule(&mut self, provider: Provider) -> Option<NotificationAction> {
        let index = self
            .rules
            .iter()
            .position(|r| r.provider.is_none_or(|p| p == provider))?;
        let rule = self.rules.get_mut(index)?;
        let action = rule.action.clone();
        rule.count = rule.count.saturating_sub(1);
        if rule.count == 0 {
            self.rules.remove(index);
        }
        Some(action)
    }

    /// Keeps at most `max` notifications, forgetting the oldest finished ones first.
    pub fn forget_old_notifications(&mut self, max: usize) {
        while self.notifications.len() > max {
            let finished = self
                .notifications
                .iter()
                .find(|(_, n)| {
                    !matches!(
                        n.state,
                        NotificationState::Pending | NotificationState::InFlight
                    )
                })
                .map(|(id, _)| *id);
            let victim = finished.or_else(|| self.notifications.keys().next().copied());
            match victim {
                Some(id) => {
                    self.notifications.remove(&id);
                }
                None => return,
            }
        }
    }

    /// Counts one API call of `method`.
    pub fn count_call(&mut self, method: &str) {
        *self.calls.entry(method.to_owned()).or_default() += 1;
    }

    /// Schedules an attempt of notification `id` at `at` (Unix ms).
    pub fn schedule_attempt(&mut self, id: u64, at: i64) {
        if let Some(notification) = self.notifications.get_mut(&id) {
            notification.state = NotificationState::Pending;
            notification.next_attempt_at_ms = Some(at);
            self.schedule.insert((at, id));
        }
    }

    /// Forgets idempotence answers older than 24 hours (a sweep at most once a minute of
    /// emulated time; a lookup also checks the age, see [`State::idempotent_answer`]).
    pub fn forget_old_idempotence(&mut self, now_ms: i64) {
        if now_ms - self.idempotence_swept_at_ms < 60_000 {
            return;
        }
        self.idempotence_swept_at_ms = now_ms;
        self.idempotence
            .retain(|_, answer| now_ms - answer.at_ms < IDEMPOTENCE_TTL_MS);
    }

    /// The stored answer for `key`, if younger than 24 hours.
    pub fn idempotent_answer(&self, key: &str, now_ms: i64) -> Option<&IdempotentAnswer> {
        self.idempotence
            .get(key)
            .filter(|answer| now_ms - answer.at_ms < IDEMPOTENCE_TTL_MS)
    }
}
