//! Errors of taking an initial snapshot. Each names what failed: the step, the table, the
//! column and its type, or the key a chunk started after.

use cdc_event::TableId;

use crate::{BinlogError, SourceError};

/// Server errors are boxed: `mysql_async::Error` is large, and results of every row's
/// conversion carry this type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error(transparent)]
    Source(Box<SourceError>),
    /// Reading the catalogue through the binlog module's helpers (collations).
    #[error(transparent)]
    Catalogue(Box<BinlogError>),
    #[error("snapshot configuration: {reason}")]
    Config { reason: String },
    #[error("setting up the snapshot failed at `{what}`: {source}")]
    Setup { what: &'static str, source: Box<mysql_async::Error> },
    #[error(
        "the server reported no binlog position for the snapshot ({what}); the binary log must be \
         enabled (log_bin) for a snapshot to hand off to streaming"
    )]
    NoBinlogPosition { what: &'static str },
    #[error("table {table}: reading its definition from information_schema failed: {source}")]
    TableCatalogue { table: TableId, source: Box<mysql_async::Error> },
    #[error("table {table}: {reason}")]
    Table { table: TableId, reason: String },
    #[error("table {table} column {column:?} ({column_type}): {reason}")]
    Column { table: TableId, column: String, column_type: String, reason: String },
    #[error("table {table}: reading the chunk after key {after} failed: {source}")]
    Read { table: TableId, after: String, source: Box<mysql_async::Error> },
    #[error("cannot resume the snapshot from the given progress: {reason}")]
    Resume { reason: String },
    #[error(
        "the snapshot reached {max} rows, the most a position's event index can number; \
         snapshot fewer tables per run"
    )]
    TooManyRows { max: u32 },
    #[error("finishing the snapshot transaction failed: {source}")]
    Finish { source: Box<mysql_async::Error> },
}

impl From<SourceError> for SnapshotError {
    fn from(e: SourceError) -> Self {
        SnapshotError::Source(Box::new(e))
    }
}

impl From<BinlogError> for SnapshotError {
    fn from(e: BinlogError) -> Self {
        SnapshotError::Catalogue(Box::new(e))
    }
}
