//! The bot's side of money: invoices, the pre-checkout gate, payments and refunds arriving
//! as messages, paying from the balance, and the admin's `/refund`.
//!
//! The money rules live in [`crate::billing`]; this module turns updates into calls to it
//! and its results into screens. The only direct Telegram calls are the pre-checkout answer
//! (Telegram waits at most 10 s for it) and `refundStarPayment` (the refund must happen
//! before we record it).

use serde_json::json;

use super::incoming::{Message, PreCheckoutQuery, SuccessfulPayment};
use super::reply::Reply;
use super::screens::{self, Screen};
use super::{Bot, Session, retry};
use crate::action::Action;
use crate::billing::refund::{self, Refunded};
use crate::billing::{self, BalancePaid, BillingError, Captured, Item, Provider, Reason};
use crate::domain::money::{Currency, Money};
use crate::flags::{self, Flag};
use crate::i18n::{Arg, format};
use crate::store::Tx;
use crate::telegram::api::ApiError;
use crate::telegram::dispatcher::{Handled, HandlerContext, HandlerError};
use crate::telegram::sender::PROVIDER_TOKEN_PLACEHOLDER;
use crate::users;

/// What an invoice sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sale {
    /// A plan, from the pay screen drawn by an update (which a redrawn pay screen's balance
    /// button carries).
    Plan(String, i64),
    /// The index of a Stars top-up package.
    TopUp(usize),
    /// A base-currency top-up of this many minor units (a package or a custom amount),
    /// through a provider outside Telegram.
    Fiat(i64),
}

pub(super) fn billing_err(e: BillingError) -> HandlerError {
    // Every billing failure is a database or race problem that a retry resolves, or
    // corrupt data a retry will report again until it is dead-lettered with the reason.
    retry(e)
}

/// Telegram's invoice title limit (1–32 characters).
fn invoice_title(title: &str) -> String {
    title.chars().take(32).collect()
}

impl Bot {
    /// Stores the purchase, then queues the invoice in the same transaction (F7: no invoice
    /// whose payload is not stored).
    ///
    /// `open` is the update's transaction when it is already open (a plan's pay button); then
    /// everything is read in it. A top-up comes without one (its stale-button screen reads
    /// through the pool), and the transaction opens after the reads.
    pub(super) async fn invoice(
        &self,
        se: &Session,
        sale: Sale,
        provider: Provider,
        reply: &mut Reply,
        open: Option<Tx>,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let catalog = &self.s.config.catalog;
        let base = catalog.bot.base_currency;
        let note = |key: &str, back| screens::notice(&v, self.texts.get(se.lang, key), back);
        let (payments_on, mut open) = match open {
            Some(mut tx) => (
                self.flags_in(se, &mut tx).await?.get(Flag::Payments),
                Some(tx),
            ),
            None => (
                flags::get(&self.s.db, Flag::Payments)
                    .await
                    .map_err(retry)?,
                None,
            ),
        };
        // The update's transaction: the open one, or a new one after the reads above.
        let tx = async |open: Option<Tx>| match open {
            Some(tx) => Ok(tx),
            None => self.begin().await,
        };
        if !payments_on {
            return Ok((note("payments-paused", Action::Buy), tx(open).await?, false));
        }
        if se.user.banned_at.is_some() {
            return Ok((note("reject-banned", Action::Menu), tx(open).await?, false));
        }
        let card = self.s.config.deployment.payment_provider_token.is_some();
        let currency = match provider {
            Provider::Stars => Currency::Xtr,
            Provider::Card if card => base,
            _ => {
                return Ok((note("payments-paused", Action::Buy), tx(open).await?, false));
            }
        };
        // A plan is priced in the update's transaction, opened now: the user's offer is read
        // in it and a promo code's use is taken in it.
        let mut held = None;
        let (item, price, title, description, back) = match sale {
            Sale::Plan(id, drawn_by) => {
                let mut t = tx(open.take()).await?;
                let offer = self.offer_in(se, &mut t).await?;
                let Some((plan, quote)) = catalog
                    .plans
                    .iter()
                    .find(|p| p.id == id)
                    .and_then(|p| Some((p, v.quote(p, currency, &offer)?)))
                else {
                    let screen = screens::buy(&v, None, &offer)
                        .with_note(self.texts.get(se.lang, "plan-unavailable"));
                    return Ok((screen, t, false));
                };
                let description = self.texts.fmt(
                    se.lang,
                    "invoice-description",
                    &[("days", plan.days.into())],
                );
                let item = Item::Plan {
                    plan_id: plan.id.clone(),
                    days: plan.days,
                };
                let now = self.now();
                let made =
                    billing::create_plan_purchase(&mut t, se.user.id, &item, &quote, provider, now)
                        .await
                        .map_err(billing_err)?;
                let purchase = match made {
                    Ok(p) => p,
                    Err(refusal) => {
                        // The code ran out (or ended) meanwhile: forgotten; the prices without it.
                        let offer = self.offer_in(se, &mut t).await?;
                        let note = v.tf(
                            refusal.text_key(),
                            &[(
                                "code",
                                Arg::Text(quote.promo.map(|c| c.code).unwrap_or_default()),
                            )],
                        );
                        return Ok((
                            self.pay_screen(se, &plan.id, drawn_by, &offer)
                                .with_note(note),
                            t,
                            false,
                        ));
                    }
                };
                held = Some((t, purchase));
                (
                    item,
                    quote.price,
                    plan.title.get(se.lang).to_owned(),
                    description,
                    Action::Buy,
                )
            }
            // Base-currency top-ups go through the providers outside Telegram.
            Sale::Fiat(_) => {
                return Ok((
                    note("stale-button", Action::Balance),
                    tx(open).await?,
                    false,
                ));
            }
            Sale::TopUp(i) => {
                let Some(pk) = catalog.balance.stars_packages.get(i) else {
                    // Never with an open transaction: the balance screen reads through the pool.
                    if open.is_some() {
                        return Err(retry("internal: a top-up invoice got an open transaction"));
                    }
                    let screen = self
                        .balance_screen(se)
                        .await?
                        .with_note(self.texts.get(se.lang, "stale-button"));
                    return Ok((screen, self.begin().await?, false));
                };
                let description = self.texts.fmt(
                    se.lang,
                    "topup-invoice-description",
                    &[("amount", format::money(se.lang, pk.credit).into())],
                );
                let item = Item::TopUp { credit: pk.credit };
                let title = self.texts.get(se.lang, "topup-invoice-title");
                (
                    item,
                    Money::new(pk.stars, Currency::Xtr),
                    title,
                    description,
                    Action::Balance,
                )
            }
        };
        let now = self.now();
        let (tx, purchase) = match held {
            Some(made) => made,
            None => {
                let mut tx = tx(open).await?;
                let purchase =
                    billing::create_purchase(&mut tx, se.user.id, &item, price, provider, now)
                        .await
                        .map_err(billing_err)?;
                (tx, purchase)
            }
        };
        let title = invoice_title(&title);
        reply.call(
            "sendInvoice",
            json!({
                "title": title,
                "description": description,
                "payload": billing::invoice_payload(purchase.id),
                // The card token is filled in by the sender: secrets stay out of the outbox.
                "provider_token": if provider == Provider::Card { PROVIDER_TOKEN_PLACEHOLDER } else { "" },
                "currency": price.currency.code(),
                "prices": [{ "label": title, "amount": price.minor }],
            }),
        );
        Ok((note("invoice-sent", back), tx, false))
    }

    /// Pays a plan from the balance in one transaction; `reference` makes it once-only.
    pub(super) async fn pay_from_balance(
        &self,
        se: &Session,
        plan_id: &str,
        reference: &str,
        update_id: i64,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let base = self.s.config.catalog.bot.base_currency;
        if !flags::get(&self.s.db, Flag::Payments)
            .await
            .map_err(retry)?
        {
            let screen =
                screens::notice(&v, self.texts.get(se.lang, "payments-paused"), Action::Buy);
            return Ok((screen, self.begin().await?, false));
        }
        let Some(plan) = self.s.config.catalog.plans.iter().find(|p| p.id == plan_id) else {
            let mut tx = self.begin().await?;
            let offer = self.offer_in(se, &mut tx).await?;
            let screen = screens::buy(&v, None, &offer)
                .with_note(self.texts.get(se.lang, "plan-unavailable"));
            return Ok((screen, tx, false));
        };
        let now = self.now();
        let mut tx = self.begin().await?;
        let paid = billing::pay_plan_from_balance_with(
            &mut tx,
            self.s.registry.enabled(),
            base,
            self.s.config.catalog.discounts.stack,
            &billing::BalanceCharge {
                user_id: se.user.id,
                plan,
                reason: Reason::Purchase,
                reference,
            },
            now,
        )
        .await
        .map_err(billing_err)?;
        match paid {
            BalancePaid::Paid {
                subscription,
                balance_after,
                price,
                ..
            } => {
                crate::access::notices::expect(&mut tx, &subscription, now)
                    .await
                    .map_err(retry)?;
                let text = self.texts.fmt(
                    se.lang,
                    "payment-balance-confirmed",
                    &[
                        ("price", format::money(se.lang, price).into()),
                        (
                            "until",
                            Arg::Text(self.until(se.lang, subscription.expires_at)),
                        ),
                        (
                            "balance",
                            format::money(se.lang, Money::new(balance_after, base)).into(),
                        ),
                    ],
                );
                Ok((
                    self.fresh_connect(se.lang, &subscription).with_note(text),
                    tx,
                    true,
                ))
            }
            BalancePaid::AlreadyPaid => {
                drop(tx);
                Ok((self.access_screen(se).await?, self.begin().await?, false))
            }
            BalancePaid::Short { balance, .. } => {
                let offer = self.offer_in(se, &mut tx).await?;
                let screen = screens::pay(
                    &v,
                    plan,
                    Money::new(balance, base),
                    self.pay_methods(),
                    update_id,
                    &offer,
                );
                Ok((screen, tx, false))
            }
            BalancePaid::PromoRefused(refusal) => {
                let offer = self.offer_in(se, &mut tx).await?;
                let note = self.texts.get(se.lang, refusal.text_key());
                let screen = screens::pay(
                    &v,
                    plan,
                    Money::new(se.user.balance, base),
                    self.pay_methods(),
                    update_id,
                    &offer,
                )
                .with_note(note);
                Ok((screen, tx, false))
            }
        }
    }

    pub(super) fn until(&self, lang: crate::config::Language, t: crate::time::Timestamp) -> String {
        format::date_time(lang, t, self.s.config.catalog.bot.utc_offset_minutes)
    }

    /// The gate before Telegram charges (F4), answered at once.
    pub(super) async fn on_pre_checkout(
        &self,
        q: PreCheckoutQuery,
    ) -> Result<Handled, HandlerError> {
        let now = self.now();
        // Read once, with the flags: for the language of a refusal and for the gate's checks.
        let sender = users::sender(&self.s.db, q.from.id)
            .await
            .map_err(|e| e.to_string());
        let lang = match &sender {
            Ok(Some(s)) => s.user.language_or(self.default_language()),
            _ => users::initial_language(
                q.from.language_code.as_deref(),
                &self.s.config.catalog.bot.languages,
            ),
        };
        let payments_on = match &sender {
            Ok(Some(s)) => Ok(s.flags.get(Flag::Payments)),
            // Not registered (or not readable): the flag on its own.
            _ => flags::get(&self.s.db, Flag::Payments)
                .await
                .map_err(|e| e.to_string()),
        };
        let user = sender.map(|s| s.map(|s| s.user));
        let checkout = billing::Checkout {
            user_id: q.from.id,
            currency: &q.currency,
            total_amount: q.total_amount,
            payload: &q.invoice_payload,
        };
        let verdict = match (payments_on, user) {
            (Ok(on), Ok(user)) => billing::check_pre_checkout(
                &self.s.db,
                &self.s.config.catalog,
                &checkout,
                on,
                user.as_ref(),
                now,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot check a pre-checkout query; refusing it");
            })
            .unwrap_or(Err(billing::Rejection::Disabled)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot read the payments flag or the user; refusing a pre-checkout query");
                Err(billing::Rejection::Disabled)
            }
        };
        let params = match verdict {
            Ok(()) => json!({ "pre_checkout_query_id": q.id, "ok": true }),
            Err(r) => {
                tracing::info!(user = q.from.id, payload = %q.invoice_payload, reason = ?r, "pre-checkout refused");
                json!({
                    "pre_checkout_query_id": q.id,
                    "ok": false,
                    "error_message": self.texts.get(lang, r.text_key()),
                })
            }
        };
        match self
            .s
            .api
            .call::<_, bool>("answerPreCheckoutQuery", &params)
            .await
        {
            Ok(_) => Ok(Handled::Done),
            // Too late: Telegram has cancelled the payment; nothing was charged.
            Err(e) if e.is_stale_query() => Ok(Handled::Done),
            Err(e) => Err(retry(e)),
        }
    }

    /// `successful_payment`: the one finalize, then the connect screen when access changed,
    /// in the update's transaction `tx`, opened after the payer was read (`se`).
    pub(super) async fn on_payment(
        &self,
        mut tx: Tx,
        update_id: i64,
        se: &Session,
        sp: SuccessfulPayment,
        m: Message,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let provider = if sp.currency == Currency::Xtr.code() {
            Provider::Stars
        } else {
            Provider::Card
        };
        let pay = Captured {
            provider,
            charge_id: sp.telegram_payment_charge_id.clone(),
            user_id: se.user.id,
            currency: sp.currency.clone(),
            total_amount: sp.total_amount,
            payload: sp.invoice_payload.clone(),
            raw: Some(
                json!({
                    "message_id": m.message_id,
                    "provider_payment_charge_id": sp.provider_payment_charge_id,
                })
                .to_string(),
            ),
        };
        let now = self.now();
        // The payer as read for the session: finalize needs no second read.
        let finalized =
            billing::finalize(&mut tx, &self.billing_context(), &pay, Some(&se.user), now)
                .await
                .map_err(billing_err)?;
        let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
        if let billing::Finalized::Applied {
            effect: billing::Effect::Access { subscription, .. },
            ..
        } = &finalized
        {
            reply.send(&self.fresh_connect(se.lang, subscription));
        }
        let changed = finalized.access_changed();
        self.finish(tx, Some(se), update_id, reply, changed, ctx)
            .await
    }

    /// `refunded_payment`: Telegram says money went back (our `/refund` or elsewhere).
    pub(super) async fn on_refunded(
        &self,
        update_id: i64,
        se: &Session,
        charge_id: &str,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let mut tx = self.begin().await?;
        let r = refund::apply_refund(
            &mut tx,
            &self.billing_context(),
            Provider::Stars,
            charge_id,
            self.now(),
        )
        .await
        .map_err(billing_err)?;
        let changed = matches!(r, Refunded::Applied { .. });
        let reply = Reply::new(format!("u{update_id}"), se.chat_id);
        self.finish(tx, Some(se), update_id, reply, changed, ctx)
            .await
    }

    /// Asks Telegram to give a Stars payment back (outside any transaction). `Err` inside is
    /// Telegram's refusal, for the admin; the outer error retries the update.
    pub(super) async fn ask_stars_refund(
        &self,
        user_id: i64,
        charge: &str,
    ) -> Result<Result<(), String>, HandlerError> {
        let params = json!({ "user_id": user_id, "telegram_payment_charge_id": charge });
        match self
            .s
            .api
            .call::<_, bool>("refundStarPayment", &params)
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(ApiError::BadRequest { description, .. })
                if description.contains("CHARGE_ALREADY_REFUNDED") =>
            {
                Ok(Ok(()))
            }
            Err(ApiError::BadRequest { description, .. }) => Ok(Err(description)),
            // Network, 5xx, 429: try again; refundStarPayment is idempotent for us (a repeat
            // says CHARGE_ALREADY_REFUNDED).
            Err(e) => Err(retry(e)),
        }
    }

    /// `/refund <charge id>` (admins): refunds a Stars payment and reverses its effect.
    pub(super) async fn refund_command(
        &self,
        update_id: i64,
        se: &Session,
        arg: &str,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
        let say = |reply: &mut Reply, text: String| {
            reply.send(&screens::notice(&self.view(se.lang), text, Action::Menu));
        };
        let charge = super::review::charge_arg(arg);
        if !self.is_admin(se) {
            say(&mut reply, self.texts.get(se.lang, "admin-only"));
        } else if let Some(charge) = charge {
            let args = [("charge", Arg::Text(charge.to_owned()))];
            let known = refund::payment_by_charge(&self.s.db, Provider::Stars, charge)
                .await
                .map_err(billing_err)?;
            match known {
                None => say(&mut reply, self.texts.fmt(se.lang, "refund-unknown", &args)),
                Some(p) => {
                    let asked = if p.status == "refunded" {
                        Ok(())
                    } else {
                        self.ask_stars_refund(p.user_id, charge).await?
                    };
                    match asked {
                        Ok(()) => {
                            let mut tx = self.begin().await?;
                            let r = refund::apply_refund(
                                &mut tx,
                                &self.billing_context(),
                                Provider::Stars,
                                charge,
                                self.now(),
                            )
                            .await
                            .map_err(billing_err)?;
                            tracing::info!(admin = se.user.id, charge, outcome = ?r, "refund by admin");
                            say(&mut reply, self.texts.fmt(se.lang, "refund-sent", &args));
                            let changed = matches!(r, Refunded::Applied { .. });
                            return self
                                .finish(tx, Some(se), update_id, reply, changed, ctx)
                                .await;
                        }
                        Err(reason) => {
                            let args = [
                                ("charge", Arg::Text(charge.to_owned())),
                                ("reason", Arg::Text(reason)),
                            ];
                            say(&mut reply, self.texts.fmt(se.lang, "refund-failed", &args));
                        }
                    }
                }
            }
        } else {
            say(&mut reply, self.texts.get(se.lang, "refund-usage"));
        }
        let tx = self.begin().await?;
        self.finish(tx, Some(se), update_id, reply, false, ctx)
            .await
    }
}
