//! Errors of this crate. Each variant names the input that failed.

use std::io;

/// Everything that can go wrong while setting up or running the telemetry of a function.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// `RUST_LOG` is set but is not a valid filter directive.
    #[error("invalid RUST_LOG filter {filter:?}: {message}")]
    InvalidLogFilter { filter: String, message: String },

    /// A global tracing subscriber was already installed (by an earlier call or by a test harness).
    #[error("logging is already initialised in this process")]
    LoggingAlreadyInitialised,

    /// A metric could not be registered, usually because the registry already holds one with
    /// the same name (two `PipelineMetrics` on one `Registry`).
    #[error("cannot register metric {name:?}")]
    MetricRegistration {
        name: &'static str,
        #[source]
        source: prometheus::Error,
    },

    /// Encoding the registry as Prometheus text failed.
    #[error("cannot encode metrics as Prometheus text")]
    MetricEncoding(#[source] prometheus::Error),

    /// The ops server could not listen on the address.
    #[error("cannot bind the ops server to {addr}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },

    /// The ops server stopped with an I/O error.
    #[error("ops server failed")]
    Serve(#[source] io::Error),

    /// Installing the SIGTERM/SIGINT handlers failed.
    #[error("cannot install the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: io::Error,
    },

    /// An Alertmanager URL (`ALERTMANAGER_URL`) that alerts cannot be posted to.
    #[error("invalid Alertmanager URL {url:?}: {reason}")]
    InvalidAlertmanagerUrl { url: String, reason: String },

    /// The HTTP client that posts alerts could not be built.
    #[error("cannot build the Alertmanager HTTP client")]
    AlertClient(#[source] reqwest::Error),

    /// Something that needs a tokio runtime (signal handlers) was called outside one.
    #[error("{what} must be called inside a tokio runtime")]
    NoRuntime { what: &'static str },
}

/// Result alias used across the crate.
pub type Result<T, E = TelemetryError> = std::result::Result<T, E>;
