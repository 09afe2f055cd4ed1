//! Where closed files wait for their checkpoint, and how they become visible: the one place
//! where the file sink and the object sink differ.
//!
//! Both write every in-progress file to a local *staging directory* (`{root}/.inprogress/`)
//! with the same writers, rolling and dead-letter code ([`FileSink`](crate::FileSink)); a
//! [`Storage`] takes over once a file is closed:
//!
//! | step                    | [`LocalStorage`] (file sink)    | `ObjectStorage` (object sink, feature `s3`) |
//! |-------------------------|----------------------------------|---------------------------------------------|
//! | [`seal`](Storage::seal) | nothing (the file is fsynced)    | multipart upload to the final key, parts recorded in the pending file, staging file deleted |
//! | [`sync_sealed`](Storage::sync_sealed) | fsync the staging directory | nothing |
//! | [`commit`](Storage::commit) | rename staging → final       | `CompleteMultipartUpload` (`If-None-Match: *`) |
//! | [`discard_uncommitted`](Storage::discard_uncommitted) | empty the staging directory | empty it, abort every open upload under the prefix |

use std::path::{Path, PathBuf};

use cdc_state::PendingFile;

use crate::commit::{clear_inprogress, commit_file};
use crate::io::{create_dir_durable, sync_dir, RetryPolicy};
use crate::SinkError;

/// What committing one pending file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Made visible now (renamed, or its upload completed).
    Committed,
    /// Already visible (an earlier commit, before a crash, got that far).
    AlreadyCommitted,
}

/// The storage half of the two-phase commit (see the module docs). Methods are called from
/// the sink's single loop, in protocol order; every one must be safe to repeat after a crash.
pub trait Storage: Send {
    /// Prepares the storage at the start of a recovery (directories exist).
    fn open(&mut self, staging_dir: &Path) -> Result<(), SinkError>;

    /// Makes one closed, fsynced staging file durable where a checkpoint can name it, filling
    /// in what committing it needs (`upload_id`, `parts`). `pending.final_key` is final.
    fn seal(&mut self, staged: &Path, pending: &mut PendingFile) -> Result<(), SinkError>;

    /// Called once after sealing files and before the checkpoint naming them is saved.
    fn sync_sealed(&mut self, staging_dir: &Path) -> Result<(), SinkError>;

    /// Phase two for one pending file of a durable checkpoint. Idempotent: a file already
    /// visible is [`CommitOutcome::AlreadyCommitted`]; one that is neither staged nor visible
    /// is an error naming it.
    fn commit(&mut self, pending: &PendingFile) -> Result<CommitOutcome, SinkError>;

    /// At recovery, after the last checkpoint's files are committed: removes everything
    /// staged that no checkpoint names (its records will be read again). Returns how many.
    fn discard_uncommitted(&mut self, staging_dir: &Path) -> Result<u64, SinkError>;

    /// Where committed files go, for logs (`/data/out`, `s3://bucket/prefix`).
    fn location(&self) -> String;

    /// The local output directory, for what works on committed local files (dead-letter
    /// replay); `None` for object stores.
    fn local_root(&self) -> Option<&Path> {
        None
    }
}

/// Committed files in a local directory: commit is an atomic rename (the file sink).
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    retry: RetryPolicy,
}

impl LocalStorage {
    /// Files committed under `root` (the staging directory is inside it, so renames stay on
    /// one file system).
    pub fn new(root: impl Into<PathBuf>, retry: RetryPolicy) -> Self {
        Self {
            root: root.into(),
            retry,
        }
    }
}

impl Storage for LocalStorage {
    fn open(&mut self, staging_dir: &Path) -> Result<(), SinkError> {
        create_dir_durable(&self.retry, &self.root)?;
        create_dir_durable(&self.retry, staging_dir)
    }

    fn seal(&mut self, _staged: &Path, _pending: &mut PendingFile) -> Result<(), SinkError> {
        // The closed file is fsynced in place; its name is made durable by `sync_sealed`.
        Ok(())
    }

    fn sync_sealed(&mut self, staging_dir: &Path) -> Result<(), SinkError> {
        // The staging files' directory entries must be durable before a checkpoint names them.
        sync_dir(&self.retry, staging_dir)
    }

    fn commit(&mut self, pending: &PendingFile) -> Result<CommitOutcome, SinkError> {
        commit_file(&self.root, &self.retry, pending)
    }

    fn discard_uncommitted(&mut self, staging_dir: &Path) -> Result<u64, SinkError> {
        clear_inprogress(&self.retry, staging_dir)
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}
