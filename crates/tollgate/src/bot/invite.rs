//! Invite friends (docs/product.md §3.8, `/invite` and the menu's button): the personal
//! `t.me/<bot>?start=ref_<code>` link with a Share button, how many were invited and how many
//! pay, the level and what the next one takes, the total earned and the latest rewards.
//!
//! The counts and the level come from `billing::referrals`, the same statement the reward of
//! the next payment reads, so the screen never promises a percentage the reward does not pay.
//! The bot's username (for the link) is asked of Telegram once (`getMe`) and kept.

use serde::Deserialize;
use url::Url;

use super::screens::{Button, Screen, View};
use super::{Bot, Session, retry};
use crate::action::Action;
use crate::billing::referrals::{self, Summary};
use crate::domain::money::Money;
use crate::i18n::Arg;
use crate::telegram::dispatcher::HandlerError;

/// Latest rewards on the screen.
const RECENT_REWARDS: i64 = 5;

#[derive(Deserialize)]
struct Me {
    username: String,
}

impl Bot {
    /// The bot's @username, from `getMe` on first use.
    async fn username(&self) -> Result<&str, HandlerError> {
        self.username
            .get_or_try_init(|| async {
                let me: Me = self
                    .s
                    .api
                    .call("getMe", &serde_json::json!({}))
                    .await
                    .map_err(retry)?;
                Ok::<_, HandlerError>(me.username)
            })
            .await
            .map(String::as_str)
    }

    pub(super) async fn invite_screen(&self, se: &Session) -> Result<Screen, HandlerError> {
        let summary = referrals::summary(
            &self.s.db,
            &self.s.config.catalog.referral,
            se.user.id,
            RECENT_REWARDS,
        )
        .await
        .map_err(super::payments::billing_err)?;
        let link = referral_link(self.username().await?, &se.user.referral_code);
        Ok(invite(&self.view(se.lang), &link, &summary))
    }
}

/// The user's referral link.
pub fn referral_link(bot_username: &str, code: &str) -> String {
    format!("https://t.me/{bot_username}?start=ref_{code}")
}

/// Telegram's share dialog for `link` with `text`.
fn share_url(link: &str, text: &str) -> String {
    match Url::parse_with_params("https://t.me/share/url", &[("url", link), ("text", text)]) {
        Ok(u) => u.to_string(),
        // Not reached: the base is a valid URL and parameters are encoded.
        Err(_) => "https://t.me/share/url".to_owned(),
    }
}

/// The Invite friends screen (a pure function of what was read, like every screen).
pub fn invite(v: &View<'_>, link: &str, s: &Summary) -> Screen {
    let base = v.catalog.bot.base_currency;
    let next = match s.level.next {
        Some(n) => v.tf(
            "invite-next",
            &[
                ("more", (i64::from(n.paying_referrals) - s.paying).into()),
                ("percent", n.percent.into()),
            ],
        ),
        None => v.t("invite-top"),
    };
    let mut text = v.tf(
        "invite-text",
        &[
            ("link", Arg::Text(link.to_owned())),
            ("invited", s.invited.into()),
            ("paying", s.paying.into()),
            ("percent", s.level.percent.into()),
            ("next", Arg::Html(next)),
            ("earned", Arg::Text(v.money(Money::new(s.earned, base)))),
        ],
    );
    if !s.recent.is_empty() {
        text.push_str("\n\n");
        text.push_str(&v.t("invite-recent"));
        for e in &s.recent {
            text.push_str(&format!(
                "\n{} · +{}",
                v.date(e.created_at),
                v.money(Money::new(e.delta, base))
            ));
        }
    }
    let share = share_url(
        link,
        &v.tf(
            "invite-share-text",
            &[("bot", v.catalog.bot.name.as_str().into())],
        ),
    );
    Screen::new(
        text,
        vec![
            vec![Button::Url {
                text: v.t("btn-share"),
                url: share,
            }],
            vec![v.button("btn-balance", Action::Balance)],
            v.back_row(Action::Menu),
        ],
    )
}
