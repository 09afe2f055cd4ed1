//! `monitoring.alerts.*`: the guide's thresholds plus where and how often alerts go.

mod common;

use std::time::Duration;

use cdc_config::Role;
use common::{err, ok, Scratch};

#[test]
fn defaults_are_the_guides() {
    let c = ok(Scratch::new().load(Role::DatahubLocal, None, &[]));
    let m = &c.monitoring;
    assert_eq!(m.latency_threshold_ms, 60_000);
    assert_eq!(m.checkpoint_failure_rate, 0.1);
    assert_eq!(m.load_threshold, 0.8);
    assert!(m.alertmanager_urls.is_empty(), "not sent unless configured");
    assert_eq!(m.alert_evaluation_interval(), Duration::from_secs(30));
}

#[test]
fn alertmanager_urls_from_file_and_env() {
    let scratch = Scratch::new();
    let yaml = "monitoring:\n  alerts:\n    alertmanagerUrl: http://am-0:9093\n    evaluationIntervalMs: 250\n";
    let c = ok(scratch.load(Role::DatahubLocal, Some(yaml), &[]));
    assert_eq!(c.monitoring.alertmanager_urls, ["http://am-0:9093"]);
    assert_eq!(c.monitoring.alert_evaluation_interval(), Duration::from_millis(250));

    // An HA pair through the environment, which overrides the file.
    let c = ok(scratch.load(
        Role::DatahubLocal,
        Some(yaml),
        &[("ALERTMANAGER_URL", "http://am-0:9093, http://am-1:9093/")],
    ));
    assert_eq!(c.monitoring.alertmanager_urls, ["http://am-0:9093", "http://am-1:9093/"]);
    assert_eq!(c.redacted_json()["monitoring"]["alerts"]["alertmanagerUrl"], serde_json::json!(["http://am-0:9093", "http://am-1:9093/"]));
}

#[test]
fn unusable_alertmanager_urls_are_reported_at_start_up() {
    let scratch = Scratch::new();
    for (url, fragment) in [
        ("https://am:9093", "https is not supported"),
        ("am:9093", "expected http://host:port"),
        ("http://", "no host"),
        ("http://admin:secret@am:9093", "credentials in the URL are not supported"),
    ] {
        let e = err(scratch.load(Role::DatahubLocal, None, &[("ALERTMANAGER_URL", url)]));
        let text = e.to_string();
        assert!(text.contains("monitoring.alerts.alertmanagerUrl / ALERTMANAGER_URL"), "{url}: {text}");
        assert!(text.contains(fragment), "{url}: {text}");
        assert_eq!(e.problems.len(), 1, "{url}: {text}");
    }
    let e = err(scratch.load(Role::DatahubLocal, None, &[("ALERT_EVALUATION_INTERVAL", "5")]));
    assert!(e.to_string().contains("ALERT_EVALUATION_INTERVAL"), "{e}");
}
