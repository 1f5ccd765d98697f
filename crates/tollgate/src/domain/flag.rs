//! The runtime flags' names, defaults and the words that switch them, with no storage: the
//! configuration (`TOLLGATE_FLAG_<NAME>`, read before any database) and the command line
//! parse them the same way as `flags` stores them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// New invoices and pre-checkout approvals (captured payments are always finalized).
    Payments,
    /// Free trials for new users.
    Trials,
    /// Auto-renewal from balance.
    AutoRenewal,
    /// Admin broadcasts.
    Broadcasts,
    /// Show the maintenance banner to users.
    Maintenance,
}

impl Flag {
    pub const ALL: [Flag; 5] = [
        Flag::Payments,
        Flag::Trials,
        Flag::AutoRenewal,
        Flag::Broadcasts,
        Flag::Maintenance,
    ];

    /// The name used in the settings table, logs, the command line and the admin menu.
    pub const fn name(self) -> &'static str {
        match self {
            Flag::Payments => "payments",
            Flag::Trials => "trials",
            Flag::AutoRenewal => "auto_renewal",
            Flag::Broadcasts => "broadcasts",
            Flag::Maintenance => "maintenance",
        }
    }

    pub const fn default_value(self) -> bool {
        !matches!(self, Flag::Maintenance)
    }

    /// The flag named `name` exactly.
    pub fn parse(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The flag an operator means by `name`: any case, `-` for `_` (`AUTO_RENEWAL`,
    /// `auto-renewal`).
    pub fn lenient(name: &str) -> Option<Flag> {
        Flag::parse(&name.trim().to_ascii_lowercase().replace('-', "_"))
    }

    /// Every flag's name, for messages that list the valid ones.
    pub fn names() -> String {
        Flag::ALL.map(Flag::name).join(", ")
    }

    /// The environment variable that seeds it: `TOLLGATE_FLAG_AUTO_RENEWAL`.
    pub fn env_var(self) -> String {
        format!("{ENV_PREFIX}{}", self.name().to_ascii_uppercase())
    }
}

/// The prefix of the variables that seed flags on a fresh database.
pub const ENV_PREFIX: &str = "TOLLGATE_FLAG_";

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `on` or `off` (what operators write), as a value.
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{text:?} is not on or off")),
    }
}

/// The word for a value: `on` or `off`.
pub const fn switch_word(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_operators_spellings_are_understood() {
        for f in Flag::ALL {
            assert_eq!(Flag::parse(f.name()), Some(f));
            assert_eq!(Flag::lenient(&f.env_var()[ENV_PREFIX.len()..]), Some(f));
        }
        assert_eq!(Flag::lenient("Auto-Renewal"), Some(Flag::AutoRenewal));
        assert_eq!(Flag::lenient("payment"), None);
        assert_eq!(Flag::AutoRenewal.env_var(), "TOLLGATE_FLAG_AUTO_RENEWAL");
        assert_eq!(parse_switch("ON"), Ok(true));
        assert_eq!(parse_switch("off"), Ok(false));
        assert!(parse_switch("true").is_err());
    }
}
