//! The sink's settings: required values in [`SinkOptions::new`], the rest `with_*`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdc_config::{Compression, OutputConfig, OutputFormat};
use cdc_formats::{file_extension, WriterOptions};

use crate::io::RetryPolicy;
use crate::layout::PathTemplate;
use crate::SinkError;

/// The directory, under the output path, where files are written before they are committed.
/// Starts with `.` so Spark, Trino, DuckDB and pyarrow dataset discovery skip it.
pub const INPROGRESS_DIR: &str = ".inprogress";
/// The default dead-letter directory under the output path.
pub const DEFAULT_DLQ_DIR: &str = "dlq";

/// How the file sink writes, rolls and retries. Validated when built; building touches no file.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub(crate) root: PathBuf,
    pub(crate) writer: WriterOptions,
    pub(crate) extension: &'static str,
    pub(crate) rolling_size_bytes: u64,
    pub(crate) rolling_interval: Duration,
    pub(crate) batch_size: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) template: PathTemplate,
    pub(crate) dlq_dir: String,
}

impl SinkOptions {
    /// Files of `format` / `compression` under `root`; rolling at 1 GiB or one hour, batches of
    /// 10,000 rows, 3 retries from 100 ms, the default path template.
    pub fn new(
        root: impl Into<PathBuf>,
        format: OutputFormat,
        compression: Compression,
    ) -> Result<Self, SinkError> {
        Self::with_writer_options(root, WriterOptions::new(format, compression))
    }

    /// Like [`new`](Self::new) with format-specific settings.
    pub fn with_writer_options(
        root: impl Into<PathBuf>,
        writer: WriterOptions,
    ) -> Result<Self, SinkError> {
        let extension =
            file_extension(writer.format, writer.compression).map_err(|e| SinkError::Config {
                option: "compression",
                reason: e.to_string(),
            })?;
        Ok(Self {
            root: root.into(),
            writer,
            extension,
            rolling_size_bytes: 1 << 30,
            rolling_interval: Duration::from_secs(3600),
            batch_size: 10_000,
            retry: RetryPolicy {
                max_retries: 3,
                initial_backoff: Duration::from_millis(100),
            },
            template: PathTemplate::default(),
            dlq_dir: DEFAULT_DLQ_DIR.to_owned(),
        })
    }

    /// From the `output.*` settings (`OUTPUT_PATH`, `OUTPUT_FORMAT`, `OUTPUT_COMPRESSION`,
    /// `OUTPUT_ROLLING_SIZE`, `OUTPUT_ROLLING_INTERVAL`, `OUTPUT_MAX_RETRIES`,
    /// `OUTPUT_BATCH_SIZE`). The path must be a local directory.
    pub fn from_output(output: &OutputConfig) -> Result<Self, SinkError> {
        let root = output.local_dir().ok_or_else(|| SinkError::Config {
            option: "path",
            reason: format!("{:?} is not a local directory", output.path),
        })?;
        Self::with_writer_options(root, WriterOptions::new(output.format, output.compression).with_shape(output.shape))?
            .with_rolling_size(output.rolling_size_bytes)?
            .with_rolling_interval(output.rolling_interval())?
            .with_max_retries(output.max_retries)
            .with_batch_size(output.batch_size as usize)
    }

    /// From the `output.*` settings like [`from_output`](Self::from_output), for an output
    /// that is not a local directory (an object store): in-progress files are written under
    /// `staging_root/.inprogress/` and committed elsewhere (see [`crate::Storage`]).
    pub fn from_output_staged(
        output: &OutputConfig,
        staging_root: impl Into<PathBuf>,
    ) -> Result<Self, SinkError> {
        Self::with_writer_options(staging_root, WriterOptions::new(output.format, output.compression).with_shape(output.shape))?
            .with_rolling_size(output.rolling_size_bytes)?
            .with_rolling_interval(output.rolling_interval())?
            .with_max_retries(output.max_retries)
            .with_batch_size(output.batch_size as usize)
    }

    /// Roll a file once its written plus buffered size reaches `bytes` (at least 1).
    pub fn with_rolling_size(mut self, bytes: u64) -> Result<Self, SinkError> {
        if bytes == 0 {
            return Err(SinkError::Config {
                option: "rolling_size_bytes",
                reason: "must be at least 1".into(),
            });
        }
        self.rolling_size_bytes = bytes;
        Ok(self)
    }

    /// Roll a file this long after its first row (at least 1 ms).
    pub fn with_rolling_interval(mut self, interval: Duration) -> Result<Self, SinkError> {
        if interval.is_zero() {
            return Err(SinkError::Config {
                option: "rolling_interval",
                reason: "must be at least 1 ms".into(),
            });
        }
        self.rolling_interval = interval;
        Ok(self)
    }

    /// Rows buffered per bucket before they are encoded into its file (at least 1).
    pub fn with_batch_size(mut self, rows: usize) -> Result<Self, SinkError> {
        if rows == 0 {
            return Err(SinkError::Config {
                option: "batch_size",
                reason: "must be at least 1".into(),
            });
        }
        self.batch_size = rows;
        Ok(self)
    }

    /// Retries of a failed file-system operation before the sink stops.
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.retry.max_retries = retries;
        self
    }

    /// The first backoff pause (doubling per retry, at most 5 s).
    #[must_use]
    pub fn with_retry_backoff(mut self, initial: Duration) -> Self {
        self.retry.initial_backoff = initial;
        self
    }

    /// Where committed files go, relative to the output path (see [`crate::layout`]).
    pub fn with_path_template(mut self, template: &str) -> Result<Self, SinkError> {
        let template = PathTemplate::parse(template)?;
        self.check_dirs(&template, &self.dlq_dir)?;
        self.template = template;
        Ok(self)
    }

    /// The dead-letter directory under the output path (default `dlq`). One plain component.
    pub fn with_dlq_dir(mut self, dir: &str) -> Result<Self, SinkError> {
        if dir.is_empty()
            || dir.contains(['/', '\\'])
            || dir == "."
            || dir == ".."
            || dir == INPROGRESS_DIR
        {
            return Err(SinkError::Config {
                option: "dlq_dir",
                reason: format!("{dir:?} must be one directory name other than {INPROGRESS_DIR}"),
            });
        }
        self.check_dirs(&self.template, dir)?;
        self.dlq_dir = dir.to_owned();
        Ok(self)
    }

    fn check_dirs(&self, template: &PathTemplate, dlq_dir: &str) -> Result<(), SinkError> {
        if template.first_literal_component() == Some(dlq_dir) {
            return Err(SinkError::Config {
                option: "path_template",
                reason: format!(
                    "{:?} writes into the dead-letter directory {dlq_dir:?}",
                    template.as_str()
                ),
            });
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn writer_options(&self) -> &WriterOptions {
        &self.writer
    }

    pub fn path_template(&self) -> &PathTemplate {
        &self.template
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    pub fn dlq_dir(&self) -> &str {
        &self.dlq_dir
    }
}
