//! Lambda mode: `object-sink` started under the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`
//! set) handles one relayed batch per invocation — the document `datahub-relay` delivers
//! ([`cdc_datahub::delivery`]): one shard's records in sequence order.
//!
//! Each invocation is the long-lived sink's checkpoint cycle, once, on a checkpoint of its own
//! shard (`{CHECKPOINT_DIR}/lambda/{topic}/{shard}`):
//! 1. restore the shard's newest checkpoint and recover from it: uploads it names are
//!    completed (a previous attempt that saved its checkpoint but died before completing is
//!    finished now), its offsets and (source, shard) positions become the dedupe marks;
//! 2. write the batch: records below the checkpointed offset are dropped as already written,
//!    the rest go to files named `part-{shard}-{first}-{last}` after their offsets;
//! 3. upload the files as multipart uploads (invisible), save the checkpoint as a
//!    compare-and-swap successor of the restored one, complete the uploads, answer.
//!
//! A retried invocation (the answer was lost, the sandbox died, the relay restarted and cut the
//! batch differently) therefore overwrites nothing and duplicates nothing: what an earlier
//! attempt made durable is recognised by offset, what it did not stays an invisible,
//! never-completed upload. Two invocations of one shard at once (a retry racing a timed-out
//! attempt) cannot both commit: the second save conflicts and that invocation fails, to be
//! retried against the winner's checkpoint. Invocations of different shards share the output
//! prefix, so recovery here aborts no upload (see `ObjectStorage::shared_prefix`): a bucket
//! lifecycle rule (`AbortIncompleteMultipartUpload`) removes abandoned ones.
//!
//! The answer is `{"shard", "firstSequence", "lastSequence", "rows", "duplicates",
//! "deadLettered", "skipped", "files": [keys], "checkpoint"}`; an error is a function error, which
//! the relay retries and, after `relay.maxRetries`, stops on without committing offsets.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use cdc_config::Config;
use cdc_datahub::delivery::DeliveredBatch;
use cdc_lambda::LambdaEnv;
use cdc_runtime::Function;
use cdc_sink::FileSink;
use cdc_state::s3::{S3Connection, S3Options};
use cdc_state::SinkState;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::checkpoints::{error_chain, Checkpoints, SaveError};
use crate::{object_sink, s3_output, write_records, Failpoint, JOB, STATE_NAME};

/// What every invocation of this sandbox shares.
struct LambdaSink {
    function: Function,
    config: Config,
    s3: S3Options,
    connection: S3Connection,
    bucket: String,
    prefix: String,
    /// Staging files of invocations live under it, each in a directory of its own.
    staging_root: PathBuf,
    /// One checkpoint store per (topic, shard), opened on first use.
    checkpoints: Mutex<HashMap<(String, String), Checkpoints>>,
    failpoint: Failpoint,
    /// Invocations that reached a checkpoint in this sandbox (for the failpoint).
    taken: std::sync::atomic::AtomicU64,
}

/// Serves invocations until the Runtime API loop ends or the function is stopped.
pub async fn run(function: Function, env: LambdaEnv) -> anyhow::Result<()> {
    let config = function.config().clone();
    let (bucket, prefix) = s3_output(&config).context("in Lambda mode the object sink writes to an object store")?;
    let s3 = cdc_runtime::s3_options(&config);
    let connection = tokio::task::block_in_place(|| s3.connect()).context("building the S3 client")?;
    let staging_root = match &config.s3.staging_dir {
        Some(dir) => dir.clone(),
        // Lambda's only writable directory.
        None => std::env::temp_dir().join("cdc-object-sink-lambda"),
    };
    let sink = Arc::new(LambdaSink {
        function: function.clone(),
        config,
        s3,
        connection,
        bucket,
        prefix,
        staging_root,
        checkpoints: Mutex::new(HashMap::new()),
        failpoint: Failpoint::from_env()?,
        taken: std::sync::atomic::AtomicU64::new(0),
    });
    function.health().declare("storage");
    function.health().set_up("storage");
    tracing::info!(function = %env.function_name, output = %format!("s3://{}/{}", sink.bucket, sink.prefix), "object sink running in Lambda mode");
    let handler = {
        let sink = sink.clone();
        move |event: Value| {
            let sink = sink.clone();
            async move { sink.handle(event).await }
        }
    };
    // SIGTERM ends the loop once the invocation in flight, if any, has answered.
    cdc_lambda::serve(&env, handler, function.shutdown().wait())
        .await
        .map_err(|e| anyhow::anyhow!("Lambda Runtime API loop: {e}"))
}

impl LambdaSink {
    async fn handle(&self, event: Value) -> anyhow::Result<Value> {
        let started = Instant::now();
        let batch = DeliveredBatch::from_value(event).context("the invocation's event")?;
        if batch.topic.is_empty() || batch.shard.is_empty() {
            bail!("the batch names no topic or shard");
        }
        let (topic, shard) = (batch.topic.clone(), batch.shard.to_string());
        let (first, last, count) = (batch.first_sequence, batch.last_sequence, batch.records.len());
        // One invocation per shard at a time in this sandbox; other sandboxes are fenced by the
        // checkpoint's compare-and-swap.
        let mut stores = self.checkpoints.lock().await;
        let key = (topic.clone(), shard.clone());
        if !stores.contains_key(&key) {
            let dir = format!("{}/lambda/{}/{}", self.config.state_backend.checkpoint_dir.trim_end_matches('/'), path_segment(&topic), path_segment(&shard));
            let metrics = self.function.context().metrics().clone();
            let opened = tokio::task::block_in_place(|| Checkpoints::open_at(&self.config, &dir, JOB, &self.s3, metrics))?;
            stores.insert(key.clone(), opened);
        }
        let checkpoints = stores.get_mut(&key).context("checkpoint store just opened")?;
        // Restored on every invocation: another sandbox may have saved since.
        let restored = checkpoints.restore().await?;
        let last_state: Option<SinkState> = match &restored {
            Some(checkpoint) => checkpoint.state(STATE_NAME).context("reading the sink state from the checkpoint")?,
            None => None,
        };
        let staging = self.staging_root.join(format!("{}-{}", std::process::id(), unique_suffix()));
        let mut sink = object_sink(&self.config, self.connection.clone(), &self.bucket, &self.prefix, &staging, true)?;
        let outcome = self.write_and_commit(&mut sink, checkpoints, last_state.as_ref(), batch).await;
        // The staging directory is this invocation's alone; what it held is uploaded or void.
        let _ = std::fs::remove_dir_all(&staging);
        let (written, files, checkpoint) = outcome?;
        tracing::info!(
            %topic, %shard, first, last, rows = written.appended, duplicates = written.duplicates,
            files = files.len(), millis = started.elapsed().as_millis() as u64, "batch committed"
        );
        Ok(json!({
            "shard": shard,
            "firstSequence": first,
            "lastSequence": last,
            "count": count,
            "rows": written.appended,
            "duplicates": written.duplicates,
            "deadLettered": written.dead_lettered,
            "skipped": written.skipped,
            "files": files,
            "checkpoint": checkpoint,
        }))
    }

    /// Recover → write → upload → save → complete; returns what was written, the committed
    /// keys and the saved checkpoint's id (`None` when every record was already written).
    async fn write_and_commit(
        &self,
        sink: &mut FileSink,
        checkpoints: &mut Checkpoints,
        last_state: Option<&SinkState>,
        batch: DeliveredBatch,
    ) -> anyhow::Result<(crate::Written, Vec<String>, Option<u64>)> {
        let metrics = self.function.metrics();
        tokio::task::block_in_place(|| sink.recover(last_state)).context("recovering the shard's last checkpoint")?;
        let mut latency = cdc_telemetry::CommitLatency::default();
        let written = tokio::task::block_in_place(|| write_records(sink, metrics, &mut latency, batch.records))?;
        if written.appended == 0 && written.dead_lettered == 0 {
            // A retry of a batch already committed (or a batch of schema changes only): no file
            // to commit, nothing to save.
            return Ok((written, Vec::new(), None));
        }
        let taken = self.taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let state = tokio::task::block_in_place(|| sink.prepare_checkpoint()).context("closing and uploading files")?;
        self.failpoint.check("after-prepare", taken);
        let mut checkpoint = checkpoints.new_checkpoint();
        checkpoint.put_state(STATE_NAME, &state).context("encoding the sink state")?;
        let id = match checkpoints.save(checkpoint).await {
            Ok(id) => id,
            Err(error @ SaveError::Superseded(_)) => {
                return Err(anyhow::Error::new(error).context("another invocation committed this shard first; retry"));
            }
            Err(SaveError::Failed(error)) => return Err(error.context("saving the shard's checkpoint")),
        };
        self.failpoint.check("after-save", taken);
        let files: Vec<String> = state.pending.iter().map(|p| p.final_key.clone()).collect();
        tokio::task::block_in_place(|| sink.commit(&state)).map_err(|e| anyhow::anyhow!("completing uploads: {}", error_chain(&e)))?;
        latency.committed(metrics);
        self.failpoint.check("after-commit", taken);
        Ok((written, files, Some(id.0)))
    }
}

/// A topic or shard name as one path segment of a checkpoint location.
fn path_segment(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

/// Distinguishes staging directories of successive invocations of one process.
fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
