//! Every stage in one process: capture → the embedded DataHub-compatible log → transform
//! (`TRANSFORM_CONFIG`, optional: file-sink's transform stage) → file sink, with one checkpoint
//! cycle.
//!
//! The cycle is Flink's two-phase commit. Capture's batches are appended to the log (durable
//! before capture's resume position advances); the sink reads the log and writes in-progress
//! files; at a checkpoint the sink closes its files as pending, one checkpoint records capture's
//! resume position, the sink's pending files and its log offsets, and only once that checkpoint
//! is durable are the pending files renamed into place. After a crash the pending files of the
//! last checkpoint are committed, other in-progress files discarded, capture replays from its
//! resume position and the sink from its offsets; replayed events are dropped by position.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cdc_config::Config;
use cdc_datalog::{AppendRecord, Datalog, LogOptions, RecordType, ShardLog, TopicSpec};
use cdc_event::{Event, Position};
use cdc_mysql::{BatchOptions, BinlogReaderConfig, CapturePlan, CaptureState, CaptureStream, SourceOptions, Start, CAPTURE_STATE};
use cdc_runtime::{Checkpointer, Function};
use cdc_sink::{FileSink, Record, SinkOptions, WriteOutcome};
use cdc_telemetry::{CommitLatency, PipelineMetrics};
use cdc_state::SinkState;
use file_sink::transform::{Staged, TransformStage};

/// The checkpoint job name of the all-in-one pipeline.
pub const JOB: &str = "cdc-pipeline";
/// The operator name of the sink's state in a checkpoint (shared with `file-sink`).
pub const SINK_STATE: &str = "sink";
/// The embedded log has one shard: one process reads it, and one shard keeps the single
/// source's events in position order for the sink's replay filter.
const SHARD: &str = "0";
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How a run starts and when it stops.
#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    pub run: cdc_runtime::RunArgs,
    /// Where a first start (no checkpoint) begins streaming; default: per
    /// `database.snapshotMode` (`never`: the current binlog head).
    pub start: Option<Position>,
    /// Stop once everything before this binlog position is captured and committed.
    pub until: Option<Position>,
    /// The embedded log's directory (default `DATAHUB_LOCAL_DATA_DIR`, else `./datahub-data`).
    pub log_dir: Option<PathBuf>,
}

/// What a run did, for the demo's summary.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub rows_captured: u64,
    pub files_committed: u64,
    pub checkpoints: u64,
    pub last_position: Option<Position>,
    pub max_lag_ms: i64,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Where the embedded log keeps its data: `DATAHUB_LOCAL_DATA_DIR`, as for `datahub-local`.
pub fn log_dir() -> PathBuf {
    std::env::var_os("DATAHUB_LOCAL_DATA_DIR").map_or_else(|| PathBuf::from("./datahub-data"), PathBuf::from)
}

fn open_shard(config: &Config, dir: PathBuf) -> anyhow::Result<Arc<ShardLog>> {
    let log = Datalog::open(&dir, LogOptions::default())
        .with_context(|| format!("opening the embedded log in {} (DATAHUB_LOCAL_DATA_DIR)", dir.display()))?;
    let (project, topic) = (&config.datahub.project, &config.datahub.topic);
    if !log.list_projects().iter().any(|p| p == project) {
        log.create_project(project, "cdc-pipeline embedded log")?;
    }
    let topic = match log.topic(project, topic) {
        Ok(topic) => topic,
        Err(_) => log.create_topic(
            project,
            topic,
            TopicSpec {
                shard_count: 1,
                lifecycle: 7,
                record_type: RecordType::Blob,
                record_schema: None,
                comment: "change events, Debezium JSON".into(),
                expand_mode: None,
            },
        )?,
    };
    Ok(topic.shard(SHARD)?.clone())
}

/// Runs the pipeline until shutdown, a limit, or an error.
pub async fn run(function: Function, options: PipelineOptions) -> anyhow::Result<RunSummary> {
    let limits = &options.run;
    let config = function.config().clone();
    let metrics = function.context().metrics().clone();
    let mut checkpointer = Checkpointer::open(&config, JOB, metrics.clone())?;
    let restored = checkpointer.restore(limits.from_savepoint.as_deref()).await?;
    let (capture_state, sink_state): (Option<CaptureState>, Option<SinkState>) = match &restored {
        Some(checkpoint) => (
            checkpoint.state(CAPTURE_STATE).context("capture state in the checkpoint")?,
            checkpoint.state(SINK_STATE).context("sink state in the checkpoint")?,
        ),
        None => (None, None),
    };

    let shard = open_shard(&config, options.log_dir.clone().unwrap_or_else(log_dir))?;
    function.health().set_up("datahub");
    let mut sink = FileSink::new(SinkOptions::from_output(&config.output)?);
    let offsets = tokio::task::block_in_place(|| sink.recover(sink_state.as_ref()))?;
    let mut next_offset = offsets.get(SHARD).unwrap_or_else(|| shard.bounds().oldest);
    let mut transform = file_sink::transform::load(&config)?.map(|rules| TransformStage::new(rules, sink.options(), &offsets));
    let mut latency = CommitLatency::default();
    function.health().set_up("storage");

    let source = SourceOptions::from_config(&config.database)?;
    function.health().add_tcp_probe("database", source.address());
    let resume_file = capture_state.as_ref().map(|s| s.resume.file.clone());
    let plan = CapturePlan::gather(&source, &config.database.tables, resume_file.as_deref()).await?;
    tracing::info!("capture plan:\n{plan}");
    plan.preflight.clone().context("the source is not ready for capture")?;
    let head = plan.head.as_ref().context("the server reports no binlog position")?;
    let head = Position::stream(plan.server.flavor, head.file.clone(), head.position);
    let reader = BinlogReaderConfig::for_source(&source, &config.database, config.database.tables.clone(), &head)
        .with_heartbeat(HEARTBEAT);
    let server_id = reader.server_id;
    // Restored state wins; a first start begins where the caller says (the demo), or as
    // `database.snapshotMode` says.
    let (state, start) = match (capture_state, &options.start) {
        (None, Some(position)) => (CaptureState::streaming_from(position.clone()), Start::Stream),
        (restored, _) => {
            let start = Start::for_state(&config.database, &reader, restored.as_ref());
            (restored.unwrap_or_else(|| CaptureState::streaming_from(head)), start)
        }
    };
    tracing::info!(start = %state.resume, snapshot_in_progress = state.snapshot.is_some(), server_id, "streaming the binlog");
    let mut stream = CaptureStream::start(source, reader, state, start, BatchOptions::default());
    function.health().set_detail("capture", stream.state().summary());

    let mut summary = RunSummary::default();
    let started = Instant::now();
    let shutdown = function.shutdown().clone();
    let mut rolling = tokio::time::interval(Duration::from_millis(500));

    loop {
        let limit = limits.max_duration.is_some_and(|d| started.elapsed() >= d)
            || limits.max_events.is_some_and(|n| summary.rows_captured >= n)
            || options.until.as_ref().is_some_and(|until| &stream.state().resume >= until);
        if limit || shutdown.is_triggered() {
            break;
        }
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            batch = stream.next_batch() => {
                let Some(batch) = batch.context("capture")? else {
                    tracing::info!("initial snapshot complete (snapshot mode initial_only); stopping");
                    break;
                };
                let mut records = Vec::with_capacity(batch.events.len());
                for event in &batch.events {
                    if let Event::Change(change) = event {
                        let payload = cdc_event::debezium::to_vec(change)
                            .with_context(|| format!("encoding the event at {}", change.position))?;
                        records.push(AppendRecord::new(payload));
                        summary.max_lag_ms = summary.max_lag_ms.max(now_ms() - change.commit_ts_ms);
                    }
                }
                if !records.is_empty() {
                    let shard = shard.clone();
                    tokio::task::spawn_blocking(move || shard.append(&records)).await.context("log append task")??;
                }
                stream.published(&batch);
                if batch.is_snapshot() {
                    // The snapshot's resume rule: checkpoint capture right after each snapshot
                    // batch. The sink part stays what was last committed; its files follow at
                    // the next full checkpoint.
                    checkpoint_capture(&mut checkpointer, &sink, stream.state()).await?;
                }
                let changes = batch.changes() as u64;
                summary.rows_captured += changes;
                metrics.add_collected("capture", changes);
                metrics.add_sent("capture", changes);
                metrics.add_in(changes);
                function.health().set_detail("capture", stream.state().summary());
                drain(&shard, &mut next_offset, &mut sink, transform.as_mut(), &mut latency, &function)?;
            }
            _ = rolling.tick() => {
                tokio::task::block_in_place(|| sink.poll_rolling())?;
            }
        }
        if checkpointer.is_due() {
            checkpoint(&mut checkpointer, &mut sink, transform.as_mut(), &mut latency, &metrics, stream.state(), &mut summary).await?;
        }
    }
    drain(&shard, &mut next_offset, &mut sink, transform.as_mut(), &mut latency, &function)?;
    checkpoint(&mut checkpointer, &mut sink, transform.as_mut(), &mut latency, &metrics, stream.state(), &mut summary).await.context("final checkpoint")?;
    summary.last_position = stream.state().last_published.clone();
    tracing::info!(resume = %stream.state().resume, rows = summary.rows_captured, files = summary.files_committed, "pipeline stopped");
    Ok(summary)
}

/// Feeds every record appended since `next_offset` through the transform (if any) to the sink.
fn drain(shard: &ShardLog, next_offset: &mut u64, sink: &mut FileSink, mut transform: Option<&mut TransformStage>, latency: &mut CommitLatency, function: &Function) -> anyhow::Result<()> {
    loop {
        let records = shard.read(*next_offset, 1000, 8 << 20)?;
        if records.is_empty() {
            return Ok(());
        }
        let shard_id: Arc<str> = Arc::from(SHARD);
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            for stored in records {
                let event = cdc_event::debezium::from_slice(&stored.payload)
                    .with_context(|| format!("decoding log record {} of shard {SHARD}", stored.sequence))?;
                *next_offset = stored.sequence + 1;
                let event = match transform.as_deref_mut() {
                    None => event,
                    Some(stage) => match stage.apply(sink.committed(), &shard_id, stored.sequence, event)? {
                        Staged::Write(event) => event,
                        Staged::Filtered | Staged::Duplicate => continue,
                        Staged::DeadLettered => {
                            function.metrics().add_dead_lettered(1);
                            continue;
                        }
                    },
                };
                let commit_ts_ms = event.commit_ts_ms;
                if sink.write(Record::new(SHARD, stored.sequence, event))? == WriteOutcome::Appended {
                    latency.written(commit_ts_ms);
                }
                function.metrics().add_out(1);
            }
            Ok(())
        })?;
    }
}

/// A checkpoint that moves capture's state forward and keeps the sink's last committed state.
async fn checkpoint_capture(checkpointer: &mut Checkpointer, sink: &FileSink, capture: &CaptureState) -> anyhow::Result<()> {
    let mut committed = sink.committed().clone();
    // Its pending files were committed already (recovery would commit them again, harmlessly).
    committed.pending.clear();
    let mut checkpoint = checkpointer.new_checkpoint();
    checkpoint.put_state(CAPTURE_STATE, capture)?;
    checkpoint.put_state(SINK_STATE, &committed)?;
    checkpointer.checkpoint(checkpoint).await.map(|_| ()).context("checkpoint after a snapshot batch")
}

async fn checkpoint(
    checkpointer: &mut Checkpointer,
    sink: &mut FileSink,
    mut transform: Option<&mut TransformStage>,
    latency: &mut CommitLatency,
    metrics: &PipelineMetrics,
    capture: &CaptureState,
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    let mut sink_state = tokio::task::block_in_place(|| sink.prepare_checkpoint())?;
    if let Some(stage) = transform.as_deref_mut() {
        // Its dead-letter files, consumed offsets and marks ride on the sink's state.
        tokio::task::block_in_place(|| stage.prepare(&mut sink_state)).context("closing transform dead-letter files for a checkpoint")?;
    }
    let mut checkpoint = checkpointer.new_checkpoint();
    checkpoint.put_state(CAPTURE_STATE, capture)?;
    checkpoint.put_state(SINK_STATE, &sink_state)?;
    checkpointer.checkpoint(checkpoint).await?;
    let report = tokio::task::block_in_place(|| sink.commit(&sink_state))?;
    latency.committed(metrics);
    if let Some(stage) = transform {
        stage.committed(&sink_state);
    }
    summary.files_committed += report.renamed as u64;
    summary.checkpoints += 1;
    tracing::info!(
        checkpoint = summary.checkpoints,
        rows_captured = summary.rows_captured,
        files_committed = summary.files_committed,
        position = %capture.resume,
        "checkpoint complete"
    );
    Ok(())
}
