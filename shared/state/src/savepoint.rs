//! Savepoints: user-triggered checkpoints written to a chosen directory,
//! laid out like Flink's: `<dir>/savepoint-<id>-<created_at_ms>/_metadata`,
//! in the same checksummed format as checkpoints.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::backend::{Backend, LocalDirBackend, PutMode};
use crate::checkpoint::{Checkpoint, CheckpointKind};
use crate::error::{BackendError, CheckpointError};
use crate::format::{decode_checkpoint, encode_checkpoint};

/// File name of a savepoint's checkpoint document inside its directory.
pub const SAVEPOINT_METADATA_FILE: &str = "_metadata";

/// Name of the savepoint directory for `checkpoint`.
pub fn savepoint_dir_name(checkpoint: &Checkpoint) -> String {
    format!(
        "savepoint-{:020}-{}",
        checkpoint.id.0, checkpoint.created_at_ms
    )
}

/// Writes `checkpoint` as a savepoint under `dir` (created if missing),
/// atomically and durably, and returns the savepoint directory. The stored
/// copy is marked [`CheckpointKind::Savepoint`]. Never overwrites: an
/// existing savepoint of the same name is [`CheckpointError::AlreadyExists`].
pub fn write_savepoint(dir: &Path, checkpoint: &Checkpoint) -> Result<PathBuf, CheckpointError> {
    let mut savepoint = checkpoint.clone();
    savepoint.kind = CheckpointKind::Savepoint;
    let bytes = encode_checkpoint(&savepoint)?;

    let backend = LocalDirBackend::open(dir)?;
    let name = savepoint_dir_name(&savepoint);
    let key = format!("{name}/{SAVEPOINT_METADATA_FILE}");
    match backend.put(&key, &bytes, PutMode::Create) {
        Ok(_) => {}
        Err(BackendError::AlreadyExists { .. }) => {
            return Err(CheckpointError::AlreadyExists {
                id: savepoint.id,
                location: backend.locate(&key),
            })
        }
        Err(error) => return Err(error.into()),
    }
    let path = backend.root().join(name);
    tracing::info!(path = %path.display(), id = %savepoint.id, "wrote savepoint");
    Ok(path)
}

/// Reads and verifies a savepoint, given its directory or its `_metadata`
/// file (a retained checkpoint file is accepted too: same format).
pub fn read_savepoint(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let file = if path.is_dir() {
        path.join(SAVEPOINT_METADATA_FILE)
    } else {
        path.to_path_buf()
    };
    let bytes = fs::read(&file).map_err(|source| CheckpointError::Io {
        op: if source.kind() == io::ErrorKind::NotFound {
            "read savepoint (no such file)"
        } else {
            "read savepoint"
        },
        path: file.clone(),
        source,
    })?;
    decode_checkpoint(&bytes).map_err(|source| CheckpointError::Corrupt {
        location: file.display().to_string(),
        source,
    })
}
