//! The capture stream: binlog events in publishable batches, with the position to resume
//! from once a batch is on the bus.
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

use crate::{BinlogError, BinlogReader, BinlogReaderConfig, SourceOptions};

/// The operator name of capture's state in a checkpoint.
pub const CAPTURE_STATE: &str = "capture";

/// What capture keeps in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureState {
    /// Where to restart streaming: the end of the last transaction whose events were all
    /// published.
    pub resume: Position,
    /// The newest position handed to the bus.
    pub last_published: Option<Position>,
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
    pub resume_after: Position,
}

impl Batch {
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
    #[error("the binlog reader task stopped unexpectedly")]
    ReaderGone,
}

type Item = Result<(Event, Position), CaptureError>;

/// Binlog events in batches; see the module documentation.
#[derive(Debug)]
pub struct CaptureStream {
    rx: mpsc::Receiver<Item>,
    reader: JoinHandle<()>,
    options: BatchOptions,
    state: CaptureState,
    pending: Vec<Event>,
    pending_resume: Option<Position>,
}

impl CaptureStream {
    /// Starts reading at `state.resume` (the checkpointed state, or a fresh one at the
    /// position to start from). `reader`'s file and offset are set from it.
    pub fn start(source: SourceOptions, mut reader: BinlogReaderConfig, state: CaptureState, options: BatchOptions) -> Self {
        reader.file = state.resume.file.clone();
        reader.offset = state.resume.offset;
        let (tx, rx) = mpsc::channel(options.read_ahead.max(1));
        let reader = tokio::spawn(read_binlog(source, reader, tx));
        Self { rx, reader, options, state, pending: Vec::new(), pending_resume: None }
    }

    /// The committable state: everything before `resume` is on the bus.
    pub fn state(&self) -> &CaptureState {
        &self.state
    }

    /// The next batch: waits for a first event, then collects until the batch is full, the
    /// linger time passed or no more events are ready. Cancel-safe: events received before a
    /// cancellation stay in the next batch.
    pub async fn next_batch(&mut self) -> Result<Batch, CaptureError> {
        if self.pending.is_empty() {
            let item = self.rx.recv().await.ok_or(CaptureError::ReaderGone)?;
            self.push(item)?;
        }
        let linger = tokio::time::sleep(self.options.linger);
        tokio::pin!(linger);
        while self.pending.len() < self.options.max_events {
            tokio::select! {
                biased;
                item = self.rx.recv() => self.push(item.ok_or(CaptureError::ReaderGone)?)?,
                _ = &mut linger => break,
            }
        }
        let resume_after = self.pending_resume.take().unwrap_or_else(|| self.state.resume.clone());
        Ok(Batch { events: std::mem::take(&mut self.pending), resume_after })
    }

    fn push(&mut self, item: Item) -> Result<(), CaptureError> {
        let (event, resume) = item?;
        self.pending.push(event);
        self.pending_resume = Some(resume);
        Ok(())
    }

    /// Records that `batch` is durable on the bus.
    pub fn published(&mut self, batch: &Batch) {
        if let Some(last) = batch.events.last() {
            self.state.last_published = Some(last.position().clone());
        }
        self.state.resume = batch.resume_after.clone();
    }
}

impl Drop for CaptureStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
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
                    if tx.send(Ok((event, resume))).await.is_err() {
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
