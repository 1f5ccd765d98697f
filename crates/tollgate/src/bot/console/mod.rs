//! The admin console (`/admin`, docs/product.md §5): stats, users and what can be done to
//! them, flags, nodes, dead letters and the audit log, all by buttons.
//!
//! Who may use it is checked on every use, from `ADMIN_IDS`: for anyone else `/admin` is an
//! unknown command and a console button is unparseable data (`Bot::on_callback`), so nothing
//! reveals that the console exists. Every change is confirmed on a screen of its own; the
//! confirming button names the update that drew that screen, and the audit row of the change
//! (written in the change's transaction) is unique per press, so a double tap or a redelivered
//! press changes things once. Typed input (a user to find, days, an amount) answers a question
//! the console stored (`admin::prompts`).
//!
//! Files: this one holds the dispatch, the home screen, confirmations and the system screens
//! (stats, flags, dead letters, audit); `user` the user card and its operations; `withdrawals`
//! the withdrawal requests and their decisions; `unsettled` the money waiting for a decision;
//! `input` the answers to questions.

mod broadcast;
mod input;
mod nodes;
mod promo;
mod unsettled;
mod user;
mod withdrawals;

use super::screens::{self, Button, Screen, View};
use super::{Bot, Session, retry};
use crate::action::{Action, AdminAction, AuditView, Op};
use crate::admin::{Actor, AuditAction, AuditEntry, AuditFilter, audit, prompts};
use crate::billing::unmatched::{self, Resolution};
use crate::billing::{self, review, stats};
use crate::flags::{self, Flag};
use crate::i18n::Arg;
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
use crate::telegram::inbox;
use crate::telegram::outbox;
use crate::time::Timestamp;
use crate::{access, users};

const DAY_MS: i64 = 86_400_000;
/// Rows on a list screen (audit, dead letters): what fits one Telegram message comfortably.
const LIST_ROWS: i64 = 10;

impl Bot {
    /// `ADMIN_IDS` holds this Telegram user: checked on every use of the console.
    pub(super) fn is_admin_id(&self, id: i64) -> bool {
        self.s.config.deployment.admin_ids.contains(&id)
    }

    /// A console button pressed by an admin (the caller has checked): the screen, the
    /// transaction to finish, and whether access changed.
    pub(super) async fn console(
        &self,
        update_id: i64,
        se: &Session,
        a: AdminAction,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        Ok(match a {
            AdminAction::Home => (home(&v), self.begin().await?, false),
            AdminAction::Stats => (self.stats_screen(&v).await?, self.begin().await?, false),
            AdminAction::Find => {
                self.ask(
                    se,
                    input::Question::Find,
                    v.t("adm-find-ask"),
                    AdminAction::Home,
                )
                .await?
            }
            AdminAction::User(u) => (self.user_card(&v, u).await?, self.begin().await?, false),
            AdminAction::AskDays(u) => {
                let text = v.tf("adm-days-ask", &[("user", u.into())]);
                self.ask(se, input::Question::Days(u), text, AdminAction::User(u))
                    .await?
            }
            AdminAction::AskBalance(u) => {
                let base = self.s.config.catalog.bot.base_currency;
                let text = v.tf(
                    "adm-balance-ask",
                    &[
                        ("user", u.into()),
                        ("currency", Arg::Text(base.code().into())),
                    ],
                );
                self.ask(se, input::Question::Balance(u), text, AdminAction::User(u))
                    .await?
            }
            AdminAction::AskBanner(lang) => {
                let text = v.tf(
                    "adm-banner-ask",
                    &[("language", Arg::Text(lang.code().into()))],
                );
                self.ask(se, input::Question::Banner(lang), text, AdminAction::Flags)
                    .await?
            }
            AdminAction::Promos => (self.promos_screen(&v, 0).await?, self.begin().await?, false),
            AdminAction::PromoPage(page) => (
                self.promos_screen(&v, page).await?,
                self.begin().await?,
                false,
            ),
            AdminAction::AskPromo => {
                self.ask(
                    se,
                    input::Question::Promo,
                    v.t("adm-promo-ask"),
                    AdminAction::Promos,
                )
                .await?
            }
            AdminAction::AskDiscount(u) => {
                let text = v.tf("adm-discount-ask", &[("user", u.into())]);
                self.ask(se, input::Question::Discount(u), text, AdminAction::User(u))
                    .await?
            }
            AdminAction::Flags => (self.flags_screen(&v).await?, self.begin().await?, false),
            AdminAction::Nodes => (self.nodes_screen(&v).await?, self.begin().await?, false),
            AdminAction::DeadLetters => (self.dead_screen(&v).await?, self.begin().await?, false),
            AdminAction::Withdrawals => (
                self.withdrawals_screen(&v).await?,
                self.begin().await?,
                false,
            ),
            AdminAction::Withdrawal(id) => (
                self.withdrawal_card(&v, id).await?,
                self.begin().await?,
                false,
            ),
            AdminAction::AskReject(id) => {
                let text = v.tf("adm-reject-ask", &[("id", id.into())]);
                self.ask(
                    se,
                    input::Question::Reject(id),
                    text,
                    AdminAction::Withdrawal(id),
                )
                .await?
            }
            AdminAction::Audit(view) => (
                self.audit_screen(&v, view).await?,
                self.begin().await?,
                false,
            ),
            AdminAction::Payment(id) => {
                let found = review::by_id(&self.s.db, id)
                    .await
                    .map_err(super::payments::billing_err)?;
                let mut tx = self.begin().await?;
                let screen = match found {
                    Some(p) => self.payment_screen(se, &mut tx, &p).await?,
                    None => screens::notice(&v, v.t("stale-button"), admin(AdminAction::Home)),
                };
                (screen, tx, false)
            }
            AdminAction::Review => (self.review_screen(&v).await?, self.begin().await?, false),
            AdminAction::Unmatched(id) => (
                self.unmatched_card(&v, id).await?,
                self.begin().await?,
                false,
            ),
            AdminAction::Broadcasts => (
                self.broadcasts_screen(&v).await?,
                self.begin().await?,
                false,
            ),
            AdminAction::BroadcastNew => {
                self.ask(
                    se,
                    input::Question::BroadcastText(None),
                    v.t("bc-ask"),
                    AdminAction::Broadcasts,
                )
                .await?
            }
            AdminAction::BroadcastEdit(id) => {
                self.ask(
                    se,
                    input::Question::BroadcastText(Some(id)),
                    v.t("bc-ask"),
                    AdminAction::Broadcasts,
                )
                .await?
            }
            AdminAction::BroadcastDraft { id, audience, paid } => (
                self.draft_screen(&v, id, audience, paid).await?,
                self.begin().await?,
                false,
            ),
            AdminAction::Confirm(Op::BroadcastSend { id, audience, paid }) => {
                self.send_confirmation(se, update_id, id, audience, paid)
                    .await?
            }
            AdminAction::Confirm(op) => (
                self.confirm(&v, op, update_id).await?,
                self.begin().await?,
                false,
            ),
            AdminAction::Do(op, screen) => self.carry_out(se, op, screen).await?,
            AdminAction::Cancel => {
                let mut tx = self.begin().await?;
                prompts::clear(&mut tx, se.user.id).await.map_err(retry)?;
                (home(&v).with_note(v.t("adm-cancelled")), tx, false)
            }
        })
    }

    /// Stores `question` as what the admin's next text answers and shows `text` with Cancel.
    async fn ask(
        &self,
        se: &Session,
        question: input::Question,
        text: String,
        back: AdminAction,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let mut tx = self.begin().await?;
        prompts::ask(&mut tx, se.user.id, &question.encode(), self.now())
            .await
            .map_err(retry)?;
        let screen = Screen::new(
            text,
            vec![vec![
                v.button("adm-btn-cancel", admin(AdminAction::Cancel)),
                v.button("btn-back", admin(back)),
            ]],
        );
        Ok((screen, tx, false))
    }

    /// The confirmation of `op`: what it will do, Confirm (naming this screen) and Cancel.
    async fn confirm(&self, v: &View<'_>, op: Op, update_id: i64) -> Result<Screen, HandlerError> {
        let (text, back) = match &op {
            Op::Grant { user, days, tell } => (
                v.tf(
                    if *tell {
                        "adm-confirm-grant-tell"
                    } else {
                        "adm-confirm-grant-silent"
                    },
                    &[("user", (*user).into()), ("days", (*days).into())],
                ),
                AdminAction::User(*user),
            ),
            Op::Revoke(u) => (
                v.tf("adm-confirm-revoke", &[("user", (*u).into())]),
                AdminAction::User(*u),
            ),
            Op::Reissue(u) => (
                v.tf("adm-confirm-reissue", &[("user", (*u).into())]),
                AdminAction::User(*u),
            ),
            Op::Ban(u) => (
                v.tf("adm-confirm-ban", &[("user", (*u).into())]),
                AdminAction::User(*u),
            ),
            Op::Unban(u) => (
                v.tf("adm-confirm-unban", &[("user", (*u).into())]),
                AdminAction::User(*u),
            ),
            Op::Refund(p) => {
                let payment = review::by_id(&self.s.db, *p)
                    .await
                    .map_err(super::payments::billing_err)?;
                let Some(payment) = payment else {
                    return Ok(screens::notice(
                        v,
                        v.t("stale-button"),
                        admin(AdminAction::Home),
                    ));
                };
                (
                    v.tf(
                        "adm-confirm-refund",
                        &[
                            ("charge", Arg::Text(payment.charge_id.clone())),
                            ("amount", payment.amount.into()),
                            ("currency", Arg::Text(payment.currency.clone())),
                            ("user", payment.user_id.into()),
                        ],
                    ),
                    AdminAction::Payment(*p),
                )
            }
            Op::Flag { name, on } => (
                v.tf(
                    if *on {
                        "adm-confirm-flag-on"
                    } else {
                        "adm-confirm-flag-off"
                    },
                    &[("flag", Arg::Text(name.clone()))],
                ),
                AdminAction::Flags,
            ),
            Op::NodeEnabled { node, on } => (
                v.tf(
                    if *on {
                        "adm-confirm-node-on"
                    } else {
                        "adm-confirm-node-off"
                    },
                    &[("node", Arg::Text(node.clone()))],
                ),
                AdminAction::Nodes,
            ),
            Op::Reconcile(node) => (
                v.tf(
                    "adm-confirm-reconcile",
                    &[("node", Arg::Text(node.clone()))],
                ),
                AdminAction::Nodes,
            ),
            Op::Redrive(u) => (
                v.tf("adm-confirm-redrive", &[("update", (*u).into())]),
                AdminAction::DeadLetters,
            ),
            Op::Discard(u) => (
                v.tf("adm-confirm-discard", &[("update", (*u).into())]),
                AdminAction::DeadLetters,
            ),
            Op::DisablePromo(id) => (
                v.tf("adm-confirm-promo-disable", &[("id", (*id).into())]),
                AdminAction::Promos,
            ),
            // Confirmed on the screen that answered the question.
            Op::Discount { .. } => {
                return Ok(user::discount_confirmation(v, op.clone(), update_id));
            }
            Op::WithdrawalPaid(id) => match self.withdrawal_paid_question(v, *id).await? {
                Some(text) => (text, AdminAction::Withdrawal(*id)),
                None => {
                    return Ok(screens::notice(
                        v,
                        v.t("stale-button"),
                        admin(AdminAction::Withdrawals),
                    ));
                }
            },
            Op::RefundUnmatched(id) | Op::SettleUnmatched(id) => {
                let resolution = match op {
                    Op::RefundUnmatched(_) => Resolution::Refunded,
                    _ => Resolution::Settled,
                };
                match self.unmatched_question(v, *id, resolution).await? {
                    Some(text) => (text, AdminAction::Unmatched(*id)),
                    None => {
                        return Ok(screens::notice(
                            v,
                            v.t("stale-button"),
                            admin(AdminAction::Review),
                        ));
                    }
                }
            }
            Op::BroadcastCancel(id) => (self.cancel_question(v, *id), AdminAction::Broadcasts),
            // A draft is confirmed on the screen that answered its question, a broadcast's
            // send on its own (`send_confirmation`, which sends the preview).
            Op::Draft | Op::BroadcastSend { .. } => return Ok(home(v)),
        };
        Ok(confirmation(v, text, op, update_id, back))
    }

    /// Carries out `op`, confirmed on the screen drawn by update `screen`.
    async fn carry_out(
        &self,
        se: &Session,
        op: Op,
        screen: i64,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let request = format!(
            "{}:{screen}",
            Action::Admin(AdminAction::Confirm(op.clone())).encode()
        );
        let actor = Actor::Admin(se.user.id);
        let v = self.view(se.lang);
        match op {
            Op::Grant { user, days, tell } => self.grant(se, user, days, tell, &request).await,
            Op::Revoke(u) => self.revoke(se, u, &request).await,
            Op::Reissue(u) => self.reissue_for(se, u, &request).await,
            Op::Ban(u) => self.ban(se, u, true, &request).await,
            Op::Unban(u) => self.ban(se, u, false, &request).await,
            Op::Refund(p) => self.refund_confirmed(se, p).await,
            Op::Draft => self.carry_out_draft(se, screen, &request).await,
            Op::DisablePromo(id) => self.disable_promo(se, id, &request).await,
            Op::Discount {
                user,
                percent,
                until,
            } => {
                let until = (until > 0).then(|| Timestamp::from_millis(until));
                self.set_discount(se, user, percent, until, &request).await
            }
            Op::WithdrawalPaid(id) => self.withdrawal_paid(se, id, &request).await,
            Op::BroadcastSend { id, audience, paid } => {
                self.start_broadcast(se, id, audience, paid, &request).await
            }
            Op::BroadcastCancel(id) => self.cancel_broadcast(se, id, &request).await,
            Op::RefundUnmatched(id) => {
                self.settle_unmatched(se, id, Resolution::Refunded, &request)
                    .await
            }
            Op::SettleUnmatched(id) => {
                self.settle_unmatched(se, id, Resolution::Settled, &request)
                    .await
            }
            Op::Flag { name, on } => {
                let Some(flag) = Flag::parse(&name) else {
                    let screen =
                        screens::notice(&v, v.t("stale-button"), admin(AdminAction::Flags));
                    return Ok((screen, self.begin().await?, false));
                };
                let mut tx = self.begin().await?;
                let (_, entry) = flags::change(&mut tx, flag, on, actor, self.now())
                    .await
                    .map_err(retry)?;
                let (note, tx) = self
                    .recorded(&v, tx, &entry.request(request), "adm-flag-set")
                    .await?;
                tx.commit().await.map_err(retry)?;
                Ok((
                    self.flags_screen(&v).await?.with_note(note),
                    self.begin().await?,
                    false,
                ))
            }
            Op::NodeEnabled { node, on } => self.node_enabled(se, &node, on, &request).await,
            Op::Reconcile(node) => self.reconcile_now(se, &node, &request).await,
            Op::Redrive(u) | Op::Discard(u) => {
                let redrive = matches!(op, Op::Redrive(_));
                let mut tx = self.begin().await?;
                let changed = if redrive {
                    inbox::redrive(&mut tx, u, self.now()).await
                } else {
                    inbox::discard(&mut tx, u).await
                }
                .map_err(retry)?;
                if !changed {
                    drop(tx);
                    let screen = self.dead_screen(&v).await?.with_note(v.t("adm-not-dead"));
                    return Ok((screen, self.begin().await?, false));
                }
                let entry = AuditEntry::new(
                    actor,
                    if redrive {
                        AuditAction::Redrive
                    } else {
                        AuditAction::Discard
                    },
                )
                .subject(format!("update {u}"))
                .change("dead", if redrive { "pending" } else { "failed" })
                .request(request);
                let (note, tx) = self
                    .recorded(
                        &v,
                        tx,
                        &entry,
                        if redrive {
                            "adm-redriven"
                        } else {
                            "adm-discarded"
                        },
                    )
                    .await?;
                // The screen is read after commit: a redriven update leaves the list.
                tx.commit().await.map_err(retry)?;
                let screen = self.dead_screen(&v).await?.with_note(note);
                Ok((screen, self.begin().await?, false))
            }
        }
    }

    /// Records `entry` after its change in `tx`. Returns the text `done` (in the admin's
    /// language) when this press made the change, or — a second press of one confirmation —
    /// "already done" with the transaction rolled back and a fresh one to finish the update in.
    async fn recorded(
        &self,
        v: &View<'_>,
        mut tx: Tx,
        entry: &AuditEntry,
        done: &str,
    ) -> Result<(String, Tx), HandlerError> {
        if audit::record(&mut tx, entry, self.now())
            .await
            .map_err(retry)?
        {
            tracing::info!(actor = ?entry.actor, action = entry.action.name(), user = ?entry.target_user, subject = ?entry.subject, "admin action");
            Ok((v.t(done), tx))
        } else {
            tx.rollback().await.map_err(retry)?;
            Ok((v.t("adm-already-done"), self.begin().await?))
        }
    }

    async fn stats_screen(&self, v: &View<'_>) -> Result<Screen, HandlerError> {
        let now = self.now();
        let offset = i64::from(self.s.config.catalog.bot.utc_offset_minutes) * 60_000;
        // Midnight of the operator's day, in UTC.
        let day_start =
            Timestamp::from_millis((now.as_millis() + offset).div_euclid(DAY_MS) * DAY_MS - offset);
        let ago = |days: i64| Timestamp::from_millis(now.as_millis() - days * DAY_MS);
        // Independent reads, run at once: on PostgreSQL each on a connection of its own, so
        // the screen takes about as long as its slowest read rather than their sum.
        let db = &self.s.db;
        let money = |e: billing::BillingError| retry(e);
        let (u, active, paid, review, renewed, short) = tokio::try_join!(
            async { users::stats(db, now, day_start).await.map_err(retry) },
            async { access::active_by_kind(db, now).await.map_err(retry) },
            async { stats::trial_payers_since(db, ago(30)).await.map_err(money) },
            async {
                let (kept, unmatched) =
                    tokio::try_join!(review::awaiting(db), unmatched::waiting(db))
                        .map_err(money)?;
                Ok::<_, HandlerError>(kept + unmatched)
            },
            async {
                outbox::count_keyed_since(db, "renewed:", ago(30))
                    .await
                    .map_err(retry)
            },
            async {
                outbox::count_keyed_since(db, "renew-short:", ago(30))
                    .await
                    .map_err(retry)
            },
        )?;
        let mut revenue = Vec::new();
        for (key, since) in [
            ("adm-period-today", Some(day_start)),
            ("adm-period-7d", Some(ago(7))),
            ("adm-period-30d", Some(ago(30))),
            ("adm-period-all", None),
        ] {
            let rows = stats::revenue_since(db, since).await.map_err(money)?;
            let amounts = if rows.is_empty() {
                "—".to_owned()
            } else {
                rows.iter()
                    .map(|r| {
                        let amount = v.stated(r.amount, &r.currency);
                        format!("{} {amount} ({})", r.provider, r.payments)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            revenue.push(format!(
                "{}: {}",
                v.t(key),
                crate::i18n::escape_html(&amounts)
            ));
        }
        let active_text = if active.is_empty() {
            "0".to_owned()
        } else {
            active
                .iter()
                .map(|(k, n)| format!("{} {n}", v.t(kind_key(*k))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let conversion = if u.trials_30d == 0 {
            "—".to_owned()
        } else {
            format!("{:.1} %", paid as f64 * 100.0 / u.trials_30d as f64)
        };
        let text = v.tf(
            "adm-stats",
            &[
                ("total", u.total.into()),
                ("today", u.new_today.into()),
                ("week", u.new_7d.into()),
                ("month", u.new_30d.into()),
                ("unreachable", u.unreachable.into()),
                ("active", Arg::Text(active_text)),
                ("trials", u.trials_30d.into()),
                ("paid", paid.into()),
                ("conversion", Arg::Text(conversion)),
                ("renewed", renewed.into()),
                ("short", short.into()),
                ("review", review.into()),
                ("revenue", Arg::Html(revenue.join("\n"))),
            ],
        );
        Ok(Screen::new(text, vec![back_home(v)]))
    }

    async fn flags_screen(&self, v: &View<'_>) -> Result<Screen, HandlerError> {
        let states = flags::all(&self.s.db).await.map_err(retry)?;
        let mut lines = Vec::new();
        let mut rows = Vec::new();
        for state in &states {
            let (flag, on) = (state.flag, state.value);
            let source = match (state.changed_at, state.changed_by) {
                (Some(at), Some(Actor::Admin(id))) => v.tf(
                    "adm-flag-by",
                    &[("admin", id.into()), ("at", Arg::Text(v.date(at)))],
                ),
                (Some(at), _) => v.tf("adm-flag-set-at", &[("at", Arg::Text(v.date(at)))]),
                (None, _) => v.t("adm-flag-default"),
            };
            lines.push(format!(
                "{} <b>{}</b> · {source}",
                if on { "🟢" } else { "⚪️" },
                flag.name()
            ));
            rows.push(vec![Button::Action {
                text: v.tf(
                    if on {
                        "adm-btn-flag-off"
                    } else {
                        "adm-btn-flag-on"
                    },
                    &[("flag", Arg::Text(flag.name().into()))],
                ),
                action: admin(AdminAction::Confirm(Op::Flag {
                    name: flag.name().into(),
                    on: !on,
                })),
            }]);
        }
        for lang in &self.s.config.catalog.bot.languages {
            let banner = flags::banner(&self.s.db, *lang).await.map_err(retry)?;
            let banner = banner.unwrap_or_else(|| self.texts.get(*lang, "maintenance-banner"));
            lines.push(v.tf(
                "adm-banner-line",
                &[
                    ("language", Arg::Text(lang.code().into())),
                    ("text", Arg::Text(banner)),
                ],
            ));
            rows.push(vec![Button::Action {
                text: v.tf(
                    "adm-btn-banner",
                    &[("language", Arg::Text(lang.code().into()))],
                ),
                action: admin(AdminAction::AskBanner(*lang)),
            }]);
        }
        rows.push(back_home(v));
        let text = v.tf("adm-flags", &[("flags", Arg::Html(lines.join("\n")))]);
        Ok(Screen::new(text, rows))
    }

    async fn dead_screen(&self, v: &View<'_>) -> Result<Screen, HandlerError> {
        let (count, rows) = inbox::dead_letters(&self.s.db, LIST_ROWS)
            .await
            .map_err(retry)?;
        let mut lines = Vec::new();
        let mut buttons = Vec::new();
        for d in &rows {
            let error = d.last_error.as_deref().unwrap_or("");
            let error: String = error.chars().take(200).collect();
            lines.push(v.tf(
                "adm-dead-line",
                &[
                    ("update", d.update_id.into()),
                    ("kind", Arg::Text(d.kind.clone())),
                    ("attempts", d.attempts.into()),
                    ("error", Arg::Text(error)),
                ],
            ));
            buttons.push(vec![
                Button::Action {
                    text: v.tf("adm-btn-redrive", &[("update", d.update_id.into())]),
                    action: admin(AdminAction::Confirm(Op::Redrive(d.update_id))),
                },
                Button::Action {
                    text: v.tf("adm-btn-discard", &[("update", d.update_id.into())]),
                    action: admin(AdminAction::Confirm(Op::Discard(d.update_id))),
                },
            ]);
        }
        buttons.push(back_home(v));
        let text = v.tf(
            "adm-dead",
            &[
                ("count", count.into()),
                ("lines", Arg::Html(lines.join("\n\n"))),
            ],
        );
        Ok(Screen::new(text, buttons))
    }

    async fn audit_screen(&self, v: &View<'_>, view: AuditView) -> Result<Screen, HandlerError> {
        let filter = match view {
            AuditView::All => AuditFilter::All,
            AuditView::By(a) => AuditFilter::By(a),
            AuditView::About(u) => AuditFilter::About(u),
        };
        let rows = audit::latest(&self.s.db, filter, LIST_ROWS)
            .await
            .map_err(retry)?;
        let lines: Vec<String> = rows
            .iter()
            .map(|r| {
                let actor = r
                    .actor
                    .map_or_else(|| v.t("adm-actor-cli"), |a| a.to_string());
                let mut line = format!(
                    "{} · {} · {}",
                    v.date(r.at),
                    crate::i18n::escape_html(&actor),
                    crate::i18n::escape_html(&r.action)
                );
                if let Some(u) = r.target_user {
                    line.push_str(&format!(
                        " · {}",
                        v.tf("adm-audit-user", &[("user", u.into())])
                    ));
                }
                if let Some(s) = &r.subject {
                    line.push_str(&format!(" · {}", crate::i18n::escape_html(s)));
                }
                if let (Some(b), Some(a)) = (&r.before, &r.after) {
                    line.push_str(&format!(
                        " · {} → {}",
                        crate::i18n::escape_html(b),
                        crate::i18n::escape_html(a)
                    ));
                }
                if let Some(reason) = &r.reason {
                    line.push_str(&format!(" · «{}»", crate::i18n::escape_html(reason)));
                }
                line
            })
            .collect();
        let title = match view {
            AuditView::All => v.t("adm-audit-all"),
            AuditView::By(a) => v.tf("adm-audit-by", &[("admin", a.into())]),
            AuditView::About(u) => v.tf("adm-audit-about", &[("user", u.into())]),
        };
        let body = if lines.is_empty() {
            v.t("adm-audit-empty")
        } else {
            lines.join("\n")
        };
        let mut rows: Vec<Vec<Button>> = Vec::new();
        let mut filters = vec![v.button(
            "adm-btn-audit-all",
            admin(AdminAction::Audit(AuditView::All)),
        )];
        for a in &self.s.config.deployment.admin_ids {
            filters.push(Button::Action {
                text: v.tf("adm-btn-audit-by", &[("admin", (*a).into())]),
                action: admin(AdminAction::Audit(AuditView::By(*a))),
            });
        }
        for chunk in filters.chunks(3) {
            rows.push(chunk.to_vec());
        }
        if let AuditView::About(u) = view {
            rows.push(vec![v.button("btn-back", admin(AdminAction::User(u)))]);
        }
        rows.push(back_home(v));
        Ok(Screen::new(format!("{title}\n\n{body}"), rows))
    }
}

/// A console action as a button's action.
fn admin(a: AdminAction) -> Action {
    Action::Admin(a)
}

fn back_home(v: &View<'_>) -> Vec<Button> {
    vec![
        v.button("adm-btn-home", admin(AdminAction::Home)),
        v.button("btn-menu", Action::Menu),
    ]
}

fn home(v: &View<'_>) -> Screen {
    let b = |key: &str, a: AdminAction| v.button(key, admin(a));
    Screen::new(
        v.t("adm-home"),
        vec![
            vec![
                b("adm-btn-stats", AdminAction::Stats),
                b("adm-btn-find", AdminAction::Find),
            ],
            vec![
                b("adm-btn-flags", AdminAction::Flags),
                b("adm-btn-nodes", AdminAction::Nodes),
            ],
            vec![
                b("adm-btn-dead", AdminAction::DeadLetters),
                b("adm-btn-audit", AdminAction::Audit(AuditView::All)),
            ],
            vec![
                b("adm-btn-promos", AdminAction::Promos),
                b("adm-btn-withdrawals", AdminAction::Withdrawals),
            ],
            vec![
                b("bc-btn-broadcasts", AdminAction::Broadcasts),
                b("adm-btn-review", AdminAction::Review),
            ],
            vec![v.button("btn-menu", Action::Menu)],
        ],
    )
}

/// A confirmation: `text`, Confirm (naming the screen drawn by `update_id`) and Cancel.
fn confirmation(v: &View<'_>, text: String, op: Op, update_id: i64, back: AdminAction) -> Screen {
    Screen::new(
        text,
        vec![
            vec![v.button("adm-btn-confirm", admin(AdminAction::Do(op, update_id)))],
            vec![v.button("adm-btn-cancel", admin(back))],
        ],
    )
}

fn kind_key(k: access::Kind) -> &'static str {
    match k {
        access::Kind::Trial => "kind-trial",
        access::Kind::Paid => "kind-paid",
        access::Kind::Gift => "kind-gift",
        access::Kind::Admin => "kind-admin",
    }
}

/// A message to a user about what an admin did, queued in the action's transaction under a
/// key unique to the press.
async fn tell(
    tx: &mut Tx,
    key: &str,
    user: i64,
    text: String,
    now: Timestamp,
) -> Result<(), HandlerError> {
    let msg = outbox::OutboxMessage::text(
        key.to_owned(),
        user,
        outbox::Priority::Transactional,
        text,
        None,
    );
    outbox::enqueue(tx, &msg, now).await.map_err(retry)
}
