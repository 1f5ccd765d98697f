//! Broadcasts: an admin's message to an audience of users (docs/product.md §5).
//!
//! The earlier system's broadcasts were slow, sent some people the same message twice after a
//! restart and held up replies. Here a broadcast is a row (this module owns `broadcasts`) and
//! each recipient one outbox row keyed `bcast:<broadcast>:<user>`, so however often a chunk is
//! queued — a restart, a kill -9, a second replica — a user gets it once. The [`feeder`] queues
//! recipients a chunk at a time, in user-id order from the cursor stored in the row, only as
//! the outbox drains: a restart continues where it stopped, replies are never stuck behind
//! thousands of queued rows, and a cancel (the row marked, its unsent messages deleted, in
//! one transaction) takes effect at once. What a broadcast says is checked when it is typed
//! ([`Content::parse`], Telegram's HTML subset in [`html`]), before anything is sent.

pub mod feeder;
pub mod html;

use serde_json::{Value, json};

use crate::store::{Db, Tx};
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::Timestamp;
use crate::users::Audience;
use crate::{on_db, on_tx};

/// Most URL buttons under a broadcast.
pub const MAX_BUTTONS: usize = 8;
/// Longest button label (Telegram shows about this much).
pub const MAX_LABEL_CHARS: usize = 64;
/// Telegram's fee for a paid broadcast message, in tenths of a Star (0.1 Star).
pub const PAID_TENTHS_OF_STAR_PER_MESSAGE: i64 = 1;

/// What a broadcast says: its HTML text (a photo's caption when it has one), URL buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub text: String,
    /// An https URL of a photo Telegram fetches (sent with the text as its caption).
    pub photo: Option<String>,
    /// `(label, https URL)`, one button per row.
    pub buttons: Vec<(String, String)>,
}

/// Why typed content is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentError {
    Html(html::HtmlError),
    /// A button line is not `label | https://…`.
    Button {
        line: usize,
        reason: &'static str,
    },
    TooManyButtons,
}

impl std::fmt::Display for ContentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentError::Html(e) => e.fmt(f),
            ContentError::Button { line, reason } => write!(f, "button line {line}: {reason}"),
            ContentError::TooManyButtons => write!(f, "at most {MAX_BUTTONS} buttons"),
        }
    }
}

/// The line that separates the text from its buttons.
const BUTTONS_AFTER: &str = "---";
/// A line after [`BUTTONS_AFTER`] that names the photo.
const PHOTO_LINE: &str = "photo:";

impl Content {
    /// The admin's message: the text (Telegram HTML), then optionally a line `---` and one
    /// button per line, `label | https://…`, and a line `photo: https://…` for a photo (the
    /// text is then its caption).
    pub fn parse(typed: &str) -> Result<Content, ContentError> {
        let typed = typed.trim();
        let (text, buttons) = match typed.lines().position(|l| l.trim() == BUTTONS_AFTER) {
            Some(at) => {
                let lines: Vec<&str> = typed.lines().collect();
                (lines[..at].join("\n"), lines[at + 1..].to_vec())
            }
            None => (typed.to_owned(), Vec::new()),
        };
        let mut parsed = Vec::new();
        let mut photo = None;
        for (n, line) in buttons.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let line_no = n + 1;
            let bad = |reason| ContentError::Button {
                line: line_no,
                reason,
            };
            if let Some(url) = line.trim().strip_prefix(PHOTO_LINE) {
                let url = url::Url::parse(url.trim()).map_err(|_| bad("the photo is not a URL"))?;
                if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("the photo must be https:// with a host"));
                }
                photo = Some(url.to_string());
                continue;
            }
            let (label, url) = line
                .rsplit_once('|')
                .ok_or(bad("expected `label | https://…`"))?;
            let (label, url) = (label.trim(), url.trim());
            if label.is_empty() {
                return Err(bad("the label is empty"));
            }
            if label.chars().count() > MAX_LABEL_CHARS {
                return Err(bad("the label is longer than 64 characters"));
            }
            let parsed_url = url::Url::parse(url).map_err(|_| bad("the link is not a URL"))?;
            if parsed_url.scheme() != "https" || parsed_url.host_str().is_none_or(str::is_empty) {
                return Err(bad("the link must be https:// with a host"));
            }
            parsed.push((label.to_owned(), parsed_url.to_string()));
        }
        if parsed.len() > MAX_BUTTONS {
            return Err(ContentError::TooManyButtons);
        }
        let max = if photo.is_some() {
            html::MAX_CAPTION_UNITS
        } else {
            html::MAX_TEXT_UNITS
        };
        html::check_within(&text, max).map_err(ContentError::Html)?;
        Ok(Content {
            text,
            photo,
            buttons: parsed,
        })
    }

    fn buttons_json(&self) -> String {
        Value::from(
            self.buttons
                .iter()
                .map(|(l, u)| json!([l, u]))
                .collect::<Vec<_>>(),
        )
        .to_string()
    }

    fn from_stored(text: String, photo: Option<String>, buttons: &str) -> Content {
        let buttons: Vec<(String, String)> = serde_json::from_str(buttons).unwrap_or_default();
        Content {
            text,
            photo,
            buttons,
        }
    }

    /// The `sendMessage` (or `sendPhoto`) of this content to `chat_id`.
    pub fn message(&self, key: String, chat_id: i64, paid: bool) -> OutboxMessage {
        let markup = (!self.buttons.is_empty()).then(|| {
            json!({ "inline_keyboard": self.buttons.iter()
                .map(|(label, url)| json!([{ "text": label, "url": url }]))
                .collect::<Vec<_>>() })
        });
        let mut msg = OutboxMessage::text(key, chat_id, Priority::Broadcast, &self.text, markup);
        if let Some(photo) = &self.photo {
            msg.method = "sendPhoto".into();
            let mut params = json!({
                "chat_id": chat_id,
                "photo": photo,
                "caption": self.text,
                "parse_mode": "HTML",
            });
            if let (Some(markup), Some(o)) =
                (msg.params.get("reply_markup"), params.as_object_mut())
            {
                o.insert("reply_markup".into(), markup.clone());
            }
            msg.params = params;
        }
        if paid && let Some(o) = msg.params.as_object_mut() {
            o.insert("allow_paid_broadcast".into(), Value::Bool(true));
        }
        msg
    }
}

/// Where a broadcast is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Draft,
    Sending,
    Cancelled,
    Done,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "draft" => Status::Draft,
            "sending" => Status::Sending,
            "cancelled" => Status::Cancelled,
            "done" => Status::Done,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Sending => "sending",
            Status::Cancelled => "cancelled",
            Status::Done => "done",
        }
    }
}

/// A stored broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub id: i64,
    pub created_by: i64,
    pub content: Content,
    pub audience: Audience,
    pub paid: bool,
    pub status: Status,
    /// The last user queued (recipients are queued in id order).
    pub after_user: i64,
    /// The audience's size when it was started.
    pub recipients: i64,
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub blocked: i64,
    pub progress_n: i64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl Broadcast {
    /// The outbox message to one recipient.
    pub fn message_to(&self, user: i64) -> OutboxMessage {
        self.content
            .message(format!("{}{user}", key_prefix(self.id)), user, self.paid)
    }
}

/// Every recipient message of broadcast `id` has a key starting with this.
pub fn key_prefix(id: i64) -> String {
    format!("bcast:{id}:")
}

/// The key of the admin's progress message (`n` = 0: the message itself; later: its edits).
pub fn progress_key(id: i64, n: i64) -> String {
    format!("bcast-progress:{id}:{n}")
}

/// Stars Telegram charges for `messages` paid broadcast messages (rounded up).
pub fn paid_cost_stars(messages: i64) -> i64 {
    (messages * PAID_TENTHS_OF_STAR_PER_MESSAGE + 9) / 10
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    created_by: i64,
    text: String,
    photo: Option<String>,
    buttons: String,
    audience: String,
    paid: bool,
    status: String,
    after_user: i64,
    recipients: i64,
    queued: i64,
    sent: i64,
    failed: i64,
    blocked: i64,
    progress_n: i64,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, created_by, text, photo, buttons, audience, paid, status, after_user, recipients, \
     queued, sent, failed, blocked, progress_n, created_at, started_at, finished_at";

fn from_row(r: Row) -> Result<Broadcast, sqlx::Error> {
    let bad = |what: &str| sqlx::Error::Decode(format!("broadcast {}: {what}", r.id).into());
    Ok(Broadcast {
        id: r.id,
        created_by: r.created_by,
        audience: Audience::parse(&r.audience).ok_or_else(|| bad("unknown audience"))?,
        status: Status::parse(&r.status).ok_or_else(|| bad("unknown status"))?,
        content: Content::from_stored(r.text, r.photo, &r.buttons),
        paid: r.paid,
        after_user: r.after_user,
        recipients: r.recipients,
        queued: r.queued,
        sent: r.sent,
        failed: r.failed,
        blocked: r.blocked,
        progress_n: r.progress_n,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
    })
}

/// Stores a draft by `admin` (everyone, not paid, until chosen otherwise); returns its id.
pub async fn create_draft(
    tx: &mut Tx,
    admin: i64,
    content: &Content,
    now: Timestamp,
) -> Result<i64, sqlx::Error> {
    on_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO broadcasts (created_by, text, photo, buttons, audience, paid, status, created_at)
         VALUES ($1, $2, $5, $3, 'all', FALSE, 'draft', $4) RETURNING id")
        .bind(admin).bind(&content.text).bind(content.buttons_json()).bind(now).bind(&content.photo)
        .fetch_one(c).await)
}

/// Replaces a draft's content (Edit); false when it is no longer a draft.
pub async fn edit_draft(tx: &mut Tx, id: i64, content: &Content) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE broadcasts SET text = $2, buttons = $3, photo = $4 WHERE id = $1 AND status = 'draft'")
        .bind(id).bind(&content.text).bind(content.buttons_json()).bind(&content.photo)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Broadcast>, sqlx::Error> {
    let select = format!("SELECT {COLUMNS} FROM broadcasts WHERE id = $1");
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(id).fetch_optional(p).await)?;
    row.map(from_row).transpose()
}

/// The newest broadcasts that left the draft stage, newest first (the History screen).
pub async fn history(db: &Db, limit: i64) -> Result<Vec<Broadcast>, sqlx::Error> {
    let select = format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE status <> 'draft' ORDER BY id DESC LIMIT $1"
    );
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(limit).fetch_all(p).await)?;
    rows.into_iter().map(from_row).collect()
}

/// The broadcast being sent, oldest first (one at a time: a second waits for the first).
pub async fn sending(db: &Db) -> Result<Option<Broadcast>, sqlx::Error> {
    let select =
        format!("SELECT {COLUMNS} FROM broadcasts WHERE status = 'sending' ORDER BY id LIMIT 1");
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .fetch_optional(p).await)?;
    row.map(from_row).transpose()
}

/// Starts draft `id` for `audience` (`recipients` users now); false when it is no longer a
/// draft (a second press of Send).
pub async fn start(
    tx: &mut Tx,
    id: i64,
    audience: Audience,
    paid: bool,
    recipients: i64,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE broadcasts SET status = 'sending', audience = $2, paid = $3, recipients = $4, started_at = $5
         WHERE id = $1 AND status = 'draft'")
        .bind(id).bind(audience.code()).bind(paid).bind(recipients).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Cancels broadcast `id` (a draft or one being sent) and deletes its unsent messages, in the
/// caller's transaction: whatever was not sent by the commit is never sent. Returns how many
/// messages were dropped, or `None` when it had ended already.
pub async fn cancel(tx: &mut Tx, id: i64, now: Timestamp) -> Result<Option<u64>, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE broadcasts SET status = 'cancelled', finished_at = $2
         WHERE id = $1 AND status IN ('draft', 'sending')")
        .bind(id).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Ok(None);
    }
    outbox::delete_pending_keyed(tx, &key_prefix(id))
        .await
        .map(Some)
}

/// Moves the cursor of a broadcast being sent from `from` to `to` after `n` more were queued
/// (in the transaction that queued them); false when it was cancelled or another feeder moved
/// it meanwhile (the caller rolls back).
pub async fn advance(
    tx: &mut Tx,
    id: i64,
    from: i64,
    to: i64,
    n: i64,
) -> Result<bool, sqlx::Error> {
    let changed = on_tx!(tx, c => sqlx::query(
        "UPDATE broadcasts SET after_user = $3, queued = queued + $4
         WHERE id = $1 AND status = 'sending' AND after_user = $2")
        .bind(id).bind(from).bind(to).bind(n)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(changed == 1)
}

/// Stores the counts read from the outbox and the number of progress updates so far.
pub async fn note_progress(
    db: &Db,
    id: i64,
    counts: outbox::KeyedCounts,
    progress_n: i64,
) -> Result<(), sqlx::Error> {
    on_db!(db, p => sqlx::query(
        "UPDATE broadcasts SET sent = $2, failed = $3, blocked = $4, progress_n = $5 WHERE id = $1")
        .bind(id).bind(counts.sent).bind(counts.failed).bind(counts.blocked).bind(progress_n)
        .execute(p).await.map(|_| ()))
}

/// Marks a broadcast being sent as done with its final counts; false when it was cancelled.
pub async fn finish(
    db: &Db,
    id: i64,
    counts: outbox::KeyedCounts,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let n = on_db!(db, p => sqlx::query(
        "UPDATE broadcasts SET status = 'done', sent = $2, failed = $3, blocked = $4, finished_at = $5
         WHERE id = $1 AND status = 'sending'")
        .bind(id).bind(counts.sent).bind(counts.failed).bind(counts.blocked).bind(now)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_text_then_buttons() {
        let c = Content::parse(
            "<b>New</b> node\n---\nOpen | https://example.com/a\nHelp|https://t.me/x",
        )
        .unwrap();
        assert_eq!(c.text, "<b>New</b> node");
        assert_eq!(
            c.buttons,
            vec![
                ("Open".into(), "https://example.com/a".into()),
                ("Help".into(), "https://t.me/x".into())
            ]
        );
        let plain = Content::parse("hello").unwrap();
        assert!(plain.buttons.is_empty());
        assert_eq!(plain.photo, None);
        let photo =
            Content::parse("<i>caption</i>\n---\nphoto: https://example.com/p.jpg").unwrap();
        assert_eq!(photo.photo.as_deref(), Some("https://example.com/p.jpg"));
        let m = photo.message("k".into(), 5, false);
        assert_eq!(
            (m.method.as_str(), &m.params["caption"]),
            ("sendPhoto", &json!("<i>caption</i>"))
        );
        let long = format!(
            "{}\n---\nphoto: https://example.com/p.jpg",
            "x".repeat(1025)
        );
        assert_eq!(
            Content::parse(&long).unwrap_err().to_string(),
            "too long: 1025 characters, at most 1024"
        );
    }

    #[test]
    fn bad_buttons_and_markup_are_refused() {
        for (typed, want) in [
            (
                "x\n---\nno link here",
                "button line 1: expected `label | https://…`",
            ),
            (
                "x\n---\nA | http://example.com",
                "button line 1: the link must be https:// with a host",
            ),
            (
                "x\n---\nA | https://e.com\n | https://e.com",
                "button line 2: the label is empty",
            ),
            (
                "x\n---\nA | not a url",
                "button line 1: the link is not a URL",
            ),
            (
                "<b>x\n---\nA | https://e.com",
                "Can't parse entities: Can't find end tag corresponding to start tag \"b\"",
            ),
        ] {
            assert_eq!(
                Content::parse(typed).unwrap_err().to_string(),
                want,
                "{typed:?}"
            );
        }
        let many = format!("x\n---\n{}", "A | https://e.com\n".repeat(9));
        assert_eq!(Content::parse(&many), Err(ContentError::TooManyButtons));
    }

    #[test]
    fn a_paid_message_asks_for_the_paid_limit() {
        let c = Content::parse("x\n---\nA | https://e.com").unwrap();
        let m = c.message("k".into(), 5, true);
        assert!(m.is_paid_broadcast());
        assert_eq!(
            m.params["reply_markup"]["inline_keyboard"][0][0]["url"],
            "https://e.com/"
        );
        assert!(!c.message("k".into(), 5, false).is_paid_broadcast());
        assert_eq!(paid_cost_stars(100_000), 10_000);
        assert_eq!(paid_cost_stars(1), 1);
    }
}
