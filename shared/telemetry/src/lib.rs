//! cdc-telemetry: the ops side every function binary of the pipeline mounts.
//!
//! - [`init_logging`]: `tracing` output as text or JSON, level from `LOG_LEVEL`, `RUST_LOG` wins.
//! - [`PipelineMetrics`]: the standard Prometheus metrics on a caller-owned registry, with the
//!   deployment guide's names where its alert rules query them (see [`metrics::names`]).
//! - [`Health`]: named checks, pushed by components or probed on request, plus liveness.
//! - [`OpsServer`]: `/health`, `/health/live`, `/health/ready`, `/metrics` (Prometheus text, or
//!   JSON for the guide's `jq` paths).
//! - [`Shutdown`] and [`FunctionContext`]: the bootstrap shared by every `main`.
//! - [`alerts`]: the guide's five alerts evaluated in-process ([`Alerts`], run next to the ops
//!   server), shown in `/health` and `/metrics` and optionally posted to Alertmanager
//!   ([`alertmanager`]).
//!
//! No global state besides the tracing subscriber: each process (or test) makes its own
//! registry, so several can live side by side.

mod alerting;
pub mod alertmanager;
pub mod alerts;
mod context;
mod error;
mod health;
mod logging;
pub mod metrics;
mod process;
mod server;
mod shutdown;
mod tls;
mod window;

pub use alerting::{names as alert_names, AlertingOptions, Alerts};
pub use alerts::{ActiveAlert, AlertEvaluator, AlertName, AlertRules, AlertSample, AlertState};
pub use context::{FunctionContext, FunctionContextBuilder, RunningOpsServer};
pub use error::{Result, TelemetryError};
pub use health::{Health, HealthBuilder, HealthReport, Status, MEMORY_CHECK};
pub use logging::{build_filter, init_logging};
pub use metrics::{render_text, CommitLatency, MetricsOptions, MetricsSnapshot, PipelineMetrics};
pub use process::{container_memory_limit_bytes, cpu_time, resident_memory_bytes};
pub use server::{router, OpsServer, OpsState};
pub use shutdown::Shutdown;
pub use tls::install_crypto_provider;

/// Re-exported so callers build registries and custom metrics against the same version.
pub use prometheus;
