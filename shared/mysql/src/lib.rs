//! The MySQL-protocol source: MySQL, MariaDB and OceanBase's MySQL-compatible binlog service
//! all speak it. This crate holds what a capture does before and while it reads: connecting,
//! telling the server flavor, selecting tables, checking the server is fit for capture, the
//! initial snapshot ([`snapshot`]) and the binlog stream ([`binlog`]).

pub mod binlog;
pub mod capture;
mod plan;
mod preflight;
mod server;
pub mod snapshot;
mod tables;

pub use plan::CapturePlan;
pub use binlog::{BinlogError, BinlogReader, BinlogReaderConfig};
pub use capture::{Batch, BatchOptions, CaptureError, CaptureState, CaptureStream, Start, CAPTURE_STATE};
pub use preflight::{preflight, PreflightError, PreflightFailure};
pub use cdc_config::{SslMode, TableSelector};
pub use snapshot::{KeyValue, Snapshot, SnapshotConfig, SnapshotError, SnapshotProgress, TableCursor};
pub use server::{binary_logs, binlog_head, classify_flavor, server_info, BinlogHead, ServerInfo, SourceOptions, TlsOptions};
pub use tables::{existing_tables, TableInfo};

/// Failures talking to the source server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("cannot connect to the database at {address} as {user}: {source}")]
    Connect { address: String, user: String, source: mysql_async::Error },
    /// The server refused the login (access denied) where the account's REQUIRE clause is a
    /// likely cause: a plain connection, or TLS without a client certificate. `hint` says which.
    #[error("the database at {address} refused the login (sslMode={mode}): {source}{hint}")]
    LoginRefused { address: String, mode: cdc_config::SslMode, hint: &'static str, source: Box<mysql_async::Error> },
    /// A certificate setting is unusable: the file cannot be read, holds no PEM block of the
    /// right kind, or is set without its pair.
    #[error("database.{setting} {}: {problem} (sslMode={mode})", path.display())]
    TlsFile { setting: &'static str, path: std::path::PathBuf, mode: cdc_config::SslMode, problem: String },
    /// rustls refused the certificates or key while setting up TLS (bad PEM, a key that does
    /// not match the certificate, an unusable CA certificate).
    #[error("TLS set-up failed (sslMode={mode}; {files}): {source}")]
    TlsSetup { files: String, mode: cdc_config::SslMode, source: Box<mysql_async::Error> },
    /// The TLS handshake failed: certificate verification, an alert from the server, no
    /// common protocol version or cipher.
    #[error("TLS handshake with {address} failed (sslMode={mode}): {}", server::handshake_failure(source))]
    TlsHandshake { address: String, mode: cdc_config::SslMode, source: Box<mysql_async::Error> },
    /// The mode (or another setting) needs a certificate setting that is not set.
    #[error("database.{setting} is not set, which sslMode={mode} needs: {why}")]
    TlsSettingMissing { setting: &'static str, mode: cdc_config::SslMode, why: &'static str },
    /// The mode needs TLS and the server does not offer it.
    #[error(
        "the database at {address} does not offer TLS, which database.sslMode={mode} requires; \
         enable TLS on the server (ssl_cert/ssl_key) or use sslMode prefer or disable"
    )]
    TlsNotOffered { address: String, mode: cdc_config::SslMode },
    #[error("query for {what} failed: {source}")]
    Query { what: &'static str, source: mysql_async::Error },
}
