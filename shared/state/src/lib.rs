//! cdc-state: checkpoints, offsets and savepoints for the CDC pipeline.
//!
//! - [`Backend`]: a small synchronous key/value store with object_store-style
//!   conditional writes ([`PutMode::Create`], [`PutMode::Update`]), shaped so
//!   S3 (`If-None-Match: *` / `If-Match`) can implement it. Implementations:
//!   [`LocalDirBackend`] (atomic, fsynced, flock-serialised writes) and
//!   [`MemoryBackend`]; both pass [`conformance`].
//! - [`Checkpoint`]: one JSON document per checkpoint, each operator's typed
//!   state under its name ([`ShardOffsets`], [`SinkState`], ...).
//! - [`CheckpointStore`]: numbered `chk-<20 digits>` files written with
//!   `Create` (no id is written twice), epoch fencing, retention of the last
//!   N valid checkpoints, and loading that skips corrupt files.
//! - Savepoints ([`write_savepoint`], [`read_savepoint`]) and state
//!   locations ([`StateLocation`], [`open_backend`]).
//! - With the `s3` feature, [`s3::S3Backend`]: the same trait on S3 and S3-compatible stores
//!   (`If-None-Match: *` / `If-Match` conditional writes), also passing [`conformance`].
//!
//! On-disk format: see [`mod@format`].

pub mod backend;
mod checkpoint;
pub mod conformance;
mod error;
pub mod format;
mod location;
#[cfg(feature = "s3")]
pub mod s3;
mod savepoint;
mod store;

pub use backend::{
    validate_key, validate_prefix, Backend, GetResult, LocalDirBackend, MemoryBackend, ObjectMeta,
    PutMode, Version,
};
pub use checkpoint::{
    Checkpoint, CheckpointId, CheckpointKind, PendingFile, ShardOffsets, SinkState, UploadedPart,
};
pub use error::{BackendError, CheckpointError, FormatError, LocationError};
pub use format::{decode_checkpoint, encode_checkpoint};
pub use location::{open_backend, StateLocation};
pub use savepoint::{read_savepoint, savepoint_dir_name, write_savepoint, SAVEPOINT_METADATA_FILE};
pub use store::{
    checkpoint_key, parse_checkpoint_key, CheckpointEntry, CheckpointStore, LoadReport,
    SkippedCheckpoint, CHECKPOINT_KEY_PREFIX,
};
