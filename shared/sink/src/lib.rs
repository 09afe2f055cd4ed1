//! The exactly-once file sink core: Flink's FileSink protocol over local files.
//!
//! Records `(shard, offset, ChangeEvent)` go into **buckets** — (shard, source, database,
//! table, schema version, UTC hour of `commit_ts_ms`) — each with one open **in-progress**
//! file under `{root}/.inprogress/` (a dot directory: Spark, Trino, DuckDB and pyarrow skip
//! it). Rows are buffered per bucket up to `batch_size` in a
//! [`RecordBatchBuilder`](cdc_formats::RecordBatchBuilder), then encoded into the bucket's
//! [`FormatWriter`](cdc_formats::FormatWriter). A file **rolls** (is closed and becomes
//! *pending*) when its size reaches the rolling size, when the rolling interval since its
//! first row has passed, when a newer schema version of its table arrives, and at every
//! checkpoint.
//!
//! # On-disk protocol
//!
//! ```text
//! {root}/.inprogress/<run>-<seq>.<ext>        being written, or closed and pending
//! {root}/.inprogress/<run>-<seq>.dlq.jsonl    dead letters of one shard, same life cycle
//! {root}/<path template>                      committed data, e.g.
//!     shop/orders/dt=2024-05-17/hour=07/part-<shard>-<firstOffset>-<lastOffset>.parquet
//! {root}/dlq/part-<shard>-<firstOffset>-<lastOffset>.jsonl   committed dead letters
//! ```
//!
//! 1. [`FileSink::prepare_checkpoint`] finishes every open writer, fsyncs each file and the
//!    `.inprogress` directory, and returns a [`SinkState`](cdc_state::SinkState): the pending
//!    files (staging key → final key, relative to the root), the next bus offset per shard,
//!    and per source the highest [`Position`](cdc_event::Position) written.
//! 2. The caller saves that state in a checkpoint ([`CheckpointStore`](cdc_state::CheckpointStore)).
//! 3. Only after the checkpoint is durable, [`FileSink::commit`] renames each pending file to
//!    its final name and fsyncs the directories. Idempotent: staging gone and final present
//!    is success; both gone is [`SinkError::PendingFileMissing`] naming the file.
//! 4. Only after `commit` returns may the caller commit the bus offsets.
//! 5. At start, [`FileSink::recover`] with the last checkpoint's state commits its pending
//!    files again (idempotently), deletes everything else in `.inprogress/` (written after
//!    that checkpoint, its records will be replayed), restores the dedupe marks and returns
//!    the offsets to resume from.
//!
//! A crash before step 2 loses only in-progress files, whose records are re-read; a crash
//! between 2 and 3 is finished by recovery; a crash during 3 leaves some files renamed,
//! which recovery accepts. Every row is therefore committed exactly once, provided the bus
//! replays from the checkpointed offsets.
//!
//! # Where committed files go
//!
//! Steps 1, 3 and 5 end in a [`Storage`]: [`LocalStorage`] renames within the output directory
//! (above); with the `s3` feature, [`object::ObjectStorage`] makes the same protocol commit
//! objects to S3 and S3-compatible stores (multipart uploads named in the checkpoint, completed
//! after it — see [`mod@object`]). Rows, buckets, rolling, formats, layout, replay marks and the
//! dead-letter queue are shared: [`FileSink::with_storage`].
//!
//! # Replays and dead letters
//!
//! An event whose position is at or below the high-water mark of its (source, shard) is
//! dropped and counted (a replay by capture or relay). **The mark is per source and shard**:
//! a source's events may be spread over several shards (by key hash), but within one shard
//! they must arrive in position order (see [`replay_mark_key`]).
//! An event that cannot be converted goes to the dead-letter queue (see [`mod@dlq`]), whose
//! files follow the same two-phase protocol. Once the cause is fixed,
//! [`FileSink::replay_dead_letters`] writes them back as rows, exactly once (see
//! [`mod@replay`]).
//!
//! # Errors
//!
//! File-system operations and the bytes written into files are retried with backoff up to
//! `max_retries`; then the sink stops ([`FileSink::is_failed`]) without committing anything,
//! and the caller restarts from the last checkpoint.

#![forbid(unsafe_code)]

mod commit;
pub mod dlq;
mod error;
mod io;
pub mod layout;
mod marks;
#[cfg(feature = "s3")]
pub mod object;
mod options;
mod record;
pub mod replay;
mod sink;
mod storage;

pub use error::SinkError;
pub use io::RetryPolicy;
pub use layout::{PathTemplate, DEFAULT_PATH_TEMPLATE};
pub use marks::replay_mark_key;
pub use options::{SinkOptions, DEFAULT_DLQ_DIR, INPROGRESS_DIR};
pub use record::{Record, SinkStats, WriteOutcome};
pub use replay::{
    read_dead_letters, DeadLetterRecord, ReplayReport, REPLAYED_DIR, REPLAYING_DIR, REPLAY_SHARD,
};
pub use sink::{CommitReport, FileSink};
pub use storage::{CommitOutcome, LocalStorage, Storage};
