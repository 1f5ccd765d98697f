//! Withdrawal requests in the console: the pending list (oldest first), one request's card,
//! and the two decisions — paid (the admin paid it out by hand) or rejected with a typed
//! reason (the amount returns to the balance). Each decision is one transaction with its
//! conditional status change (`billing::withdrawals`), its audit row and the user's notice, so
//! two admins deciding the same request at once, or a double tap, decide it once.

use super::{LIST_ROWS, admin, back_home, tell};
use crate::action::{AdminAction, Op};
use crate::admin::{Actor, AuditAction, AuditEntry};
use crate::billing::withdrawals::{self, Decided, Status, Withdrawal};
use crate::bot::payments::billing_err;
use crate::bot::screens::{self, Button, Screen, View};
use crate::bot::{Bot, Session, retry};
use crate::i18n::{Arg, escape_html};
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
use crate::users;

fn status_key(s: Status) -> &'static str {
    match s {
        Status::Pending => "adm-withdrawal-pending",
        Status::Paid => "adm-withdrawal-paid-status",
        Status::Rejected => "adm-withdrawal-rejected-status",
    }
}

impl Bot {
    /// The pending requests, oldest first, each a button to its card.
    pub(super) async fn withdrawals_screen(&self, v: &View<'_>) -> Result<Screen, HandlerError> {
        let (count, rows) = withdrawals::pending(&self.s.db, LIST_ROWS)
            .await
            .map_err(billing_err)?;
        let mut buttons: Vec<Vec<Button>> = rows
            .iter()
            .map(|w| {
                vec![Button::Action {
                    text: v.tf(
                        "adm-btn-withdrawal",
                        &[
                            ("id", w.id.into()),
                            ("amount", Arg::Text(v.money(w.amount))),
                            ("user", w.user_id.into()),
                        ],
                    ),
                    action: admin(AdminAction::Withdrawal(w.id)),
                }]
            })
            .collect();
        buttons.push(back_home(v));
        Ok(Screen::new(
            v.tf("adm-withdrawals", &[("count", count.into())]),
            buttons,
        ))
    }

    /// One request: who, how much, where to, when, and what can be done.
    pub(super) async fn withdrawal_card(
        &self,
        v: &View<'_>,
        id: i64,
    ) -> Result<Screen, HandlerError> {
        let Some(w) = withdrawals::by_id(&self.s.db, id)
            .await
            .map_err(billing_err)?
        else {
            return Ok(screens::notice(
                v,
                v.t("stale-button"),
                admin(AdminAction::Withdrawals),
            ));
        };
        let name = users::get(&self.s.db, w.user_id)
            .await
            .map_err(retry)?
            .map(|u| match u.username {
                Some(n) => format!("{} (@{n})", u.first_name),
                None => u.first_name,
            })
            .unwrap_or_default();
        let mut text = v.tf(
            "adm-withdrawal-card",
            &[
                ("id", w.id.into()),
                ("user", w.user_id.into()),
                ("name", Arg::Text(name)),
                ("amount", Arg::Text(v.money(w.amount))),
                ("requisites", Arg::Text(w.requisites.clone())),
                ("requested", Arg::Text(v.date(w.created_at))),
                ("status", Arg::Text(v.t(status_key(w.status)))),
            ],
        );
        if let (Some(by), Some(at)) = (w.decided_by, w.decided_at) {
            text.push('\n');
            text.push_str(&v.tf(
                "adm-withdrawal-decided-by",
                &[("admin", by.into()), ("at", Arg::Text(v.date(at)))],
            ));
        }
        if let Some(r) = &w.reject_reason {
            text.push_str(&format!("\n«{}»", escape_html(r)));
        }
        let mut rows = Vec::new();
        if w.status == Status::Pending {
            rows.push(vec![
                v.button(
                    "adm-btn-withdrawal-paid",
                    admin(AdminAction::Confirm(Op::WithdrawalPaid(w.id))),
                ),
                v.button(
                    "adm-btn-withdrawal-reject",
                    admin(AdminAction::AskReject(w.id)),
                ),
            ]);
        }
        rows.push(vec![
            Button::Action {
                text: v.tf("adm-btn-withdrawal-user", &[("user", w.user_id.into())]),
                action: admin(AdminAction::User(w.user_id)),
            },
            v.button("btn-back", admin(AdminAction::Withdrawals)),
        ]);
        rows.push(back_home(v));
        Ok(Screen::new(text, rows))
    }

    /// The confirmation text of marking request `id` paid (`None`: no such request).
    pub(super) async fn withdrawal_paid_question(
        &self,
        v: &View<'_>,
        id: i64,
    ) -> Result<Option<String>, HandlerError> {
        let w = withdrawals::by_id(&self.s.db, id)
            .await
            .map_err(billing_err)?;
        Ok(w.map(|w| {
            v.tf(
                "adm-confirm-withdrawal-paid",
                &[
                    ("id", w.id.into()),
                    ("user", w.user_id.into()),
                    ("amount", Arg::Text(v.money(w.amount))),
                    ("requisites", Arg::Text(w.requisites)),
                ],
            )
        }))
    }

    /// Marks request `id` paid (confirmed by the press `request`).
    pub(super) async fn withdrawal_paid(
        &self,
        se: &Session,
        id: i64,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let decided = withdrawals::mark_paid(&mut tx, id, se.user.id, now)
            .await
            .map_err(billing_err)?;
        self.decided(se, tx, decided, None, request).await
    }

    /// Rejects request `id` with `reason` (confirmed by the press `request`).
    pub(super) async fn withdrawal_rejected(
        &self,
        se: &Session,
        id: i64,
        reason: &str,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let decided = withdrawals::reject(&mut tx, id, se.user.id, reason, now)
            .await
            .map_err(billing_err)?;
        self.decided(se, tx, decided, Some(reason), request).await
    }

    /// After a decision in `tx`: the user told and the audit row when this press decided,
    /// else the card with what happened before (nothing written).
    async fn decided(
        &self,
        se: &Session,
        mut tx: Tx,
        decided: Decided,
        reason: Option<&str>,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let w: Withdrawal = match decided {
            Decided::Done(w) => w,
            Decided::AlreadyDecided(w) => {
                tx.rollback().await.map_err(retry)?;
                let note = v.tf(
                    "adm-withdrawal-already",
                    &[("status", Arg::Text(v.t(status_key(w.status))))],
                );
                let screen = self.withdrawal_card(&v, w.id).await?.with_note(note);
                return Ok((screen, self.begin().await?, false));
            }
            Decided::NotFound => {
                drop(tx);
                let screen =
                    screens::notice(&v, v.t("stale-button"), admin(AdminAction::Withdrawals));
                return Ok((screen, self.begin().await?, false));
            }
        };
        let target = users::get_in(&mut tx, w.user_id).await.map_err(retry)?;
        let lang = target.map_or(self.default_language(), |u| {
            u.language_or(self.default_language())
        });
        let amount = Arg::Text(crate::i18n::format::money(lang, w.amount));
        let (key, told, action, done) = match reason {
            None => (
                format!("withdrawal-paid:{}", w.id),
                self.texts
                    .fmt(lang, "withdrawal-paid", &[("amount", amount)]),
                AuditAction::WithdrawalPaid,
                "adm-withdrawal-marked-paid",
            ),
            Some(r) => (
                format!("withdrawal-rejected:{}", w.id),
                self.texts.fmt(
                    lang,
                    "withdrawal-rejected",
                    &[("amount", amount), ("reason", Arg::Text(r.to_owned()))],
                ),
                AuditAction::WithdrawalRejected,
                "adm-withdrawal-marked-rejected",
            ),
        };
        tell(&mut tx, &key, w.user_id, told, self.now()).await?;
        let mut entry = AuditEntry::new(Actor::Admin(se.user.id), action)
            .user(w.user_id)
            .subject(format!("withdrawal {} ({})", w.id, w.amount))
            .change("pending", w.status.as_str())
            .request(request);
        if let Some(r) = reason {
            entry = entry.reason(r);
        }
        let (note, tx) = self.recorded(&v, tx, &entry, done).await?;
        tx.commit().await.map_err(retry)?;
        let screen = self.withdrawal_card(&v, w.id).await?.with_note(note);
        Ok((screen, self.begin().await?, false))
    }
}
