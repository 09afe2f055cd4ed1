//! One shard: an append-only log of segments `{base_sequence:020}.log` in one directory.
//!
//! * Records are framed ([`crate::frame`]) and written in batches; with
//!   [`FsyncPolicy::EveryBatch`] a batch is on disk (`fdatasync`) before `append` returns, so an
//!   acknowledged record survives a crash of the process or the machine.
//! * The last segment is the active one. When it has reached `segment_bytes` the next batch
//!   goes to a new segment; the sealed one is fsynced and gets a sparse index file
//!   `{base}.idx` (sequence, time, byte offset every `index_interval_bytes`), written via a
//!   temporary file and a rename so it is either whole or absent.
//! * At open the active segment is scanned from its start; the first torn or corrupt frame
//!   and everything after it is cut off (`set_len` + fsync). Such bytes were never
//!   acknowledged under `EveryBatch`: the batch that wrote them did not return.
//! * System times never go backwards within a shard (a batch gets `max(now, last)`), so the
//!   time index can be searched like the sequence index.
//! * Retention deletes whole sealed segments whose newest record is older than the cutoff;
//!   the active segment is never deleted, so the next sequence number is never forgotten.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{io, DatalogError, Result};
use crate::frame::{self, AppendRecord, Decoded, StoredRecord};

/// When appended data is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// `fdatasync` every batch before acknowledging it (the default: nothing acknowledged is
    /// ever lost).
    #[default]
    EveryBatch,
    /// Acknowledge once written to the OS; the owner calls [`crate::Datalog::sync_all`] every
    /// interval. A process crash loses nothing; a machine crash may lose the last interval.
    Interval(Duration),
}

/// Storage settings; `Default` is what the server uses unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment that has reached this size is sealed and a new one started.
    pub segment_bytes: u64,
    /// Distance in bytes between sparse index entries.
    pub index_interval_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { segment_bytes: 64 * 1024 * 1024, index_interval_bytes: 4096, fsync: FsyncPolicy::EveryBatch }
    }
}

impl LogOptions {
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.fsync = fsync;
        self
    }
}

/// What [`ShardLog::append`] acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Sequence of the first record of the batch; the others follow without gaps.
    pub first_sequence: u64,
    pub count: usize,
    /// System time (ms) given to every record of the batch.
    pub system_time: i64,
}

/// The retained range of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// First retained sequence (== `next` when the shard is empty).
    pub oldest: u64,
    /// Sequence the next record will get.
    pub next: u64,
    /// System time of the oldest / newest retained record, if any.
    pub oldest_time: Option<i64>,
    pub latest_time: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    seq: u64,
    time: i64,
    pos: u64,
}

#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    /// One past the last record's sequence (== base when empty).
    next: u64,
    first_time: Option<i64>,
    last_time: Option<i64>,
    index: Vec<IndexEntry>,
}

impl Segment {
    fn is_empty(&self) -> bool {
        self.next == self.base
    }
    /// Byte position to start scanning for `seq` (or for the first record with time ≥ `time`).
    fn start_pos_for_seq(&self, seq: u64) -> u64 {
        let i = self.index.partition_point(|e| e.seq <= seq);
        if i == 0 { 0 } else { self.index[i - 1].pos }
    }
    fn start_pos_for_time(&self, time: i64) -> u64 {
        let i = self.index.partition_point(|e| e.time < time);
        if i == 0 { 0 } else { self.index[i - 1].pos }
    }
}

struct Inner {
    segments: Vec<Segment>,
    writer: File,
    dirty: bool,
    /// Set when a failed write could not be undone: the file may hold bytes the index does not
    /// know, so further appends could interleave with garbage. Reopening recovers.
    poisoned: bool,
    /// Split or merged away: appends are refused (see [`ShardLog::close`]).
    closed: bool,
}

/// One shard's log. All methods take `&self`; appends are serialised by an internal lock, and
/// reads copy what they need under it and do their I/O outside it.
pub struct ShardLog {
    id: u32,
    dir: PathBuf,
    options: LogOptions,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ShardLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardLog").field("id", &self.id).field("dir", &self.dir).finish()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn segment_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync directory", dir))
}

impl ShardLog {
    /// Opens (creating if needed) the shard log in `dir`, recovering the active segment.
    pub fn open(dir: impl Into<PathBuf>, id: u32, options: LogOptions) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io("list", &dir))? {
            let entry = entry.map_err(io("list", &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // A sealed index whose rename never happened; it is rebuilt from the segment.
                let _ = fs::remove_file(entry.path());
            } else if let Some(stem) = name.strip_suffix(".log") {
                match stem.parse::<u64>() {
                    Ok(base) => bases.push(base),
                    Err(_) => tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a segment"),
                }
            }
        }
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let last = bases.len().saturating_sub(1);
        for (i, base) in bases.iter().copied().enumerate() {
            let seg = if i == last { recover_tail(&dir, base, &options)? } else { open_sealed(&dir, base, &options)? };
            if let Some(prev) = segments.last() {
                let prev: &Segment = prev;
                if prev.next != seg.base {
                    return Err(DatalogError::Corrupt {
                        path: seg.path.clone(),
                        offset: 0,
                        reason: format!("segment starts at sequence {} but the previous one ends at {}", seg.base, prev.next),
                    });
                }
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(create_segment(&dir, 0)?);
        }
        let active = segments.last().map(|s| s.path.clone()).unwrap_or_default();
        let writer = OpenOptions::new().write(true).open(&active).map_err(io("open for writing", &active))?;
        Ok(ShardLog { id, dir, options, inner: Mutex::new(Inner { segments, writer, dirty: false, poisoned: false, closed: false }) })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the state as consistent as any crash would:
        // the in-memory view only advances after a write succeeded.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn bounds(&self) -> Bounds {
        let inner = self.lock();
        bounds_of(&inner.segments)
    }

    /// Appends a batch; returns once it is acknowledged under the fsync policy.
    pub fn append(&self, records: &[AppendRecord]) -> Result<Appended> {
        let mut inner = self.lock();
        if inner.poisoned {
            return Err(DatalogError::ShardPoisoned(self.id));
        }
        if inner.closed {
            return Err(DatalogError::ShardClosed(self.id));
        }
        let needs_roll = inner.segments.last().is_some_and(|s| s.len >= self.options.segment_bytes && !s.is_empty());
        if needs_roll {
            self.roll(&mut inner)?;
        }
        let inner = &mut *inner;
        let Some(seg) = inner.segments.last_mut() else {
            return Err(DatalogError::InvalidParameter("shard has no segment".into()));
        };
        let first_sequence = seg.next;
        let system_time = now_ms().max(seg.last_time.unwrap_or(i64::MIN));
        if records.is_empty() {
            return Ok(Appended { first_sequence, count: 0, system_time });
        }
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.payload.len() + 64).sum());
        let mut new_index = Vec::new();
        let mut last_indexed = seg.index.last().map(|e| e.pos);
        for (i, record) in records.iter().enumerate() {
            let pos = seg.len + buf.len() as u64;
            let seq = first_sequence + i as u64;
            if last_indexed.is_none_or(|p| pos - p >= self.options.index_interval_bytes) {
                new_index.push(IndexEntry { seq, time: system_time, pos });
                last_indexed = Some(pos);
            }
            frame::encode(&mut buf, seq, system_time, record);
        }
        let write = inner.writer.write_all_at(&buf, seg.len).and_then(|()| match self.options.fsync {
            FsyncPolicy::EveryBatch => inner.writer.sync_data(),
            FsyncPolicy::Interval(_) => Ok(()),
        });
        if let Err(source) = write {
            // Cut back to the acknowledged length so a retry does not follow torn bytes.
            if inner.writer.set_len(seg.len).and_then(|()| inner.writer.sync_data()).is_err() {
                inner.poisoned = true;
            }
            return Err(DatalogError::Io { op: "append to", path: seg.path.clone(), source });
        }
        inner.dirty = self.options.fsync != FsyncPolicy::EveryBatch;
        seg.len += buf.len() as u64;
        seg.next += records.len() as u64;
        seg.first_time.get_or_insert(system_time);
        seg.last_time = Some(system_time);
        seg.index.extend(new_index);
        Ok(Appended { first_sequence, count: records.len(), system_time })
    }

    fn roll(&self, inner: &mut Inner) -> Result<()> {
        let Some(seg) = inner.segments.last() else { return Ok(()) };
        inner.writer.sync_data().map_err(io("fsync", &seg.path))?;
        write_index(&self.dir, seg)?;
        let next = create_segment(&self.dir, seg.next)?;
        let writer = OpenOptions::new().write(true).open(&next.path).map_err(io("open for writing", &next.path))?;
        inner.writer = writer;
        inner.dirty = false;
        inner.segments.push(next);
        Ok(())
    }

    /// Refuses further appends and forces what was written to disk; returns the final bounds.
    /// Taken under the append lock, so an append either finished before (and its records are
    /// in the returned bounds) or fails with [`DatalogError::ShardClosed`].
    pub fn close(&self) -> Result<Bounds> {
        let mut inner = self.lock();
        inner.closed = true;
        if inner.dirty {
            let path = inner.segments.last().map(|s| s.path.clone()).unwrap_or_default();
            inner.writer.sync_data().map_err(io("fsync", path))?;
            inner.dirty = false;
        }
        Ok(bounds_of(&inner.segments))
    }

    /// Undoes [`ShardLog::close`] (a split whose metadata could not be written).
    pub(crate) fn reopen_for_writes(&self) {
        self.lock().closed = false;
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Forces written data to disk (the interval policy's flush).
    pub fn sync(&self) -> Result<()> {
        let mut inner = self.lock();
        if inner.dirty {
            let path = inner.segments.last().map(|s| s.path.clone()).unwrap_or_default();
            inner.writer.sync_data().map_err(io("fsync", path))?;
            inner.dirty = false;
        }
        Ok(())
    }

    /// Reads up to `limit` records starting at sequence `from`, stopping early once
    /// `max_bytes` of payload were collected (at least one record is returned when any exists).
    /// `from == next` returns nothing; outside `[oldest, next]` is `SeekOutOfRange`.
    pub fn read(&self, from: u64, limit: usize, max_bytes: usize) -> Result<Vec<StoredRecord>> {
        let plan: Vec<(Arc<File>, PathBuf, u64, u64)> = {
            let inner = self.lock();
            let b = bounds_of(&inner.segments);
            if from < b.oldest || from > b.next {
                return Err(DatalogError::SeekOutOfRange { what: "sequence", value: from as i64, oldest: b.oldest, next: b.next });
            }
            let first = inner.segments.partition_point(|s| s.base <= from).saturating_sub(1);
            inner.segments[first..]
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.is_empty())
                .map(|(i, s)| (s.file.clone(), s.path.clone(), if i == 0 { s.start_pos_for_seq(from) } else { 0 }, s.len))
                .collect()
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (file, path, start, end) in plan {
            let done = scan(&file, &path, start, end, |rec, _| {
                if rec.sequence < from {
                    return true;
                }
                bytes += rec.payload.len();
                out.push(rec);
                out.len() < limit && bytes < max_bytes
            })?;
            if !done {
                break;
            }
        }
        Ok(out)
    }

    /// The sequence and time of the first record with system time ≥ `time`, or `None` when
    /// every retained record is older.
    pub fn seek_time(&self, time: i64) -> Result<Option<(u64, i64)>> {
        let target = {
            let inner = self.lock();
            inner
                .segments
                .iter()
                .find(|s| s.last_time.is_some_and(|t| t >= time))
                .map(|s| (s.file.clone(), s.path.clone(), s.start_pos_for_time(time), s.len))
        };
        let Some((file, path, start, end)) = target else { return Ok(None) };
        let mut found = None;
        scan(&file, &path, start, end, |rec, _| {
            if rec.system_time >= time {
                found = Some((rec.sequence, rec.system_time));
                return false;
            }
            true
        })?;
        Ok(found)
    }

    /// System time of the record at `seq`, if retained.
    pub fn time_of(&self, seq: u64) -> Result<Option<i64>> {
        let b = self.bounds();
        if seq < b.oldest || seq >= b.next {
            return Ok(None);
        }
        Ok(self.read(seq, 1, 1)?.first().map(|r| r.system_time))
    }

    /// Deletes sealed segments whose newest record is older than `cutoff_ms`; returns how many.
    pub fn delete_older_than(&self, cutoff_ms: i64) -> Result<usize> {
        let removed: Vec<Segment> = {
            let mut inner = self.lock();
            let sealed = inner.segments.len().saturating_sub(1);
            let n = inner.segments[..sealed]
                .iter()
                .take_while(|s| s.last_time.is_none_or(|t| t < cutoff_ms))
                .count();
            inner.segments.drain(..n).collect()
        };
        // Oldest first: a crash part-way leaves a contiguous suffix, which open accepts.
        for seg in &removed {
            fs::remove_file(&seg.path).map_err(io("delete segment", &seg.path))?;
            let idx = segment_path(&self.dir, seg.base, "idx");
            if let Err(e) = fs::remove_file(&idx) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(io("delete index", idx)(e));
                }
            }
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
            tracing::info!(shard = self.id, segments = removed.len(), "retention deleted segments");
        }
        Ok(removed.len())
    }

    /// Number of segment files (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Bytes on disk across segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.len).sum()
    }
}

fn bounds_of(segments: &[Segment]) -> Bounds {
    let next = segments.last().map(|s| s.next).unwrap_or(0);
    let first = segments.iter().find(|s| !s.is_empty());
    Bounds {
        oldest: first.map(|s| s.base).unwrap_or(next),
        next,
        oldest_time: first.and_then(|s| s.first_time),
        latest_time: segments.iter().rev().find_map(|s| s.last_time),
    }
}

/// Calls `f` for each record in `[start, end)` of a segment until it returns false.
/// Returns whether the end was reached (true) or `f` stopped (false). The range is known to
/// hold only whole, acknowledged frames, so anything undecodable is corruption.
fn scan(file: &File, path: &Path, start: u64, end: u64, mut f: impl FnMut(StoredRecord, u64) -> bool) -> Result<bool> {
    const CHUNK: usize = 256 * 1024;
    let mut pos = start;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_at = start; // file position of buf[0]
    while pos < end {
        let off = (pos - buf_at) as usize;
        match frame::decode(&buf[off..]) {
            Decoded::Record { record, len } => {
                pos += len as u64;
                if !f(record, pos - len as u64) {
                    return Ok(false);
                }
            }
            Decoded::Incomplete { need } => {
                let want = need.max(CHUNK).min((end - pos) as usize);
                if want < need {
                    return Err(DatalogError::Corrupt { path: path.into(), offset: pos, reason: "frame runs past the written end".into() });
                }
                buf = vec![0; want];
                file.read_exact_at(&mut buf, pos).map_err(io("read", path))?;
                buf_at = pos;
            }
            Decoded::Invalid(reason) => return Err(DatalogError::Corrupt { path: path.into(), offset: pos, reason }),
        }
    }
    Ok(true)
}

fn create_segment(dir: &Path, base: u64) -> Result<Segment> {
    let path = segment_path(dir, base, "log");
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io("create segment", &path))?;
    file.sync_all().map_err(io("fsync", &path))?;
    sync_dir(dir)?;
    Ok(Segment { base, path, file: Arc::new(file), len: 0, next: base, first_time: None, last_time: None, index: Vec::new() })
}

/// Scans a whole segment, building its index. Stops at the first frame that is torn, corrupt
/// or out of sequence; returns the segment view up to there and the reason it stopped.
fn scan_full(dir: &Path, base: u64, options: &LogOptions) -> Result<(Segment, u64, Option<String>)> {
    let path = segment_path(dir, base, "log");
    let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io("open segment", &path))?;
    let mut data = Vec::new();
    {
        use std::io::Read;
        (&file).read_to_end(&mut data).map_err(io("read segment", &path))?;
    }
    let file_len = data.len() as u64;
    let mut seg = Segment { base, path, file: Arc::new(file), len: 0, next: base, first_time: None, last_time: None, index: Vec::new() };
    let mut pos = 0usize;
    let mut stop = None;
    while pos < data.len() {
        match frame::decode(&data[pos..]) {
            Decoded::Record { record, len } => {
                if record.sequence != seg.next {
                    stop = Some(format!("sequence {} where {} was expected", record.sequence, seg.next));
                    break;
                }
                if seg.last_time.is_some_and(|t| record.system_time < t) {
                    stop = Some(format!("system time {} goes backwards", record.system_time));
                    break;
                }
                if seg.index.last().is_none_or(|e| pos as u64 - e.pos >= options.index_interval_bytes) {
                    seg.index.push(IndexEntry { seq: record.sequence, time: record.system_time, pos: pos as u64 });
                }
                seg.first_time.get_or_insert(record.system_time);
                seg.last_time = Some(record.system_time);
                seg.next += 1;
                pos += len;
            }
            Decoded::Incomplete { .. } => {
                stop = Some(format!("torn frame ({} trailing bytes)", data.len() - pos));
                break;
            }
            Decoded::Invalid(reason) => {
                stop = Some(reason);
                break;
            }
        }
    }
    seg.len = pos as u64;
    Ok((seg, file_len, stop))
}

fn recover_tail(dir: &Path, base: u64, options: &LogOptions) -> Result<Segment> {
    let (seg, file_len, stop) = scan_full(dir, base, options)?;
    if let Some(reason) = stop {
        tracing::warn!(segment = %seg.path.display(), valid_bytes = seg.len, file_bytes = file_len, %reason,
            "truncating the unacknowledged tail of the active segment");
        seg.file.set_len(seg.len).map_err(io("truncate", &seg.path))?;
        seg.file.sync_all().map_err(io("fsync", &seg.path))?;
    }
    Ok(seg)
}

fn open_sealed(dir: &Path, base: u64, options: &LogOptions) -> Result<Segment> {
    let path = segment_path(dir, base, "log");
    if let Some(seg) = read_index(dir, base)? {
        return Ok(seg);
    }
    let (seg, _, stop) = scan_full(dir, base, options)?;
    if let Some(reason) = stop {
        // Sealed segments were fsynced before the next one began: damage here is not a torn
        // write, and later segments depend on its sequences, so refuse rather than guess.
        return Err(DatalogError::Corrupt { path, offset: seg.len, reason });
    }
    write_index(dir, &seg)?;
    Ok(seg)
}

const INDEX_TRAILER: usize = 8 * 4 + 8;

fn write_index(dir: &Path, seg: &Segment) -> Result<()> {
    let mut buf = Vec::with_capacity(seg.index.len() * 24 + INDEX_TRAILER);
    for e in &seg.index {
        buf.extend_from_slice(&e.seq.to_le_bytes());
        buf.extend_from_slice(&e.time.to_le_bytes());
        buf.extend_from_slice(&e.pos.to_le_bytes());
    }
    buf.extend_from_slice(&seg.len.to_le_bytes());
    buf.extend_from_slice(&seg.next.to_le_bytes());
    buf.extend_from_slice(&seg.first_time.unwrap_or(i64::MIN).to_le_bytes());
    buf.extend_from_slice(&seg.last_time.unwrap_or(i64::MIN).to_le_bytes());
    let crc = crc32fast::hash(&buf) as u64;
    buf.extend_from_slice(&crc.to_le_bytes());
    let path = segment_path(dir, seg.base, "idx");
    let tmp = segment_path(dir, seg.base, "idx.tmp");
    let file = File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all_at(&buf, 0).and_then(|()| file.sync_all()).map_err(io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    Ok(())
}

/// Loads a sealed segment's index; `None` when absent or not matching the segment (then the
/// caller rebuilds it by scanning).
fn read_index(dir: &Path, base: u64) -> Result<Option<Segment>> {
    let path = segment_path(dir, base, "idx");
    let log_path = segment_path(dir, base, "log");
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read index", path)(e)),
    };
    if data.len() < INDEX_TRAILER || !(data.len() - INDEX_TRAILER).is_multiple_of(24) {
        return Ok(None);
    }
    let word = |at: usize| -> u64 { data[at..at + 8].try_into().map(u64::from_le_bytes).unwrap_or(0) };
    let t = data.len() - INDEX_TRAILER;
    if crc32fast::hash(&data[..t + 32]) as u64 != word(t + 32) {
        return Ok(None);
    }
    let file = OpenOptions::new().read(true).open(&log_path).map_err(io("open segment", &log_path))?;
    let len = file.metadata().map_err(io("stat", &log_path))?.len();
    if len != word(t) {
        return Ok(None);
    }
    let time = |v: u64| Some(v as i64).filter(|t| *t != i64::MIN);
    let index = (0..t / 24).map(|i| IndexEntry { seq: word(i * 24), time: word(i * 24 + 8) as i64, pos: word(i * 24 + 16) }).collect();
    Ok(Some(Segment {
        base,
        path: log_path,
        file: Arc::new(file),
        len,
        next: word(t + 8),
        first_time: time(word(t + 16)),
        last_time: time(word(t + 24)),
        index,
    }))
}
