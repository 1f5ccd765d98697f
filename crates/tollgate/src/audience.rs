//! Who a broadcast goes to: a closed set, stored and carried in buttons by its code.
//!
//! Low in the layers so the console's actions can name an audience; which users an audience
//! holds is the `users` module's query.

use crate::config::Language;

/// Who a broadcast goes to. Users who blocked the bot or are banned are never in an audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone.
    All,
    /// Users with a subscription running now.
    Active,
    /// Users whose subscription ended (expired or revoked).
    Expired,
    /// Users who took the trial and never had a paid subscription.
    TrialUnpaid,
    /// Users who never took the trial.
    NoTrial,
    /// Users whose language is this one.
    Language(Language),
}

impl Audience {
    /// The language an audience by language names (empty for the others).
    pub fn language_code(self) -> &'static str {
        match self {
            Audience::Language(l) => l.code(),
            _ => "",
        }
    }

    pub const FIXED: [Audience; 5] = [
        Audience::All,
        Audience::Active,
        Audience::Expired,
        Audience::TrialUnpaid,
        Audience::NoTrial,
    ];

    /// The stored and button form (no `:`, so it fits in callback data).
    pub fn code(self) -> String {
        match self {
            Audience::All => "all".into(),
            Audience::Active => "active".into(),
            Audience::Expired => "expired".into(),
            Audience::TrialUnpaid => "trial".into(),
            Audience::NoTrial => "notrial".into(),
            Audience::Language(l) => format!("lang-{}", l.code()),
        }
    }

    pub fn parse(code: &str) -> Option<Audience> {
        Some(match code {
            "all" => Audience::All,
            "active" => Audience::Active,
            "expired" => Audience::Expired,
            "trial" => Audience::TrialUnpaid,
            "notrial" => Audience::NoTrial,
            _ => Audience::Language(Language::parse(code.strip_prefix("lang-")?)?),
        })
    }
}
