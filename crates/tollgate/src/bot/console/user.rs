//! The user card (profile, subscription per node, balance and its latest changes, payments,
//! referrals) and what an admin can do to a user: grant days, revoke, reissue the key, adjust
//! the balance, refund a payment, ban and unban. Each operation is one transaction with its
//! audit row and the user's notice.

use super::{admin, back_home, kind_key, tell};
use crate::access::{self, Grant, Kind, Length, NodeReadiness};
use crate::action::{AdminAction, AuditView, Op};
use crate::admin::{Actor, AuditAction, AuditEntry};
use crate::billing::ledger::{self, Reason};
use crate::billing::{promo, review};
use crate::bot::payments::billing_err;
use crate::bot::screens::{self, Button, Screen, View};
use crate::bot::{Bot, Session, retry};
use crate::domain::money::Money;
use crate::i18n::{Arg, escape_html};
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
use crate::users;

/// Latest ledger entries and payments on a card.
const CARD_ROWS: i64 = 5;

impl Bot {
    /// A user's card, or a "no such user" note.
    pub(super) async fn user_card(
        &self,
        v: &View<'_>,
        user_id: i64,
    ) -> Result<Screen, HandlerError> {
        let Some(user) = users::get(&self.s.db, user_id).await.map_err(retry)? else {
            return Ok(screens::notice(
                v,
                v.tf("adm-user-unknown", &[("user", user_id.into())]),
                admin(AdminAction::Home),
            ));
        };
        let now = self.now();
        let base = self.s.config.catalog.bot.base_currency;
        let sub = self.subscription(user_id).await?;
        let referrals = users::referral_count(&self.s.db, user_id)
            .await
            .map_err(retry)?;
        let history = ledger::recent(&self.s.db, user_id, CARD_ROWS)
            .await
            .map_err(billing_err)?;
        let payments = review::of_user(&self.s.db, user_id, CARD_ROWS)
            .await
            .map_err(billing_err)?;
        let personal = promo::personal(&self.s.db, user_id, now)
            .await
            .map_err(retry)?;
        let receipt_contact = users::receipt_contact(&self.s.db, user_id)
            .await
            .map_err(retry)?;
        let name = match &user.username {
            Some(u) => format!("{} (@{u})", user.first_name),
            None => user.first_name.clone(),
        };
        let mut text = v.tf(
            "adm-user-card",
            &[
                ("user", user.id.into()),
                ("name", Arg::Text(name)),
                ("language", Arg::Text(user.language.clone())),
                ("joined", Arg::Text(v.date(user.created_at))),
                (
                    "referrer",
                    Arg::Text(user.referrer_id.map_or("—".into(), |r| r.to_string())),
                ),
                ("referrals", referrals.into()),
                (
                    "balance",
                    Arg::Text(v.money(Money::new(user.balance, base))),
                ),
            ],
        );
        let mut flags = Vec::new();
        if user.banned_at.is_some() {
            flags.push(v.t("adm-user-banned"));
        }
        if user.bot_blocked_at.is_some() {
            flags.push(v.t("adm-user-unreachable"));
        }
        if user.auto_renew {
            flags.push(v.t("adm-user-auto-renew"));
        }
        if !flags.is_empty() {
            text.push('\n');
            text.push_str(&flags.join(" · "));
        }
        if let Some(d) = personal {
            text.push('\n');
            text.push_str(&match d.until {
                Some(t) => v.tf(
                    "adm-user-discount-until",
                    &[
                        ("percent", d.percent.into()),
                        ("until", Arg::Text(v.date(t))),
                    ],
                ),
                None => v.tf("adm-user-discount", &[("percent", d.percent.into())]),
            });
        }
        if let Some(c) = receipt_contact {
            text.push('\n');
            text.push_str(&v.tf("adm-user-receipt", &[("contact", c.into())]));
        }
        text.push_str("\n\n");
        match &sub {
            None => text.push_str(&v.t("adm-user-no-subscription")),
            Some(s) => {
                let status = if s.revoked_at.is_some() {
                    v.t("adm-sub-revoked")
                } else if s.is_active(now) {
                    v.t("adm-sub-active")
                } else {
                    v.t("adm-sub-expired")
                };
                text.push_str(&v.tf(
                    "adm-user-subscription",
                    &[
                        ("kind", Arg::Text(v.t(kind_key(s.kind)))),
                        ("status", Arg::Text(status)),
                        ("until", Arg::Text(v.date(s.expires_at))),
                        ("uuid", Arg::Text(s.vpn_uuid.to_string())),
                    ],
                ));
                let state =
                    access::provisioning_state(&self.s.db, s, self.s.registry.enabled(), now)
                        .await
                        .map_err(retry)?;
                for (node, readiness) in &state.nodes {
                    let mark = match readiness {
                        NodeReadiness::Ready => "🟢".to_owned(),
                        NodeReadiness::Pending => "⏳".to_owned(),
                        NodeReadiness::Failing { attempts, .. } => format!("🔴 ×{attempts}"),
                    };
                    text.push_str(&format!("\n  {} {mark}", escape_html(node)));
                }
            }
        }
        if !history.is_empty() {
            text.push_str("\n\n");
            text.push_str(&v.t("adm-user-ledger"));
            for e in &history {
                text.push_str(&format!(
                    "\n  {} {}{} ({})",
                    v.date(e.created_at),
                    if e.delta > 0 { "+" } else { "" },
                    v.money(Money::new(e.delta, base)),
                    e.reason.as_str()
                ));
            }
        }
        let mut rows = vec![vec![
            Button::Action {
                text: v.t("adm-btn-grant"),
                action: admin(AdminAction::AskDays(user_id)),
            },
            Button::Action {
                text: v.t("adm-btn-balance"),
                action: admin(AdminAction::AskBalance(user_id)),
            },
            Button::Action {
                text: v.t("adm-btn-discount"),
                action: admin(AdminAction::AskDiscount(user_id)),
            },
        ]];
        let mut access_row = Vec::new();
        if sub.as_ref().is_some_and(|s| s.is_active(now)) {
            access_row.push(v.button(
                "adm-btn-revoke",
                admin(AdminAction::Confirm(Op::Revoke(user_id))),
            ));
            access_row.push(v.button(
                "adm-btn-reissue",
                admin(AdminAction::Confirm(Op::Reissue(user_id))),
            ));
        }
        if user.banned_at.is_some() {
            access_row.push(v.button(
                "adm-btn-unban",
                admin(AdminAction::Confirm(Op::Unban(user_id))),
            ));
        } else {
            access_row.push(v.button("adm-btn-ban", admin(AdminAction::Confirm(Op::Ban(user_id)))));
        }
        rows.push(access_row);
        if !payments.is_empty() {
            text.push_str("\n\n");
            text.push_str(&v.t("adm-user-payments"));
        }
        for p in &payments {
            let state = if p.status == "refunded" {
                "↩️"
            } else if p.purchase_id.is_none() {
                "⚠️"
            } else {
                "✅"
            };
            let line = format!(
                "{state} {} {} · {}",
                p.amount,
                p.currency,
                p.provider.as_str()
            );
            text.push_str(&format!(
                "\n  {} {}",
                v.date(p.created_at),
                escape_html(&line)
            ));
            rows.push(vec![Button::Action {
                text: format!("💳 {line}"),
                action: admin(AdminAction::Payment(p.id)),
            }]);
        }
        rows.push(vec![v.button(
            "adm-btn-audit-user",
            admin(AdminAction::Audit(AuditView::About(user_id))),
        )]);
        rows.push(back_home(v));
        Ok(Screen::new(text, rows))
    }

    /// Grant `days` (the admin kind), telling the user or not.
    pub(super) async fn grant(
        &self,
        se: &Session,
        user: i64,
        days: u32,
        tell_user: bool,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let Some(target) = users::get(&self.s.db, user).await.map_err(retry)? else {
            return self.unknown_user(&v, user).await;
        };
        let now = self.now();
        let before = self.subscription(user).await?;
        let mut tx = self.begin().await?;
        let grant = Grant {
            kind: Kind::Admin,
            length: Length::Days(days),
            plan_id: None,
        };
        let granted =
            access::grant_or_extend(&mut tx, self.s.registry.enabled(), user, &grant, now)
                .await
                .map_err(retry)?;
        let sub = granted.subscription;
        access::notices::expect(&mut tx, &sub, now)
            .await
            .map_err(retry)?;
        if tell_user {
            let lang = target.language_or(self.default_language());
            let text = self.texts.fmt(
                lang,
                "adm-told-grant",
                &[
                    ("days", days.into()),
                    (
                        "until",
                        Arg::Text(crate::i18n::format::date_time(
                            lang,
                            sub.expires_at,
                            self.s.config.catalog.bot.utc_offset_minutes,
                        )),
                    ),
                ],
            );
            tell(&mut tx, &format!("admin:{request}"), user, text, now).await?;
        }
        let before = before
            .filter(|s| s.is_active(now))
            .map_or("—".to_owned(), |s| s.expires_at.to_string());
        let entry = AuditEntry::new(Actor::Admin(se.user.id), AuditAction::GrantDays)
            .user(user)
            .subject(format!(
                "{days} days{}",
                if tell_user { "" } else { ", silent" }
            ))
            .change(before, sub.expires_at.to_string())
            .request(request);
        self.user_outcome(&v, tx, &entry, "adm-granted", user, true)
            .await
    }

    pub(super) async fn revoke(
        &self,
        se: &Session,
        user: i64,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let now = self.now();
        let sub = match self.active_or(&v, user, "adm-nothing-to-revoke").await? {
            Ok(sub) => sub,
            Err(nothing) => return Ok(nothing),
        };
        let mut tx = self.begin().await?;
        access::revoke(&mut tx, sub.id, now).await.map_err(retry)?;
        self.tell_user(&mut tx, user, "adm-told-revoke", request)
            .await?;
        let entry = AuditEntry::new(Actor::Admin(se.user.id), AuditAction::Revoke)
            .user(user)
            .change(sub.expires_at.to_string(), "revoked")
            .request(request);
        self.user_outcome(&v, tx, &entry, "adm-revoked", user, true)
            .await
    }

    pub(super) async fn reissue_for(
        &self,
        se: &Session,
        user: i64,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let now = self.now();
        let sub = match self.active_or(&v, user, "adm-nothing-to-reissue").await? {
            Ok(sub) => sub,
            Err(nothing) => return Ok(nothing),
        };
        let mut tx = self.begin().await?;
        let fresh = access::reissue(&mut tx, self.s.registry.enabled(), sub.id, now)
            .await
            .map_err(retry)?;
        access::notices::expect(&mut tx, &fresh, now)
            .await
            .map_err(retry)?;
        self.tell_user(&mut tx, user, "adm-told-reissue", request)
            .await?;
        let entry = AuditEntry::new(Actor::Admin(se.user.id), AuditAction::Reissue)
            .user(user)
            .change(sub.vpn_uuid.to_string(), fresh.vpn_uuid.to_string())
            .request(request);
        self.user_outcome(&v, tx, &entry, "adm-reissued", user, true)
            .await
    }

    /// Ban (`on`) or unban. A ban revokes access and tells the user once; an unban restores
    /// nothing by itself.
    pub(super) async fn ban(
        &self,
        se: &Session,
        user: i64,
        on: bool,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let now = self.now();
        let sub = self.subscription(user).await?.filter(|s| s.is_active(now));
        let mut tx = self.begin().await?;
        let Some(before) = users::set_banned(&mut tx, user, on, now)
            .await
            .map_err(retry)?
        else {
            drop(tx);
            return self.unknown_user(&v, user).await;
        };
        let mut changed = false;
        if on {
            if let Some(s) = sub {
                access::revoke(&mut tx, s.id, now).await.map_err(retry)?;
                changed = true;
            }
            self.tell_user(&mut tx, user, "banned-text", request)
                .await?;
        }
        let entry = AuditEntry::new(
            Actor::Admin(se.user.id),
            if on {
                AuditAction::Ban
            } else {
                AuditAction::Unban
            },
        )
        .user(user)
        .change(
            if before.is_some() {
                "banned"
            } else {
                "not banned"
            },
            if on { "banned" } else { "not banned" },
        )
        .request(request);
        let done = if on { "adm-banned" } else { "adm-unbanned" };
        self.user_outcome(&v, tx, &entry, done, user, changed).await
    }

    /// Refund confirmed: the provider's call, then the reversal with its audit row (keyed by
    /// the payment, not the press: a payment is refunded once).
    pub(super) async fn refund_confirmed(
        &self,
        se: &Session,
        payment_id: i64,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let Some(payment) = review::by_id(&self.s.db, payment_id)
            .await
            .map_err(billing_err)?
        else {
            return Ok((
                screens::notice(&v, v.t("stale-button"), admin(AdminAction::Home)),
                self.begin().await?,
                false,
            ));
        };
        let (note, mut tx, changed) = self.refund_payment(se, &payment).await?;
        if changed {
            let entry = AuditEntry::new(Actor::Admin(se.user.id), AuditAction::Refund)
                .user(payment.user_id)
                .subject(format!("payment {} ({})", payment.id, payment.charge_id))
                .change("captured", "refunded")
                .request(format!("refund:payment:{}", payment.id));
            // The refund itself is idempotent by its charge id; the row records who asked,
            // once per payment (two admins, or a press and its own provider's report, cannot
            // both be its author).
            crate::admin::audit::record(&mut tx, &entry, self.now())
                .await
                .map_err(retry)?;
        }
        let screen = self.payment_now(se, &mut tx, payment, note).await?;
        Ok((screen, tx, changed))
    }

    /// A balance adjustment confirmed: the ledger entry (never below zero), the audit row with
    /// the reason, and the user told.
    pub(super) async fn adjust_balance(
        &self,
        se: &Session,
        user: i64,
        delta: i64,
        reason: &str,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let Some(target) = users::get(&self.s.db, user).await.map_err(retry)? else {
            return self.unknown_user(&v, user).await;
        };
        let base = self.s.config.catalog.bot.base_currency;
        let now = self.now();
        let mut tx = self.begin().await?;
        let before = ledger::balance_in(&mut tx, user)
            .await
            .map_err(billing_err)?;
        let reference = format!("admin:{request}");
        // A second press of the confirmation finds its entry: nothing is done again.
        if ledger::exists(&mut tx, &reference)
            .await
            .map_err(billing_err)?
        {
            tx.rollback().await.map_err(retry)?;
            let note = v.t("adm-already-done");
            return Ok((
                self.user_card(&v, user).await?.with_note(note),
                self.begin().await?,
                false,
            ));
        }
        let Some(after) = ledger::change(&mut tx, user, delta, Reason::Admin, &reference, now)
            .await
            .map_err(billing_err)?
        else {
            drop(tx);
            let note = v.tf(
                "adm-balance-negative",
                &[("balance", Arg::Text(v.money(Money::new(before, base))))],
            );
            return Ok((
                self.user_card(&v, user).await?.with_note(note),
                self.begin().await?,
                false,
            ));
        };
        let lang = target.language_or(self.default_language());
        let text = self.texts.fmt(
            lang,
            "adm-told-balance",
            &[
                ("delta", Arg::Text(signed(lang, Money::new(delta, base)))),
                (
                    "balance",
                    Arg::Text(crate::i18n::format::money(lang, Money::new(after, base))),
                ),
                ("reason", Arg::Text(reason.to_owned())),
            ],
        );
        tell(&mut tx, &format!("admin:{request}"), user, text, now).await?;
        let entry = AuditEntry::new(Actor::Admin(se.user.id), AuditAction::AdjustBalance)
            .user(user)
            .subject(signed(se.lang, Money::new(delta, base)))
            .change(before.to_string(), after.to_string())
            .reason(reason)
            .request(request);
        self.user_outcome(&v, tx, &entry, "adm-balance-adjusted", user, false)
            .await
    }

    /// A personal discount confirmed: set (or removed) with its audit row, and the user told.
    pub(super) async fn set_discount(
        &self,
        se: &Session,
        user: i64,
        percent: u32,
        until: Option<crate::time::Timestamp>,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let Some(target) = users::get(&self.s.db, user).await.map_err(retry)? else {
            return self.unknown_user(&v, user).await;
        };
        let now = self.now();
        let discount = (percent > 0).then_some(promo::Personal { percent, until });
        let mut tx = self.begin().await?;
        let entry = promo::set_personal(&mut tx, user, discount, Actor::Admin(se.user.id), now)
            .await
            .map_err(billing_err)?;
        let lang = target.language_or(self.default_language());
        let text = match (discount, until) {
            (None, _) => self.texts.get(lang, "adm-told-discount-removed"),
            (Some(_), Some(t)) => self.texts.fmt(
                lang,
                "adm-told-discount-until",
                &[
                    ("percent", percent.into()),
                    (
                        "until",
                        Arg::Text(crate::i18n::format::date_time(
                            lang,
                            t,
                            self.s.config.catalog.bot.utc_offset_minutes,
                        )),
                    ),
                ],
            ),
            (Some(_), None) => {
                self.texts
                    .fmt(lang, "adm-told-discount", &[("percent", percent.into())])
            }
        };
        tell(&mut tx, &format!("admin:{request}"), user, text, now).await?;
        self.user_outcome(
            &v,
            tx,
            &entry.request(request),
            "adm-discount-set",
            user,
            false,
        )
        .await
    }

    /// The user's active subscription, or — none to act on — their card with the note `none`
    /// (and a transaction to finish the update in).
    async fn active_or(
        &self,
        v: &View<'_>,
        user: i64,
        none: &str,
    ) -> Result<Result<crate::access::Subscription, (Screen, Tx, bool)>, HandlerError> {
        let now = self.now();
        if let Some(sub) = self.subscription(user).await?.filter(|s| s.is_active(now)) {
            return Ok(Ok(sub));
        }
        let screen = self.user_card(v, user).await?.with_note(v.t(none));
        Ok(Err((screen, self.begin().await?, false)))
    }

    async fn tell_user(
        &self,
        tx: &mut Tx,
        user: i64,
        key: &str,
        request: &str,
    ) -> Result<(), HandlerError> {
        let lang = users::get_in(tx, user)
            .await
            .map_err(retry)?
            .map_or(self.default_language(), |u| {
                u.language_or(self.default_language())
            });
        let text = self.texts.get(lang, key);
        tell(tx, &format!("admin:{request}"), user, text, self.now()).await
    }

    /// Records the operation on `user` and shows their card (read after commit) with the outcome.
    async fn user_outcome(
        &self,
        v: &View<'_>,
        tx: Tx,
        entry: &AuditEntry,
        done: &str,
        user: i64,
        access_changed: bool,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let (note, tx) = self.recorded(v, tx, entry, done).await?;
        tx.commit().await.map_err(retry)?;
        let screen = self.user_card(v, user).await?.with_note(note);
        Ok((screen, self.begin().await?, access_changed))
    }

    async fn unknown_user(
        &self,
        v: &View<'_>,
        user: i64,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let screen = screens::notice(
            v,
            v.tf("adm-user-unknown", &[("user", user.into())]),
            admin(AdminAction::Home),
        );
        Ok((screen, self.begin().await?, false))
    }

    /// The confirmation of a grant of `days` typed for `user`: tell the user, or not.
    pub(super) fn grant_confirmation(
        &self,
        v: &View<'_>,
        user: i64,
        days: u32,
        update_id: i64,
    ) -> Screen {
        let grant = |tell| admin(AdminAction::Do(Op::Grant { user, days, tell }, update_id));
        Screen::new(
            v.tf(
                "adm-confirm-grant",
                &[("user", user.into()), ("days", days.into())],
            ),
            vec![
                vec![v.button("adm-btn-grant-tell", grant(true))],
                vec![v.button("adm-btn-grant-silent", grant(false))],
                vec![v.button("adm-btn-cancel", admin(AdminAction::User(user)))],
            ],
        )
    }
}

/// The confirmation of a personal discount typed for a user (`op` is [`Op::Discount`]).
pub(super) fn discount_confirmation(v: &View<'_>, op: Op, update_id: i64) -> Screen {
    let Op::Discount {
        user,
        percent,
        until,
    } = op
    else {
        return super::home(v);
    };
    let text = match (percent, until) {
        (0, _) => v.tf("adm-confirm-discount-remove", &[("user", user.into())]),
        (p, 0) => v.tf(
            "adm-confirm-discount",
            &[("user", user.into()), ("percent", p.into())],
        ),
        (p, t) => v.tf(
            "adm-confirm-discount-until",
            &[
                ("user", user.into()),
                ("percent", p.into()),
                (
                    "until",
                    Arg::Text(v.date(crate::time::Timestamp::from_millis(t))),
                ),
            ],
        ),
    };
    super::confirmation(v, text, op, update_id, AdminAction::User(user))
}

/// An amount with its sign ("+150 ₽", "−50 ₽").
pub(super) fn signed(lang: crate::config::Language, m: Money) -> String {
    let abs = Money::new(m.minor.abs(), m.currency);
    let sign = if m.minor < 0 { "−" } else { "+" };
    format!("{sign}{}", crate::i18n::format::money(lang, abs))
}
