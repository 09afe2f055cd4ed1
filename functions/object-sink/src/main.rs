//! `object-sink`: change events from a DataHub topic into exactly-once objects in S3 or an
//! S3-compatible store (`OUTPUT_PATH=s3://bucket/prefix`, reached with the `s3.*` settings),
//! in the same formats and layout as `file-sink`. A local `OUTPUT_PATH` works too (then it is
//! file-sink with compare-and-swap checkpoints).
//!
//! The loop, and why in this order (see `cdc_sink::object` for the storage protocol):
//! 1. restore the newest checkpoint (`state.checkpoints.dir`, local or `s3://`) and recover the
//!    sink from it: its pending multipart uploads are completed, every other upload under the
//!    prefix is aborted, the local staging directory is emptied;
//! 2. read every shard from the checkpointed offsets (else the subscription's, else the oldest
//!    record) through `ShardConsumer`, decode each record's Debezium JSON, write it;
//! 3. when a checkpoint is due, and at a graceful stop: `prepare_checkpoint` (files closed and
//!    uploaded as multipart uploads, invisible) → save the checkpoint as the successor of the
//!    last one this instance saw → `commit` (`CompleteMultipartUpload`) → commit the offsets
//!    to the DataHub subscription.
//!
//! Exactly once: a crash before the save leaves open uploads that the next start aborts (their
//! records are read again); a crash after it is finished by the next start's recovery; the
//! sink drops records it already wrote by shard offset and by (source, shard) position.
//!
//! Fencing: a save is a compare-and-swap on the checkpoint sequence. At start, before its
//! recovery aborts any upload, an instance claims the location by saving the restored state
//! again as the next checkpoint. If another instance saved a newer checkpoint, this one's save
//! fails with a conflict and it exits (code 1) without completing any upload or committing any
//! offset; so an upload aborted by the newest instance is never named by a checkpoint.
//!
//! S3 errors: 5xx, throttling, timeouts and dropped connections are retried with exponential
//! backoff up to `OUTPUT_MAX_RETRIES`; then the sink stops and the process exits with an error,
//! leaving offsets uncommitted.
//!
//! `OBJECT_SINK_FAILPOINT=<point>:<n>` (tests only) aborts the process at the n-th checkpoint
//! of this run, at `after-prepare` (uploads open, checkpoint not saved), `after-save`
//! (checkpoint durable, uploads not completed) or `after-commit` (uploads completed, offsets
//! not committed to DataHub), as a crash there would.

mod checkpoints;
mod lambda;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cdc_config::{Config, DatahubEndpoint};
use cdc_datahub::{ConsumedRecord, ConsumerOptions, ShardConsumer, EVENT_KIND_ATTRIBUTE};
use cdc_runtime::{Function, FunctionArgs};
use cdc_sink::object::ObjectStorage;
use cdc_sink::{FileSink, Record, SinkOptions, WriteOutcome};
use cdc_state::s3::{S3Connection, S3Options};
use cdc_state::{SinkState, StateLocation};
use cdc_telemetry::{CommitLatency, PipelineMetrics};
use checkpoints::{error_chain, Checkpoints, SaveError};
use clap::Parser;

/// Writes the change events of a DataHub topic as objects, exactly once.
#[derive(Debug, Parser)]
#[command(name = "object-sink", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
}

/// Checkpoint job name and the operator name of the sink's state in it.
const JOB: &str = "object-sink";
const STATE_NAME: &str = "sink";
/// The stage label of this function's metrics.
const STAGE: &str = "object-sink";
/// Wait after a poll that found every shard caught up.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// The test-only crash switch (see the crate docs).
const FAILPOINT_ENV: &str = "OBJECT_SINK_FAILPOINT";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cdc_runtime::run(cdc_config::Role::ObjectSink, &cli.common, run).await
}

/// The sink for `OUTPUT_PATH`: objects for `s3://…`, files for a local directory.
fn build_sink(config: &Config, s3: &S3Options) -> anyhow::Result<FileSink> {
    let output = &config.output;
    if output.local_dir().is_some() {
        let options = SinkOptions::from_output(output).context("output settings")?;
        return Ok(FileSink::new(options));
    }
    let (bucket, prefix) = s3_output(config)?;
    let staging: PathBuf = match &config.s3.staging_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join("cdc-object-sink").join(&bucket).join(if prefix.is_empty() { "_root" } else { &prefix }),
    };
    let connection = s3.connect().context("building the S3 client")?;
    object_sink(config, connection, &bucket, &prefix, &staging, false)
}

/// `OUTPUT_PATH` as (bucket, prefix); an error unless it is an `s3://` URL.
fn s3_output(config: &Config) -> anyhow::Result<(String, String)> {
    let path = &config.output.path;
    match StateLocation::parse(path) {
        Ok(StateLocation::S3 { bucket, prefix }) => Ok((bucket, prefix)),
        Ok(_) => bail!("OUTPUT_PATH={path} is neither a local directory nor an s3:// URL"),
        Err(e) => Err(e).with_context(|| format!("OUTPUT_PATH={path}")),
    }
}

/// A sink committing to `s3://bucket/prefix`, staging under `staging`; `shared_prefix` for
/// concurrent writers (see [`ObjectStorage::shared_prefix`]).
fn object_sink(config: &Config, connection: S3Connection, bucket: &str, prefix: &str, staging: &Path, shared_prefix: bool) -> anyhow::Result<FileSink> {
    let options = SinkOptions::from_output_staged(&config.output, staging).context("output settings")?;
    let mut storage = ObjectStorage::new(connection, bucket, prefix, options.retry_policy());
    if shared_prefix {
        storage = storage.shared_prefix();
    }
    Ok(FileSink::with_storage(options, Box::new(storage)))
}

/// `OBJECT_SINK_FAILPOINT=<point>:<n>` (tests only): abort at `point` of the n-th checkpoint
/// of this run (in Lambda mode, of the n-th invocation that writes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Failpoint(Option<(String, u64)>);

impl Failpoint {
    fn from_env() -> anyhow::Result<Self> {
        let Ok(text) = std::env::var(FAILPOINT_ENV) else { return Ok(Self(None)) };
        let (point, n) = text.split_once(':').with_context(|| format!("{FAILPOINT_ENV}={text:?}: expected <point>:<n>"))?;
        if !matches!(point, "after-prepare" | "after-save" | "after-commit") {
            bail!("{FAILPOINT_ENV}={text:?}: the point must be after-prepare, after-save or after-commit");
        }
        let n = n.parse().with_context(|| format!("{FAILPOINT_ENV}={text:?}: <n> must be a number"))?;
        Ok(Self(Some((point.to_owned(), n))))
    }

    /// Aborts the process if this is the failpoint's place and checkpoint.
    pub(crate) fn check(&self, point: &str, checkpoint: u64) {
        if let Some((at, n)) = &self.0 {
            if at == point && *n == checkpoint {
                // An abort, not an exit: no destructor, no flush, as a crash or SIGKILL.
                eprintln!("{FAILPOINT_ENV}: aborting at {point} of checkpoint {n}");
                std::process::abort();
            }
        }
    }
}

async fn run(function: Function) -> anyhow::Result<()> {
    if let Some(env) = cdc_lambda::LambdaEnv::detect()? {
        return lambda::run(function, env).await;
    }
    let config = function.config().clone();
    let datahub = &config.datahub;
    let url = match &datahub.endpoint {
        Some(DatahubEndpoint::Remote(url)) => url.clone(),
        other => bail!("object-sink reads a DataHub topic: DATAHUB_ENDPOINT must be a DataHub or datahub-local URL, got {other:?}"),
    };
    let failpoint = Failpoint::from_env()?;
    let client = Arc::new(cdc_runtime::datahub_client(&url, datahub, datahub.max_retries, Duration::from_secs(120))?);

    // `datahub`: the topic answers.
    function.add_datahub_probe(&url, &datahub.project, &datahub.topic)?;
    // `storage`: the object store and the sink; down until recovered, and after a failure.
    function.health().declare("storage");

    let s3 = cdc_runtime::s3_options(&config);
    let metrics = function.context().metrics().clone();
    let (mut checkpoints, mut sink) = tokio::task::block_in_place(|| {
        let checkpoints = Checkpoints::open(&config, JOB, &s3, metrics.clone())?;
        anyhow::Ok((checkpoints, build_sink(&config, &s3)?))
    })?;
    let restored = checkpoints.restore().await?;
    let last: Option<SinkState> = match &restored {
        Some(checkpoint) => checkpoint.state(STATE_NAME).context("reading the sink state from the checkpoint")?,
        None => None,
    };
    // Claim first, recover second: see `Checkpoints::claim`.
    let claimed = checkpoints.claim(restored.as_ref()).await.map_err(|e| match e {
        SaveError::Superseded(_) => anyhow::Error::new(e).context("claiming the checkpoint location (fenced)"),
        SaveError::Failed(e) => e.context("claiming the checkpoint location"),
    })?;
    tracing::info!(id = claimed.0, "checkpoint location claimed");
    let resume = tokio::task::block_in_place(|| sink.recover(last.as_ref())).context("recovering the object sink")?;
    function.health().set_up("storage");
    function.health().set_detail("output", sink.location().into());

    let consumer_options = ConsumerOptions::new(&datahub.project, &datahub.topic, &datahub.consumer_group);
    // DataHub may come up after the sink, so opening is retried rather than crash-looping.
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
    tracing::info!(project = %datahub.project, topic = %datahub.topic, output = %sink.location(), subscription = consumer.subscription_id(), "object sink running");

    let mut run = Run { sink, consumer, checkpoints, function: function.clone(), failpoint, taken: 0, latency: CommitLatency::default() };
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
            if run.checkpoints.is_due() {
                run.checkpoint().await?;
            }
        }
        Ok(())
    }
    .await;
    let outcome = match outcome {
        Ok(()) => run.checkpoint().await.context("final checkpoint"),
        Err(err) => Err(err),
    };
    match outcome {
        Ok(()) => {
            let stats = run.sink.stats();
            tracing::info!(rows = stats.rows_appended, files = stats.files_committed, duplicates = stats.duplicates_dropped, "object sink stopped");
            Ok(())
        }
        Err(err) => {
            // Nothing more is committed; the next start recovers from the last checkpoint.
            function.health().set_down("storage", format!("{err:#}"));
            Err(err)
        }
    }
}

/// What [`write_records`] did with a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub appended: u64,
    /// Already written before (a redelivery after a restart or a retried invocation).
    pub duplicates: u64,
    pub dead_lettered: u64,
    /// Not row changes (schema changes), or not Debezium change events.
    pub skipped: u64,
}

/// Decodes each record's Debezium JSON and writes it (blocking I/O: call under
/// `block_in_place`). A record that is not a change event is skipped and counted as failed; a
/// write error stops the batch.
pub(crate) fn write_records(sink: &mut FileSink, metrics: &PipelineMetrics, latency: &mut CommitLatency, records: Vec<ConsumedRecord>) -> anyhow::Result<Written> {
    let mut written = Written::default();
    metrics.add_in(records.len() as u64);
    metrics.add_collected(STAGE, records.len() as u64);
    for record in records {
        if record.attributes.contains_key(EVENT_KIND_ATTRIBUTE) {
            tracing::debug!(shard = %record.shard, sequence = record.sequence, "skipping a record that is not a row change");
            written.skipped += 1;
            continue;
        }
        let event = match cdc_event::debezium::from_slice(&record.payload) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(shard = %record.shard, sequence = record.sequence, error = %e, "record is not a Debezium change event; skipped");
                metrics.add_failed(STAGE, 1);
                written.skipped += 1;
                continue;
            }
        };
        let commit_ts_ms = event.commit_ts_ms;
        let outcome = sink
            .write(Record::new(record.shard.clone(), record.sequence, event))
            .with_context(|| format!("writing shard {} sequence {}", record.shard, record.sequence))?;
        match outcome {
            WriteOutcome::Appended => {
                metrics.add_out(1);
                metrics.add_sent(STAGE, 1);
                latency.written(commit_ts_ms);
                written.appended += 1;
            }
            WriteOutcome::DeadLettered => {
                metrics.add_dead_lettered(1);
                metrics.add_failed(STAGE, 1);
                written.dead_lettered += 1;
            }
            WriteOutcome::DuplicateDropped | WriteOutcome::RedeliveryDropped => written.duplicates += 1,
        }
    }
    Ok(written)
}

struct Run {
    sink: FileSink,
    consumer: ShardConsumer,
    checkpoints: Checkpoints,
    function: Function,
    failpoint: Failpoint,
    /// Checkpoints started in this run (for the failpoint).
    taken: u64,
    latency: CommitLatency,
}

impl Run {
    /// Writes a polled batch (blocking I/O: called under `block_in_place`).
    fn write(&mut self, records: Vec<ConsumedRecord>) -> anyhow::Result<()> {
        write_records(&mut self.sink, self.function.metrics(), &mut self.latency, records).map(|_| ())
    }

    fn crash_here(&self, point: &str) {
        self.failpoint.check(point, self.taken);
    }

    /// Uploads first, checkpoint second, completion third, offsets last.
    async fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.taken += 1;
        let state = tokio::task::block_in_place(|| self.sink.prepare_checkpoint()).context("closing and uploading files for a checkpoint")?;
        self.crash_here("after-prepare");
        let mut checkpoint = self.checkpoints.new_checkpoint();
        checkpoint.put_state(STATE_NAME, &state).context("encoding the sink state")?;
        let id = match self.checkpoints.save(checkpoint).await {
            Ok(id) => id,
            Err(error @ SaveError::Superseded(_)) => {
                return Err(anyhow::Error::new(error).context("checkpoint commit refused (fenced)"));
            }
            Err(SaveError::Failed(error)) => {
                // Counted and logged. The uploads stay pending in the sink and go into the
                // next checkpoint; nothing is committed now.
                tracing::debug!(error = format!("{error:#}"), "checkpoint not saved; retrying at the next one");
                return Ok(());
            }
        };
        self.crash_here("after-save");
        let report = tokio::task::block_in_place(|| self.sink.commit(&state)).context("completing uploads")?;
        self.latency.committed(self.function.metrics());
        // One line per checkpoint: what operators (and the kill test) follow progress by.
        let offsets: Vec<String> = state.offsets.iter().map(|(shard, next)| format!("{shard}={next}")).collect();
        tracing::info!(id = id.0, completed = report.renamed, already_completed = report.already_committed, offsets = offsets.join(","), "checkpoint committed");
        self.crash_here("after-commit");
        // The checkpoint holds the true offsets; the subscription's are for monitoring and for
        // a sink started without its checkpoint. A failed commit is retried next time.
        if let Err(e) = self.consumer.commit(state.offsets.iter()).await {
            tracing::warn!(error = error_chain(&e), "committing offsets to the DataHub subscription failed");
        }
        let offsets: serde_json::Map<String, serde_json::Value> = state.offsets.iter().map(|(s, n)| (s.to_string(), n.into())).collect();
        self.function.health().set_detail("committedOffsets", offsets.into());
        Ok(())
    }
}
