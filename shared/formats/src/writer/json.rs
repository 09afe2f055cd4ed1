//! JSON-lines writer: one object per row, keys in schema order.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use cdc_config::{Compression, OutputFormat};

use super::sink::TextSink;
use super::{check_batch_schema, table_label, FormatWriter, Tracker, WriteStats, WriterOptions};
use crate::text::{push_json_escaped, JsonShape, TextColumn};
use crate::FormatError;

const FORMAT: &str = "json";
const FLUSH_BYTES: usize = 1 << 20;

/// Writes `{"col":value,...}\n` per row. Integers and floats are JSON numbers (BIGINT UNSIGNED
/// too: readers that parse numbers as doubles lose precision above 2^53); DECIMAL, dates,
/// timestamps (ISO-8601, six fraction digits, `Z` for UTC) and base64 binary are strings.
pub struct JsonLinesWriter<W: Write> {
    sink: TextSink<W>,
    schema: SchemaRef,
    table: String,
    compression: Compression,
    /// `"name":` per column, escaped once.
    keys: Vec<Vec<u8>>,
    buf: Vec<u8>,
    field: Vec<u8>,
    scratch: String,
    tracker: Tracker,
}

impl<W: Write + Send> JsonLinesWriter<W> {
    pub fn try_new(
        sink: W,
        schema: SchemaRef,
        writer: &WriterOptions,
    ) -> Result<Self, FormatError> {
        super::check_combination(OutputFormat::Json, writer.compression)?;
        let table = table_label(&schema);
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
        let keys = schema
            .fields()
            .iter()
            .map(|f| {
                let mut key = vec![b'"'];
                push_json_escaped(&mut key, f.name().as_bytes());
                key.extend_from_slice(b"\":");
                key
            })
            .collect();
        Ok(Self {
            sink,
            schema,
            table,
            compression: writer.compression,
            keys,
            buf: Vec::with_capacity(FLUSH_BYTES + 64 * 1024),
            field: Vec::with_capacity(256),
            scratch: String::new(),
            tracker: Tracker::default(),
        })
    }

    fn flush_buf(&mut self) -> Result<(), FormatError> {
        if !self.buf.is_empty() {
            let result = self.sink.write_all(&self.buf);
            self.buf.clear();
            result.map_err(|source| FormatError::Io {
                format: FORMAT,
                table: self.table.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

impl<W: Write + Send> FormatWriter for JsonLinesWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), FormatError> {
        check_batch_schema(FORMAT, &self.table, &self.schema, batch)?;
        let columns = TextColumn::all(batch, FORMAT)?;
        for row in 0..batch.num_rows() {
            self.buf.push(b'{');
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                self.buf.extend_from_slice(&self.keys[i]);
                if column.is_null(row) {
                    self.buf.extend_from_slice(b"null");
                    continue;
                }
                match column.json_shape() {
                    JsonShape::Bare => column.render(row, &mut self.buf, &mut self.scratch),
                    JsonShape::Quoted => {
                        self.field.clear();
                        column.render(row, &mut self.field, &mut self.scratch);
                        self.buf.push(b'"');
                        push_json_escaped(&mut self.buf, &self.field);
                        self.buf.push(b'"');
                    }
                }
            }
            self.buf.extend_from_slice(b"}\n");
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

    fn finish(self: Box<Self>) -> Result<WriteStats, FormatError> {
        let this = *self;
        let table = this.table;
        let bytes = this.sink.finish().map_err(|source| FormatError::Io {
            format: FORMAT,
            table,
            source,
        })?;
        Ok(this
            .tracker
            .stats(OutputFormat::Json, this.compression, bytes))
    }
}
