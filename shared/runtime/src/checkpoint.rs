//! Checkpoint coordination as Flink does it, for one process: `CHECKPOINT_INTERVAL` between
//! checkpoint starts, at least `CHECKPOINT_MIN_PAUSE` between the end of one and the start of
//! the next, `CHECKPOINT_TIMEOUT` for a save, `CHECKPOINT_RETAINED_NUMBER` kept on the state
//! backend, and savepoints on demand. Durations, sizes, successes and failures go to the
//! standard metrics.
//!
//! Stages decide *what* goes into a checkpoint (their positions, offsets, pending files);
//! this type decides *when* and makes it durable.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use cdc_config::Config;
use cdc_state::{Backend, Checkpoint, CheckpointId, CheckpointStore, StateLocation};
use cdc_telemetry::PipelineMetrics;

/// Periodic, durable checkpoints of one job.
pub struct Checkpointer {
    store: Arc<CheckpointStore<Arc<dyn Backend>>>,
    job: String,
    epoch: u64,
    interval: Duration,
    min_pause: Duration,
    timeout: Duration,
    savepoint_dir: PathBuf,
    metrics: Arc<PipelineMetrics>,
    opened: Instant,
    last_start: Option<Instant>,
    last_end: Option<Instant>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("job", &self.job)
            .field("epoch", &self.epoch)
            .field("interval", &self.interval)
            .field("min_pause", &self.min_pause)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Opens the checkpoint store at `flink.stateBackend.checkpointDir` / `CHECKPOINT_DIR`.
    /// `job` names the checkpoints (one store directory may be shared by several jobs only if
    /// each has its own sub-directory; the caller passes a distinct `job`).
    pub fn open(config: &Config, job: &str, metrics: Arc<PipelineMetrics>) -> anyhow::Result<Self> {
        let dir = &config.state_backend.checkpoint_dir;
        let location = StateLocation::parse(dir).with_context(|| format!("CHECKPOINT_DIR={dir}"))?;
        #[cfg(feature = "s3")]
        let backend = location.open_with(&crate::s3_options(config));
        // Without the feature an s3:// location is refused with a message saying so.
        #[cfg(not(feature = "s3"))]
        let backend = location.open();
        let backend = backend.with_context(|| format!("opening the checkpoint directory {dir}"))?;
        let retained = usize::try_from(config.checkpoint.retained_number)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| anyhow!("CHECKPOINT_RETAINED_NUMBER must be at least 1"))?;
        let savepoint_dir = match StateLocation::parse(&config.state_backend.savepoint_dir)
            .with_context(|| format!("SAVEPOINT_DIR={}", config.state_backend.savepoint_dir))?
        {
            StateLocation::Local(path) => path,
            other => anyhow::bail!("SAVEPOINT_DIR must be a local directory for now, got {other:?}"),
        };
        Ok(Self {
            store: Arc::new(CheckpointStore::new(backend).with_retained_number(retained)),
            job: job.to_owned(),
            epoch: 0,
            interval: config.checkpoint.interval(),
            min_pause: config.checkpoint.min_pause(),
            timeout: config.checkpoint.timeout(),
            savepoint_dir,
            metrics,
            opened: Instant::now(),
            last_start: None,
            last_end: None,
        })
    }

    /// The state to start from: the savepoint when one is given (`run --from-savepoint`),
    /// otherwise the newest valid checkpoint (corrupt ones are skipped with a warning), or
    /// `None` on a first start.
    pub async fn restore(&mut self, from_savepoint: Option<&Path>) -> anyhow::Result<Option<Checkpoint>> {
        let restored = match from_savepoint {
            Some(path) => {
                let path = path.to_path_buf();
                let checkpoint = tokio::task::spawn_blocking(move || cdc_state::read_savepoint(&path))
                    .await
                    .context("savepoint reader task")?
                    .with_context(|| format!("reading savepoint {}", from_savepoint.unwrap_or(Path::new("")).display()))?;
                Some(checkpoint)
            }
            None => {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || store.load_latest())
                    .await
                    .context("checkpoint reader task")?
                    .context("loading the latest checkpoint")?
            }
        };
        if let Some(checkpoint) = &restored {
            // Continue the epoch of what we restore so our next checkpoint is not fenced.
            self.epoch = self.epoch.max(checkpoint.epoch);
            self.store.raise_min_epoch(checkpoint.epoch);
            tracing::info!(id = checkpoint.id.0, kind = ?checkpoint.kind, "restored state");
        }
        Ok(restored)
    }

    /// A fresh checkpoint of this job and epoch for the stages to fill.
    pub fn new_checkpoint(&self) -> Checkpoint {
        Checkpoint::new(self.job.clone(), self.epoch)
    }

    /// When the next checkpoint may start: `interval` after the last start (or after opening,
    /// as Flink's first checkpoint waits one interval) and `min_pause` after the last end.
    pub fn next_due(&self) -> Instant {
        let by_interval = self.last_start.unwrap_or(self.opened) + self.interval;
        match self.last_end {
            Some(end) => by_interval.max(end + self.min_pause),
            None => by_interval,
        }
    }

    pub fn is_due(&self) -> bool {
        Instant::now() >= self.next_due()
    }

    /// Makes `checkpoint` durable within `CHECKPOINT_TIMEOUT`, counting it in the metrics.
    /// A failure is returned (and counted); the caller keeps its previous committed state.
    pub async fn checkpoint(&mut self, mut checkpoint: Checkpoint) -> anyhow::Result<CheckpointId> {
        let started = Instant::now();
        self.last_start = Some(started);
        let store = self.store.clone();
        let save = tokio::task::spawn_blocking(move || {
            let id = store.save(&mut checkpoint)?;
            let size = store.list()?.iter().find(|e| e.id == id).map_or(0, |e| e.size_bytes);
            Ok::<_, cdc_state::CheckpointError>((id, size))
        });
        let outcome = match tokio::time::timeout(self.timeout, save).await {
            Err(_) => Err(anyhow!("checkpoint did not complete within CHECKPOINT_TIMEOUT={} ms", self.timeout.as_millis())),
            Ok(Err(join)) => Err(anyhow!("checkpoint task failed: {join}")),
            Ok(Ok(Err(err))) => Err(anyhow::Error::new(err).context("saving the checkpoint")),
            Ok(Ok(Ok(saved))) => Ok(saved),
        };
        self.last_end = Some(Instant::now());
        match outcome {
            Ok((id, size)) => {
                self.metrics.checkpoint_completed(started.elapsed(), size);
                tracing::debug!(id = id.0, size, took_ms = started.elapsed().as_millis() as u64, "checkpoint completed");
                Ok(id)
            }
            Err(err) => {
                self.metrics.checkpoint_failed(started.elapsed());
                tracing::warn!(error = format!("{err:#}"), "checkpoint failed");
                Err(err)
            }
        }
    }

    /// Writes `checkpoint` as a savepoint under `dir` (default `SAVEPOINT_DIR`) and returns the
    /// savepoint's directory, to be given to `run --from-savepoint`.
    pub async fn savepoint(&self, checkpoint: Checkpoint, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
        let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| self.savepoint_dir.clone());
        let target = dir.clone();
        tokio::task::spawn_blocking(move || cdc_state::write_savepoint(&target, &checkpoint))
            .await
            .context("savepoint writer task")?
            .with_context(|| format!("writing a savepoint under {}", dir.display()))
    }
}
