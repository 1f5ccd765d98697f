//! Answers to the console's questions: the admin's next text after Find, Grant days, Balance
//! or Banner. Input is parsed here, at the edge: a bad answer gets a specific note, keeps the
//! question open and changes nothing; a good one shows its confirmation. An answer whose
//! details do not fit in a button (an amount with its reason, a banner's text) is stored as
//! the admin's draft, which the confirmation's button then names by its screen.

use uuid::Uuid;

use super::{admin, confirmation};
use crate::action::{AdminAction, Op};
use crate::admin::prompts;
use crate::bot::screens::{Button, Screen};
use crate::bot::{Bot, Session, retry};
use crate::config::Language;
use crate::domain::money::Money;
use crate::i18n::Arg;
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
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
    /// The reason to reject withdrawal request (by id).
    Reject(i64),
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
            Question::Reject(w) => format!("reject:{w}"),
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
        if let Some(u) = s.strip_prefix("days:") {
            return u.parse().ok().map(Question::Days);
        }
        if let Some(u) = s.strip_prefix("balance:") {
            return u.parse().ok().map(Question::Balance);
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
        let Some(pending) = prompts::pending(&self.s.db, se.user.id, self.now())
            .await
            .map_err(retry)?
        else {
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
