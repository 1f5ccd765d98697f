//! Open callback queries and pre-checkout queries, and their answers.
//!
//! Why this exists: both kinds of query must be answered by the bot in time — a callback query
//! becomes "too old" after 150 s, a pre-checkout query fails the payment after 10 s — and can be
//! answered only once. Tests drive these deadlines with emulated time. The set of open queries is
//! bounded: the oldest entries are forgotten first (an answer to a forgotten query is rejected as
//! too old, which is what Telegram does too).

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// The bot's answer to a callback query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackAnswer {
    /// Notification text (empty: none).
    pub text: String,
    /// Shown as an alert instead of a toast.
    pub show_alert: bool,
    /// URL to open.
    pub url: Option<String>,
    /// `cache_time` in seconds.
    pub cache_time: i64,
}

/// The bot's answer to a pre-checkout query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreCheckoutAnswer {
    /// Proceed with the payment.
    Ok,
    /// Decline, with the message shown to the user.
    Declined(String),
}

#[derive(Debug)]
struct OpenCallback {
    created_ms: i64,
    answered: bool,
    waiter: Option<oneshot::Sender<CallbackAnswer>>,
}

#[derive(Debug)]
struct OpenPreCheckout {
    deadline_ms: i64,
    answered: bool,
    waiter: Option<oneshot::Sender<PreCheckoutAnswer>>,
}

/// Why an answer was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerRejected {
    /// Unknown id, already answered, or too late.
    TooOldOrInvalid,
}

/// Open queries of one bot.
#[derive(Debug, Default)]
pub struct OpenQueries {
    callbacks: HashMap<String, OpenCallback>,
    pre_checkouts: HashMap<String, OpenPreCheckout>,
    order: VecDeque<String>,
}

impl OpenQueries {
    fn make_room(&mut self, max: usize) {
        while self.callbacks.len() + self.pre_checkouts.len() >= max.max(1) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.callbacks.remove(&oldest);
            self.pre_checkouts.remove(&oldest);
        }
    }

    /// Registers a callback query; the receiver gets the answer.
    pub fn open_callback(
        &mut self,
        id: String,
        created_ms: i64,
        max: usize,
    ) -> oneshot::Receiver<CallbackAnswer> {
        self.make_room(max);
        let (tx, rx) = oneshot::channel();
        self.order.push_back(id.clone());
        self.callbacks.insert(
            id,
            OpenCallback {
                created_ms,
                answered: false,
                waiter: Some(tx),
            },
        );
        rx
    }

    /// Records the bot's answer to a callback query.
    pub fn answer_callback(
        &mut self,
        id: &str,
        answer: CallbackAnswer,
        now_ms: i64,
        lifetime_ms: i64,
    ) -> Result<(), AnswerRejected> {
        let open = self
            .callbacks
            .get_mut(id)
            .ok_or(AnswerRejected::TooOldOrInvalid)?;
        if open.answered || now_ms - open.created_ms > lifetime_ms {
            return Err(AnswerRejected::TooOldOrInvalid);
        }
        open.answered = true;
        if let Some(waiter) = open.waiter.take() {
            let _ = waiter.send(answer);
        }
        Ok(())
    }

    /// Registers a pre-checkout query; the receiver gets the answer.
    pub fn open_pre_checkout(
        &mut self,
        id: String,
        deadline_ms: i64,
        max: usize,
    ) -> oneshot::Receiver<PreCheckoutAnswer> {
        self.make_room(max);
        let (tx, rx) = oneshot::channel();
        self.order.push_back(id.clone());
        self.pre_checkouts.insert(
            id,
            OpenPreCheckout {
                deadline_ms,
                answered: false,
                waiter: Some(tx),
            },
        );
        rx
    }

    /// Records the bot's answer to a pre-checkout query.
    pub fn answer_pre_checkout(
        &mut self,
        id: &str,
        answer: PreCheckoutAnswer,
        now_ms: i64,
    ) -> Result<(), AnswerRejected> {
        let open = self
            .pre_checkouts
            .get_mut(id)
            .ok_or(AnswerRejected::TooOldOrInvalid)?;
        if open.answered || now_ms > open.deadline_ms {
            return Err(AnswerRejected::TooOldOrInvalid);
        }
        open.answered = true;
        if let Some(waiter) = open.waiter.take() {
            let _ = waiter.send(answer);
        }
        Ok(())
    }

    /// Closes a pre-checkout query that timed out (a late answer is then rejected).
    pub fn expire_pre_checkout(&mut self, id: &str) {
        if let Some(open) = self.pre_checkouts.get_mut(id) {
            open.answered = true;
            open.waiter = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_answered_once_within_lifetime() {
        let mut q = OpenQueries::default();
        let mut rx = q.open_callback("1".into(), 0, 10);
        assert!(
            q.answer_callback("1", CallbackAnswer::default(), 1_000, 150_000)
                .is_ok()
        );
        assert!(rx.try_recv().is_ok());
        assert_eq!(
            q.answer_callback("1", CallbackAnswer::default(), 1_000, 150_000),
            Err(AnswerRejected::TooOldOrInvalid)
        );
        q.open_callback("2".into(), 0, 10);
        assert_eq!(
            q.answer_callback("2", CallbackAnswer::default(), 150_001, 150_000),
            Err(AnswerRejected::TooOldOrInvalid)
        );
        assert!(
            q.answer_callback("nope", CallbackAnswer::default(), 0, 150_000)
                .is_err()
        );
    }

    #[test]
    fn bounded() {
        let mut q = OpenQueries::default();
        for i in 0..100 {
            q.open_callback(i.to_string(), 0, 10);
        }
        assert!(q.callbacks.len() <= 10);
        assert!(
            q.answer_callback("99", CallbackAnswer::default(), 0, 150_000)
                .is_ok()
        );
        assert!(
            q.answer_callback("0", CallbackAnswer::default(), 0, 150_000)
                .is_err()
        );
    }
}
