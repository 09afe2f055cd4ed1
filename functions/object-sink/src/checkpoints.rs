//! Checkpoint coordination of the object sink: the interval and pause of
//! `flink.checkpoint.*`, metrics as `cdc_runtime::Checkpointer` counts them, and one
//! difference that makes two instances unable to both commit: every save is a
//! compare-and-swap on the checkpoint sequence ([`CheckpointStore::save_next`]). An instance
//! whose predecessor checkpoint is no longer the newest is a zombie; its save fails with
//! [`SaveError::Superseded`] and it must stop without completing any upload.
//!
//! The store lives at `state.checkpoints.dir` (`CHECKPOINT_DIR`): a local directory or
//! `s3://bucket/prefix`, reached with the `s3.*` settings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use cdc_config::Config;
use cdc_state::s3::S3Options;
use cdc_state::{Backend, Checkpoint, CheckpointError, CheckpointId, CheckpointStore, StateLocation};
use cdc_telemetry::PipelineMetrics;

/// Why a save did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Another writer saved a newer checkpoint: stop, commit nothing.
    #[error("another instance is writing to the same checkpoint location; this one stops without committing")]
    Superseded(#[source] CheckpointError),
    /// The save failed or timed out; the pending files stay pending for the next checkpoint.
    #[error(transparent)]
    Failed(anyhow::Error),
}

pub struct Checkpoints {
    store: Arc<CheckpointStore<Arc<dyn Backend>>>,
    job: String,
    epoch: u64,
    /// The newest checkpoint this instance restored or saved: the predecessor of its next save.
    previous: Option<CheckpointId>,
    interval: Duration,
    min_pause: Duration,
    timeout: Duration,
    metrics: Arc<PipelineMetrics>,
    opened: Instant,
    last_start: Option<Instant>,
    last_end: Option<Instant>,
}

impl Checkpoints {
    /// Opens the store at `CHECKPOINT_DIR`; sends no request for a local directory, builds the
    /// client for S3.
    pub fn open(config: &Config, job: &str, s3: &S3Options, metrics: Arc<PipelineMetrics>) -> anyhow::Result<Self> {
        Self::open_at(config, &config.state_backend.checkpoint_dir, job, s3, metrics)
    }

    /// [`Self::open`] at `dir` (a location below `CHECKPOINT_DIR`) instead.
    pub fn open_at(config: &Config, dir: &str, job: &str, s3: &S3Options, metrics: Arc<PipelineMetrics>) -> anyhow::Result<Self> {
        let backend = StateLocation::parse(dir)
            .with_context(|| format!("CHECKPOINT_DIR={dir}"))?
            .open_with(s3)
            .with_context(|| format!("opening the checkpoint location {dir}"))?;
        let retained = usize::try_from(config.checkpoint.retained_number)
            .ok()
            .and_then(std::num::NonZeroUsize::new)
            .ok_or_else(|| anyhow!("CHECKPOINT_RETAINED_NUMBER must be at least 1"))?;
        Ok(Self {
            store: Arc::new(CheckpointStore::new(backend).with_retained_number(retained)),
            job: job.to_owned(),
            epoch: 0,
            previous: None,
            interval: config.checkpoint.interval(),
            min_pause: config.checkpoint.min_pause(),
            timeout: config.checkpoint.timeout(),
            metrics,
            opened: Instant::now(),
            last_start: None,
            last_end: None,
        })
    }

    /// The newest valid checkpoint (corrupt newer ones are skipped with a warning), or `None`
    /// on a first start. Its id (or a skipped newer one's) is the predecessor of the next save.
    pub async fn restore(&mut self) -> anyhow::Result<Option<Checkpoint>> {
        let store = self.store.clone();
        let report = tokio::task::spawn_blocking(move || store.load_latest_with_report())
            .await
            .context("checkpoint reader task")?
            .context("loading the latest checkpoint")?;
        let skipped = report.skipped.iter().map(|s| s.id).max();
        self.previous = report.checkpoint.as_ref().map(|c| c.id).max(skipped);
        if let Some(checkpoint) = &report.checkpoint {
            self.epoch = checkpoint.epoch;
            tracing::info!(id = checkpoint.id.0, "restored state");
        }
        Ok(report.checkpoint)
    }

    /// Takes over the checkpoint location before touching any upload: saves the restored
    /// state again as the successor of the restored checkpoint. From then on every other
    /// instance's save conflicts, so the uploads this instance's recovery aborts can never be
    /// named by a checkpoint. Fails with [`SaveError::Superseded`] if another instance saved
    /// since the restore (it is then the newer one; restart to restore its checkpoint).
    pub async fn claim(&mut self, restored: Option<&Checkpoint>) -> Result<CheckpointId, SaveError> {
        let mut claim = self.new_checkpoint();
        if let Some(restored) = restored {
            claim.operators = restored.operators.clone();
        }
        self.save(claim).await
    }

    pub fn new_checkpoint(&self) -> Checkpoint {
        Checkpoint::new(self.job.clone(), self.epoch)
    }

    /// As Flink: `interval` after the last start (or after opening), `min_pause` after the
    /// last end.
    pub fn is_due(&self) -> bool {
        let by_interval = self.last_start.unwrap_or(self.opened) + self.interval;
        let due = match self.last_end {
            Some(end) => by_interval.max(end + self.min_pause),
            None => by_interval,
        };
        Instant::now() >= due
    }

    /// Saves `checkpoint` as the successor of the last one this instance saw, within
    /// `CHECKPOINT_TIMEOUT`.
    pub async fn save(&mut self, mut checkpoint: Checkpoint) -> Result<CheckpointId, SaveError> {
        let started = Instant::now();
        self.last_start = Some(started);
        let store = self.store.clone();
        let previous = self.previous;
        let save = tokio::task::spawn_blocking(move || {
            let id = store.save_next(&mut checkpoint, previous)?;
            let size = store.list()?.iter().find(|e| e.id == id).map_or(0, |e| e.size_bytes);
            Ok::<_, CheckpointError>((id, size))
        });
        let outcome = match tokio::time::timeout(self.timeout, save).await {
            Err(_) => Err(SaveError::Failed(anyhow!(
                "checkpoint did not complete within CHECKPOINT_TIMEOUT={} ms",
                self.timeout.as_millis()
            ))),
            Ok(Err(join)) => Err(SaveError::Failed(anyhow!("checkpoint task failed: {join}"))),
            Ok(Ok(Err(error @ (CheckpointError::Conflict { .. } | CheckpointError::Fenced { .. })))) => {
                Err(SaveError::Superseded(error))
            }
            Ok(Ok(Err(error))) => Err(SaveError::Failed(anyhow::Error::new(error).context("saving the checkpoint"))),
            Ok(Ok(Ok(saved))) => Ok(saved),
        };
        self.last_end = Some(Instant::now());
        match outcome {
            Ok((id, size)) => {
                self.previous = Some(id);
                self.metrics.checkpoint_completed(started.elapsed(), size);
                tracing::debug!(id = id.0, size, "checkpoint completed");
                Ok(id)
            }
            Err(error) => {
                self.metrics.checkpoint_failed(started.elapsed());
                tracing::warn!(error = error_chain(&error), "checkpoint failed");
                Err(error)
            }
        }
    }
}

/// `error: cause: cause` on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
