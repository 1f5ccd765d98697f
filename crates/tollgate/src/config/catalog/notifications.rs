//! `[notifications]`: when reminders go out before a subscription or a trial ends, when the
//! trial's onboarding message is sent, and whether users hear that their trial ended.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::Check;
use crate::config::duration::format_duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifications {
    reminders_before_expiry: Vec<String>,
    trial_onboarding_after_start: String,
    trial_reminders_before_end: Vec<String>,
    trial_ended_message: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationSettings {
    /// Sorted longest first.
    #[serde(serialize_with = "ser_durations")]
    pub reminders_before_expiry: Vec<Duration>,
    #[serde(serialize_with = "ser_duration")]
    pub trial_onboarding_after_start: Duration,
    #[serde(serialize_with = "ser_durations")]
    pub trial_reminders_before_end: Vec<Duration>,
    pub trial_ended_message: bool,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}
fn ser_durations<S: serde::Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(d.iter().map(|d| format_duration(*d)))
}

/// Converts `[notifications]`; every offset is at most a month, reminder lists longest first.
pub(super) fn parse_notifications(c: &mut Check<'_>, n: &RawNotifications) -> NotificationSettings {
    let month = Duration::from_secs(30 * 86_400);
    let mut reminders = Vec::new();
    for (i, t) in n.reminders_before_expiry.iter().enumerate() {
        if let Some(d) = c.duration(
            &format!("notifications.reminders_before_expiry[{i}]"),
            t,
            month,
        ) {
            if reminders.contains(&d) {
                c.fail(
                    &format!("notifications.reminders_before_expiry[{i}]"),
                    format!("{t:?} is listed twice"),
                    "list each offset once",
                );
            }
            reminders.push(d);
        }
    }
    reminders.sort_by(|a, b| b.cmp(a));
    let trial_onboarding_after_start = c
        .duration(
            "notifications.trial_onboarding_after_start",
            &n.trial_onboarding_after_start,
            month,
        )
        .unwrap_or(Duration::from_secs(1));
    let mut trial_reminders = Vec::new();
    for (i, t) in n.trial_reminders_before_end.iter().enumerate() {
        if let Some(d) = c.duration(
            &format!("notifications.trial_reminders_before_end[{i}]"),
            t,
            month,
        ) {
            trial_reminders.push(d);
        }
    }
    trial_reminders.sort_by(|a, b| b.cmp(a));
    trial_reminders.dedup();
    NotificationSettings {
        reminders_before_expiry: reminders,
        trial_onboarding_after_start,
        trial_reminders_before_end: trial_reminders,
        trial_ended_message: n.trial_ended_message,
    }
}
