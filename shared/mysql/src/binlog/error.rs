//! Errors of reading and decoding the binlog stream. Each names what failed: the binlog
//! coordinates, the table, the column and its type.

use cdc_event::TableId;

use crate::SourceError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BinlogError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("replica server_id {server_id} is the source's own server_id; configure a unique one")]
    ServerIdInUse { server_id: u32 },
    #[error("setting up the binlog connection failed at `{what}`: {source}")]
    Setup { what: &'static str, source: mysql_async::Error },
    #[error("reading the binlog stream after {file}:{offset} failed: {source}")]
    Stream { file: String, offset: u64, source: mysql_async::Error },
    #[error("binlog event (type {event_type}) at {file}:{offset} is malformed: {reason}")]
    Malformed { event_type: u8, file: String, offset: u64, reason: String },
    #[error("rows event at {file}:{offset} refers to table id {table_id}, which no TABLE_MAP event announced")]
    UnknownTableId { file: String, offset: u64, table_id: u64 },
    #[error("table {table} column {column:?} ({column_type}): {reason}")]
    Column { table: TableId, column: String, column_type: String, reason: String },
    #[error("table {table}: {reason}")]
    Table { table: TableId, reason: String },
    #[error("table {table}: reading its columns from information_schema failed: {source}")]
    Catalogue { table: TableId, source: mysql_async::Error },
}
