//! The REST API: routes, bearer-token check, error mapping.
//!
//! Why each change runs in its own task: hyper drops a handler's future when the client
//! disconnects. A put cancelled between "stored" and "added on the core" would leave the two
//! apart until the next re-apply; a spawned task always finishes the sequence it started.
//!
//! Every error answer is JSON `{"error": "<kind>", "message": "..."}`; a missing or wrong
//! token gets exactly `{"error":"unauthorized"}` and nothing runs.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};

use crate::agent::{Agent, AgentError};
use crate::api::{ConvergeRequest, ErrorBody, PutUserRequest};
use crate::auth::TokenDigest;
use crate::validate::{Email, UserSpec};

/// Largest request body: a converge of ~250,000 users.
const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// How long `GET /v1/health` waits for the core.
const HEALTH_LIMIT: Duration = Duration::from_secs(2);

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: &str, message: Option<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.to_owned(),
                message,
            },
        }
    }

    fn bad_request(message: String) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", Some(message))
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::BadRequest(m) => ApiError::bad_request(m),
            AgentError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", Some(m)),
            AgentError::CoreUnavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "core_unavailable", Some(m))
            }
            AgentError::CoreRejected(m) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "core_rejected", Some(m))
            }
            AgentError::Internal(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", Some(m))
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                Some(format!("the body is larger than {BODY_LIMIT} bytes")),
            );
        }
        ApiError::bad_request(format!("invalid JSON body: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The whole application.
pub(crate) fn router(agent: Arc<Agent>, token: TokenDigest) -> Router {
    let v1 = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/users", get(list_users).put(converge))
        .route("/v1/users/{email}", put(put_user).delete(remove_user))
        .route_layer(middleware::from_fn_with_state(token, require_token))
        .with_state(agent);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(v1)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", None) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(access_log))
}

async fn require_token(State(token): State<TokenDigest>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if token.accepts(presented) {
        next.run(request).await
    } else {
        tracing::warn!(
            method = %request.method(),
            path = %request.uri().path(),
            reason = if presented.is_some() { "wrong token" } else { "no token" },
            "refused an unauthenticated request"
        );
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", None).into_response()
    }
}

/// One line per request: changes at info, reads at debug. Headers are never logged.
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if method == Method::GET {
        tracing::debug!(%method, %path, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, %path, status, elapsed_ms, "request");
    }
    response
}

/// Runs an agent operation to completion even if the client goes away.
async fn detached<T, F>(operation: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, AgentError>> + Send + 'static,
{
    match tokio::spawn(operation).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(join) => {
            tracing::error!(error = %join, "request task failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                Some("the request's task failed; see the agent's log".to_owned()),
            ))
        }
    }
}

async fn put_user(
    State(agent): State<Arc<Agent>>,
    email: Result<Path<String>, PathRejection>,
    body: Result<Json<PutUserRequest>, JsonRejection>,
) -> ApiResult<crate::api::PutUserResponse> {
    let Path(email) = email?;
    let Json(body) = body?;
    let spec = UserSpec::parse(&email, &body.uuid, &body.flow, body.level)
        .map_err(ApiError::bad_request)?;
    detached(async move { agent.put_user(spec).await })
        .await
        .map(Json)
}

async fn remove_user(
    State(agent): State<Arc<Agent>>,
    email: Result<Path<String>, PathRejection>,
) -> ApiResult<crate::api::RemoveUserResponse> {
    let Path(email) = email?;
    let email = Email::parse(&email).map_err(ApiError::bad_request)?;
    detached(async move { agent.remove_user(email).await })
        .await
        .map(Json)
}

async fn list_users(State(agent): State<Arc<Agent>>) -> ApiResult<crate::api::ListUsersResponse> {
    detached(async move { agent.list_users().await })
        .await
        .map(Json)
}

async fn converge(
    State(agent): State<Arc<Agent>>,
    body: Result<Json<ConvergeRequest>, JsonRejection>,
) -> ApiResult<crate::api::ConvergeResponse> {
    let Json(request) = body?;
    detached(async move { agent.converge(&request).await })
        .await
        .map(Json)
}

async fn health(State(agent): State<Arc<Agent>>) -> ApiResult<crate::api::HealthResponse> {
    agent
        .health(HEALTH_LIMIT)
        .await
        .map(Json)
        .map_err(ApiError::from)
}
