//! What the sink consumes: one change event read from a bus shard at an offset.

use std::sync::Arc;

use cdc_event::ChangeEvent;

/// One record of a bus shard. Records of a shard must arrive in offset order (gaps are fine:
/// a bus may skip offsets); a record below the next expected offset of its shard is a bus
/// redelivery and is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The bus shard (partition) the record was read from.
    pub shard: Arc<str>,
    /// The record's offset in `shard`.
    pub offset: u64,
    pub event: ChangeEvent,
}

impl Record {
    pub fn new(shard: impl Into<Arc<str>>, offset: u64, event: ChangeEvent) -> Self {
        Self {
            shard: shard.into(),
            offset,
            event,
        }
    }
}

/// What [`FileSink::write`](crate::FileSink::write) did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Appended to its bucket; committed with the next checkpoint.
    Appended,
    /// Dropped: its position is at or below the high-water mark of its source (a replay by
    /// capture or relay of an event already written).
    DuplicateDropped,
    /// Dropped: its offset is below the next expected offset of its shard (a bus redelivery).
    RedeliveryDropped,
    /// Could not be converted; written to the dead-letter queue, committed with the next
    /// checkpoint.
    DeadLettered,
}

/// Counters since the sink was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    pub records: u64,
    pub rows_appended: u64,
    pub duplicates_dropped: u64,
    pub redeliveries_dropped: u64,
    pub dead_lettered: u64,
    /// Files closed (rolled or closed at a checkpoint), data and dead-letter.
    pub files_closed: u64,
    /// Pending files renamed to their final name.
    pub files_committed: u64,
    /// Pending files found already at their final name (repeated commit after a crash).
    pub files_already_committed: u64,
    /// Uncommitted in-progress files deleted at recovery.
    pub inprogress_deleted: u64,
}
