//! Structured logging with `tracing-subscriber`.
//!
//! The guide's `LOG_LEVEL` (DEBUG/INFO/WARN/ERROR) sets the level; `RUST_LOG`, when set, wins so
//! an operator can turn on per-module debug output (`RUST_LOG=info,cdc_capture=debug`) without a
//! new release. Logs go to stderr: stdout stays free for tools that print results.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::filter::{EnvFilter, LevelFilter};

use crate::error::{Result, TelemetryError};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable single lines (timestamp, level, target, message, fields).
    #[default]
    Text,
    /// One JSON object per line, fields flattened to the top level; for ELK/filebeat.
    Json,
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "plain" | "pretty" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(TelemetryError::InvalidLogFormat {
                format: s.to_owned(),
            }),
        }
    }
}

/// Parses a level as the guide writes it (`DEBUG`, `INFO`, `WARN`, `ERROR`), in any case.
/// `TRACE`, `WARNING` and `OFF` are accepted too.
pub fn parse_log_level(level: &str) -> Result<LevelFilter> {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Ok(LevelFilter::TRACE),
        "DEBUG" => Ok(LevelFilter::DEBUG),
        "INFO" => Ok(LevelFilter::INFO),
        "WARN" | "WARNING" => Ok(LevelFilter::WARN),
        "ERROR" => Ok(LevelFilter::ERROR),
        "OFF" => Ok(LevelFilter::OFF),
        _ => Err(TelemetryError::InvalidLogLevel {
            level: level.to_owned(),
        }),
    }
}

/// Builds the filter: `rust_log` (the value of `RUST_LOG`) when present and non-empty,
/// otherwise `level`. Pure, so the precedence is testable without touching the environment.
///
/// The level is validated even when `RUST_LOG` wins, so a typo in `LOG_LEVEL` is reported
/// on every start rather than only on the day someone unsets `RUST_LOG`.
pub fn build_filter(level: &str, rust_log: Option<&str>) -> Result<EnvFilter> {
    let level = parse_log_level(level)?;
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        Some(directives) => {
            EnvFilter::try_new(directives).map_err(|e| TelemetryError::InvalidLogFilter {
                filter: directives.to_owned(),
                message: e.to_string(),
            })
        }
        None => Ok(EnvFilter::default().add_directive(level.into())),
    }
}

/// Installs the global subscriber. Call once, early in `main`.
///
/// Returns [`TelemetryError::LoggingAlreadyInitialised`] instead of panicking when a subscriber
/// is already installed, so tests and embedded uses can call it freely and ignore that error.
pub fn init_logging(level: &str, format: LogFormat) -> Result<()> {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = build_filter(level, rust_log.as_deref())?;
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

    #[test]
    fn levels_in_any_case() {
        assert_eq!(parse_log_level("debug").unwrap(), LevelFilter::DEBUG);
        assert_eq!(parse_log_level("INFO").unwrap(), LevelFilter::INFO);
        assert_eq!(parse_log_level("Warn").unwrap(), LevelFilter::WARN);
        assert_eq!(parse_log_level("warning").unwrap(), LevelFilter::WARN);
        assert_eq!(parse_log_level(" ERROR ").unwrap(), LevelFilter::ERROR);
        assert_eq!(parse_log_level("trace").unwrap(), LevelFilter::TRACE);
        assert!(matches!(
            parse_log_level("verbose"),
            Err(TelemetryError::InvalidLogLevel { level }) if level == "verbose"
        ));
    }

    #[test]
    fn rust_log_overrides_level() {
        let f = build_filter("ERROR", Some("debug")).unwrap();
        assert_eq!(f.max_level_hint(), Some(LevelFilter::DEBUG));
        let f = build_filter("ERROR", Some("  ")).unwrap();
        assert_eq!(f.max_level_hint(), Some(LevelFilter::ERROR));
        let f = build_filter("info", None).unwrap();
        assert_eq!(f.max_level_hint(), Some(LevelFilter::INFO));
        assert!(matches!(
            build_filter("info", Some("cdc=loudest")),
            Err(TelemetryError::InvalidLogFilter { .. })
        ));
        assert!(build_filter("loud", Some("debug")).is_err());
    }

    #[test]
    fn formats() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn second_init_is_an_error_not_a_panic() {
        // The first call may itself fail if another test in this binary installed a
        // subscriber first; either way the second must fail cleanly.
        let _ = init_logging("info", LogFormat::Json);
        assert!(matches!(
            init_logging("info", LogFormat::Text),
            Err(TelemetryError::LoggingAlreadyInitialised)
        ));
    }
}
