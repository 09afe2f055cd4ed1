//! CSV (RFC 4180) writer.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use cdc_config::{Compression, OutputFormat};

use super::sink::TextSink;
use super::{check_batch_schema, table_label, FormatWriter, Tracker, WriteStats, WriterOptions};
use crate::text::TextColumn;
use crate::FormatError;

const FORMAT: &str = "csv";
/// Rows are rendered into a buffer and handed to the sink in chunks of about this size.
const FLUSH_BYTES: usize = 1 << 20;

/// CSV settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CsvOptions {
    /// Field separator (default `,`). Not `"`, CR or LF.
    pub delimiter: u8,
    /// Text written for NULL, unquoted (default: empty). A value equal to it, and every empty
    /// string, is quoted, so NULL and `""` stay distinct for readers that honour quoting.
    pub null: String,
    /// Whether the first line holds the column names (default true).
    pub header: bool,
    /// Record terminator: `\r\n` per RFC 4180 (default) or `\n`.
    pub line_terminator: &'static str,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            null: String::new(),
            header: true,
            line_terminator: "\r\n",
        }
    }
}

impl CsvOptions {
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    pub fn with_null(mut self, null: impl Into<String>) -> Self {
        self.null = null.into();
        self
    }

    pub fn with_header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    pub fn with_line_terminator(mut self, terminator: &'static str) -> Self {
        self.line_terminator = terminator;
        self
    }

    fn check(&self) -> Result<(), FormatError> {
        let invalid = |option, reason: &str| FormatError::InvalidOption {
            format: FORMAT,
            option,
            reason: reason.to_owned(),
        };
        if matches!(self.delimiter, b'"' | b'\r' | b'\n') || !self.delimiter.is_ascii() {
            return Err(invalid(
                "delimiter",
                "must be an ASCII character other than '\"', CR and LF",
            ));
        }
        if self
            .null
            .bytes()
            .any(|b| b == self.delimiter || matches!(b, b'"' | b'\r' | b'\n'))
        {
            return Err(invalid(
                "null",
                "must not contain the delimiter, '\"', CR or LF",
            ));
        }
        if !matches!(self.line_terminator, "\r\n" | "\n") {
            return Err(invalid("line_terminator", "must be \"\\r\\n\" or \"\\n\""));
        }
        Ok(())
    }
}

/// Writes batches as CSV with the same value text as the JSON-lines writer (decimals exact,
/// ISO-8601 timestamps, base64 binary).
pub struct CsvWriter<W: Write> {
    sink: TextSink<W>,
    schema: SchemaRef,
    table: String,
    options: CsvOptions,
    compression: Compression,
    header_pending: bool,
    buf: Vec<u8>,
    field: Vec<u8>,
    scratch: String,
    tracker: Tracker,
}

impl<W: Write + Send> CsvWriter<W> {
    pub fn try_new(
        sink: W,
        schema: SchemaRef,
        writer: &WriterOptions,
        options: CsvOptions,
    ) -> Result<Self, FormatError> {
        super::check_combination(OutputFormat::Csv, writer.compression)?;
        options.check()?;
        let table = table_label(&schema);
        // Refused up front rather than at the first batch: a CSV cell has no nested form.
        if let Some(field) = schema.fields().iter().find(|f| matches!(f.data_type(), arrow_schema::DataType::Struct(_))) {
            return Err(FormatError::UnsupportedArrowType {
                format: FORMAT,
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            });
        }
        let sink = TextSink::new(
            sink,
            writer.compression,
            writer.gzip_level,
            writer.zstd_level,
        )
        .map_err(|source| FormatError::Io {
            format: FORMAT,
            table: table.clone(),
            source,
        })?;
        Ok(Self {
            sink,
            header_pending: options.header,
            schema,
            table,
            options,
            compression: writer.compression,
            buf: Vec::with_capacity(FLUSH_BYTES + 64 * 1024),
            field: Vec::with_capacity(256),
            scratch: String::new(),
            tracker: Tracker::default(),
        })
    }

    fn io(&self, source: std::io::Error) -> FormatError {
        FormatError::Io {
            format: FORMAT,
            table: self.table.clone(),
            source,
        }
    }

    fn write_header(&mut self) {
        for (i, field) in self.schema.fields().iter().enumerate() {
            if i > 0 {
                self.buf.push(self.options.delimiter);
            }
            push_field(&mut self.buf, field.name().as_bytes(), &self.options);
        }
        self.buf
            .extend_from_slice(self.options.line_terminator.as_bytes());
    }

    fn flush_buf(&mut self) -> Result<(), FormatError> {
        if !self.buf.is_empty() {
            let result = self.sink.write_all(&self.buf);
            self.buf.clear();
            result.map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}

/// Appends one field, quoted when it is empty, equals the NULL marker, or holds the
/// delimiter, a quote, CR or LF (RFC 4180: quotes doubled inside).
fn push_field(out: &mut Vec<u8>, value: &[u8], options: &CsvOptions) {
    let needs_quotes = value.is_empty()
        || value == options.null.as_bytes()
        || value
            .iter()
            .any(|&b| b == options.delimiter || matches!(b, b'"' | b'\r' | b'\n'));
    if !needs_quotes {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    for &b in value {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

impl<W: Write + Send> FormatWriter for CsvWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        check_batch_schema(FORMAT, &self.table, &self.schema, batch)?;
        let columns = TextColumn::all(batch, FORMAT)?;
        if self.header_pending {
            self.write_header();
            self.header_pending = false;
        }
        for row in 0..batch.num_rows() {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.buf.push(self.options.delimiter);
                }
                if column.is_null(row) {
                    self.buf.extend_from_slice(self.options.null.as_bytes());
                } else {
                    self.field.clear();
                    column.render(row, &mut self.field, &mut self.scratch);
                    push_field(&mut self.buf, &self.field, &self.options);
                }
            }
            self.buf
                .extend_from_slice(self.options.line_terminator.as_bytes());
            if self.buf.len() >= FLUSH_BYTES {
                self.flush_buf()?;
            }
        }
        self.flush_buf()?;
        self.tracker.observe(batch);
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.sink.bytes_written()
    }

    fn in_progress_size(&self) -> u64 {
        0
    }

    fn finish(mut self: Box<Self>) -> Result<WriteStats, FormatError> {
        // A file with no batches still gets its header, so readers see the columns.
        if self.header_pending {
            self.write_header();
            self.flush_buf()?;
        }
        let this = *self;
        let table = this.table;
        let bytes = this.sink.finish().map_err(|source| FormatError::Io {
            format: FORMAT,
            table,
            source,
        })?;
        Ok(this
            .tracker
            .stats(OutputFormat::Csv, this.compression, bytes))
    }
}
