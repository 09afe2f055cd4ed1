//! The sink loop: records → buckets → in-progress files → pending files → committed files.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cdc_event::{ChangeEvent, TableId};
use cdc_formats::{new_writer, FormatError, FormatWriter, RecordBatchBuilder};
use cdc_state::{PendingFile, ShardOffsets, SinkState};
use chrono::{NaiveDate, Timelike};

use crate::dlq::{DeadLetter, DlqFile};
use crate::io::RetryWriter;
use crate::layout::FileNameParts;
use crate::marks::ReplayMarks;
use crate::options::INPROGRESS_DIR;
use crate::record::{Record, SinkStats, WriteOutcome};
use crate::replay::REPLAY_SHARD;
use crate::storage::{CommitOutcome, LocalStorage, Storage};
use crate::{SinkError, SinkOptions};

/// Bytes buffered between the format writer and the file.
const WRITE_BUFFER: usize = 64 * 1024;

/// One open file's worth of rows: same shard, source, table, schema version and hour.
///
/// The shard is part of the key (beyond the table and partition) because the committed name
/// carries the offsets of the rows, and offsets only mean something within one shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BucketKey {
    shard: Arc<str>,
    source: Arc<str>,
    table: TableId,
    version: u64,
    date: NaiveDate,
    hour: u32,
}

struct OpenFile {
    writer: Box<dyn FormatWriter>,
    /// Second handle on the same file, for `sync_all` after the writer is finished.
    handle: File,
    staging_key: String,
    path: PathBuf,
}

struct Bucket {
    builder: RecordBatchBuilder,
    file: Option<OpenFile>,
    first_offset: Option<u64>,
    last_offset: u64,
    rows: u64,
    /// When the bucket got its first row; the rolling interval counts from here.
    opened_at: Instant,
}

/// What a rejected record is sent to the dead-letter queue with.
pub(crate) struct Rejection {
    pub stage: &'static str,
    pub error: String,
}

/// Creates in-progress files with names unique across restarts.
pub(crate) struct Files {
    pub options: SinkOptions,
    pub inprogress_dir: PathBuf,
    run_id: String,
    next_seq: u64,
}

impl Files {
    /// A new staging key (relative to the root) and its path, for a file ending in `suffix`.
    pub(crate) fn next_staging(&mut self, suffix: &str) -> (String, PathBuf) {
        self.next_seq += 1;
        let name = format!("{}-{:06}.{suffix}", self.run_id, self.next_seq);
        let path = self.inprogress_dir.join(&name);
        (format!("{INPROGRESS_DIR}/{name}"), path)
    }

    /// Creates a new in-progress file with a retrying, buffered writer over it.
    pub(crate) fn create(&mut self, suffix: &str) -> Result<NewFile, SinkError> {
        let (key, path) = self.next_staging(suffix);
        let policy = self.options.retry;
        let handle = policy.run("create in-progress file", &path, || {
            OpenOptions::new().write(true).create_new(true).open(&path)
        })?;
        let clone = policy.run("duplicate file handle of", &path, || handle.try_clone())?;
        let out =
            BufWriter::with_capacity(WRITE_BUFFER, RetryWriter::new(clone, policy, path.clone()));
        Ok(NewFile {
            staging_key: key,
            path,
            handle,
            out,
        })
    }
}

/// A just-created in-progress file.
pub(crate) struct NewFile {
    pub staging_key: String,
    pub path: PathBuf,
    /// For `sync_all` once the writer is done.
    pub handle: File,
    pub out: BufWriter<RetryWriter<File>>,
}

/// The exactly-once file sink (the two-phase-commit protocol of Flink's FileSink).
///
/// 1. [`recover`](Self::recover) with the sink state of the last durable checkpoint: commits
///    its pending files, deletes every other in-progress file, returns the offsets to resume
///    reading from.
/// 2. [`write`](Self::write) records in shard order. Rows go to in-progress files under
///    `.inprogress/` (invisible to readers); files roll by size and interval.
/// 3. [`prepare_checkpoint`](Self::prepare_checkpoint) closes and fsyncs every open file and
///    returns the [`SinkState`] to put into the checkpoint.
/// 4. Once the checkpoint is durable, [`commit`](Self::commit) renames its pending files to
///    their final names; only then may the caller commit the bus offsets.
///
/// Where closed files go is a [`Storage`]: a local directory ([`new`](Self::new)) or, with
/// [`with_storage`](Self::with_storage), an object store (the object sink): rows, rolling,
/// dedupe marks and the dead-letter queue are the same code.
///
/// Not thread-safe by design: one sink per shard set, driven by one loop.
pub struct FileSink {
    files: Files,
    storage: Box<dyn Storage>,
    buckets: HashMap<BucketKey, Bucket>,
    dlq: HashMap<Arc<str>, DlqFile>,
    /// Closed files not yet committed (carried into every checkpoint until committed, so a
    /// checkpoint that failed to save loses nothing).
    pending: Vec<PendingFile>,
    /// Next offset per shard of the records consumed so far.
    offsets: HashMap<Arc<str>, u64>,
    /// Per (source, shard), the highest position written (committed or not): the dedupe
    /// marks (see [`ReplayMarks`]).
    seen: ReplayMarks,
    committed: SinkState,
    stats: SinkStats,
    recovered: bool,
    failed: Option<String>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("root", &self.files.options.root)
            .field("storage", &self.storage.location())
            .field("open_buckets", &self.buckets.len())
            .field("pending", &self.pending.len())
            .field("stats", &self.stats)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// A sink writing under `options.root()`. Touches no file until [`recover`](Self::recover).
    pub fn new(options: SinkOptions) -> Self {
        let storage = LocalStorage::new(options.root.clone(), options.retry);
        Self::with_storage(options, Box::new(storage))
    }

    /// A sink staging in-progress files under `options.root()/.inprogress/` and committing
    /// them to `storage`. Touches nothing until [`recover`](Self::recover).
    pub fn with_storage(options: SinkOptions, storage: Box<dyn Storage>) -> Self {
        let inprogress_dir = options.root.join(INPROGRESS_DIR);
        // Unique across restarts (the clock moves on) and across processes (the pid).
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let run_id = format!("{nanos:x}-{}", std::process::id());
        Self {
            files: Files {
                options,
                inprogress_dir,
                run_id,
                next_seq: 0,
            },
            storage,
            buckets: HashMap::new(),
            dlq: HashMap::new(),
            pending: Vec::new(),
            offsets: HashMap::new(),
            seen: ReplayMarks::default(),
            committed: SinkState::default(),
            stats: SinkStats::default(),
            recovered: false,
            failed: None,
        }
    }

    pub fn options(&self) -> &SinkOptions {
        &self.files.options
    }

    pub fn stats(&self) -> SinkStats {
        self.stats
    }

    /// Whether an error stopped the sink; it then refuses to write or commit until recovered.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Where committed files go (a directory, or `s3://bucket/prefix`).
    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// The local output directory, `None` when files are committed to an object store.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.storage.local_root()
    }

    /// The state of the last [`commit`](Self::commit) (or of the recovered checkpoint).
    pub fn committed(&self) -> &SinkState {
        &self.committed
    }

    /// Makes the output directory consistent with `last_checkpoint` (the sink state of the
    /// newest durable checkpoint, `None` on a first start): commits its pending files
    /// (idempotently), deletes every other file in `.inprogress/` (written after that
    /// checkpoint; its records will be replayed), restores the dedupe high-water marks, and
    /// returns the bus offsets to resume reading from. Anything buffered in this sink is
    /// discarded, so recovering also resets a failed sink.
    pub fn recover(
        &mut self,
        last_checkpoint: Option<&SinkState>,
    ) -> Result<ShardOffsets, SinkError> {
        self.buckets.clear();
        self.dlq.clear();
        self.pending.clear();
        self.offsets.clear();
        self.seen = ReplayMarks::default();
        self.recovered = false;
        self.failed = None;
        let staging = self.files.inprogress_dir.clone();
        self.storage.open(&staging)?;
        let state = last_checkpoint.cloned().unwrap_or_default();
        for pending in &state.pending {
            let outcome = self.storage.commit(pending)?;
            self.count_commit(outcome);
        }
        self.seen = ReplayMarks::from_checkpoint(&state.committed_positions)?;
        for (shard, next) in state.offsets.iter() {
            self.offsets.insert(Arc::from(shard), next);
        }
        let deleted = self.storage.discard_uncommitted(&staging)?;
        self.stats.inprogress_deleted += deleted;
        tracing::info!(
            location = %self.storage.location(),
            committed = state.pending.len(),
            deleted_inprogress = deleted,
            "file sink recovered"
        );
        let offsets = state.offsets.clone();
        self.committed = state;
        self.recovered = true;
        Ok(offsets)
    }

    /// Writes one record. Records must come in offset order per shard.
    ///
    /// Returns what happened to it; an `Err` is fatal (the sink stops, see
    /// [`is_failed`](Self::is_failed)). A record whose event cannot be converted is not an
    /// error: it goes to the dead-letter queue ([`WriteOutcome::DeadLettered`]).
    pub fn write(&mut self, record: Record) -> Result<WriteOutcome, SinkError> {
        self.check_usable()?;
        let result = self.write_inner(record);
        self.note_failure(result)
    }

    /// Rolls every bucket whose rolling interval has passed. Call it when idle (a bucket is
    /// otherwise only checked when it receives a row); returns how many files were rolled.
    pub fn poll_rolling(&mut self) -> Result<usize, SinkError> {
        self.check_usable()?;
        let interval = self.files.options.rolling_interval;
        let due: Vec<BucketKey> = self
            .buckets
            .iter()
            .filter(|(_, b)| b.opened_at.elapsed() >= interval)
            .map(|(k, _)| k.clone())
            .collect();
        let mut result = Ok(due.len());
        for key in due {
            if let Err(error) = self.roll(&key) {
                result = Err(error);
                break;
            }
        }
        self.note_failure(result)
    }

    /// Phase one: closes every open file (writer finished, file fsynced) and returns the
    /// state to save in the checkpoint: all closed files not yet committed (staging key →
    /// final key), the next bus offset per shard, and per (source, shard) the highest position written.
    pub fn prepare_checkpoint(&mut self) -> Result<SinkState, SinkError> {
        self.check_usable()?;
        let result = self.prepare_inner();
        self.note_failure(result)
    }

    /// Phase two, after the checkpoint holding `state` is durable: renames its pending files
    /// to their final names (idempotently; see the crate docs). Only after this returns `Ok`
    /// may the caller commit `state.offsets` to the bus.
    pub fn commit(&mut self, state: &SinkState) -> Result<CommitReport, SinkError> {
        self.check_usable()?;
        let result = self.commit_inner(state);
        self.note_failure(result)
    }

    /// [`check_usable`](Self::check_usable) for the replay module.
    pub(crate) fn write_checks(&self) -> Result<(), SinkError> {
        self.check_usable()
    }

    /// The next offset of `shard` consumed so far (written or not yet committed).
    pub(crate) fn next_offset(&self, shard: &str) -> Option<u64> {
        self.offsets.get(shard).copied()
    }

    /// Marks the offsets of `shard` below `next` as consumed (a gap the bus skipped).
    pub(crate) fn skip_to(&mut self, shard: &str, next: u64) {
        match self.offsets.get_mut(shard) {
            Some(current) => *current = (*current).max(next),
            None => {
                self.offsets.insert(Arc::from(shard), next);
            }
        }
    }

    fn check_usable(&self) -> Result<(), SinkError> {
        if let Some(first_error) = &self.failed {
            return Err(SinkError::Failed {
                first_error: first_error.clone(),
            });
        }
        if !self.recovered {
            return Err(SinkError::NotRecovered);
        }
        Ok(())
    }

    fn note_failure<T>(&mut self, result: Result<T, SinkError>) -> Result<T, SinkError> {
        if let Err(error) = &result {
            tracing::error!(error = %error, "file sink stopped; restart from the last checkpoint");
            self.failed = Some(error.to_string());
        }
        result
    }

    fn count_commit(&mut self, outcome: CommitOutcome) {
        match outcome {
            CommitOutcome::Committed => self.stats.files_committed += 1,
            CommitOutcome::AlreadyCommitted => self.stats.files_already_committed += 1,
        }
    }

    fn write_inner(&mut self, record: Record) -> Result<WriteOutcome, SinkError> {
        let Record {
            shard,
            offset,
            event,
        } = record;
        self.stats.records += 1;
        match self.offsets.get_mut(&shard) {
            Some(next) if offset < *next => {
                self.stats.redeliveries_dropped += 1;
                return Ok(WriteOutcome::RedeliveryDropped);
            }
            Some(next) => *next = offset.saturating_add(1),
            None => {
                self.offsets.insert(shard.clone(), offset.saturating_add(1));
            }
        }
        // Replayed dead letters interleave in position (see `crate::replay`): their shard is
        // deduplicated by offset only, and has no position mark.
        let marked = &*shard != REPLAY_SHARD;
        if marked
            && self
                .seen
                .is_replay(&event.source_name, &shard, &event.position)
        {
            self.stats.duplicates_dropped += 1;
            return Ok(WriteOutcome::DuplicateDropped);
        }
        let outcome = match self.append(&shard, offset, &event)? {
            Ok(()) => {
                self.stats.rows_appended += 1;
                WriteOutcome::Appended
            }
            Err(rejection) => {
                self.dead_letter(&shard, offset, &event, rejection)?;
                self.stats.dead_lettered += 1;
                WriteOutcome::DeadLettered
            }
        };
        // Dead-lettered events count as written too: their DLQ line commits with the same
        // checkpoint, so a replay of them must be dropped as well.
        if marked {
            self.seen
                .advance(&event.source_name, &shard, event.position);
        }
        Ok(outcome)
    }

    /// Appends to the event's bucket. The outer error is fatal; the inner one is the event's
    /// own fault and sends it to the dead-letter queue.
    fn append(
        &mut self,
        shard: &Arc<str>,
        offset: u64,
        event: &ChangeEvent,
    ) -> Result<Result<(), Rejection>, SinkError> {
        let Some(time) = chrono::DateTime::from_timestamp_millis(event.commit_ts_ms) else {
            return Ok(Err(Rejection {
                stage: "partition",
                error: format!(
                    "table {}: commit_ts_ms {} is outside the representable date range",
                    event.schema.table, event.commit_ts_ms
                ),
            }));
        };
        let key = BucketKey {
            shard: shard.clone(),
            source: event.source_name.clone(),
            table: event.schema.table.clone(),
            version: event.schema.version,
            date: time.date_naive(),
            hour: time.hour(),
        };
        if !self.buckets.contains_key(&key) {
            let builder = match RecordBatchBuilder::for_writer(event.schema.clone(), &self.files.options.writer) {
                Ok(builder) => builder,
                Err(error) => {
                    return Ok(Err(Rejection {
                        stage: "schema",
                        error: error.to_string(),
                    }))
                }
            };
            self.roll_older_versions(&key)?;
            self.buckets.insert(
                key.clone(),
                Bucket {
                    builder,
                    file: None,
                    first_offset: None,
                    last_offset: offset,
                    rows: 0,
                    opened_at: Instant::now(),
                },
            );
        }
        let options = &self.files.options;
        let (batch_size, rolling_size, rolling_interval) = (
            options.batch_size,
            options.rolling_size_bytes,
            options.rolling_interval,
        );
        let Some(bucket) = self.buckets.get_mut(&key) else {
            unreachable!("bucket inserted above");
        };
        if let Err(error) = bucket.builder.append(event) {
            return Ok(Err(Rejection {
                stage: "append",
                error: error.to_string(),
            }));
        }
        if bucket.rows == 0 {
            // The interval counts from the first row, not from a rejected first record.
            bucket.opened_at = Instant::now();
        }
        bucket.first_offset.get_or_insert(offset);
        bucket.last_offset = offset;
        bucket.rows += 1;
        let mut roll = bucket.opened_at.elapsed() >= rolling_interval;
        if bucket.builder.len() >= batch_size {
            flush_batch(&mut self.files, &key, bucket)?;
            // Rows still in the builder are not counted: the size is checked per batch.
            roll |= bucket.file.as_ref().is_some_and(|f| {
                f.writer.bytes_written() + f.writer.in_progress_size() >= rolling_size
            });
        }
        if roll {
            self.roll(&key)?;
        }
        Ok(Ok(()))
    }

    /// A new schema version of a table closes the files of its other versions in the same
    /// shard: they get no more rows, and their files should not wait for the rolling interval.
    /// (Versions are fingerprints, not counters: any other version is an older one.)
    fn roll_older_versions(&mut self, key: &BucketKey) -> Result<(), SinkError> {
        let older: Vec<BucketKey> = self
            .buckets
            .keys()
            .filter(|k| k.shard == key.shard && k.table == key.table && k.version != key.version)
            .cloned()
            .collect();
        for old in older {
            self.roll(&old)?;
        }
        Ok(())
    }

    fn roll(&mut self, key: &BucketKey) -> Result<(), SinkError> {
        if let Some(bucket) = self.buckets.remove(key) {
            if let Some(pending) = close_bucket(&mut self.files, key, bucket)? {
                self.seal(pending)?;
            }
        }
        Ok(())
    }

    /// Hands a closed file to the storage and keeps it pending until committed.
    fn seal(&mut self, mut pending: PendingFile) -> Result<(), SinkError> {
        let staged = self.files.options.root.join(&pending.staging_key);
        self.storage.seal(&staged, &mut pending)?;
        self.stats.files_closed += 1;
        self.pending.push(pending);
        Ok(())
    }

    fn dead_letter(
        &mut self,
        shard: &Arc<str>,
        offset: u64,
        event: &ChangeEvent,
        rejection: Rejection,
    ) -> Result<(), SinkError> {
        tracing::warn!(shard = %shard, offset, table = %event.schema.table, stage = rejection.stage, error = %rejection.error, "record sent to the dead-letter queue");
        let file = match self.dlq.get_mut(shard) {
            Some(file) => file,
            None => {
                let file = DlqFile::create(&mut self.files, shard.clone())?;
                self.dlq.entry(shard.clone()).or_insert(file)
            }
        };
        file.append(&DeadLetter {
            shard,
            offset,
            event,
            stage: rejection.stage,
            error: &rejection.error,
            attempts: 1,
        })
    }

    fn prepare_inner(&mut self) -> Result<SinkState, SinkError> {
        let buckets: Vec<(BucketKey, Bucket)> = self.buckets.drain().collect();
        for (key, bucket) in buckets {
            if let Some(pending) = close_bucket(&mut self.files, &key, bucket)? {
                self.seal(pending)?;
            }
        }
        let dlq: Vec<DlqFile> = self.dlq.drain().map(|(_, file)| file).collect();
        for file in dlq {
            let pending = file.close(&self.files)?;
            self.seal(pending)?;
        }
        if !self.pending.is_empty() {
            self.storage.sync_sealed(&self.files.inprogress_dir)?;
        }
        Ok(SinkState {
            pending: self.pending.clone(),
            offsets: self
                .offsets
                .iter()
                .map(|(shard, next)| (shard.to_string(), *next))
                .collect(),
            committed_positions: self.seen.to_checkpoint(),
        })
    }

    fn commit_inner(&mut self, state: &SinkState) -> Result<CommitReport, SinkError> {
        let mut report = CommitReport::default();
        for pending in &state.pending {
            let outcome = self.storage.commit(pending)?;
            self.count_commit(outcome);
            match outcome {
                CommitOutcome::Committed => report.renamed += 1,
                CommitOutcome::AlreadyCommitted => report.already_committed += 1,
            }
        }
        self.pending
            .retain(|p| !state.pending.iter().any(|c| c.staging_key == p.staging_key));
        self.committed = state.clone();
        Ok(report)
    }
}

/// What [`FileSink::commit`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitReport {
    /// Files made visible now (renamed, or their multipart upload completed).
    pub renamed: usize,
    pub already_committed: usize,
}

fn write_error(key: &BucketKey, path: PathBuf, source: FormatError) -> SinkError {
    SinkError::Write {
        table: key.table.to_string(),
        shard: key.shard.to_string(),
        path,
        source: Box::new(source),
    }
}

/// Encodes the bucket's buffered rows into its file, creating the file on the first batch
/// (so a bucket whose every record was rejected leaves no file).
fn flush_batch(files: &mut Files, key: &BucketKey, bucket: &mut Bucket) -> Result<(), SinkError> {
    if bucket.builder.is_empty() {
        return Ok(());
    }
    let batch = bucket
        .builder
        .finish()
        .map_err(|e| write_error(key, files.inprogress_dir.clone(), e))?;
    if bucket.file.is_none() {
        let suffix = files.options.extension;
        let NewFile {
            staging_key,
            path,
            handle,
            out,
        } = files.create(suffix)?;
        let writer = new_writer(
            out,
            bucket.builder.arrow_schema().clone(),
            &files.options.writer,
        )
        .map_err(|e| write_error(key, path.clone(), e))?;
        bucket.file = Some(OpenFile {
            writer,
            handle,
            staging_key,
            path,
        });
    }
    if let Some(file) = bucket.file.as_mut() {
        file.writer
            .write(&batch)
            .map_err(|e| write_error(key, file.path.clone(), e))?;
    }
    Ok(())
}

/// Finishes and fsyncs the bucket's file; returns it as pending under its final name.
fn close_bucket(
    files: &mut Files,
    key: &BucketKey,
    mut bucket: Bucket,
) -> Result<Option<PendingFile>, SinkError> {
    flush_batch(files, key, &mut bucket)?;
    let (Some(file), Some(first_offset)) = (bucket.file, bucket.first_offset) else {
        return Ok(None);
    };
    let OpenFile {
        writer,
        handle,
        staging_key,
        path,
    } = file;
    let stats = writer
        .finish()
        .map_err(|e| write_error(key, path.clone(), e))?;
    files
        .options
        .retry
        .run("fsync in-progress file", &path, || handle.sync_all())?;
    let final_key = files.options.template.render(&FileNameParts {
        database: &key.table.database,
        table: &key.table.table,
        schema_version: key.version,
        source: &key.source,
        shard: &key.shard,
        date: key.date,
        hour: key.hour,
        first_offset,
        last_offset: bucket.last_offset,
        ext: files.options.extension,
    });
    tracing::debug!(staging = %staging_key, %final_key, rows = stats.rows, "closed in-progress file");
    Ok(Some(PendingFile {
        staging_key,
        final_key,
        size_bytes: stats.bytes_written,
        record_count: stats.rows,
        upload_id: None,
        parts: Vec::new(),
    }))
}
