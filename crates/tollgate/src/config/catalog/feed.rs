//! `[feed]`: the subscription feed client apps fetch — the title they show and how often
//! they should refresh it.

use serde::{Deserialize, Serialize};

use super::check::Check;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeed {
    title: String,
    update_interval_hours: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedSettings {
    pub title: String,
    pub update_interval_hours: u32,
}

pub(super) fn parse_feed(c: &mut Check<'_>, raw: RawFeed) -> FeedSettings {
    if raw.title.trim().is_empty() || raw.title.chars().count() > 25 {
        c.fail(
            "feed.title",
            format!("{:?} must have 1-25 characters", raw.title),
            "client apps show at most 25 characters; shorten it",
        );
    }
    FeedSettings {
        title: raw.title,
        update_interval_hours: c
            .int_in(
                "feed.update_interval_hours",
                raw.update_interval_hours,
                1,
                168,
            )
            .unwrap_or(12),
    }
}
