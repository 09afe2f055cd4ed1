//! Phase two of the protocol: moving pending files to their final names, idempotently, and
//! cleaning the in-progress directory at recovery.

use std::io;
use std::path::{Component, Path, PathBuf};

use cdc_state::PendingFile;

use crate::io::{create_dir_durable, sync_dir, RetryPolicy};
use crate::SinkError;

pub(crate) use crate::storage::CommitOutcome;

/// `root/key` for a key from a checkpoint, refusing keys that would leave `root`: a
/// checkpoint is input, and a damaged one must not make us rename files elsewhere.
pub(crate) fn resolve_key(root: &Path, key: &str) -> Result<PathBuf, SinkError> {
    let invalid = |reason| SinkError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    let relative = Path::new(key);
    for component in relative.components() {
        match component {
            Component::Normal(_) => {}
            Component::CurDir | Component::ParentDir => {
                return Err(invalid("has a `.` or `..` component"))
            }
            Component::RootDir | Component::Prefix(_) => return Err(invalid("is absolute")),
        }
    }
    Ok(root.join(relative))
}

fn exists(policy: &RetryPolicy, path: &Path) -> Result<bool, SinkError> {
    policy.run("stat", path, || match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    })
}

/// Moves one pending file to its final name and makes the move durable.
///
/// Idempotent, because a crash can interrupt a commit anywhere and recovery commits the same
/// checkpoint again: staging present → rename (replacing a final file of the same name, which
/// can only be an earlier copy of the same rows); staging gone and final present → already
/// done; both gone → [`SinkError::PendingFileMissing`].
pub(crate) fn commit_file(
    root: &Path,
    policy: &RetryPolicy,
    pending: &PendingFile,
) -> Result<CommitOutcome, SinkError> {
    let staging = resolve_key(root, &pending.staging_key)?;
    let final_path = resolve_key(root, &pending.final_key)?;
    if !exists(policy, &staging)? {
        if exists(policy, &final_path)? {
            return Ok(CommitOutcome::AlreadyCommitted);
        }
        return Err(SinkError::PendingFileMissing {
            staging,
            final_path,
        });
    }
    let final_dir = final_path.parent().unwrap_or(root);
    create_dir_durable(policy, final_dir)?;
    policy.run("rename to final name", &final_path, || {
        std::fs::rename(&staging, &final_path)
    })?;
    // The new entry must be durable before the caller commits bus offsets past these rows;
    // the removal from the staging directory must be too, or a power loss could bring back a
    // staging file that recovery would then delete — harmless, but fsyncing keeps it simple.
    sync_dir(policy, final_dir)?;
    if let Some(staging_dir) = staging.parent() {
        sync_dir(policy, staging_dir)?;
    }
    Ok(CommitOutcome::Committed)
}

/// Deletes every entry of the in-progress directory; returns how many. Runs at recovery
/// after the last checkpoint's pending files are committed, so what is left was written after
/// that checkpoint and its records will be replayed from the checkpointed offsets.
pub(crate) fn clear_inprogress(policy: &RetryPolicy, dir: &Path) -> Result<u64, SinkError> {
    let entries = policy.run("list", dir, || {
        std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()
    })?;
    let mut deleted = 0;
    for entry in entries {
        let path = entry.path();
        let is_dir = policy.run("stat", &path, || entry.file_type())?.is_dir();
        policy.run("delete", &path, || {
            let result = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        })?;
        tracing::debug!(path = %path.display(), "deleted uncommitted in-progress file");
        deleted += 1;
    }
    if deleted > 0 {
        sync_dir(policy, dir)?;
    }
    Ok(deleted)
}
