//! Sliding windows behind the computed metrics (rates and latency percentiles).
//!
//! Both take `now` as a parameter so they are tested with made-up instants, without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Events per second over the last `window`, kept in one-second buckets.
///
/// Memory is fixed (one bucket per second of window) whatever the throughput, and adding is a
/// couple of arithmetic operations, so it can sit on the hot path behind a mutex.
#[derive(Debug)]
pub(crate) struct RateWindow {
    origin: Instant,
    buckets: Box<[Bucket]>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Whole seconds since `origin` this bucket counts; `u64::MAX` when never used.
    second: u64,
    count: u64,
}

impl RateWindow {
    /// A window of `window` (rounded down to whole seconds, at least one) starting at `origin`.
    pub(crate) fn new(window: Duration, origin: Instant) -> Self {
        let seconds = window.as_secs().max(1) as usize;
        let empty = Bucket {
            second: u64::MAX,
            count: 0,
        };
        Self {
            origin,
            buckets: vec![empty; seconds].into_boxed_slice(),
        }
    }

    pub(crate) fn add(&mut self, n: u64, now: Instant) {
        let second = now.saturating_duration_since(self.origin).as_secs();
        let len = self.buckets.len() as u64;
        let bucket = &mut self.buckets[(second % len) as usize];
        if bucket.second != second {
            // The slot last counted a second that has left the window: reuse it.
            *bucket = Bucket { second, count: 0 };
        }
        bucket.count = bucket.count.saturating_add(n);
    }

    /// Events per second over the part of the window that has elapsed.
    ///
    /// The divisor is never below one second, so a burst right after start-up reads as
    /// "N per second" rather than an absurd figure divided by a few microseconds.
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.origin);
        let current = elapsed.as_secs();
        let len = self.buckets.len() as u64;
        let total: u64 = self
            .buckets
            .iter()
            .filter(|b| b.second <= current && current - b.second < len)
            .map(|b| b.count)
            .sum();
        // The window spans the `len - 1` whole seconds before the current one plus the part of
        // the current second already elapsed — or less, shortly after start.
        let fraction = elapsed.as_secs_f64() - current as f64;
        let span = elapsed.as_secs_f64().min((len - 1) as f64 + fraction);
        total as f64 / span.max(1.0)
    }
}

/// Recent latency samples, bounded both in age and in count, for percentile gauges.
#[derive(Debug)]
pub(crate) struct LatencyWindow {
    max_age: Duration,
    capacity: usize,
    samples: VecDeque<(Instant, f64)>,
}

/// Percentiles of the samples currently in the window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    /// How many samples the percentiles were computed from (0 → both are 0).
    pub(crate) samples: usize,
}

impl LatencyWindow {
    pub(crate) fn new(max_age: Duration, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            max_age,
            capacity,
            samples: VecDeque::with_capacity(capacity.min(1024)),
        }
    }

    pub(crate) fn record(&mut self, value: f64, now: Instant) {
        if !value.is_finite() {
            return; // A NaN would poison the sort order; an infinite latency is a bug upstream.
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back((now, value));
    }

    /// Drops samples older than the window, then returns the nearest-rank p50 and p99.
    pub(crate) fn percentiles(&mut self, now: Instant) -> Percentiles {
        while let Some(&(at, _)) = self.samples.front() {
            if now.saturating_duration_since(at) > self.max_age {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        if self.samples.is_empty() {
            return Percentiles::default();
        }
        let mut values: Vec<f64> = self.samples.iter().map(|&(_, v)| v).collect();
        values.sort_unstable_by(f64::total_cmp);
        Percentiles {
            p50: nearest_rank(&values, 0.50),
            p99: nearest_rank(&values, 0.99),
            samples: values.len(),
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty `values`.
fn nearest_rank(values: &[f64], quantile: f64) -> f64 {
    let rank = (quantile * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn rate_counts_only_the_window() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(Duration::from_secs(10), t0);
        assert_eq!(w.rate(t0), 0.0);
        // A burst right at start is reported per (at least) one second.
        w.add(50, t0);
        assert_eq!(w.rate(t0), 50.0);
        // A steady 100 records per second (10 every 100 ms) for 20 seconds.
        for tick in 1..=200u32 {
            w.add(10, t0 + tick * Duration::from_millis(100));
        }
        let r = w.rate(t0 + Duration::from_millis(20_050));
        // The burst has left the window; the steady flow reads as ~100/s (bucket edges make
        // it inexact by up to one bucket's worth over the span).
        assert!((r - 100.0).abs() < 2.0, "rate {r}");
        // Nothing more for 20 seconds → the window empties.
        assert_eq!(w.rate(t0 + 40 * S), 0.0);
    }

    #[test]
    fn rate_during_warm_up_divides_by_elapsed() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(Duration::from_secs(60), t0);
        w.add(30, t0 + Duration::from_millis(500));
        w.add(30, t0 + Duration::from_millis(2500));
        let r = w.rate(t0 + Duration::from_secs(3));
        assert!((r - 20.0).abs() < 1e-9, "rate {r}");
    }

    #[test]
    fn percentiles_nearest_rank_and_expiry() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(Duration::from_secs(60), 1000);
        assert_eq!(w.percentiles(t0), Percentiles::default());
        for v in 1..=100 {
            w.record(v as f64, t0);
        }
        w.record(f64::NAN, t0);
        let p = w.percentiles(t0 + S);
        assert_eq!((p.p50, p.p99, p.samples), (50.0, 99.0, 100));
        // Newer, slower samples; the old ones expire.
        w.record(5000.0, t0 + 61 * S);
        let p = w.percentiles(t0 + 61 * S);
        assert_eq!((p.p50, p.p99, p.samples), (5000.0, 5000.0, 1));
    }

    #[test]
    fn percentiles_bounded_by_capacity() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(Duration::from_secs(60), 10);
        for v in 1..=20 {
            w.record(v as f64, t0);
        }
        let p = w.percentiles(t0);
        assert_eq!((p.p50, p.p99, p.samples), (15.0, 20.0, 10));
    }
}
