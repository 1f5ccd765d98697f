//! Health without suicide (docs/design.md §5, docs/reliability.md A1, A2).
//!
//! `/healthz` says the process is responsive — nothing else. An idle bot is healthy; no
//! amount of missing traffic makes this fail. `/readyz` follows reality: the database must
//! answer within a short deadline and the schema must be the one this binary expects.
//! Components (intake, workers) publish status details that `/readyz` shows in its body,
//! but a Telegram outage never makes a replica unready: intake still stores, the outbox
//! still retries.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::HttpState;
use crate::metrics::{ComponentLabels, PoolLabels};
use crate::store::Db;
use crate::store::migrate::{self, SchemaState};
use crate::supervisor::Statuses;

/// Default deadline of the readiness check.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` checks, plus details components publish about themselves.
pub struct Readiness {
    db: Db,
    timeout: Duration,
    details: RwLock<BTreeMap<String, Value>>,
    components: RwLock<Option<Statuses>>,
}

/// Outcome of one readiness check.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadyState {
    Ready { schema_version: i64 },
    NotReady { reason: String },
}

impl Readiness {
    pub fn new(db: Db, timeout: Duration) -> Arc<Readiness> {
        Arc::new(Readiness {
            db,
            timeout,
            details: RwLock::new(BTreeMap::new()),
            components: RwLock::new(None),
        })
    }

    /// Shows the supervised components' heartbeats and restarts in `/readyz` and `/metrics`.
    pub fn attach_components(&self, statuses: Statuses) {
        if let Ok(mut c) = self.components.write() {
            *c = Some(statuses);
        }
    }

    fn component_statuses(&self) -> BTreeMap<&'static str, crate::supervisor::ComponentStatus> {
        self.components
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(Statuses::snapshot))
            .unwrap_or_default()
    }

    /// Publishes a component's status for the `/readyz` body (does not affect readiness).
    pub fn set_detail(&self, component: &str, value: Value) {
        if let Ok(mut d) = self.details.write() {
            d.insert(component.to_owned(), value);
        }
    }

    pub fn details(&self) -> BTreeMap<String, Value> {
        self.details.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// Database reachable within the deadline and schema current.
    pub async fn check(&self) -> ReadyState {
        let probe = async {
            self.db.ping().await?;
            migrate::schema_state(&self.db).await
        };
        match tokio::time::timeout(self.timeout, probe).await {
            Err(_) => ReadyState::NotReady {
                reason: format!(
                    "database did not answer within {} ms",
                    self.timeout.as_millis()
                ),
            },
            Ok(Err(e)) => ReadyState::NotReady {
                reason: format!("database unreachable: {e}"),
            },
            Ok(Ok(SchemaState::Current)) => ReadyState::Ready {
                schema_version: migrate::latest_version(self.db.backend()),
            },
            Ok(Ok(SchemaState::Behind { database, binary })) => ReadyState::NotReady {
                reason: format!(
                    "migrations pending: database schema is at version {database}, this binary needs {binary}"
                ),
            },
            Ok(Ok(SchemaState::Ahead { database, binary })) => ReadyState::NotReady {
                reason: format!(
                    "database schema version {database} is newer than this binary's {binary}"
                ),
            },
        }
    }
}

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<HttpState>) -> Response {
    let r = &state.readiness;
    let (status, mut body) = match r.check().await {
        ReadyState::Ready { schema_version } => (
            StatusCode::OK,
            json!({
                "status": "ready",
                "database": { "backend": r.db.backend().name(), "schema_version": schema_version },
            }),
        ),
        ReadyState::NotReady { reason } => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "not_ready",
                "reason": reason,
                "database": { "backend": r.db.backend().name() },
            }),
        ),
    };
    state
        .metrics
        .db
        .ready
        .set(i64::from(status == StatusCode::OK));
    if let Some(obj) = body.as_object_mut() {
        let mut components: serde_json::Map<String, Value> = r.details().into_iter().collect();
        for (name, status) in r.component_statuses() {
            let entry = components
                .entry(name.to_owned())
                .or_insert_with(|| json!({}));
            if let (Some(e), Ok(Value::Object(s))) =
                (entry.as_object_mut(), serde_json::to_value(status))
            {
                e.extend(s);
            }
        }
        obj.insert("components".to_owned(), Value::Object(components));
        // Each job's last iteration and last success in this process (docs/reliability.md A2).
        obj.insert(
            "jobs".to_owned(),
            serde_json::to_value(state.metrics.jobs.seen()).unwrap_or_default(),
        );
    }
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<HttpState>) -> Response {
    let db = &state.readiness.db;
    let (size, idle) = db.pool_state();
    let m = &state.metrics.db;
    let idle = i64::try_from(idle).unwrap_or(i64::MAX);
    m.pool_connections
        .get_or_create(&PoolLabels { state: "idle" })
        .set(idle);
    m.pool_connections
        .get_or_create(&PoolLabels { state: "in_use" })
        .set(i64::from(size) - idle);
    m.pool_max.set(i64::from(db.max_connections()));
    let c = &state.metrics.components;
    for (name, status) in state.readiness.component_statuses() {
        let labels = ComponentLabels {
            component: name.to_owned(),
        };
        c.restarts
            .get_or_create(&labels)
            .set(i64::try_from(status.restarts).unwrap_or(i64::MAX));
        c.running
            .get_or_create(&labels)
            .set(i64::from(status.running));
        c.heartbeat_age_seconds
            .get_or_create(&labels)
            .set(status.heartbeat_age_ms as f64 / 1000.0);
    }
    state.metrics.jobs.publish();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
