//! The ops HTTP server: `/health`, `/health/live`, `/health/ready`, `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::Registry;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use crate::alerting::Alerts;
use crate::error::{Result, TelemetryError};
use crate::health::{now_rfc3339, Health, HealthReport};
use crate::metrics::{render_text, PipelineMetrics, TEXT_CONTENT_TYPE};

/// What the ops endpoints read: the registry rendered by `/metrics`, the standard metrics
/// (refreshed before each scrape and summarised in `/health`) and the health checks.
#[derive(Debug, Clone)]
pub struct OpsState {
    registry: Registry,
    metrics: Arc<PipelineMetrics>,
    health: Health,
    metrics_enabled: bool,
    alerts: Option<Alerts>,
}

impl OpsState {
    pub fn new(registry: Registry, metrics: Arc<PipelineMetrics>, health: Health) -> Self {
        Self {
            registry,
            metrics,
            health,
            metrics_enabled: true,
            alerts: None,
        }
    }

    /// Shows these alerts in `/health`: listed under `alerts`, and a firing one makes the
    /// status `DEGRADED` (see [`Alerts`]).
    pub fn with_alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The guide's `METRICS_ENABLED`. When false, `/metrics` answers 404 with a short message
    /// (so a scraper's target shows as down with a clear reason); the counters still run and
    /// `/health` still reports its `metrics` summary, which costs nothing extra.
    pub fn with_metrics_enabled(mut self, enabled: bool) -> Self {
        self.metrics_enabled = enabled;
        self
    }
}

/// A bound, not yet serving, ops server. Binding first lets the caller learn the port (tests
/// bind `127.0.0.1:0`) and fail early on a taken port before starting the pipeline.
#[derive(Debug)]
pub struct OpsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: OpsState,
}

impl OpsServer {
    pub async fn bind(addr: SocketAddr, state: OpsState) -> Result<Self> {
        let bind_error = |source| TelemetryError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
    /// and returns.
    pub async fn serve<F>(self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tracing::info!(addr = %self.local_addr, "ops server listening");
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(TelemetryError::Serve)?;
        tracing::info!(addr = %self.local_addr, "ops server stopped");
        Ok(())
    }
}

/// The routes, exposed for embedding in another axum app.
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

fn status_code(up: bool) -> StatusCode {
    if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn health(State(state): State<OpsState>) -> Response {
    let report = state.health.report().await;
    let snapshot = state.metrics.snapshot();
    let alerts = state.alerts.as_ref().map(Alerts::active);
    let firing = alerts
        .iter()
        .flatten()
        .any(|a| a.state == crate::alerts::AlertState::Firing);
    // DEGRADED keeps HTTP 200: the function works, only worse than it should. DOWN (a failed
    // check, or dead) wins over it.
    let status = if report.is_up() && firing {
        "DEGRADED"
    } else {
        report.status_str()
    };
    let mut body = json!({
        "status": status,
        "timestamp": now_rfc3339(),
        "checks": report.checks_json(),
        "metrics": {
            "recordsCollected": snapshot.records.collected.count,
            "recordsSent": snapshot.records.sent.count,
            "recordsFailed": snapshot.records.failed.count,
            "collectRate": snapshot.records.collected.rate,
        },
    });
    if !report.details.is_empty() {
        body["details"] = Value::Object(report.details.clone());
    }
    if let Some(alerts) = alerts {
        body["alerts"] = serde_json::to_value(alerts).unwrap_or(Value::Null);
    }
    (status_code(report.is_up()), Json(body)).into_response()
}

async fn live(State(state): State<OpsState>) -> Response {
    let liveness = state.health.liveness();
    let mut body = json!({ "status": liveness.as_str() });
    if let Some(reason) = liveness.reason() {
        body["reason"] = Value::String(reason.to_owned());
    }
    (status_code(liveness.is_up()), Json(body)).into_response()
}

async fn ready(State(state): State<OpsState>) -> Response {
    let report: HealthReport = state.health.report().await;
    let mut body = json!({
        "status": report.status_str(),
        "checks": report.checks_json(),
    });
    let failing = report.failing();
    if !failing.is_empty() {
        let failing: Map<String, Value> = failing
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        body["failing"] = Value::Object(failing);
    }
    (status_code(report.is_up()), Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
struct MetricsQuery {
    format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricsFormat {
    Text,
    Json,
}

/// `?format=` wins; otherwise JSON only when the client names `application/json` in
/// `Accept`. Prometheus sends `text/plain`/openmetrics types and `curl` sends `*/*`, both of
/// which get the text format.
fn metrics_format(query: &MetricsQuery, headers: &HeaderMap) -> Result<MetricsFormat, String> {
    if let Some(format) = &query.format {
        return match format.to_ascii_lowercase().as_str() {
            "json" => Ok(MetricsFormat::Json),
            "text" | "prometheus" => Ok(MetricsFormat::Text),
            other => Err(format!(
                "unknown format {other:?}: use `json` or `prometheus`\n"
            )),
        };
    }
    let wants_json = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    Ok(if wants_json {
        MetricsFormat::Json
    } else {
        MetricsFormat::Text
    })
}

async fn metrics(
    State(state): State<OpsState>,
    Query(query): Query<MetricsQuery>,
    headers: HeaderMap,
) -> Response {
    if !state.metrics_enabled {
        return (
            StatusCode::NOT_FOUND,
            "metrics are disabled (METRICS_ENABLED=false)\n",
        )
            .into_response();
    }
    match metrics_format(&query, &headers) {
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
        Ok(MetricsFormat::Json) => Json(state.metrics.snapshot()).into_response(),
        Ok(MetricsFormat::Text) => match render_text(&state.registry, &state.metrics) {
            Ok(text) => ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], text).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot render metrics");
                (StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n").into_response()
            }
        },
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: try /health, /health/live, /health/ready or /metrics\n",
    )
        .into_response()
}
