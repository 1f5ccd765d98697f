//! Money that waits for an admin's decision, in one place (/admin → To review): payments kept
//! for review (captured, tied to no purchase: `billing::review`, settled on the payment's card)
//! and payments a provider reports paid that name no purchase of ours
//! (`billing::unmatched`), which have no payer here.
//!
//! An unmatched payment is settled once, by one conditional update with its audit row in the
//! same transaction: refunded through the provider where the bot can (YooKassa; the refund is
//! keyed by the row, so a repeat is the same refund), or marked settled outside the bot
//! (refunded in the provider's dashboard, credited to someone by hand).

use super::{LIST_ROWS, admin, back_home};
use crate::action::{AdminAction, Op};
use crate::admin::{Actor, AuditAction, AuditEntry};
use crate::billing::unmatched::{self, Resolution, Unmatched};
use crate::billing::{Provider, review};
use crate::bot::payments::billing_err;
use crate::bot::screens::{self, Button, Screen, View};
use crate::bot::{Bot, Session};
use crate::i18n::{Arg, escape_html};
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;

/// What of a provider's record the card shows: enough to recognise the payment in the
/// provider's dashboard, short enough for one message.
const RAW_SHOWN: usize = 1500;

impl Bot {
    /// The payments kept for review and the unmatched ones, newest first, each a button to
    /// its card.
    pub(super) async fn review_screen(&self, v: &View<'_>) -> Result<Screen, HandlerError> {
        let db = &self.s.db;
        let (kept_count, kept, unmatched_count, open) = tokio::try_join!(
            review::awaiting(db),
            review::kept(db, LIST_ROWS),
            unmatched::waiting(db),
            unmatched::open(db, LIST_ROWS),
        )
        .map_err(billing_err)?;
        let mut rows: Vec<Vec<Button>> = Vec::new();
        for p in &kept {
            rows.push(vec![Button::Action {
                text: v.tf(
                    "adm-btn-review-kept",
                    &[
                        ("amount", Arg::Text(v.stated(p.amount, &p.currency))),
                        ("provider", Arg::Text(p.provider.as_str().into())),
                        ("user", p.user_id.into()),
                    ],
                ),
                action: admin(AdminAction::Payment(p.id)),
            }]);
        }
        for u in &open {
            rows.push(vec![Button::Action {
                text: v.tf(
                    "adm-btn-review-unmatched",
                    &[
                        ("amount", Arg::Text(stated(v, u))),
                        ("provider", Arg::Text(u.provider.as_str().into())),
                        ("date", Arg::Text(v.date(u.seen_at))),
                    ],
                ),
                action: admin(AdminAction::Unmatched(u.id)),
            }]);
        }
        rows.push(back_home(v));
        let text = v.tf(
            "adm-review",
            &[
                ("kept", kept_count.into()),
                ("unmatched", unmatched_count.into()),
            ],
        );
        Ok(Screen::new(text, rows))
    }

    /// One unmatched payment: what the provider says of it, its state, and the ways to
    /// settle it while it is open.
    pub(super) async fn unmatched_card(
        &self,
        v: &View<'_>,
        id: i64,
    ) -> Result<Screen, HandlerError> {
        let Some(u) = unmatched::by_id(&self.s.db, id)
            .await
            .map_err(billing_err)?
        else {
            return Ok(screens::notice(
                v,
                v.t("stale-button"),
                admin(AdminAction::Review),
            ));
        };
        Ok(self.unmatched_screen(v, &u))
    }

    /// [`Bot::unmatched_card`] of a row in hand (also `/payment <id>`).
    pub(in crate::bot) fn unmatched_screen(&self, v: &View<'_>, u: &Unmatched) -> Screen {
        let raw: String = u.raw.chars().take(RAW_SHOWN).collect();
        let state = match u.resolved {
            None => v.t("adm-unmatched-open"),
            Some((resolution, at, by)) => v.tf(
                match resolution {
                    Resolution::Refunded => "adm-unmatched-refunded",
                    Resolution::Settled => "adm-unmatched-settled",
                },
                &[
                    ("admin", by.unwrap_or_default().into()),
                    ("at", Arg::Text(v.date(at))),
                ],
            ),
        };
        let text = v.tf(
            "adm-unmatched-card",
            &[
                ("id", u.id.into()),
                ("provider", Arg::Text(u.provider.as_str().into())),
                ("external", Arg::Text(u.external_id.clone())),
                ("amount", Arg::Text(stated(v, u))),
                ("date", Arg::Text(v.date(u.seen_at))),
                ("raw", Arg::Html(escape_html(&raw))),
                ("state", Arg::Text(state)),
            ],
        );
        let mut rows = Vec::new();
        if u.resolved.is_none() {
            if self.refundable_here(u.provider) && u.provider != Provider::Stars {
                rows.push(vec![v.button(
                    "adm-btn-unmatched-refund",
                    admin(AdminAction::Confirm(Op::RefundUnmatched(u.id))),
                )]);
            }
            rows.push(vec![v.button(
                "adm-btn-unmatched-settle",
                admin(AdminAction::Confirm(Op::SettleUnmatched(u.id))),
            )]);
        }
        rows.push(vec![v.button("btn-back", admin(AdminAction::Review))]);
        rows.push(back_home(v));
        Screen::new(text, rows)
    }

    /// The confirmation text of settling unmatched payment `id` (`None`: no such payment).
    pub(super) async fn unmatched_question(
        &self,
        v: &View<'_>,
        id: i64,
        resolution: Resolution,
    ) -> Result<Option<String>, HandlerError> {
        let u = unmatched::by_id(&self.s.db, id)
            .await
            .map_err(billing_err)?;
        Ok(u.map(|u| {
            v.tf(
                match resolution {
                    Resolution::Refunded => "adm-confirm-unmatched-refund",
                    Resolution::Settled => "adm-confirm-unmatched-settle",
                },
                &[
                    ("provider", Arg::Text(u.provider.as_str().into())),
                    ("amount", Arg::Text(stated(v, &u))),
                    ("external", Arg::Text(u.external_id)),
                ],
            )
        }))
    }

    /// Settles unmatched payment `id` as `resolution` (confirmed by the press `request`): a
    /// refund is asked of the provider first, outside any transaction; then the row is marked
    /// settled, once, with its audit row.
    pub(super) async fn settle_unmatched(
        &self,
        se: &Session,
        id: i64,
        resolution: Resolution,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let Some(u) = unmatched::by_id(&self.s.db, id)
            .await
            .map_err(billing_err)?
        else {
            let screen = screens::notice(&v, v.t("stale-button"), admin(AdminAction::Review));
            return Ok((screen, self.begin().await?, false));
        };
        if u.resolved.is_some() {
            let screen = self
                .unmatched_screen(&v, &u)
                .with_note(v.t("payment-already-settled"));
            return Ok((screen, self.begin().await?, false));
        }
        if resolution == Resolution::Refunded {
            let key = format!("tollgate-refund-unmatched-{}", u.id);
            let asked = self
                .ask_provider_refund(u.provider, &u.external_id, u.amount, &u.currency, &key)
                .await;
            if let Err(reason) = asked {
                let note = v.tf(
                    "refund-failed",
                    &[
                        ("charge", Arg::Text(u.external_id.clone())),
                        ("reason", Arg::Text(reason)),
                    ],
                );
                let screen = self.unmatched_screen(&v, &u).with_note(note);
                return Ok((screen, self.begin().await?, false));
            }
        }
        let mut tx = self.begin().await?;
        let now = self.now();
        if !unmatched::resolve(&mut tx, u.id, resolution, se.user.id, now)
            .await
            .map_err(billing_err)?
        {
            tx.rollback().await.map_err(crate::bot::retry)?;
            let screen = self
                .unmatched_card(&v, u.id)
                .await?
                .with_note(v.t("payment-already-settled"));
            return Ok((screen, self.begin().await?, false));
        }
        let action = match resolution {
            Resolution::Refunded => AuditAction::Refund,
            Resolution::Settled => AuditAction::SettleUnmatched,
        };
        let entry = AuditEntry::new(Actor::Admin(se.user.id), action)
            .subject(format!(
                "unmatched {} payment {} ({})",
                u.provider.as_str(),
                u.external_id,
                stated(&v, &u)
            ))
            .change("open", resolution.as_str())
            .request(request);
        let done = match resolution {
            Resolution::Refunded => "adm-unmatched-refunded-now",
            Resolution::Settled => "adm-unmatched-settled-now",
        };
        let (note, tx) = self.recorded(&v, tx, &entry, done).await?;
        tracing::info!(
            admin = se.user.id,
            unmatched = u.id,
            resolution = resolution.as_str(),
            "unmatched payment settled by admin"
        );
        // The card as it is after this transaction: read in it.
        let mut settled = u;
        settled.resolved = Some((resolution, now, Some(se.user.id)));
        let screen = self.unmatched_screen(&v, &settled).with_note(note);
        Ok((screen, tx, false))
    }
}

/// The amount as the provider stated it; 0 is an amount in a currency we do not price in
/// (`billing::providers`), whose figure is in the provider's record on the card.
fn stated(v: &View<'_>, u: &Unmatched) -> String {
    if u.amount == 0 {
        format!("? {}", u.currency)
    } else {
        v.stated(u.amount, &u.currency)
    }
}
