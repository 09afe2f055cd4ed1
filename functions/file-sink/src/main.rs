//! `file-sink`: change events from a DataHub topic into exactly-once files.
//!
//! The loop, and why in this order (the FileSink protocol, `cdc_sink`):
//! 1. recover the sink from the newest checkpoint (job `file-sink`, operator state `sink`):
//!    its pending files are committed, everything else in `.inprogress/` is deleted;
//! 2. read every shard from the checkpointed offsets (else the subscription's committed
//!    offsets, else the oldest record), decode each record's Debezium JSON, write it;
//! 3. when a checkpoint is due, and at a graceful stop: `prepare_checkpoint` (files closed and
//!    fsynced) → save the checkpoint → `commit` (files renamed to their final names) → commit
//!    the offsets to the DataHub subscription. The subscription's offsets therefore never run
//!    ahead of committed files; a crash anywhere re-reads from the checkpoint, and the sink
//!    drops what it already wrote by shard offset and by (source, shard) position.
//!
//! `file-sink replay` (with the sink stopped: it recovers the same output directory and
//! writes the same checkpoints) re-injects the committed dead letters under
//! `{OUTPUT_PATH}/dlq/` as rows, exactly once, and prints how many were replayed (see
//! `cdc_sink::replay`): recover → replay → checkpoint → commit → move the replayed files to
//! `dlq/replayed/`. Fix the cause (configuration, schema, code) first; a record that fails
//! again goes back to the DLQ.
//!
//! With `TRANSFORM_CONFIG` set, every event goes through the transform rules first (see
//! `transform.rs`): filtered-out events are consumed, events that cannot be transformed go to
//! the dead-letter queue with stage `transform` and the reason, and `replay` transforms those
//! again with the (fixed) rules. `replay` refuses to start while one of them still fails, so a
//! dead letter is never moved to `dlq/replayed/` unreplayed because the rules are still wrong.
//!
//! Records that are not row changes (`cdc.event=schema_change`) are skipped. A payload that is
//! not a Debezium envelope cannot be given to the sink (whose dead-letter queue takes change
//! events); it is counted as failed and logged with its shard and sequence.


use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cdc_config::DatahubEndpoint;
use cdc_datahub::{ConsumedRecord, ConsumerOptions, ShardConsumer, EVENT_KIND_ATTRIBUTE};
use cdc_runtime::{Checkpointer, Function, FunctionArgs};
use cdc_sink::{read_dead_letters, FileSink, Record, SinkOptions, WriteOutcome};
use cdc_state::SinkState;
use clap::{Parser, Subcommand};
use file_sink::transform::{self, Staged, TransformStage};

/// Writes the change events of a DataHub topic as files, exactly once.
#[derive(Debug, Parser)]
#[command(name = "file-sink", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sink (the default).
    Run,
    /// Write the committed dead letters under OUTPUT_PATH/dlq back as rows, exactly once, and
    /// print how many were replayed. Stop the running sink first.
    Replay,
}

/// Checkpoint job name and the operator name of the sink's state in it.
const JOB: &str = "file-sink";
const STATE_NAME: &str = "sink";
/// The stage label of this function's metrics.
const STAGE: &str = "file-sink";
/// Wait after a poll that found every shard caught up.
const IDLE_WAIT: Duration = Duration::from_millis(200);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let role = cdc_config::Role::FileSink;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => cdc_runtime::run(role, &cli.common, run).await,
        Command::Replay => cdc_runtime::run_command(role, &cli.common, replay).await,
    }
}

/// `replay`: the dead letters back through the sink, with its checkpoint protocol.
async fn replay(config: cdc_config::Config) -> anyhow::Result<()> {
    let registry = cdc_telemetry::prometheus::Registry::new();
    let metrics = Arc::new(cdc_telemetry::PipelineMetrics::new(&registry)?);
    let mut checkpointer = Checkpointer::open(&config, JOB, metrics)?;
    let restored = checkpointer.restore(None).await?;
    let last: Option<SinkState> = match &restored {
        Some(checkpoint) => checkpoint.state(STATE_NAME).context("reading the sink state from the checkpoint")?,
        None => None,
    };
    let options = sink_options(&config)?;
    let mut transformer = transform::load(&config)?;
    let mut sink = FileSink::new(options);
    tokio::task::block_in_place(|| sink.recover(last.as_ref())).context("recovering the file sink")?;
    // After recovery, which may have committed dead-letter files of the last checkpoint.
    check_transform_letters(sink.options(), transformer.as_mut())?;
    let report = tokio::task::block_in_place(|| {
        sink.replay_dead_letters(|letter| {
            // Transform dead letters hold the event before the rules; the others hold what
            // the sink was given (already transformed), replayed as recorded.
            if letter.stage != cdc_transform::DLQ_STAGE {
                return letter.as_recorded();
            }
            let event = letter.as_recorded()?;
            match transformer.as_mut()?.apply(&event) {
                Ok(out) => {
                    if out.is_none() {
                        tracing::info!(file = %letter.file, line = letter.line, "dead letter filtered out by the transform rules");
                    }
                    out
                }
                Err(error) => {
                    tracing::warn!(file = %letter.file, line = letter.line, %error, "dead letter still fails the transform");
                    None
                }
            }
        })
    })
    .context("replaying the dead-letter queue")?;
    let state = tokio::task::block_in_place(|| sink.prepare_checkpoint()).context("closing files for a checkpoint")?;
    let mut checkpoint = checkpointer.new_checkpoint();
    checkpoint.put_state(STATE_NAME, &state).context("encoding the sink state")?;
    checkpointer.checkpoint(checkpoint).await.context("saving the replay checkpoint (nothing committed; run replay again)")?;
    tokio::task::block_in_place(|| sink.commit(&state)).context("committing the replayed files")?;
    let moved = tokio::task::block_in_place(|| sink.finish_replay()).context("moving the replayed dead-letter files")?;
    for (line, reason) in &report.skipped {
        eprintln!("not replayed: {line}: {reason}");
    }
    println!(
        "replayed {} of {} dead-letter record(s) from {} file(s); {} failed again (back in the DLQ), {} already replayed, {} not replayable; {} file(s) moved to {}/{}",
        report.replayed,
        report.lines,
        report.files.len(),
        report.dead_lettered_again,
        report.already_replayed,
        report.skipped.len(),
        moved.len(),
        sink.options().dlq_dir(),
        cdc_sink::REPLAYED_DIR,
    );
    Ok(())
}

/// Refuses a replay while a transform dead letter would fail again (or has no rules to be
/// transformed with): replaying it now would move it to `dlq/replayed/` without writing it.
fn check_transform_letters(options: &SinkOptions, mut transformer: Option<&mut cdc_transform::Transformer>) -> anyhow::Result<()> {
    let letters = read_dead_letters(options).context("reading the dead-letter queue")?;
    let mut failing = Vec::new();
    for letter in letters.iter().filter(|l| l.stage == cdc_transform::DLQ_STAGE) {
        let Ok(event) = &letter.event else { continue };
        match transformer.as_deref_mut() {
            None => failing.push(format!("{}:{}: no TRANSFORM_CONFIG to transform it with", letter.file, letter.line)),
            Some(t) => {
                if let Err(error) = t.apply(event) {
                    failing.push(format!("{}:{}: {error}", letter.file, letter.line));
                }
            }
        }
    }
    if !failing.is_empty() {
        bail!(
            "{} dead letter(s) of stage transform would fail again; fix TRANSFORM_CONFIG and run replay again (nothing was replayed):\n  {}",
            failing.len(),
            failing.join("\n  ")
        );
    }
    Ok(())
}

/// The sink's options from `output.*`.
fn sink_options(config: &cdc_config::Config) -> anyhow::Result<SinkOptions> {
    SinkOptions::from_output(&config.output).context("output settings")
}

async fn run(function: Function) -> anyhow::Result<()> {
    let config = function.config().clone();
    let datahub = &config.datahub;
    let url = match &datahub.endpoint {
        Some(DatahubEndpoint::Remote(url)) => url.clone(),
        other => bail!("file-sink reads a DataHub topic: DATAHUB_ENDPOINT must be a DataHub or datahub-local URL, got {other:?}"),
    };
    let client = Arc::new(cdc_runtime::datahub_client(&url, datahub, datahub.max_retries, Duration::from_secs(120))?);

    // `datahub`: the topic answers.
    function.add_datahub_probe(&url, &datahub.project, &datahub.topic)?;
    // `storage`: the output directory and the sink; down until recovered, and after a failure.
    function.health().declare("storage");

    let metrics = function.context().metrics().clone();
    let mut checkpointer = Checkpointer::open(&config, JOB, metrics.clone())?;
    let restored = checkpointer.restore(None).await?;
    let last: Option<SinkState> = match &restored {
        Some(checkpoint) => checkpoint.state(STATE_NAME).context("reading the sink state from the checkpoint")?,
        None => None,
    };
    let options = sink_options(&config)?;
    let transformer = transform::load(&config)?;
    let mut sink = FileSink::new(options);
    let resume = tokio::task::block_in_place(|| sink.recover(last.as_ref())).context("recovering the file sink")?;
    let transform = transformer.map(|t| TransformStage::new(t, sink.options(), &resume));
    function.health().set_up("storage");
    function.health().set_detail("output", config.output.path.clone().into());

    let consumer_options = ConsumerOptions::new(&datahub.project, &datahub.topic, &datahub.consumer_group);
    // DataHub may come up after the sink (compose, Kubernetes), so opening is retried rather
    // than crash-looping: the process stays live, `/health/ready` reports the `datahub` probe
    // down, and the reason is logged and shown under `datahubError`.
    let opened = function
        .open_retrying(
            "the DataHub topic",
            |error| function.health().set_detail("datahubError", error.into()),
            || ShardConsumer::open(client.clone(), consumer_options.clone(), resume.iter()),
        )
        .await;
    let Some(consumer) = opened else { return Ok(()) };
    function.health().remove_detail("datahubError");
    function.health().set_detail("subscription", consumer.subscription_id().into());
    tracing::info!(project = %datahub.project, topic = %datahub.topic, subscription = consumer.subscription_id(), "file sink running");

    let mut run = Run { sink, transform, consumer, checkpointer, function: function.clone(), latency: Default::default() };
    let shutdown = function.shutdown().clone();
    let outcome: anyhow::Result<()> = async {
        loop {
            let records = tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                polled = run.consumer.poll() => polled.context("reading DataHub")?,
            };
            function.health().heartbeat();
            if records.is_empty() {
                tokio::task::block_in_place(|| run.sink.poll_rolling()).context("rolling files")?;
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(IDLE_WAIT) => {}
                }
            } else {
                tokio::task::block_in_place(|| run.write(records))?;
            }
            if run.checkpointer.is_due() {
                run.checkpoint().await?;
            }
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            run.checkpoint().await.context("final checkpoint")?;
            let stats = run.sink.stats();
            tracing::info!(rows = stats.rows_appended, files = stats.files_committed, duplicates = stats.duplicates_dropped, "file sink stopped");
            Ok(())
        }
        Err(err) => {
            // Nothing more is committed; the next start recovers from the last checkpoint.
            function.health().set_down("storage", format!("{err:#}"));
            Err(err)
        }
    }
}

struct Run {
    sink: FileSink,
    transform: Option<TransformStage>,
    consumer: ShardConsumer,
    checkpointer: Checkpointer,
    function: Function,
    latency: cdc_telemetry::CommitLatency,
}

impl Run {
    /// Writes a polled batch (blocking file I/O: called under `block_in_place`).
    fn write(&mut self, records: Vec<ConsumedRecord>) -> anyhow::Result<()> {
        let metrics = self.function.metrics();
        metrics.add_in(records.len() as u64);
        metrics.add_collected(STAGE, records.len() as u64);
        for record in records {
            if record.attributes.contains_key(EVENT_KIND_ATTRIBUTE) {
                tracing::debug!(shard = %record.shard, sequence = record.sequence, kind = ?record.attributes.get(EVENT_KIND_ATTRIBUTE), "skipping a record that is not a row change");
                continue;
            }
            let event = match cdc_event::debezium::from_slice(&record.payload) {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(shard = %record.shard, sequence = record.sequence, error = %e, "record is not a Debezium change event; skipped");
                    metrics.add_failed(STAGE, 1);
                    continue;
                }
            };
            let event = match self.transform.as_mut() {
                None => event,
                Some(stage) => match stage.apply(self.sink.committed(), &record.shard, record.sequence, event)? {
                    Staged::Write(event) => event,
                    Staged::Filtered | Staged::Duplicate => continue,
                    Staged::DeadLettered => {
                        metrics.add_dead_lettered(1);
                        metrics.add_failed(STAGE, 1);
                        continue;
                    }
                },
            };
            let commit_ts_ms = event.commit_ts_ms;
            let outcome = self
                .sink
                .write(Record::new(record.shard.clone(), record.sequence, event))
                .with_context(|| format!("writing shard {} sequence {}", record.shard, record.sequence))?;
            match outcome {
                WriteOutcome::Appended => {
                    metrics.add_out(1);
                    metrics.add_sent(STAGE, 1);
                    self.latency.written(commit_ts_ms);
                }
                WriteOutcome::DeadLettered => {
                    metrics.add_dead_lettered(1);
                    metrics.add_failed(STAGE, 1);
                }
                WriteOutcome::DuplicateDropped | WriteOutcome::RedeliveryDropped => {}
            }
        }
        Ok(())
    }

    /// Files first, offsets last: see the crate documentation.
    async fn checkpoint(&mut self) -> anyhow::Result<()> {
        let mut state = tokio::task::block_in_place(|| self.sink.prepare_checkpoint()).context("closing files for a checkpoint")?;
        if let Some(stage) = self.transform.as_mut() {
            tokio::task::block_in_place(|| stage.prepare(&mut state)).context("closing transform dead-letter files for a checkpoint")?;
        }
        let mut checkpoint = self.checkpointer.new_checkpoint();
        checkpoint.put_state(STATE_NAME, &state).context("encoding the sink state")?;
        if self.checkpointer.checkpoint(checkpoint).await.is_err() {
            // Counted and logged by the checkpointer. The closed files stay pending in the
            // sink and go into the next checkpoint; nothing is committed now.
            return Ok(());
        }
        let report = tokio::task::block_in_place(|| self.sink.commit(&state)).context("committing files")?;
        self.latency.committed(self.function.metrics());
        if let Some(stage) = self.transform.as_mut() {
            stage.committed(&state);
        }
        tracing::debug!(renamed = report.renamed, "checkpoint committed");
        // The checkpoint holds the true offsets; the subscription's are for monitoring and
        // for a sink started without its checkpoint. A failed commit is retried next time.
        if let Err(e) = self.consumer.commit(state.offsets.iter()).await {
            tracing::warn!(error = format!("{e:#}"), "committing offsets to the DataHub subscription failed");
        }
        let offsets: serde_json::Map<String, serde_json::Value> = state.offsets.iter().map(|(s, n)| (s.to_string(), n.into())).collect();
        self.function.health().set_detail("committedOffsets", offsets.into());
        Ok(())
    }
}
