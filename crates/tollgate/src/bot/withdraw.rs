//! Balance → Withdraw (docs/product.md §3.7): the amount, then the requisites, typed as text;
//! a confirmation; the amount reserved at once (`billing::withdrawals`).
//!
//! Typed answers use the same store as the console's questions (`admin::prompts`, one pending
//! question per Telegram id, claimed in the answer's transaction so a redelivered message
//! cannot answer twice): the user's step is kept there, and the draft waiting for its Confirm
//! button too, whose press is the request's once-only key. Every refusal names its reason
//! (below the minimum, above what may be withdrawn, empty requisites), keeps the question
//! open and reserves nothing.

use super::screens::{self, Screen, View};
use super::{Bot, Session, retry};
use crate::action::Action;
use crate::admin::prompts;
use crate::billing::withdrawals::{self, Refusal, Requested};
use crate::domain::money::Money;
use crate::i18n::{Arg, escape_html};
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
use crate::telegram::outbox::{self, OutboxMessage, Priority};

use super::payments::billing_err;

/// Where a user's withdrawal stands while they type it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Amount,
    Requisites {
        amount: i64,
    },
    /// Waiting for the Confirm button of the screen drawn by update `screen`.
    Draft {
        screen: i64,
        amount: i64,
        requisites: String,
    },
}

impl Step {
    pub fn encode(&self) -> String {
        match self {
            Step::Amount => "wd:amount".into(),
            Step::Requisites { amount } => format!("wd:req:{amount}"),
            Step::Draft {
                screen,
                amount,
                requisites,
            } => format!("wd:draft:{screen}:{amount}:{requisites}"),
        }
    }

    /// Whether the step waits for typed text (the amount, the requisites), not for the
    /// draft's Confirm button.
    pub fn is_typed(&self) -> bool {
        !matches!(self, Step::Draft { .. })
    }

    pub fn parse(s: &str) -> Option<Step> {
        if s == "wd:amount" {
            return Some(Step::Amount);
        }
        if let Some(a) = s.strip_prefix("wd:req:") {
            return a.parse().ok().map(|amount| Step::Requisites { amount });
        }
        let rest = s.strip_prefix("wd:draft:")?;
        let mut parts = rest.splitn(3, ':');
        Some(Step::Draft {
            screen: parts.next()?.parse().ok()?,
            amount: parts.next()?.parse().ok()?,
            requisites: parts.next()?.to_owned(),
        })
    }
}

/// A refusal in the user's words.
fn refusal_text(v: &View<'_>, r: Refusal) -> String {
    match r {
        Refusal::BelowMinimum { min } => {
            v.tf("withdraw-below-min", &[("min", Arg::Text(v.money(min)))])
        }
        Refusal::AboveAvailable { available } => v.tf(
            "withdraw-above-available",
            &[("available", Arg::Text(v.money(available)))],
        ),
        Refusal::EmptyRequisites => v.t("withdraw-requisites-empty"),
        Refusal::LongRequisites => v.tf(
            "withdraw-requisites-long",
            &[("max", withdrawals::MAX_REQUISITES_CHARS.into())],
        ),
    }
}

/// A question's screen: `text`, Cancel and Back to the balance.
fn asking(v: &View<'_>, text: String) -> Screen {
    Screen::new(
        text,
        vec![
            vec![v.button("btn-withdraw-cancel", Action::WithdrawCancel)],
            v.back_row(Action::Balance),
        ],
    )
}

impl Bot {
    /// Withdraw pressed: what may be withdrawn and the question for the amount, or why
    /// nothing can be withdrawn yet.
    pub(super) async fn withdraw_start(
        &self,
        se: &Session,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let base = self.s.config.catalog.bot.base_currency;
        let min = self.s.config.catalog.balance.withdrawal_min;
        let available = withdrawals::available(&self.s.db, se.user.id, base)
            .await
            .map_err(billing_err)?;
        let args = [
            ("available", Arg::Text(v.money(available))),
            ("min", Arg::Text(v.money(min))),
        ];
        if available.minor < min.minor {
            let screen = screens::notice(&v, v.tf("withdraw-not-enough", &args), Action::Balance);
            return Ok((screen, self.begin().await?, false));
        }
        let mut tx = self.begin().await?;
        prompts::ask(&mut tx, se.user.id, &Step::Amount.encode(), self.now())
            .await
            .map_err(retry)?;
        Ok((asking(&v, v.tf("withdraw-ask-amount", &args)), tx, false))
    }

    /// A user's message while a withdrawal step of theirs is pending: the screen and the
    /// transaction to finish the update in, or `None` (no step pending, or only a draft
    /// waiting for its button: an ordinary message).
    pub(super) async fn withdraw_answer(
        &self,
        update_id: i64,
        se: &Session,
        text: &str,
    ) -> Result<Option<(Screen, Tx)>, HandlerError> {
        let Some(pending) = se.question(self.now()) else {
            return Ok(None);
        };
        let Some(step) = Step::parse(&pending.question) else {
            return Ok(None);
        };
        let v = self.view(se.lang);
        let base = self.s.config.catalog.bot.base_currency;
        let min = self.s.config.catalog.balance.withdrawal_min;
        // A refused answer: the question stays open, nothing is written.
        let keep = |note: String, question: String| asking(&v, format!("{note}\n\n{question}"));
        let (screen, next) = match step {
            Step::Amount => {
                let available = withdrawals::available(&self.s.db, se.user.id, base)
                    .await
                    .map_err(billing_err)?;
                let args = [
                    ("available", Arg::Text(v.money(available))),
                    ("min", Arg::Text(v.money(min))),
                ];
                let question = v.tf("withdraw-ask-amount", &args);
                let amount = match Money::parse_major(text.trim(), base) {
                    Ok(a) if a.minor > 0 => a,
                    _ => {
                        let note = v.tf(
                            "withdraw-amount-invalid",
                            &[("currency", Arg::Text(base.code().into()))],
                        );
                        return Ok(Some((keep(note, question), self.begin().await?)));
                    }
                };
                if let Err(r) = withdrawals::check_amount(amount, min, available) {
                    let note = refusal_text(&v, r);
                    return Ok(Some((keep(note, question), self.begin().await?)));
                }
                let ask = v.tf(
                    "withdraw-ask-requisites",
                    &[("amount", Arg::Text(v.money(amount)))],
                );
                (
                    asking(&v, ask),
                    Step::Requisites {
                        amount: amount.minor,
                    },
                )
            }
            Step::Requisites { amount } => {
                let amount = Money::new(amount, base);
                let requisites = match withdrawals::check_requisites(text) {
                    Ok(r) => r.to_owned(),
                    Err(r) => {
                        let question = v.tf(
                            "withdraw-ask-requisites",
                            &[("amount", Arg::Text(v.money(amount)))],
                        );
                        let note = refusal_text(&v, r);
                        return Ok(Some((keep(note, question), self.begin().await?)));
                    }
                };
                let text = v.tf(
                    "withdraw-confirm",
                    &[
                        ("amount", Arg::Text(v.money(amount))),
                        ("requisites", Arg::Html(escape_html(&requisites))),
                    ],
                );
                let screen = Screen::new(
                    text,
                    vec![
                        vec![v.button("btn-withdraw-confirm", Action::WithdrawConfirm(update_id))],
                        vec![v.button("btn-withdraw-cancel", Action::WithdrawCancel)],
                    ],
                );
                (
                    screen,
                    Step::Draft {
                        screen: update_id,
                        amount: amount.minor,
                        requisites,
                    },
                )
            }
            Step::Draft { .. } => return Ok(None),
        };
        let mut tx = self.begin().await?;
        if !prompts::take(&mut tx, se.user.id, &pending)
            .await
            .map_err(retry)?
        {
            // Answered or cancelled meanwhile: an ordinary message.
            drop(tx);
            return Ok(None);
        }
        prompts::ask(&mut tx, se.user.id, &next.encode(), self.now())
            .await
            .map_err(retry)?;
        Ok(Some((screen, tx)))
    }

    /// Confirm pressed on the screen drawn by update `screen`: the request, reserved at once;
    /// a second press (or a stale screen) finds the draft gone and changes nothing.
    pub(super) async fn withdraw_confirm(
        &self,
        se: &Session,
        screen: i64,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let now = self.now();
        let base = self.s.config.catalog.bot.base_currency;
        let min = self.s.config.catalog.balance.withdrawal_min;
        let pending = prompts::pending(&self.s.db, se.user.id, now)
            .await
            .map_err(retry)?;
        let draft = pending
            .as_ref()
            .and_then(|p| Step::parse(&p.question).map(|s| (p, s)));
        let press = format!("wd:{}:{screen}", se.user.id);
        let Some((
            pending,
            Step::Draft {
                amount, requisites, ..
            },
        )) = draft.filter(|(_, s)| matches!(s, Step::Draft { screen: d, .. } if *d == screen))
        else {
            return self.withdraw_gone(se, &press).await;
        };
        let amount = Money::new(amount, base);
        let mut tx = self.begin().await?;
        if !prompts::take(&mut tx, se.user.id, pending)
            .await
            .map_err(retry)?
        {
            drop(tx);
            return self.withdraw_gone(se, &press).await;
        }
        let outcome =
            withdrawals::request(&mut tx, se.user.id, amount, &requisites, min, &press, now)
                .await
                .map_err(billing_err)?;
        let note = match outcome {
            Requested::Created(w) => {
                for admin in &self.s.config.deployment.admin_ids {
                    let text = self.texts.fmt(
                        self.default_language(),
                        "adm-withdrawal-new",
                        &[
                            ("id", w.id.into()),
                            ("user", w.user_id.into()),
                            ("amount", Arg::Text(v.money(w.amount))),
                        ],
                    );
                    let msg = OutboxMessage::text(
                        format!("withdrawal-new:{}:{admin}", w.id),
                        *admin,
                        Priority::Transactional,
                        text,
                        None,
                    );
                    outbox::enqueue(&mut tx, &msg, now).await.map_err(retry)?;
                }
                tx.commit().await.map_err(retry)?;
                v.tf(
                    "withdraw-requested",
                    &[("amount", Arg::Text(v.money(amount)))],
                )
            }
            Requested::AlreadyRequested => {
                tx.rollback().await.map_err(retry)?;
                return self.withdraw_gone(se, &press).await;
            }
            Requested::Refused(r) => {
                // The debit, if it was made, goes with the transaction; the draft stays.
                tx.rollback().await.map_err(retry)?;
                refusal_text(&v, r)
            }
        };
        Ok((
            self.balance_screen(se).await?.with_note(note),
            self.begin().await?,
            false,
        ))
    }

    /// A Confirm whose draft is gone: the request this press made (a double tap, a
    /// redelivered press), shown again; else it was cancelled or replaced.
    async fn withdraw_gone(
        &self,
        se: &Session,
        press: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let made = withdrawals::by_press(&self.s.db, press)
            .await
            .map_err(billing_err)?;
        let note = match made {
            Some(w) => v.tf(
                "withdraw-requested",
                &[("amount", Arg::Text(v.money(w.amount)))],
            ),
            None => v.t("withdraw-draft-gone"),
        };
        Ok((
            self.balance_screen(se).await?.with_note(note),
            self.begin().await?,
            false,
        ))
    }

    /// Cancel: the withdrawal being drafted is forgotten.
    pub(super) async fn withdraw_cancel(
        &self,
        se: &Session,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let screen = self
            .balance_screen(se)
            .await?
            .with_note(v.t("withdraw-cancelled"));
        let pending = prompts::pending(&self.s.db, se.user.id, self.now())
            .await
            .map_err(retry)?
            .filter(|p| Step::parse(&p.question).is_some());
        let mut tx = self.begin().await?;
        if let Some(p) = pending {
            prompts::take(&mut tx, se.user.id, &p)
                .await
                .map_err(retry)?;
        }
        Ok((screen, tx, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_roundtrip() {
        for s in [
            Step::Amount,
            Step::Requisites { amount: 50_000 },
            Step::Draft {
                screen: 7,
                amount: 50_000,
                requisites: "card: 4111 1111\nname: A".into(),
            },
        ] {
            assert_eq!(Step::parse(&s.encode()), Some(s));
        }
        for bad in [
            "wd:",
            "wd:req:x",
            "wd:draft:1:2",
            "find",
            "draft:balance:1:2:3:x",
        ] {
            assert_eq!(Step::parse(bad), None, "{bad:?}");
        }
    }
}
