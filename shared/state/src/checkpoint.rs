//! The checkpoint document and the typed per-operator states stored in it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;

/// A checkpoint's sequence number; assigned by
/// [`CheckpointStore::save`](crate::CheckpointStore::save), strictly
/// increasing per store.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct CheckpointId(pub u64);

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Periodic checkpoint, or a user-triggered savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointKind {
    #[default]
    Checkpoint,
    Savepoint,
}

/// A consistent snapshot of a pipeline: each stage (operator) stores its own
/// state as JSON under its name.
///
/// Unknown fields are ignored on read (no `deny_unknown_fields`, unlike
/// config) so a checkpoint written by a newer build can still be restored by
/// an older one during a rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Assigned by the store on save.
    pub id: CheckpointId,
    /// Leader/fencing epoch of the writer.
    pub epoch: u64,
    /// Wall-clock creation time, Unix milliseconds.
    pub created_at_ms: u64,
    pub kind: CheckpointKind,
    /// Job / pipeline name.
    pub job: String,
    /// Operator name → that operator's state.
    #[serde(default)]
    pub operators: BTreeMap<String, serde_json::Value>,
}

impl Checkpoint {
    /// An empty checkpoint of `job` written under leader `epoch`, stamped
    /// now. The id is assigned when it is saved.
    pub fn new(job: impl Into<String>, epoch: u64) -> Self {
        Self {
            id: CheckpointId(0),
            epoch,
            created_at_ms: now_ms(),
            kind: CheckpointKind::Checkpoint,
            job: job.into(),
            operators: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn with_kind(mut self, kind: CheckpointKind) -> Self {
        self.kind = kind;
        self
    }

    /// Stores `state` as JSON under `operator`, replacing any previous state.
    pub fn put_state<T: Serialize + ?Sized>(
        &mut self,
        operator: impl Into<String>,
        state: &T,
    ) -> Result<(), CheckpointError> {
        let operator = operator.into();
        match serde_json::to_value(state) {
            Ok(value) => {
                self.operators.insert(operator, value);
                Ok(())
            }
            Err(source) => Err(CheckpointError::OperatorState { operator, source }),
        }
    }

    /// The state of `operator`, or `None` if it stored none (a new operator
    /// starting from scratch).
    pub fn state<T: DeserializeOwned>(&self, operator: &str) -> Result<Option<T>, CheckpointError> {
        let Some(value) = self.operators.get(operator) else {
            return Ok(None);
        };
        T::deserialize(value)
            .map(Some)
            .map_err(|source| CheckpointError::OperatorState {
                operator: operator.to_owned(),
                source,
            })
    }
}

fn now_ms() -> u64 {
    // A clock before 1970 is a broken host; 0 keeps the checkpoint usable.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Next offset (or sequence number) to read, per bus shard.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardOffsets {
    next: BTreeMap<String, u64>,
}

impl ShardOffsets {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next offset to read from `shard`, if known.
    pub fn get(&self, shard: &str) -> Option<u64> {
        self.next.get(shard).copied()
    }

    /// Moves `shard` forward to `next`. Never moves backwards: a late or
    /// replayed acknowledgement must not rewind a committed offset. Returns
    /// whether the offset changed.
    pub fn advance(&mut self, shard: impl Into<String>, next: u64) -> bool {
        match self.next.entry(shard.into()) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(next);
                true
            }
            std::collections::btree_map::Entry::Occupied(mut slot) if next > *slot.get() => {
                slot.insert(next);
                true
            }
            std::collections::btree_map::Entry::Occupied(_) => false,
        }
    }

    /// Sets `shard` to `next` unconditionally (an explicit reset, e.g. a
    /// re-created shard).
    pub fn set(&mut self, shard: impl Into<String>, next: u64) {
        self.next.insert(shard.into(), next);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.next
            .iter()
            .map(|(shard, next)| (shard.as_str(), *next))
    }

    pub fn len(&self) -> usize {
        self.next.len()
    }

    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }
}

impl<S: Into<String>> FromIterator<(S, u64)> for ShardOffsets {
    fn from_iter<I: IntoIterator<Item = (S, u64)>>(iter: I) -> Self {
        Self {
            next: iter
                .into_iter()
                .map(|(shard, next)| (shard.into(), next))
                .collect(),
        }
    }
}

/// A file written and closed but not yet committed (the "pending" state of
/// the two-phase file sink): committed by moving `staging_key` to
/// `final_key` (or completing the multipart upload) after the checkpoint
/// holding it is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFile {
    /// Where the bytes are now: a path for the file sink, an object key for S3.
    pub staging_key: String,
    /// Where the file becomes visible on commit.
    pub final_key: String,
    pub size_bytes: u64,
    pub record_count: u64,
    /// S3 multipart upload to complete on commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The uploaded parts of `upload_id`, in part-number order: what completing it needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<UploadedPart>,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedPart {
    /// 1-based part number.
    pub number: i32,
    /// The ETag the server returned for the part.
    pub etag: String,
}

/// The state of a file or object sink.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SinkState {
    /// Files to commit once this checkpoint is durable (idempotently: a
    /// restore may find some already committed).
    #[serde(default)]
    pub pending: Vec<PendingFile>,
    /// Bus offsets to commit after the files are committed.
    #[serde(default)]
    pub offsets: ShardOffsets,
    /// Source id → position (printed losslessly) of the last change whose
    /// file is committed: the high-water mark below which a replay is a
    /// duplicate.
    #[serde(default)]
    pub committed_positions: BTreeMap<String, String>,
}
