//! In-process evaluation of the deployment guide's five alerts ("监控和运维 → 告警配置"),
//! with the semantics of the Prometheus rules in `deploy/prometheus/alerts.yml`:
//!
//! | alert | condition | `for` |
//! |---|---|---|
//! | `HighDataLatency` (critical) | `flink_latency_p99` > `ALERT_LATENCY_THRESHOLD` ms | 5 min |
//! | `HighCheckpointFailureRate` | failed / attempted checkpoints over the last 5 min > `ALERT_CHECKPOINT_FAILURE_RATE` | 5 min |
//! | `HighCPUUsage` (the guide's "load") | `flink_taskmanager_cpu_usage` > `ALERT_LOAD_THRESHOLD` | 10 min |
//! | `HighBackpressure` | `flink_backpressure_level` > 0.8 | 5 min |
//! | `DeadLetterQueueGrowing` | `failed_records_count` grew in the last 15 min | none |
//!
//! "Load" is the process's CPU time per wall-clock second as a fraction of the cores it may
//! use (cgroup quota honoured), i.e. exactly the `flink_taskmanager_cpu_usage` gauge the
//! Prometheus rule reads, so both sides agree on when the alert holds. Unlike the rule, whose
//! threshold is written in the file (0.8), the in-process one reads `ALERT_LOAD_THRESHOLD`.
//!
//! The evaluator is pure: it is fed an [`AlertSample`] and the current instant and returns the
//! state changes, so every rule is tested without waiting. As in Prometheus, a rule whose
//! condition holds becomes *pending*; it *fires* once the condition has held for the rule's
//! `for` duration (a single spike does not fire), and a firing alert *resolves* on the first
//! evaluation where the condition no longer holds. A pending alert whose condition ends goes
//! back to inactive without ever notifying anyone. No data (no latency samples, no checkpoint
//! attempted in the window) means the condition does not hold.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::metrics::MetricsSnapshot;

/// The five alerts, named like the rules in `deploy/prometheus/alerts.yml` so that alerts
/// sent from here and from Prometheus land in the same Alertmanager groups (grouped by
/// `alertname`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertName {
    HighDataLatency,
    HighCheckpointFailureRate,
    HighCpuUsage,
    HighBackpressure,
    DeadLetterQueueGrowing,
}

impl AlertName {
    /// Every alert, in the guide's order.
    pub const ALL: [AlertName; 5] = [
        AlertName::HighDataLatency,
        AlertName::HighCheckpointFailureRate,
        AlertName::HighCpuUsage,
        AlertName::HighBackpressure,
        AlertName::DeadLetterQueueGrowing,
    ];

    /// The `alertname` label, spelled as in the Prometheus rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HighDataLatency => "HighDataLatency",
            Self::HighCheckpointFailureRate => "HighCheckpointFailureRate",
            Self::HighCpuUsage => "HighCPUUsage",
            Self::HighBackpressure => "HighBackpressure",
            Self::DeadLetterQueueGrowing => "DeadLetterQueueGrowing",
        }
    }

    /// The rule's `severity` label.
    pub fn severity(self) -> Severity {
        match self {
            Self::HighDataLatency => Severity::Critical,
            _ => Severity::Warning,
        }
    }

    /// The rule's `summary` annotation (the guide's wording).
    pub fn summary(self) -> &'static str {
        match self {
            Self::HighDataLatency => "数据处理延迟过高",
            Self::HighCheckpointFailureRate => "Checkpoint失败率过高",
            Self::HighCpuUsage => "TaskManager CPU使用率过高",
            Self::HighBackpressure => "系统反压严重",
            Self::DeadLetterQueueGrowing => "死信队列持续增长",
        }
    }

    /// The rule's `description` annotation for `value` against `threshold`, worded like the
    /// Prometheus rule's (without its `job`/`instance` prefix: those are labels here).
    pub fn describe(self, value: f64, threshold: f64) -> String {
        match self {
            Self::HighDataLatency => {
                format!("P99延迟 {value:.0}ms 超过{threshold:.0}ms阈值")
            }
            Self::HighCheckpointFailureRate => {
                format!("失败率 {:.1}% 超过{:.1}%", value * 100.0, threshold * 100.0)
            }
            Self::HighCpuUsage => format!(
                "CPU使用率 {:.1}% 超过{:.1}%",
                value * 100.0,
                threshold * 100.0
            ),
            Self::HighBackpressure => format!("反压级别 {value:.2} 超过{threshold}"),
            Self::DeadLetterQueueGrowing => {
                format!("窗口内新增死信记录 {value:.0} 条")
            }
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AlertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `severity` label of the rules; Alertmanager routes on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
        }
    }
}

/// Where an alert stands, as in Prometheus' `ALERTS{alertstate=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    /// The condition holds but not yet for the rule's `for` duration.
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Pending => "pending",
            Self::Firing => "firing",
        }
    }
}

/// Thresholds, `for` durations and windows of the five rules. The defaults are the guide's.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    latency_threshold_ms: f64,
    checkpoint_failure_rate: f64,
    load_threshold: f64,
    backpressure_threshold: f64,
    checkpoint_window: Duration,
    dead_letter_window: Duration,
    hold: [Duration; 5],
}

impl Default for AlertRules {
    fn default() -> Self {
        const MINUTE: Duration = Duration::from_secs(60);
        Self {
            latency_threshold_ms: 60_000.0,
            checkpoint_failure_rate: 0.1,
            load_threshold: 0.8,
            backpressure_threshold: 0.8,
            // `rate(...[5m])` and `increase(...[15m])` of the rules.
            checkpoint_window: 5 * MINUTE,
            dead_letter_window: 15 * MINUTE,
            // Indexed by `AlertName`: the rules' `for:`.
            hold: [
                5 * MINUTE,
                5 * MINUTE,
                10 * MINUTE,
                5 * MINUTE,
                Duration::ZERO,
            ],
        }
    }
}

impl AlertRules {
    /// `ALERT_LATENCY_THRESHOLD`: p99 end-to-end latency, in ms.
    pub fn with_latency_threshold_ms(mut self, ms: f64) -> Self {
        self.latency_threshold_ms = ms;
        self
    }

    /// `ALERT_CHECKPOINT_FAILURE_RATE`: failed / attempted checkpoints, 0..=1.
    pub fn with_checkpoint_failure_rate(mut self, rate: f64) -> Self {
        self.checkpoint_failure_rate = rate;
        self
    }

    /// `ALERT_LOAD_THRESHOLD`: CPU fraction of the usable cores, 0..=1.
    pub fn with_load_threshold(mut self, load: f64) -> Self {
        self.load_threshold = load;
        self
    }

    /// Backpressure level, 0..=1 (the guide fixes 0.8).
    pub fn with_backpressure_threshold(mut self, level: f64) -> Self {
        self.backpressure_threshold = level;
        self
    }

    /// How far back the checkpoint failure rate looks (default 5 min).
    pub fn with_checkpoint_window(mut self, window: Duration) -> Self {
        self.checkpoint_window = window;
        self
    }

    /// How far back dead-letter growth is looked for (default 15 min).
    pub fn with_dead_letter_window(mut self, window: Duration) -> Self {
        self.dead_letter_window = window;
        self
    }

    /// The `for` duration of one alert.
    pub fn with_for(mut self, alert: AlertName, hold: Duration) -> Self {
        self.hold[alert.index()] = hold;
        self
    }

    /// The same `for` duration for every alert (tests use a short one).
    pub fn with_for_all(mut self, hold: Duration) -> Self {
        self.hold = [hold; 5];
        self
    }

    /// The `for` duration of `alert`.
    pub fn hold(&self, alert: AlertName) -> Duration {
        self.hold[alert.index()]
    }

    /// The value `alert`'s condition compares against.
    pub fn threshold(&self, alert: AlertName) -> f64 {
        match alert {
            AlertName::HighDataLatency => self.latency_threshold_ms,
            AlertName::HighCheckpointFailureRate => self.checkpoint_failure_rate,
            AlertName::HighCpuUsage => self.load_threshold,
            AlertName::HighBackpressure => self.backpressure_threshold,
            AlertName::DeadLetterQueueGrowing => 0.0,
        }
    }

    fn longest_window(&self) -> Duration {
        self.checkpoint_window.max(self.dead_letter_window)
    }
}

/// The figures the rules read, taken from [`PipelineMetrics`](crate::PipelineMetrics) at one
/// evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AlertSample {
    /// `flink_latency_p99` (0 when no latency was recorded in the latency window).
    pub latency_p99_ms: f64,
    /// `flink_checkpoint_total` (attempts, failed ones included).
    pub checkpoints_total: u64,
    /// `flink_checkpoint_failed`.
    pub checkpoints_failed: u64,
    /// `flink_taskmanager_cpu_usage`, 0..=1.
    pub load: f64,
    /// `flink_backpressure_level`, 0..=1.
    pub backpressure: f64,
    /// `failed_records_count`.
    pub dead_lettered: u64,
}

impl From<&MetricsSnapshot> for AlertSample {
    fn from(s: &MetricsSnapshot) -> Self {
        Self {
            latency_p99_ms: s.latency.p99,
            checkpoints_total: s.checkpoint.total,
            checkpoints_failed: s.checkpoint.failed,
            load: s.cpu.usage,
            backpressure: s.backpressure.level,
            dead_lettered: s.failed.records.count,
        }
    }
}

/// A state change of one alert at one evaluation. Firing → inactive is a resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub alert: AlertName,
    pub from: AlertState,
    pub to: AlertState,
    /// The rule's value at this evaluation (`None`: no data).
    pub value: Option<f64>,
    /// The rule's value at the last evaluation where the condition held: what a resolution
    /// reports as the value that made the alert fire.
    pub held_value: f64,
    /// When the condition started to hold (the alert's `startsAt`).
    pub active_at: DateTime<Utc>,
    /// This evaluation's time (`endsAt` of a resolution).
    pub at: DateTime<Utc>,
}

impl Transition {
    /// A firing alert stopped firing.
    pub fn is_resolution(&self) -> bool {
        self.from == AlertState::Firing && self.to == AlertState::Inactive
    }

    /// The alert started firing.
    pub fn is_firing(&self) -> bool {
        self.from != AlertState::Firing && self.to == AlertState::Firing
    }
}

/// A pending or firing alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    #[serde(serialize_with = "serialize_name")]
    pub name: AlertName,
    #[serde(serialize_with = "serialize_severity")]
    pub severity: Severity,
    pub state: AlertState,
    /// The rule's value at the last evaluation where the condition held.
    pub value: f64,
    pub threshold: f64,
    /// When the condition started to hold (RFC 3339).
    #[serde(serialize_with = "serialize_time")]
    pub active_at: DateTime<Utc>,
    pub summary: &'static str,
    pub description: String,
}

fn serialize_name<S: serde::Serializer>(name: &AlertName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name.as_str())
}

fn serialize_severity<S: serde::Serializer>(sev: &Severity, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(sev.as_str())
}

pub(crate) fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn serialize_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(t))
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Inactive,
    Pending {
        since: Instant,
        since_wall: DateTime<Utc>,
    },
    Firing {
        since_wall: DateTime<Utc>,
    },
}

impl Phase {
    fn state(&self) -> AlertState {
        match self {
            Phase::Inactive => AlertState::Inactive,
            Phase::Pending { .. } => AlertState::Pending,
            Phase::Firing { .. } => AlertState::Firing,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct RuleState {
    phase: Phase,
    value: f64,
}

/// Counter readings kept for the windowed rules (checkpoint failure rate, dead-letter growth).
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    checkpoints_total: u64,
    checkpoints_failed: u64,
    dead_lettered: u64,
}

/// Evaluates the five rules against successive samples. Pure: no clock, no I/O.
#[derive(Debug)]
pub struct AlertEvaluator {
    rules: AlertRules,
    states: [RuleState; 5],
    history: VecDeque<Counters>,
}

impl AlertEvaluator {
    pub fn new(rules: AlertRules) -> Self {
        let inactive = RuleState {
            phase: Phase::Inactive,
            value: 0.0,
        };
        Self {
            rules,
            states: [inactive; 5],
            history: VecDeque::new(),
        }
    }

    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    /// One evaluation of every rule at `now` (`wall` is the same instant on the wall clock, for
    /// the timestamps sent to Alertmanager). Returns the alerts whose state changed.
    pub fn evaluate(
        &mut self,
        sample: &AlertSample,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<Transition> {
        self.remember(sample, now);
        let mut transitions = Vec::new();
        for alert in AlertName::ALL {
            let value = self.value(alert, sample, now);
            let holds = value.is_some_and(|v| v > self.rules.threshold(alert));
            let hold = self.rules.hold(alert);
            let state = &mut self.states[alert.index()];
            let before = state.phase;
            state.phase = match (before, holds) {
                (Phase::Inactive, true) if hold.is_zero() => Phase::Firing { since_wall: wall },
                (Phase::Inactive, true) => Phase::Pending {
                    since: now,
                    since_wall: wall,
                },
                (Phase::Pending { since, since_wall }, true) => {
                    if now.saturating_duration_since(since) >= hold {
                        Phase::Firing { since_wall }
                    } else {
                        before
                    }
                }
                (Phase::Firing { .. }, true) => before,
                (_, false) => Phase::Inactive,
            };
            if holds {
                // Kept from the last evaluation where the condition held, so a resolution
                // still reports the value that made the alert fire.
                state.value = value.unwrap_or(0.0);
            }
            if before.state() != state.phase.state() {
                let active_at = match (state.phase, before) {
                    (Phase::Pending { since_wall, .. } | Phase::Firing { since_wall }, _)
                    | (_, Phase::Pending { since_wall, .. } | Phase::Firing { since_wall }) => {
                        since_wall
                    }
                    _ => wall,
                };
                transitions.push(Transition {
                    alert,
                    from: before.state(),
                    to: state.phase.state(),
                    value,
                    held_value: state.value,
                    active_at,
                    at: wall,
                });
            }
        }
        transitions
    }

    /// Pending and firing alerts, in the guide's order.
    pub fn active(&self) -> Vec<ActiveAlert> {
        AlertName::ALL
            .into_iter()
            .filter_map(|alert| {
                let state = &self.states[alert.index()];
                let active_at = match state.phase {
                    Phase::Inactive => return None,
                    Phase::Pending { since_wall, .. } | Phase::Firing { since_wall } => since_wall,
                };
                let threshold = self.rules.threshold(alert);
                Some(ActiveAlert {
                    name: alert,
                    severity: alert.severity(),
                    state: state.phase.state(),
                    value: state.value,
                    threshold,
                    active_at,
                    summary: alert.summary(),
                    description: alert.describe(state.value, threshold),
                })
            })
            .collect()
    }

    /// The state of one alert.
    pub fn state(&self, alert: AlertName) -> AlertState {
        self.states[alert.index()].phase.state()
    }

    fn remember(&mut self, sample: &AlertSample, now: Instant) {
        self.history.push_back(Counters {
            at: now,
            checkpoints_total: sample.checkpoints_total,
            checkpoints_failed: sample.checkpoints_failed,
            dead_lettered: sample.dead_lettered,
        });
        // Readings older than the longest window are never looked at again.
        let longest = self.rules.longest_window();
        while self
            .history
            .front()
            .is_some_and(|c| now.saturating_duration_since(c.at) > longest)
        {
            self.history.pop_front();
        }
    }

    /// The oldest reading inside `window` (like a PromQL range, which only sees samples within
    /// it). The current reading is always inside, so this is `None` only before any sample.
    fn baseline(&self, window: Duration, now: Instant) -> Option<&Counters> {
        self.history
            .iter()
            .find(|c| now.saturating_duration_since(c.at) <= window)
    }

    fn value(&self, alert: AlertName, sample: &AlertSample, now: Instant) -> Option<f64> {
        match alert {
            AlertName::HighDataLatency => Some(sample.latency_p99_ms),
            AlertName::HighCheckpointFailureRate => {
                let base = self.baseline(self.rules.checkpoint_window, now)?;
                let attempts = sample
                    .checkpoints_total
                    .saturating_sub(base.checkpoints_total);
                let failed = sample
                    .checkpoints_failed
                    .saturating_sub(base.checkpoints_failed);
                // No attempt in the window: the rule's 0/0 is NaN, which never alerts.
                (attempts > 0).then(|| failed as f64 / attempts as f64)
            }
            AlertName::HighCpuUsage => Some(sample.load),
            AlertName::HighBackpressure => Some(sample.backpressure),
            AlertName::DeadLetterQueueGrowing => {
                let base = self.baseline(self.rules.dead_letter_window, now)?;
                Some(sample.dead_lettered.saturating_sub(base.dead_lettered) as f64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    /// Drives an evaluator on a made-up clock.
    struct Clock {
        evaluator: AlertEvaluator,
        t0: Instant,
        wall0: DateTime<Utc>,
        now: Duration,
    }

    impl Clock {
        fn new(rules: AlertRules) -> Self {
            Self {
                evaluator: AlertEvaluator::new(rules),
                t0: Instant::now(),
                wall0: Utc::now(),
                now: Duration::ZERO,
            }
        }

        /// Advances the clock by `step` and evaluates `sample`.
        fn eval(&mut self, step: Duration, sample: &AlertSample) -> Vec<Transition> {
            self.now += step;
            let wall = self.wall0 + chrono::Duration::from_std(self.now).unwrap();
            self.evaluator.evaluate(sample, self.t0 + self.now, wall)
        }

        fn state(&self, alert: AlertName) -> AlertState {
            self.evaluator.state(alert)
        }

        /// Every alert other than `alert` is inactive.
        fn only(&self, alert: AlertName) {
            for other in AlertName::ALL.into_iter().filter(|a| *a != alert) {
                assert_eq!(self.state(other), AlertState::Inactive, "{other}");
            }
        }
    }

    fn changes(transitions: &[Transition]) -> Vec<(AlertName, AlertState, AlertState)> {
        transitions
            .iter()
            .map(|t| (t.alert, t.from, t.to))
            .collect()
    }

    use AlertState::{Firing, Inactive, Pending};

    #[test]
    fn high_latency_pends_fires_and_resolves() {
        let rules = AlertRules::default().with_latency_threshold_ms(30_000.0);
        let mut c = Clock::new(rules);
        let quiet = AlertSample {
            latency_p99_ms: 500.0,
            ..Default::default()
        };
        let slow = AlertSample {
            latency_p99_ms: 45_000.0,
            ..quiet
        };
        assert!(c.eval(S, &quiet).is_empty());
        let t = c.eval(30 * S, &slow);
        assert_eq!(
            changes(&t),
            [(AlertName::HighDataLatency, Inactive, Pending)]
        );
        let started = t[0].active_at;
        // Still pending just short of the guide's `for: 5m`.
        assert!(c.eval(299 * S, &slow).is_empty());
        assert_eq!(c.state(AlertName::HighDataLatency), Pending);
        let t = c.eval(S, &slow);
        assert_eq!(changes(&t), [(AlertName::HighDataLatency, Pending, Firing)]);
        assert!(t[0].is_firing());
        assert_eq!(
            t[0].active_at, started,
            "startsAt is when it became pending"
        );
        c.only(AlertName::HighDataLatency);

        let active = c.evaluator.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].value, 45_000.0);
        assert_eq!(active[0].severity, Severity::Critical);
        assert!(active[0].description.contains("45000ms"), "{active:?}");
        assert!(active[0].description.contains("30000ms"), "{active:?}");

        let t = c.eval(30 * S, &quiet);
        assert_eq!(
            changes(&t),
            [(AlertName::HighDataLatency, Firing, Inactive)]
        );
        assert!(t[0].is_resolution());
        assert_eq!(t[0].active_at, started);
        assert!(t[0].at > started);
        assert!(c.evaluator.active().is_empty());
    }

    #[test]
    fn a_spike_shorter_than_for_never_fires() {
        let mut c = Clock::new(AlertRules::default());
        let slow = AlertSample {
            latency_p99_ms: 90_000.0,
            ..Default::default()
        };
        assert_eq!(
            changes(&c.eval(S, &slow)),
            [(AlertName::HighDataLatency, Inactive, Pending)]
        );
        let t = c.eval(4 * 60 * S, &AlertSample::default());
        assert_eq!(
            changes(&t),
            [(AlertName::HighDataLatency, Pending, Inactive)]
        );
        assert!(!t[0].is_resolution(), "it never fired, so nothing resolves");
        // The next spike starts its own `for` from scratch.
        c.eval(S, &slow);
        assert!(c.eval(4 * 60 * S, &slow).is_empty());
        assert_eq!(c.state(AlertName::HighDataLatency), Pending);
        // Exactly at the threshold is not above it.
        let at_threshold = AlertSample {
            latency_p99_ms: 60_000.0,
            ..Default::default()
        };
        c.eval(S, &at_threshold);
        assert_eq!(c.state(AlertName::HighDataLatency), Inactive);
    }

    #[test]
    fn checkpoint_failure_rate_over_the_window() {
        let rules = AlertRules::default()
            .with_checkpoint_failure_rate(0.1)
            .with_checkpoint_window(10 * S)
            .with_for(AlertName::HighCheckpointFailureRate, 3 * S);
        let mut c = Clock::new(rules);
        let at = |total, failed| AlertSample {
            checkpoints_total: total,
            checkpoints_failed: failed,
            ..Default::default()
        };
        // Old failures before evaluation started do not count: only increases do.
        assert!(c.eval(S, &at(10, 5)).is_empty());
        // 10 successful attempts: rate 0.
        assert!(c.eval(S, &at(20, 5)).is_empty());
        // 1 failure out of 10 more: 1/20 in the window, not above 0.1.
        assert!(c.eval(S, &at(30, 6)).is_empty());
        // 4 failures in 5 attempts: 5/25 = 0.2.
        let t = c.eval(S, &at(35, 10));
        assert_eq!(
            changes(&t),
            [(AlertName::HighCheckpointFailureRate, Inactive, Pending)]
        );
        assert_eq!(t[0].value, Some(0.2));
        assert!(c.eval(2 * S, &at(35, 10)).is_empty());
        let t = c.eval(S, &at(36, 11));
        assert_eq!(
            changes(&t),
            [(AlertName::HighCheckpointFailureRate, Pending, Firing)]
        );
        c.only(AlertName::HighCheckpointFailureRate);
        // No more attempts: once the failures leave the 10 s window there is no attempt in
        // it at all (0/0), and the alert resolves.
        let mut resolved = None;
        for _ in 0..12 {
            let t = c.eval(S, &at(36, 11));
            if !t.is_empty() {
                resolved = Some(t);
                break;
            }
        }
        let t = resolved.expect("resolves once the window holds no failure");
        assert_eq!(
            changes(&t),
            [(AlertName::HighCheckpointFailureRate, Firing, Inactive)]
        );
        assert_eq!(t[0].value, None);
    }

    #[test]
    fn checkpoint_successes_dilute_the_rate() {
        let rules = AlertRules::default()
            .with_checkpoint_window(60 * S)
            .with_for_all(Duration::ZERO);
        let mut c = Clock::new(rules);
        let at = |total, failed| AlertSample {
            checkpoints_total: total,
            checkpoints_failed: failed,
            ..Default::default()
        };
        c.eval(S, &at(0, 0));
        c.eval(S, &at(2, 1));
        assert_eq!(c.state(AlertName::HighCheckpointFailureRate), Firing);
        // 1 failure in 20 attempts: 0.05, under 0.1.
        let t = c.eval(S, &at(20, 1));
        assert!(t[0].is_resolution(), "{t:?}");
    }

    #[test]
    fn high_load_pends_fires_and_resolves() {
        let rules = AlertRules::default().with_load_threshold(0.7);
        let mut c = Clock::new(rules);
        let busy = AlertSample {
            load: 0.95,
            ..Default::default()
        };
        let t = c.eval(S, &busy);
        assert_eq!(changes(&t), [(AlertName::HighCpuUsage, Inactive, Pending)]);
        // `for: 10m` for this one.
        assert!(c.eval(9 * 60 * S, &busy).is_empty());
        let t = c.eval(60 * S, &busy);
        assert_eq!(changes(&t), [(AlertName::HighCpuUsage, Pending, Firing)]);
        assert_eq!(AlertName::HighCpuUsage.as_str(), "HighCPUUsage");
        c.only(AlertName::HighCpuUsage);
        let t = c.eval(S, &AlertSample { load: 0.5, ..busy });
        assert_eq!(changes(&t), [(AlertName::HighCpuUsage, Firing, Inactive)]);
    }

    #[test]
    fn high_backpressure_pends_fires_and_resolves() {
        let mut c = Clock::new(AlertRules::default());
        let blocked = AlertSample {
            backpressure: 0.9,
            ..Default::default()
        };
        let t = c.eval(S, &blocked);
        assert_eq!(
            changes(&t),
            [(AlertName::HighBackpressure, Inactive, Pending)]
        );
        assert!(c.eval(5 * 60 * S - MS, &blocked).is_empty());
        let t = c.eval(MS, &blocked);
        assert_eq!(
            changes(&t),
            [(AlertName::HighBackpressure, Pending, Firing)]
        );
        c.only(AlertName::HighBackpressure);
        let active = c.evaluator.active();
        assert_eq!(active[0].state, Firing);
        assert!(active[0].description.contains("0.90"), "{active:?}");
        let t = c.eval(S, &AlertSample::default());
        assert_eq!(
            changes(&t),
            [(AlertName::HighBackpressure, Firing, Inactive)]
        );
    }

    #[test]
    fn dead_letter_growth_fires_at_once_and_resolves_after_the_window() {
        let rules = AlertRules::default().with_dead_letter_window(15 * 60 * S);
        let mut c = Clock::new(rules);
        let dlq = |n| AlertSample {
            dead_lettered: n,
            ..Default::default()
        };
        // Records dead-lettered before the first evaluation are not growth seen here.
        assert!(c.eval(S, &dlq(7)).is_empty());
        assert!(c.eval(30 * S, &dlq(7)).is_empty());
        // No `for` on this rule: growth fires at the first evaluation that sees it. The
        // generic path (pending first) applies when a `for` is configured, tested below.
        let t = c.eval(30 * S, &dlq(10));
        assert_eq!(
            changes(&t),
            [(AlertName::DeadLetterQueueGrowing, Inactive, Firing)]
        );
        assert_eq!(t[0].value, Some(3.0));
        c.only(AlertName::DeadLetterQueueGrowing);
        // Still firing while the growth is inside the 15-minute window...
        assert!(c.eval(14 * 60 * S, &dlq(10)).is_empty());
        // ...resolved once it has left it.
        let t = c.eval(60 * S, &dlq(10));
        assert_eq!(
            changes(&t),
            [(AlertName::DeadLetterQueueGrowing, Firing, Inactive)]
        );
        assert_eq!(t[0].value, Some(0.0));
    }

    #[test]
    fn dead_letter_growth_with_a_for_goes_through_pending() {
        let rules = AlertRules::default()
            .with_dead_letter_window(10 * S)
            .with_for(AlertName::DeadLetterQueueGrowing, 2 * S);
        let mut c = Clock::new(rules);
        let dlq = |n| AlertSample {
            dead_lettered: n,
            ..Default::default()
        };
        c.eval(S, &dlq(0));
        assert_eq!(
            changes(&c.eval(S, &dlq(1))),
            [(AlertName::DeadLetterQueueGrowing, Inactive, Pending)]
        );
        assert_eq!(
            changes(&c.eval(2 * S, &dlq(2))),
            [(AlertName::DeadLetterQueueGrowing, Pending, Firing)]
        );
        // Keeps growing: stays firing.
        assert!(c.eval(5 * S, &dlq(5)).is_empty());
        let mut t = Vec::new();
        for _ in 0..12 {
            t = c.eval(S, &dlq(5));
            if !t.is_empty() {
                break;
            }
        }
        assert_eq!(
            changes(&t),
            [(AlertName::DeadLetterQueueGrowing, Firing, Inactive)]
        );
    }

    #[test]
    fn several_alerts_are_independent() {
        let mut c = Clock::new(AlertRules::default().with_for_all(Duration::ZERO));
        let bad = AlertSample {
            latency_p99_ms: 70_000.0,
            backpressure: 1.0,
            load: 0.9,
            ..Default::default()
        };
        let t = c.eval(S, &bad);
        assert_eq!(t.len(), 3, "{t:?}");
        let t = c.eval(
            S,
            &AlertSample {
                backpressure: 0.1,
                ..bad
            },
        );
        assert_eq!(
            changes(&t),
            [(AlertName::HighBackpressure, Firing, Inactive)]
        );
        let names: Vec<_> = c.evaluator.active().iter().map(|a| a.name).collect();
        assert_eq!(names, [AlertName::HighDataLatency, AlertName::HighCpuUsage]);
    }

    #[test]
    fn active_alerts_serialise_for_health() {
        let mut c = Clock::new(AlertRules::default());
        c.eval(
            S,
            &AlertSample {
                backpressure: 0.85,
                ..Default::default()
            },
        );
        let json = serde_json::to_value(c.evaluator.active()).unwrap();
        assert_eq!(json[0]["name"], "HighBackpressure");
        assert_eq!(json[0]["severity"], "warning");
        assert_eq!(json[0]["state"], "pending");
        assert_eq!(json[0]["value"], 0.85);
        assert_eq!(json[0]["threshold"], 0.8);
        assert_eq!(json[0]["summary"], "系统反压严重");
        let at = json[0]["activeAt"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }
}
