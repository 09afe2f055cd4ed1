//! The one error type of this crate; every variant names the table, column or option that failed.

use arrow_schema::ArrowError;
use parquet::errors::ParquetError;

/// Why mapping, building or writing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A table column is named like a metadata column (or a generated companion column), so the
    /// flat shape cannot hold both.
    #[error("table {table}: column {column:?} clashes with the generated column of the same name")]
    ColumnNameClash { table: String, column: String },

    /// An event was appended to the builder of another table or schema version.
    #[error("builder for {table} v{version} got an event of {event_table} v{event_version}")]
    SchemaMismatch {
        table: String,
        version: u64,
        event_table: String,
        event_version: u64,
    },

    /// The row image the flat shape needs is absent (after for c/u/r, before for d).
    #[error("table {table}: {op} event at {position} has no {image} image")]
    MissingImage {
        table: String,
        op: &'static str,
        image: &'static str,
        position: String,
    },

    /// The row has a different number of values than the schema has columns.
    #[error(
        "table {table}: row at {position} has {actual} values, the schema has {expected} columns"
    )]
    RowLength {
        table: String,
        position: String,
        expected: usize,
        actual: usize,
    },

    /// A value does not belong to, or does not fit, its column (boxed: it is the largest
    /// variant and errors travel in every `Result` of the hot path).
    #[error(transparent)]
    BadValue(Box<BadValue>),

    /// NULL in a column declared NOT NULL.
    #[error("table {table}, column {column}: NULL at {position} in a NOT NULL column")]
    NullInNotNullColumn {
        table: String,
        column: String,
        position: String,
    },

    /// A format / compression pair this crate refuses to write.
    #[error("{format} output cannot use {compression} compression: {reason}")]
    UnsupportedCompression {
        format: &'static str,
        compression: &'static str,
        reason: &'static str,
    },

    /// A writer option out of range.
    #[error("invalid {format} option {option}: {reason}")]
    InvalidOption {
        format: &'static str,
        option: &'static str,
        reason: String,
    },

    /// A batch column whose Arrow type the text writers do not render.
    #[error("{format} writer: column {column} has Arrow type {data_type}, which it cannot write")]
    UnsupportedArrowType {
        format: &'static str,
        column: String,
        data_type: String,
    },

    /// A batch whose schema differs from the one the writer was created with.
    #[error("{format} writer for {table}: batch schema differs from the writer schema: {detail}")]
    BatchSchemaMismatch {
        format: &'static str,
        table: String,
        detail: String,
    },

    /// Writing to the sink (or compressing) failed.
    #[error("{format} writer for {table}: I/O error: {source}")]
    Io {
        format: &'static str,
        table: String,
        #[source]
        source: std::io::Error,
    },

    /// The Parquet encoder failed.
    #[error("parquet writer for {table}: {source}")]
    Parquet {
        table: String,
        #[source]
        source: ParquetError,
    },

    /// Arrow refused the arrays (a bug in the builder rather than bad input).
    #[error("table {table}: assembling the record batch failed: {source}")]
    Arrow {
        table: String,
        #[source]
        source: ArrowError,
    },
}

/// Details of [`FormatError::BadValue`].
#[derive(Debug, thiserror::Error)]
#[error("table {table}, column {column} ({column_type}): {value_kind} value at {position} rejected: {reason}")]
#[non_exhaustive]
pub struct BadValue {
    pub table: String,
    pub column: String,
    /// The MySQL column type text, e.g. `DECIMAL(12,2)`.
    pub column_type: String,
    /// The `cdc_event::Value` variant name.
    pub value_kind: &'static str,
    /// The event's Position text.
    pub position: String,
    pub reason: String,
}
