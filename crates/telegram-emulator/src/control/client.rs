//! The typed async Rust client of the control API.
//!
//! It speaks HTTP + JSON, so it works against an in-process emulator
//! ([`crate::RunningEmulator::client`]) and against a separate `telegram-emulator` process alike.
//! Every call has a deadline; waiting happens on the server (`wait_for_message` is a long poll),
//! never in fixed sleeps.

use std::time::Duration;

use bytes::Bytes;
use http::{Method as HttpMethod, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::types::{
    AbandonInvoice, AdvanceTime, BlockRequest, BotInfo, CallbackOutcome, Counters, FaultKind,
    Group, InjectFault, MessageFilter, NewGroup, NewUser, PayInvoice, PaymentOutcome,
    PendingUpdate, PressButton, RenewSubscription, SendText, SentMessage, StarTransactionOrder,
    TimeInfo, Transcript, TranscriptMessage, User, WaitForMessage, WebhookReachability,
};

/// Deadline of ordinary control calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed control call.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The emulator could not be reached or did not answer in time.
    #[error("control API transport error: {0}")]
    Transport(String),
    /// The emulator refused the request (unknown user, no such button, timeout of a wait, …).
    #[error("control API error {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The emulator's explanation.
        message: String,
    },
    /// The answer was not the expected JSON.
    #[error("control API answer could not be decoded: {0}")]
    Decode(String),
}

/// A raw Bot API answer (for tests that check status codes and bodies).
#[derive(Clone, Debug, PartialEq)]
pub struct BotApiResponse {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<u32>,
    /// The body as JSON (`Value::Null` if it was not JSON).
    pub body: Value,
}

impl BotApiResponse {
    /// `result` of a successful answer.
    pub fn result(&self) -> &Value {
        &self.body["result"]
    }

    /// `description` of an error answer.
    pub fn description(&self) -> &str {
        self.body["description"].as_str().unwrap_or("")
    }

    /// Whether `ok` is true.
    pub fn ok(&self) -> bool {
        self.body["ok"].as_bool() == Some(true)
    }
}

/// Client of the control API of one emulator (and one of its bots).
#[derive(Clone, Debug)]
pub struct ControlClient {
    base: String,
    bot: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl ControlClient {
    /// A client for the emulator at `base_url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base_url: impl Into<String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            base: base_url.into().trim_end_matches('/').to_owned(),
            bot: None,
            http: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The same client acting on another bot (by username).
    #[must_use]
    pub fn for_bot(&self, username: impl Into<String>) -> Self {
        Self {
            bot: Some(username.into()),
            ..self.clone()
        }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn exchange(
        &self,
        method: HttpMethod,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
        timeout: Duration,
    ) -> Result<(StatusCode, Option<u32>, Bytes), ControlError> {
        let uri = format!("{}{path_and_query}", self.base);
        let mut request = Request::builder().method(method).uri(&uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ControlError::Transport(format!("{uri}: {e}")))?;
        let call = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ControlError::Transport(format!("{uri}: {e}")))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ControlError::Transport(format!("{uri}: {e}")))?
                .to_bytes();
            Ok((status, retry_after, bytes))
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ControlError::Transport(format!("{uri}: no answer within {timeout:?}")))?
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: HttpMethod,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, ControlError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ControlError::Decode(e.to_string()))?;
        let (status, _, bytes) = self
            .exchange(method, path, body, "application/json", timeout)
            .await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ControlError::Rejected {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ControlError::Decode(format!("{path}: {e}")))
    }

    fn bot_query(&self, prefix: char) -> String {
        self.bot
            .as_ref()
            .map(|b| format!("{prefix}bot={b}"))
            .unwrap_or_default()
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ControlError> {
        self.call(HttpMethod::GET, path, None::<&()>, CALL_TIMEOUT)
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ControlError> {
        self.call(HttpMethod::POST, path, Some(body), CALL_TIMEOUT)
            .await
    }

    /// The bots served.
    pub async fn bots(&self) -> Result<Vec<BotInfo>, ControlError> {
        self.get("/control/bots").await
    }

    /// Creates a user (and a private chat with every bot).
    pub async fn create_user(&self, user: NewUser) -> Result<User, ControlError> {
        self.post("/control/users", &user).await
    }

    /// All users.
    pub async fn users(&self) -> Result<Vec<User>, ControlError> {
        self.get("/control/users").await
    }

    /// Creates a group with the bot and `members` in it.
    pub async fn create_group(&self, title: &str, members: &[i64]) -> Result<Group, ControlError> {
        let request = NewGroup {
            bot: self.bot.clone(),
            id: None,
            title: title.to_owned(),
            members: members.to_vec(),
        };
        self.post("/control/groups", &request).await
    }

    /// The user writes `text` in their private chat with the bot (`/start payload` deep links
    /// and other commands get `bot_command` entities).
    pub async fn send_text(&self, user_id: i64, text: &str) -> Result<SentMessage, ControlError> {
        self.send_text_in(user_id, user_id, text).await
    }

    /// The user writes `text` in `chat_id` (their private chat or a group they are in).
    pub async fn send_text_in(
        &self,
        chat_id: i64,
        user_id: i64,
        text: &str,
    ) -> Result<SentMessage, ControlError> {
        let request = SendText {
            bot: self.bot.clone(),
            user_id,
            chat_id: Some(chat_id),
            text: text.to_owned(),
            reply_to_message_id: None,
        };
        self.post("/control/messages", &request).await
    }

    /// The chat's user presses the inline button with `callback_data` under `message_id`; waits
    /// up to 10 s for the bot's `answerCallbackQuery`.
    pub async fn press_button(
        &self,
        chat_id: i64,
        message_id: i64,
        callback_data: &str,
    ) -> Result<CallbackOutcome, ControlError> {
        self.press_button_with(PressButton {
            bot: self.bot.clone(),
            user_id: None,
            chat_id,
            message_id,
            callback_data: callback_data.to_owned(),
            wait_ms: None,
            forged: false,
        })
        .await
    }

    /// A button press with every option (user in groups, answer wait).
    pub async fn press_button_with(
        &self,
        mut request: PressButton,
    ) -> Result<CallbackOutcome, ControlError> {
        if request.bot.is_none() {
            request.bot.clone_from(&self.bot);
        }
        let timeout = CALL_TIMEOUT + Duration::from_millis(request.wait_ms.unwrap_or(10_000));
        self.call(
            HttpMethod::POST,
            "/control/callbacks",
            Some(&request),
            timeout,
        )
        .await
    }

    /// The chat's user pays the invoice message: the bot gets a `pre_checkout_query` and has 10 s
    /// (emulated) to answer. Returns when the payment is done, declined or timed out.
    pub async fn pay_invoice(
        &self,
        chat_id: i64,
        message_id: i64,
    ) -> Result<PaymentOutcome, ControlError> {
        let request = PayInvoice {
            bot: self.bot.clone(),
            user_id: None,
            chat_id: Some(chat_id),
            message_id: Some(message_id),
            invoice_link: None,
        };
        self.call(
            HttpMethod::POST,
            "/control/payments",
            Some(&request),
            CALL_TIMEOUT,
        )
        .await
    }

    /// `user_id` pays an invoice link from `createInvoiceLink`.
    pub async fn pay_invoice_link(
        &self,
        user_id: i64,
        link: &str,
    ) -> Result<PaymentOutcome, ControlError> {
        let request = PayInvoice {
            bot: self.bot.clone(),
            user_id: Some(user_id),
            chat_id: None,
            message_id: None,
            invoice_link: Some(link.to_owned()),
        };
        self.call(
            HttpMethod::POST,
            "/control/payments",
            Some(&request),
            CALL_TIMEOUT,
        )
        .await
    }

    /// Telegram charges the next period of the Stars subscription that `charge_id` belongs to:
    /// the bot gets a `successful_payment` with `is_recurring` (no pre-checkout query).
    pub async fn renew_subscription(
        &self,
        charge_id: &str,
    ) -> Result<PaymentOutcome, ControlError> {
        let request = RenewSubscription {
            bot: self.bot.clone(),
            telegram_payment_charge_id: charge_id.to_owned(),
        };
        self.post("/control/subscriptions/renew", &request).await
    }

    /// The user opens the invoice and closes it without paying (the bot is told nothing).
    pub async fn abandon_invoice(&self, chat_id: i64, message_id: i64) -> Result<(), ControlError> {
        let request = AbandonInvoice {
            bot: self.bot.clone(),
            chat_id,
            message_id,
        };
        self.post::<Value>("/control/payments/abandon", &request)
            .await
            .map(drop)
    }

    /// The user blocks the bot (`my_chat_member` update; sends then fail with 403).
    pub async fn block_bot(&self, user_id: i64) -> Result<(), ControlError> {
        let request = BlockRequest {
            bot: self.bot.clone(),
            user_id,
        };
        self.post::<Value>("/control/block", &request)
            .await
            .map(drop)
    }

    /// The user unblocks the bot (`my_chat_member` update).
    pub async fn unblock_bot(&self, user_id: i64) -> Result<(), ControlError> {
        let request = BlockRequest {
            bot: self.bot.clone(),
            user_id,
        };
        self.post::<Value>("/control/unblock", &request)
            .await
            .map(drop)
    }

    /// The chat's transcript: messages (with edits, keyboards, photos, invoices), block state,
    /// the custom keyboard shown and the last chat action.
    pub async fn transcript(&self, chat_id: i64) -> Result<Transcript, ControlError> {
        self.get(&format!("/control/chats/{chat_id}{}", self.bot_query('?')))
            .await
    }

    /// Waits (server-side, up to `deadline`, at most 120 s) for the oldest message of the chat
    /// matching `filter`. Errors with status 408 when none appears in time.
    pub async fn wait_for_message(
        &self,
        chat_id: i64,
        filter: MessageFilter,
        deadline: Duration,
    ) -> Result<TranscriptMessage, ControlError> {
        let request = WaitForMessage {
            bot: self.bot.clone(),
            chat_id,
            filter,
            timeout_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        };
        self.call(
            HttpMethod::POST,
            "/control/wait",
            Some(&request),
            deadline + CALL_TIMEOUT,
        )
        .await
    }

    /// The next `count` calls of `method` (any method for `"*"`) fail with `fault`.
    pub async fn inject_fault(
        &self,
        method: &str,
        fault: FaultKind,
        count: u32,
    ) -> Result<(), ControlError> {
        let request = InjectFault {
            bot: self.bot.clone(),
            method: Some(method.to_owned()),
            fault,
            count,
        };
        self.post::<Value>("/control/faults", &request)
            .await
            .map(drop)
    }

    /// Removes all queued faults.
    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.call::<Value>(
            HttpMethod::DELETE,
            &format!("/control/faults{}", self.bot_query('?')),
            None::<&()>,
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Makes webhook deliveries fail with "Connection refused" (or work again).
    pub async fn set_webhook_unreachable(&self, unreachable: bool) -> Result<(), ControlError> {
        let request = WebhookReachability {
            bot: self.bot.clone(),
            unreachable,
        };
        self.post::<Value>("/control/webhook/reachability", &request)
            .await
            .map(drop)
    }

    /// Makes `getStarTransactions` list newest first (`true`) or in the documented
    /// chronological order (`false`, the default).
    pub async fn set_star_transactions_newest_first(
        &self,
        newest_first: bool,
    ) -> Result<(), ControlError> {
        let request = StarTransactionOrder {
            bot: self.bot.clone(),
            newest_first,
        };
        self.post::<Value>("/control/stars/order", &request)
            .await
            .map(drop)
    }

    /// The bot's counters.
    pub async fn counters(&self) -> Result<Counters, ControlError> {
        self.get(&format!("/control/counters{}", self.bot_query('?')))
            .await
    }

    /// Moves emulated time forward; returns the new emulated Unix time (seconds).
    pub async fn advance_time(&self, seconds: f64) -> Result<i64, ControlError> {
        let info: TimeInfo = self
            .post("/control/time/advance", &AdvanceTime { seconds })
            .await?;
        Ok(info.now)
    }

    /// Emulated Unix time (seconds).
    pub async fn emulated_now(&self) -> Result<i64, ControlError> {
        Ok(self.time().await?.now)
    }

    /// Emulated time in detail (seconds, milliseconds, offset from the wall clock).
    pub async fn time(&self) -> Result<TimeInfo, ControlError> {
        self.get("/control/time").await
    }

    /// Pending updates of the bot (debugging aid).
    pub async fn pending_updates(&self) -> Result<Vec<PendingUpdate>, ControlError> {
        self.get(&format!("/control/updates{}", self.bot_query('?')))
            .await
    }

    /// The bytes of an uploaded photo.
    pub async fn file(&self, file_id: &str) -> Result<Bytes, ControlError> {
        let (status, _, bytes) = self
            .exchange(
                HttpMethod::GET,
                &format!("/control/files/{file_id}"),
                None,
                "",
                CALL_TIMEOUT,
            )
            .await?;
        if !status.is_success() {
            return Err(ControlError::Rejected {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(bytes)
    }

    /// Calls a Bot API method with a JSON body, as a bot would (for conformance tests).
    pub async fn bot_call(
        &self,
        token: &str,
        method: &str,
        params: &Value,
    ) -> Result<BotApiResponse, ControlError> {
        self.bot_call_raw(
            token,
            method,
            serde_json::to_vec(params).map_err(|e| ControlError::Decode(e.to_string()))?,
            "application/json",
        )
        .await
    }

    /// Calls a Bot API method with a body of any content type.
    pub async fn bot_call_raw(
        &self,
        token: &str,
        method: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<BotApiResponse, ControlError> {
        let (status, retry_after, bytes) = self
            .exchange(
                HttpMethod::POST,
                &format!("/bot{token}/{method}"),
                Some(body),
                content_type,
                Duration::from_secs(120),
            )
            .await?;
        Ok(BotApiResponse {
            status: status.as_u16(),
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// Checks that the emulator answers.
    pub async fn health(&self) -> Result<(), ControlError> {
        let value: Value = self.get("/control/health").await?;
        if value == json!({"ok": true}) {
            Ok(())
        } else {
            Err(ControlError::Decode(value.to_string()))
        }
    }
}
