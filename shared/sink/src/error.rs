//! The one error type of this crate; every variant names the file, table or shard that failed.

use std::path::PathBuf;

/// Why the sink failed. Any error from [`FileSink`](crate::FileSink) other than
/// [`SinkError::Config`] leaves the sink failed (see [`FileSink::is_failed`](crate::FileSink::is_failed)):
/// nothing more is written or committed, and the caller restarts from the last checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink options are invalid (checked before any file is touched).
    #[error("invalid file sink option {option}: {reason}")]
    Config {
        option: &'static str,
        reason: String,
    },

    /// A file-system operation failed after all retries.
    #[error("file sink: {action} {path} failed after {attempts} attempt(s): {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        attempts: u32,
        #[source]
        source: std::io::Error,
    },

    /// Writing rows into an in-progress file failed (after the byte-level retries). Boxed:
    /// the format error is large and every `Result` of the hot path carries this type.
    #[error("file sink: writing {table} (shard {shard}) to {path} failed: {source}")]
    Write {
        table: String,
        shard: String,
        path: PathBuf,
        #[source]
        source: Box<cdc_formats::FormatError>,
    },

    /// A pending file of a checkpoint is neither at its staging nor at its final path: the
    /// checkpoint cannot be committed and the data it names is lost.
    #[error("file sink: pending file {staging} is missing and its final file {final_path} does not exist either")]
    PendingFileMissing {
        staging: PathBuf,
        final_path: PathBuf,
    },

    /// An object-store request failed (transient errors after the configured retries).
    #[error("object sink: {action} {location} failed: {source}")]
    ObjectStore {
        action: &'static str,
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A pending upload of a checkpoint can be neither completed nor found at its final key:
    /// the checkpoint cannot be committed and the data it names is lost.
    #[error("object sink: pending upload {upload_id} of {location} is gone and the object does not exist either")]
    PendingUploadMissing { location: String, upload_id: String },

    /// A pending-file key from a checkpoint escapes the output directory or is malformed.
    #[error("file sink: checkpoint names an invalid file key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// The checkpointed high-water mark of `source` is not a position.
    #[error("file sink: checkpointed position of source {source_name} is invalid: {source}")]
    BadCheckpointPosition {
        source_name: String,
        #[source]
        source: cdc_event::PositionParseError,
    },

    /// A record could not be written to the dead-letter queue.
    #[error("file sink: dead-letter record for shard {shard} offset {offset} cannot be encoded: {source}")]
    DeadLetterEncode {
        shard: String,
        offset: u64,
        #[source]
        source: serde_json::Error,
    },

    /// `write`/`prepare_checkpoint` was called before `recover`.
    #[error("file sink: recover() must run before records are written or checkpoints taken")]
    NotRecovered,

    /// An earlier error stopped the sink; restart from the last checkpoint.
    #[error("file sink stopped after an earlier error: {first_error}")]
    Failed { first_error: String },
}
