//! The standard metrics every pipeline stage reports, on a caller-owned [`Registry`].
//!
//! Names the deployment guide's alert rules query are kept verbatim (`flink_latency_p99`,
//! `flink_checkpoint_total`, `flink_checkpoint_failed`, `flink_taskmanager_cpu_usage`,
//! `flink_backpressure_level`, and `failed_records_count` for the guide's
//! `failed.records.count`), so `prometheus-alerts.yml` works unchanged; the rest use a `cdc_`
//! prefix. Times are in milliseconds throughout, like the guide's latency threshold (60000).
//!
//! The guide lists a dead-letter-queue alert ("死信记录数持续增长") without a rule; with these
//! metrics it reads `increase(failed_records_count[15m]) > 0`. Its failure-rate rule
//! `rate(flink_checkpoint_failed[5m]) / rate(flink_checkpoint_total[5m])` works because
//! `flink_checkpoint_total` counts every attempt, failed ones included.
//!
//! Two kinds of accounting, deliberately separate:
//! - `records in / out` count what crosses the process boundary (the guide's throughput,
//!   `.records.in.rate` / `.records.out.rate`);
//! - `collected / sent / failed`, labelled by `stage`, count per stage (the `/health` figures).
//!
//! A one-stage function therefore typically calls both `add_in` and `add_collected` for what it
//! reads. Values derived from windows (rates, percentiles) and from `/proc` (CPU, RSS) are
//! computed when read: [`PipelineMetrics::refresh`] runs on every scrape.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use serde::Serialize;

use crate::error::{Result, TelemetryError};
use crate::process::{self, CpuSampler};
use crate::window::{LatencyWindow, Percentiles, RateWindow};

/// Metric names, public so dashboards, alert rules and tests refer to one spelling.
pub mod names {
    pub const RECORDS_COLLECTED: &str = "cdc_records_collected_total";
    pub const RECORDS_SENT: &str = "cdc_records_sent_total";
    pub const RECORDS_FAILED: &str = "cdc_records_failed_total";
    pub const RECORDS_IN: &str = "cdc_records_in_total";
    pub const RECORDS_OUT: &str = "cdc_records_out_total";
    pub const RECORDS_IN_RATE: &str = "cdc_records_in_rate";
    pub const RECORDS_OUT_RATE: &str = "cdc_records_out_rate";
    pub const COLLECT_RATE: &str = "cdc_records_collected_rate";
    pub const LATENCY: &str = "cdc_end_to_end_latency_ms";
    pub const LATENCY_P50: &str = "flink_latency_p50";
    pub const LATENCY_P99: &str = "flink_latency_p99";
    pub const CHECKPOINT_TOTAL: &str = "flink_checkpoint_total";
    pub const CHECKPOINT_FAILED: &str = "flink_checkpoint_failed";
    pub const CHECKPOINT_DURATION: &str = "cdc_checkpoint_duration_ms";
    pub const CHECKPOINT_LAST_DURATION: &str = "cdc_checkpoint_last_duration_ms";
    pub const CHECKPOINT_LAST_SIZE: &str = "cdc_checkpoint_last_size_bytes";
    pub const BACKPRESSURE: &str = "flink_backpressure_level";
    pub const CPU_USAGE: &str = "flink_taskmanager_cpu_usage";
    pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
    pub const DEAD_LETTERED: &str = "failed_records_count";
    pub const SOURCE_LAG: &str = "cdc_source_lag_seconds";

    /// The label on the per-stage counters.
    pub const STAGE_LABEL: &str = "stage";
}

/// Buckets of the end-to-end latency histogram, in ms: 1 ms up to 5 minutes, with a bound at
/// the guide's 60 s alert threshold.
const LATENCY_BUCKETS_MS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 30_000.0,
    60_000.0, 120_000.0, 300_000.0,
];

/// Buckets of the checkpoint duration histogram, in ms.
const CHECKPOINT_BUCKETS_MS: &[f64] = &[
    10.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 30_000.0, 60_000.0,
    300_000.0,
];

/// Sizes of the sliding windows behind the computed metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Window of the per-second rates (default 60 s, like Flink's meters).
    pub rate_window: Duration,
    /// Age of the latency samples the p50/p99 gauges use (default 60 s).
    pub latency_window: Duration,
    /// At most this many latency samples are kept (default 10 000), bounding memory and the
    /// cost of a scrape whatever the throughput.
    pub latency_samples: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self {
            rate_window: Duration::from_secs(60),
            latency_window: Duration::from_secs(60),
            latency_samples: 10_000,
        }
    }
}

impl MetricsOptions {
    pub fn with_rate_window(mut self, window: Duration) -> Self {
        self.rate_window = window;
        self
    }

    pub fn with_latency_window(mut self, window: Duration, max_samples: usize) -> Self {
        self.latency_window = window;
        self.latency_samples = max_samples;
        self
    }
}

/// The standard metrics of one function process. Cheap to share behind an `Arc`; every
/// method takes `&self`.
#[derive(Debug)]
pub struct PipelineMetrics {
    records_collected: IntCounterVec,
    records_sent: IntCounterVec,
    records_failed: IntCounterVec,
    records_in: IntCounter,
    records_out: IntCounter,
    records_in_rate: Gauge,
    records_out_rate: Gauge,
    collect_rate: Gauge,
    latency: Histogram,
    latency_p50: Gauge,
    latency_p99: Gauge,
    checkpoint_total: IntCounter,
    checkpoint_failed: IntCounter,
    checkpoint_duration: Histogram,
    checkpoint_last_duration: Gauge,
    checkpoint_last_size: IntGauge,
    backpressure: Gauge,
    cpu_usage: Gauge,
    resident_memory: IntGauge,
    dead_lettered: IntCounter,
    source_lag: Gauge,
    in_window: Mutex<RateWindow>,
    out_window: Mutex<RateWindow>,
    collect_window: Mutex<RateWindow>,
    latency_window: Mutex<LatencyWindow>,
    cpu: Mutex<CpuSampler>,
}

/// Locks a window. A panic while holding one of these short critical sections cannot leave
/// the data inconsistent in a way that matters for a metric, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// Metric constructors only fail on invalid names, label names or buckets; all of ours are
// constants checked by the unit tests, so `expect` cannot fire at run time.
const VALID_CONSTANT: &str = "metric name, labels and buckets are valid constants";

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect(VALID_CONSTANT)
}

fn staged_counter(name: &str, help: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &[names::STAGE_LABEL]).expect(VALID_CONSTANT)
}

fn gauge(name: &str, help: &str) -> Gauge {
    Gauge::new(name, help).expect(VALID_CONSTANT)
}

fn int_gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect(VALID_CONSTANT)
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect(VALID_CONSTANT)
}

impl PipelineMetrics {
    /// Creates the metrics with default windows and registers them on `registry`.
    ///
    /// Fails if `registry` already holds metrics of the same names (for example a second
    /// `PipelineMetrics` on the same registry).
    pub fn new(registry: &Registry) -> Result<Self> {
        Self::with_options(registry, MetricsOptions::default())
    }

    /// Like [`PipelineMetrics::new`] with explicit window sizes.
    pub fn with_options(registry: &Registry, options: MetricsOptions) -> Result<Self> {
        let now = Instant::now();
        let metrics = Self {
            records_collected: staged_counter(
                names::RECORDS_COLLECTED,
                "Records collected (read from the source or the previous stage), by stage.",
            ),
            records_sent: staged_counter(
                names::RECORDS_SENT,
                "Records delivered to the next stage or the sink, by stage.",
            ),
            records_failed: staged_counter(
                names::RECORDS_FAILED,
                "Records that failed processing or delivery, by stage.",
            ),
            records_in: counter(names::RECORDS_IN, "Records that entered this process."),
            records_out: counter(names::RECORDS_OUT, "Records that left this process."),
            records_in_rate: gauge(
                names::RECORDS_IN_RATE,
                "Records entering per second, over the rate window.",
            ),
            records_out_rate: gauge(
                names::RECORDS_OUT_RATE,
                "Records leaving per second, over the rate window.",
            ),
            collect_rate: gauge(
                names::COLLECT_RATE,
                "Records collected per second (all stages), over the rate window.",
            ),
            latency: histogram(
                names::LATENCY,
                "End-to-end latency from the source commit to this stage, in milliseconds.",
                LATENCY_BUCKETS_MS,
            ),
            latency_p50: gauge(
                names::LATENCY_P50,
                "Median end-to-end latency in ms over the latency window (0 when idle).",
            ),
            latency_p99: gauge(
                names::LATENCY_P99,
                "99th percentile end-to-end latency in ms over the latency window (0 when idle).",
            ),
            checkpoint_total: counter(
                names::CHECKPOINT_TOTAL,
                "Checkpoints attempted (completed and failed).",
            ),
            checkpoint_failed: counter(names::CHECKPOINT_FAILED, "Checkpoints that failed."),
            checkpoint_duration: histogram(
                names::CHECKPOINT_DURATION,
                "Checkpoint duration in milliseconds (completed and failed).",
                CHECKPOINT_BUCKETS_MS,
            ),
            checkpoint_last_duration: gauge(
                names::CHECKPOINT_LAST_DURATION,
                "Duration of the last completed checkpoint in milliseconds.",
            ),
            checkpoint_last_size: int_gauge(
                names::CHECKPOINT_LAST_SIZE,
                "Size of the last completed checkpoint in bytes.",
            ),
            backpressure: gauge(
                names::BACKPRESSURE,
                "Backpressure level from 0 (none) to 1 (fully blocked by downstream).",
            ),
            cpu_usage: gauge(
                names::CPU_USAGE,
                "Process CPU usage as a fraction (0..1) of the usable cores, between scrapes.",
            ),
            resident_memory: int_gauge(names::RESIDENT_MEMORY, "Resident memory size in bytes."),
            dead_lettered: counter(
                names::DEAD_LETTERED,
                "Records written to the dead-letter queue.",
            ),
            source_lag: gauge(
                names::SOURCE_LAG,
                "How far the source position is behind the source's head, in seconds.",
            ),
            in_window: Mutex::new(RateWindow::new(options.rate_window, now)),
            out_window: Mutex::new(RateWindow::new(options.rate_window, now)),
            collect_window: Mutex::new(RateWindow::new(options.rate_window, now)),
            latency_window: Mutex::new(LatencyWindow::new(
                options.latency_window,
                options.latency_samples,
            )),
            cpu: Mutex::new(CpuSampler::new()),
        };
        metrics.register(registry)?;
        Ok(metrics)
    }

    fn register(&self, registry: &Registry) -> Result<()> {
        let collectors: [(&'static str, Box<dyn Collector>); 21] = [
            (
                names::RECORDS_COLLECTED,
                Box::new(self.records_collected.clone()),
            ),
            (names::RECORDS_SENT, Box::new(self.records_sent.clone())),
            (names::RECORDS_FAILED, Box::new(self.records_failed.clone())),
            (names::RECORDS_IN, Box::new(self.records_in.clone())),
            (names::RECORDS_OUT, Box::new(self.records_out.clone())),
            (
                names::RECORDS_IN_RATE,
                Box::new(self.records_in_rate.clone()),
            ),
            (
                names::RECORDS_OUT_RATE,
                Box::new(self.records_out_rate.clone()),
            ),
            (names::COLLECT_RATE, Box::new(self.collect_rate.clone())),
            (names::LATENCY, Box::new(self.latency.clone())),
            (names::LATENCY_P50, Box::new(self.latency_p50.clone())),
            (names::LATENCY_P99, Box::new(self.latency_p99.clone())),
            (
                names::CHECKPOINT_TOTAL,
                Box::new(self.checkpoint_total.clone()),
            ),
            (
                names::CHECKPOINT_FAILED,
                Box::new(self.checkpoint_failed.clone()),
            ),
            (
                names::CHECKPOINT_DURATION,
                Box::new(self.checkpoint_duration.clone()),
            ),
            (
                names::CHECKPOINT_LAST_DURATION,
                Box::new(self.checkpoint_last_duration.clone()),
            ),
            (
                names::CHECKPOINT_LAST_SIZE,
                Box::new(self.checkpoint_last_size.clone()),
            ),
            (names::BACKPRESSURE, Box::new(self.backpressure.clone())),
            (names::CPU_USAGE, Box::new(self.cpu_usage.clone())),
            (
                names::RESIDENT_MEMORY,
                Box::new(self.resident_memory.clone()),
            ),
            (names::DEAD_LETTERED, Box::new(self.dead_lettered.clone())),
            (names::SOURCE_LAG, Box::new(self.source_lag.clone())),
        ];
        for (name, collector) in collectors {
            registry
                .register(collector)
                .map_err(|source| TelemetryError::MetricRegistration { name, source })?;
        }
        Ok(())
    }

    // ----- recording -----------------------------------------------------------------

    /// `n` records collected by `stage` (read from the source or received from upstream).
    pub fn add_collected(&self, stage: &str, n: u64) {
        self.records_collected.with_label_values(&[stage]).inc_by(n);
        lock(&self.collect_window).add(n, Instant::now());
    }

    /// `n` records delivered by `stage` to the next stage or the sink.
    pub fn add_sent(&self, stage: &str, n: u64) {
        self.records_sent.with_label_values(&[stage]).inc_by(n);
    }

    /// `n` records that `stage` failed to process or deliver.
    pub fn add_failed(&self, stage: &str, n: u64) {
        self.records_failed.with_label_values(&[stage]).inc_by(n);
    }

    /// `n` records entered this process.
    pub fn add_in(&self, n: u64) {
        self.records_in.inc_by(n);
        lock(&self.in_window).add(n, Instant::now());
    }

    /// `n` records left this process.
    pub fn add_out(&self, n: u64) {
        self.records_out.inc_by(n);
        lock(&self.out_window).add(n, Instant::now());
    }

    /// `n` records written to the dead-letter queue (the guide's `failed.records.count`).
    pub fn add_dead_lettered(&self, n: u64) {
        self.dead_lettered.inc_by(n);
    }

    /// One end-to-end latency observation (source commit time → now). On very hot paths,
    /// record once per batch (e.g. the oldest event of the batch) rather than per record:
    /// the percentile window sits behind a mutex.
    pub fn observe_latency(&self, latency: Duration) {
        self.observe_latency_ms(latency.as_secs_f64() * 1000.0);
    }

    /// Like [`observe_latency`](Self::observe_latency), in milliseconds. Negative values (a
    /// source clock ahead of ours) count as 0 rather than being dropped, so they stay visible
    /// in the sample count.
    pub fn observe_latency_ms(&self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        let ms = ms.max(0.0);
        self.latency.observe(ms);
        lock(&self.latency_window).record(ms, Instant::now());
    }

    /// Many latency observations (milliseconds) under one lock of the percentile window.
    pub fn observe_latencies_ms(&self, values: impl IntoIterator<Item = f64>) {
        let now = Instant::now();
        let mut window = lock(&self.latency_window);
        for ms in values.into_iter().filter(|ms| ms.is_finite()) {
            let ms = ms.max(0.0);
            self.latency.observe(ms);
            window.record(ms, now);
        }
    }

    /// A checkpoint completed in `duration`, writing `size_bytes`.
    pub fn checkpoint_completed(&self, duration: Duration, size_bytes: u64) {
        let ms = duration.as_secs_f64() * 1000.0;
        self.checkpoint_total.inc();
        self.checkpoint_duration.observe(ms);
        self.checkpoint_last_duration.set(ms);
        self.checkpoint_last_size
            .set(i64::try_from(size_bytes).unwrap_or(i64::MAX));
    }

    /// A checkpoint failed after `duration`. Counts in both `flink_checkpoint_total` and
    /// `flink_checkpoint_failed`, so the guide's failure-rate alert divides failed by all.
    pub fn checkpoint_failed(&self, duration: Duration) {
        self.checkpoint_total.inc();
        self.checkpoint_failed.inc();
        self.checkpoint_duration
            .observe(duration.as_secs_f64() * 1000.0);
    }

    /// Backpressure level, clamped to 0..=1 (e.g. the fill ratio of the outgoing queue).
    pub fn set_backpressure(&self, level: f64) {
        let level = if level.is_nan() {
            0.0
        } else {
            level.clamp(0.0, 1.0)
        };
        self.backpressure.set(level);
    }

    /// How far behind the source's head the reader is.
    pub fn set_source_lag(&self, lag: Duration) {
        self.source_lag.set(lag.as_secs_f64());
    }

    // ----- reading -------------------------------------------------------------------

    /// Recomputes the derived gauges (rates, latency percentiles, CPU, RSS) for `now`.
    /// Called before every scrape; harmless to call more often.
    pub fn refresh(&self) {
        self.refresh_at(Instant::now());
    }

    fn refresh_at(&self, now: Instant) -> Percentiles {
        self.records_in_rate.set(lock(&self.in_window).rate(now));
        self.records_out_rate.set(lock(&self.out_window).rate(now));
        self.collect_rate.set(lock(&self.collect_window).rate(now));
        let percentiles = lock(&self.latency_window).percentiles(now);
        self.latency_p50.set(percentiles.p50);
        self.latency_p99.set(percentiles.p99);
        if let Some(usage) = lock(&self.cpu).sample(now) {
            self.cpu_usage.set(usage);
        }
        if let Some(rss) = process::resident_memory_bytes() {
            self.resident_memory
                .set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
        percentiles
    }

    /// Refreshes and reads every value; the JSON form of `/metrics` and the `metrics` part of
    /// `/health` are this snapshot.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let percentiles = self.refresh_at(Instant::now());
        let mut stages: BTreeMap<String, StageCounts> = BTreeMap::new();
        for (stage, value) in per_stage(&self.records_collected) {
            stages.entry(stage).or_default().collected = value;
        }
        for (stage, value) in per_stage(&self.records_sent) {
            stages.entry(stage).or_default().sent = value;
        }
        for (stage, value) in per_stage(&self.records_failed) {
            stages.entry(stage).or_default().failed = value;
        }
        let sum = |f: fn(&StageCounts) -> u64| stages.values().map(f).sum::<u64>();
        let checkpoint_total = self.checkpoint_total.get();
        let checkpoint_failed = self.checkpoint_failed.get();
        MetricsSnapshot {
            timestamp: crate::health::now_rfc3339(),
            records: RecordsSnapshot {
                r#in: Flow {
                    count: self.records_in.get(),
                    rate: self.records_in_rate.get(),
                },
                out: Flow {
                    count: self.records_out.get(),
                    rate: self.records_out_rate.get(),
                },
                collected: Flow {
                    count: sum(|s| s.collected),
                    rate: self.collect_rate.get(),
                },
                sent: Count {
                    count: sum(|s| s.sent),
                },
                failed: Count {
                    count: sum(|s| s.failed),
                },
                stages,
            },
            latency: LatencySnapshot {
                p50: percentiles.p50,
                p99: percentiles.p99,
                window_samples: percentiles.samples,
                count: self.latency.get_sample_count(),
                sum_ms: self.latency.get_sample_sum(),
                unit: "ms",
            },
            failed: FailedSnapshot {
                records: Count {
                    count: self.dead_lettered.get(),
                },
            },
            checkpoint: CheckpointSnapshot {
                total: checkpoint_total,
                failed: checkpoint_failed,
                completed: checkpoint_total.saturating_sub(checkpoint_failed),
                last_duration_ms: self.checkpoint_last_duration.get(),
                last_size_bytes: u64::try_from(self.checkpoint_last_size.get()).unwrap_or(0),
            },
            backpressure: Level {
                level: self.backpressure.get(),
            },
            cpu: Usage {
                usage: self.cpu_usage.get(),
            },
            memory: Memory {
                rss_bytes: u64::try_from(self.resident_memory.get()).unwrap_or(0),
            },
            source: Source {
                lag_seconds: self.source_lag.get(),
            },
        }
    }
}

/// (stage, count) of every stage a labelled counter has seen.
fn per_stage(counter: &IntCounterVec) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for family in counter.collect() {
        for metric in family.get_metric() {
            let stage = metric
                .get_label()
                .iter()
                .find(|l| l.name() == names::STAGE_LABEL)
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            // Counters hold integral values below 2^53 in practice; the cast is exact.
            out.push((stage, metric.get_counter().get_value() as u64));
        }
    }
    out
}

/// Renders everything in `registry` in the Prometheus text format (version 0.0.4), after
/// refreshing `metrics`' derived gauges.
pub fn render_text(registry: &Registry, metrics: &PipelineMetrics) -> Result<String> {
    metrics.refresh();
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .map_err(TelemetryError::MetricEncoding)?;
    String::from_utf8(buffer).map_err(|e| {
        TelemetryError::MetricEncoding(prometheus::Error::Msg(format!("not UTF-8: {e}")))
    })
}

/// Content type of [`render_text`]'s output.
pub const TEXT_CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Every value of [`PipelineMetrics`] at one instant, shaped so the guide's jq paths work:
/// `.records.in.rate`, `.records.out.rate`, `.latency.p50`, `.latency.p99`,
/// `.failed.records.count`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// RFC 3339, UTC, seconds precision.
    pub timestamp: String,
    pub records: RecordsSnapshot,
    pub latency: LatencySnapshot,
    /// Dead-letter queue: `.failed.records.count`.
    pub failed: FailedSnapshot,
    pub checkpoint: CheckpointSnapshot,
    pub backpressure: Level,
    pub cpu: Usage,
    pub memory: Memory,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordsSnapshot {
    pub r#in: Flow,
    pub out: Flow,
    /// Summed over stages.
    pub collected: Flow,
    /// Summed over stages.
    pub sent: Count,
    /// Summed over stages.
    pub failed: Count,
    pub stages: BTreeMap<String, StageCounts>,
}

/// A count and its rate per second over the rate window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flow {
    pub count: u64,
    pub rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count {
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StageCounts {
    pub collected: u64,
    pub sent: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySnapshot {
    pub p50: f64,
    pub p99: f64,
    /// Samples in the percentile window.
    pub window_samples: usize,
    /// Observations since start (histogram count).
    pub count: u64,
    pub sum_ms: f64,
    pub unit: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FailedSnapshot {
    pub records: Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointSnapshot {
    pub total: u64,
    pub failed: u64,
    pub completed: u64,
    pub last_duration_ms: f64,
    pub last_size_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Level {
    pub level: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    pub usage: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub lag_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_all_names_once() {
        let registry = Registry::new();
        let metrics = PipelineMetrics::new(&registry).unwrap();
        metrics.add_collected("capture", 1); // vectors appear once they have a child
        metrics.add_sent("capture", 1);
        metrics.add_failed("capture", 1);
        let families: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(families.len(), 21, "{families:?}");
        // A second set on the same registry is a clean error naming the metric.
        let err = PipelineMetrics::new(&registry).unwrap_err();
        assert!(
            matches!(err, TelemetryError::MetricRegistration { .. }),
            "{err}"
        );
        // Separate registries do not interfere.
        assert!(PipelineMetrics::new(&Registry::new()).is_ok());
    }

    #[test]
    fn snapshot_sums_stages_and_counts_checkpoints() {
        let metrics = PipelineMetrics::new(&Registry::new()).unwrap();
        metrics.add_collected("capture", 10);
        metrics.add_collected("transform", 5);
        metrics.add_sent("capture", 9);
        metrics.add_failed("transform", 2);
        metrics.add_dead_lettered(2);
        metrics.add_in(10);
        metrics.add_out(7);
        metrics.checkpoint_completed(Duration::from_millis(120), 4096);
        metrics.checkpoint_failed(Duration::from_millis(30_000));
        metrics.set_backpressure(7.0);
        for ms in [10.0, 20.0, 30.0] {
            metrics.observe_latency_ms(ms);
        }
        let s = metrics.snapshot();
        assert_eq!(s.records.collected.count, 15);
        assert_eq!(s.records.sent.count, 9);
        assert_eq!(s.records.failed.count, 2);
        assert_eq!(
            s.records.stages["transform"],
            StageCounts {
                collected: 5,
                sent: 0,
                failed: 2
            }
        );
        assert_eq!((s.records.r#in.count, s.records.out.count), (10, 7));
        assert!(s.records.r#in.rate > 0.0);
        assert_eq!(s.failed.records.count, 2);
        assert_eq!(
            (
                s.checkpoint.total,
                s.checkpoint.failed,
                s.checkpoint.completed
            ),
            (2, 1, 1)
        );
        assert_eq!(s.checkpoint.last_size_bytes, 4096);
        assert_eq!(s.backpressure.level, 1.0);
        assert_eq!(
            (s.latency.p50, s.latency.p99, s.latency.count),
            (20.0, 30.0, 3)
        );

        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["records"]["in"]["count"], 10);
        assert_eq!(json["latency"]["p99"], 30.0);
        assert_eq!(json["failed"]["records"]["count"], 2);
        assert_eq!(json["checkpoint"]["lastSizeBytes"], 4096);
    }
}

/// The end-to-end latency of the guide — source commit → the row's file committed — for a
/// sink: the source commit times of rows written since the last commit, observed when their
/// files commit. A checkpoint that fails to save commits nothing, so its rows stay pending.
#[derive(Debug, Default)]
pub struct CommitLatency {
    /// Source commit times (ms since the epoch) of rows written and not committed yet.
    pending: Vec<i64>,
}

impl CommitLatency {
    /// A row with this source commit time was written.
    pub fn written(&mut self, commit_ts_ms: i64) {
        self.pending.push(commit_ts_ms);
    }

    /// The files of every row written so far are committed: observe their latencies.
    pub fn committed(&mut self, metrics: &PipelineMetrics) {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        metrics.observe_latencies_ms(self.pending.drain(..).map(|ts| (now_ms - ts) as f64));
    }
}
