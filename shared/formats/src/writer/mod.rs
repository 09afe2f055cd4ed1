//! Writers of record batches to files: Parquet, CSV and JSON lines, behind [`FormatWriter`].
//!
//! Rolling is the caller's decision: [`FormatWriter::bytes_written`] and
//! [`FormatWriter::in_progress_size`] tell how big the file is and will be.
//!
//! Supported compressions:
//!
//! | format | none | gzip | snappy | zstd |
//! | --- | --- | --- | --- | --- |
//! | parquet | yes | yes | yes | yes (per page, inside the file) |
//! | csv, json | yes | yes (`.gz`) | **rejected** | yes (`.zst`) |
//!
//! Snappy for CSV / JSON is rejected on purpose: snappy has no single stream format that
//! readers of text files agree on (Hadoop's block codec, used by Spark / Hive / Athena for
//! `.snappy` text, differs from the snappy framing format), so any choice would produce files
//! some consumers silently misread. Use gzip or zstd for text, or Parquet with snappy.

mod csv;
mod json;
mod parquet;
mod sink;

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use cdc_config::{Compression, OutputFormat, OutputShape};

use crate::schema::{SOURCE_COLUMN, SOURCE_POSITION_FIELD, SOURCE_POS_COLUMN, TABLE_KEY};
use crate::FormatError;

pub use self::csv::{CsvOptions, CsvWriter};
pub use self::json::JsonLinesWriter;
pub use self::parquet::{
    ParquetOptions, ParquetWriter, FIRST_POSITION_KEY, LAST_POSITION_KEY, POSITION_RANGE_KEY,
};

/// One output file being written. Not `Sync`; one writer per file.
pub trait FormatWriter: Send {
    /// Appends a batch whose schema equals the one the writer was created with.
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError>;

    /// Bytes handed to the underlying sink so far (compressed, as they land in the file).
    fn bytes_written(&self) -> u64;

    /// Bytes held in memory that will still be written: Parquet's open row group (encoded,
    /// before compression). Text writers hand each batch to the sink at once and report 0; their
    /// compressors keep at most one block (tens of KiB) back until `finish`.
    /// `bytes_written() + in_progress_size()` is the estimate to roll files on.
    fn in_progress_size(&self) -> u64;

    /// Writes footers / flushes compressors and the sink; the file is complete afterwards.
    fn finish(self: Box<Self>) -> Result<WriteStats, FormatError>;
}

/// What a finished file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteStats {
    pub format: OutputFormat,
    pub compression: Compression,
    pub rows: u64,
    pub batches: u64,
    /// Bytes written to the sink, footer included.
    pub bytes_written: u64,
    /// `_source_pos` of the first and last row written, when the batches have that column.
    pub first_position: Option<String>,
    pub last_position: Option<String>,
}

/// Format, compression and per-format settings of a writer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WriterOptions {
    pub format: OutputFormat,
    pub compression: Compression,
    pub parquet: ParquetOptions,
    pub csv: CsvOptions,
    /// gzip level 0..=9 for CSV / JSON streams (Parquet: see [`ParquetOptions`]).
    pub gzip_level: u32,
    /// zstd level 1..=22 for CSV / JSON streams.
    pub zstd_level: i32,
    /// Row shape (`output.shape`): which batches [`RecordBatchBuilder::for_writer`](crate::RecordBatchBuilder::for_writer) builds.
    pub shape: OutputShape,
}

impl WriterOptions {
    pub fn new(format: OutputFormat, compression: Compression) -> Self {
        Self {
            format,
            compression,
            parquet: ParquetOptions::default(),
            csv: CsvOptions::default(),
            gzip_level: 6,
            zstd_level: 3,
            shape: OutputShape::Flat,
        }
    }

    /// The row shape; `envelope` cannot be written as CSV (see [`check_shape`]).
    pub fn with_shape(mut self, shape: OutputShape) -> Self {
        self.shape = shape;
        self
    }

    pub fn with_parquet(mut self, parquet: ParquetOptions) -> Self {
        self.parquet = parquet;
        self
    }

    pub fn with_csv(mut self, csv: CsvOptions) -> Self {
        self.csv = csv;
        self
    }

    pub fn with_gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level;
        self
    }

    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }
}

/// Fails for a format / compression pair this crate will not write. Pure; call it when
/// validating configuration.
pub fn check_combination(
    format: OutputFormat,
    compression: Compression,
) -> Result<(), FormatError> {
    match (format, compression) {
        (OutputFormat::Csv | OutputFormat::Json, Compression::Snappy) => {
            Err(FormatError::UnsupportedCompression {
                format: format.as_str(),
                compression: compression.as_str(),
                reason: "text readers do not agree on a snappy stream format (Hadoop block \
                         codec vs. snappy framing); use gzip or zstd, or parquet with snappy",
            })
        }
        _ => Ok(()),
    }
}

/// Fails for a format / shape pair this crate cannot write: the envelope's nested columns
/// have no CSV form. Pure; call it when validating configuration.
pub fn check_shape(format: OutputFormat, shape: OutputShape) -> Result<(), FormatError> {
    match (format, shape) {
        (OutputFormat::Csv, OutputShape::Envelope) => Err(FormatError::InvalidOption {
            format: "csv",
            option: "shape",
            reason: "the envelope shape has nested before/after/source columns, which CSV cannot hold; use parquet or json".into(),
        }),
        _ => Ok(()),
    }
}

/// The file name extension for a format and compression (`parquet`, `csv.gz`, `jsonl.zst`).
pub fn file_extension(
    format: OutputFormat,
    compression: Compression,
) -> Result<&'static str, FormatError> {
    check_combination(format, compression)?;
    Ok(match (format, compression) {
        // Parquet compresses pages inside the file; the name does not change.
        (OutputFormat::Parquet, _) => "parquet",
        (OutputFormat::Csv, Compression::None) => "csv",
        (OutputFormat::Csv, Compression::Gzip) => "csv.gz",
        (OutputFormat::Csv, _) => "csv.zst",
        (OutputFormat::Json, Compression::None) => "jsonl",
        (OutputFormat::Json, Compression::Gzip) => "jsonl.gz",
        (OutputFormat::Json, _) => "jsonl.zst",
    })
}

/// A writer of `options.format` over `sink` for batches of `schema`.
///
/// Pass `&mut File` (or a `BufWriter`) to keep the file for `sync_all` after `finish`.
pub fn new_writer<'a, W: Write + Send + 'a>(
    sink: W,
    schema: SchemaRef,
    options: &WriterOptions,
) -> Result<Box<dyn FormatWriter + 'a>, FormatError> {
    check_combination(options.format, options.compression)?;
    Ok(match options.format {
        OutputFormat::Parquet => Box::new(ParquetWriter::try_new(
            sink,
            schema,
            options.compression,
            &options.parquet,
        )?),
        OutputFormat::Csv => Box::new(CsvWriter::try_new(
            sink,
            schema,
            options,
            options.csv.clone(),
        )?),
        OutputFormat::Json => Box::new(JsonLinesWriter::try_new(sink, schema, options)?),
    })
}

/// The table name recorded in the schema metadata, for error messages.
pub(crate) fn table_label(schema: &SchemaRef) -> String {
    schema
        .metadata()
        .get(TABLE_KEY)
        .cloned()
        .unwrap_or_else(|| "<unnamed table>".to_owned())
}

/// Checks a batch against the writer schema (fields only: metadata may differ harmlessly).
pub(crate) fn check_batch_schema(
    format: &'static str,
    table: &str,
    expected: &SchemaRef,
    batch: &RecordBatch,
) -> Result<(), FormatError> {
    let actual = batch.schema();
    if actual.fields() != expected.fields() {
        let detail = expected
            .fields()
            .iter()
            .zip(actual.fields().iter())
            .find(|(e, a)| e != a)
            .map(|(e, a)| format!("expected {e:?}, got {a:?}"))
            .unwrap_or_else(|| {
                format!(
                    "expected {} columns, got {}",
                    expected.fields().len(),
                    actual.fields().len()
                )
            });
        return Err(FormatError::BatchSchemaMismatch {
            format,
            table: table.to_owned(),
            detail,
        });
    }
    Ok(())
}

/// Counts rows and batches and remembers the first and last `_source_pos`.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    pub rows: u64,
    pub batches: u64,
    pub first_position: Option<String>,
    pub last_position: Option<String>,
}

impl Tracker {
    pub(crate) fn observe(&mut self, batch: &RecordBatch) {
        self.batches += 1;
        self.rows += batch.num_rows() as u64;
        if batch.num_rows() == 0 {
            return;
        }
        // Flat: `_source_pos`; envelope: `source.position`.
        let nested = batch
            .column_by_name(SOURCE_COLUMN)
            .and_then(|c| c.as_struct_opt())
            .and_then(|s| s.column_by_name(SOURCE_POSITION_FIELD));
        let Some(column) = batch.column_by_name(SOURCE_POS_COLUMN).or(nested) else {
            return;
        };
        let Some(positions) = column.as_string_opt::<i32>() else {
            return;
        };
        if self.first_position.is_none() && positions.is_valid(0) {
            self.first_position = Some(positions.value(0).to_owned());
        }
        let last = batch.num_rows() - 1;
        if positions.is_valid(last) {
            self.last_position = Some(positions.value(last).to_owned());
        }
    }

    pub(crate) fn stats(
        self,
        format: OutputFormat,
        compression: Compression,
        bytes_written: u64,
    ) -> WriteStats {
        WriteStats {
            format,
            compression,
            rows: self.rows,
            batches: self.batches,
            bytes_written,
            first_position: self.first_position,
            last_position: self.last_position,
        }
    }
}
