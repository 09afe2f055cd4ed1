//! Parquet writer (arrow-rs `ArrowWriter`).

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use cdc_config::{Compression, OutputFormat};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as ParquetCompression, GzipLevel, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::sink::Counting;
use super::{check_batch_schema, table_label, FormatWriter, Tracker, WriteStats};
use crate::schema::SCHEMA_VERSION_KEY;
use crate::FormatError;

const FORMAT: &str = "parquet";

/// Key-value metadata entry: `first..last` position text of the rows in the file.
pub const POSITION_RANGE_KEY: &str = "cdc.source_position_range";
/// Key-value metadata entries with the first and last position alone (no `..` to split on).
pub const FIRST_POSITION_KEY: &str = "cdc.source_position_first";
pub const LAST_POSITION_KEY: &str = "cdc.source_position_last";

/// Parquet settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ParquetOptions {
    /// Rows per row group (default 1,048,576). Rolling files is the caller's business; this
    /// only bounds the memory of one open row group.
    pub max_row_group_rows: usize,
    /// Dictionary encoding (default true; arrow-rs falls back to plain when it stops paying).
    pub dictionary: bool,
    /// Column-chunk min/max/null-count statistics (default true).
    pub statistics: bool,
    /// Page-level statistics, column index and offset index (default true).
    pub page_index: bool,
    /// gzip level 0..=9 (default 6).
    pub gzip_level: u32,
    /// zstd level 1..=22 (default 3).
    pub zstd_level: i32,
    /// Extra key-value metadata for the footer (e.g. a sink's counts).
    pub key_value_metadata: Vec<(String, String)>,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            max_row_group_rows: 1024 * 1024,
            dictionary: true,
            statistics: true,
            page_index: true,
            gzip_level: 6,
            zstd_level: 3,
            key_value_metadata: Vec::new(),
        }
    }
}

impl ParquetOptions {
    pub fn with_max_row_group_rows(mut self, rows: usize) -> Self {
        self.max_row_group_rows = rows;
        self
    }

    pub fn with_dictionary(mut self, enabled: bool) -> Self {
        self.dictionary = enabled;
        self
    }

    pub fn with_statistics(mut self, enabled: bool) -> Self {
        self.statistics = enabled;
        self
    }

    pub fn with_page_index(mut self, enabled: bool) -> Self {
        self.page_index = enabled;
        self
    }

    pub fn with_key_value(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.key_value_metadata.push((key.into(), value.into()));
        self
    }

    fn properties(
        &self,
        compression: Compression,
        schema: &SchemaRef,
    ) -> Result<WriterProperties, FormatError> {
        let invalid = |option, reason: String| FormatError::InvalidOption {
            format: FORMAT,
            option,
            reason,
        };
        if self.max_row_group_rows == 0 {
            return Err(invalid("max_row_group_rows", "must be at least 1".into()));
        }
        let codec = match compression {
            Compression::None => ParquetCompression::UNCOMPRESSED,
            Compression::Snappy => ParquetCompression::SNAPPY,
            Compression::Gzip => ParquetCompression::GZIP(
                GzipLevel::try_new(self.gzip_level)
                    .map_err(|e| invalid("gzip_level", e.to_string()))?,
            ),
            Compression::Zstd => ParquetCompression::ZSTD(
                ZstdLevel::try_new(self.zstd_level)
                    .map_err(|e| invalid("zstd_level", e.to_string()))?,
            ),
        };
        let statistics = if self.page_index {
            EnabledStatistics::Page
        } else if self.statistics {
            EnabledStatistics::Chunk
        } else {
            EnabledStatistics::None
        };
        // The table identity goes into the footer as plain entries, so tools that ignore the
        // embedded Arrow schema still see which table and version the file holds.
        let mut kv: Vec<KeyValue> = Vec::new();
        for key in [crate::schema::TABLE_KEY, SCHEMA_VERSION_KEY] {
            if let Some(value) = schema.metadata().get(key) {
                kv.push(KeyValue::new(key.to_owned(), value.clone()));
            }
        }
        kv.extend(
            self.key_value_metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        );
        Ok(WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(self.max_row_group_rows))
            .set_dictionary_enabled(self.dictionary)
            .set_statistics_enabled(statistics)
            .set_offset_index_disabled(!self.page_index)
            .set_key_value_metadata(Some(kv))
            .build())
    }
}

/// Writes batches to one Parquet file; the footer carries the table identity and the
/// `_source_pos` range ([`POSITION_RANGE_KEY`]).
pub struct ParquetWriter<W: Write + Send> {
    // Counting the sink gives the exact size including the footer, which ArrowWriter only
    // reports before it writes the footer.
    inner: ArrowWriter<Counting<W>>,
    schema: SchemaRef,
    table: String,
    compression: Compression,
    tracker: Tracker,
}

impl<W: Write + Send> ParquetWriter<W> {
    pub fn try_new(
        sink: W,
        schema: SchemaRef,
        compression: Compression,
        options: &ParquetOptions,
    ) -> Result<Self, FormatError> {
        let table = table_label(&schema);
        let properties = options.properties(compression, &schema)?;
        let inner = ArrowWriter::try_new(Counting::new(sink), schema.clone(), Some(properties))
            .map_err(|source| FormatError::Parquet {
                table: table.clone(),
                source,
            })?;
        Ok(Self {
            inner,
            schema,
            table,
            compression,
            tracker: Tracker::default(),
        })
    }

    /// Ends the file and returns the sink (e.g. to `sync_all` a file) with the stats.
    pub fn finish_into_inner(mut self) -> Result<(W, WriteStats), FormatError> {
        if let (Some(first), Some(last)) =
            (&self.tracker.first_position, &self.tracker.last_position)
        {
            self.inner.append_key_value_metadata(KeyValue::new(
                POSITION_RANGE_KEY.to_owned(),
                format!("{first}..{last}"),
            ));
            self.inner.append_key_value_metadata(KeyValue::new(
                FIRST_POSITION_KEY.to_owned(),
                first.clone(),
            ));
            self.inner.append_key_value_metadata(KeyValue::new(
                LAST_POSITION_KEY.to_owned(),
                last.clone(),
            ));
        }
        let table = self.table.clone();
        let parquet_error = |source| FormatError::Parquet {
            table: table.clone(),
            source,
        };
        // into_inner writes the footer and flushes the writer's buffer into the sink.
        let counting = self.inner.into_inner().map_err(parquet_error)?;
        let bytes = counting.count();
        Ok((
            counting.into_inner(),
            self.tracker
                .stats(OutputFormat::Parquet, self.compression, bytes),
        ))
    }
}

impl<W: Write + Send> FormatWriter for ParquetWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        check_batch_schema(FORMAT, &self.table, &self.schema, batch)?;
        self.inner
            .write(batch)
            .map_err(|source| FormatError::Parquet {
                table: self.table.clone(),
                source,
            })?;
        self.tracker.observe(batch);
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written() as u64
    }

    fn in_progress_size(&self) -> u64 {
        self.inner.in_progress_size() as u64
    }

    fn finish(self: Box<Self>) -> Result<WriteStats, FormatError> {
        let table = self.table.clone();
        let (mut sink, stats) = (*self).finish_into_inner()?;
        // The sink may buffer (the file sink's BufWriter): flush it here, or a failed write
        // (disk full) would only happen in its Drop, which ignores the error.
        sink.flush().map_err(|source| FormatError::Io {
            format: FORMAT,
            table,
            source,
        })?;
        Ok(stats)
    }
}
