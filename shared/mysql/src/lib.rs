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
pub use cdc_config::TableSelector;
pub use snapshot::{KeyValue, Snapshot, SnapshotConfig, SnapshotError, SnapshotProgress, TableCursor};
pub use server::{binary_logs, binlog_head, classify_flavor, server_info, BinlogHead, ServerInfo, SourceOptions};
pub use tables::{existing_tables, TableInfo};

/// Failures talking to the source server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("cannot connect to the database at {address} as {user}: {source}")]
    Connect { address: String, user: String, source: mysql_async::Error },
    #[error(
        "database.sslMode={mode} needs TLS to the database, which this version does not build; \
         use sslMode disable or prefer, or a TLS-terminating proxy"
    )]
    TlsNotSupported { mode: String },
    #[error("query for {what} failed: {source}")]
    Query { what: &'static str, source: mysql_async::Error },
}
