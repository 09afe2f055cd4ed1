//! Running the alert evaluator in a function: on a timer next to the ops server, reading
//! [`PipelineMetrics`], with its outcome in three places:
//!
//! - `/health` lists pending and firing alerts under `alerts`; a firing alert turns `status`
//!   into `DEGRADED` (HTTP 200). `/health/live` and `/health/ready` ignore alerts: restarting
//!   a slow or backpressured function, or taking it out of service, does not make it faster,
//!   and a restart loses the in-memory window the alert is computed from;
//! - `/metrics` has `cdc_alert_firing{alertname,severity}` (0/1) for all five alerts, like
//!   Prometheus' `ALERTS`, and `cdc_alert_notifications_failed_total`;
//! - with `ALERTMANAGER_URL` set, alerts are posted to Alertmanager (see
//!   [`alertmanager`](crate::alertmanager)) with the labels `alertname`, `severity`,
//!   `function` and `instance`, so they group with the Prometheus rules' alerts of the same
//!   name.
//!
//! On shutdown nothing is resolved explicitly: the condition did not end, the process did.
//! Alertmanager resolves the alerts itself when their `endsAt` passes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGaugeVec, Opts, Registry};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alertmanager::{alerts_endpoint, AlertIdentity, Notifier, Outbox, PostableAlert};
use crate::alerts::{ActiveAlert, AlertEvaluator, AlertName, AlertRules, AlertSample, AlertState};
use crate::error::{Result, TelemetryError};
use crate::metrics::PipelineMetrics;
use crate::shutdown::Shutdown;

/// Metric names of the alerting side.
pub mod names {
    /// 1 while the alert fires, else 0; labels `alertname`, `severity`.
    pub const ALERT_FIRING: &str = "cdc_alert_firing";
    /// Sends to an Alertmanager that failed (unreachable, timeout, non-2xx answer).
    pub const NOTIFICATIONS_FAILED: &str = "cdc_alert_notifications_failed_total";
}

/// How the alerts of a function are evaluated and where they are sent. Defaults follow the
/// deployment guide's rule group (`interval: 30s`) and Prometheus' notifier.
#[derive(Debug, Clone)]
pub struct AlertingOptions {
    rules: AlertRules,
    interval: Duration,
    alertmanagers: Vec<String>,
    resend_interval: Duration,
    resolved_retention: Duration,
    request_timeout: Duration,
    instance: Option<String>,
    labels: BTreeMap<String, String>,
    generator_url: Option<String>,
}

impl Default for AlertingOptions {
    fn default() -> Self {
        Self::new(AlertRules::default())
    }
}

impl AlertingOptions {
    pub fn new(rules: AlertRules) -> Self {
        Self {
            rules,
            interval: Duration::from_secs(30),
            alertmanagers: Vec::new(),
            resend_interval: Duration::from_secs(60),
            resolved_retention: Duration::from_secs(15 * 60),
            request_timeout: Duration::from_secs(10),
            instance: None,
            labels: BTreeMap::new(),
            generator_url: None,
        }
    }

    /// Time between evaluations (default 30 s, the rule group's `interval`). Tests use a
    /// short one.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        // A zero period would spin; one millisecond is already far below any useful value.
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Posts alerts to this Alertmanager (`http://host:9093`); call again for each member of
    /// an HA pair. Checked when the alerting is built.
    pub fn with_alertmanager(mut self, url: impl Into<String>) -> Self {
        self.alertmanagers.push(url.into());
        self
    }

    /// Re-send firing alerts this often (default 1 min, as Prometheus).
    pub fn with_resend_interval(mut self, interval: Duration) -> Self {
        self.resend_interval = interval;
        self
    }

    /// Keep re-sending a resolution this long (default 15 min, as Prometheus).
    pub fn with_resolved_retention(mut self, retention: Duration) -> Self {
        self.resolved_retention = retention;
        self
    }

    /// Timeout of one POST to Alertmanager (default 10 s, as Prometheus).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The `instance` label (default: `<hostname>:<ops port>`).
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// An extra constant label on every alert, e.g. `cluster` (the guide's routes group by it).
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// The `generatorURL` of every alert (default: `http://<instance>/health`).
    pub fn with_generator_url(mut self, url: impl Into<String>) -> Self {
        self.generator_url = Some(url.into());
        self
    }

    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }
}

struct Inner {
    options: AlertingOptions,
    endpoints: Vec<String>,
    evaluator: Mutex<AlertEvaluator>,
    firing: IntGaugeVec,
    notifications_failed: IntCounter,
}

/// The alert state of a process, shared by the evaluation task and the ops endpoints. Clones
/// share state.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("interval", &self.inner.options.interval)
            .field("alertmanagers", &self.inner.endpoints)
            .finish_non_exhaustive()
    }
}

/// Same reasoning as the metrics' lock: the critical sections leave consistent data even if
/// a panic interrupted one, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Alerts {
    /// Checks the Alertmanager URLs and registers the alert metrics on `registry` (all five
    /// gauges at 0, so dashboards see them before anything fires).
    pub fn new(registry: &Registry, options: AlertingOptions) -> Result<Self> {
        let endpoints = options
            .alertmanagers
            .iter()
            .map(|url| alerts_endpoint(url))
            .collect::<Result<Vec<_>>>()?;
        let firing = IntGaugeVec::new(
            Opts::new(
                names::ALERT_FIRING,
                "1 while the in-process alert fires (its condition held for the rule's `for`), else 0.",
            ),
            &["alertname", "severity"],
        )
        .map_err(|source| TelemetryError::MetricRegistration {
            name: names::ALERT_FIRING,
            source,
        })?;
        let notifications_failed = IntCounter::new(
            names::NOTIFICATIONS_FAILED,
            "Alert sends to an Alertmanager that failed (each is retried at the next resend).",
        )
        .map_err(|source| TelemetryError::MetricRegistration {
            name: names::NOTIFICATIONS_FAILED,
            source,
        })?;
        for (name, collector) in [
            (
                names::ALERT_FIRING,
                Box::new(firing.clone()) as Box<dyn prometheus::core::Collector>,
            ),
            (
                names::NOTIFICATIONS_FAILED,
                Box::new(notifications_failed.clone()),
            ),
        ] {
            registry
                .register(collector)
                .map_err(|source| TelemetryError::MetricRegistration { name, source })?;
        }
        for alert in AlertName::ALL {
            firing
                .with_label_values(&[alert.as_str(), alert.severity().as_str()])
                .set(0);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                evaluator: Mutex::new(AlertEvaluator::new(options.rules.clone())),
                options,
                endpoints,
                firing,
                notifications_failed,
            }),
        })
    }

    pub fn options(&self) -> &AlertingOptions {
        &self.inner.options
    }

    /// Pending and firing alerts as of the last evaluation.
    pub fn active(&self) -> Vec<ActiveAlert> {
        lock(&self.inner.evaluator).active()
    }

    /// Whether any alert fires as of the last evaluation.
    pub fn any_firing(&self) -> bool {
        self.active().iter().any(|a| a.state == AlertState::Firing)
    }

    /// One evaluation now: reads `metrics` (refreshing its derived gauges), updates the
    /// state, the gauges and the logs. Returns the active alerts and what changed.
    fn evaluate(
        &self,
        metrics: &PipelineMetrics,
        now: Instant,
        wall: chrono::DateTime<chrono::Utc>,
    ) -> (Vec<crate::alerts::Transition>, Vec<ActiveAlert>) {
        let sample = AlertSample::from(&metrics.snapshot());
        let (transitions, active) = {
            let mut evaluator = lock(&self.inner.evaluator);
            let transitions = evaluator.evaluate(&sample, now, wall);
            (transitions, evaluator.active())
        };
        for t in &transitions {
            let threshold = self.inner.options.rules.threshold(t.alert);
            let value = t.value.unwrap_or(f64::NAN);
            match t.to {
                AlertState::Firing => {
                    tracing::warn!(alert = %t.alert, value, threshold, severity = t.alert.severity().as_str(), "alert firing")
                }
                AlertState::Inactive if t.is_resolution() => {
                    tracing::info!(alert = %t.alert, value, threshold, "alert resolved")
                }
                _ => {
                    tracing::debug!(alert = %t.alert, value, threshold, from = t.from.as_str(), to = t.to.as_str(), "alert state changed")
                }
            }
        }
        for alert in AlertName::ALL {
            let fires = active
                .iter()
                .any(|a| a.name == alert && a.state == AlertState::Firing);
            self.inner
                .firing
                .with_label_values(&[alert.as_str(), alert.severity().as_str()])
                .set(i64::from(fires));
        }
        (transitions, active)
    }

    /// Evaluates every interval until `shutdown`, posting to the Alertmanagers when
    /// configured. `function` and `ops_addr` make the default labels.
    pub(crate) fn spawn(
        &self,
        metrics: Arc<PipelineMetrics>,
        function: &str,
        ops_addr: SocketAddr,
        shutdown: Shutdown,
    ) -> Result<JoinHandle<()>> {
        let options = &self.inner.options;
        let instance = options
            .instance
            .clone()
            .unwrap_or_else(|| format!("{}:{}", hostname(), ops_addr.port()));
        let identity = AlertIdentity {
            function: function.to_owned(),
            generator_url: options
                .generator_url
                .clone()
                .unwrap_or_else(|| format!("http://{instance}/health")),
            instance,
            labels: options.labels.clone(),
        };
        let notifier = if self.inner.endpoints.is_empty() {
            None
        } else {
            Some(Notifier::new(
                self.inner.endpoints.clone(),
                options.request_timeout,
            )?)
        };
        let alerts = self.clone();
        Ok(tokio::spawn(async move {
            alerts.run(metrics, identity, notifier, shutdown).await;
        }))
    }

    async fn run(
        self,
        metrics: Arc<PipelineMetrics>,
        identity: AlertIdentity,
        notifier: Option<Notifier>,
        shutdown: Shutdown,
    ) {
        let options = &self.inner.options;
        tracing::info!(
            interval_ms = options.interval.as_millis() as u64,
            alertmanagers = ?self.inner.endpoints,
            instance = %identity.instance,
            "evaluating alerts"
        );
        // Sends run in their own task so a slow Alertmanager never delays an evaluation. The
        // channel holds only the newest batch: every batch carries the full current state, so
        // one superseded before it was sent loses nothing.
        let (batches, mut next_batch) = watch::channel::<Option<Vec<PostableAlert>>>(None);
        let sender = notifier.map(|notifier| {
            let failed = self.inner.notifications_failed.clone();
            let stop = shutdown.wait();
            tokio::spawn(async move {
                let sending = async {
                    while next_batch.changed().await.is_ok() {
                        let batch = next_batch.borrow_and_update().clone();
                        if let Some(batch) = batch {
                            let failures = notifier.send(&batch).await;
                            failed.inc_by(failures as u64);
                        }
                    }
                };
                tokio::select! {
                    () = stop => {}
                    () = sending => {}
                }
            })
        });
        let mut outbox = Outbox::new(
            options.resend_interval,
            options.interval,
            options.resolved_retention,
        );
        let mut ticks = tokio::time::interval(options.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = ticks.tick() => {}
            }
            let (now, wall) = (Instant::now(), chrono::Utc::now());
            let (transitions, active) = self.evaluate(&metrics, now, wall);
            if sender.is_some() {
                if let Some(batch) = outbox.after_evaluation(
                    &identity,
                    &transitions,
                    &active,
                    &options.rules,
                    now,
                    wall,
                ) {
                    batches.send_replace(Some(batch));
                }
            }
        }
        drop(batches);
        if let Some(sender) = sender {
            // Ends promptly: the sender task also watches the shutdown token.
            let _ = sender.await;
        }
    }
}

/// This host's name for the `instance` label: `HOSTNAME` (set in containers and Kubernetes
/// pods to the pod name), else the kernel's, else `localhost`.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(registry: &Registry, alert: AlertName) -> i64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == names::ALERT_FIRING)
            .flat_map(|f| f.get_metric().iter())
            .find(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "alertname" && l.value() == alert.as_str())
            })
            .map(|m| m.get_gauge().get_value() as i64)
            .unwrap_or(-1)
    }

    #[test]
    fn gauges_follow_the_evaluations() {
        let registry = Registry::new();
        let metrics = PipelineMetrics::new(&registry).unwrap();
        let alerts = Alerts::new(
            &registry,
            AlertingOptions::new(AlertRules::default().with_for_all(Duration::ZERO)),
        )
        .unwrap();
        for alert in AlertName::ALL {
            assert_eq!(
                gauge(&registry, alert),
                0,
                "{alert} present at 0 from the start"
            );
        }
        metrics.set_backpressure(0.9);
        let t0 = Instant::now();
        let (transitions, active) = alerts.evaluate(&metrics, t0, chrono::Utc::now());
        assert_eq!(transitions.len(), 1, "{transitions:?}");
        assert_eq!(active[0].name, AlertName::HighBackpressure);
        assert_eq!(gauge(&registry, AlertName::HighBackpressure), 1);
        assert_eq!(gauge(&registry, AlertName::HighDataLatency), 0);
        assert!(alerts.any_firing());

        metrics.set_backpressure(0.2);
        alerts.evaluate(&metrics, t0 + Duration::from_secs(1), chrono::Utc::now());
        assert_eq!(gauge(&registry, AlertName::HighBackpressure), 0);
        assert!(!alerts.any_firing());
        assert!(alerts.active().is_empty());
    }

    #[test]
    fn bad_alertmanager_urls_are_refused_up_front() {
        let err = Alerts::new(
            &Registry::new(),
            AlertingOptions::default().with_alertmanager("https://am:9093"),
        )
        .unwrap_err();
        assert!(
            matches!(err, TelemetryError::InvalidAlertmanagerUrl { ref url, .. } if url == "https://am:9093"),
            "{err}"
        );
    }
}
