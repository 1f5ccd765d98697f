//! The web chat page (`/`): chat with the bot as a Telegram user would, in a browser.
//!
//! Why this exists: `tollgate sandbox` lets a person try the whole product on one machine without
//! a Telegram account or token. The page is plain HTML/CSS/JS embedded in the binary (no build
//! step) and talks only to the control API, so everything it can do a test can do too.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

fn with_type(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`.
pub async fn index() -> Response {
    with_type(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /app.js`.
pub async fn app_js() -> Response {
    with_type(APP_JS, "text/javascript; charset=utf-8")
}

/// `GET /style.css`.
pub async fn style_css() -> Response {
    with_type(STYLE_CSS, "text/css; charset=utf-8")
}
