//! Structured logging with `tracing-subscriber`.
//!
//! The guide's `LOG_LEVEL` (DEBUG/INFO/WARN/ERROR, parsed and validated by `cdc-config`, with
//! per-target levels from the file) sets the filter; `RUST_LOG`, when set, wins so
//! an operator can turn on per-module debug output (`RUST_LOG=info,cdc_capture=debug`) without a
//! new release. Logs go to stderr: stdout stays free for tools that print results.

use std::io::IsTerminal;

use cdc_config::{LogFormat, LoggingConfig};
use tracing_subscriber::filter::EnvFilter;

use crate::error::{Result, TelemetryError};

/// Builds the filter: `rust_log` (the value of `RUST_LOG`) when present and non-empty,
/// otherwise the configured `directives` (`LoggingConfig::filter_directives`, e.g.
/// `info,cdc_capture=debug`). Pure, so the precedence is testable without touching the
/// environment.
pub fn build_filter(directives: &str, rust_log: Option<&str>) -> Result<EnvFilter> {
    let chosen = rust_log.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(directives);
    EnvFilter::try_new(chosen).map_err(|e| TelemetryError::InvalidLogFilter {
        filter: chosen.to_owned(),
        message: e.to_string(),
    })
}

/// Installs the global subscriber. Call once, early in `main`.
///
/// Returns [`TelemetryError::LoggingAlreadyInitialised`] instead of panicking when a subscriber
/// is already installed, so tests and embedded uses can call it freely and ignore that error.
pub fn init_logging(logging: &LoggingConfig) -> Result<()> {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = build_filter(&logging.filter_directives(), rust_log.as_deref())?;
    let format = logging.format;
    // Colour codes only help a person at a terminal; in a container they pollute log storage.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|_| TelemetryError::LoggingAlreadyInitialised)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn rust_log_overrides_the_configured_directives() {
        let f = build_filter("error", Some("debug")).unwrap();
        assert_eq!(f.max_level_hint(), Some(LevelFilter::DEBUG));
        let f = build_filter("error", Some("  ")).unwrap();
        assert_eq!(f.max_level_hint(), Some(LevelFilter::ERROR));
        let f = build_filter("info,cdc_capture=debug", None).unwrap();
        assert_eq!(f.max_level_hint(), Some(LevelFilter::DEBUG));
        assert!(matches!(
            build_filter("info", Some("cdc=loudest")),
            Err(TelemetryError::InvalidLogFilter { .. })
        ));
    }

    #[test]
    fn second_init_is_an_error_not_a_panic() {
        let mut logging = test_logging();
        logging.format = LogFormat::Json;
        // The first call may itself fail if another test in this binary installed a
        // subscriber first; either way the second must fail cleanly.
        let _ = init_logging(&logging);
        logging.format = LogFormat::Text;
        assert!(matches!(init_logging(&logging), Err(TelemetryError::LoggingAlreadyInitialised)));
    }

    fn test_logging() -> LoggingConfig {
        let config = cdc_config::Config::load(
            cdc_config::LoadOptions::new(cdc_config::Role::DatahubLocal).with_file(cdc_config::ConfigFile::None),
        )
        .expect("defaults load");
        config.logging
    }
}
