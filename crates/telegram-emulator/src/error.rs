//! Bot API errors and the `{ok, result}` / `{ok:false, error_code, description, parameters}`
//! envelope.
//!
//! Why this exists: client libraries (teloxide among them) match error descriptions by exact
//! string, so the emulator must produce the same words, status codes and headers as the real Bot
//! API server. All error texts live here, with the server source they were taken from.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// An error answer of the Bot API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status and `error_code`.
    pub code: u16,
    /// The `description` field, e.g. `"Bad Request: chat not found"`.
    pub description: Cow<'static, str>,
    /// `parameters.retry_after` (and the `Retry-After` header) for 429 answers.
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(code: u16, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    /// 400 with the `"Bad Request: "` prefix added.
    pub fn bad_request(message: impl AsRef<str>) -> Self {
        Self::new(400, format!("Bad Request: {}", message.as_ref()))
    }

    /// 400 with a fixed, complete description.
    pub const fn bad_request_static(description: &'static str) -> Self {
        Self {
            code: 400,
            description: Cow::Borrowed(description),
            retry_after: None,
        }
    }

    /// 403 with a complete description.
    pub const fn forbidden(description: &'static str) -> Self {
        Self {
            code: 403,
            description: Cow::Borrowed(description),
            retry_after: None,
        }
    }

    /// 409 with a complete description.
    pub const fn conflict(description: &'static str) -> Self {
        Self {
            code: 409,
            description: Cow::Borrowed(description),
            retry_after: None,
        }
    }

    /// 429 `"Too Many Requests: retry after N"` with `parameters.retry_after` (TBA `Query.cpp`).
    pub fn too_many_requests(retry_after: u32) -> Self {
        Self {
            code: 429,
            description: Cow::Owned(format!("Too Many Requests: retry after {retry_after}")),
            retry_after: Some(retry_after),
        }
    }

    /// 401 `"Unauthorized"`: the token is unknown.
    pub const fn unauthorized() -> Self {
        Self {
            code: 401,
            description: Cow::Borrowed("Unauthorized"),
            retry_after: None,
        }
    }

    /// 404 `"Not Found"`: the method (or path) is unknown.
    pub const fn not_found() -> Self {
        Self {
            code: 404,
            description: Cow::Borrowed("Not Found"),
            retry_after: None,
        }
    }

    /// 500 `"Internal Server Error"`.
    pub const fn internal() -> Self {
        Self {
            code: 500,
            description: Cow::Borrowed("Internal Server Error"),
            retry_after: None,
        }
    }

    /// 413 for bodies above the size limit.
    pub const fn too_large() -> Self {
        Self {
            code: 413,
            description: Cow::Borrowed("Request Entity Too Large"),
            retry_after: None,
        }
    }

    /// Converts a validation message in TBA's internal style (capitalised, no prefix) into the
    /// public description the way TBA's `fail_query_with_error` does: `"Bad Request: "` plus the
    /// message with its first letter lowered, unless the message is an upper-case MTProto name.
    pub fn from_status_message(message: &str) -> Self {
        let bytes = message.as_bytes();
        let keep_case = bytes.len() >= 2 && (bytes[1] == b'_' || bytes[1].is_ascii_uppercase());
        if keep_case || message.starts_with("Bad Request") {
            if message.starts_with("Bad Request") {
                return Self::new(400, message.to_owned());
            }
            return Self::bad_request(message);
        }
        let mut chars = message.chars();
        let lowered = match chars.next() {
            Some(first) => first.to_lowercase().chain(chars).collect::<String>(),
            None => String::new(),
        };
        Self::bad_request(lowered)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Bytes {
        // Field order as Telegram writes it: ok, error_code, description, parameters.
        let description = serde_json::Value::from(self.description.as_ref()).to_string();
        let body = match self.retry_after {
            Some(retry_after) => format!(
                "{{\"ok\":false,\"error_code\":{},\"description\":{description},\"parameters\":{{\"retry_after\":{retry_after}}}}}",
                self.code
            ),
            None => format!(
                "{{\"ok\":false,\"error_code\":{},\"description\":{description}}}",
                self.code
            ),
        };
        Bytes::from(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.description)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(retry_after) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&retry_after.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// Exact descriptions of the errors the emulator reproduces. Sources: TBA `Client.cpp`
/// (`fail_query_with_error`, `check_chat`, `check_message`, `process_*_query`), tdlib
/// `MessagesManager.cpp` / `MessageEntity.cpp`, and MTProto error names passed through as
/// `Bad Request: NAME`.
pub mod text {
    /// `chat_id` missing.
    pub const CHAT_ID_EMPTY: &str = "Bad Request: chat_id is empty";
    /// Unknown chat.
    pub const CHAT_NOT_FOUND: &str = "Bad Request: chat not found";
    /// The user blocked the bot.
    pub const BOT_BLOCKED: &str = "Forbidden: bot was blocked by the user";
    /// The user exists but never started the bot.
    pub const CANT_INITIATE: &str = "Forbidden: bot can't initiate conversation with a user";
    /// Empty message text.
    pub const TEXT_EMPTY: &str = "Bad Request: message text is empty";
    /// Text over 4096 characters.
    pub const TEXT_TOO_LONG: &str = "Bad Request: message is too long";
    /// Caption over 1024 characters.
    pub const CAPTION_TOO_LONG: &str = "Bad Request: message caption is too long";
    /// Edit with identical content (TBA's expansion of `MESSAGE_NOT_MODIFIED`).
    pub const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
    /// Edit of an unknown message.
    pub const EDIT_NOT_FOUND: &str = "Bad Request: message to edit not found";
    /// Delete of an unknown message.
    pub const DELETE_NOT_FOUND: &str = "Bad Request: message to delete not found";
    /// Delete not allowed (older than 48 h).
    pub const CANT_DELETE: &str = "Bad Request: message can't be deleted";
    /// Edit of someone else's message.
    pub const CANT_EDIT: &str = "Bad Request: message can't be edited";
    /// editMessageText on a message without text.
    pub const NO_TEXT_TO_EDIT: &str = "Bad Request: there is no text in the message to edit";
    /// editMessageCaption on a message without media.
    pub const NO_CAPTION_TO_EDIT: &str = "Bad Request: there is no caption in the message to edit";
    /// Neither chat_id/message_id nor inline_message_id.
    pub const MESSAGE_ID_NOT_SPECIFIED: &str = "Bad Request: message identifier is not specified";
    /// deleteMessage without chat_id.
    pub const CHAT_ID_NOT_SPECIFIED: &str = "Bad Request: chat identifier is not specified";
    /// Stale or unknown callback/pre-checkout query (TBA's expansion of `QUERY_ID_INVALID`).
    pub const QUERY_TOO_OLD: &str =
        "Bad Request: query is too old and response timeout expired or query ID is invalid";
    /// callback_data longer than 64 bytes.
    pub const BUTTON_DATA_INVALID: &str = "Bad Request: BUTTON_DATA_INVALID";
    /// getUpdates while a webhook is set.
    pub const CONFLICT_WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
    /// A newer getUpdates request replaced a waiting one.
    pub const CONFLICT_OTHER_POLLER: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
    /// setWebhook replaced a waiting getUpdates request.
    pub const CONFLICT_SET_WEBHOOK: &str = "Conflict: terminated by setWebhook request";
    /// Stars invoice rules violated (one price, empty provider token, no tips).
    pub const STARS_INVOICE_INVALID: &str = "Bad Request: STARS_INVOICE_INVALID";
    /// Unknown or missing payment provider token for a non-XTR invoice.
    pub const PAYMENT_PROVIDER_INVALID: &str = "Bad Request: PAYMENT_PROVIDER_INVALID";
    /// Payload longer than 128 bytes.
    pub const INVOICE_PAYLOAD_INVALID: &str = "Bad Request: INVOICE_PAYLOAD_INVALID";
    /// refundStarPayment of a charge already refunded.
    pub const CHARGE_ALREADY_REFUNDED: &str = "Bad Request: CHARGE_ALREADY_REFUNDED";
    /// refundStarPayment of an unknown charge.
    pub const CHARGE_NOT_FOUND: &str = "Bad Request: CHARGE_NOT_FOUND";
    /// Photo bytes that are not an image.
    pub const IMAGE_PROCESS_FAILED: &str = "Bad Request: IMAGE_PROCESS_FAILED";
    /// sendDocument of a file above the bots' upload limit (TBA `Client.cpp`, the size check of
    /// an uploaded input file).
    pub const FILE_TOO_BIG: &str = "Bad Request: file is too big";
    /// sendDocument without a document.
    pub const NO_DOCUMENT: &str = "Bad Request: there is no document in the request";
    /// sendPhoto with an unknown file id.
    pub const WRONG_FILE_ID: &str = "Bad Request: wrong file identifier/HTTP URL specified";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_are_lowered_like_tba() {
        assert_eq!(
            ApiError::from_status_message("Message text is empty").description,
            "Bad Request: message text is empty"
        );
        assert_eq!(
            ApiError::from_status_message("BUTTON_DATA_INVALID").description,
            "Bad Request: BUTTON_DATA_INVALID"
        );
        assert_eq!(
            ApiError::from_status_message("Can't parse entities: Unsupported start tag \"x\"")
                .description,
            "Bad Request: can't parse entities: Unsupported start tag \"x\""
        );
    }

    #[test]
    fn too_many_requests_has_parameters() {
        let body = ApiError::too_many_requests(7).body();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "ok": false,
                "error_code": 429,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7}
            })
        );
    }
}
