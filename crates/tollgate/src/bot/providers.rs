//! The bot's side of the payment providers outside Telegram (Crypto Pay, YooKassa): the
//! payment page for a purchase, "I paid", the providers' notification routes, and the
//! watcher that finds what notifications missed.
//!
//! Every report of a payment — a Crypto Pay webhook (signed), a YooKassa notification (taken
//! only from `YOOKASSA_NOTIFY_FROM`, and only a hint: the payment is fetched by id and acted
//! on as the API states it), a watcher pass,
//! the user's "I paid" — ends in [`Settler::settle`], which records it through
//! `billing::finalize` in one transaction with the invoice marked paid. Finalize is unique
//! per provider and provider id, so whichever comes first applies it and the rest find it
//! done; a notification is answered 200 only after that commit, so a crash before it makes
//! the provider deliver again, and the watcher finds it anyway.
//!
//! The watcher (one per provider, under the supervisor, one replica at a time by lease):
//! Crypto Pay's invoices due for a check are asked about in batches (`getInvoices` by id)
//! every `CRYPTOPAY_POLL_INTERVAL`; YooKassa's one by one, at intervals that grow
//! (Fibonacci times `YOOKASSA_POLL_INTERVAL`, up to ten minutes) until the payment ends.
//! Paid ones are settled; ended ones closed; an open Crypto Pay invoice whose purchase
//! expired is deleted (a payment that beat the deletion is still honoured). An invoice whose
//! create call got no answer is looked for among the provider's recent ones by its purchase
//! and adopted, or closed once its purchase expired.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use tokio_util::sync::CancellationToken;

use super::payments::Sale;
use super::screens::{self, Screen};
use super::{Bot, Session, retry};
use crate::action::Action;
use crate::billing::providers::{
    self as invoices, Invoice, InvoiceStatus, NewPayment, Notice, PaymentProvider, ProviderError,
    Remote, RemoteStatus,
};
use crate::billing::{self, BillingError, Captured, Finalized, Item, Provider, unmatched};
use crate::config::env::PAGE_RECHECK_DEADLINE;
use crate::domain::money::Money;
use crate::flags::{self, Flag};
use crate::http::client_address::client_address;
use crate::i18n::Texts;
use crate::lease;
use crate::services::Services;
use crate::store::Tx;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::telegram::dispatcher::HandlerError;
use crate::users;

/// The longest interval between two checks of a YooKassa payment.
const MAX_RECONCILE_DELAY: Duration = Duration::from_secs(600);
/// Invoices one watcher step reads and asks about at once.
const BATCH: i64 = 1000;
/// Steps of one pass at most (a pass over 100,000 due invoices; the next pass goes on).
const MAX_STEPS: usize = 100;
/// The least time a purchase must have left to be paid on a page shown now.
const MIN_PAYABLE: Duration = Duration::from_secs(600);
/// Failed passes in a row that raise the provider's alert condition.
const FAILURES_BEFORE_ALERT: u32 = 3;

/// What a reported payment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Recorded now (applied, or kept for review).
    Applied(Finalized),
    /// Recorded before: nothing happened.
    Duplicate,
    /// Not paid (yet): nothing to record.
    NotPaid(RemoteStatus),
    /// Paid, but it names no purchase of ours: kept for an admin (`billing::unmatched`),
    /// who was alerted when it was first reported.
    Foreign,
}

/// Records the payments the providers report, once.
#[derive(Clone)]
pub struct Settler {
    s: Services,
    texts: Arc<Texts>,
}

impl Settler {
    pub fn new(s: Services, texts: Arc<Texts>) -> Settler {
        Settler { s, texts }
    }

    fn context(&self) -> billing::Context<'_> {
        billing::Context {
            catalog: &self.s.config.catalog,
            texts: &self.texts,
            nodes: self.s.registry.enabled(),
            admins: &self.s.config.deployment.admin_ids,
        }
    }

    /// Settles what `provider` says about one payment: a paid one is finalized with its
    /// invoice marked paid in one transaction; an ended one closes its invoice.
    pub async fn settle(
        &self,
        provider: Provider,
        remote: &Remote,
    ) -> Result<Settled, BillingError> {
        let db = &self.s.db;
        match remote.status {
            RemoteStatus::Paid => {}
            RemoteStatus::Ended => {
                if let Some(inv) =
                    invoices::invoice_by_external(db, provider, &remote.external_id).await?
                {
                    invoices::mark_closed(db, inv.purchase_id).await?;
                }
                return Ok(Settled::NotPaid(remote.status));
            }
            RemoteStatus::Open => return Ok(Settled::NotPaid(remote.status)),
        }
        let base = self.s.config.catalog.bot.base_currency;
        // The purchase whose invoice we stored with this id. Failing that (a create call
        // whose answer was lost), the purchase the payment names, if it was sold through this
        // provider at exactly the stated price; anything else is not ours to credit.
        let purchase =
            match invoices::invoice_by_external(db, provider, &remote.external_id).await? {
                Some(inv) => billing::purchase(db, base, inv.purchase_id).await?,
                None => match remote.purchase_id {
                    Some(id) => billing::purchase(db, base, id)
                        .await?
                        .filter(|p| p.provider == provider && remote.is_for(p.id, p.price)),
                    None => None,
                },
            };
        let Some(purchase) = purchase else {
            return self.keep_unmatched(provider, remote).await;
        };
        let pay = Captured {
            provider,
            charge_id: remote.external_id.clone(),
            user_id: purchase.user_id,
            currency: remote.currency.clone(),
            total_amount: remote.amount_minor,
            payload: billing::invoice_payload(purchase.id),
            raw: Some(remote.raw.clone()),
        };
        for _ in 0..3 {
            let now = self.s.clock.now();
            let mut tx = db.begin().await?;
            let user = users::get_in(&mut tx, purchase.user_id)
                .await
                .map_err(|e| BillingError::Corrupt(e.to_string()))?;
            match billing::finalize(&mut tx, &self.context(), &pay, user.as_ref(), now).await {
                Ok(f) => {
                    invoices::mark_paid(&mut tx, provider, &remote.external_id).await?;
                    // Refunded in full at the provider (its dashboard, or our console): what
                    // it bought goes back in the same transaction, once, whichever report
                    // brought it — a notification, the watcher, "I paid".
                    let reversed = match remote.refunded_minor {
                        r if r >= remote.amount_minor && r > 0 => matches!(
                            billing::refund::apply_refund(
                                &mut tx,
                                &self.context(),
                                provider,
                                &remote.external_id,
                                now,
                            )
                            .await?,
                            billing::refund::Refunded::Applied { .. }
                        ),
                        0 => false,
                        partly => {
                            // What a partial refund should take back is the operator's call:
                            // the admins hear of it once per refunded amount.
                            tracing::warn!(
                                provider = provider.as_str(),
                                payment = %remote.external_id,
                                refunded = partly,
                                amount = remote.amount_minor,
                                "a payment was partly refunded at the provider; nothing is taken back here"
                            );
                            let text = format!(
                                "↩️ {} payment {} was partly refunded at the provider ({partly} of {} minor units of {}); nothing was taken back in the bot. Adjust the user by hand if needed: /payment {}",
                                provider.as_str(),
                                remote.external_id,
                                remote.amount_minor,
                                remote.currency,
                                remote.external_id
                            );
                            let key = format!(
                                "partial-refund:{}:{}:{partly}",
                                provider.as_str(),
                                remote.external_id
                            );
                            self.s.alerts.queue_in(&mut tx, &key, &text, now).await?;
                            self.s.outbox_wake.notify_one();
                            false
                        }
                    };
                    tx.commit().await?;
                    if reversed {
                        tracing::info!(provider = provider.as_str(), payment = %remote.external_id, "a refund made at the provider was applied");
                        self.s.outbox_wake.notify_one();
                        self.s.provisioning.wake();
                    }
                    return Ok(match f {
                        Finalized::Duplicate { .. } => Settled::Duplicate,
                        applied => {
                            self.s.outbox_wake.notify_one();
                            if applied.access_changed() {
                                self.s.provisioning.wake();
                            }
                            Settled::Applied(applied)
                        }
                    });
                }
                // Recorded by a racing report this instant: look again.
                Err(BillingError::Raced) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(BillingError::Raced)
    }
}

impl Settler {
    /// Keeps a paid payment that names no purchase of ours, once, and alerts the admins in
    /// the same transaction when it is new: the money has no payer here, so an admin settles
    /// it (`/payment <id>`, or /admin → To review).
    async fn keep_unmatched(
        &self,
        provider: Provider,
        remote: &Remote,
    ) -> Result<Settled, BillingError> {
        let now = self.s.clock.now();
        let mut tx = self.s.db.begin().await?;
        let reported = unmatched::Reported {
            provider,
            external_id: &remote.external_id,
            amount: remote.amount_minor,
            currency: &remote.currency,
            raw: &remote.raw,
        };
        if unmatched::keep(&mut tx, reported, now).await? {
            tracing::error!(provider = provider.as_str(), id = %remote.external_id, "a paid payment names no purchase; kept for review");
            let text = format!(
                "⚠️ {} payment {} ({} minor units of {}) was paid but names no purchase of this bot; nothing was credited. It is kept for review: /payment {}",
                provider.as_str(),
                remote.external_id,
                remote.amount_minor,
                remote.currency,
                remote.external_id
            );
            let key = format!("foreign:{}:{}", provider.as_str(), remote.external_id);
            self.s.alerts.queue_in(&mut tx, &key, &text, now).await?;
        }
        tx.commit().await?;
        self.s.outbox_wake.notify_one();
        Ok(Settled::Foreign)
    }
}

impl Bot {
    /// The ways to pay in the base currency, as configured.
    pub(super) fn pay_methods(&self) -> screens::PayMethods {
        screens::PayMethods {
            card: self.s.config.deployment.payment_provider_token.is_some(),
            crypto: self.s.providers.crypto.is_some(),
            yookassa: self.s.providers.yookassa.is_some(),
        }
    }

    /// A provider's payment page for a sale: the purchase and its invoice row first (one
    /// transaction), then the provider's create call outside any transaction, within its
    /// deadline. A press while the user's same purchase is still payable shows that page
    /// again; a create that failed is retried on the same purchase (the same idempotence
    /// key), so a retry never makes a second invoice.
    pub(super) async fn provider_invoice(
        &self,
        se: &Session,
        sale: Sale,
        provider: Provider,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let catalog = &self.s.config.catalog;
        let base = catalog.bot.base_currency;
        let note = |key: &str, back| screens::notice(&v, self.texts.get(se.lang, key), back);
        let payments_on = flags::get(&self.s.db, Flag::Payments)
            .await
            .map_err(retry)?;
        let client = self.s.providers.get(provider).cloned();
        let Some(client) = client.filter(|_| payments_on) else {
            return Ok((
                note("payments-paused", Action::Buy),
                self.begin().await?,
                false,
            ));
        };
        if se.user.banned_at.is_some() {
            return Ok((
                note("reject-banned", Action::Menu),
                self.begin().await?,
                false,
            ));
        }
        let receipt_contact = match self.receipt_contact_for(se, provider, &sale).await? {
            Ok(contact) => contact,
            Err((question, tx)) => return Ok((question, tx, false)),
        };
        let (item, price, description, back, quoted) = match sale {
            Sale::Plan(id, drawn_by) => {
                // The user's price (a discount, a promo code) as the pay screen showed it.
                let offer = {
                    let mut t = self.begin().await?;
                    let offer = self.offer_in(se, &mut t).await?;
                    t.commit().await.map_err(retry)?;
                    offer
                };
                let Some((plan, quote)) = catalog
                    .plans
                    .iter()
                    .find(|p| p.id == id)
                    .and_then(|p| Some((p, v.quote(p, base, &offer)?)))
                else {
                    let screen = screens::buy(&v, None, &offer)
                        .with_note(self.texts.get(se.lang, "plan-unavailable"));
                    return Ok((screen, self.begin().await?, false));
                };
                let price = quote.price;
                let description = self.texts.fmt(
                    se.lang,
                    "invoice-description",
                    &[("days", plan.days.into())],
                );
                let item = Item::Plan {
                    plan_id: plan.id.clone(),
                    days: plan.days,
                };
                (
                    item,
                    price,
                    description,
                    Action::Buy,
                    Some((quote, drawn_by)),
                )
            }
            Sale::Fiat(minor) => {
                let credit = Money::new(minor, base);
                if !fiat_topup_allowed(catalog, credit) {
                    let screen = self
                        .balance_screen(se)
                        .await?
                        .with_note(self.texts.get(se.lang, "stale-button"));
                    return Ok((screen, self.begin().await?, false));
                }
                let description = self.texts.fmt(
                    se.lang,
                    "topup-invoice-description",
                    &[("amount", crate::i18n::format::money(se.lang, credit).into())],
                );
                (
                    Item::TopUp { credit },
                    credit,
                    description,
                    Action::Balance,
                    None,
                )
            }
            Sale::TopUp(_) => {
                return Ok((
                    note("stale-button", Action::Balance),
                    self.begin().await?,
                    false,
                ));
            }
        };
        let now = self.now();
        let db = &self.s.db;
        // A purchase with little time left is not reused: its page would close while the
        // user pays.
        let reused = invoices::reusable(
            db,
            se.user.id,
            provider,
            &item,
            price,
            now.plus(MIN_PAYABLE),
        )
        .await
        .map_err(retry)?;
        // A page about to be shown again is asked about first: one the payer declined, or
        // that ended, is not shown again (a new purchase gets a new page), and one paid a
        // moment ago is settled instead.
        let reused = match reused {
            Some(inv) if inv.status == InvoiceStatus::Open => {
                match self.recheck(client.as_ref(), inv).await? {
                    Recheck::Payable(inv) => Some(inv),
                    Recheck::Ended => None,
                    Recheck::Paid => {
                        return Ok((
                            note("provider-paid", Action::Menu),
                            self.begin().await?,
                            false,
                        ));
                    }
                }
            }
            other => other,
        };
        let expires_at = reused
            .as_ref()
            .map_or(now.plus(billing::PURCHASE_TTL), |i| i.purchase_expires_at);
        let purchase_id = match reused {
            Some(Invoice {
                status: InvoiceStatus::Open,
                url: Some(url),
                purchase_id,
                ..
            }) => {
                let screen = screens::provider_invoice(&v, price, &url, purchase_id, back);
                return Ok((screen, self.begin().await?, false));
            }
            Some(inv) => inv.purchase_id,
            None => {
                let mut tx = self.begin().await?;
                let purchase = match &quoted {
                    // A promo code's use is taken with the purchase, as for an invoice.
                    Some((quote, drawn_by)) => match billing::create_plan_purchase(
                        &mut tx, se.user.id, &item, quote, provider, now,
                    )
                    .await
                    .map_err(retry)?
                    {
                        Ok(p) => p,
                        Err(refusal) => {
                            let offer = self.offer_in(se, &mut tx).await?;
                            let code = quote.promo.as_ref().map(|c| c.code.clone());
                            let note = v.tf(
                                refusal.text_key(),
                                &[("code", crate::i18n::Arg::Text(code.unwrap_or_default()))],
                            );
                            let plan = match &item {
                                Item::Plan { plan_id, .. } => plan_id.clone(),
                                Item::TopUp { .. } => String::new(),
                            };
                            let screen = self
                                .pay_screen(se, &plan, *drawn_by, &offer)
                                .with_note(note);
                            return Ok((screen, tx, false));
                        }
                    },
                    None => {
                        billing::create_purchase(&mut tx, se.user.id, &item, price, provider, now)
                            .await
                            .map_err(retry)?
                    }
                };
                invoices::begin_invoice(&mut tx, purchase.id, provider, now)
                    .await
                    .map_err(retry)?;
                tx.commit().await.map_err(retry)?;
                purchase.id
            }
        };
        let new = NewPayment {
            purchase_id,
            amount: price,
            description,
            return_url: None,
            // The page ends with its purchase, so nobody pays for an offer that ended.
            expires_in: expires_at.since(now),
            receipt_contact,
            vat_code: catalog.yookassa.vat_code,
            tax_system_code: catalog.yookassa.tax_system_code,
        };
        match open_invoice(client.as_ref(), &new).await {
            Ok(remote) => {
                let next = self.now().plus(self.s.providers.first_check(provider));
                let stored = invoices::opened(db, purchase_id, &remote, next)
                    .await
                    .map_err(retry)?;
                let url = if stored {
                    remote.url
                } else {
                    // The watcher adopted the page an earlier, hung call made: that one is
                    // the purchase's and the one watched, so it is the one shown; this one is
                    // withdrawn (where the provider can) so that nobody pays it — in the
                    // background: the user's screen does not wait for it (a payment that beat
                    // the withdrawal is still honoured).
                    let (withdraw, id) = (client.clone(), remote.external_id.clone());
                    tokio::spawn(async move {
                        if let Err(e) = withdraw.cancel(&id).await {
                            tracing::warn!(provider = provider.as_str(), %id, error = %e, "cannot withdraw a second page of a purchase; it ends on its own");
                        }
                    });
                    invoices::invoice(db, purchase_id)
                        .await
                        .map_err(retry)?
                        .filter(|i| i.status == InvoiceStatus::Open)
                        .and_then(|i| i.url)
                };
                let Some(url) = url else {
                    tracing::error!(provider = provider.as_str(), id = %remote.external_id, "the provider's payment has no page URL");
                    return Ok((note("provider-try-again", back), self.begin().await?, false));
                };
                let screen = screens::provider_invoice(&v, price, &url, purchase_id, back);
                Ok((screen, self.begin().await?, false))
            }
            Err(e) => {
                tracing::warn!(provider = provider.as_str(), purchase = purchase_id, error = %e, "cannot create the provider's payment; the user is asked to try again");
                Ok((note("provider-try-again", back), self.begin().await?, false))
            }
        }
    }

    /// Where an open page to be shown again stands at its provider. A page the provider
    /// no longer knows (deleted, 404) is closed like an ended one; when the provider does
    /// not answer within [`PAGE_RECHECK_DEADLINE`], the page is shown as it is (the watcher
    /// keeps checking it).
    async fn recheck(
        &self,
        client: &dyn PaymentProvider,
        inv: Invoice,
    ) -> Result<Recheck, HandlerError> {
        let Some(external) = inv.external_id.as_deref() else {
            return Ok(Recheck::Payable(inv));
        };
        let asked = tokio::time::timeout(PAGE_RECHECK_DEADLINE, client.fetch(external)).await;
        let remote = match asked {
            Ok(Ok(remote)) => remote,
            Ok(Err(ProviderError::NotFound(reason))) => {
                tracing::info!(provider = inv.provider.as_str(), id = %external, %reason, "the provider no longer shows a page; a new one is made");
                invoices::mark_closed(&self.s.db, inv.purchase_id)
                    .await
                    .map_err(retry)?;
                return Ok(Recheck::Ended);
            }
            Ok(Err(e)) => {
                tracing::warn!(provider = inv.provider.as_str(), error = %e, "cannot ask the provider about a page shown again; shown as it is");
                return Ok(Recheck::Payable(inv));
            }
            Err(_) => {
                tracing::warn!(
                    provider = inv.provider.as_str(),
                    "the provider did not say in time whether a page is still payable; shown as it is"
                );
                return Ok(Recheck::Payable(inv));
            }
        };
        if remote.status == RemoteStatus::Open {
            return Ok(Recheck::Payable(inv));
        }
        match self
            .settler()
            .settle(inv.provider, &remote)
            .await
            .map_err(retry)?
        {
            Settled::NotPaid(_) => Ok(Recheck::Ended),
            Settled::Applied(_) | Settled::Duplicate | Settled::Foreign => Ok(Recheck::Paid),
        }
    }

    /// "I paid": asks the provider about the purchase's payment now and settles it.
    pub(super) async fn check_paid(
        &self,
        se: &Session,
        purchase_id: i64,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let note = |key: &str, back| screens::notice(&v, self.texts.get(se.lang, key), back);
        let inv = invoices::invoice(&self.s.db, purchase_id)
            .await
            .map_err(retry)?
            .filter(|i| i.user_id == se.user.id);
        let Some(inv) = inv else {
            return Ok((
                note("stale-button", Action::Menu),
                self.begin().await?,
                false,
            ));
        };
        if inv.status == InvoiceStatus::Paid {
            return Ok((
                note("provider-paid", Action::Menu),
                self.begin().await?,
                false,
            ));
        }
        let (Some(client), Some(external)) = (
            self.s.providers.get(inv.provider),
            inv.external_id.as_deref(),
        ) else {
            return Ok((
                note("provider-ended", Action::Buy),
                self.begin().await?,
                false,
            ));
        };
        let remote = match client.fetch(external).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(provider = inv.provider.as_str(), error = %e, "cannot ask the provider about a payment");
                return Ok((
                    note("provider-try-again", Action::Menu),
                    self.begin().await?,
                    false,
                ));
            }
        };
        let settled = self
            .settler()
            .settle(inv.provider, &remote)
            .await
            .map_err(retry)?;
        let key = match settled {
            Settled::Applied(_) | Settled::Duplicate | Settled::Foreign => "provider-paid",
            Settled::NotPaid(RemoteStatus::Ended) => "provider-ended",
            Settled::NotPaid(_) => "provider-not-paid",
        };
        let screen = match key {
            "provider-not-paid" => match inv.url.as_deref() {
                Some(url) => {
                    let price = billing::purchase(
                        &self.s.db,
                        self.s.config.catalog.bot.base_currency,
                        purchase_id,
                    )
                    .await
                    .map_err(retry)?
                    .map(|p| p.price);
                    match price {
                        Some(price) => {
                            screens::provider_invoice(&v, price, url, purchase_id, Action::Buy)
                                .with_note(self.texts.get(se.lang, key))
                        }
                        None => note(key, Action::Menu),
                    }
                }
                None => note(key, Action::Menu),
            },
            _ => note(key, Action::Menu),
        };
        Ok((screen, self.begin().await?, false))
    }

    /// The providers to pay a base-currency top-up with.
    pub(super) fn topup_methods_screen(&self, se: &Session, minor: i64) -> Screen {
        let v = self.view(se.lang);
        let catalog = &self.s.config.catalog;
        let amount = Money::new(minor, catalog.bot.base_currency);
        let methods = self.pay_methods();
        if !(methods.crypto || methods.yookassa) {
            return screens::notice(
                &v,
                self.texts.get(se.lang, "topup-unavailable"),
                Action::Balance,
            );
        }
        if !fiat_topup_allowed(catalog, amount) {
            return screens::notice(&v, self.texts.get(se.lang, "stale-button"), Action::Balance);
        }
        screens::topup_methods(&v, amount, methods)
    }

    /// `/topup <amount>`: the amount typed in the base currency, checked, then the providers
    /// to pay it with; each kind of bad input gets its own answer.
    pub(super) fn topup_command(&self, se: &Session, arg: &str) -> Screen {
        let v = self.view(se.lang);
        let b = &self.s.config.catalog.balance;
        let base = self.s.config.catalog.bot.base_currency;
        let range = [
            (
                "min",
                crate::i18n::format::money(se.lang, b.custom_topup_min).into(),
            ),
            (
                "max",
                crate::i18n::format::money(se.lang, b.custom_topup_max).into(),
            ),
        ];
        let say = |key: &str, args: &[(&str, crate::i18n::Arg)]| {
            screens::notice(&v, self.texts.fmt(se.lang, key, args), Action::Balance)
        };
        let methods = self.pay_methods();
        if !(methods.crypto || methods.yookassa) {
            return say("topup-unavailable", &[]);
        }
        let text = arg.trim();
        if text.is_empty() {
            return say("topup-usage", &range);
        }
        // "500", "499.90", "499,90", "500 ₽" are meant the same way; anything else is not an
        // amount.
        let cleaned = text
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .trim()
            .replace(',', ".");
        let amount = match Money::parse_major(&cleaned, base) {
            Ok(m) => m,
            Err(crate::domain::money::MoneyError::TooPrecise { .. }) => {
                return say(
                    "topup-too-precise",
                    &[("text", crate::i18n::Arg::Text(text.to_owned()))],
                );
            }
            Err(_) => {
                let shown: String = text.chars().take(40).collect();
                return say(
                    "topup-not-a-number",
                    &[("text", crate::i18n::Arg::Text(shown))],
                );
            }
        };
        if amount.minor < b.custom_topup_min.minor {
            return say("topup-too-small", &range);
        }
        if amount.minor > b.custom_topup_max.minor {
            return say("topup-too-large", &range);
        }
        screens::topup_methods(&v, amount, methods)
    }

    fn settler(&self) -> Settler {
        Settler::new(self.s.clone(), self.texts.clone())
    }
}

/// What asking the provider about a page to be shown again found.
enum Recheck {
    /// Still waiting for the payer: shown again.
    Payable(Invoice),
    /// Declined, cancelled or expired (its invoice now closed): a new purchase is made.
    Ended,
    /// Paid meanwhile, and now settled.
    Paid,
}

/// Whether `credit` may be bought as a base-currency top-up: one of the catalog's packages,
/// or an amount within the custom range (a forged button cannot ask for more or less).
fn fiat_topup_allowed(catalog: &crate::config::catalog::Catalog, credit: Money) -> bool {
    let b = &catalog.balance;
    credit.currency == catalog.bot.base_currency
        && (b.topup_packages.contains(&credit)
            || (b.custom_topup_min.minor..=b.custom_topup_max.minor).contains(&credit.minor))
}

/// Creates the provider's payment, first looking for one a hung earlier call made anyway
/// (Crypto Pay has no idempotence key; YooKassa's key makes its repeat the same payment).
async fn open_invoice(
    client: &dyn PaymentProvider,
    new: &NewPayment,
) -> Result<Remote, ProviderError> {
    if client.provider() == Provider::Crypto
        && let Some(found) = client
            .list_recent()
            .await?
            .into_iter()
            .find(|r| r.is_for(new.purchase_id, new.amount) && r.status == RemoteStatus::Open)
    {
        return Ok(found);
    }
    client.create(new).await
}

/// The state the notification routes share.
struct Hooks {
    settler: Settler,
    /// Refused YooKassa notifications: when the last warning was logged, and how many were
    /// refused since. Strangers choose the rate, so the log gets a line a minute at most
    /// (each refusal is counted in `tollgate_http_requests_total` by route and status).
    refused: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl Hooks {
    /// Counts a refusal; `Some(count)` when it is time to log the refusals since the last line.
    fn refused(&self) -> Option<u64> {
        let mut r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let (last, count) = &mut *r;
        *count += 1;
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
            return None;
        }
        *last = Some(std::time::Instant::now());
        Some(std::mem::take(count))
    }
}

/// `POST /payments/cryptopay` and `POST /payments/yookassa`.
pub fn routes(settler: Settler) -> Router {
    Router::new()
        .route("/payments/cryptopay", post(cryptopay_hook))
        .route("/payments/yookassa", post(yookassa_hook))
        .with_state(Arc::new(Hooks {
            settler,
            refused: std::sync::Mutex::new((None, 0)),
        }))
}

/// A Crypto Pay webhook: verified over the raw body (401 when the signature is missing or
/// wrong, nothing stored), settled, and answered 200 only after the commit.
async fn cryptopay_hook(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(client) = h.settler.s.providers.crypto.clone() else {
        return StatusCode::NOT_FOUND;
    };
    match client.verify_notification(&headers, &body) {
        Ok(Notice::Verified(remote)) => answer(h.settler.settle(Provider::Crypto, &remote).await),
        Ok(Notice::Ignored | Notice::Hint { .. }) => StatusCode::OK,
        Err(ProviderError::BadSignature) => {
            tracing::warn!("a Crypto Pay webhook with a missing or wrong signature; refused");
            StatusCode::UNAUTHORIZED
        }
        Err(e) => {
            tracing::warn!(error = %e, "a Crypto Pay webhook that cannot be read; refused");
            StatusCode::BAD_REQUEST
        }
    }
}

/// A YooKassa notification: taken only from YooKassa's addresses (403 otherwise, nothing
/// fetched), and a hint only — the payment it names is fetched, and what the API says is
/// stored before the 200. A failed fetch answers 503, so YooKassa delivers again.
async fn yookassa_hook(
    State(h): State<Arc<Hooks>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (Some(client), Some(settings)) = (
        h.settler.s.providers.yookassa.clone(),
        h.settler.s.config.deployment.providers.yookassa.as_ref(),
    ) else {
        return StatusCode::NOT_FOUND;
    };
    let proxies = &h.settler.s.config.deployment.providers.trusted_proxies;
    match client_address(peer, &headers, proxies) {
        Some(ip) if settings.notify_from.allows(ip) => {}
        sender => {
            if let Some(refused) = h.refused() {
                let sender = sender.map_or_else(
                    || "an unreadable X-Forwarded-For".to_owned(),
                    |ip| ip.to_string(),
                );
                tracing::warn!(
                    %sender,
                    %peer,
                    refused,
                    "YooKassa notifications from outside YOOKASSA_NOTIFY_FROM refused with 403 (the sender is this one's; `refused` counts those since the last such line, a minute or more ago). If YooKassa's own are refused: behind a reverse proxy, list the proxy's address in TRUSTED_PROXIES and have it set X-Forwarded-For"
                );
            }
            return StatusCode::FORBIDDEN;
        }
    }
    let id = match client.verify_notification(&headers, &body) {
        Ok(Notice::Hint { external_id }) => external_id,
        Ok(Notice::Verified(_) | Notice::Ignored) => return StatusCode::OK,
        Err(e) => {
            tracing::warn!(error = %e, "a YooKassa notification that cannot be read; refused");
            return StatusCode::BAD_REQUEST;
        }
    };
    match client.fetch(&id).await {
        Ok(remote) => answer(h.settler.settle(Provider::YooKassa, &remote).await),
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, payment = %id, "cannot fetch the payment a YooKassa notification names; it will be delivered again");
            StatusCode::SERVICE_UNAVAILABLE
        }
        Err(e) => {
            tracing::warn!(error = %e, payment = %id, "a YooKassa notification names a payment the API does not give; ignored");
            StatusCode::BAD_REQUEST
        }
    }
}

fn answer(settled: Result<Settled, BillingError>) -> StatusCode {
    match settled {
        Ok(_) => StatusCode::OK,
        Err(e) => {
            tracing::warn!(error = %e, "cannot store a provider's payment; it will be delivered again");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// What one watcher pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Invoices asked about.
    pub checked: usize,
    /// Payments this pass recorded (their notification had not come).
    pub settled: usize,
    /// Invoices closed (ended, or withdrawn after their purchase expired).
    pub closed: usize,
    /// Invoices whose hung create was found at the provider.
    pub adopted: usize,
    /// Why the provider could not be asked (the pass ended there).
    pub provider_error: Option<String>,
}

/// Finds the payments of one provider that no notification reported (see the module doc).
pub struct Watcher {
    settler: Settler,
    provider: Provider,
    client: Arc<dyn PaymentProvider>,
    interval: Duration,
    failures: AtomicU32,
}

impl Watcher {
    pub fn new(settler: Settler, client: Arc<dyn PaymentProvider>) -> Watcher {
        let provider = client.provider();
        let interval = settler.s.providers.first_check(provider);
        Watcher {
            settler,
            provider,
            client,
            interval,
            failures: AtomicU32::new(0),
        }
    }

    fn lease_name(&self) -> String {
        format!("watcher:{}", self.provider.as_str())
    }

    /// When an invoice checked now and still open is checked next.
    fn next_check(&self, inv: &Invoice, now: crate::time::Timestamp) -> crate::time::Timestamp {
        match self.provider {
            Provider::YooKassa => now.plus(invoices::growing_delay(
                self.interval,
                inv.checks.saturating_add(1),
                MAX_RECONCILE_DELAY,
            )),
            _ => now.plus(self.interval),
        }
    }

    /// One pass over the due invoices; `None` when another replica holds the lease.
    pub async fn run_once(&self) -> Result<Option<Pass>, BillingError> {
        let s = &self.settler.s;
        let now = s.clock.now();
        let ttl = (self.interval * 3).max(Duration::from_secs(60));
        let name = self.lease_name();
        let Some(held) = lease::acquire(&s.db, &name, &s.holder, ttl, now).await? else {
            return Ok(None);
        };
        let mut pass = Pass::default();
        let result = self.steps(&mut pass).await;
        let _ = lease::release(&s.db, &held, s.clock.now()).await;
        if result.is_ok() {
            self.provider_health(&pass).await;
        }
        result.map(|()| Some(pass))
    }

    async fn steps(&self, pass: &mut Pass) -> Result<(), BillingError> {
        let db = &self.settler.s.db;
        for _ in 0..MAX_STEPS {
            let now = self.settler.s.clock.now();
            let due = invoices::due(db, self.provider, now, BATCH).await?;
            if due.is_empty() {
                return Ok(());
            }
            let (creating, open): (Vec<Invoice>, Vec<Invoice>) = due
                .into_iter()
                .partition(|i| i.status == InvoiceStatus::Creating);
            // Both halves run even when one fails: open invoices are checked while the
            // search for hung creates cannot list.
            let creating = self.creating(&creating, pass, now).await;
            let open = self.open(&open, pass, now).await;
            if let Err(e) = creating.and(open) {
                pass.provider_error = Some(e.to_string());
                return Ok(());
            }
        }
        Ok(())
    }

    /// Invoices whose create call got no answer: adopted when the provider has them,
    /// closed once their purchase expired, else looked at again next time.
    async fn creating(
        &self,
        rows: &[Invoice],
        pass: &mut Pass,
        now: crate::time::Timestamp,
    ) -> Result<(), ProviderError> {
        if rows.is_empty() {
            return Ok(());
        }
        let db = &self.settler.s.db;
        let recent = if self.provider == Provider::Crypto {
            self.client.list_recent().await?
        } else {
            Vec::new()
        };
        let mut later = Vec::new();
        for inv in rows {
            pass.checked += 1;
            let found = recent.iter().find(|r| r.is_for(inv.purchase_id, inv.price));
            let result = match found {
                Some(r) => {
                    pass.adopted += 1;
                    invoices::opened(db, inv.purchase_id, r, now)
                        .await
                        .map(drop)
                }
                None if inv.purchase_expires_at <= now => {
                    pass.closed += 1;
                    invoices::mark_closed(db, inv.purchase_id).await
                }
                None => {
                    later.push(inv.purchase_id);
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::warn!(purchase = inv.purchase_id, error = %e, "cannot update an invoice being created");
            }
        }
        if let Err(e) = invoices::reschedule_many(db, &later, now.plus(self.interval)).await {
            tracing::warn!(error = %e, "cannot reschedule invoices being created");
        }
        Ok(())
    }

    async fn open(
        &self,
        rows: &[Invoice],
        pass: &mut Pass,
        now: crate::time::Timestamp,
    ) -> Result<(), ProviderError> {
        if rows.is_empty() {
            return Ok(());
        }
        let db = &self.settler.s.db;
        let ids: Vec<String> = rows.iter().filter_map(|i| i.external_id.clone()).collect();
        let remotes = self.client.fetch_many(&ids).await?;
        pass.checked += rows.len();
        let mut still_open: Vec<i64> = Vec::new();
        let mut grown: Vec<(i64, crate::time::Timestamp)> = Vec::new();
        for inv in rows {
            let remote = remotes
                .iter()
                .find(|r| Some(&r.external_id) == inv.external_id.as_ref());
            let Some(remote) = remote else {
                // Not listed (deleted at the provider): nothing can be paid there any more.
                if inv.purchase_expires_at <= now {
                    let _ = invoices::mark_closed(db, inv.purchase_id).await;
                    pass.closed += 1;
                } else {
                    still_open.push(inv.purchase_id);
                }
                continue;
            };
            match remote.status {
                RemoteStatus::Paid => match self.settler.settle(self.provider, remote).await {
                    Ok(Settled::Applied(_)) => pass.settled += 1,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, id = %remote.external_id, "cannot settle a paid invoice; next pass");
                        still_open.push(inv.purchase_id);
                    }
                },
                RemoteStatus::Ended => {
                    let _ = invoices::mark_closed(db, inv.purchase_id).await;
                    pass.closed += 1;
                }
                RemoteStatus::Open if inv.purchase_expires_at <= now => {
                    // Withdrawn so that it cannot be paid for a purchase that expired; if it
                    // was paid a moment ago, the deletion fails and the next pass settles it.
                    match self.client.cancel(&remote.external_id).await {
                        Ok(()) if self.provider == Provider::Crypto => {
                            let _ = invoices::mark_closed(db, inv.purchase_id).await;
                            pass.closed += 1;
                        }
                        _ => grown.push((inv.purchase_id, self.next_check(inv, now))),
                    }
                }
                RemoteStatus::Open => match self.provider {
                    Provider::YooKassa => grown.push((inv.purchase_id, self.next_check(inv, now))),
                    _ => still_open.push(inv.purchase_id),
                },
            }
        }
        if let Err(e) = invoices::reschedule_many(db, &still_open, now.plus(self.interval)).await {
            tracing::warn!(error = %e, "cannot reschedule open invoices");
        }
        for (purchase, next) in grown {
            if let Err(e) = invoices::reschedule(db, purchase, next).await {
                tracing::warn!(error = %e, purchase, "cannot reschedule an open invoice");
            }
        }
        Ok(())
    }

    async fn provider_health(&self, pass: &Pass) {
        let s = &self.settler.s;
        let now = s.clock.now();
        let condition = format!("provider:{}", self.provider.as_str());
        let reported = match &pass.provider_error {
            Some(e) => {
                let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
                if failures < FAILURES_BEFORE_ALERT {
                    return;
                }
                let text = format!(
                    "{}: the payment watcher could not ask the provider in {failures} passes in a row (last: {e}); payments whose notification was lost are not being found meanwhile.",
                    self.provider.as_str()
                );
                s.alerts
                    .raise(&s.db, &condition, &text, now)
                    .await
                    .map(|_| ())
            }
            None => {
                self.failures.store(0, Ordering::SeqCst);
                let text = format!(
                    "{}: the payment watcher reaches the provider again.",
                    self.provider.as_str()
                );
                s.alerts
                    .resolve(&s.db, &condition, &text, now)
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = reported {
            tracing::warn!(error = %e, "cannot report a payment provider's health to the alerts");
        }
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        loop {
            hb.beat();
            match self.run_once().await {
                Ok(Some(p)) if p.settled > 0 => {
                    tracing::warn!(
                        provider = self.provider.as_str(),
                        settled = p.settled,
                        "payments recorded by the watcher (their notification never came)"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "a payment watcher pass failed; will retry"),
            }
            if !idle(self.interval, &hb, Duration::from_millis(500), &stop).await {
                return;
            }
        }
    }
}

impl Component for Watcher {
    fn name(&self) -> &'static str {
        match self.provider {
            Provider::YooKassa => "yookassa-reconciler",
            _ => "cryptopay-watcher",
        }
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(120).max(self.interval * 4)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}
