//! HTTP handlers of the control API (`/control/...`).
//!
//! Errors are `{"error": "..."}` with a 4xx status that says what was wrong (unknown user, no such
//! button, …); successes are the JSON of the types in [`super::types`].

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::types::{
    AbandonInvoice, AdvanceTime, BlockRequest, BotInfo, CallbackOutcome, ChatAction, ChatInfo,
    DocumentInfo, Group, InjectFault, InvoiceInfo, NewGroup, NewUser, PayInvoice, PendingUpdate,
    PhotoInfo, PressButton, RenewSubscription, SendText, SentMessage, StarTransactionOrder,
    TimeInfo, Transcript, TranscriptMessage, User, WaitForMessage, WebhookReachability,
};
use crate::entities::{FormattedText, with_detected_commands};
use crate::faults::FaultSpec;
use crate::methods::Method;
use crate::model::{ChatKind, Content, MessageJson, MessageRecord, Sender, UserRecord};
use crate::payments::{PaymentTarget, pay};
use crate::server::App;
use crate::state::{BotState, ChatState, lock};
use crate::updates::UpdateType;

/// A control API error.
#[derive(Debug)]
pub struct ControlFailure {
    status: StatusCode,
    message: String,
}

impl ControlFailure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ControlFailure {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type Result<T> = std::result::Result<Json<T>, ControlFailure>;

/// The routes under `/control`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/health", get(health))
        .route("/bots", get(bots))
        .route("/users", get(list_users).post(create_user))
        .route("/groups", post(create_group))
        .route("/messages", post(send_text))
        .route("/callbacks", post(press_button))
        .route("/payments", post(pay_invoice))
        .route("/payments/abandon", post(abandon_invoice))
        .route("/subscriptions/renew", post(renew_subscription))
        .route("/block", post(block))
        .route("/unblock", post(unblock))
        .route("/chats/{chat_id}", get(transcript))
        .route("/chats/{chat_id}/changes", get(changes))
        .route("/wait", post(wait_for_message))
        .route(
            "/faults",
            get(list_faults).post(inject_fault).delete(clear_faults),
        )
        .route("/webhook/reachability", post(webhook_reachability))
        .route("/stars/order", post(star_transaction_order))
        .route("/counters", get(counters))
        .route("/time", get(time))
        .route("/time/advance", post(advance_time))
        .route("/files/{file_id}", get(file))
        .route("/updates", get(pending_updates))
}

/// `?bot=` selector.
#[derive(Debug, Default, Deserialize)]
pub struct BotQuery {
    bot: Option<String>,
}

fn select_bot(
    app: &App,
    selector: Option<&str>,
) -> std::result::Result<Arc<BotState>, ControlFailure> {
    app.bot(selector)
        .ok_or_else(|| ControlFailure::not_found(format!("no bot {:?}", selector.unwrap_or(""))))
}

fn user(app: &App, id: i64) -> std::result::Result<Arc<UserRecord>, ControlFailure> {
    app.shared
        .users
        .get(id)
        .ok_or_else(|| ControlFailure::not_found(format!("no user {id}; create it first")))
}

fn chat(bot: &BotState, id: i64) -> std::result::Result<Arc<ChatState>, ControlFailure> {
    bot.chat(id).ok_or_else(|| {
        ControlFailure::not_found(format!("no chat {id} with bot @{}", bot.identity.username))
    })
}

fn user_view(user: &UserRecord) -> User {
    User {
        id: user.id,
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        username: user.username.clone(),
        language_code: user.language_code.clone(),
        is_premium: user.is_premium,
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "ok": true }))
}

async fn bots(State(app): State<Arc<App>>) -> Json<Vec<BotInfo>> {
    Json(
        app.bots
            .iter()
            .map(|bot| {
                let commands = lock(&bot.commands)
                    .iter()
                    .find(|s| s.scope == json!({"type": "default"}) && s.language_code.is_empty())
                    .map(|s| s.commands.clone())
                    .unwrap_or_default();
                let (webhook_url, long_poll_waiting, pending_update_count) = {
                    let updates = lock(&bot.updates);
                    (
                        updates
                            .webhook
                            .as_ref()
                            .map(|w| w.url.clone())
                            .unwrap_or_default(),
                        updates.long_poll_waiting(),
                        updates.pending_count(),
                    )
                };
                BotInfo {
                    id: bot.identity.id,
                    username: bot.identity.username.clone(),
                    first_name: bot.identity.first_name.clone(),
                    token: bot.token.clone(),
                    commands,
                    webhook_url,
                    long_poll_waiting,
                    pending_update_count,
                }
            })
            .collect(),
    )
}

async fn list_users(State(app): State<Arc<App>>) -> Json<Vec<User>> {
    Json(
        app.shared
            .users
            .list()
            .iter()
            .map(|u| user_view(u))
            .collect(),
    )
}

async fn create_user(State(app): State<Arc<App>>, Json(new): Json<NewUser>) -> Result<User> {
    if new.first_name.trim().is_empty() {
        return Err(ControlFailure::bad_request("first_name must not be empty"));
    }
    if new.first_name.chars().count() > 64 {
        return Err(ControlFailure::bad_request(
            "first_name is longer than 64 characters",
        ));
    }
    if let Some(username) = &new.username {
        let valid = (5..=32).contains(&username.len())
            && username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ControlFailure::bad_request(
                "username must be 5-32 characters of a-z, 0-9 and _",
            ));
        }
    }
    let id = match new.id {
        Some(id) if !(1..(1_i64 << 52)).contains(&id) => {
            return Err(ControlFailure::bad_request(
                "id must be a positive integer below 2^52",
            ));
        }
        Some(id) if app.bots.iter().any(|b| b.identity.id == id) => {
            return Err(ControlFailure::bad_request("id is taken by a bot"));
        }
        Some(id) => id,
        None => app.shared.users.next_id(),
    };
    let record = UserRecord {
        id,
        first_name: new.first_name,
        last_name: new.last_name.filter(|s| !s.is_empty()),
        username: new.username.filter(|s| !s.is_empty()),
        language_code: new.language_code.filter(|s| !s.is_empty()),
        is_premium: new.is_premium,
    };
    let user = app
        .shared
        .users
        .insert(record, app.shared.config.limits.max_users)
        .map_err(|m| ControlFailure::new(StatusCode::CONFLICT, m))?;
    for bot in &app.bots {
        bot.add_private_chat(user.clone(), new.started);
    }
    Ok(Json(user_view(&user)))
}

async fn create_group(State(app): State<Arc<App>>, Json(new): Json<NewGroup>) -> Result<Group> {
    let bot = select_bot(&app, new.bot.as_deref())?;
    if new.title.trim().is_empty() {
        return Err(ControlFailure::bad_request("title must not be empty"));
    }
    let mut members = Vec::with_capacity(new.members.len());
    for id in &new.members {
        members.push(user(&app, *id)?);
    }
    let id = match new.id {
        Some(id) if id >= 0 => return Err(ControlFailure::bad_request("group ids are negative")),
        Some(id) => id,
        None => {
            -(1_000_000_000 + i64::try_from(app.shared.rng.next_u64() % 1_000_000_000).unwrap_or(0))
        }
    };
    let chat = bot
        .add_group(id, new.title.clone(), new.members.clone())
        .map_err(|m| ControlFailure::new(StatusCode::CONFLICT, m))?;
    if let Some(adder) = members.first() {
        // The bot was added to the group by its first member.
        let body = my_chat_member(&bot, &chat, adder, "left", "member");
        bot.push_update(
            UpdateType::MyChatMember,
            body,
            chat.id + (5_i64 << 33),
            86_400,
        );
    }
    Ok(Json(Group {
        id,
        title: new.title,
        members: new.members,
    }))
}

fn my_chat_member(
    bot: &BotState,
    chat: &ChatState,
    from: &UserRecord,
    old: &str,
    new: &str,
) -> String {
    let member = |status: &str| {
        let mut m = json!({ "user": bot.identity, "status": status });
        if status == "kicked" {
            m["until_date"] = json!(0);
        }
        m
    };
    let body = json!({
        "chat": crate::model::ChatJson { id: chat.id, kind: &chat.kind },
        "from": from,
        "date": bot.shared.clock.now_secs(),
        "old_chat_member": member(old),
        "new_chat_member": member(new),
    });
    format!("\"my_chat_member\":{body}")
}

async fn send_text(
    State(app): State<Arc<App>>,
    Json(request): Json<SendText>,
) -> Result<SentMessage> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    let sender = user(&app, request.user_id)?;
    let chat = chat(&bot, request.chat_id.unwrap_or(request.user_id))?;
    if let ChatKind::Group { .. } = chat.kind
        && !lock(&chat.inner).members.contains(&sender.id)
    {
        return Err(ControlFailure::bad_request(format!(
            "user {} is not a member of group {}",
            sender.id, chat.id
        )));
    }
    if request.text.trim().is_empty() {
        return Err(ControlFailure::bad_request("text must not be empty"));
    }
    if request.text.chars().count() > 4096 {
        return Err(ControlFailure::bad_request(
            "text is longer than 4096 characters",
        ));
    }
    let text = with_detected_commands(FormattedText {
        text: request.text.trim().to_owned(),
        entities: Vec::new(),
    });
    let (record, update_id) = bot
        .store_user_message(
            &chat,
            sender,
            Content::Text(text),
            request.reply_to_message_id,
        )
        .map_err(ControlFailure::bad_request)?;
    Ok(Json(SentMessage {
        chat_id: chat.id,
        message_id: record.message_id,
        update_id,
    }))
}

fn chat_instance(chat_id: i64) -> String {
    // Stable per chat, opaque like Telegram's.
    (chat_id.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 1).to_string()
}

async fn press_button(
    State(app): State<Arc<App>>,
    Json(request): Json<PressButton>,
) -> Result<CallbackOutcome> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    let chat = chat(&bot, request.chat_id)?;
    let user_id = match (request.user_id, chat.private_user()) {
        (Some(id), _) => id,
        (None, Some(user)) => user.id,
        (None, None) => return Err(ControlFailure::bad_request("user_id is required in groups")),
    };
    let presser = user(&app, user_id)?;
    let message = {
        let inner = lock(&chat.inner);
        if inner.blocked {
            return Err(ControlFailure::bad_request("the user has blocked the bot"));
        }
        inner
            .find(request.message_id)
            .map(|(_, m)| m)
            .ok_or_else(|| {
                ControlFailure::not_found(format!(
                    "no message {} in chat {}",
                    request.message_id, chat.id
                ))
            })?
    };
    let has_button = message
        .reply_markup
        .as_ref()
        .is_some_and(|k| k.has_callback(&request.callback_data));
    if !has_button && !request.forged {
        return Err(ControlFailure::bad_request(format!(
            "message {} has no button with callback_data {:?}",
            request.message_id, request.callback_data
        )));
    }
    let shared = &bot.shared;
    let query_id = (shared.rng.next_u64() >> 1).to_string();
    let answer_rx = lock(&bot.queries).open_callback(
        query_id.clone(),
        shared.clock.now_ms(),
        shared.config.limits.max_open_queries,
    );
    let message_json: Value =
        serde_json::from_str(&bot.message_json(&chat, &message)).unwrap_or(Value::Null);
    let body = json!({
        "id": query_id,
        "from": presser.as_ref(),
        "message": message_json,
        "chat_instance": chat_instance(chat.id),
        "data": request.callback_data,
    });
    let update_id = bot.push_update(
        UpdateType::CallbackQuery,
        format!("\"callback_query\":{body}"),
        presser.id + (3_i64 << 33),
        shared.config.callback_query_lifetime_secs,
    );
    let wait = Duration::from_millis(request.wait_ms.unwrap_or(10_000).min(120_000));
    let mut shutdown = shared.shutdown.clone();
    let answer = if wait.is_zero() {
        None
    } else {
        tokio::select! {
            answer = answer_rx => answer.ok(),
            () = tokio::time::sleep(wait) => None,
            _ = shutdown.changed() => None,
        }
    };
    Ok(Json(CallbackOutcome {
        callback_query_id: query_id,
        update_id,
        answer,
    }))
}

async fn pay_invoice(
    State(app): State<Arc<App>>,
    Json(request): Json<PayInvoice>,
) -> Result<super::types::PaymentOutcome> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    let (target, user_id) = if let Some(link) = &request.invoice_link {
        let slug = link
            .rsplit_once('$')
            .map_or(link.as_str(), |(_, slug)| slug);
        let invoice = lock(&bot.payments)
            .link(slug)
            .ok_or_else(|| ControlFailure::not_found(format!("no invoice link {link}")))?;
        let user_id = request
            .user_id
            .ok_or_else(|| ControlFailure::bad_request("user_id is required to pay a link"))?;
        (
            PaymentTarget {
                invoice,
                message: None,
            },
            user_id,
        )
    } else {
        let (Some(chat_id), Some(message_id)) = (request.chat_id, request.message_id) else {
            return Err(ControlFailure::bad_request(
                "give chat_id and message_id of an invoice message, or invoice_link",
            ));
        };
        let chat = chat(&bot, chat_id)?;
        let user_id = match (request.user_id, chat.private_user()) {
            (Some(id), _) => id,
            (None, Some(user)) => user.id,
            (None, None) => {
                return Err(ControlFailure::bad_request("user_id is required in groups"));
            }
        };
        let message = lock(&chat.inner)
            .find(message_id)
            .map(|(_, m)| m)
            .ok_or_else(|| {
                ControlFailure::not_found(format!("no message {message_id} in chat {chat_id}"))
            })?;
        let Content::Invoice(invoice) = &message.content else {
            return Err(ControlFailure::bad_request(format!(
                "message {message_id} is not an invoice"
            )));
        };
        (
            PaymentTarget {
                invoice: invoice.clone(),
                message: Some((chat.clone(), message_id)),
            },
            user_id,
        )
    };
    let payer = user(&app, user_id)?;
    let mut shutdown = bot.shared.shutdown.clone();
    tokio::select! {
        outcome = pay(&bot, payer, target) => outcome.map(Json).map_err(ControlFailure::bad_request),
        _ = shutdown.changed() => Err(ControlFailure::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down")),
    }
}

async fn renew_subscription(
    State(app): State<Arc<App>>,
    Json(request): Json<RenewSubscription>,
) -> Result<super::types::PaymentOutcome> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    crate::payments::renew_subscription(&bot, &request.telegram_payment_charge_id)
        .map(Json)
        .map_err(ControlFailure::bad_request)
}

async fn abandon_invoice(
    State(app): State<Arc<App>>,
    Json(request): Json<AbandonInvoice>,
) -> Result<Value> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    let chat = chat(&bot, request.chat_id)?;
    let message = lock(&chat.inner)
        .find(request.message_id)
        .map(|(_, m)| m)
        .ok_or_else(|| {
            ControlFailure::not_found(format!(
                "no message {} in chat {}",
                request.message_id, chat.id
            ))
        })?;
    if !matches!(message.content, Content::Invoice(_)) {
        return Err(ControlFailure::bad_request(format!(
            "message {} is not an invoice",
            request.message_id
        )));
    }
    // The user opened the payment form and closed it: Telegram tells the bot nothing.
    Ok(Json(json!({ "ok": true })))
}

async fn set_blocked(app: &App, request: &BlockRequest, blocked: bool) -> Result<Value> {
    let bot = select_bot(app, request.bot.as_deref())?;
    let user = user(app, request.user_id)?;
    let chat = chat(&bot, user.id)?;
    let changed = {
        let inner = lock(&chat.inner);
        inner.blocked != blocked
    };
    if changed {
        bot.touch(&chat, |inner| {
            inner.blocked = blocked;
            if !blocked {
                inner.started = true;
            }
        });
        let (old, new) = if blocked {
            ("member", "kicked")
        } else {
            ("kicked", "member")
        };
        let body = my_chat_member(&bot, &chat, &user, old, new);
        bot.push_update(
            UpdateType::MyChatMember,
            body,
            chat.id + (5_i64 << 33),
            86_400,
        );
    }
    Ok(Json(json!({ "ok": true, "changed": changed })))
}

async fn block(State(app): State<Arc<App>>, Json(request): Json<BlockRequest>) -> Result<Value> {
    set_blocked(&app, &request, true).await
}

async fn unblock(State(app): State<Arc<App>>, Json(request): Json<BlockRequest>) -> Result<Value> {
    set_blocked(&app, &request, false).await
}

fn transcript_message(
    bot: &BotState,
    chat: &ChatState,
    record: &MessageRecord,
) -> TranscriptMessage {
    let mut document = None;
    let (text, photo, invoice) = match &record.content {
        Content::Text(t) => (Some(t.text.clone()), None, None),
        Content::Document {
            document: d,
            caption,
        } => {
            document = Some(DocumentInfo {
                file_id: d.file_id.clone(),
                file_name: d.file_name.clone(),
                mime_type: d.mime_type.clone(),
                file_size: d.file_size,
                url: format!("/control/files/{}", d.file_id),
            });
            (caption.as_ref().map(|c| c.text.clone()), None, None)
        }
        Content::Photo { sizes, caption } => {
            let photo = sizes.last().map(|s| {
                let url = bot
                    .shared
                    .files
                    .get(&s.file_id)
                    .and_then(|f| f.url.clone())
                    .unwrap_or_else(|| format!("/control/files/{}", s.file_id));
                PhotoInfo {
                    file_id: s.file_id.clone(),
                    width: s.width,
                    height: s.height,
                    url,
                }
            });
            (caption.as_ref().map(|c| c.text.clone()), photo, None)
        }
        Content::Invoice(i) => (
            None,
            None,
            Some(InvoiceInfo {
                title: i.title.clone(),
                description: i.description.clone(),
                currency: i.currency.clone(),
                total_amount: i.total_amount,
                payload: i.payload.clone(),
                paid_by_charge: record.paid_by_charge.clone(),
            }),
        ),
        Content::SuccessfulPayment(_) | Content::RefundedPayment(_) => (None, None, None),
    };
    let api = serde_json::to_value(MessageJson {
        record,
        chat_id: chat.id,
        chat: &chat.kind,
        bot: &bot.identity,
        with_reply: true,
    })
    .unwrap_or(Value::Null);
    TranscriptMessage {
        message_id: record.message_id,
        from_bot: record.sender.is_bot(),
        sender_id: match &record.sender {
            Sender::Bot => bot.identity.id,
            Sender::User(u) => u.id,
        },
        date: record.date,
        edit_date: record.edit_date,
        edit_count: record.edit_count,
        deleted: record.deleted,
        kind: record.content.kind_name().to_owned(),
        text,
        photo,
        document,
        invoice,
        reply_markup: record
            .reply_markup
            .as_ref()
            .and_then(|k| serde_json::to_value(k).ok()),
        reply_to_message_id: record.reply_to.as_ref().map(|r| r.message_id),
        api,
    }
}

fn build_transcript(bot: &BotState, chat: &ChatState, limit: Option<usize>) -> Transcript {
    let (records, version, blocked, started, reply_keyboard, last_action) = {
        let inner = lock(&chat.inner);
        let skip = limit.map_or(0, |l| inner.messages.len().saturating_sub(l));
        (
            inner
                .messages
                .iter()
                .skip(skip)
                .cloned()
                .collect::<Vec<_>>(),
            inner.version,
            inner.blocked,
            inner.started,
            inner.reply_keyboard.clone(),
            inner.last_action.clone(),
        )
    };
    let (kind, title) = match &chat.kind {
        ChatKind::Private(user) => (
            "private",
            match &user.last_name {
                Some(last) => format!("{} {last}", user.first_name),
                None => user.first_name.clone(),
            },
        ),
        ChatKind::Group { title } => ("group", title.clone()),
    };
    Transcript {
        chat: ChatInfo {
            id: chat.id,
            kind: kind.to_owned(),
            title,
        },
        version,
        blocked,
        started,
        reply_keyboard,
        last_action: last_action.map(|(action, date)| ChatAction { action, date }),
        messages: records
            .iter()
            .map(|r| transcript_message(bot, chat, r))
            .collect(),
    }
}

/// `?bot=&limit=`.
#[derive(Debug, Default, Deserialize)]
pub struct TranscriptQuery {
    bot: Option<String>,
    limit: Option<usize>,
}

async fn transcript(
    State(app): State<Arc<App>>,
    Path(chat_id): Path<i64>,
    Query(query): Query<TranscriptQuery>,
) -> Result<Transcript> {
    let bot = select_bot(&app, query.bot.as_deref())?;
    let chat = chat(&bot, chat_id)?;
    Ok(Json(build_transcript(&bot, &chat, query.limit)))
}

/// `?bot=&since=&timeout_ms=`.
#[derive(Debug, Default, Deserialize)]
pub struct ChangesQuery {
    bot: Option<String>,
    since: Option<u64>,
    timeout_ms: Option<u64>,
}

async fn changes(
    State(app): State<Arc<App>>,
    Path(chat_id): Path<i64>,
    Query(query): Query<ChangesQuery>,
) -> Result<Value> {
    let bot = select_bot(&app, query.bot.as_deref())?;
    let chat = chat(&bot, chat_id)?;
    let since = query.since.unwrap_or(0);
    let mut rx = chat.changes.subscribe();
    let mut shutdown = bot.shared.shutdown.clone();
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(query.timeout_ms.unwrap_or(25_000).min(60_000));
    loop {
        let version = lock(&chat.inner).version;
        if version > since {
            return Ok(Json(json!({ "version": version })));
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { break },
            () = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.changed() => break,
        }
    }
    let version = lock(&chat.inner).version;
    Ok(Json(json!({ "version": version })))
}

async fn wait_for_message(
    State(app): State<Arc<App>>,
    Json(request): Json<WaitForMessage>,
) -> Result<TranscriptMessage> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    let chat = chat(&bot, request.chat_id)?;
    let mut rx = chat.changes.subscribe();
    let mut shutdown = bot.shared.shutdown.clone();
    let timeout = Duration::from_millis(request.timeout_ms.min(120_000));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        rx.borrow_and_update();
        let transcript = build_transcript(&bot, &chat, None);
        if let Some(found) = transcript
            .messages
            .into_iter()
            .find(|m| request.filter.matches(m))
        {
            return Ok(Json(found));
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { break },
            () = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.changed() => break,
        }
    }
    Err(ControlFailure::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "no message matching {:?} in chat {} within {} ms",
            request.filter,
            chat.id,
            timeout.as_millis()
        ),
    ))
}

async fn list_faults(
    State(app): State<Arc<App>>,
    Query(query): Query<BotQuery>,
) -> Result<Vec<FaultSpec>> {
    let bot = select_bot(&app, query.bot.as_deref())?;
    Ok(Json(bot.faults.list()))
}

async fn inject_fault(
    State(app): State<Arc<App>>,
    Json(request): Json<InjectFault>,
) -> Result<Value> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    let method = match request.method.as_deref() {
        None | Some("" | "*") => None,
        Some(name) => Some(
            Method::from_name(name)
                .ok_or_else(|| ControlFailure::bad_request(format!("unknown method {name:?}")))?,
        ),
    };
    bot.faults
        .inject(FaultSpec {
            method,
            fault: request.fault,
            remaining: request.count,
        })
        .map_err(ControlFailure::bad_request)?;
    Ok(Json(json!({ "ok": true })))
}

async fn clear_faults(State(app): State<Arc<App>>, Query(query): Query<BotQuery>) -> Result<Value> {
    let bot = select_bot(&app, query.bot.as_deref())?;
    bot.faults.clear();
    Ok(Json(json!({ "ok": true })))
}

async fn webhook_reachability(
    State(app): State<Arc<App>>,
    Json(request): Json<WebhookReachability>,
) -> Result<Value> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    bot.webhook_unreachable
        .store(request.unreachable, std::sync::atomic::Ordering::Relaxed);
    bot.webhook_kick.notify_one();
    Ok(Json(json!({ "ok": true })))
}

async fn star_transaction_order(
    State(app): State<Arc<App>>,
    Json(request): Json<StarTransactionOrder>,
) -> Result<Value> {
    let bot = select_bot(&app, request.bot.as_deref())?;
    bot.star_transactions_newest_first
        .store(request.newest_first, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(json!({ "ok": true })))
}

async fn counters(
    State(app): State<Arc<App>>,
    Query(query): Query<BotQuery>,
) -> Result<super::types::Counters> {
    let bot = select_bot(&app, query.bot.as_deref())?;
    Ok(Json(bot.counters.snapshot()))
}

fn time_info(app: &App) -> TimeInfo {
    let clock = &app.shared.clock;
    let now_ms = clock.now_ms();
    TimeInfo {
        now: now_ms.div_euclid(1000),
        now_ms,
        offset_ms: clock.offset_ms(),
    }
}

async fn time(State(app): State<Arc<App>>) -> Json<TimeInfo> {
    Json(time_info(&app))
}

async fn advance_time(
    State(app): State<Arc<App>>,
    Json(request): Json<AdvanceTime>,
) -> Result<TimeInfo> {
    if !(request.seconds.is_finite()
        && request.seconds >= 0.0
        && request.seconds <= 10.0 * 365.0 * 86_400.0)
    {
        return Err(ControlFailure::bad_request(
            "seconds must be between 0 and ten years",
        ));
    }
    app.shared
        .clock
        .advance(Duration::from_secs_f64(request.seconds));
    for bot in &app.bots {
        bot.webhook_kick.notify_one();
    }
    Ok(Json(time_info(&app)))
}

async fn file(State(app): State<Arc<App>>, Path(file_id): Path<String>) -> Response {
    match app.shared.files.get(&file_id) {
        Some(file) if !file.data.is_empty() => {
            let mut response = file.data.clone().into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(file.mime));
            response
        }
        Some(_) => {
            ControlFailure::not_found("the photo was sent by URL; the emulator did not fetch it")
                .into_response()
        }
        None => ControlFailure::not_found(format!("no file {file_id}")).into_response(),
    }
}

async fn pending_updates(
    State(app): State<Arc<App>>,
    Query(query): Query<BotQuery>,
) -> Result<Vec<PendingUpdate>> {
    let bot = select_bot(&app, query.bot.as_deref())?;
    let updates = lock(&bot.updates);
    Ok(Json(
        updates
            .queue
            .values()
            .take(1000)
            .map(|u| PendingUpdate {
                update_id: u.id,
                kind: u.kind.name().to_owned(),
                fail_count: u.fail_count,
                delay_secs: u.delay_secs,
                next_attempt_at_ms: u.wakeup_at_ms,
                expires_at_ms: u.expires_at_ms,
                in_flight: u.in_flight,
                update: serde_json::from_str(&u.json()).unwrap_or(Value::Null),
            })
            .collect(),
    ))
}
