//! Button actions: a closed set, encoded in `callback_data` and parsed back strictly.
//!
//! Callback data comes from the user's client and can be anything (docs/reliability.md H3): it is
//! parsed into [`Action`] or rejected — never interpreted loosely. Nothing in it identifies a
//! user (the user is the callback's `from`), so data copied from another chat or an old
//! message can only ask for what its presser may do anyway.
//!
//! A module of its own, below the bot and the jobs: the bot's screens and the jobs' reminders
//! both carry buttons, and neither should depend on the other for them.

use crate::audience::Audience;
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
    /// Pay a plan through Crypto Pay.
    PayCrypto(String),
    /// Pay a plan through YooKassa.
    PayYooKassa(String),
    /// "I paid": ask the provider about this purchase's payment now.
    CheckPaid(i64),
    /// A base-currency top-up of this many minor units: choose the provider.
    TopUpFiat(i64),
    /// A base-currency top-up of this many minor units through Crypto Pay.
    TopUpCrypto(i64),
    /// A base-currency top-up of this many minor units through YooKassa.
    TopUpYooKassa(i64),
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
    /// The Promo code screen.
    Promo,
    /// The Invite friends screen: link, counts, level, earnings.
    Invite,
    /// Balance → Withdraw: asks for the amount (then the requisites, as text).
    Withdraw,
    /// Confirms the withdrawal drafted on the screen drawn by update `screen` (the draft is the
    /// user's stored answer; a second press finds it carried out).
    WithdrawConfirm(i64),
    /// Leaves the withdrawal being drafted.
    WithdrawCancel,
    /// The Receipts screen: where the user's 54-FZ receipts go (YooKassa, receipts on).
    Receipt,
    /// Asks for a new receipt contact (typed as text).
    ReceiptChange,
    /// Forgets the receipt contact: the next YooKassa payment asks again.
    ReceiptRemove,
    Help,
    Support,
    Languages,
    SetLanguage(Language),
    /// An admin applies a payment kept for review (by payment id).
    ApplyPayment(i64),
    /// The admin console (`/admin`); every use re-checks that the presser is an admin.
    Admin(AdminAction),
}

/// A place or a step of the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    Home,
    Stats,
    /// Asks for a user to find (id, @username, token or UUID, sent as text).
    Find,
    /// A user's card.
    User(i64),
    /// Asks for the number of days to grant this user.
    AskDays(i64),
    /// Asks for a balance adjustment (amount and reason) for this user.
    AskBalance(i64),
    /// Asks for the maintenance banner's text in this language.
    AskBanner(Language),
    /// Promo codes with their uses.
    Promos,
    /// A later page of the promo codes (from 1; the first is `Promos`).
    PromoPage(i64),
    /// Asks for a new promo code and its rules.
    AskPromo,
    /// Asks for this user's personal discount.
    AskDiscount(i64),
    Flags,
    Nodes,
    DeadLetters,
    /// Pending withdrawal requests, oldest first.
    Withdrawals,
    /// One withdrawal request (by id), with Paid and Reject.
    Withdrawal(i64),
    /// Asks for the reason to reject this withdrawal request.
    AskReject(i64),
    /// The audit log: everything, by one admin, or about one user.
    Audit(AuditView),
    /// A payment's card (by payment id).
    Payment(i64),
    /// What waits for an admin's decision about money: payments kept for review and
    /// payments that name no purchase of ours.
    Review,
    /// A payment that names no purchase of ours (by its `unmatched_payments` id).
    Unmatched(i64),
    /// The confirmation of an operation.
    Confirm(Op),
    /// The operation confirmed on the screen drawn by update `screen`: a second press of that
    /// screen's button (a double tap, a redelivery) finds it done.
    Do(Op, i64),
    /// Leaves a question or a confirmation unanswered.
    Cancel,
    /// Broadcasts: the history, and New.
    Broadcasts,
    /// Asks for a new broadcast's text.
    BroadcastNew,
    /// Asks for a new text of draft `id`.
    BroadcastEdit(i64),
    /// Draft `id` with an audience and paid or not chosen (nothing stored until Send).
    BroadcastDraft {
        id: i64,
        audience: Audience,
        paid: bool,
    },
}

/// Which rows the audit screen lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditView {
    All,
    By(i64),
    About(i64),
}

/// An admin operation that changes something; confirmed before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Grant {
        user: i64,
        days: u32,
        tell: bool,
    },
    Revoke(i64),
    Reissue(i64),
    Ban(i64),
    Unban(i64),
    /// Refund a payment (by payment id).
    Refund(i64),
    Flag {
        name: String,
        on: bool,
    },
    NodeEnabled {
        node: String,
        on: bool,
    },
    Reconcile(String),
    Redrive(i64),
    Discard(i64),
    /// Disable a promo code (by id).
    DisablePromo(i64),
    /// Set a user's personal discount: a percent (0 removes it) and its end (Unix ms, 0: none).
    Discount {
        user: i64,
        percent: u32,
        until: i64,
    },
    /// Mark a withdrawal request (by id) paid out.
    WithdrawalPaid(i64),
    /// Refund an unmatched payment (by id) through its provider.
    RefundUnmatched(i64),
    /// Mark an unmatched payment (by id) settled outside the bot.
    SettleUnmatched(i64),
    /// Send draft `id` to `audience` (its confirmation sends the admin a preview first).
    BroadcastSend {
        id: i64,
        audience: Audience,
        paid: bool,
    },
    /// Cancel broadcast `id`: nothing unsent goes out after the confirmation.
    BroadcastCancel(i64),
    /// What the admin typed and the console stored as their draft (a balance adjustment, a
    /// banner): too long for a button, so the button names only the draft's screen.
    Draft,
}

impl Op {
    fn encode(&self) -> String {
        let bit = |b: bool| if b { 1 } else { 0 };
        match self {
            Op::Grant { user, days, tell } => format!("gr:{user}:{days}:{}", bit(*tell)),
            Op::Revoke(u) => format!("rv:{u}"),
            Op::Reissue(u) => format!("ri:{u}"),
            Op::Ban(u) => format!("bn:{u}"),
            Op::Unban(u) => format!("ub:{u}"),
            Op::Refund(p) => format!("rf:{p}"),
            Op::Flag { name, on } => format!("fl:{name}:{}", bit(*on)),
            Op::NodeEnabled { node, on } => format!("ne:{node}:{}", bit(*on)),
            Op::Reconcile(node) => format!("nr:{node}"),
            Op::Redrive(u) => format!("rd:{u}"),
            Op::Discard(u) => format!("ds:{u}"),
            Op::DisablePromo(id) => format!("pr:{id}"),
            Op::Discount {
                user,
                percent,
                until,
            } => format!("pd:{user}:{percent}:{until}"),
            Op::WithdrawalPaid(w) => format!("wp:{w}"),
            Op::RefundUnmatched(id) => format!("ur:{id}"),
            Op::SettleUnmatched(id) => format!("us:{id}"),
            Op::BroadcastSend { id, audience, paid } => {
                format!("bs:{id}:{}:{}", audience.code(), bit(*paid))
            }
            Op::BroadcastCancel(id) => format!("bx:{id}"),
            Op::Draft => "dr".into(),
        }
    }

    fn parse(data: &str) -> Option<Op> {
        let (verb, rest) = data.split_once(':').unwrap_or((data, ""));
        let bit = |s: &str| match s {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        };
        let name = |s: &str| valid_plan_id(s).then(|| s.to_owned());
        Some(match verb {
            "gr" => {
                let mut parts = rest.split(':');
                let user = positive_id(parts.next()?)?;
                let days = positive_id(parts.next()?)?;
                let tell = bit(parts.next()?)?;
                if parts.next().is_some() || days > i64::from(crate::domain::MAX_GRANT_DAYS) {
                    return None;
                }
                Op::Grant {
                    user,
                    days: u32::try_from(days).ok()?,
                    tell,
                }
            }
            "rv" => Op::Revoke(positive_id(rest)?),
            "ri" => Op::Reissue(positive_id(rest)?),
            "bn" => Op::Ban(positive_id(rest)?),
            "ub" => Op::Unban(positive_id(rest)?),
            "rf" => Op::Refund(positive_id(rest)?),
            "rd" => Op::Redrive(positive_id(rest)?),
            "ds" => Op::Discard(positive_id(rest)?),
            "pr" => Op::DisablePromo(positive_id(rest)?),
            "pd" => {
                let mut parts = rest.split(':');
                let user = positive_id(parts.next()?)?;
                let percent: u32 = match parts.next()? {
                    "0" => 0,
                    p => u32::try_from(positive_id(p)?).ok().filter(|p| *p <= 99)?,
                };
                let until = match parts.next()? {
                    "0" => 0,
                    t => positive_id(t)?,
                };
                if parts.next().is_some() {
                    return None;
                }
                Op::Discount {
                    user,
                    percent,
                    until,
                }
            }
            "wp" => Op::WithdrawalPaid(positive_id(rest)?),
            "ur" => Op::RefundUnmatched(positive_id(rest)?),
            "us" => Op::SettleUnmatched(positive_id(rest)?),
            "fl" => {
                let (n, on) = rest.rsplit_once(':')?;
                Op::Flag {
                    name: name(n)?,
                    on: bit(on)?,
                }
            }
            "ne" => {
                let (n, on) = rest.rsplit_once(':')?;
                Op::NodeEnabled {
                    node: name(n)?,
                    on: bit(on)?,
                }
            }
            "nr" => Op::Reconcile(name(rest)?),
            "bs" => {
                let (id, audience, paid) = broadcast_choice(rest)?;
                Op::BroadcastSend { id, audience, paid }
            }
            "bx" => Op::BroadcastCancel(positive_id(rest)?),
            "dr" if rest.is_empty() => Op::Draft,
            _ => return None,
        })
    }
}

impl AdminAction {
    fn encode(&self) -> String {
        match self {
            AdminAction::Home => "a".into(),
            AdminAction::Stats => "a:st".into(),
            AdminAction::Find => "a:find".into(),
            AdminAction::User(u) => format!("a:u:{u}"),
            AdminAction::AskDays(u) => format!("a:ask:gr:{u}"),
            AdminAction::AskBalance(u) => format!("a:ask:bal:{u}"),
            AdminAction::AskBanner(l) => format!("a:ask:ban:{}", l.code()),
            AdminAction::Promos => "a:pr".into(),
            AdminAction::PromoPage(page) => format!("a:pr:p:{page}"),
            AdminAction::AskPromo => "a:ask:pr".into(),
            AdminAction::AskDiscount(u) => format!("a:ask:pd:{u}"),
            AdminAction::Flags => "a:fl".into(),
            AdminAction::Nodes => "a:nd".into(),
            AdminAction::DeadLetters => "a:dl".into(),
            AdminAction::Withdrawals => "a:wd".into(),
            AdminAction::Withdrawal(w) => format!("a:wd:{w}"),
            AdminAction::AskReject(w) => format!("a:ask:rj:{w}"),
            AdminAction::Audit(AuditView::All) => "a:au".into(),
            AdminAction::Audit(AuditView::By(a)) => format!("a:au:by:{a}"),
            AdminAction::Audit(AuditView::About(u)) => format!("a:au:u:{u}"),
            AdminAction::Payment(p) => format!("a:pay:{p}"),
            AdminAction::Review => "a:rv".into(),
            AdminAction::Unmatched(id) => format!("a:um:{id}"),
            AdminAction::Confirm(op) => format!("a:c:{}", op.encode()),
            AdminAction::Do(op, screen) => format!("a:d:{}:{screen}", op.encode()),
            AdminAction::Cancel => "a:x".into(),
            AdminAction::Broadcasts => "a:bc".into(),
            AdminAction::BroadcastNew => "a:bc:new".into(),
            AdminAction::BroadcastEdit(id) => format!("a:bc:ed:{id}"),
            AdminAction::BroadcastDraft { id, audience, paid } => format!(
                "a:bc:dr:{id}:{}:{}",
                audience.code(),
                if *paid { 1 } else { 0 }
            ),
        }
    }

    fn parse(data: &str) -> Option<AdminAction> {
        Some(match data {
            "a" => AdminAction::Home,
            "a:st" => AdminAction::Stats,
            "a:find" => AdminAction::Find,
            "a:fl" => AdminAction::Flags,
            "a:nd" => AdminAction::Nodes,
            "a:dl" => AdminAction::DeadLetters,
            "a:pr" => AdminAction::Promos,
            "a:ask:pr" => AdminAction::AskPromo,
            "a:wd" => AdminAction::Withdrawals,
            "a:au" => AdminAction::Audit(AuditView::All),
            "a:x" => AdminAction::Cancel,
            "a:bc" => AdminAction::Broadcasts,
            "a:bc:new" => AdminAction::BroadcastNew,
            "a:rv" => AdminAction::Review,
            _ => {
                let rest = data.strip_prefix("a:")?;
                if let Some(page) = rest.strip_prefix("pr:p:") {
                    AdminAction::PromoPage(positive_id(page)?)
                } else if let Some(u) = rest.strip_prefix("u:") {
                    AdminAction::User(positive_id(u)?)
                } else if let Some(u) = rest.strip_prefix("ask:gr:") {
                    AdminAction::AskDays(positive_id(u)?)
                } else if let Some(u) = rest.strip_prefix("ask:bal:") {
                    AdminAction::AskBalance(positive_id(u)?)
                } else if let Some(u) = rest.strip_prefix("ask:pd:") {
                    AdminAction::AskDiscount(positive_id(u)?)
                } else if let Some(w) = rest.strip_prefix("ask:rj:") {
                    AdminAction::AskReject(positive_id(w)?)
                } else if let Some(w) = rest.strip_prefix("wd:") {
                    AdminAction::Withdrawal(positive_id(w)?)
                } else if let Some(l) = rest.strip_prefix("ask:ban:") {
                    AdminAction::AskBanner(Language::parse(l)?)
                } else if let Some(a) = rest.strip_prefix("au:by:") {
                    AdminAction::Audit(AuditView::By(positive_id(a)?))
                } else if let Some(u) = rest.strip_prefix("au:u:") {
                    AdminAction::Audit(AuditView::About(positive_id(u)?))
                } else if let Some(id) = rest.strip_prefix("bc:ed:") {
                    AdminAction::BroadcastEdit(positive_id(id)?)
                } else if let Some(choice) = rest.strip_prefix("bc:dr:") {
                    let (id, audience, paid) = broadcast_choice(choice)?;
                    AdminAction::BroadcastDraft { id, audience, paid }
                } else if let Some(p) = rest.strip_prefix("pay:") {
                    AdminAction::Payment(positive_id(p)?)
                } else if let Some(id) = rest.strip_prefix("um:") {
                    AdminAction::Unmatched(positive_id(id)?)
                } else if let Some(op) = rest.strip_prefix("c:") {
                    AdminAction::Confirm(Op::parse(op)?)
                } else if let Some(d) = rest.strip_prefix("d:") {
                    let (op, screen) = d.rsplit_once(':')?;
                    AdminAction::Do(Op::parse(op)?, positive_id(screen)?)
                } else {
                    return None;
                }
            }
        })
    }
}

/// `<id>:<audience>:<0|1>`: a draft with its audience and whether it is paid.
fn broadcast_choice(s: &str) -> Option<(i64, Audience, bool)> {
    let mut parts = s.split(':');
    let id = positive_id(parts.next()?)?;
    let audience = Audience::parse(parts.next()?)?;
    let paid = match parts.next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((id, audience, paid))
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
            Action::PayCrypto(id) => format!("pay:crypto:{id}"),
            Action::PayYooKassa(id) => format!("pay:yk:{id}"),
            Action::CheckPaid(p) => format!("paid:{p}"),
            Action::TopUpFiat(m) => format!("topup:fiat:{m}"),
            Action::TopUpYooKassa(m) => format!("topup:yk:{m}"),
            Action::TopUpCrypto(m) => format!("topup:crypto:{m}"),
            Action::PayBalance { plan, screen } => format!("pay:bal:{plan}:{screen}"),
            Action::Access => "access".into(),
            Action::Connect => "connect".into(),
            Action::Reissue => "reissue".into(),
            Action::AutoRenew(on) => format!("autorenew:{}", if *on { "on" } else { "off" }),
            Action::Balance => "balance".into(),
            Action::TopUpStars(i) => format!("topup:stars:{i}"),
            Action::Promo => "promo".into(),
            Action::Invite => "invite".into(),
            Action::Withdraw => "wd".into(),
            Action::WithdrawConfirm(screen) => format!("wd:ok:{screen}"),
            Action::WithdrawCancel => "wd:x".into(),
            Action::Receipt => "rc".into(),
            Action::ReceiptChange => "rc:set".into(),
            Action::ReceiptRemove => "rc:rm".into(),
            Action::Help => "help".into(),
            Action::Support => "support".into(),
            Action::Languages => "lang".into(),
            Action::SetLanguage(l) => format!("lang:{}", l.code()),
            Action::ApplyPayment(id) => format!("adm:pay:apply:{id}"),
            Action::Admin(a) => a.encode(),
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
            "promo" => Action::Promo,
            "invite" => Action::Invite,
            "wd" => Action::Withdraw,
            "wd:x" => Action::WithdrawCancel,
            "rc" => Action::Receipt,
            "rc:set" => Action::ReceiptChange,
            "rc:rm" => Action::ReceiptRemove,
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
                } else if let Some(id) = data.strip_prefix("pay:crypto:") {
                    Action::PayCrypto(plan(id)?)
                } else if let Some(id) = data.strip_prefix("pay:yk:") {
                    Action::PayYooKassa(plan(id)?)
                } else if let Some(p) = data.strip_prefix("paid:") {
                    Action::CheckPaid(positive_id(p)?)
                } else if let Some(m) = data.strip_prefix("topup:fiat:") {
                    Action::TopUpFiat(positive_id(m)?)
                } else if let Some(m) = data.strip_prefix("topup:yk:") {
                    Action::TopUpYooKassa(positive_id(m)?)
                } else if let Some(m) = data.strip_prefix("topup:crypto:") {
                    Action::TopUpCrypto(positive_id(m)?)
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
                } else if let Some(screen) = data.strip_prefix("wd:ok:") {
                    Action::WithdrawConfirm(positive_id(screen)?)
                } else if let Some(id) = data.strip_prefix("adm:pay:apply:") {
                    Action::ApplyPayment(positive_id(id)?)
                } else if let Some(id) = data.strip_prefix("adm:pay:refund:") {
                    // Buttons sent before refunds were confirmed: they now ask first.
                    Action::Admin(AdminAction::Confirm(Op::Refund(positive_id(id)?)))
                } else if data == "a" || data.starts_with("a:") {
                    Action::Admin(AdminAction::parse(data)?)
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
            Action::Promo,
            Action::Admin(AdminAction::Promos),
            Action::Admin(AdminAction::AskPromo),
            Action::Admin(AdminAction::AskDiscount(5)),
            Action::Admin(AdminAction::Confirm(Op::DisablePromo(3))),
            Action::Admin(AdminAction::Do(
                Op::Discount {
                    user: 999_999_999_999,
                    percent: 99,
                    until: 9_999_999_999_999,
                },
                999_999_999_999_999,
            )),
            Action::Admin(AdminAction::Confirm(Op::Discount {
                user: 7,
                percent: 0,
                until: 0,
            })),
            Action::Invite,
            Action::Withdraw,
            Action::WithdrawConfirm(999_999_999_999_999_999),
            Action::WithdrawCancel,
            Action::Receipt,
            Action::ReceiptChange,
            Action::ReceiptRemove,
            Action::Help,
            Action::Support,
            Action::Languages,
            Action::SetLanguage(Language::En),
            Action::SetLanguage(Language::Ru),
            Action::ApplyPayment(1),
            Action::Admin(AdminAction::Home),
            Action::Admin(AdminAction::Stats),
            Action::Admin(AdminAction::Find),
            Action::Admin(AdminAction::User(999_999_999_999_999_999)),
            Action::Admin(AdminAction::AskDays(1)),
            Action::Admin(AdminAction::AskBalance(2)),
            Action::Admin(AdminAction::AskBanner(Language::Ru)),
            Action::Admin(AdminAction::Flags),
            Action::Admin(AdminAction::Nodes),
            Action::Admin(AdminAction::DeadLetters),
            Action::Admin(AdminAction::Withdrawals),
            Action::Admin(AdminAction::Withdrawal(999_999_999_999_999_999)),
            Action::Admin(AdminAction::AskReject(3)),
            Action::Admin(AdminAction::Do(
                Op::WithdrawalPaid(999_999_999_999_999_999),
                999_999_999_999_999_999,
            )),
            Action::Admin(AdminAction::Audit(AuditView::All)),
            Action::Admin(AdminAction::Audit(AuditView::By(7))),
            Action::Admin(AdminAction::Audit(AuditView::About(8))),
            Action::Admin(AdminAction::Payment(9)),
            Action::Admin(AdminAction::Review),
            Action::Admin(AdminAction::PromoPage(999_999_999_999_999_999)),
            Action::Admin(AdminAction::Unmatched(999_999_999_999_999_999)),
            Action::Admin(AdminAction::Do(
                Op::RefundUnmatched(999_999_999_999_999_999),
                999_999_999_999_999_999,
            )),
            Action::Admin(AdminAction::Do(
                Op::SettleUnmatched(999_999_999_999_999_999),
                999_999_999_999_999_999,
            )),
            Action::Admin(AdminAction::Cancel),
            Action::Admin(AdminAction::Confirm(Op::Revoke(5))),
            Action::Admin(AdminAction::Do(
                Op::Grant {
                    user: 999_999_999_999_999_999,
                    days: 3650,
                    tell: true,
                },
                999_999_999_999_999_999,
            )),
            Action::Admin(AdminAction::Do(Op::Reissue(3), 4)),
            Action::Admin(AdminAction::Do(Op::Ban(3), 4)),
            Action::Admin(AdminAction::Do(Op::Unban(3), 4)),
            Action::Admin(AdminAction::Do(Op::Refund(3), 4)),
            Action::Admin(AdminAction::Do(
                Op::Flag {
                    name: "auto_renewal".into(),
                    on: false,
                },
                999_999_999_999_999_999,
            )),
            Action::Admin(AdminAction::Do(
                Op::NodeEnabled {
                    node: "a".repeat(32),
                    on: true,
                },
                999_999_999_999_999_999,
            )),
            Action::Admin(AdminAction::Do(Op::Reconcile("de-1".into()), 4)),
            Action::Admin(AdminAction::Do(Op::Redrive(3), 4)),
            Action::Admin(AdminAction::Do(Op::Discard(3), 4)),
            Action::Admin(AdminAction::Do(Op::Draft, 4)),
            Action::Admin(AdminAction::Broadcasts),
            Action::Admin(AdminAction::BroadcastNew),
            Action::Admin(AdminAction::BroadcastEdit(7)),
            Action::Admin(AdminAction::BroadcastDraft {
                id: 999_999_999_999_999_999,
                audience: Audience::TrialUnpaid,
                paid: true,
            }),
            Action::Admin(AdminAction::Confirm(Op::BroadcastSend {
                id: 3,
                audience: Audience::Language(Language::Ru),
                paid: false,
            })),
            Action::Admin(AdminAction::Do(
                Op::BroadcastSend {
                    id: 999_999_999_999_999_999,
                    audience: Audience::NoTrial,
                    paid: true,
                },
                999_999_999_999_999_999,
            )),
            Action::Admin(AdminAction::Do(
                Op::BroadcastCancel(999_999_999_999_999_999),
                999_999_999_999_999_999,
            )),
            Action::PayCrypto("a".repeat(32)),
            Action::PayYooKassa("m1".into()),
            Action::CheckPaid(999_999_999_999_999_999),
            Action::TopUpFiat(999_999_999_999_999_999),
            Action::TopUpCrypto(50_050),
            Action::TopUpYooKassa(999_999_999_999_999_999),
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
    fn a_refund_button_sent_before_refunds_were_confirmed_now_asks_first() {
        assert_eq!(
            Action::parse("adm:pay:refund:5"),
            Some(Action::Admin(AdminAction::Confirm(Op::Refund(5))))
        );
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
            "a:",
            "a:u:",
            "a:u:0",
            "a:u:x",
            "a:ask:ban:de",
            "a:c:gr:1:3651:1",
            "a:c:gr:1:30:2",
            "a:c:gr:1:30",
            "a:c:gr:1:30:1:9",
            "a:d:rv:5",
            "a:d:rv:5:0",
            "a:d:dr:x:5",
            "a:c:fl:Payments:1",
            "a:c:zz:1",
            "a:c:pd:1:100:0",
            "a:c:pd:1:05:0",
            "a:c:pd:1:5",
            "a:c:pr:0",
            "a:bc:dr:1:everyone:0",
            "a:bc:dr:1:all:2",
            "a:bc:dr:0:all:1",
            "a:bc:dr:1:lang-de:1",
            "a:bc:dr:1:all:1:9",
            "a:c:bs:1:all",
            "a:c:bx:x",
            "a:bc:ed:",
            "a:au:by:",
            "wd:ok:",
            "wd:ok:0",
            "wd:ok:x",
            "rc:",
            "rc:set:1",
            "rc:edit",
            "a:wd:",
            "a:wd:0",
            "a:ask:rj:",
            "a:c:wp:",
            "a:c:wp:01",
            "admin",
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
