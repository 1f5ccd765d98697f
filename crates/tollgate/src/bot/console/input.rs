//! Answers to the console's questions: the admin's next text after Find, Grant days, Balance
//! or Banner. Input is parsed here, at the edge: a bad answer gets a specific note, keeps the
//! question open and changes nothing; a good one shows its confirmation. An answer whose
//! details do not fit in a button (an amount with its reason, a banner's text) is stored as
//! the admin's draft, which the confirmation's button then names by its screen.

use uuid::Uuid;

use super::{admin, confirmation};
use crate::action::{AdminAction, Op};
use crate::admin::prompts;
use crate::billing::promo::{Benefit, Code, NewCode};
use crate::bot::screens::{Button, Screen};
use crate::bot::{Bot, Session, retry};
use crate::config::Language;
use crate::domain::money::{Currency, Money};
use crate::i18n::Arg;
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
use crate::time::Timestamp;
use crate::{access, users};

/// Longest reason for a balance adjustment (it is shown to the user and kept in the log).
pub const MAX_REASON_CHARS: usize = 200;

/// What an admin's next text answers, or a draft waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    Find,
    Days(i64),
    Balance(i64),
    Banner(Language),
    /// A new promo code with its rules.
    Promo,
    /// A user's personal discount.
    Discount(i64),
    /// A promo code (as typed) confirmed on the screen drawn by update `screen`.
    PromoDraft {
        screen: i64,
        text: String,
    },
    /// The reason to reject withdrawal request (by id).
    Reject(i64),
    /// A broadcast's text: a new draft, or a new text for draft `id`.
    BroadcastText(Option<i64>),
    /// A balance adjustment confirmed on the screen drawn by update `screen`.
    BalanceDraft {
        screen: i64,
        user: i64,
        delta: i64,
        reason: String,
    },
    /// A banner confirmed on the screen drawn by update `screen`.
    BannerDraft {
        screen: i64,
        lang: Language,
        text: String,
    },
    /// A withdrawal's rejection confirmed on the screen drawn by update `screen`.
    RejectDraft {
        screen: i64,
        id: i64,
        reason: String,
    },
}

impl Question {
    pub fn encode(&self) -> String {
        match self {
            Question::Find => "find".into(),
            Question::Days(u) => format!("days:{u}"),
            Question::Balance(u) => format!("balance:{u}"),
            Question::Banner(l) => format!("banner:{}", l.code()),
            Question::Promo => "promo".into(),
            Question::Discount(u) => format!("discount:{u}"),
            Question::PromoDraft { screen, text } => format!("draft:promo:{screen}:{text}"),
            Question::Reject(w) => format!("reject:{w}"),
            Question::BroadcastText(None) => "broadcast:new".into(),
            Question::BroadcastText(Some(id)) => format!("broadcast:{id}"),
            Question::BalanceDraft {
                screen,
                user,
                delta,
                reason,
            } => format!("draft:balance:{screen}:{user}:{delta}:{reason}"),
            Question::BannerDraft { screen, lang, text } => {
                format!("draft:banner:{screen}:{}:{text}", lang.code())
            }
            Question::RejectDraft { screen, id, reason } => {
                format!("draft:reject:{screen}:{id}:{reason}")
            }
        }
    }

    pub fn parse(s: &str) -> Option<Question> {
        if s == "find" {
            return Some(Question::Find);
        }
        if s == "promo" {
            return Some(Question::Promo);
        }
        if let Some(u) = s.strip_prefix("discount:") {
            return u.parse().ok().map(Question::Discount);
        }
        if let Some(rest) = s.strip_prefix("draft:promo:") {
            let (screen, text) = rest.split_once(':')?;
            return Some(Question::PromoDraft {
                screen: screen.parse().ok()?,
                text: text.to_owned(),
            });
        }
        if let Some(u) = s.strip_prefix("days:") {
            return u.parse().ok().map(Question::Days);
        }
        if let Some(u) = s.strip_prefix("balance:") {
            return u.parse().ok().map(Question::Balance);
        }
        if let Some(rest) = s.strip_prefix("broadcast:") {
            return Some(Question::BroadcastText(if rest == "new" {
                None
            } else {
                Some(rest.parse().ok()?)
            }));
        }
        if let Some(l) = s.strip_prefix("banner:") {
            return Language::parse(l).map(Question::Banner);
        }
        if let Some(w) = s.strip_prefix("reject:") {
            return w.parse().ok().map(Question::Reject);
        }
        if let Some(rest) = s.strip_prefix("draft:reject:") {
            let mut parts = rest.splitn(3, ':');
            return Some(Question::RejectDraft {
                screen: parts.next()?.parse().ok()?,
                id: parts.next()?.parse().ok()?,
                reason: parts.next()?.to_owned(),
            });
        }
        if let Some(rest) = s.strip_prefix("draft:balance:") {
            let mut parts = rest.splitn(4, ':');
            return Some(Question::BalanceDraft {
                screen: parts.next()?.parse().ok()?,
                user: parts.next()?.parse().ok()?,
                delta: parts.next()?.parse().ok()?,
                reason: parts.next()?.to_owned(),
            });
        }
        if let Some(rest) = s.strip_prefix("draft:banner:") {
            let mut parts = rest.splitn(3, ':');
            return Some(Question::BannerDraft {
                screen: parts.next()?.parse().ok()?,
                lang: Language::parse(parts.next()?)?,
                text: parts.next()?.to_owned(),
            });
        }
        None
    }

    fn is_draft(&self) -> bool {
        matches!(
            self,
            Question::BalanceDraft { .. }
                | Question::BannerDraft { .. }
                | Question::PromoDraft { .. }
                | Question::RejectDraft { .. }
        )
    }
}

/// The user an admin means by what they typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserQuery {
    Id(i64),
    Username(String),
    Uuid(Uuid),
    /// A subscription token, or a feed URL ending in one.
    Token(String),
}

impl UserQuery {
    pub fn parse(text: &str) -> Option<UserQuery> {
        let t = text.trim();
        if t.is_empty() || t.len() > 512 {
            return None;
        }
        if let Some(name) = t.strip_prefix('@') {
            return valid_username(name).then(|| UserQuery::Username(name.to_owned()));
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return t.parse().ok().filter(|id| *id > 0).map(UserQuery::Id);
        }
        if let Ok(uuid) = Uuid::parse_str(t) {
            return Some(UserQuery::Uuid(uuid));
        }
        if let Some((_, token)) = t.rsplit_once("/sub/") {
            let token = token.trim_end_matches('/');
            return (!token.is_empty() && !token.contains(char::is_whitespace))
                .then(|| UserQuery::Token(token.to_owned()));
        }
        if t.contains(char::is_whitespace) {
            return None;
        }
        // A bare word: a token or a username written without its @ (tried in that order).
        Some(UserQuery::Token(t.to_owned()))
    }
}

fn valid_username(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A balance adjustment as typed: a signed amount in the base currency, then the reason.
pub fn parse_adjustment(
    text: &str,
    base: crate::domain::money::Currency,
) -> Result<(i64, String), &'static str> {
    let t = text.trim();
    let (amount, reason) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let (negative, digits) = match amount.as_bytes().first() {
        Some(b'+') => (false, &amount[1..]),
        Some(b'-') => (true, &amount[1..]),
        _ => (false, amount),
    };
    let money = Money::parse_major(digits, base).map_err(|_| "adm-balance-invalid")?;
    if money.minor == 0 {
        return Err("adm-balance-zero");
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err("adm-balance-no-reason");
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err("adm-balance-reason-long");
    }
    Ok((
        if negative { -money.minor } else { money.minor },
        reason.to_owned(),
    ))
}

/// A typed date (`YYYY-MM-DD`), as the start of that day in the operator's time zone.
pub fn parse_day(text: &str, utc_offset_minutes: i32) -> Option<Timestamp> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let days = crate::time::days_from_civil(y, m, d);
    if crate::time::civil_from_days(days) != (y, m, d) {
        return None;
    }
    Some(Timestamp::from_millis(
        days * 86_400_000 - i64::from(utc_offset_minutes) * 60_000,
    ))
}

/// A promo code as typed: `CODE KIND VALUE [uses=N] [from=YYYY-MM-DD] [until=YYYY-MM-DD]
/// [first] [plans=m1,m3]`, KIND one of `percent`, `fixed` (an amount off), `days`, `credit`.
/// `until` is inclusive (the code ends when that day does). The error is a text key and the
/// word it is about.
pub fn parse_promo(
    text: &str,
    base: Currency,
    utc_offset_minutes: i32,
    plan_ids: &[&str],
) -> Result<NewCode, (&'static str, String)> {
    let mut words = text.split_whitespace();
    let word = |w: Option<&str>| w.unwrap_or("").to_owned();
    let first = words.next();
    let code = first
        .and_then(Code::parse)
        .ok_or(("adm-promo-bad-code", word(first)))?;
    let (kind, value) = (words.next(), words.next());
    let value_text = word(value);
    let bad_value = || ("adm-promo-bad-value", value_text.clone());
    let small = |max: u32| {
        value
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| (1..=max).contains(n))
    };
    let money = || {
        value
            .and_then(|v| Money::parse_major(v, base).ok())
            .filter(|m| m.minor > 0 && m.minor <= 100_000_000)
    };
    let benefit = match kind {
        Some("percent") => Benefit::Percent(small(99).ok_or_else(bad_value)?),
        Some("fixed") => Benefit::Fixed(money().ok_or_else(bad_value)?),
        Some("days") => Benefit::Days(small(access::MAX_GRANT_DAYS).ok_or_else(bad_value)?),
        Some("credit") => Benefit::Credit(money().ok_or_else(bad_value)?),
        other => return Err(("adm-promo-bad-kind", word(other))),
    };
    let mut new = NewCode {
        code,
        benefit,
        max_uses: None,
        starts_at: None,
        ends_at: None,
        first_purchase_only: false,
        plans: None,
    };
    for w in words {
        let bad = || ("adm-promo-bad-option", w.to_owned());
        match w.split_once('=') {
            None if w == "first" => new.first_purchase_only = true,
            Some(("uses", n)) => {
                let n = n
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n));
                new.max_uses = Some(n.ok_or_else(bad)?);
            }
            Some(("from", d)) => {
                new.starts_at = Some(parse_day(d, utc_offset_minutes).ok_or_else(bad)?);
            }
            Some(("until", d)) => {
                let day = parse_day(d, utc_offset_minutes).ok_or_else(bad)?;
                new.ends_at = Some(day.plus(std::time::Duration::from_secs(86_400)));
            }
            Some(("plans", list)) => {
                let ids: Vec<String> = list.split(',').map(str::to_owned).collect();
                if let Some(unknown) = ids.iter().find(|id| !plan_ids.contains(&id.as_str())) {
                    return Err(("adm-promo-bad-plan", unknown.clone()));
                }
                if ids.len() > crate::billing::promo::MAX_PLANS {
                    return Err(bad());
                }
                new.plans = Some(ids);
            }
            _ => return Err(bad()),
        }
    }
    if let (Some(a), Some(b)) = (new.starts_at, new.ends_at)
        && a >= b
    {
        return Err(("adm-promo-bad-window", String::new()));
    }
    Ok(new)
}

/// A personal discount as typed: a percent (0 removes it), optionally the last day.
pub fn parse_discount(
    text: &str,
    utc_offset_minutes: i32,
) -> Result<(u32, Option<Timestamp>), &'static str> {
    let mut words = text.split_whitespace();
    let percent = words
        .next()
        .and_then(|p| p.trim_end_matches('%').parse::<u32>().ok())
        .filter(|p| *p <= 99)
        .ok_or("adm-discount-invalid")?;
    let until = match words.next() {
        None => None,
        Some(d) => Some(
            parse_day(d, utc_offset_minutes)
                .ok_or("adm-discount-invalid")?
                .plus(std::time::Duration::from_secs(86_400)),
        ),
    };
    if words.next().is_some() || (percent == 0 && until.is_some()) {
        return Err("adm-discount-invalid");
    }
    Ok((percent, until))
}

impl Bot {
    /// An admin's text message while a question of theirs is pending: the screen to send and
    /// the transaction to finish the update in, or `None` when it answers nothing (no question,
    /// or only a draft waiting for its button) and is an ordinary message.
    pub(in crate::bot) async fn answer(
        &self,
        update_id: i64,
        se: &Session,
        text: &str,
    ) -> Result<Option<(Screen, Tx)>, HandlerError> {
        let Some(pending) = se.question(self.now()) else {
            return Ok(None);
        };
        let Some(question) = Question::parse(&pending.question).filter(|q| !q.is_draft()) else {
            return Ok(None);
        };
        let v = self.view(se.lang);
        let base = self.s.config.catalog.bot.base_currency;
        // A bad answer: the question stays open.
        let retry_with = |key: &str, args: &[(&str, Arg)], back: AdminAction| {
            Screen::new(
                v.tf(key, args),
                vec![vec![
                    v.button("adm-btn-cancel", admin(AdminAction::Cancel)),
                    v.button("btn-back", admin(back)),
                ]],
            )
        };
        let (screen, draft) = match question {
            Question::BroadcastText(draft) => {
                return self.broadcast_text(se, &pending, draft, text).await;
            }
            Question::Find => {
                let Some(query) = UserQuery::parse(text) else {
                    return self
                        .keep(retry_with("adm-find-invalid", &[], AdminAction::Home))
                        .await;
                };
                let found = self.find(&query).await?;
                match found.as_slice() {
                    [] => {
                        return self
                            .keep(retry_with(
                                "adm-find-none",
                                &[("query", Arg::Text(text.trim().to_owned()))],
                                AdminAction::Home,
                            ))
                            .await;
                    }
                    [one] => (self.user_card(&v, *one).await?, None),
                    many => {
                        let mut rows: Vec<Vec<Button>> = many
                            .iter()
                            .map(|u| {
                                vec![Button::Action {
                                    text: u.to_string(),
                                    action: admin(AdminAction::User(*u)),
                                }]
                            })
                            .collect();
                        rows.push(super::back_home(&v));
                        (Screen::new(v.t("adm-find-many"), rows), None)
                    }
                }
            }
            Question::Days(user) => {
                let days = text
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=access::MAX_GRANT_DAYS).contains(d));
                let Some(days) = days else {
                    let max = access::MAX_GRANT_DAYS;
                    return self
                        .keep(retry_with(
                            "adm-days-invalid",
                            &[("max", max.into())],
                            AdminAction::User(user),
                        ))
                        .await;
                };
                (self.grant_confirmation(&v, user, days, update_id), None)
            }
            Question::Balance(user) => {
                let (delta, reason) = match parse_adjustment(text, base) {
                    Ok(parsed) => parsed,
                    Err(key) => {
                        let args = [
                            ("currency", Arg::Text(base.code().into())),
                            ("max", MAX_REASON_CHARS.into()),
                        ];
                        return self
                            .keep(retry_with(key, &args, AdminAction::User(user)))
                            .await;
                    }
                };
                let balance = users::get(&self.s.db, user)
                    .await
                    .map_err(retry)?
                    .map_or(0, |u| u.balance);
                if balance + delta < 0 {
                    let args = [("balance", Arg::Text(v.money(Money::new(balance, base))))];
                    return self
                        .keep(retry_with(
                            "adm-balance-negative",
                            &args,
                            AdminAction::User(user),
                        ))
                        .await;
                }
                let shown = super::user::signed(se.lang, Money::new(delta, base));
                let screen = confirmation(
                    &v,
                    v.tf(
                        "adm-confirm-balance",
                        &[
                            ("user", user.into()),
                            ("delta", Arg::Text(shown)),
                            (
                                "after",
                                Arg::Text(v.money(Money::new(balance + delta, base))),
                            ),
                            ("reason", Arg::Text(reason.clone())),
                        ],
                    ),
                    Op::Draft,
                    update_id,
                    AdminAction::User(user),
                );
                (
                    screen,
                    Some(Question::BalanceDraft {
                        screen: update_id,
                        user,
                        delta,
                        reason,
                    }),
                )
            }
            Question::Banner(lang) => {
                let banner = match crate::flags::check_banner(text) {
                    Ok(b) => b.to_owned(),
                    Err(_) => {
                        let chars = text.trim().chars().count();
                        let max = crate::flags::BANNER_MAX_CHARS;
                        let args = [("max", max.into()), ("length", chars.into())];
                        return self
                            .keep(retry_with("adm-banner-invalid", &args, AdminAction::Flags))
                            .await;
                    }
                };
                let screen = confirmation(
                    &v,
                    v.tf(
                        "adm-confirm-banner",
                        &[
                            ("language", Arg::Text(lang.code().into())),
                            ("text", Arg::Text(banner.clone())),
                        ],
                    ),
                    Op::Draft,
                    update_id,
                    AdminAction::Flags,
                );
                (
                    screen,
                    Some(Question::BannerDraft {
                        screen: update_id,
                        lang,
                        text: banner,
                    }),
                )
            }
            Question::Promo => {
                let catalog = &self.s.config.catalog;
                let ids: Vec<&str> = catalog.plans.iter().map(|p| p.id.as_str()).collect();
                let offset = catalog.bot.utc_offset_minutes;
                let new = match parse_promo(text, base, offset, &ids) {
                    Ok(new) => new,
                    Err((key, word)) => {
                        let args = [("word", Arg::Text(word))];
                        return self.keep(retry_with(key, &args, AdminAction::Promos)).await;
                    }
                };
                let screen = confirmation(
                    &v,
                    v.tf(
                        "adm-confirm-promo",
                        &[
                            ("code", Arg::Text(new.code.as_str().to_owned())),
                            ("rules", Arg::Text(crate::billing::promo::describe(&new))),
                        ],
                    ),
                    Op::Draft,
                    update_id,
                    AdminAction::Promos,
                );
                (
                    screen,
                    Some(Question::PromoDraft {
                        screen: update_id,
                        text: text.trim().to_owned(),
                    }),
                )
            }
            Question::Discount(user) => {
                let offset = self.s.config.catalog.bot.utc_offset_minutes;
                let parsed = parse_discount(text, offset).and_then(|(p, until)| match until {
                    Some(t) if t <= self.now() => Err("adm-discount-past"),
                    _ => Ok((p, until)),
                });
                let (percent, until) = match parsed {
                    Ok(d) => d,
                    Err(key) => {
                        return self
                            .keep(retry_with(key, &[], AdminAction::User(user)))
                            .await;
                    }
                };
                let op = Op::Discount {
                    user,
                    percent,
                    until: until.map_or(0, |t| t.as_millis()),
                };
                (super::user::discount_confirmation(&v, op, update_id), None)
            }
            Question::Reject(id) => {
                let reason = text.trim();
                if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
                    let args = [("max", MAX_REASON_CHARS.into())];
                    return self
                        .keep(retry_with(
                            "adm-reject-invalid",
                            &args,
                            AdminAction::Withdrawal(id),
                        ))
                        .await;
                }
                let Some(w) = crate::billing::withdrawals::by_id(&self.s.db, id)
                    .await
                    .map_err(crate::bot::payments::billing_err)?
                else {
                    return self
                        .keep(retry_with("stale-button", &[], AdminAction::Withdrawals))
                        .await;
                };
                let screen = confirmation(
                    &v,
                    v.tf(
                        "adm-confirm-withdrawal-reject",
                        &[
                            ("id", id.into()),
                            ("user", w.user_id.into()),
                            ("amount", Arg::Text(v.money(w.amount))),
                            ("reason", Arg::Text(reason.to_owned())),
                        ],
                    ),
                    Op::Draft,
                    update_id,
                    AdminAction::Withdrawal(id),
                );
                (
                    screen,
                    Some(Question::RejectDraft {
                        screen: update_id,
                        id,
                        reason: reason.to_owned(),
                    }),
                )
            }
            Question::BalanceDraft { .. }
            | Question::BannerDraft { .. }
            | Question::PromoDraft { .. }
            | Question::RejectDraft { .. } => return Ok(None),
        };
        let mut tx = self.begin().await?;
        if !prompts::take(&mut tx, se.user.id, &pending)
            .await
            .map_err(retry)?
        {
            // Answered or cancelled meanwhile (a second replica, a Cancel): an ordinary message.
            drop(tx);
            return Ok(None);
        }
        if let Some(draft) = draft {
            prompts::ask(&mut tx, se.user.id, &draft.encode(), self.now())
                .await
                .map_err(retry)?;
        }
        Ok(Some((screen, tx)))
    }

    /// A broadcast's text typed: refused with the parser's error (the question stays), or
    /// stored as a draft (a new one, or the draft being edited) and its screen shown.
    async fn broadcast_text(
        &self,
        se: &Session,
        pending: &prompts::Pending,
        draft: Option<i64>,
        text: &str,
    ) -> Result<Option<(Screen, Tx)>, HandlerError> {
        let v = self.view(se.lang);
        let content = match super::broadcast::parse_content(&v, text) {
            Ok(c) => c,
            Err(note) => {
                let screen = Screen::new(
                    note,
                    vec![vec![
                        v.button("adm-btn-cancel", admin(AdminAction::Cancel)),
                        v.button("btn-back", admin(AdminAction::Broadcasts)),
                    ]],
                );
                return self.keep(screen).await;
            }
        };
        let mut tx = self.begin().await?;
        if !prompts::take(&mut tx, se.user.id, pending)
            .await
            .map_err(retry)?
        {
            drop(tx);
            return Ok(None);
        }
        let id = match draft {
            Some(id) => {
                if !crate::broadcast::edit_draft(&mut tx, id, &content)
                    .await
                    .map_err(retry)?
                {
                    let screen = crate::bot::screens::notice(
                        &v,
                        v.t("bc-not-draft"),
                        admin(AdminAction::Broadcasts),
                    );
                    return Ok(Some((screen, tx)));
                }
                id
            }
            None => crate::broadcast::create_draft(&mut tx, se.user.id, &content, self.now())
                .await
                .map_err(retry)?,
        };
        // The draft's screen reads it back: commit first, then finish in a new transaction.
        tx.commit().await.map_err(retry)?;
        let screen = self
            .draft_screen(&v, id, crate::users::Audience::All, false)
            .await?;
        Ok(Some((screen, self.begin().await?)))
    }

    /// A bad answer's screen; the question stays as it is.
    async fn keep(&self, screen: Screen) -> Result<Option<(Screen, Tx)>, HandlerError> {
        Ok(Some((screen, self.begin().await?)))
    }

    /// The users `query` names (several only for a username that moved between accounts).
    async fn find(&self, query: &UserQuery) -> Result<Vec<i64>, HandlerError> {
        let db = &self.s.db;
        Ok(match query {
            UserQuery::Id(id) => users::get(db, *id)
                .await
                .map_err(retry)?
                .map(|u| u.id)
                .into_iter()
                .collect(),
            UserQuery::Username(name) => users::by_username(db, name, 10)
                .await
                .map_err(retry)?
                .into_iter()
                .map(|u| u.id)
                .collect(),
            UserQuery::Uuid(uuid) => access::by_vpn_uuid(db, *uuid)
                .await
                .map_err(retry)?
                .map(|s| s.user_id)
                .into_iter()
                .collect(),
            UserQuery::Token(token) => match access::by_token(db, token).await.map_err(retry)? {
                Some(s) => vec![s.user_id],
                None if valid_username(token) => users::by_username(db, token, 10)
                    .await
                    .map_err(retry)?
                    .into_iter()
                    .map(|u| u.id)
                    .collect(),
                None => Vec::new(),
            },
        })
    }

    /// The draft confirmed on the screen drawn by update `screen`, carried out.
    pub(super) async fn carry_out_draft(
        &self,
        se: &Session,
        screen: i64,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let pending = prompts::pending(&self.s.db, se.user.id, self.now())
            .await
            .map_err(retry)?;
        let draft = pending.as_ref().and_then(|p| Question::parse(&p.question));
        match draft {
            Some(Question::BalanceDraft {
                screen: s,
                user,
                delta,
                reason,
            }) if s == screen => self.adjust_balance(se, user, delta, &reason, request).await,
            Some(Question::BannerDraft {
                screen: s,
                lang,
                text,
            }) if s == screen => self.set_banner(se, lang, &text, request).await,
            Some(Question::PromoDraft { screen: s, text }) if s == screen => {
                self.create_promo(se, &text, request).await
            }
            Some(Question::RejectDraft {
                screen: s,
                id,
                reason,
            }) if s == screen => self.withdrawal_rejected(se, id, &reason, request).await,
            // Carried out already, replaced by a newer draft, or expired.
            _ => Ok((
                super::home(&v).with_note(v.t("adm-draft-gone")),
                self.begin().await?,
                false,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;

    #[test]
    fn questions_and_drafts_roundtrip() {
        for q in [
            Question::Find,
            Question::Days(5),
            Question::Balance(6),
            Question::Banner(Language::Ru),
            Question::BroadcastText(None),
            Question::BroadcastText(Some(12)),
            Question::BalanceDraft {
                screen: 9,
                user: 7,
                delta: -150,
                reason: "a: b: c".into(),
            },
            Question::BannerDraft {
                screen: 9,
                lang: Language::En,
                text: "x:y\nz".into(),
            },
            Question::Promo,
            Question::Discount(4),
            Question::PromoDraft {
                screen: 3,
                text: "A1B percent 5 plans=m1".into(),
            },
            Question::Reject(4),
            Question::RejectDraft {
                screen: 9,
                id: 4,
                reason: "wrong card: 12".into(),
            },
        ] {
            assert_eq!(Question::parse(&q.encode()), Some(q));
        }
        assert_eq!(Question::parse("days:x"), None);
        assert_eq!(Question::parse("other"), None);
    }

    #[test]
    fn a_user_is_named_by_id_username_uuid_or_token() {
        assert_eq!(UserQuery::parse(" 12345 "), Some(UserQuery::Id(12345)));
        assert_eq!(
            UserQuery::parse("@some_user"),
            Some(UserQuery::Username("some_user".into()))
        );
        let uuid = "0b3f7a52-4c1e-4d2a-9f55-3e1c2b4a6d7e";
        assert_eq!(
            UserQuery::parse(uuid),
            Some(UserQuery::Uuid(Uuid::parse_str(uuid).unwrap()))
        );
        assert_eq!(
            UserQuery::parse("https://vpn.example/sub/AbC_12/"),
            Some(UserQuery::Token("AbC_12".into()))
        );
        assert_eq!(
            UserQuery::parse("AbC_12"),
            Some(UserQuery::Token("AbC_12".into()))
        );
        for bad in [
            "",
            "   ",
            "0",
            "@",
            "@bad name",
            "@x-y",
            "two words",
            "99999999999999999999",
        ] {
            assert_eq!(UserQuery::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_adjustment_needs_a_signed_amount_and_a_reason() {
        let rub = Currency::Rub;
        assert_eq!(
            parse_adjustment("+150 outage", rub),
            Ok((15_000, "outage".into()))
        );
        assert_eq!(
            parse_adjustment("-49.90  wrong top-up ", rub),
            Ok((-4_990, "wrong top-up".into()))
        );
        assert_eq!(parse_adjustment("20 gift", rub), Ok((2_000, "gift".into())));
        assert_eq!(
            parse_adjustment("abc reason", rub),
            Err("adm-balance-invalid")
        );
        assert_eq!(
            parse_adjustment("+1.234 reason", rub),
            Err("adm-balance-invalid")
        );
        assert_eq!(parse_adjustment("+0 reason", rub), Err("adm-balance-zero"));
        assert_eq!(parse_adjustment("+10", rub), Err("adm-balance-no-reason"));
        assert_eq!(
            parse_adjustment(&format!("+10 {}", "x".repeat(201)), rub),
            Err("adm-balance-reason-long")
        );
    }
}

#[cfg(test)]
mod promo_tests {
    use super::*;

    #[test]
    fn a_promo_code_is_typed_with_every_rule() {
        let rub = Currency::Rub;
        let plans = ["m1", "m3"];
        let new = parse_promo(
            "spring20 percent 20 uses=100 from=2026-12-01 until=2026-12-31 first plans=m1,m3",
            rub,
            180,
            &plans,
        )
        .unwrap();
        assert_eq!(new.code.as_str(), "SPRING20");
        assert_eq!(new.benefit, Benefit::Percent(20));
        assert_eq!(new.max_uses, Some(100));
        // Midnight in UTC+3, and the end of the last day.
        assert_eq!(
            new.starts_at.unwrap().to_string(),
            "2026-11-30T21:00:00.000Z"
        );
        assert_eq!(new.ends_at.unwrap().to_string(), "2026-12-31T21:00:00.000Z");
        assert!(new.first_purchase_only);
        assert_eq!(new.plans, Some(vec!["m1".to_owned(), "m3".to_owned()]));
        let fixed = parse_promo("MINUS50 fixed 49.90", rub, 0, &plans).unwrap();
        assert_eq!(fixed.benefit, Benefit::Fixed(Money::new(4_990, rub)));
        assert_eq!(
            parse_promo("WEEK days 7", rub, 0, &plans).unwrap().benefit,
            Benefit::Days(7)
        );
        for (bad, key) in [
            ("x percent 5", "adm-promo-bad-code"),
            ("ABC half 5", "adm-promo-bad-kind"),
            ("ABC percent 100", "adm-promo-bad-value"),
            ("ABC percent", "adm-promo-bad-value"),
            ("ABC fixed 1.234", "adm-promo-bad-value"),
            ("ABC days 0", "adm-promo-bad-value"),
            ("ABC percent 5 uses=0", "adm-promo-bad-option"),
            ("ABC percent 5 until=2026-02-30", "adm-promo-bad-option"),
            ("ABC percent 5 plans=m9", "adm-promo-bad-plan"),
            ("ABC percent 5 soon", "adm-promo-bad-option"),
            (
                "ABC percent 5 from=2027-01-02 until=2027-01-01",
                "adm-promo-bad-window",
            ),
        ] {
            assert_eq!(
                parse_promo(bad, rub, 0, &plans).unwrap_err().0,
                key,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_personal_discount_is_a_percent_and_an_optional_last_day() {
        assert_eq!(parse_discount("15", 0), Ok((15, None)));
        assert_eq!(parse_discount("0", 0), Ok((0, None)));
        let (p, until) = parse_discount("10% 2027-01-31", 0).unwrap();
        assert_eq!(
            (p, until.unwrap().to_string().as_str()),
            (10, "2027-02-01T00:00:00.000Z")
        );
        for bad in [
            "",
            "x",
            "100",
            "-5",
            "15 tomorrow",
            "0 2027-01-01",
            "5 2027-01-01 x",
        ] {
            assert_eq!(
                parse_discount(bad, 0),
                Err("adm-discount-invalid"),
                "{bad:?}"
            );
        }
    }
}
