//! The Bot API over HTTP: `/bot<token>/<method>`.
//!
//! Why this exists: this is the surface a bot talks to, so it follows the real server in the
//! details client libraries depend on — the `{ok, result}` envelope, 401 `Unauthorized` for an
//! unknown token, 404 `Not Found` for an unknown method, case-insensitive method names, parameters
//! from query, form, JSON or multipart, a `Retry-After` header on 429s. Injected faults are
//! applied here, before a method runs.
//!
//! An answer given before the parameters are read (unknown token, unknown method, an injected
//! fault) first reads the request body and throws it away, bounded by [`MAX_BODY_BYTES`] and
//! [`DRAIN_TIMEOUT`]: answering and closing while the client is still sending makes the kernel
//! reset the connection, and a client uploading multipart (aiogram always does) then sees
//! "broken pipe" or "connection reset" instead of the 401 or 404.

mod messages;
mod other;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;

use crate::counters::bump;
use crate::error::ApiError;
use crate::faults::FaultKind;
use crate::methods::Method;
use crate::params::{MAX_BODY_BYTES, Params};
use crate::server::App;
use crate::state::BotState;

/// A successful answer: the JSON of `result`, and an optional `description`.
#[derive(Debug)]
pub struct ApiOk {
    /// JSON text of the result.
    pub result: String,
    /// `description` (setWebhook says "Webhook was set").
    pub description: Option<&'static str>,
}

impl ApiOk {
    fn json(result: String) -> Self {
        Self {
            result,
            description: None,
        }
    }

    fn value(value: &serde_json::Value) -> Self {
        Self::json(value.to_string())
    }

    fn r#true() -> Self {
        Self::json("true".to_owned())
    }

    fn into_response(self) -> Response {
        let mut body = String::with_capacity(self.result.len() + 64);
        body.push_str("{\"ok\":true,\"result\":");
        body.push_str(&self.result);
        if let Some(description) = self.description {
            body.push_str(",\"description\":");
            body.push_str(&serde_json::Value::from(description).to_string());
        }
        body.push('}');
        let mut response = Response::new(Body::from(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Runs one method for `bot`.
pub async fn execute(
    bot: &Arc<BotState>,
    method: Method,
    params: Params,
) -> Result<ApiOk, ApiError> {
    match method {
        Method::GetMe => Ok(ApiOk::json(
            serde_json::to_string(&crate::model::MeJson(&bot.identity)).unwrap_or_default(),
        )),
        Method::GetUpdates => crate::updates::get_updates(bot, &params)
            .await
            .map(ApiOk::json),
        Method::SetWebhook | Method::DeleteWebhook => {
            let answer =
                crate::webhook::set_webhook(bot, &params, method == Method::DeleteWebhook)?;
            Ok(ApiOk {
                result: "true".to_owned(),
                description: Some(answer.description),
            })
        }
        Method::GetWebhookInfo => Ok(ApiOk::value(&crate::webhook::webhook_info(bot))),
        Method::SendMessage => messages::send_message(bot, &params),
        Method::SendPhoto => messages::send_photo(bot, &params),
        Method::SendDocument => messages::send_document(bot, &params),
        Method::EditMessageText => messages::edit_message_text(bot, &params),
        Method::EditMessageCaption => messages::edit_message_caption(bot, &params),
        Method::EditMessageReplyMarkup => messages::edit_message_reply_markup(bot, &params),
        Method::DeleteMessage => messages::delete_message(bot, &params),
        Method::SendChatAction => messages::send_chat_action(bot, &params),
        Method::AnswerCallbackQuery => other::answer_callback_query(bot, &params),
        Method::SetMyCommands => other::set_my_commands(bot, &params),
        Method::GetMyCommands => other::get_my_commands(bot, &params),
        Method::DeleteMyCommands => other::delete_my_commands(bot, &params),
        Method::SendInvoice => messages::send_invoice(bot, &params),
        Method::CreateInvoiceLink => other::create_invoice_link(bot, &params),
        Method::AnswerPreCheckoutQuery => other::answer_pre_checkout_query(bot, &params),
        Method::RefundStarPayment => {
            crate::payments::refund(bot, &params).map(|()| ApiOk::r#true())
        }
        Method::GetStarTransactions => Ok(ApiOk::value(&crate::payments::star_transactions(
            bot, &params,
        ))),
        Method::GetMyStarBalance => Ok(ApiOk::value(&crate::payments::star_balance(bot))),
        Method::EditUserStarSubscription => {
            crate::payments::edit_subscription(bot, &params).map(|()| ApiOk::r#true())
        }
    }
}

/// The axum handler of `/{bot<token>}/{method}`.
pub async fn handle(
    State(app): State<Arc<App>>,
    Path((bot_segment, method_name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let Some(token) = bot_segment.strip_prefix("bot") else {
        drain(request).await;
        return ApiError::not_found().into_response();
    };
    let Some(bot) = app.bot_by_token(token) else {
        if let Some(default) = app.bots.first() {
            bump(&default.counters.unauthorized_calls);
        }
        drain(request).await;
        return ApiError::unauthorized().into_response();
    };
    let Some(method) = Method::from_name(&method_name) else {
        bump(&bot.counters.unknown_method_calls);
        drain(request).await;
        return ApiError::not_found().into_response();
    };
    bot.counters.count_call(method);
    if let Some(fault) = bot.faults.take(method) {
        bump(&bot.counters.faults_fired);
        drain(request).await;
        return fault_response(&bot, fault).await;
    }
    let params = match Params::from_request(request).await {
        Ok(params) => params,
        Err(error) => {
            bot.counters.count_error(error.code);
            return error.into_response();
        }
    };
    match execute(&bot, method, params).await {
        Ok(ok) => ok.into_response(),
        Err(error) => {
            tracing::debug!(method = method.name(), code = error.code, description = %error.description, "bot api error");
            bot.counters.count_error(error.code);
            error.into_response()
        }
    }
}

/// 404 for paths that are not `/bot<token>/<method>`.
pub async fn not_found(request: Request) -> Response {
    drain(request).await;
    ApiError::not_found().into_response()
}

/// The longest an early answer waits for the rest of a body it is going to throw away.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and discards the request body (at most [`MAX_BODY_BYTES`], for at most
/// [`DRAIN_TIMEOUT`]), so that the answer that follows reaches a client still sending.
async fn drain(request: Request) {
    let mut body = request.into_body();
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen = seen.saturating_add(data.len());
                if seen > MAX_BODY_BYTES {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, read).await;
}

const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n";

async fn fault_response(bot: &BotState, fault: FaultKind) -> Response {
    match fault {
        FaultKind::ServerError => {
            bot.counters.count_error(500);
            ApiError::internal().into_response()
        }
        FaultKind::BadGateway => {
            bot.counters.count_error(502);
            let mut response = (StatusCode::BAD_GATEWAY, BAD_GATEWAY_HTML).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            response
        }
        FaultKind::TooManyRequests { retry_after } => {
            bot.counters.count_error(429);
            ApiError::too_many_requests(retry_after).into_response()
        }
        FaultKind::Hang => {
            // Counted when it starts: the client usually gives up before the answer.
            bot.counters.count_error(500);
            let mut shutdown = bot.shared.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(bot.shared.config.hang_duration) => {}
                _ = shutdown.changed() => {}
            }
            ApiError::internal().into_response()
        }
        FaultKind::DropConnection => {
            bot.counters.count_error(500);
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::new(BrokenBody))
                .unwrap_or_else(|_| ApiError::internal().into_response())
        }
    }
}

/// A response body that fails immediately, so the server aborts the connection mid-response.
struct BrokenBody;

impl http_body::Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault: connection dropped",
        ))))
    }
}
