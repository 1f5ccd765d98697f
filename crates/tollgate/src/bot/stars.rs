//! The Stars reconciler (docs/reliability.md F3): Telegram's own list of Stars transactions is
//! compared with our payments, and any incoming payment we never recorded — its
//! `successful_payment` update lost, dead-lettered, or never delivered — is finalized
//! through the same `billing::finalize` as the handler. Finalize is idempotent, so racing the
//! normal path is harmless; the confirmation is still sent once.
//!
//! The Bot API documents `getStarTransactions` as chronological, but the order is not
//! something to bet money on (newest first has been reported too), and the list is only
//! `offset`/`limit` pages. So each pass reads both ends and works whichever end is the new one:
//! - the head, from offset 0, until a page reaches a transaction dated before the newest one
//!   a complete read saw (less [`OVERLAP`]; the first pass reads the whole list): when the list
//!   is newest first, everything since the last pass, however many pages;
//! - the tail, from one page before where the last pass found the list's end, to the end:
//!   when the list is oldest first, everything since the last pass.
//!
//! Either end costs one page when the list has the other order. Transactions already
//! recorded are skipped with one query per page; the rest are finalized. `provider_cursors`
//! keeps `stars` (how long the list was, for the tail) and `stars-newest` (the newest
//! transaction date seen, for the head); both only grow. One replica reads at a time (a lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::i18n::Texts;
use crate::lease;
use crate::services::Services;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};

use crate::billing::cursors::{advance_cursor, cursor, recorded_stars_charges};
use crate::billing::{BillingError, Captured, Context, Finalized, Provider, finalize};

/// Telegram's page size limit.
const PAGE: usize = 100;
/// How far (seconds) before the newest transaction seen the head is read again: a payment
/// listed a little after its date, or in the same second as the newest, is still met.
const OVERLAP: i64 = 3600;
/// Most pages one read goes through in a pass (a list that never ends is a broken API; the
/// next pass goes on).
const MAX_PAGES: usize = 1000;
/// The list's length when the tail read last reached its end.
const LENGTH: &str = "stars";
/// The newest transaction date (Unix seconds) a complete head read saw.
const NEWEST: &str = "stars-newest";
const LEASE: &str = "stars-reconcile";

#[derive(Debug, Deserialize)]
struct StarTransactions {
    transactions: Vec<StarTransaction>,
}

#[derive(Debug, Deserialize)]
struct StarTransaction {
    id: String,
    amount: i64,
    /// Unix seconds.
    #[serde(default)]
    date: i64,
    #[serde(default)]
    source: Option<Partner>,
}

#[derive(Debug, Deserialize)]
struct Partner {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    transaction_type: Option<String>,
    #[serde(default)]
    user: Option<PartnerUser>,
    #[serde(default)]
    invoice_payload: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PartnerUser {
    id: i64,
}

/// Finds Stars payments that were captured but never finalized.
pub struct StarsReconciler {
    s: Services,
    texts: Arc<Texts>,
    interval: Duration,
    /// Passes in a row whose `getStarTransactions` failed (this process, as lease holder).
    failures: AtomicU32,
}

/// Failed passes in a row that make the provider-failure alert condition
/// ([`PROVIDER_CONDITION`]): one failure is a blip the next pass repairs, three (15 minutes at
/// the default interval) mean lost payments are not being found.
pub const FAILURES_BEFORE_ALERT: u32 = 3;
/// The alert condition of Telegram's Stars transaction list failing.
pub const PROVIDER_CONDITION: &str = "provider:telegram-stars";

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Transactions listed (a transaction on both ends counts twice).
    pub read: usize,
    /// `getStarTransactions` calls.
    pub pages: usize,
    /// Why Telegram's list could not be read (the pass ended there), if it could not.
    pub provider_error: Option<String>,
    /// Payments finalized by this pass (their updates never arrived).
    pub recovered: usize,
}

/// How one read of the list went.
#[derive(Debug, Default)]
struct Read {
    /// The list's length, when the read reached its end.
    end: Option<i64>,
    /// It stopped where it meant to (the end, or a transaction older than the horizon), not
    /// at an error or the page limit.
    complete: bool,
    /// The newest transaction date seen.
    newest: Option<i64>,
    /// Telegram did not answer (or refused); the pass ends here and the next one reads again.
    failed: Option<String>,
}

impl StarsReconciler {
    pub fn new(s: Services, texts: Arc<Texts>) -> StarsReconciler {
        let interval = s.config.deployment.stars_reconcile_interval;
        StarsReconciler {
            s,
            texts,
            interval,
            failures: AtomicU32::new(0),
        }
    }

    /// One pass over both ends of the list (see the module doc); `None` when another replica
    /// holds the lease.
    pub async fn run_once(&self) -> Result<Option<Pass>, BillingError> {
        let db = &self.s.db;
        let now = self.s.clock.now();
        let ttl = (self.interval * 3).max(Duration::from_secs(60));
        let Some(held) = lease::acquire(db, LEASE, &self.s.holder, ttl, now).await? else {
            return Ok(None);
        };
        let mut pass = Pass::default();
        let result = self.both_ends(&mut pass).await;
        let _ = lease::release(db, &held, self.s.clock.now()).await;
        if result.is_ok() {
            self.provider_health(&pass).await;
        }
        if pass.recovered > 0 {
            tracing::warn!(
                recovered = pass.recovered,
                "Stars payments finalized by reconciliation (their updates never arrived)"
            );
            self.s.outbox_wake.notify_one();
            self.s.provisioning.wake();
        }
        result.map(|()| Some(pass))
    }

    /// Reports the provider-failure condition: raised after [`FAILURES_BEFORE_ALERT`] failed
    /// passes in a row (and on each failed pass after, which reminds hourly), resolved by a
    /// pass that read the list.
    async fn provider_health(&self, pass: &Pass) {
        let now = self.s.clock.now();
        let alerts = &self.s.alerts;
        let db = &self.s.db;
        let reported = match &pass.provider_error {
            Some(e) => {
                let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
                if failures < FAILURES_BEFORE_ALERT {
                    return;
                }
                let text = format!(
                    "Telegram Stars: getStarTransactions failed in {failures} reconciliation passes in a row \
                     (last: {e}); Stars payments whose update was lost are not being found meanwhile. \
                     They are recovered once it answers."
                );
                alerts
                    .raise(db, PROVIDER_CONDITION, &text, now)
                    .await
                    .map(|_| ())
            }
            None => {
                self.failures.store(0, Ordering::SeqCst);
                let text =
                    "Telegram Stars: getStarTransactions answers again; reconciliation goes on.";
                alerts
                    .resolve(db, PROVIDER_CONDITION, text, now)
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = reported {
            tracing::warn!(error = %e, "cannot report the Stars provider's health to the alerts");
        }
    }

    async fn both_ends(&self, pass: &mut Pass) -> Result<(), BillingError> {
        let db = &self.s.db;
        let newest = cursor(db, NEWEST).await?;
        let head = self
            .read(0, newest.map(|d| d.saturating_sub(OVERLAP)), false, pass)
            .await?;
        self.seen_up_to(&head).await?;
        if let Some(e) = head.failed {
            pass.provider_error = Some(e);
            return Ok(());
        }
        if let Some(length) = head.end {
            // The head read the whole list: the tail has nothing more.
            return advance_cursor(db, LENGTH, length, self.s.clock.now()).await;
        }
        let length = cursor(db, LENGTH).await?.unwrap_or(0);
        let from = length.saturating_sub(PAGE as i64);
        let tail = self.read(from, None, true, pass).await?;
        self.seen_up_to(&tail).await?;
        pass.provider_error = tail.failed;
        Ok(())
    }

    /// A complete read saw every transaction from the horizon (or the last pass's end) to
    /// the newest it met, so the next head read may stop an [`OVERLAP`] before that.
    async fn seen_up_to(&self, read: &Read) -> Result<(), BillingError> {
        match read.newest {
            Some(date) if read.complete => {
                advance_cursor(&self.s.db, NEWEST, date, self.s.clock.now()).await
            }
            _ => Ok(()),
        }
    }

    /// Reads pages from `from` until the list ends, or (with a `horizon`) until a page holds a
    /// transaction dated before it; finalizes what is not recorded yet. With `track`, the
    /// position reached is saved after each page (the tail's cursor).
    async fn read(
        &self,
        from: i64,
        horizon: Option<i64>,
        track: bool,
        pass: &mut Pass,
    ) -> Result<Read, BillingError> {
        let mut read = Read::default();
        let mut position = from;
        for _ in 0..MAX_PAGES {
            let page: StarTransactions = match self
                .s
                .api
                .call(
                    "getStarTransactions",
                    &json!({ "offset": position, "limit": PAGE }),
                )
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, offset = position, "cannot list Stars transactions; will retry next pass");
                    read.failed = Some(e.to_string());
                    return Ok(read);
                }
            };
            pass.pages += 1;
            let n = page.transactions.len();
            pass.recovered += self.recover_page(&page.transactions).await?;
            pass.read += n;
            position += i64::try_from(n).unwrap_or(i64::MAX);
            if let Some(date) = page.transactions.iter().map(|t| t.date).max() {
                read.newest = Some(read.newest.map_or(date, |d| d.max(date)));
            }
            if track {
                advance_cursor(&self.s.db, LENGTH, position, self.s.clock.now()).await?;
            }
            if n < PAGE {
                read.end = Some(position);
                read.complete = true;
                return Ok(read);
            }
            if horizon.is_some_and(|h| page.transactions.iter().any(|t| t.date < h)) {
                read.complete = true;
                return Ok(read);
            }
        }
        tracing::warn!(
            pages = MAX_PAGES,
            offset = position,
            "Stars transactions go on past the page limit of one pass; the next pass reads on"
        );
        Ok(read)
    }

    /// Finalizes the page's incoming payments that have no payment row; returns how many this
    /// call applied.
    async fn recover_page(&self, page: &[StarTransaction]) -> Result<usize, BillingError> {
        let ids: Vec<String> = page
            .iter()
            .filter(|t| incoming(t).is_some())
            .map(|t| t.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let known = recorded_stars_charges(&self.s.db, &ids).await?;
        let mut recovered = 0;
        for t in page.iter().filter(|t| !known.contains(&t.id)) {
            if self.recover(t).await? {
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// Finalizes one listed transaction if it is an incoming invoice payment; true when this
    /// call applied it (it had not been recorded).
    async fn recover(&self, t: &StarTransaction) -> Result<bool, BillingError> {
        let Some((user, payload)) = incoming(t) else {
            return Ok(false);
        };
        let pay = Captured {
            provider: Provider::Stars,
            charge_id: t.id.clone(),
            user_id: user,
            currency: "XTR".to_owned(),
            total_amount: t.amount,
            payload: payload.to_owned(),
            raw: Some(json!({ "star_transaction": t.id, "amount": t.amount }).to_string()),
        };
        let ctx = Context {
            catalog: &self.s.config.catalog,
            texts: &self.texts,
            nodes: self.s.registry.enabled(),
            admins: &self.s.config.deployment.admin_ids,
        };
        for _ in 0..3 {
            let mut tx = self.s.db.begin().await?;
            let payer = crate::users::get_in(&mut tx, user).await?;
            match finalize(&mut tx, &ctx, &pay, payer.as_ref(), self.s.clock.now()).await {
                Ok(f) => {
                    tx.commit().await?;
                    return Ok(matches!(f, Finalized::Applied { .. }));
                }
                // The handler recorded it at this very moment; look again.
                Err(BillingError::Raced) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        loop {
            hb.beat();
            match self.run_once().await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Stars reconciliation failed; will retry"),
            }
            if !idle(self.interval, &hb, Duration::from_secs(1), &stop).await {
                return;
            }
        }
    }
}

/// The payer and payload of an incoming invoice payment; `None` for anything else (a refund
/// or a withdrawal, which have no source; other partners).
fn incoming(t: &StarTransaction) -> Option<(i64, &str)> {
    let src = t.source.as_ref()?;
    let invoice = src.kind == "user"
        && src
            .transaction_type
            .as_deref()
            .is_none_or(|k| k == "invoice_payment");
    let (user, payload) = (src.user.as_ref()?, src.invoice_payload.as_deref()?);
    (invoice && t.amount > 0).then_some((user.id, payload))
}

impl Component for StarsReconciler {
    fn name(&self) -> &'static str {
        "stars-reconciler"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}
