//! The checkpoint store: numbered, checksummed checkpoint files written with
//! conditional creates, epoch-fenced, retained to a fixed count.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use crate::backend::{Backend, PutMode};
use crate::checkpoint::{Checkpoint, CheckpointId};
use crate::error::{error_chain, BackendError, CheckpointError, FormatError};
use crate::format::{decode_checkpoint, encode_checkpoint};

/// Key prefix of checkpoint files.
pub const CHECKPOINT_KEY_PREFIX: &str = "chk-";

/// `chk-` + the id zero-padded to 20 digits (all of `u64`), so keys sort in
/// id order.
pub fn checkpoint_key(id: CheckpointId) -> String {
    format!("{CHECKPOINT_KEY_PREFIX}{:020}", id.0)
}

/// The id of a checkpoint key, or `None` for any other key.
pub fn parse_checkpoint_key(key: &str) -> Option<CheckpointId> {
    let digits = key.strip_prefix(CHECKPOINT_KEY_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(CheckpointId)
}

/// A checkpoint file as listed (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEntry {
    pub id: CheckpointId,
    pub key: String,
    pub size_bytes: u64,
}

/// The result of [`CheckpointStore::load_latest_with_report`].
#[derive(Debug)]
pub struct LoadReport {
    /// The newest valid checkpoint, if any.
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoints that failed verification, newest first.
    pub skipped: Vec<SkippedCheckpoint>,
}

/// A checkpoint file that failed verification and was not used.
#[derive(Debug)]
pub struct SkippedCheckpoint {
    pub id: CheckpointId,
    /// Where it is (a path for a directory backend).
    pub location: String,
    pub error: FormatError,
}

/// Saves and loads checkpoints on a [`Backend`].
///
/// Safe to share between threads; saves from one store are serialised.
/// Several stores (processes) may share a backend: conditional creates
/// guarantee no id is written twice, and the epoch fence stops a writer
/// once a newer epoch has checkpointed.
#[derive(Debug)]
pub struct CheckpointStore<B> {
    backend: B,
    retained: NonZeroUsize,
    fence: Mutex<Fence>,
}

#[derive(Debug)]
struct Fence {
    /// Lowest epoch allowed to save; only ever raised.
    min_epoch: u64,
    /// Highest id this store has assigned, so ids keep increasing even if
    /// the newest files are deleted behind our back.
    last_id: u64,
}

impl<B: Backend> CheckpointStore<B> {
    /// A store retaining one checkpoint (Flink's default
    /// `state.checkpoints.num-retained`) with no minimum epoch.
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            retained: NonZeroUsize::MIN,
            fence: Mutex::new(Fence {
                min_epoch: 0,
                last_id: 0,
            }),
        }
    }

    /// How many valid checkpoints to keep (Flink's `CHECKPOINT_RETAINED_NUMBER`).
    #[must_use]
    pub fn with_retained_number(mut self, retained: NonZeroUsize) -> Self {
        self.retained = retained;
        self
    }

    /// Refuse to save checkpoints with an epoch below `epoch` (e.g. the
    /// epoch of this leader's HA lease).
    #[must_use]
    pub fn with_min_epoch(self, epoch: u64) -> Self {
        self.raise_min_epoch(epoch);
        self
    }

    /// Raises the minimum epoch (never lowers it), e.g. when a lease with a
    /// newer epoch is observed.
    pub fn raise_min_epoch(&self, epoch: u64) {
        let mut fence = self.fence();
        fence.min_epoch = fence.min_epoch.max(epoch);
    }

    pub fn min_epoch(&self) -> u64 {
        self.fence().min_epoch
    }

    pub fn retained_number(&self) -> NonZeroUsize {
        self.retained
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Assigns `checkpoint` the next id, writes it with a conditional
    /// create, then applies retention. Returns the id.
    ///
    /// Fails with [`CheckpointError::Fenced`] if its epoch is below the
    /// minimum epoch or below the epoch of the newest stored checkpoint, and
    /// with [`CheckpointError::AlreadyExists`] if another writer saved the
    /// same id first (this one must not retry blindly: it may be a zombie).
    /// A failure of retention is logged, not returned: the checkpoint itself
    /// is durable.
    pub fn save(&self, checkpoint: &mut Checkpoint) -> Result<CheckpointId, CheckpointError> {
        let mut fence = self.fence();
        let entries = self.list()?;
        let newest = self.newest_valid(&entries)?;
        if let Some(newest) = &newest.checkpoint {
            fence.min_epoch = fence.min_epoch.max(newest.epoch);
        }
        if checkpoint.epoch < fence.min_epoch {
            return Err(CheckpointError::Fenced {
                ours: checkpoint.epoch,
                current: fence.min_epoch,
            });
        }

        // After every listed file, corrupt ones included: their names are taken.
        let listed_max = entries.last().map_or(0, |entry| entry.id.0);
        // u64 ids do not run out in practice; saturating makes the
        // impossible case fail as AlreadyExists instead of wrapping to 0.
        let id = CheckpointId(listed_max.max(fence.last_id).saturating_add(1));
        checkpoint.id = id;
        let bytes = encode_checkpoint(checkpoint)?;
        let key = checkpoint_key(id);
        match self.backend.put(&key, &bytes, PutMode::Create) {
            Ok(_) => {}
            Err(BackendError::AlreadyExists { .. }) => {
                return Err(CheckpointError::AlreadyExists {
                    id,
                    location: self.backend.locate(&key),
                });
            }
            Err(error) => return Err(error.into()),
        }
        fence.last_id = id.0;
        fence.min_epoch = fence.min_epoch.max(checkpoint.epoch);
        tracing::debug!(location = %self.backend.locate(&key), %id, epoch = checkpoint.epoch, "saved checkpoint");

        if let Err(error) = self.apply_retention(id) {
            tracing::warn!(error = %error_chain(&error), "checkpoint retention failed; will retry on the next save");
        }
        Ok(id)
    }

    /// Saves `checkpoint` as the direct successor of `previous` (the newest checkpoint this
    /// writer restored or saved; `None` before any): a compare-and-swap on the sequence of
    /// checkpoints, so of two writers that started from the same checkpoint only the first
    /// to save succeeds.
    ///
    /// Fails with [`CheckpointError::Conflict`] if a checkpoint newer than `previous` is
    /// listed, or if another writer creates id `previous + 1` first (the conditional create
    /// refuses it). The epoch fence of [`save`](Self::save) applies too. On `Conflict` the
    /// caller is a zombie: it must not commit anything of this checkpoint.
    pub fn save_next(
        &self,
        checkpoint: &mut Checkpoint,
        previous: Option<CheckpointId>,
    ) -> Result<CheckpointId, CheckpointError> {
        let mut fence = self.fence();
        let entries = self.list()?;
        if let Some(newer) = entries
            .iter()
            .rev()
            .find(|entry| Some(entry.id) > previous)
        {
            return Err(CheckpointError::Conflict {
                expected: previous,
                found: newer.id,
                location: self.backend.locate(&newer.key),
            });
        }
        let newest = self.newest_valid(&entries)?;
        if let Some(newest) = &newest.checkpoint {
            fence.min_epoch = fence.min_epoch.max(newest.epoch);
        }
        if checkpoint.epoch < fence.min_epoch {
            return Err(CheckpointError::Fenced {
                ours: checkpoint.epoch,
                current: fence.min_epoch,
            });
        }
        let id = CheckpointId(previous.map_or(0, |id| id.0).saturating_add(1));
        checkpoint.id = id;
        let bytes = encode_checkpoint(checkpoint)?;
        let key = checkpoint_key(id);
        match self.backend.put(&key, &bytes, PutMode::Create) {
            Ok(_) => {}
            Err(BackendError::AlreadyExists { .. }) => {
                return Err(CheckpointError::Conflict {
                    expected: previous,
                    found: id,
                    location: self.backend.locate(&key),
                });
            }
            Err(error) => return Err(error.into()),
        }
        fence.last_id = fence.last_id.max(id.0);
        fence.min_epoch = fence.min_epoch.max(checkpoint.epoch);
        tracing::debug!(location = %self.backend.locate(&key), %id, epoch = checkpoint.epoch, "saved checkpoint");
        if let Err(error) = self.apply_retention(id) {
            tracing::warn!(error = %error_chain(&error), "checkpoint retention failed; will retry on the next save");
        }
        Ok(id)
    }

    /// The newest valid checkpoint, skipping (with a warning) corrupt ones.
    pub fn load_latest(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        self.load_latest_with_report()
            .map(|report| report.checkpoint)
    }

    /// Like [`load_latest`](Self::load_latest), also reporting what was
    /// skipped. Raises the minimum epoch to the loaded checkpoint's epoch.
    ///
    /// Backend errors (other than a file vanishing) are returned rather than
    /// skipped: silently restoring an older checkpoint because of a
    /// transient I/O error would rewind the pipeline.
    pub fn load_latest_with_report(&self) -> Result<LoadReport, CheckpointError> {
        let entries = self.list()?;
        let report = self.newest_valid(&entries)?;
        if let Some(checkpoint) = &report.checkpoint {
            self.raise_min_epoch(checkpoint.epoch);
        }
        Ok(report)
    }

    /// A specific checkpoint, verified.
    pub fn load(&self, id: CheckpointId) -> Result<Checkpoint, CheckpointError> {
        let key = checkpoint_key(id);
        let entry = CheckpointEntry {
            id,
            key: key.clone(),
            size_bytes: 0,
        };
        match self.read_entry(&entry)? {
            Some(Ok(checkpoint)) => Ok(checkpoint),
            Some(Err(source)) => Err(CheckpointError::Corrupt {
                location: self.backend.locate(&key),
                source,
            }),
            None => Err(CheckpointError::NotFound {
                id,
                location: self.backend.locate(&key),
            }),
        }
    }

    /// Checkpoint files, oldest first (not verified).
    pub fn list(&self) -> Result<Vec<CheckpointEntry>, CheckpointError> {
        let mut entries: Vec<CheckpointEntry> = self
            .backend
            .list(CHECKPOINT_KEY_PREFIX)?
            .into_iter()
            .filter_map(|object| {
                parse_checkpoint_key(&object.key).map(|id| CheckpointEntry {
                    id,
                    key: object.key,
                    size_bytes: object.size,
                })
            })
            .collect();
        entries.sort_by_key(|entry| entry.id);
        Ok(entries)
    }

    fn fence(&self) -> MutexGuard<'_, Fence> {
        // The fence is two numbers updated with single assignments; a panic
        // elsewhere cannot leave it inconsistent.
        self.fence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads and verifies one entry: `None` if it vanished (deleted by a
    /// concurrent retention), `Some(Err)` if corrupt.
    fn read_entry(
        &self,
        entry: &CheckpointEntry,
    ) -> Result<Option<Result<Checkpoint, FormatError>>, BackendError> {
        let bytes = match self.backend.get(&entry.key) {
            Ok(got) => got.bytes,
            Err(BackendError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let verified = decode_checkpoint(&bytes).and_then(|checkpoint| {
            // A valid file under the wrong name (copied by hand?) would
            // break the id order that retention and fencing rely on.
            if checkpoint.id == entry.id {
                Ok(checkpoint)
            } else {
                Err(FormatError::IdMismatch {
                    expected: entry.id,
                    actual: checkpoint.id,
                })
            }
        });
        Ok(Some(verified))
    }

    /// Walks `entries` newest first until one verifies, warning about and
    /// collecting the corrupt ones passed on the way.
    fn newest_valid(&self, entries: &[CheckpointEntry]) -> Result<LoadReport, BackendError> {
        let mut skipped = Vec::new();
        for entry in entries.iter().rev() {
            match self.read_entry(entry)? {
                Some(Ok(checkpoint)) => {
                    return Ok(LoadReport {
                        checkpoint: Some(checkpoint),
                        skipped,
                    })
                }
                Some(Err(error)) => {
                    let location = self.backend.locate(&entry.key);
                    tracing::warn!(
                        %location,
                        id = %entry.id,
                        error = %error_chain(&error),
                        "skipping corrupt checkpoint"
                    );
                    skipped.push(SkippedCheckpoint {
                        id: entry.id,
                        location,
                        error,
                    });
                }
                None => {}
            }
        }
        Ok(LoadReport {
            checkpoint: None,
            skipped,
        })
    }

    /// Keeps the newest `retained` valid checkpoints, deletes every
    /// checkpoint file older than the oldest of them, and removes leftovers
    /// of crashed writes.
    ///
    /// Corrupt files newer than that are kept until they age out, so they
    /// can be inspected; they never count towards `retained`.
    fn apply_retention(&self, just_saved: CheckpointId) -> Result<(), CheckpointError> {
        let entries = self.list()?;
        let mut valid = 0;
        let mut oldest_kept = None;
        for entry in entries.iter().rev() {
            let is_valid = if entry.id == just_saved {
                // Written and fsynced by us a moment ago.
                true
            } else {
                match self.read_entry(entry)? {
                    Some(Ok(_)) => true,
                    Some(Err(error)) => {
                        tracing::warn!(
                            location = %self.backend.locate(&entry.key),
                            id = %entry.id,
                            error = %error_chain(&error),
                            "corrupt checkpoint does not count towards retention"
                        );
                        false
                    }
                    None => false,
                }
            };
            if is_valid {
                valid += 1;
                if valid == self.retained.get() {
                    oldest_kept = Some(entry.id);
                    break;
                }
            }
        }
        if let Some(oldest_kept) = oldest_kept {
            for entry in entries.iter().take_while(|entry| entry.id < oldest_kept) {
                self.backend.delete(&entry.key)?;
                tracing::debug!(location = %self.backend.locate(&entry.key), "deleted checkpoint beyond retention");
            }
        }
        self.backend.cleanup_incomplete("")?;
        Ok(())
    }
}
