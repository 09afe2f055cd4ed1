//! The relay loop: poll the assigned shards → batch per shard → deliver → acknowledge →
//! commit. Offsets move only for batches the target acknowledged, so a crash, a kill or a
//! target that keeps failing leaves the unacknowledged records to be read again (by this
//! replica after a restart, or by another one of the group): at-least-once delivery.
//!
//! * A batch that fails is retried with doubling backoff up to `max_retries` times if the
//!   error may pass (5xx, 429, timeouts, connection errors, Lambda function errors); then —
//!   or at once for other errors — the relay stops with an error, committing nothing more.
//! * Before the consumer applies a rebalance, the open batches are delivered, so the revoked
//!   shards' progress is committed before they are released (fewer duplicates for the next
//!   reader). Open batches of shards that were taken over anyway are dropped: their new
//!   reader delivers them.
//! * On shutdown the open batches are delivered and committed, then the group is left.

use std::time::{Duration, Instant};

use cdc_datahub::{ConsumeError, GroupConsumer};
use cdc_telemetry::{PipelineMetrics, Shutdown};

use crate::batch::{Batch, BatchPolicy, Batcher};
use crate::target::{DeliveryError, Target};

/// The stage label of the relay's metrics.
pub const STAGE: &str = "datahub-relay";
/// Longest backoff between delivery attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the relay batches and retries.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub project: String,
    pub topic: String,
    pub batch: BatchPolicy,
    pub max_retries: u32,
    pub retry_backoff: Duration,
    /// Wait after a poll that found nothing new.
    pub idle_wait: Duration,
}

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("reading DataHub: {0}")]
    Consume(#[from] ConsumeError),
    #[error("batch of shard {shard} (sequences {first}..={last}) not delivered after {attempts} attempt(s); its offsets are not committed: {source}")]
    Delivery {
        shard: String,
        first: u64,
        last: u64,
        attempts: u32,
        #[source]
        source: DeliveryError,
    },
    #[error("stopped while retrying the batch of shard {shard} (sequences {first}..={last}); its offsets are not committed")]
    StoppedWhileRetrying { shard: String, first: u64, last: u64 },
    #[error("encoding the batch of shard {shard}: {source}")]
    Encode {
        shard: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What a run delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub batches: u64,
    pub records: u64,
}

struct Relay<'a> {
    consumer: &'a mut GroupConsumer,
    target: &'a Target,
    options: &'a RelayOptions,
    metrics: Option<&'a PipelineMetrics>,
    shutdown: &'a Shutdown,
    stats: RelayStats,
}

/// Runs until `shutdown` (then delivers what is open, commits and returns the stats) or a
/// failure (then returns it; what was acknowledged before is committed, nothing after). The
/// caller closes the consumer (leaving the group) either way.
pub async fn run(
    consumer: &mut GroupConsumer,
    target: &Target,
    options: &RelayOptions,
    metrics: Option<&PipelineMetrics>,
    shutdown: &Shutdown,
) -> Result<RelayStats, RelayError> {
    let mut relay = Relay { consumer, target, options, metrics, shutdown, stats: RelayStats::default() };
    let mut batcher = Batcher::new(options.batch);
    let outcome = relay.run(&mut batcher).await;
    if outcome.is_ok() {
        // Graceful stop: what is open was read and is owed to the target.
        for batch in batcher.take_all() {
            relay.deliver(batch).await?;
        }
        relay.consumer.commit().await?;
    }
    outcome.map(|()| relay.stats)
}

impl Relay<'_> {
    async fn run(&mut self, batcher: &mut Batcher) -> Result<(), RelayError> {
        loop {
            if self.shutdown.is_triggered() {
                return Ok(());
            }
            if self.consumer.rebalance_pending() && !batcher.is_empty() {
                let open = batcher.take_all();
                self.deliver_all(open).await?;
            }
            let records = tokio::select! {
                biased;
                _ = self.shutdown.wait() => return Ok(()),
                polled = self.consumer.poll() => polled?,
            };
            // Shards revoked by the poll: their open batches are the new reader's now.
            batcher.retain_shards(&self.consumer.held_shards());
            let got = records.len();
            if let Some(m) = self.metrics {
                m.add_in(got as u64);
                m.add_collected(STAGE, got as u64);
            }
            let now = Instant::now();
            let mut ready: Vec<Batch> = records.into_iter().filter_map(|r| batcher.push(r, now)).collect();
            ready.extend(batcher.due(now));
            self.deliver_all(ready).await?;
            if got == 0 {
                // Caught up: wait a little, or until the oldest open batch is due.
                let wait = batcher.next_due().map_or(self.options.idle_wait, |due| due.saturating_duration_since(Instant::now()).min(self.options.idle_wait));
                tokio::select! {
                    _ = self.shutdown.wait() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Delivers, acknowledges and commits batches.
    async fn deliver_all(&mut self, batches: Vec<Batch>) -> Result<(), RelayError> {
        if batches.is_empty() {
            return Ok(());
        }
        for batch in batches {
            self.deliver(batch).await?;
        }
        self.consumer.commit().await?;
        Ok(())
    }

    /// One batch with retries; acknowledges it to the consumer once the target did.
    async fn deliver(&mut self, batch: Batch) -> Result<(), RelayError> {
        let Some((last_sequence, last_time)) = batch.ack_position() else { return Ok(()) };
        let (shard, first, n) = (batch.shard.to_string(), batch.first_sequence(), batch.len() as u64);
        let body = batch.to_json(&self.options.project, &self.options.topic).map_err(|source| RelayError::Encode { shard: shard.clone(), source })?;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.target.deliver(&body).await {
                Ok(()) => break,
                Err(e) if e.is_retryable() && attempt <= self.options.max_retries => {
                    let wait = self.options.retry_backoff.saturating_mul(1 << (attempt - 1).min(16)).min(MAX_BACKOFF);
                    tracing::warn!(%shard, first, last = last_sequence, attempt, retry_in_ms = wait.as_millis() as u64, error = %e, "delivery failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.wait() => {
                            self.count_failed(n);
                            return Err(RelayError::StoppedWhileRetrying { shard, first, last: last_sequence });
                        }
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(source) => {
                    self.count_failed(n);
                    return Err(RelayError::Delivery { shard, first, last: last_sequence, attempts: attempt, source });
                }
            }
        }
        if !self.consumer.ack(&shard, last_sequence, last_time) {
            tracing::info!(%shard, first, last = last_sequence, "delivered a batch of a shard no longer held; its new reader delivers it again");
        }
        tracing::debug!(%shard, first, last = last_sequence, records = n, "batch delivered");
        self.stats.batches += 1;
        self.stats.records += n;
        if let Some(m) = self.metrics {
            m.add_out(n);
            m.add_sent(STAGE, n);
            // End-to-end: from DataHub's receive time of the batch's last record to its ack.
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            if last_time > 0 && now_ms >= last_time {
                m.observe_latency_ms((now_ms - last_time) as f64);
            }
        }
        Ok(())
    }

    fn count_failed(&self, n: u64) {
        if let Some(m) = self.metrics {
            m.add_failed(STAGE, n);
        }
    }
}
