//! Request parameters of a Bot API call, however they were sent.
//!
//! Why this exists: the Bot API accepts the same parameters as a URL query string, a form body,
//! a JSON object or `multipart/form-data`, and the real server (TBA, through tdlib's `HttpReader`)
//! normalises all of them into a list of string arguments: JSON strings are taken as they are and
//! any other JSON value (number, object, array, `true`) as its JSON text. Methods then parse the
//! strings leniently (`td::to_integer`, `to_bool`). Doing the same here makes the emulator accept
//! exactly what Telegram accepts — e.g. `chat_id` as a number or a string, `reply_markup` as an
//! object or a JSON-encoded string — and fail the same way on malformed input.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use bytes::Bytes;

use crate::error::ApiError;

/// Largest accepted request body (TBA's default `max_post_size` is 50 MB).
pub const MAX_BODY_BYTES: usize = 50 << 20;

/// A file sent in a multipart request.
#[derive(Clone, Debug)]
pub struct UploadedFile {
    /// The form field name.
    pub field: String,
    /// The file name given by the client.
    pub file_name: String,
    /// The bytes.
    pub data: Bytes,
}

/// The normalised arguments of one call. Lookups return the first occurrence, as TBA does.
#[derive(Clone, Debug, Default)]
pub struct Params {
    args: Vec<(String, String)>,
    files: Vec<UploadedFile>,
}

impl Params {
    /// Parameters from explicit pairs (used by tests and by internal calls).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            args: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            files: Vec::new(),
        }
    }

    /// Parameters from a JSON object, with TBA's rule for non-string values.
    pub fn from_json_object(object: &serde_json::Map<String, serde_json::Value>) -> Self {
        let mut params = Self::default();
        params.push_json_object(object);
        params
    }

    fn push_json_object(&mut self, object: &serde_json::Map<String, serde_json::Value>) {
        for (key, value) in object {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            self.args.push((key.clone(), text));
        }
    }

    /// The argument's value, or `""` when it is absent (TBA's `query->arg`).
    pub fn arg(&self, name: &str) -> &str {
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether the argument was sent at all.
    pub fn has(&self, name: &str) -> bool {
        self.args.iter().any(|(k, _)| k == name)
    }

    /// TBA's `get_integer_arg`: lenient parse, default when empty, clamped to `[min, max]`.
    pub fn int_arg(&self, name: &str, default: i64, min: i64, max: i64) -> i64 {
        let raw = self.arg(name);
        let value = if raw.is_empty() {
            default
        } else {
            lenient_int(raw)
        };
        value.clamp(min, max)
    }

    /// TBA's `to_bool`: `true`, `yes` or `1`, case-insensitive, surrounding spaces ignored.
    pub fn bool_arg(&self, name: &str) -> bool {
        let value = self.arg(name).trim().to_ascii_lowercase();
        value == "true" || value == "yes" || value == "1"
    }

    /// A required string argument: `Parameter "name" is required` when empty.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        let value = self.arg(name);
        if value.is_empty() {
            return Err(ApiError::bad_request(format!(
                "parameter \"{name}\" is required"
            )));
        }
        Ok(value)
    }

    /// The uploaded file sent under `field`.
    pub fn file(&self, field: &str) -> Option<&UploadedFile> {
        self.files.iter().find(|f| f.field == field)
    }

    /// Reads all parameters of `request`: query string first, then the body according to its
    /// content type.
    pub async fn from_request(request: Request<Body>) -> Result<Self, ApiError> {
        let mut params = Self::default();
        if let Some(query) = request.uri().query() {
            params.push_form(query.as_bytes());
        }
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(request, &())
                .await
                .map_err(|_| ApiError::bad_request("can't parse multipart/form-data"))?;
            loop {
                let field = match multipart.next_field().await {
                    Ok(Some(field)) => field,
                    Ok(None) => break,
                    Err(e) if e.status().as_u16() == 413 => return Err(ApiError::too_large()),
                    Err(_) => return Err(ApiError::bad_request("can't parse multipart/form-data")),
                };
                let name = field.name().unwrap_or("").to_owned();
                let file_name = field.file_name().map(str::to_owned);
                let data = field.bytes().await.map_err(|e| {
                    if e.status().as_u16() == 413 {
                        ApiError::too_large()
                    } else {
                        ApiError::bad_request("can't parse multipart/form-data")
                    }
                })?;
                match file_name {
                    Some(file_name) => params.files.push(UploadedFile {
                        field: name,
                        file_name,
                        data,
                    }),
                    None => params
                        .args
                        .push((name, String::from_utf8_lossy(&data).into_owned())),
                }
            }
            return Ok(params);
        }
        let body = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::too_large())?;
        if body.is_empty() {
            return Ok(params);
        }
        if content_type.starts_with("application/json") {
            // Like TBA, a body that is not a JSON object is ignored (the call then fails on the
            // missing parameters, e.g. "chat_id is empty").
            if let Ok(serde_json::Value::Object(object)) =
                serde_json::from_slice::<serde_json::Value>(&body)
            {
                params.push_json_object(&object);
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded")
            || content_type.is_empty()
        {
            params.push_form(&body);
        }
        Ok(params)
    }

    fn push_form(&mut self, form: &[u8]) {
        for pair in form.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            self.args.push((percent_decode(key), percent_decode(value)));
        }
    }
}

/// `td::to_integer`: optional sign, then digits up to the first non-digit; 0 if there are none.
pub fn lenient_int(text: &str) -> i64 {
    let text = text.trim_start();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let mut value: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(i64::from(b - b'0'));
    }
    if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

/// Strict integer parse (`td::to_integer_safe`): the whole string must be a number.
pub fn strict_int(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok()
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => {
                let hex = |c: u8| -> Option<u8> {
                    match c {
                        b'0'..=b'9' => Some(c - b'0'),
                        b'a'..=b'f' => Some(c - b'a' + 10),
                        b'A'..=b'F' => Some(c - b'A' + 10),
                        _ => None,
                    }
                };
                match (hex(input[i + 1]), hex(input[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_int_matches_td_to_integer() {
        assert_eq!(lenient_int("123"), 123);
        assert_eq!(lenient_int("-42abc"), -42);
        assert_eq!(lenient_int("abc"), 0);
        assert_eq!(lenient_int("1.5"), 1);
        assert_eq!(lenient_int(""), 0);
    }

    #[test]
    fn json_non_strings_become_json_text() {
        let object = serde_json::json!({
            "chat_id": 5,
            "text": "hi",
            "reply_markup": {"inline_keyboard": []},
            "flag": true
        });
        let serde_json::Value::Object(map) = object else {
            unreachable!()
        };
        let params = Params::from_json_object(&map);
        assert_eq!(params.arg("chat_id"), "5");
        assert_eq!(params.arg("text"), "hi");
        assert_eq!(params.arg("reply_markup"), r#"{"inline_keyboard":[]}"#);
        assert!(params.bool_arg("flag"));
        assert_eq!(params.arg("missing"), "");
    }

    #[test]
    fn form_decoding() {
        let mut params = Params::default();
        params.push_form(b"text=a+b%21&chat_id=7&empty=&odd=%zz%");
        assert_eq!(params.arg("text"), "a b!");
        assert_eq!(params.arg("chat_id"), "7");
        assert!(params.has("empty"));
        assert_eq!(params.arg("odd"), "%zz%");
    }

    #[test]
    fn int_arg_clamps_and_defaults() {
        let params = Params::from_pairs([("timeout", "500"), ("limit", "0")]);
        assert_eq!(params.int_arg("timeout", 0, 0, 50), 50);
        assert_eq!(params.int_arg("limit", 100, 1, 100), 1);
        assert_eq!(params.int_arg("offset", 0, i64::MIN, i64::MAX), 0);
    }
}
