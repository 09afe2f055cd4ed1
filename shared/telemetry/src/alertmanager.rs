//! Sending alerts to Alertmanager (`POST /api/v2/alerts`), the way Prometheus does:
//!
//! - a firing alert is sent when it starts firing and re-sent every resend interval (default
//!   1 min, Prometheus' `--rules.alert.resend-delay`) while it fires, because Alertmanager
//!   forgets an alert whose `endsAt` has passed;
//! - a firing alert's `endsAt` is four resend intervals ahead (Prometheus' rule), so if this
//!   process dies without resolving it, Alertmanager resolves it on its own soon after;
//! - a resolved alert is sent with `endsAt` = the evaluation that saw the condition end, and
//!   re-sent for the retention period (default 15 min, as Prometheus) in case a send failed.
//!
//! [`Outbox`] decides *what* to send when (pure, tested without time); [`Notifier`] does the
//! HTTP. A failed send is logged and counted, never retried at once: the next resend carries
//! the same information.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alerts::{rfc3339, ActiveAlert, AlertName, AlertState, Transition};
use crate::error::{Result, TelemetryError};

/// The path of Alertmanager's v2 API for posting alerts.
pub const ALERTS_PATH: &str = "/api/v2/alerts";

/// One alert in Alertmanager's v2 `postableAlert` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// Labels and links every alert of this process carries.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertIdentity {
    /// `function` label: the function's binary name.
    pub function: String,
    /// `instance` label: `host:port` of the ops server, like Prometheus' target label.
    pub instance: String,
    /// Extra constant labels (e.g. `cluster`, which the guide's route groups by).
    pub labels: BTreeMap<String, String>,
    /// `generatorURL`: where a person sees the alert (`/health` of this process by default).
    pub generator_url: String,
}

impl AlertIdentity {
    fn postable(
        &self,
        alert: AlertName,
        description: String,
        starts_at: &DateTime<Utc>,
        ends_at: &DateTime<Utc>,
    ) -> PostableAlert {
        let mut labels = self.labels.clone();
        // The rule's own labels win over extra ones with the same name.
        labels.insert("alertname".into(), alert.as_str().into());
        labels.insert("severity".into(), alert.severity().as_str().into());
        labels.insert("function".into(), self.function.clone());
        labels.insert("instance".into(), self.instance.clone());
        let annotations = BTreeMap::from([
            ("summary".to_owned(), alert.summary().to_owned()),
            ("description".to_owned(), description),
        ]);
        PostableAlert {
            labels,
            annotations,
            starts_at: rfc3339(starts_at),
            ends_at: rfc3339(ends_at),
            generator_url: self.generator_url.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Resolved {
    alert: AlertName,
    description: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    forget_at: Instant,
}

/// What to send to Alertmanager and when.
#[derive(Debug)]
pub(crate) struct Outbox {
    resend_interval: Duration,
    valid_for: Duration,
    retention: Duration,
    resolved: Vec<Resolved>,
    last_sent: Option<Instant>,
}

impl Outbox {
    /// `evaluation_interval` matters for `endsAt`: an alert must stay valid across several
    /// evaluations even when those are further apart than the resends.
    pub(crate) fn new(
        resend_interval: Duration,
        evaluation_interval: Duration,
        retention: Duration,
    ) -> Self {
        Self {
            resend_interval,
            valid_for: 4 * resend_interval.max(evaluation_interval),
            retention,
            resolved: Vec::new(),
            last_sent: None,
        }
    }

    /// After an evaluation: the batch to send now, if any. `active` is every pending or firing
    /// alert after the evaluation; `transitions` what changed in it.
    pub(crate) fn after_evaluation(
        &mut self,
        identity: &AlertIdentity,
        transitions: &[Transition],
        active: &[ActiveAlert],
        rules: &crate::alerts::AlertRules,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<Vec<PostableAlert>> {
        for t in transitions {
            if t.is_firing() || t.is_resolution() {
                // A new episode replaces what is remembered of the previous one.
                self.resolved.retain(|r| r.alert != t.alert);
            }
            if t.is_resolution() {
                self.resolved.push(Resolved {
                    alert: t.alert,
                    description: t.alert.describe(t.held_value, rules.threshold(t.alert)),
                    starts_at: t.active_at,
                    ends_at: t.at,
                    forget_at: now + self.retention,
                });
            }
        }
        self.resolved.retain(|r| r.forget_at > now);

        let changed = transitions
            .iter()
            .any(|t| t.is_firing() || t.is_resolution());
        let resend_due = self
            .last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= self.resend_interval);
        let firing: Vec<&ActiveAlert> = active
            .iter()
            .filter(|a| a.state == AlertState::Firing)
            .collect();
        if !(changed || resend_due) || (firing.is_empty() && self.resolved.is_empty()) {
            return None;
        }
        self.last_sent = Some(now);
        let valid_until = wall + chrono::Duration::from_std(self.valid_for).unwrap_or_default();
        let mut batch: Vec<PostableAlert> = firing
            .into_iter()
            .map(|a| identity.postable(a.name, a.description.clone(), &a.active_at, &valid_until))
            .collect();
        batch.extend(
            self.resolved.iter().map(|r| {
                identity.postable(r.alert, r.description.clone(), &r.starts_at, &r.ends_at)
            }),
        );
        Some(batch)
    }
}

/// `http://host:port` (or `.../api/v2/alerts`, or a path prefix such as Alertmanager's
/// `--web.route-prefix`) → the URL alerts are posted to. Only plain HTTP: the client is built
/// without TLS to keep the build lean, and Alertmanager usually sits inside the cluster.
pub fn alerts_endpoint(url: &str) -> Result<String> {
    let invalid = |reason: &str| TelemetryError::InvalidAlertmanagerUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = url.trim().trim_end_matches('/');
    let Some(rest) = trimmed.strip_prefix("http://") else {
        return Err(invalid(if trimmed.starts_with("https://") {
            "https is not supported (the alert client has no TLS); use http:// inside the cluster"
        } else {
            "expected an http:// URL such as http://alertmanager:9093"
        }));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid("the URL has no host"));
    }
    if authority.contains('@') {
        return Err(invalid("credentials in the URL are not supported"));
    }
    if trimmed.ends_with(ALERTS_PATH) {
        Ok(trimmed.to_owned())
    } else {
        Ok(format!("{trimmed}{ALERTS_PATH}"))
    }
}

/// Posts batches to every configured Alertmanager (all of them, as Prometheus does for an HA
/// pair: they deduplicate among themselves).
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    client: reqwest::Client,
    endpoints: Vec<String>,
    timeout: Duration,
}

impl Notifier {
    pub(crate) fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Self> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .build()
            .map_err(TelemetryError::AlertClient)?;
        Ok(Self {
            client,
            endpoints,
            timeout,
        })
    }

    /// Sends `batch` to each endpoint; returns how many sends failed (each is logged).
    pub(crate) async fn send(&self, batch: &[PostableAlert]) -> usize {
        let mut failed = 0;
        for endpoint in &self.endpoints {
            let outcome = self
                .client
                .post(endpoint)
                .timeout(self.timeout)
                .json(batch)
                .send()
                .await;
            match outcome {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(%endpoint, alerts = batch.len(), "alerts sent to Alertmanager");
                }
                Ok(response) => {
                    failed += 1;
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    tracing::warn!(%endpoint, %status, body = %body.trim(), "Alertmanager rejected the alerts");
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(%endpoint, error = %e, "cannot send alerts to Alertmanager");
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertEvaluator, AlertRules, AlertSample};
    use chrono::SubsecRound;

    const S: Duration = Duration::from_secs(1);

    fn identity() -> AlertIdentity {
        AlertIdentity {
            function: "cdc-capture".into(),
            instance: "capture-0:8080".into(),
            labels: BTreeMap::from([
                ("cluster".to_owned(), "prod".to_owned()),
                ("alertname".to_owned(), "overridden".to_owned()),
            ]),
            generator_url: "http://capture-0:8080/health".into(),
        }
    }

    struct Run {
        evaluator: AlertEvaluator,
        outbox: Outbox,
        t0: Instant,
        wall0: DateTime<Utc>,
        now: Duration,
    }

    impl Run {
        fn new() -> Self {
            Self {
                evaluator: AlertEvaluator::new(AlertRules::default().with_for_all(Duration::ZERO)),
                outbox: Outbox::new(60 * S, 30 * S, 15 * 60 * S),
                t0: Instant::now(),
                // Whole milliseconds, the precision of the timestamps sent.
                wall0: Utc::now().trunc_subsecs(3),
                now: Duration::ZERO,
            }
        }

        fn step(&mut self, step: Duration, backpressure: f64) -> Option<Vec<PostableAlert>> {
            self.now += step;
            let now = self.t0 + self.now;
            let wall = self.wall0 + chrono::Duration::from_std(self.now).unwrap();
            let sample = AlertSample {
                backpressure,
                ..Default::default()
            };
            let transitions = self.evaluator.evaluate(&sample, now, wall);
            let active = self.evaluator.active();
            self.outbox.after_evaluation(
                &identity(),
                &transitions,
                &active,
                self.evaluator.rules(),
                now,
                wall,
            )
        }

        fn wall(&self) -> DateTime<Utc> {
            self.wall0 + chrono::Duration::from_std(self.now).unwrap()
        }
    }

    fn parse(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn firing_is_sent_at_once_resent_and_resolved() {
        let mut run = Run::new();
        assert_eq!(run.step(S, 0.0), None, "nothing to say");
        let batch = run.step(S, 0.9).expect("sent when it starts firing");
        let fired_at = run.wall();
        assert_eq!(batch.len(), 1);
        let alert = &batch[0];
        assert_eq!(alert.labels["alertname"], "HighBackpressure");
        assert_eq!(alert.labels["severity"], "warning");
        assert_eq!(alert.labels["function"], "cdc-capture");
        assert_eq!(alert.labels["instance"], "capture-0:8080");
        assert_eq!(alert.labels["cluster"], "prod");
        assert_eq!(alert.annotations["summary"], "系统反压严重");
        assert!(alert.annotations["description"].contains("0.90"));
        assert_eq!(alert.generator_url, "http://capture-0:8080/health");
        assert_eq!(parse(&alert.starts_at), fired_at);
        // Valid for four resend intervals.
        assert_eq!(
            parse(&alert.ends_at),
            fired_at + chrono::Duration::seconds(240)
        );

        // Not again before the resend interval...
        assert_eq!(run.step(30 * S, 0.9), None);
        // ...then again, same startsAt, endsAt pushed forward.
        let again = run.step(30 * S, 0.9).expect("resent while firing");
        assert_eq!(again[0].starts_at, alert.starts_at);
        assert!(parse(&again[0].ends_at) > parse(&alert.ends_at));

        // The condition ends: sent at once with endsAt = that evaluation.
        let resolved = run.step(10 * S, 0.1).expect("resolution is sent at once");
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].starts_at, alert.starts_at);
        assert_eq!(parse(&resolved[0].ends_at), run.wall());
        assert!(resolved[0].annotations["description"].contains("0.90"));
        // Re-sent on the resend schedule during retention, then forgotten.
        assert_eq!(run.step(30 * S, 0.1), None);
        let resent = run.step(30 * S, 0.1).expect("resolution re-sent");
        assert_eq!(resent[0].ends_at, resolved[0].ends_at);
        let mut last = None;
        for _ in 0..20 {
            last = run.step(60 * S, 0.1);
        }
        assert_eq!(last, None, "forgotten after the retention");
    }

    #[test]
    fn firing_again_replaces_the_resolution() {
        let mut run = Run::new();
        run.step(S, 0.9).unwrap();
        run.step(S, 0.0).unwrap();
        let batch = run.step(S, 0.95).expect("fires again");
        assert_eq!(batch.len(), 1, "{batch:?}");
        assert!(parse(&batch[0].ends_at) > run.wall());
        assert_eq!(parse(&batch[0].starts_at), run.wall());
    }

    #[test]
    fn pending_alerts_are_not_sent() {
        let mut run = Run::new();
        run.evaluator = AlertEvaluator::new(AlertRules::default());
        assert_eq!(run.step(S, 0.9), None);
        assert_eq!(run.step(60 * S, 0.9), None);
        assert_eq!(
            run.evaluator.state(AlertName::HighBackpressure),
            AlertState::Pending
        );
    }

    #[test]
    fn endpoints() {
        for (given, expected) in [
            ("http://am:9093", "http://am:9093/api/v2/alerts"),
            ("http://am:9093/", "http://am:9093/api/v2/alerts"),
            (
                "http://am:9093/api/v2/alerts",
                "http://am:9093/api/v2/alerts",
            ),
            (
                "http://gw/alertmanager",
                "http://gw/alertmanager/api/v2/alerts",
            ),
        ] {
            assert_eq!(alerts_endpoint(given).unwrap(), expected);
        }
        for bad in [
            "https://am:9093",
            "am:9093",
            "http://",
            "http://u:p@am:9093",
            "ftp://x",
        ] {
            let err = alerts_endpoint(bad).unwrap_err();
            assert!(
                matches!(err, TelemetryError::InvalidAlertmanagerUrl { .. }),
                "{bad}: {err}"
            );
        }
        assert!(alerts_endpoint("https://am")
            .unwrap_err()
            .to_string()
            .contains("https"));
    }
}
