//! The notification engine: sends queued webhooks, retries failures with growing delays on
//! emulated time, and fires deadlines (invoice expiry, payment cancellation).
//!
//! Why one task: every due notification and deadline is found under the state lock in one pass,
//! and each delivery attempt runs in its own task so a hanging receiver delays nothing else.
//! Success is HTTP 200 exactly (YooKassa's rule; Crypto Pay's is undocumented, and 200 is what a
//! receiver should answer after its commit). The same bytes are sent on every attempt, so a
//! Crypto Pay signature stays valid across retries.

use std::sync::Arc;
use std::time::Duration;

use crate::model::{Attempt, NotificationState, Provider};
use crate::state::{App, Deadline, State};

/// A delivery attempt about to start.
#[derive(Debug)]
struct Due {
    id: u64,
    url: String,
    body: String,
    signature: Option<String>,
}

/// The HTTP client notifications are sent with.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_CONCURRENT_DELIVERIES)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Most delivery attempts under way at once: a provider does not open thousands of
/// connections to one receiver, and a burst (a benchmark paying 10,000 invoices) should reach
/// the receiver at a pace it can take.
pub const MAX_CONCURRENT_DELIVERIES: usize = 64;

/// Runs until shutdown.
pub async fn run_engine(app: Arc<App>, client: reqwest::Client) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_DELIVERIES));
    let mut advanced = app.clock.subscribe();
    let mut shutdown = app.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = app.now_ms();
        let (due, next_ms) = {
            let mut guard = app.lock_at(now);
            let state = &mut *guard;
            let mut due = Vec::new();
            let mut next_ms: Option<i64> = state.deadlines.first().map(|(at, _)| *at);
            while let Some(&(at, id)) = state.schedule.first() {
                if at > now {
                    next_ms = Some(next_ms.map_or(at, |n| n.min(at)));
                    break;
                }
                state.schedule.pop_first();
                let Some(notification) = state.notifications.get_mut(&id) else {
                    continue; // forgotten meanwhile
                };
                if notification.state != NotificationState::Pending
                    || notification.next_attempt_at_ms != Some(at)
                {
                    continue; // rescheduled meanwhile: a stale entry
                }
                let window = match notification.provider {
                    Provider::Cryptopay => app.config.webhooks.cryptopay_window,
                    Provider::Yookassa => app.config.webhooks.yookassa_window,
                };
                if now - notification.created_at_ms > duration_ms(window)
                    && !notification.attempts.is_empty()
                    && notification.repeat_of.is_none()
                    && !state.forced.contains(&id)
                {
                    // Emulated time jumped past the provider's retry window: no late attempt.
                    notification.state = NotificationState::GaveUp;
                    notification.next_attempt_at_ms = None;
                    continue;
                }
                let url = match notification.provider {
                    Provider::Cryptopay => state.webhooks.cryptopay.clone(),
                    Provider::Yookassa => state.webhooks.yookassa.clone(),
                };
                let Some(url) = url else {
                    // The URL was removed since: look again in a second, without counting an
                    // attempt.
                    let later = now + 1000;
                    notification.next_attempt_at_ms = Some(later);
                    state.schedule.insert((later, id));
                    continue;
                };
                state.forced.remove(&id);
                notification.state = NotificationState::InFlight;
                notification.next_attempt_at_ms = None;
                due.push(Due {
                    id,
                    url,
                    body: notification.body.clone(),
                    signature: notification.signature.clone(),
                });
            }
            (due, next_ms)
        };
        for one in due {
            let app = app.clone();
            let client = client.clone();
            let permits = permits.clone();
            tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                attempt(app, client, one).await;
            });
        }
        let wait_ms = next_ms.map_or(500, |at| (at - now).clamp(1, 500));
        let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(500));
        tokio::select! {
            () = app.wake.notified() => {}
            changed = advanced.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(wait).await;
                }
            }
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Expires invoices and cancels payments whose deadline passed.
pub fn fire_deadlines(app: &App, state: &mut State, now_ms: i64) {
    while let Some((at, _)) = state.deadlines.first() {
        if *at > now_ms {
            return;
        }
        let Some((_, deadline)) = state.deadlines.pop_first() else {
            return;
        };
        match deadline {
            Deadline::Invoice(id) => crate::cryptopay::expire_due(state, id),
            Deadline::PaymentConfirmation(id) | Deadline::PaymentCapture(id) => {
                crate::yookassa::expire_due(app, state, &id, now_ms);
            }
        }
    }
}

async fn attempt(app: Arc<App>, client: reqwest::Client, due: Due) {
    let at_ms = app.now_ms();
    let mut request = client
        .post(&due.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .timeout(app.config.webhooks.timeout)
        .body(due.body);
    if let Some(signature) = &due.signature {
        request = request.header("crypto-pay-api-signature", signature);
    }
    let (status, error) = match request.send().await {
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(error) if error.is_timeout() => (None, Some("timed out".to_owned())),
        Err(error) if error.is_connect() => (None, Some(format!("cannot connect: {error}"))),
        Err(error) => (None, Some(error.to_string())),
    };
    let now = app.now_ms();
    {
        let mut state = app.lock();
        let Some(notification) = state.notifications.get_mut(&due.id) else {
            return; // reset or forgotten meanwhile
        };
        notification.attempts.push(Attempt {
            at_ms,
            url: due.url,
            status,
            error,
        });
        if status == Some(200) {
            notification.state = NotificationState::Delivered;
            notification.next_attempt_at_ms = None;
        } else {
            let webhooks = &app.config.webhooks;
            let failures = u32::try_from(notification.attempts.len()).unwrap_or(u32::MAX);
            let delay = retry_delay(webhooks.first_retry, webhooks.max_retry, failures);
            let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4);
            let next = now.saturating_add(delay_ms);
            let give_up = match notification.provider {
                Provider::Cryptopay => {
                    failures >= webhooks.cryptopay_max_attempts
                        || next - notification.created_at_ms
                            > duration_ms(webhooks.cryptopay_window)
                }
                Provider::Yookassa => {
                    next - notification.created_at_ms > duration_ms(webhooks.yookassa_window)
                }
            };
            if give_up {
                notification.state = NotificationState::GaveUp;
                notification.next_attempt_at_ms = None;
            } else {
                notification.state = NotificationState::Pending;
                notification.next_attempt_at_ms = Some(next);
                state.schedule.insert((next, due.id));
            }
        }
    }
    app.wake.notify_one();
}

/// The delay after the `failures`-th failed attempt: `first`, doubling, capped at `max`.
pub fn retry_delay(first: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    first.saturating_mul(1u32 << doublings).min(max)
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let first = Duration::from_secs(5);
        let max = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=6)
            .map(|n| retry_delay(first, max, n).as_secs())
            .collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 60, 60]);
    }
}
