//! The console's broadcasts: compose, choose the audience, preview, send, follow, cancel, and
//! the history.
//!
//! The text is typed as an answer (checked as Telegram's HTML before it is stored), kept as
//! a draft row; the audience and paid-or-not ride in the buttons until Send. The confirmation
//! sends the admin the exact message first. Send and Cancel are confirmed operations like the
//! others: audited in their transaction, a second press finds them done. Sending itself is
//! the feeder's (`broadcast::feeder`), which edits the progress message queued here.

use super::{Button, Screen, View, admin, back_home, confirmation};
use crate::action::{AdminAction, Op};
use crate::admin::{Actor, AuditAction, AuditEntry};
use crate::bot::screens;
use crate::bot::{Bot, Session, retry};
use crate::broadcast::{self, Broadcast, Content, Status, feeder};
use crate::i18n::Arg;
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::users::{self, Audience};

/// Broadcasts listed on the history screen.
const HISTORY_ROWS: i64 = 10;

impl Bot {
    /// Past and running broadcasts with their audience, counts and sender; New; Cancel for a
    /// running one.
    pub(super) async fn broadcasts_screen(&self, v: &View<'_>) -> Result<Screen, HandlerError> {
        let rows = broadcast::history(&self.s.db, HISTORY_ROWS)
            .await
            .map_err(retry)?;
        let mut lines = Vec::new();
        let mut buttons = vec![vec![
            v.button("bc-btn-new", admin(AdminAction::BroadcastNew)),
        ]];
        for b in &rows {
            lines.push(v.tf(
                "bc-history-line",
                &[
                    ("id", b.id.into()),
                    (
                        "at",
                        Arg::Text(v.date(b.started_at.unwrap_or(b.created_at))),
                    ),
                    ("state", Arg::Text(v.t(state_key(b.status)))),
                    ("audience", Arg::Text(audience_name(v, b.audience))),
                    ("sent", b.sent.into()),
                    ("failed", b.failed.into()),
                    ("blocked", b.blocked.into()),
                    ("recipients", b.recipients.into()),
                    ("admin", b.created_by.into()),
                ],
            ));
            if b.status == Status::Sending {
                buttons.push(vec![Button::Action {
                    text: v.tf("bc-btn-cancel-id", &[("id", b.id.into())]),
                    action: admin(AdminAction::Confirm(Op::BroadcastCancel(b.id))),
                }]);
            }
        }
        buttons.push(back_home(v));
        let body = if lines.is_empty() {
            v.t("bc-history-empty")
        } else {
            lines.join("\n")
        };
        Ok(Screen::new(
            v.tf("bc-history", &[("lines", Arg::Html(body))]),
            buttons,
        ))
    }

    /// Draft `id` with `audience` and `paid` chosen: its recipients now, the paid cost, and
    /// the buttons to change them, preview and send, edit, or discard.
    pub(super) async fn draft_screen(
        &self,
        v: &View<'_>,
        id: i64,
        audience: Audience,
        paid: bool,
    ) -> Result<Screen, HandlerError> {
        let Some(b) = self.draft(id).await? else {
            return Ok(self.stale_broadcast(v));
        };
        let count = users::audience_count(&self.s.db, audience, self.now())
            .await
            .map_err(retry)?;
        let choose = |a: Audience| {
            let name = audience_name(v, a);
            Button::Action {
                text: if a == audience {
                    format!("✅ {name}")
                } else {
                    name
                },
                action: admin(AdminAction::BroadcastDraft {
                    id,
                    audience: a,
                    paid,
                }),
            }
        };
        let mut choices: Vec<Button> = Audience::FIXED.into_iter().map(choose).collect();
        choices.extend(
            self.s
                .config
                .catalog
                .bot
                .languages
                .iter()
                .map(|l| choose(Audience::Language(*l))),
        );
        let mut rows: Vec<Vec<Button>> = choices.chunks(2).map(<[Button]>::to_vec).collect();
        rows.push(vec![Button::Action {
            text: v.t(if paid {
                "bc-btn-paid-on"
            } else {
                "bc-btn-paid-off"
            }),
            action: admin(AdminAction::BroadcastDraft {
                id,
                audience,
                paid: !paid,
            }),
        }]);
        rows.push(vec![v.button(
            "bc-btn-preview",
            admin(AdminAction::Confirm(Op::BroadcastSend {
                id,
                audience,
                paid,
            })),
        )]);
        rows.push(vec![
            v.button("bc-btn-edit", admin(AdminAction::BroadcastEdit(id))),
            v.button(
                "bc-btn-discard",
                admin(AdminAction::Confirm(Op::BroadcastCancel(id))),
            ),
        ]);
        rows.push(vec![v.button("btn-back", admin(AdminAction::Broadcasts))]);
        let text = v.tf(
            "bc-draft",
            &[
                ("id", id.into()),
                ("text", Arg::Text(excerpt(&b.content.text))),
                ("buttons", b.content.buttons.len().into()),
                ("audience", Arg::Text(audience_name(v, audience))),
                ("count", count.into()),
                ("paid", Arg::Text(self.paid_line(v, paid, count))),
            ],
        );
        Ok(Screen::new(text, rows))
    }

    /// The confirmation of a send: the exact message goes to the admin first (in `tx`, this
    /// update's transaction), then Send / Edit / Cancel.
    pub(super) async fn send_confirmation(
        &self,
        se: &Session,
        update_id: i64,
        id: i64,
        audience: Audience,
        paid: bool,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let Some(b) = self.draft(id).await? else {
            return Ok((self.stale_broadcast(&v), self.begin().await?, false));
        };
        let count = users::audience_count(&self.s.db, audience, self.now())
            .await
            .map_err(retry)?;
        let mut preview =
            b.content
                .message(format!("bcast-preview:{id}:{update_id}"), se.chat_id, false);
        preview.priority = Priority::Transactional;
        let mut tx = self.begin().await?;
        outbox::enqueue(&mut tx, &preview, self.now())
            .await
            .map_err(retry)?;
        let op = Op::BroadcastSend { id, audience, paid };
        let text = v.tf(
            "bc-confirm-send",
            &[
                ("id", id.into()),
                ("audience", Arg::Text(audience_name(&v, audience))),
                ("count", count.into()),
                ("paid", Arg::Text(self.paid_line(&v, paid, count))),
            ],
        );
        let mut screen = confirmation(
            &v,
            text,
            op,
            update_id,
            AdminAction::BroadcastDraft { id, audience, paid },
        );
        screen.keyboard.insert(
            1,
            vec![v.button("bc-btn-edit", admin(AdminAction::BroadcastEdit(id)))],
        );
        Ok((screen, tx, false))
    }

    /// Send, confirmed: the draft starts (its audience counted now), audited, and the
    /// progress message is queued for the feeder to edit.
    pub(super) async fn start_broadcast(
        &self,
        se: &Session,
        id: i64,
        audience: Audience,
        paid: bool,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let now = self.now();
        let count = users::audience_count(&self.s.db, audience, now)
            .await
            .map_err(retry)?;
        let mut tx = self.begin().await?;
        if !broadcast::start(&mut tx, id, audience, paid, count, now)
            .await
            .map_err(retry)?
        {
            drop(tx);
            let screen = self
                .broadcasts_screen(&v)
                .await?
                .with_note(v.t("adm-already-done"));
            return Ok((screen, self.begin().await?, false));
        }
        let entry = AuditEntry::new(Actor::Admin(se.user.id), AuditAction::BroadcastStart)
            .subject(format!("broadcast {id}"))
            .change(
                "draft",
                format!(
                    "sending to {} ({count}){}",
                    audience.code(),
                    if paid { ", paid" } else { "" }
                ),
            )
            .request(request);
        let (note, mut tx) = self.recorded(&v, tx, &entry, "bc-started").await?;
        let started = broadcast::get(&self.s.db, id).await.map_err(retry)?;
        if let Some(b) = started {
            let b = Broadcast {
                status: Status::Sending,
                audience,
                paid,
                recipients: count,
                ..b
            };
            let text = feeder::progress_text(
                &self.texts,
                se.lang,
                &b,
                outbox::KeyedCounts::default(),
                0.0,
                false,
            );
            let msg = OutboxMessage::text(
                broadcast::progress_key(id, 0),
                se.chat_id,
                Priority::Transactional,
                text,
                Some(feeder::cancel_markup(&self.texts, se.lang, id)),
            );
            outbox::enqueue(&mut tx, &msg, now).await.map_err(retry)?;
        }
        tx.commit().await.map_err(retry)?;
        let screen = self.broadcasts_screen(&v).await?.with_note(note);
        Ok((screen, self.begin().await?, false))
    }

    /// Cancel (or discard a draft), confirmed: nothing unsent goes out after the commit.
    pub(super) async fn cancel_broadcast(
        &self,
        se: &Session,
        id: i64,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let now = self.now();
        // What it was (a draft discarded, or a broadcast stopped), for the audit row.
        let before = broadcast::get(&self.s.db, id)
            .await
            .map_err(retry)?
            .map_or("unknown", |b| b.status.name());
        let mut tx = self.begin().await?;
        let Some(dropped) = broadcast::cancel(&mut tx, id, now).await.map_err(retry)? else {
            drop(tx);
            let screen = self
                .broadcasts_screen(&v)
                .await?
                .with_note(v.t("bc-not-running"));
            return Ok((screen, self.begin().await?, false));
        };
        let entry = AuditEntry::new(Actor::Admin(se.user.id), AuditAction::BroadcastCancel)
            .subject(format!("broadcast {id}"))
            .change(before, format!("cancelled ({dropped} not sent)"))
            .request(request);
        let (note, mut tx) = self.recorded(&v, tx, &entry, "bc-cancelled").await?;
        // The progress message shows the end (the feeder no longer edits it).
        let shown = outbox::get_by_key(&self.s.db, &broadcast::progress_key(id, 0))
            .await
            .map_err(retry)?
            .and_then(|r| r.message_id);
        if let (Some(message_id), Some(b)) =
            (shown, broadcast::get(&self.s.db, id).await.map_err(retry)?)
        {
            let counts = outbox::count_keyed(&self.s.db, &broadcast::key_prefix(id))
                .await
                .map_err(retry)?;
            let b = Broadcast {
                status: Status::Cancelled,
                ..b
            };
            let text = feeder::progress_text(&self.texts, se.lang, &b, counts, 0.0, false);
            let edit = OutboxMessage {
                dedupe_key: format!("bcast-progress:{id}:cancel"),
                chat_id: se.chat_id,
                priority: Priority::Transactional,
                method: "editMessageText".into(),
                params: serde_json::json!({
                    "chat_id": se.chat_id,
                    "message_id": message_id,
                    "text": text,
                    "parse_mode": "HTML",
                }),
            };
            outbox::enqueue(&mut tx, &edit, now).await.map_err(retry)?;
        }
        tx.commit().await.map_err(retry)?;
        let screen = self.broadcasts_screen(&v).await?.with_note(note);
        Ok((screen, self.begin().await?, false))
    }

    /// The confirmation text of a cancel (or a draft's discard).
    pub(super) fn cancel_question(&self, v: &View<'_>, id: i64) -> String {
        v.tf("bc-confirm-cancel", &[("id", id.into())])
    }

    /// Broadcast `id` while it is a draft.
    async fn draft(&self, id: i64) -> Result<Option<Broadcast>, HandlerError> {
        Ok(broadcast::get(&self.s.db, id)
            .await
            .map_err(retry)?
            .filter(|b| b.status == Status::Draft))
    }

    fn stale_broadcast(&self, v: &View<'_>) -> Screen {
        screens::notice(v, v.t("bc-not-draft"), admin(AdminAction::Broadcasts))
    }

    fn paid_line(&self, v: &View<'_>, paid: bool, count: i64) -> String {
        if paid {
            v.tf(
                "bc-paid-cost",
                &[("stars", broadcast::paid_cost_stars(count).into())],
            )
        } else {
            v.t("bc-free")
        }
    }
}

fn state_key(s: Status) -> &'static str {
    match s {
        Status::Draft => "bc-state-draft",
        Status::Sending => "bc-state-sending",
        Status::Cancelled => "bc-state-cancelled",
        Status::Done => "bc-state-done",
    }
}

pub(super) fn audience_name(v: &View<'_>, a: Audience) -> String {
    match a {
        Audience::All => v.t("bc-aud-all"),
        Audience::Active => v.t("bc-aud-active"),
        Audience::Expired => v.t("bc-aud-expired"),
        Audience::TrialUnpaid => v.t("bc-aud-trial"),
        Audience::NoTrial => v.t("bc-aud-notrial"),
        Audience::Language(l) => v.tf("bc-aud-lang", &[("language", Arg::Text(l.code().into()))]),
    }
}

/// The start of a draft's text as typed (markup shown, not applied), for its screen.
fn excerpt(text: &str) -> String {
    const SHOWN: usize = 300;
    if text.chars().count() <= SHOWN {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(SHOWN).collect();
    cut.push('…');
    cut
}

/// The content typed for a broadcast, or the note saying what is wrong with it.
pub(super) fn parse_content(v: &View<'_>, typed: &str) -> Result<Content, String> {
    Content::parse(typed).map_err(|e| v.tf("bc-invalid", &[("error", Arg::Text(e.to_string()))]))
}
