//! Error types. Each variant names the key, path or checkpoint that failed;
//! underlying causes are chained through `source()` rather than repeated in
//! the message, so `{:#}`-style chain printers show each cause once.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::backend::Version;
use crate::checkpoint::CheckpointId;

/// A failed backend operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// `get` of a key that does not exist.
    #[error("key `{key}` not found")]
    NotFound { key: String },

    /// `put` with [`PutMode::Create`](crate::PutMode::Create) of a key that exists.
    #[error("key `{key}` already exists")]
    AlreadyExists { key: String },

    /// `put` with [`PutMode::Update`](crate::PutMode::Update) whose expected
    /// version is not the stored one (`actual` is `None` when the key is missing).
    #[error(
        "precondition failed for key `{key}`: expected version {expected}, found {}",
        describe_version(.actual.as_ref())
    )]
    Precondition {
        key: String,
        expected: Version,
        actual: Option<Version>,
    },

    /// A key or prefix that is empty, absolute, escapes the root (`..`), has
    /// empty segments, or uses the reserved `.cdc-` name prefix.
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// A file-system call failed.
    #[error("{op} failed on {}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Any other failure of a backend implemented outside this crate (for
    /// example an HTTP error from an object store).
    #[error("backend operation failed at {location}")]
    Other {
        location: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

fn describe_id(id: Option<CheckpointId>) -> String {
    match id {
        Some(id) => id.to_string(),
        None => "none".to_owned(),
    }
}

fn describe_version(version: Option<&Version>) -> String {
    match version {
        Some(version) => version.to_string(),
        None => "none (key missing)".to_owned(),
    }
}

/// Why the bytes of a checkpoint file are not a valid checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("first line is not the `CDC-CHECKPOINT v<N>` magic")]
    BadMagic,

    #[error("unsupported checkpoint format version `{version}` (this build reads v1)")]
    UnsupportedVersion { version: String },

    #[error("truncated: the file does not end with a trailer line")]
    MissingTrailer,

    #[error("malformed trailer line `{line}`")]
    BadTrailer { line: String },

    #[error("body is {actual} bytes but the trailer says {expected}")]
    LengthMismatch { expected: u64, actual: u64 },

    #[error("body CRC32 is {actual:08x} but the trailer says {expected:08x}")]
    ChecksumMismatch { expected: u32, actual: u32 },

    #[error("body is not a valid checkpoint JSON document")]
    Json(#[source] serde_json::Error),

    #[error("file name says checkpoint {expected} but the body says {actual}")]
    IdMismatch {
        expected: CheckpointId,
        actual: CheckpointId,
    },
}

/// A failed checkpoint or savepoint operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error(transparent)]
    Backend(#[from] BackendError),

    /// The checkpoint or savepoint at `location` failed verification.
    #[error("checkpoint at {location} is corrupt")]
    Corrupt {
        location: String,
        #[source]
        source: FormatError,
    },

    /// A newer leader (higher epoch) has taken over; this writer must stop.
    #[error("fenced: checkpoint epoch {ours} is older than the current epoch {current}")]
    Fenced { ours: u64, current: u64 },

    /// Another writer created this checkpoint id first.
    #[error("checkpoint {id} already exists at {location}: another writer saved it first")]
    AlreadyExists { id: CheckpointId, location: String },

    /// A checkpoint newer than the one this writer last saw exists: another writer is
    /// active on the same state location. This writer must stop without committing.
    #[error("conflict: checkpoint {found} exists at {location} but this writer expected {} to be the newest; another writer is active", describe_id(*.expected))]
    Conflict {
        expected: Option<CheckpointId>,
        found: CheckpointId,
        location: String,
    },

    #[error("checkpoint {id} not found at {location}")]
    NotFound { id: CheckpointId, location: String },

    /// An operator's typed state could not be converted to or from JSON.
    #[error("state of operator `{operator}` cannot be converted to/from JSON")]
    OperatorState {
        operator: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("checkpoint {id} of job `{job}` cannot be encoded as JSON")]
    Encode {
        id: CheckpointId,
        job: String,
        #[source]
        source: serde_json::Error,
    },

    /// A savepoint file-system call failed.
    #[error("{op} failed on {}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A state location (`file:///…`, a plain path, `s3://…`) that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    #[error("state location is empty")]
    Empty,

    #[error("state location `{uri}` is not a usable S3 URI: {reason}")]
    InvalidS3Uri { uri: String, reason: &'static str },

    #[error("state location `{uri}`: unsupported scheme `{scheme}` (use file://, s3:// or a plain path)")]
    UnsupportedScheme { uri: String, scheme: String },

    #[error("state location `{uri}` is not a usable file URI: {reason}")]
    InvalidFileUri { uri: String, reason: &'static str },

    #[error("state location `{uri}` cannot be opened")]
    Open {
        uri: String,
        #[source]
        source: BackendError,
    },
}

/// `error: cause: cause` on one line, for log fields (tracing's `%` only
/// prints the outermost message).
pub(crate) fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
