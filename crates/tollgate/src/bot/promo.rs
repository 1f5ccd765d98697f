//! Promo codes on the user's side: the Promo screen, `/promo <code>` and the
//! `?start=promo_<CODE>` link, and the offer every price on the Buy screens is computed from.
//!
//! The rules and the one price computation are [`crate::billing::promo`]'s; this file reads a
//! user's offer in the update's transaction and turns a redemption into its screen.

use super::screens::{self, Screen};
use super::{Bot, Session, retry};
use crate::action::Action;
use crate::billing::promo::{self, Offer, Redeemed};
use crate::domain::money::Money;
use crate::i18n::Arg;
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;

impl Bot {
    /// The sender's offer (personal discount, chosen code), read in the update's transaction.
    pub(super) async fn offer_in(&self, se: &Session, tx: &mut Tx) -> Result<Offer, HandlerError> {
        let base = self.s.config.catalog.bot.base_currency;
        promo::offer_in(tx, base, se.user.id, self.now())
            .await
            .map_err(retry)
    }

    /// The Promo code screen, which then reads the sender's next text as a code.
    pub(super) async fn promo_screen(
        &self,
        se: &Session,
        tx: &mut Tx,
    ) -> Result<Screen, HandlerError> {
        promo::ask_code(tx, se.user.id, self.now())
            .await
            .map_err(retry)?;
        let offer = self.offer_in(se, tx).await?;
        Ok(screens::promo(&self.view(se.lang), &offer))
    }

    /// Whether the sender's text answers the Promo code screen.
    pub(super) async fn awaits_code(
        &self,
        se: &Session,
        tx: &mut Tx,
    ) -> Result<bool, HandlerError> {
        if se.created {
            return Ok(false);
        }
        promo::awaits_code(tx, se.user.id, self.now())
            .await
            .map_err(retry)
    }

    /// How to pay for plan `id` at the sender's prices; the plan list when it left the catalog.
    pub(super) fn pay_screen(
        &self,
        se: &Session,
        id: &str,
        update_id: i64,
        offer: &Offer,
    ) -> Screen {
        let v = self.view(se.lang);
        let catalog = &self.s.config.catalog;
        match catalog.plans.iter().find(|p| p.id == id) {
            Some(plan) => screens::pay(
                &v,
                plan,
                Money::new(se.user.balance, catalog.bot.base_currency),
                self.pay_methods(),
                update_id,
                offer,
            ),
            None => {
                screens::buy(&v, None, offer).with_note(self.texts.get(se.lang, "plan-unavailable"))
            }
        }
    }

    /// The sender enters `text` as a promo code, in the update's transaction: the screen that
    /// says what it did (or why not), and whether access changed (free days).
    pub(super) async fn redeem_code(
        &self,
        se: &Session,
        tx: &mut Tx,
        text: &str,
    ) -> Result<(Screen, bool), HandlerError> {
        let v = self.view(se.lang);
        let base = self.s.config.catalog.bot.base_currency;
        let now = self.now();
        let redeemed = promo::redeem(tx, self.s.registry.enabled(), base, se.user.id, text, now)
            .await
            .map_err(super::payments::billing_err)?;
        let shown = crate::i18n::escape_html(text.trim());
        if redeemed.is_ok() {
            promo::answered(tx, se.user.id).await.map_err(retry)?;
        }
        Ok(match redeemed {
            Err(refusal) => {
                tracing::info!(user = se.user.id, ?refusal, "promo code refused");
                let offer = self.offer_in(se, tx).await?;
                let note = v.tf(refusal.text_key(), &[("code", Arg::Html(shown))]);
                (screens::promo(&v, &offer).with_note(note), false)
            }
            Ok(Redeemed::Chosen { code, benefit }) => {
                let offer = self.offer_in(se, tx).await?;
                let sub = self.subscription_of(se, tx).await?;
                let note = v.tf(
                    "promo-chosen",
                    &[
                        ("code", code.as_str().into()),
                        ("benefit", v.benefit(benefit).into()),
                    ],
                );
                (
                    screens::buy(&v, sub.as_ref(), &offer).with_note(note),
                    false,
                )
            }
            Ok(Redeemed::Days { days, subscription }) => {
                let note = v.tf(
                    "promo-days",
                    &[
                        ("days", days.into()),
                        ("until", Arg::Text(v.date(subscription.expires_at))),
                    ],
                );
                (
                    self.fresh_connect(se.lang, &subscription).with_note(note),
                    true,
                )
            }
            Ok(Redeemed::Credit {
                amount,
                balance_after,
            }) => {
                let note = v.tf(
                    "promo-credit",
                    &[
                        ("amount", v.money(amount).into()),
                        ("balance", v.money(Money::new(balance_after, base)).into()),
                    ],
                );
                (screens::notice(&v, note, Action::Balance), false)
            }
        })
    }
}
