//! The admin's view of one payment: `/payment <charge id>`, with Apply and Refund. The id of
//! a payment that names no purchase of ours (`billing::unmatched`) shows that payment's card.
//!
//! A payment kept for review (money captured that matched no purchase, `billing::review`) is
//! announced to the admins with its charge id; this is where they settle it. Every use — the
//! command and each button — checks `ADMIN_IDS` again: a button forged or forwarded to someone
//! else does nothing and is logged.

use super::payments::billing_err;
use super::reply::Reply;
use super::screens::{self, Button, Screen};
use super::{Bot, Session, retry};
use crate::action::{Action, AdminAction, Op};
use crate::admin::{Actor, AuditAction, AuditEntry, audit};
use crate::billing::refund::{self, Refunded};
use crate::billing::review::{self, Settled, StoredPayment};
use crate::billing::unmatched;
use crate::billing::{Effect, Provider};
use crate::i18n::{Arg, format};
use crate::store::Tx;
use crate::telegram::dispatcher::{Handled, HandlerContext, HandlerError};

/// A command's charge id argument: one word of 1–256 characters.
pub(super) fn charge_arg(arg: &str) -> Option<&str> {
    let charge = arg.trim();
    let valid = !charge.is_empty() && !charge.contains(char::is_whitespace) && charge.len() <= 256;
    valid.then_some(charge)
}

impl Bot {
    /// `ADMIN_IDS` holds the sender: checked on every use of every admin command and button.
    pub(super) fn is_admin(&self, se: &Session) -> bool {
        self.s.config.deployment.admin_ids.contains(&se.user.id)
    }

    /// `/payment <charge id>`: the payment, what it paid for or why it was kept, and what an
    /// admin can do with it.
    pub(super) async fn payment_command(
        &self,
        update_id: i64,
        se: &Session,
        arg: &str,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
        let v = self.view(se.lang);
        let note = |key: &str, args: &[(&str, Arg)]| {
            screens::notice(&v, self.texts.fmt(se.lang, key, args), Action::Menu)
        };
        let charge = charge_arg(arg);
        // Read through the pool before the reply's transaction opens.
        let (found, unmatched) = match charge.filter(|_| self.is_admin(se)) {
            Some(charge) => (
                review::by_charge(&self.s.db, charge)
                    .await
                    .map_err(billing_err)?,
                unmatched::by_external(&self.s.db, charge)
                    .await
                    .map_err(billing_err)?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        let mut tx = self.begin().await?;
        let screen = match (self.is_admin(se), charge) {
            (false, _) => note("admin-only", &[]),
            (true, None) => note("payment-usage", &[]),
            (true, Some(charge)) => match (found.first(), unmatched.first()) {
                (Some(p), _) => self.payment_screen(se, &mut tx, p).await?,
                (None, Some(u)) => self.unmatched_screen(&v, u),
                (None, None) => note(
                    "payment-unknown",
                    &[("charge", Arg::Text(charge.to_owned()))],
                ),
            },
        };
        reply.send(&screen);
        self.finish(tx, Some(se), update_id, reply, false, ctx)
            .await
    }

    /// Apply pressed on a payment's screen (Refund is confirmed first, in the console).
    pub(super) async fn apply_payment(
        &self,
        se: &Session,
        payment_id: i64,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        if !self.is_admin(se) {
            tracing::warn!(
                user = se.user.id,
                payment_id,
                "an admin's payment button pressed by someone who is not an admin; ignored"
            );
            let screen = screens::notice(&v, self.texts.get(se.lang, "admin-only"), Action::Menu);
            return Ok((screen, self.begin().await?, false));
        }
        let Some(payment) = review::by_id(&self.s.db, payment_id)
            .await
            .map_err(billing_err)?
        else {
            let screen = screens::notice(&v, self.texts.get(se.lang, "stale-button"), Action::Menu);
            return Ok((screen, self.begin().await?, false));
        };
        let mut tx = self.begin().await?;
        let settled = review::apply_kept(&mut tx, &self.billing_context(), payment.id, self.now())
            .await
            .map_err(billing_err)?;
        tracing::info!(admin = se.user.id, payment = payment.id, outcome = ?settled, "payment applied by admin");
        let (note, changed) = match settled {
            Settled::Applied(effect) => {
                let purchase = match &effect {
                    Effect::Access { purchase_id, .. } | Effect::Credit { purchase_id, .. } => {
                        *purchase_id
                    }
                    Effect::Review { .. } => 0,
                };
                let entry = AuditEntry::new(Actor::Admin(se.user.id), AuditAction::ApplyPayment)
                    .user(payment.user_id)
                    .subject(format!("payment {} ({})", payment.id, payment.charge_id))
                    .change("kept for review", format!("purchase {purchase}"));
                audit::record(&mut tx, &entry, self.now())
                    .await
                    .map_err(retry)?;
                let note = self.texts.fmt(
                    se.lang,
                    "payment-applied-now",
                    &[("purchase", purchase.into())],
                );
                (note, matches!(effect, Effect::Access { .. }))
            }
            Settled::AlreadySettled => (self.texts.get(se.lang, "payment-already-settled"), false),
            Settled::CannotApply(why) => (
                self.texts
                    .fmt(se.lang, "payment-cannot-apply", &[("why", Arg::Text(why))]),
                false,
            ),
        };
        let screen = self.payment_now(se, &mut tx, payment, note).await?;
        Ok((screen, tx, changed))
    }

    /// The payment's screen as it is now, read in the transaction that changed it, with the
    /// outcome `note` on top.
    pub(super) async fn payment_now(
        &self,
        se: &Session,
        tx: &mut Tx,
        payment: StoredPayment,
        note: String,
    ) -> Result<Screen, HandlerError> {
        let now = review::by_id_in(tx, payment.id)
            .await
            .map_err(billing_err)?
            .unwrap_or(payment);
        Ok(self.payment_screen(se, tx, &now).await?.with_note(note))
    }

    /// Refund pressed: Stars go back through Telegram first, YooKassa payments through its
    /// refunds API (keyed by the payment, so a repeat is the same refund); then the effect is
    /// reversed in one transaction (as `/refund` does). Card payments through Telegram and
    /// Crypto Pay invoices are refunded in the provider's dashboard.
    pub(super) async fn refund_payment(
        &self,
        se: &Session,
        payment: &StoredPayment,
    ) -> Result<(String, Tx, bool), HandlerError> {
        if !self.refundable_here(payment.provider) {
            let note = self.texts.get(se.lang, "payment-refund-elsewhere");
            return Ok((note, self.begin().await?, false));
        }
        let charge = Arg::Text(payment.charge_id.clone());
        let asking = payment.status == "captured";
        let asked = if !asking {
            Ok(())
        } else if payment.provider == Provider::Stars {
            self.ask_stars_refund(payment.user_id, &payment.charge_id)
                .await?
        } else {
            let key = format!("tollgate-refund-{}", payment.id);
            self.ask_provider_refund(
                payment.provider,
                &payment.charge_id,
                payment.amount,
                &payment.currency,
                &key,
            )
            .await
        };
        if let Err(reason) = asked {
            let note = self.texts.fmt(
                se.lang,
                "refund-failed",
                &[("charge", charge), ("reason", Arg::Text(reason))],
            );
            return Ok((note, self.begin().await?, false));
        }
        let mut tx = self.begin().await?;
        let r = refund::apply_refund(
            &mut tx,
            &self.billing_context(),
            payment.provider,
            &payment.charge_id,
            self.now(),
        )
        .await
        .map_err(billing_err)?;
        tracing::info!(admin = se.user.id, payment = payment.id, outcome = ?r, "refund by admin");
        // The provider's own report of the refund this press asked for (YooKassa's
        // notification, Telegram's `refunded_payment`) may have applied it a moment earlier:
        // it is still this press's refund.
        let changed = match r {
            Refunded::Applied { .. } => true,
            Refunded::AlreadyRefunded => asking,
            Refunded::Unknown => false,
        };
        let note = if changed {
            self.texts
                .fmt(se.lang, "refund-sent", &[("charge", charge)])
        } else {
            self.texts.get(se.lang, "payment-already-settled")
        };
        Ok((note, tx, changed))
    }

    /// Whether a payment of `provider` is refunded from the bot (else in its dashboard).
    pub(super) fn refundable_here(&self, provider: Provider) -> bool {
        provider == Provider::Stars
            || (provider == Provider::YooKassa && self.s.providers.yookassa.is_some())
    }

    /// Asks the provider (YooKassa) to give `minor` units of `currency` of its payment
    /// `charge_id` back, outside any transaction; `key` makes a repeat the same refund. `Err`
    /// is the provider's refusal or silence, for the admin.
    pub(super) async fn ask_provider_refund(
        &self,
        provider: Provider,
        charge_id: &str,
        minor: i64,
        currency: &str,
        key: &str,
    ) -> Result<(), String> {
        let Some(client) = self.s.providers.get(provider) else {
            return Err("the provider is not configured".into());
        };
        let currency: crate::domain::money::Currency =
            currency.parse().map_err(|e| format!("{e}"))?;
        let amount = crate::domain::money::Money::new(minor, currency);
        client
            .refund(charge_id, amount, key)
            .await
            .map_err(|e| e.to_string())
    }

    /// One payment: amount, payer, state, and the buttons that fit its state.
    pub(super) async fn payment_screen(
        &self,
        se: &Session,
        tx: &mut Tx,
        p: &StoredPayment,
    ) -> Result<Screen, HandlerError> {
        let lang = se.lang;
        let t = |key: &str, args: &[(&str, Arg)]| self.texts.fmt(lang, key, args);
        let mut text = t(
            "payment-card",
            &[
                ("charge", Arg::Text(p.charge_id.clone())),
                ("amount", p.amount.into()),
                ("currency", Arg::Text(p.currency.clone())),
                ("provider", Arg::Text(p.provider.as_str().to_owned())),
                ("user", p.user_id.into()),
                (
                    "date",
                    Arg::Text(format::date_time(
                        lang,
                        p.created_at,
                        self.s.config.catalog.bot.utc_offset_minutes,
                    )),
                ),
            ],
        );
        let mut rows = Vec::new();
        let state = if p.status == "refunded" {
            t("payment-state-refunded", &[])
        } else if let Some(purchase) = p.purchase_id {
            t("payment-state-applied", &[("purchase", purchase.into())])
        } else {
            let found = review::assess(tx, &self.billing_context(), p)
                .await
                .map_err(billing_err)?;
            let mut state = t("payment-state-kept", &[("reason", Arg::Text(found.reason))]);
            match (found.blocker, found.purchase_id) {
                (Some(why), _) => {
                    state.push('\n');
                    state.push_str(&t("payment-cannot-apply", &[("why", Arg::Text(why))]));
                }
                (None, Some(purchase)) => {
                    state.push('\n');
                    state.push_str(&t(
                        "payment-apply-explained",
                        &[("purchase", purchase.into())],
                    ));
                    rows.push(vec![Button::Action {
                        text: t("btn-payment-apply", &[("purchase", purchase.into())]),
                        action: Action::ApplyPayment(p.id),
                    }]);
                }
                (None, None) => {}
            }
            state
        };
        text.push_str("\n\n");
        text.push_str(&state);
        if p.status == "captured" && self.refundable_here(p.provider) {
            rows.push(vec![Button::Action {
                text: t("btn-payment-refund", &[]),
                action: Action::Admin(AdminAction::Confirm(Op::Refund(p.id))),
            }]);
        }
        Ok(screens::with_menu(&self.view(lang), text, rows))
    }
}
