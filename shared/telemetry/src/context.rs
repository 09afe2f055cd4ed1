//! The bootstrap every function binary shares: one registry, the standard metrics, the health
//! registry and the shutdown token, built once in `main` and cloned into tasks.
//!
//! ```no_run
//! use cdc_telemetry::FunctionContext;
//!
//! # async fn run() -> Result<(), cdc_telemetry::TelemetryError> {
//! let ctx = FunctionContext::builder("cdc-capture").with_signal_handlers().build()?;
//! let ops = ctx.start_ops_server(([0, 0, 0, 0], 8080).into()).await?;
//! ctx.health().add_tcp_probe("database", "db:3306");
//! // ... run the function until ctx.shutdown().wait() resolves ...
//! ctx.shutdown().wait().await;
//! ops.stopped().await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::Registry;
use tokio::task::JoinHandle;

use crate::alerting::{AlertingOptions, Alerts};
use crate::error::{Result, TelemetryError};
use crate::health::Health;
use crate::metrics::{MetricsOptions, PipelineMetrics};
use crate::server::{OpsServer, OpsState};
use crate::shutdown::Shutdown;

/// What every task of a function needs from the ops side. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FunctionContext {
    name: Arc<str>,
    registry: Registry,
    metrics: Arc<PipelineMetrics>,
    health: Health,
    shutdown: Shutdown,
    metrics_enabled: bool,
    alerts: Option<Alerts>,
}

/// Builds a [`FunctionContext`]; only the function name is required.
#[derive(Debug)]
pub struct FunctionContextBuilder {
    name: String,
    registry: Option<Registry>,
    metrics_options: MetricsOptions,
    health: Option<Health>,
    shutdown: Option<Shutdown>,
    signal_handlers: bool,
    metrics_enabled: bool,
    alerting: Option<AlertingOptions>,
}

impl FunctionContextBuilder {
    /// Uses this registry instead of a fresh one, e.g. one made with
    /// `Registry::new_custom(None, Some(labels))` to add a constant `function` label when
    /// several functions share a Prometheus job.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    pub fn with_metrics_options(mut self, options: MetricsOptions) -> Self {
        self.metrics_options = options;
        self
    }

    /// Uses a health registry built with non-default settings (memory limit, timeouts).
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = Some(health);
        self
    }

    /// Uses an existing shutdown token (tests, or a parent that owns the lifecycle).
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// SIGTERM/SIGINT trigger the shutdown token. `build()` must then run inside a tokio
    /// runtime.
    pub fn with_signal_handlers(mut self) -> Self {
        self.signal_handlers = true;
        self
    }

    /// The guide's `METRICS_ENABLED` (default true); see [`OpsState::with_metrics_enabled`].
    pub fn with_metrics_enabled(mut self, enabled: bool) -> Self {
        self.metrics_enabled = enabled;
        self
    }

    /// Evaluates the guide's alerts next to the ops server (see [`Alerts`]): started by
    /// [`FunctionContext::start_ops_server`], shown in `/health` and `/metrics`.
    pub fn with_alerting(mut self, options: AlertingOptions) -> Self {
        self.alerting = Some(options);
        self
    }

    pub fn build(self) -> Result<FunctionContext> {
        let registry = self.registry.unwrap_or_default();
        let metrics = Arc::new(PipelineMetrics::with_options(
            &registry,
            self.metrics_options,
        )?);
        let alerts = self
            .alerting
            .map(|options| Alerts::new(&registry, options))
            .transpose()?;
        let shutdown = self.shutdown.unwrap_or_default();
        if self.signal_handlers {
            shutdown.listen_for_signals()?;
        }
        Ok(FunctionContext {
            name: self.name.into(),
            registry,
            metrics,
            health: self.health.unwrap_or_default(),
            shutdown,
            metrics_enabled: self.metrics_enabled,
            alerts,
        })
    }
}

impl FunctionContext {
    pub fn builder(name: impl Into<String>) -> FunctionContextBuilder {
        FunctionContextBuilder {
            name: name.into(),
            registry: None,
            metrics_options: MetricsOptions::default(),
            health: None,
            shutdown: None,
            signal_handlers: false,
            metrics_enabled: true,
            alerting: None,
        }
    }

    /// The function's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry; components may register their own metrics on it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn metrics(&self) -> &Arc<PipelineMetrics> {
        &self.metrics
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The alerts, when built [`with_alerting`](FunctionContextBuilder::with_alerting).
    pub fn alerts(&self) -> Option<&Alerts> {
        self.alerts.as_ref()
    }

    /// The state the ops endpoints serve.
    pub fn ops_state(&self) -> OpsState {
        let state = OpsState::new(
            self.registry.clone(),
            self.metrics.clone(),
            self.health.clone(),
        )
        .with_metrics_enabled(self.metrics_enabled);
        match &self.alerts {
            Some(alerts) => state.with_alerts(alerts.clone()),
            None => state,
        }
    }

    /// Binds the ops server on `addr` and serves it in a background task until this
    /// context's shutdown is triggered; with alerting, also starts the alert evaluation (its
    /// default `instance` label needs the bound port). Binding happens before this returns,
    /// so a taken port is reported here.
    pub async fn start_ops_server(&self, addr: SocketAddr) -> Result<RunningOpsServer> {
        let server = OpsServer::bind(addr, self.ops_state()).await?;
        let local_addr = server.local_addr();
        let alerts = match &self.alerts {
            Some(alerts) => Some(alerts.spawn(
                self.metrics.clone(),
                &self.name,
                local_addr,
                self.shutdown.clone(),
            )?),
            None => None,
        };
        let task = tokio::spawn(server.serve(self.shutdown.wait()));
        Ok(RunningOpsServer {
            local_addr,
            task,
            alerts,
        })
    }
}

/// An ops server serving in the background.
#[derive(Debug)]
pub struct RunningOpsServer {
    local_addr: SocketAddr,
    task: JoinHandle<Result<()>>,
    alerts: Option<JoinHandle<()>>,
}

impl RunningOpsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the server to stop (after the shutdown token fires) and returns its outcome.
    pub async fn stopped(self) -> Result<()> {
        if let Some(alerts) = self.alerts {
            // It stops on the same shutdown token; a panic in it must not hide the server's
            // outcome, and has already been reported by the panic hook.
            let _ = alerts.await;
        }
        match self.task.await {
            Ok(result) => result,
            Err(join_error) => Err(TelemetryError::Serve(std::io::Error::other(join_error))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn context_builds_without_a_runtime_unless_signals_are_asked_for() {
        let ctx = FunctionContext::builder("t").build().unwrap();
        assert_eq!(ctx.name(), "t");
        assert!(matches!(
            FunctionContext::builder("t").with_signal_handlers().build(),
            Err(TelemetryError::NoRuntime { .. })
        ));
    }
}
