//! Admin alerts: outbox messages to every admin, queued in the transaction of the event.
//!
//! An alert is a notification like any other (docs/reliability.md G1): written with the state change
//! it reports (a dead letter, a wedged component), deduplicated by key, delivered by the
//! sender with retries. With no admins configured, alerts go to the log only.
//!
//! An *event* (a dead letter, a payment kept for review) alerts once by its key
//! ([`Alerts::queue_in`]); a *condition* that lasts (a node's breaker open, webhook delivery
//! errors, a failing payment provider, reconcile refusing removals) alerts when it begins, at
//! most hourly while it lasts, and when it ends ([`conditions`]).

pub mod conditions;

use std::sync::Arc;

use crate::i18n::escape_html;
use crate::store::{Db, Tx};
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::Timestamp;

#[derive(Clone, Debug, Default)]
pub struct Alerts {
    admins: Arc<Vec<i64>>,
}

pub use conditions::{ActiveCondition, REMIND_EVERY, Raised};

impl Alerts {
    pub fn new(admins: Vec<i64>) -> Self {
        Alerts {
            admins: Arc::new(admins),
        }
    }

    /// Queues `text` to every admin in the caller's transaction. `key` identifies the event,
    /// so the same event alerts once.
    pub async fn queue_in(
        &self,
        tx: &mut Tx,
        key: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<(), sqlx::Error> {
        let body = escape_html(text);
        for admin in self.admins.iter() {
            let msg = OutboxMessage::text(
                format!("alert:{key}:{admin}"),
                *admin,
                Priority::Transactional,
                body.clone(),
                None,
            );
            outbox::enqueue(tx, &msg, now).await?;
        }
        Ok(())
    }

    /// [`Alerts::queue_in`] in its own transaction.
    pub async fn queue(
        &self,
        db: &Db,
        key: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<(), sqlx::Error> {
        if self.admins.is_empty() {
            return Ok(());
        }
        let mut tx = db.begin().await?;
        self.queue_in(&mut tx, key, text, now).await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_what_html_parse_mode_would_interpret() {
        assert_eq!(
            super::escape_html("a<b>&\"c\""),
            "a&lt;b&gt;&amp;&quot;c&quot;"
        );
    }
}
