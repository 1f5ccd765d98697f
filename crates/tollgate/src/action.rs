//! Button actions: a closed set, encoded in `callback_data` and parsed back strictly.
//!
//! Callback data comes from the user's client and can be anything (docs/reliability.md H3): it is
//! parsed into [`Action`] or rejected — never interpreted loosely. Nothing in it identifies a
//! user (the user is the callback's `from`), so data copied from another chat or an old
//! message can only ask for what its presser may do anyway.
//!
//! A module of its own, below the bot and the jobs: the bot's screens and the jobs' reminders
//! both carry buttons, and neither should depend on the other for them.

use crate::config::Language;

/// Something a button asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Menu,
    Trial,
    Buy,
    Plan(String),
    PayStars(String),
    PayCard(String),
    /// Pay a plan from the balance. `screen` is the update that drew the pay screen the
    /// button is on: presses of one button (a double tap, a redelivery) are one purchase,
    /// while the same plan bought again from a newly drawn screen is another.
    PayBalance {
        plan: String,
        screen: i64,
    },
    Access,
    Connect,
    Reissue,
    AutoRenew(bool),
    Balance,
    TopUpStars(usize),
    Help,
    Support,
    Languages,
    SetLanguage(Language),
    /// An admin applies a payment kept for review (by payment id).
    ApplyPayment(i64),
    /// An admin refunds a payment (by payment id).
    RefundPayment(i64),
}

/// Telegram's limit on `callback_data`.
pub const MAX_DATA: usize = 64;

fn valid_plan_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A positive id (an update's, a payment's) in plain digits, as [`Action::encode`] writes it.
fn positive_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0')
    {
        return None;
    }
    s.parse().ok()
}

impl Action {
    /// The `callback_data` of this action (always ≤ 64 bytes).
    pub fn encode(&self) -> String {
        match self {
            Action::Menu => "menu".into(),
            Action::Trial => "trial".into(),
            Action::Buy => "buy".into(),
            Action::Plan(id) => format!("plan:{id}"),
            Action::PayStars(id) => format!("pay:stars:{id}"),
            Action::PayCard(id) => format!("pay:card:{id}"),
            Action::PayBalance { plan, screen } => format!("pay:bal:{plan}:{screen}"),
            Action::Access => "access".into(),
            Action::Connect => "connect".into(),
            Action::Reissue => "reissue".into(),
            Action::AutoRenew(on) => format!("autorenew:{}", if *on { "on" } else { "off" }),
            Action::Balance => "balance".into(),
            Action::TopUpStars(i) => format!("topup:stars:{i}"),
            Action::Help => "help".into(),
            Action::Support => "support".into(),
            Action::Languages => "lang".into(),
            Action::SetLanguage(l) => format!("lang:{}", l.code()),
            Action::ApplyPayment(id) => format!("adm:pay:apply:{id}"),
            Action::RefundPayment(id) => format!("adm:pay:refund:{id}"),
        }
    }

    /// Parses `callback_data`; anything that is not exactly an encoded action is `None`.
    pub fn parse(data: &str) -> Option<Action> {
        if data.len() > MAX_DATA {
            return None;
        }
        let plan = |id: &str| valid_plan_id(id).then(|| id.to_owned());
        Some(match data {
            "menu" => Action::Menu,
            "trial" => Action::Trial,
            "buy" => Action::Buy,
            "access" => Action::Access,
            "connect" => Action::Connect,
            "reissue" => Action::Reissue,
            "autorenew:on" => Action::AutoRenew(true),
            "autorenew:off" => Action::AutoRenew(false),
            "balance" => Action::Balance,
            "help" => Action::Help,
            "support" => Action::Support,
            "lang" => Action::Languages,
            _ => {
                if let Some(id) = data.strip_prefix("plan:") {
                    Action::Plan(plan(id)?)
                } else if let Some(id) = data.strip_prefix("pay:stars:") {
                    Action::PayStars(plan(id)?)
                } else if let Some(id) = data.strip_prefix("pay:card:") {
                    Action::PayCard(plan(id)?)
                } else if let Some(rest) = data.strip_prefix("pay:bal:") {
                    let (id, screen) = rest.rsplit_once(':')?;
                    Action::PayBalance {
                        plan: plan(id)?,
                        screen: positive_id(screen)?,
                    }
                } else if let Some(i) = data.strip_prefix("topup:stars:") {
                    // Digits only: "+1", "01" and "1 " are not indexes we ever write.
                    if i.is_empty()
                        || i.len() > 3
                        || !i.bytes().all(|b| b.is_ascii_digit())
                        || (i.len() > 1 && i.starts_with('0'))
                    {
                        return None;
                    }
                    Action::TopUpStars(i.parse().ok()?)
                } else if let Some(id) = data.strip_prefix("adm:pay:apply:") {
                    Action::ApplyPayment(positive_id(id)?)
                } else if let Some(id) = data.strip_prefix("adm:pay:refund:") {
                    Action::RefundPayment(positive_id(id)?)
                } else if let Some(code) = data.strip_prefix("lang:") {
                    Action::SetLanguage(Language::parse(code)?)
                } else {
                    return None;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Action> {
        vec![
            Action::Menu,
            Action::Trial,
            Action::Buy,
            Action::Plan("m1".into()),
            Action::PayStars("y1".into()),
            Action::PayCard("m3".into()),
            Action::PayBalance {
                plan: "m6".into(),
                screen: 1,
            },
            Action::PayBalance {
                plan: "a".repeat(32),
                screen: 999_999_999_999_999_999,
            },
            Action::Access,
            Action::Connect,
            Action::Reissue,
            Action::AutoRenew(true),
            Action::AutoRenew(false),
            Action::Balance,
            Action::TopUpStars(0),
            Action::TopUpStars(12),
            Action::Help,
            Action::Support,
            Action::Languages,
            Action::SetLanguage(Language::En),
            Action::SetLanguage(Language::Ru),
            Action::ApplyPayment(1),
            Action::RefundPayment(999_999_999_999_999_999),
        ]
    }

    #[test]
    fn every_action_roundtrips_within_telegrams_limit() {
        for a in all() {
            let data = a.encode();
            assert!(data.len() <= MAX_DATA, "{data}");
            assert_eq!(Action::parse(&data), Some(a));
        }
        let long_plan = Action::PayStars("a".repeat(32));
        assert!(long_plan.encode().len() <= MAX_DATA);
    }

    #[test]
    fn anything_else_is_rejected() {
        for bad in [
            "",
            "MENU",
            "menu ",
            " menu",
            "plan:",
            "plan:M1",
            "plan:m1/../x",
            "plan:m1;drop",
            "pay:stars:",
            "pay:btc:m1",
            "topup:stars:",
            "pay:bal:m1",
            "pay:bal:m1:",
            "pay:bal:m1:0",
            "pay:bal:m1:012",
            "pay:bal:m1:-5",
            "pay:bal:m1:1x",
            "pay:bal::5",
            "pay:bal:m1:5:6",
            "pay:bal:m1:1000000000000000000",
            "adm:pay:apply:",
            "adm:pay:apply:0",
            "adm:pay:apply:-1",
            "adm:pay:refund:x",
            "adm:pay:refund:07",
            "topup:stars:-1",
            "topup:stars:+1",
            "topup:stars:01",
            "topup:stars:1000",
            "lang:de",
            "lang:",
            "autorenew:maybe",
            "user:12345",
            "menu\u{0}",
            &"x".repeat(65),
            &format!("plan:{}", "a".repeat(33)),
        ] {
            assert_eq!(Action::parse(bad), None, "{bad:?}");
        }
    }
}
