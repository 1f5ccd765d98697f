//! `[referral]`: the reward levels — from how many paying referrals a referrer earns which
//! percentage of their purchases.

use serde::{Deserialize, Serialize};

use super::check::Check;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReferral {
    levels: Vec<RawReferralLevel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReferralLevel {
    paying_referrals: i64,
    percent: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReferralLevel {
    pub paying_referrals: u32,
    pub percent: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReferralSettings {
    /// Sorted by `paying_referrals`, the first at 0.
    pub levels: Vec<ReferralLevel>,
}

/// Converts `[referral]`; levels must start at 0 and increase.
pub(super) fn parse_referral(c: &mut Check<'_>, raw: &RawReferral) -> ReferralSettings {
    let mut levels: Vec<ReferralLevel> = Vec::new();
    for (i, l) in raw.levels.iter().enumerate() {
        let key = format!("referral.levels[{i}]");
        let paying = c.int_in(
            &format!("{key}.paying_referrals"),
            l.paying_referrals,
            0,
            1_000_000,
        );
        let percent = c.int_in(&format!("{key}.percent"), l.percent, 0, 100);
        if let (Some(paying_referrals), Some(percent)) = (paying, percent) {
            if let Some(prev) = levels.last() {
                if paying_referrals <= prev.paying_referrals {
                    c.fail(
                        &format!("{key}.paying_referrals"),
                        format!("{paying_referrals} does not increase over the previous level"),
                        "list levels in increasing order of paying_referrals",
                    );
                }
            } else if paying_referrals != 0 {
                c.fail(
                    &format!("{key}.paying_referrals"),
                    "the first level must start at 0",
                    "set paying_referrals = 0 on the first level",
                );
            }
            levels.push(ReferralLevel {
                paying_referrals,
                percent,
            });
        }
    }
    if raw.levels.is_empty() {
        c.fail(
            "referral.levels",
            "is empty",
            "add a level such as { paying_referrals = 0, percent = 10 } (percent 0 disables rewards)",
        );
    }
    ReferralSettings { levels }
}
