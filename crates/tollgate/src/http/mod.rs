//! The HTTP server: health, readiness, metrics (and, as they arrive, the Telegram webhook,
//! payment callbacks and the subscription feed).
//!
//! Every request passes the same layers: a body-size limit (413), a hard timeout, request
//! tracing, and metrics by route template. Graceful shutdown is threaded in from the caller:
//! on SIGTERM the listener stops accepting and in-flight requests finish within the
//! shutdown deadline.

pub mod client_address;
pub mod health;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::metrics::{HttpLabels, Metrics, RouteLabels};
pub use health::Readiness;

/// Largest request body any route accepts unless it sets its own, smaller limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// No request may take longer than this (every await has a deadline: docs/reliability.md A3).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of the always-present routes.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Metrics,
    pub readiness: Arc<Readiness>,
}

/// Builds the router: the base routes plus whatever the caller merges in.
pub fn router(state: HttpState, extra: Router) -> Router {
    let base = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state.clone());
    base.merge(extra)
        .layer(middleware::from_fn_with_state(state.metrics.clone(), track))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // 5xx answers (a 503 from /readyz during an outage) are expected states, reported by
        // the components themselves; the trace layer only notes them at debug level.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(
                    tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                ),
        )
}

/// The request's span names the route template, never the raw path: paths can carry
/// secrets (the subscription feed's token is one), and logs must not (docs/reliability.md H1, H4).
fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    tracing::debug_span!("request", method = %req.method(), route)
}

/// Counts requests by route template and status and measures their latency.
async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    metrics.http.in_flight.inc();
    let response = next.run(req).await;
    metrics.http.in_flight.dec();
    metrics
        .http
        .duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    metrics
        .http
        .requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Binds the listener; a busy port is a startup error naming PORT.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr}: {e}; set PORT (and BIND_ADDR) to a free address, or stop the process using it"
        )
    })
}

/// Serves until `shutdown` fires, then lets in-flight requests finish.
///
/// Returns when every connection is closed. The caller bounds the drain with the shutdown
/// deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The peer's address reaches the routes that check where a request came from.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}
