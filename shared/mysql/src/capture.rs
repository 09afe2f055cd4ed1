//! The capture stream: the initial snapshot (when asked for) and then binlog events, in
//! publishable batches, with the state to resume from once a batch is on the bus.
//!
//! A reader task decodes the binlog and hands `(event, resume position after it)` pairs over a
//! bounded channel: its capacity bounds memory whatever the transaction size, and a slow bus
//! blocks the reader (backpressure). [`CaptureStream::next_batch`] collects a batch (full, or
//! older than the linger time); the caller publishes it and then calls
//! [`CaptureStream::published`], which advances the committable [`CaptureState`]. A caller
//! checkpoints that state; after a crash, capture restarts from `resume` and the replayed
//! events carry positions at or below the ones already published, which downstream drops.

use std::time::Duration;

use cdc_event::{Event, Position};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{BinlogError, BinlogReader, BinlogReaderConfig, Snapshot, SnapshotConfig, SnapshotError, SnapshotProgress, SourceOptions};

/// The operator name of capture's state in a checkpoint.
pub const CAPTURE_STATE: &str = "capture";

/// What capture keeps in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureState {
    /// Where to restart streaming: the end of the last transaction whose events were all
    /// published (during a snapshot: the position the snapshot is consistent with).
    pub resume: Position,
    /// The newest position handed to the bus.
    pub last_published: Option<Position>,
    /// An initial snapshot still in progress: what of it is published. `None` once streaming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProgress>,
}

impl CaptureState {
    /// A fresh start streaming from `position`.
    pub fn streaming_from(position: Position) -> Self {
        Self { resume: position, last_published: None, snapshot: None }
    }

    /// What `/health` shows of capture: the resume position, and while snapshotting, the
    /// tables finished and the table (and last key) being read.
    pub fn summary(&self) -> serde_json::Value {
        let snapshot = self.snapshot.as_ref().map(|progress| {
            serde_json::json!({
                "eventIndex": progress.position.event_index,
                "tablesDone": progress.tables_done.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "current": progress.current.as_ref().map(|c| c.table.to_string()),
            })
        });
        serde_json::json!({
            "phase": if snapshot.is_some() { "snapshot" } else { "streaming" },
            "position": self.resume.to_string(),
            "lastPublished": self.last_published.as_ref().map(ToString::to_string),
            "snapshot": snapshot,
        })
    }
}

/// How capture begins when its state holds no snapshot in progress.
#[derive(Debug, Clone)]
pub enum Start {
    /// Stream from the state's resume position.
    Stream,
    /// Take an initial snapshot first, then stream from its position; with `then_stop`, stop
    /// after the snapshot (snapshot mode `initial_only`).
    Snapshot { config: SnapshotConfig, then_stop: bool },
}

impl Start {
    /// How to start given the restored state (`None` on a first start): a first start does what
    /// `database.snapshotMode` asks; a restart resumes a snapshot in progress (with the
    /// configured chunk size) or streams.
    pub fn for_state(database: &cdc_config::DatabaseConfig, reader: &BinlogReaderConfig, restored: Option<&CaptureState>) -> Self {
        match restored {
            None => Self::for_database(database, reader),
            Some(state) if state.snapshot.is_none() => Start::Stream,
            Some(_) => match Self::for_database(database, reader) {
                Start::Stream => Start::Snapshot {
                    config: SnapshotConfig::new(reader.source_name.clone(), reader.server_id, reader.selector.clone())
                        .with_chunk_size(database.snapshot_chunk_size),
                    then_stop: false,
                },
                snapshot => snapshot,
            },
        }
    }

    /// What `database.snapshotMode` (and `snapshotChunkSize`) ask of a first start.
    pub fn for_database(database: &cdc_config::DatabaseConfig, reader: &BinlogReaderConfig) -> Self {
        use cdc_config::SnapshotMode;
        let config = || {
            SnapshotConfig::new(reader.source_name.clone(), reader.server_id, reader.selector.clone())
                .with_chunk_size(database.snapshot_chunk_size)
        };
        match database.snapshot_mode {
            SnapshotMode::Never => Start::Stream,
            SnapshotMode::Initial => Start::Snapshot { config: config(), then_stop: false },
            SnapshotMode::InitialOnly => Start::Snapshot { config: config(), then_stop: true },
        }
    }
}

/// Batching of a capture stream.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Events per batch at most.
    pub max_events: usize,
    /// How long the first event of a partial batch may wait before the batch is handed out.
    pub linger: Duration,
    /// Events decoded ahead of the bus.
    pub read_ahead: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self { max_events: 1000, linger: Duration::from_millis(200), read_ahead: 4000 }
    }
}

/// Events to publish together, and where capture resumes once they are published.
#[derive(Debug, Clone)]
pub struct Batch {
    pub events: Vec<Event>,
    resume_after: Committable,
}

impl Batch {
    /// Whether the batch holds snapshot reads: the caller must checkpoint right after
    /// publishing it (before publishing the next), which bounds what a resumed snapshot must
    /// skip.
    pub fn is_snapshot(&self) -> bool {
        self.resume_after.snapshot.is_some()
            || self.events.iter().any(|e| e.position().phase == cdc_event::Phase::Snapshot)
    }

    /// Row changes in the batch (heartbeats and schema changes excluded).
    pub fn changes(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, Event::Change(_))).count()
    }
}

/// Why a capture stream stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error(transparent)]
    Binlog(#[from] BinlogError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("the binlog reader task stopped unexpectedly")]
    ReaderGone,
}

/// An event and the state that is committable once it (and everything before it) is published.
type Item = Result<(Event, Committable), CaptureError>;

#[derive(Debug, Clone)]
struct Committable {
    resume: Position,
    snapshot: Option<SnapshotProgress>,
}

/// Binlog events in batches; see the module documentation.
#[derive(Debug)]
pub struct CaptureStream {
    rx: mpsc::Receiver<Item>,
    reader: JoinHandle<()>,
    options: BatchOptions,
    state: CaptureState,
    pending: Vec<Event>,
    pending_state: Option<Committable>,
}

impl CaptureStream {
    /// Starts from `state` (the checkpointed state, or a fresh one at the position to start
    /// from): a snapshot in progress is resumed and then streaming follows; otherwise `start`
    /// says whether to snapshot first. `reader` is the binlog reader's configuration; its file
    /// and offset are set from the state or the snapshot.
    pub fn start(source: SourceOptions, reader: BinlogReaderConfig, state: CaptureState, start: Start, options: BatchOptions) -> Self {
        let (tx, rx) = mpsc::channel(options.read_ahead.max(1));
        // A resumed snapshot re-reads the chunk after the checkpoint in a new transaction, where
        // rows may have come and gone: the same event index can now belong to another row.
        // Replays are dropped by position downstream, so the resumed snapshot must not reuse
        // an index that may already be published. The caller checkpoints after every snapshot
        // batch (see `Batch::is_snapshot`), recording the last published position; beyond it at
        // most one more batch (`max_events`) can be on the bus. Starting after both makes every
        // re-read row new. (The committed progress alone is not enough: a batch may end inside a
        // chunk, whose events are published but not yet committable.)
        let mut state = state;
        let published = state.last_published.clone();
        if let Some(progress) = state.snapshot.as_mut() {
            let gap = u32::try_from(options.max_events).unwrap_or(u32::MAX);
            let published_index = published
                .filter(|p| {
                    p.phase == cdc_event::Phase::Snapshot && p.file == progress.position.file && p.offset == progress.position.offset
                })
                .map_or(0, |p| p.event_index);
            progress.position.event_index = progress.position.event_index.max(published_index).saturating_add(gap);
        }
        let plan = match (&state.snapshot, start) {
            (Some(progress), Start::Snapshot { config, then_stop }) => Plan::Snapshot { config, resume: Some(progress.clone()), then_stop },
            (Some(progress), Start::Stream) => Plan::Snapshot {
                config: SnapshotConfig::new(reader.source_name.clone(), reader.server_id, reader.selector.clone()),
                resume: Some(progress.clone()),
                then_stop: false,
            },
            (None, Start::Snapshot { config, then_stop }) => Plan::Snapshot { config, resume: None, then_stop },
            (None, Start::Stream) => Plan::Stream,
        };
        let reader = tokio::spawn(capture(source, reader, state.resume.clone(), plan, tx));
        Self { rx, reader, options, state, pending: Vec::new(), pending_state: None }
    }

    /// The committable state: everything before `resume` is on the bus.
    pub fn state(&self) -> &CaptureState {
        &self.state
    }

    /// The next batch: waits for a first event, then collects until the batch is full, the
    /// linger time passed or no more events are ready. `None` once an `initial_only` snapshot
    /// is complete. Cancel-safe: events received before a cancellation stay in the next batch.
    pub async fn next_batch(&mut self) -> Result<Option<Batch>, CaptureError> {
        if self.pending.is_empty() {
            match self.rx.recv().await {
                Some(item) => self.push(item)?,
                None => return self.ended(),
            }
        }
        let linger = tokio::time::sleep(self.options.linger);
        tokio::pin!(linger);
        while self.pending.len() < self.options.max_events {
            tokio::select! {
                biased;
                item = self.rx.recv() => match item {
                    Some(item) => self.push(item)?,
                    None => break,
                },
                _ = &mut linger => break,
            }
        }
        let resume_after = self
            .pending_state
            .take()
            .unwrap_or_else(|| Committable { resume: self.state.resume.clone(), snapshot: self.state.snapshot.clone() });
        Ok(Some(Batch { events: std::mem::take(&mut self.pending), resume_after }))
    }

    /// The reader task ended without an error: normal only after an `initial_only` snapshot.
    fn ended(&self) -> Result<Option<Batch>, CaptureError> {
        if self.reader.is_finished() {
            Ok(None)
        } else {
            Err(CaptureError::ReaderGone)
        }
    }

    fn push(&mut self, item: Item) -> Result<(), CaptureError> {
        let (event, committable) = item?;
        self.pending.push(event);
        self.pending_state = Some(committable);
        Ok(())
    }

    /// Records that `batch` is durable on the bus.
    pub fn published(&mut self, batch: &Batch) {
        if let Some(last) = batch.events.last() {
            self.state.last_published = Some(last.position().clone());
        }
        self.state.resume = batch.resume_after.resume.clone();
        self.state.snapshot = batch.resume_after.snapshot.clone();
    }
}

impl Drop for CaptureStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

// Built once per stream start; boxing the snapshot variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Plan {
    Stream,
    Snapshot { config: SnapshotConfig, resume: Option<SnapshotProgress>, then_stop: bool },
}

/// The reader task: the snapshot (if planned), then the binlog from where it is consistent.
async fn capture(source: SourceOptions, mut reader: BinlogReaderConfig, resume: Position, plan: Plan, tx: mpsc::Sender<Item>) {
    let mut start = resume;
    if let Plan::Snapshot { config, resume, then_stop } = plan {
        match snapshot(&source, config, resume, &tx).await {
            Ok(Some(stream_from)) if !then_stop => start = stream_from,
            Ok(_) => return,
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
    }
    reader.file = start.file.clone();
    reader.offset = start.offset;
    read_binlog(source, reader, tx).await;
}

/// Sends every snapshot event with the state committable after it: within a chunk, the
/// progress before the chunk; for a chunk's last event, the progress after it (and once the
/// snapshot is finished, no snapshot at all: streaming takes over). Returns where streaming
/// starts, or `None` if the receiver is gone.
async fn snapshot(
    source: &SourceOptions,
    config: SnapshotConfig,
    resume: Option<SnapshotProgress>,
    tx: &mpsc::Sender<Item>,
) -> Result<Option<Position>, CaptureError> {
    let mut snapshot = Snapshot::start(source, config, resume).await?;
    let stream_from = snapshot.stream_from().clone();
    tracing::info!(consistent_at = %stream_from, "initial snapshot started");
    let mut before = snapshot.progress();
    while let Some(chunk) = snapshot.next_chunk().await? {
        let after = if snapshot.is_finished() { None } else { Some(snapshot.progress()) };
        let last = chunk.len().saturating_sub(1);
        for (i, event) in chunk.into_iter().enumerate() {
            let progress = if i == last { after.clone() } else { Some(before.clone()) };
            let committable = Committable { resume: stream_from.clone(), snapshot: progress };
            if tx.send(Ok((event, committable))).await.is_err() {
                return Ok(None);
            }
        }
        before = snapshot.progress();
    }
    snapshot.close().await?;
    tracing::info!(stream_from = %stream_from, "initial snapshot complete");
    Ok(Some(stream_from))
}

/// Reads the binlog, reconnecting with backoff after a lost connection: the new stream starts
/// at the resume position of the last complete transaction, so the events of a transaction cut
/// by the disconnect are read again with the same positions (downstream drops them).
async fn read_binlog(source: SourceOptions, mut config: BinlogReaderConfig, tx: mpsc::Sender<Item>) {
    let mut failures: u32 = 0;
    loop {
        let mut reader = match BinlogReader::start(&source, config.clone()).await {
            Ok(reader) => reader,
            Err(err) if is_transient(&err) => {
                failures += 1;
                let delay = backoff(failures);
                tracing::warn!(error = %err, attempt = failures, retry_in_ms = delay.as_millis() as u64, "cannot start the binlog stream; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(err) => {
                let _ = tx.send(Err(err.into())).await;
                return;
            }
        };
        loop {
            let next = reader.next_event().await;
            let resume = reader.resume_position().clone();
            match next {
                Ok(Some(event)) => {
                    failures = 0;
                    if tx.send(Ok((event, Committable { resume, snapshot: None }))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::warn!(at = %resume, "the server ended the binlog stream; reconnecting");
                    break;
                }
                Err(err) if is_transient(&err) => {
                    tracing::warn!(error = %err, at = %resume, "lost the binlog connection; reconnecting");
                    break;
                }
                Err(err) => {
                    let _ = tx.send(Err(err.into())).await;
                    return;
                }
            }
        }
        config.file = reader.resume_position().file.clone();
        config.offset = reader.resume_position().offset;
        failures += 1;
        tokio::time::sleep(backoff(failures)).await;
    }
}

/// Connection-level failures (network, server restart) that a reconnect can cure; server
/// errors such as a purged binlog or missing privileges are not.
fn is_transient(err: &BinlogError) -> bool {
    let transient = |e: &mysql_async::Error| matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_));
    match err {
        BinlogError::Source(crate::SourceError::Connect { source, .. } | crate::SourceError::Query { source, .. }) => {
            transient(source)
        }
        BinlogError::Setup { source, .. } | BinlogError::Stream { source, .. } => transient(source),
        _ => false,
    }
}

/// Exponential backoff from 100 ms to 30 s, with up to 25% jitter so replicas that lost the
/// same server do not reconnect in lockstep.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1u32 << failures.min(9)).min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 250) / 1000.0)
}
