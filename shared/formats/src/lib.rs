//! Change events to Arrow, and the file formats the sinks write.
//!
//! - [`schema`]: a [`TableSchema`](cdc_event::TableSchema) plus metadata columns as an Arrow
//!   [`Schema`](arrow_schema::Schema), column by column without loss (see the module docs for
//!   the type table and the zero-date policy).
//! - [`batch`]: [`RecordBatchBuilder`], one per (table, schema version), appending
//!   [`ChangeEvent`](cdc_event::ChangeEvent)s in the `flat` or `envelope` shape
//!   (`output.shape`, [`cdc_config::OutputShape`]).
//! - [`writer`]: the [`FormatWriter`] trait and its Parquet, CSV and JSON-lines writers over any
//!   `std::io::Write`, with the compressions of `cdc_config::Compression`.
//!
//! ```no_run
//! # fn demo(events: &[cdc_event::ChangeEvent], schema: std::sync::Arc<cdc_event::TableSchema>)
//! #     -> Result<(), cdc_formats::FormatError> {
//! use cdc_config::{Compression, OutputFormat};
//! use cdc_formats::{new_writer, RecordBatchBuilder, WriterOptions};
//!
//! let mut builder = RecordBatchBuilder::new(schema)?;
//! for event in events {
//!     builder.append(event)?;
//! }
//! let batch = builder.finish()?;
//! let file = std::fs::File::create("/tmp/out.parquet").expect("demo");
//! let options = WriterOptions::new(OutputFormat::Parquet, Compression::Snappy);
//! let mut writer = new_writer(file, batch.schema(), &options)?;
//! writer.write(&batch)?;
//! let stats = writer.finish()?;
//! println!("{} rows, {} bytes", stats.rows, stats.bytes_written);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod batch;
mod error;
pub mod schema;
mod text;
pub mod writer;

pub use arrow_array::RecordBatch;
pub use arrow_schema::SchemaRef;
pub use batch::RecordBatchBuilder;
pub use error::{BadValue, FormatError};
pub use schema::arrow_schema;
pub use writer::{
    check_combination, check_shape, file_extension, new_writer, CsvOptions, FormatWriter, ParquetOptions,
    WriteStats, WriterOptions,
};
