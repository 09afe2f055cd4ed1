//! `serve` evaluates the guide's alerts with the `monitoring.alerts.*` settings and posts them
//! to `ALERTMANAGER_URL`. (The alerts themselves, each against a real Alertmanager, are
//! tested in cdc-telemetry's `tests/alertmanager.rs`; this checks the wiring.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use cdc_config::{Config, ConfigFile, LoadOptions, Role};
use serde_json::Value;

type Received = Arc<Mutex<Vec<Value>>>;

/// Stands in for Alertmanager's `POST /api/v2/alerts`, recording every alert posted.
async fn fake_alertmanager() -> (String, Received) {
    async fn receive(State(received): State<Received>, Json(alerts): Json<Vec<Value>>) {
        received.lock().unwrap().extend(alerts);
    }
    let received = Received::default();
    let app = Router::new().route("/api/v2/alerts", post(receive)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn serve_evaluates_alerts_and_posts_them() {
    let (alertmanager, received) = fake_alertmanager().await;
    let env = [
        ("MONITORING_PORT", "0".to_string()),
        ("ALERT_EVALUATION_INTERVAL", "50".to_string()),
        ("ALERTMANAGER_URL", alertmanager),
    ];
    let config = Config::load(
        LoadOptions::new(Role::DatahubLocal)
            .with_file(ConfigFile::None)
            .with_env(env.iter().map(|(k, v)| (k.to_string(), v.clone()))),
    )
    .unwrap();

    let outcome = cdc_runtime::serve(Role::DatahubLocal, config, |function| async move {
        let http = { cdc_telemetry::install_crypto_provider(); reqwest::Client::new() };
        let base = format!("http://127.0.0.1:{}", function.ops_addr().port());
        let health = || async {
            http.get(format!("{base}/health")).send().await.unwrap().json::<Value>().await.unwrap()
        };
        let quiet = health().await;
        assert_eq!(quiet["status"], "UP", "{quiet}");
        assert_eq!(quiet["alerts"], serde_json::json!([]), "{quiet}");

        // The dead-letter alert has no `for`: the next evaluation that sees growth fires it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let firing = loop {
            function.metrics().add_dead_lettered(1);
            let body = health().await;
            let posted = received.lock().unwrap().iter().find(|a| a["labels"]["alertname"] == "DeadLetterQueueGrowing").cloned();
            if let (Some(posted), "DEGRADED") = (posted, body["status"].as_str().unwrap_or_default()) {
                break (body, posted);
            }
            assert!(Instant::now() < deadline, "no DeadLetterQueueGrowing: {body}, posted {:?}", received.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (body, posted) = firing;
        assert_eq!(body["alerts"][0]["name"], "DeadLetterQueueGrowing", "{body}");
        assert_eq!(body["alerts"][0]["state"], "firing", "{body}");
        assert_eq!(posted["labels"]["function"], Role::DatahubLocal.binary_name(), "{posted}");
        assert_eq!(posted["labels"]["severity"], "warning", "{posted}");
        let live = http.get(format!("{base}/health/live")).send().await.unwrap();
        assert_eq!(live.status(), 200, "alerts do not touch liveness");
        let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains(r#"cdc_alert_firing{alertname="DeadLetterQueueGrowing",severity="warning"} 1"#),
            "{metrics}"
        );
        assert!(metrics.contains(r#"cdc_alert_firing{alertname="HighDataLatency",severity="critical"} 0"#), "{metrics}");
        Ok(())
    })
    .await;
    outcome.unwrap();
}

#[test]
fn alerting_options_follow_the_settings() {
    let env = [
        ("ALERT_LATENCY_THRESHOLD", "30000"),
        ("ALERT_CHECKPOINT_FAILURE_RATE", "0.05"),
        ("ALERT_LOAD_THRESHOLD", "0.7"),
        ("ALERT_EVALUATION_INTERVAL", "1000"),
    ];
    let config = Config::load(
        LoadOptions::new(Role::DatahubLocal)
            .with_file(ConfigFile::None)
            .with_env(env.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
    )
    .unwrap();
    let options = cdc_runtime::alerting_options(&config.monitoring);
    use cdc_telemetry::AlertName::*;
    let rules = options.rules();
    assert_eq!(rules.threshold(HighDataLatency), 30_000.0);
    assert_eq!(rules.threshold(HighCheckpointFailureRate), 0.05);
    assert_eq!(rules.threshold(HighCpuUsage), 0.7);
    assert_eq!(rules.threshold(HighBackpressure), 0.8, "the guide's fixed level");
    assert_eq!(rules.hold(HighCpuUsage), Duration::from_secs(600), "the guide's `for: 10m`");
    assert_eq!(options.interval(), Duration::from_secs(1));
}
