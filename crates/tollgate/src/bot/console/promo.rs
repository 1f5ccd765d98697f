//! Promo codes in the console: the list with each code's uses and rules, a new code (typed,
//! confirmed as a draft: `input::parse_promo`), and disabling one. Each change is one
//! transaction with its audit row (`billing::promo` returns the entry).

use super::{admin, back_home, input};
use crate::action::{AdminAction, Op};
use crate::admin::Actor;
use crate::billing::promo::{self, PromoCode};
use crate::bot::payments::billing_err;
use crate::bot::screens::{Button, Screen, View};
use crate::bot::{Bot, Session, retry};
use crate::i18n::{Arg, escape_html};
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;

/// Codes on the list: the newest, as many as fit one message comfortably.
const LIST_CODES: i64 = 15;

impl Bot {
    /// Page `page` (from 0) of the codes: those not disabled first, newest first, each not
    /// disabled with its Disable button; Newer / Older when there is more.
    pub(super) async fn promos_screen(
        &self,
        v: &View<'_>,
        page: i64,
    ) -> Result<Screen, HandlerError> {
        let base = self.s.config.catalog.bot.base_currency;
        let offset = page.saturating_mul(LIST_CODES);
        let (total, codes) = promo::page(&self.s.db, base, LIST_CODES, offset)
            .await
            .map_err(billing_err)?;
        let now = self.now();
        let mut rows: Vec<Vec<Button>> = Vec::new();
        let lines: Vec<String> = codes
            .iter()
            .map(|c| {
                if c.disabled_at.is_none() {
                    rows.push(vec![Button::Action {
                        text: v.tf("adm-btn-promo-disable", &[("code", c.code.as_str().into())]),
                        action: admin(AdminAction::Confirm(Op::DisablePromo(c.id))),
                    }]);
                }
                line(v, c, now)
            })
            .collect();
        let mut pages = Vec::new();
        if page > 0 {
            pages.push(v.button("adm-btn-newer", admin(promo_page(page - 1))));
        }
        if offset + LIST_CODES < total {
            pages.push(v.button("adm-btn-older", admin(promo_page(page + 1))));
        }
        if !pages.is_empty() {
            rows.push(pages);
        }
        rows.push(vec![
            v.button("adm-btn-promo-new", admin(AdminAction::AskPromo)),
        ]);
        rows.push(back_home(v));
        let body = if lines.is_empty() {
            v.t("adm-promos-empty")
        } else {
            lines.join("\n")
        };
        let shown = i64::try_from(codes.len()).unwrap_or(LIST_CODES);
        Ok(Screen::new(
            v.tf(
                "adm-promos",
                &[
                    ("lines", Arg::Html(body)),
                    ("from", if shown == 0 { 0 } else { offset + 1 }.into()),
                    ("to", if shown == 0 { 0 } else { offset + shown }.into()),
                    ("total", total.into()),
                ],
            ),
            rows,
        ))
    }

    /// A code typed and confirmed (its draft's text, parsed again): created with its audit row.
    pub(super) async fn create_promo(
        &self,
        se: &Session,
        text: &str,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let catalog = &self.s.config.catalog;
        let ids: Vec<&str> = catalog.plans.iter().map(|p| p.id.as_str()).collect();
        let parsed = input::parse_promo(
            text,
            catalog.bot.base_currency,
            catalog.bot.utc_offset_minutes,
            &ids,
        );
        let Ok(new) = parsed else {
            // Not reached: the draft was parsed before it was stored.
            let screen = self
                .promos_screen(&v, 0)
                .await?
                .with_note(v.t("adm-draft-gone"));
            return Ok((screen, self.begin().await?, false));
        };
        let mut tx = self.begin().await?;
        let created = promo::create(&mut tx, &new, Actor::Admin(se.user.id), self.now())
            .await
            .map_err(billing_err)?;
        let Some((_, entry)) = created else {
            drop(tx);
            let note = v.tf(
                "adm-promo-exists",
                &[("code", Arg::Text(new.code.as_str().to_owned()))],
            );
            let screen = self.promos_screen(&v, 0).await?.with_note(note);
            return Ok((screen, self.begin().await?, false));
        };
        let (note, tx) = self
            .recorded(&v, tx, &entry.request(request), "adm-promo-created")
            .await?;
        tx.commit().await.map_err(retry)?;
        let screen = self.promos_screen(&v, 0).await?.with_note(note);
        Ok((screen, self.begin().await?, false))
    }

    pub(super) async fn disable_promo(
        &self,
        se: &Session,
        id: i64,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let mut tx = self.begin().await?;
        let entry = promo::disable(&mut tx, id, Actor::Admin(se.user.id), self.now())
            .await
            .map_err(billing_err)?;
        let Some(entry) = entry else {
            drop(tx);
            let screen = self
                .promos_screen(&v, 0)
                .await?
                .with_note(v.t("adm-already-done"));
            return Ok((screen, self.begin().await?, false));
        };
        let (note, tx) = self
            .recorded(&v, tx, &entry.request(request), "adm-promo-disabled")
            .await?;
        tx.commit().await.map_err(retry)?;
        let screen = self.promos_screen(&v, 0).await?.with_note(note);
        Ok((screen, self.begin().await?, false))
    }
}

/// One code on the list: code, what it gives, uses, window, rules, state.
/// The list's page `page`: the first is the console's own place.
fn promo_page(page: i64) -> AdminAction {
    if page == 0 {
        AdminAction::Promos
    } else {
        AdminAction::PromoPage(page)
    }
}

fn line(v: &View<'_>, c: &PromoCode, now: crate::time::Timestamp) -> String {
    let uses = match c.max_uses {
        Some(max) => format!("{}/{max}", c.used),
        None => c.used.to_string(),
    };
    let mut parts = vec![
        format!("<code>{}</code>", escape_html(&c.code)),
        escape_html(&v.benefit(c.benefit)),
        v.tf("adm-promo-uses", &[("uses", Arg::Text(uses))]),
    ];
    if let Some(t) = c.starts_at {
        parts.push(v.tf("adm-promo-from", &[("at", Arg::Text(v.date(t)))]));
    }
    if let Some(t) = c.ends_at {
        parts.push(v.tf("adm-promo-until", &[("at", Arg::Text(v.date(t)))]));
    }
    if c.first_purchase_only {
        parts.push(v.t("adm-promo-first"));
    }
    if let Some(plans) = &c.plans {
        parts.push(escape_html(&plans.join(", ")));
    }
    let state = if c.disabled_at.is_some() {
        "⚪️"
    } else if c.live(now) {
        "🟢"
    } else {
        "🟡"
    };
    format!("{state} {}", parts.join(" · "))
}
