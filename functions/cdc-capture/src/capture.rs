//! The capture loop: binlog → bus, with checkpoints of the position to resume from.
//!
//! A reader task decodes the binlog and hands `(event, resume position after it)` pairs over a
//! bounded channel (its capacity bounds memory; a slow bus blocks the reader: backpressure).
//! The main loop batches events, publishes a batch, and only then treats the reader's resume
//! position as committable; checkpoints store the committable position, so a crash replays at
//! most the events after it, which carry positions at or below what was already published and
//! are dropped downstream.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use cdc_bus::{JsonLinesBus, Publisher};
use cdc_config::{Config, DatahubEndpoint};
use cdc_event::{Event, Position};
use cdc_mysql::{BinlogReader, BinlogReaderConfig, SourceOptions, TableSelector};
use cdc_runtime::{Checkpointer, Function};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The operator name of capture's state in a checkpoint.
pub const STATE_NAME: &str = "capture";

/// What capture keeps in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureState {
    /// Where to restart streaming: the end of the last transaction whose events were all
    /// published. Display form of `cdc_event::Position`, readable by people.
    pub resume: Position,
    /// The newest position handed to the bus, for downstream replay filtering and operators.
    pub last_published: Option<Position>,
}

/// Limits of a bounded run (a scheduler or function platform running capture in bursts).
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    pub max_duration: Option<Duration>,
    pub max_events: Option<u64>,
}

/// Events per published batch, and how long a partial batch may wait.
const BATCH_EVENTS: usize = 1000;
const BATCH_LINGER: Duration = Duration::from_millis(200);
/// Events decoded ahead of the bus; bounds memory whatever the transaction size.
const READ_AHEAD: usize = 4 * BATCH_EVENTS;
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The replica `server_id` capture uses when `DATABASE_SERVER_ID` is unset: stable for a host
/// (so restarts reuse it) and within Debezium's customary 5400–6399 range.
fn default_server_id() -> u32 {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let hash = host.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    5400 + hash % 1000
}

/// The logical name of the source, stamped on every event: positions are ordered per source.
pub fn source_name(config: &Config) -> String {
    format!("{}:{}", config.database.host, config.database.port)
}

enum Bus {
    File(JsonLinesBus),
}

impl Bus {
    fn open(config: &Config) -> anyhow::Result<Self> {
        match &config.datahub.endpoint {
            Some(DatahubEndpoint::File(path)) => Ok(Bus::File(
                JsonLinesBus::open(path).with_context(|| format!("DATAHUB_ENDPOINT=file://{}", path.display()))?,
            )),
            Some(DatahubEndpoint::Remote(url)) => {
                bail!("DATAHUB_ENDPOINT={url}: publishing to DataHub is not built into this version yet; use file:///path/events.jsonl")
            }
            Some(DatahubEndpoint::Embedded) | None => {
                bail!("cdc-capture needs DATAHUB_ENDPOINT (a DataHub URL or file:///path/events.jsonl)")
            }
        }
    }

    async fn publish(&mut self, events: &[Event]) -> anyhow::Result<()> {
        match self {
            Bus::File(bus) => bus.publish(events).await.context("publishing to the JSON-lines bus"),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs capture until shutdown, a limit, or an error.
pub async fn run(function: Function, start: Position, restored: Option<CaptureState>, mut checkpointer: Checkpointer, limits: RunLimits) -> anyhow::Result<()> {
    let config = function.config().clone();
    let source = SourceOptions::from_config(&config.database)?;
    let selector: TableSelector = config.database.tables.clone();
    let server_id = config.database.server_id.unwrap_or_else(default_server_id);
    let reader_config = BinlogReaderConfig::new(server_id, source_name(&config), selector, start.file.clone(), start.offset)
        .with_heartbeat(HEARTBEAT);
    let mut bus = Bus::open(&config)?;

    let (tx, mut rx) = mpsc::channel::<anyhow::Result<(Event, Position)>>(READ_AHEAD);
    let reader_task = tokio::spawn(read_binlog(source, reader_config, tx));
    function.health().set_up("binlog");
    tracing::info!(%start, server_id, "streaming the binlog");

    let metrics = function.metrics();
    let mut state = restored.unwrap_or(CaptureState { resume: start, last_published: None });
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH_EVENTS);
    let mut batch_resume: Option<Position> = None;
    let started = Instant::now();
    let deadline = limits.max_duration.map(|d| started + d);
    let mut published_changes: u64 = 0;
    let shutdown = function.shutdown().clone();
    let mut linger = tokio::time::interval(BATCH_LINGER);

    let outcome: anyhow::Result<()> = loop {
        let limit_reached = deadline.is_some_and(|d| Instant::now() >= d)
            || limits.max_events.is_some_and(|max| published_changes >= max);
        if limit_reached || shutdown.is_triggered() {
            break Ok(());
        }
        tokio::select! {
            biased;
            _ = shutdown.wait() => break Ok(()),
            received = rx.recv() => match received {
                None => break Err(anyhow::anyhow!("the binlog reader stopped")),
                Some(Err(err)) => break Err(err),
                Some(Ok((event, resume_after))) => {
                    if let Event::Change(change) = &event {
                        metrics.add_collected("capture", 1);
                        metrics.add_in(1);
                        let lag_ms = (now_ms() - change.commit_ts_ms).max(0) as u64;
                        metrics.set_source_lag(Duration::from_millis(lag_ms));
                    }
                    batch.push(event);
                    batch_resume = Some(resume_after);
                    let over_limit = limits.max_events.is_some_and(|max| published_changes + changes_in(&batch) >= max);
                    if batch.len() >= BATCH_EVENTS || over_limit {
                        if let Err(err) = flush(&mut bus, &mut batch, &mut batch_resume, &mut state, &function, &mut published_changes).await {
                            break Err(err);
                        }
                    }
                }
            },
            _ = linger.tick() => {
                if let Err(err) = flush(&mut bus, &mut batch, &mut batch_resume, &mut state, &function, &mut published_changes).await {
                    break Err(err);
                }
                if checkpointer.is_due() {
                    // A failed checkpoint is counted and logged; the previous one stays valid.
                    let _ = save(&mut checkpointer, &state).await;
                }
            }
        }
    };
    reader_task.abort();
    if outcome.is_ok() {
        flush(&mut bus, &mut batch, &mut batch_resume, &mut state, &function, &mut published_changes).await?;
        save(&mut checkpointer, &state).await.context("final checkpoint")?;
        tracing::info!(resume = %state.resume, published_changes, "capture stopped");
    }
    outcome
}

fn changes_in(batch: &[Event]) -> u64 {
    batch.iter().filter(|e| matches!(e, Event::Change(_))).count() as u64
}

async fn flush(
    bus: &mut Bus,
    batch: &mut Vec<Event>,
    batch_resume: &mut Option<Position>,
    state: &mut CaptureState,
    function: &Function,
    published_changes: &mut u64,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    bus.publish(batch).await?;
    let changes = changes_in(batch);
    *published_changes += changes;
    function.metrics().add_sent("capture", changes);
    function.metrics().add_out(changes);
    state.last_published = batch.last().map(|e| e.position().clone()).or(state.last_published.take());
    if let Some(resume) = batch_resume.take() {
        state.resume = resume;
    }
    function.health().set_detail("position", state.resume.to_string().into());
    batch.clear();
    Ok(())
}

async fn save(checkpointer: &mut Checkpointer, state: &CaptureState) -> anyhow::Result<()> {
    let mut checkpoint = checkpointer.new_checkpoint();
    checkpoint.put_state(STATE_NAME, state).context("encoding capture state")?;
    checkpointer.checkpoint(checkpoint).await.map(|_| ())
}

/// The reader task: decodes events and sends each with the resume position after it.
async fn read_binlog(
    source: SourceOptions,
    config: BinlogReaderConfig,
    tx: mpsc::Sender<anyhow::Result<(Event, Position)>>,
) {
    let mut reader = match BinlogReader::start(&source, config).await {
        Ok(reader) => reader,
        Err(err) => {
            let _ = tx.send(Err(anyhow::Error::new(err).context("starting the binlog stream"))).await;
            return;
        }
    };
    loop {
        let item = match reader.next_event().await {
            Ok(Some(event)) => Ok((event, reader.resume_position().clone())),
            Ok(None) => Err(anyhow::anyhow!("the server ended the binlog stream")),
            Err(err) => Err(anyhow::Error::new(err).context("reading the binlog")),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}
