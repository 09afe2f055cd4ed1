//! Black-box tests of the ops server over real HTTP on 127.0.0.1:0.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdc_telemetry::metrics::names;
use cdc_telemetry::{FunctionContext, Health, OpsServer, RunningOpsServer, TelemetryError};
use prometheus_parse::{Scrape, Value};
use reqwest::{header, StatusCode};

/// Every family `/metrics` must expose once each per-stage counter has a child.
const ALL_FAMILIES: &[&str] = &[
    names::RECORDS_COLLECTED,
    names::RECORDS_SENT,
    names::RECORDS_FAILED,
    names::RECORDS_IN,
    names::RECORDS_OUT,
    names::RECORDS_IN_RATE,
    names::RECORDS_OUT_RATE,
    names::COLLECT_RATE,
    names::LATENCY,
    names::LATENCY_P50,
    names::LATENCY_P99,
    names::CHECKPOINT_TOTAL,
    names::CHECKPOINT_FAILED,
    names::CHECKPOINT_DURATION,
    names::CHECKPOINT_LAST_DURATION,
    names::CHECKPOINT_LAST_SIZE,
    names::BACKPRESSURE,
    names::CPU_USAGE,
    names::RESIDENT_MEMORY,
    names::DEAD_LETTERED,
    names::SOURCE_LAG,
];

/// The names the deployment guide's alert rules query, spelled out independently of
/// `names::` so a rename there cannot silently break the guide's rules.
const GUIDE_ALERT_NAMES: &[&str] = &[
    "flink_latency_p99",
    "flink_checkpoint_failed",
    "flink_checkpoint_total",
    "flink_taskmanager_cpu_usage",
    "flink_backpressure_level",
    "failed_records_count",
];

struct TestServer {
    ctx: FunctionContext,
    running: RunningOpsServer,
    client: reqwest::Client,
}

impl TestServer {
    async fn start(ctx: FunctionContext) -> Self {
        let running = ctx
            .start_ops_server(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        Self {
            ctx,
            running,
            client: { cdc_telemetry::install_crypto_provider(); reqwest::Client::new() },
        }
    }

    async fn default() -> Self {
        Self::start(FunctionContext::builder("test").build().unwrap()).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.local_addr(), path)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn scrape(&self) -> Scrape {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "text/plain; version=0.0.4");
        let text = response.text().await.unwrap();
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }
}

/// The value of an unlabelled counter/gauge sample, or the one with `stage=<stage>`.
fn value(scrape: &Scrape, name: &str, stage: Option<&str>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| stage.is_none_or(|st| s.labels.get(names::STAGE_LABEL) == Some(st)))
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

fn families(scrape: &Scrape) -> Vec<&str> {
    let mut names: Vec<&str> = scrape.docs.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

/// Polls `condition` until it holds; the deadline only turns a hang into a clear failure.
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn metrics_text_parses_and_follows_the_counters() {
    let server = TestServer::default().await;
    let before = server.scrape().await;
    for name in ALL_FAMILIES {
        if ![
            names::RECORDS_COLLECTED,
            names::RECORDS_SENT,
            names::RECORDS_FAILED,
        ]
        .contains(name)
        {
            assert!(
                families(&before).contains(name),
                "{name} missing: {:?}",
                families(&before)
            );
        }
    }
    assert_eq!(value(&before, names::RECORDS_IN, None), Some(0.0));
    assert_eq!(value(&before, names::CHECKPOINT_TOTAL, None), Some(0.0));

    let m = server.ctx.metrics();
    m.add_collected("capture", 100);
    m.add_sent("capture", 97);
    m.add_failed("capture", 3);
    m.add_dead_lettered(3);
    m.add_in(100);
    m.add_out(97);
    m.observe_latency(Duration::from_millis(40));
    m.observe_latency(Duration::from_millis(70_000));
    m.checkpoint_completed(Duration::from_millis(250), 1 << 20);
    m.checkpoint_failed(Duration::from_secs(2));
    m.set_backpressure(0.5);
    m.set_source_lag(Duration::from_secs(3));

    let after = server.scrape().await;
    for name in ALL_FAMILIES.iter().chain(GUIDE_ALERT_NAMES) {
        assert!(
            families(&after).contains(name),
            "{name} missing: {:?}",
            families(&after)
        );
    }
    assert_eq!(
        value(&after, names::RECORDS_COLLECTED, Some("capture")),
        Some(100.0)
    );
    assert_eq!(
        value(&after, names::RECORDS_SENT, Some("capture")),
        Some(97.0)
    );
    assert_eq!(
        value(&after, names::RECORDS_FAILED, Some("capture")),
        Some(3.0)
    );
    assert_eq!(value(&after, "failed_records_count", None), Some(3.0));
    assert_eq!(value(&after, names::RECORDS_IN, None), Some(100.0));
    assert_eq!(value(&after, names::RECORDS_OUT, None), Some(97.0));
    assert!(value(&after, names::RECORDS_IN_RATE, None).unwrap() > 0.0);
    assert!(value(&after, names::COLLECT_RATE, None).unwrap() > 0.0);
    assert_eq!(value(&after, "flink_latency_p50", None), Some(40.0));
    assert_eq!(value(&after, "flink_latency_p99", None), Some(70_000.0));
    assert_eq!(value(&after, "flink_checkpoint_total", None), Some(2.0));
    assert_eq!(value(&after, "flink_checkpoint_failed", None), Some(1.0));
    assert_eq!(
        value(&after, names::CHECKPOINT_LAST_SIZE, None),
        Some(1048576.0)
    );
    assert_eq!(value(&after, "flink_backpressure_level", None), Some(0.5));
    assert_eq!(value(&after, names::SOURCE_LAG, None), Some(3.0));
    assert!(value(&after, names::RESIDENT_MEMORY, None).unwrap() > 0.0);

    // The latency histogram: two observations, one in the ≤50 ms bucket.
    let latency = after
        .samples
        .iter()
        .find(|s| s.metric == names::LATENCY)
        .unwrap();
    let Value::Histogram(buckets) = &latency.value else {
        panic!("{latency:?}")
    };
    let le_50 = buckets.iter().find(|b| b.less_than == 50.0).unwrap();
    assert_eq!(le_50.count, 1.0);
    assert_eq!(
        value(&after, &format!("{}_count", names::LATENCY), None),
        Some(2.0)
    );
}

#[tokio::test]
async fn cpu_usage_is_measured_not_constant() {
    let server = TestServer::default().await;
    // Burn CPU between scrapes until the gauge reports it: the sampler needs 200 ms between
    // readings and the kernel charges CPU in 10 ms ticks.
    wait_until("flink_taskmanager_cpu_usage > 0", || async {
        let spin_until = Instant::now() + Duration::from_millis(50);
        let mut x = 1u64;
        while Instant::now() < spin_until {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let usage = value(&server.scrape().await, "flink_taskmanager_cpu_usage", None).unwrap();
        assert!((0.0..=1.0).contains(&usage), "usage {usage}");
        usage > 0.0
    })
    .await;
}

#[tokio::test]
async fn metrics_json_has_the_guides_paths() {
    let server = TestServer::default().await;
    let m = server.ctx.metrics();
    m.add_in(10);
    m.add_out(8);
    m.add_dead_lettered(2);
    m.observe_latency_ms(12.0);
    m.checkpoint_completed(Duration::from_millis(5), 10);

    let by_accept = server
        .client
        .get(server.url("/metrics"))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(by_accept.status(), StatusCode::OK);
    assert!(by_accept.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let by_accept: serde_json::Value = by_accept.json().await.unwrap();

    let (status, by_query) = server.get_json("/metrics?format=json").await;
    assert_eq!(status, StatusCode::OK);

    for json in [&by_accept, &by_query] {
        // jq '.records.in.rate', '.records.out.rate', '.latency.p50', '.latency.p99',
        // '.failed.records.count'
        assert!(
            json["records"]["in"]["rate"].as_f64().unwrap() > 0.0,
            "{json}"
        );
        assert!(
            json["records"]["out"]["rate"].as_f64().unwrap() > 0.0,
            "{json}"
        );
        assert_eq!(json["records"]["in"]["count"], 10);
        assert_eq!(json["records"]["out"]["count"], 8);
        assert_eq!(json["latency"]["p50"], 12.0);
        assert_eq!(json["latency"]["p99"], 12.0);
        assert_eq!(json["failed"]["records"]["count"], 2);
        assert_eq!(json["checkpoint"]["total"], 1);
        assert_eq!(json["checkpoint"]["lastSizeBytes"], 10);
        assert!(json["cpu"]["usage"].is_number());
        assert!(json["memory"]["rssBytes"].as_u64().unwrap() > 0);
        assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    // What Prometheus and curl send gets the text format.
    for accept in [
        "*/*",
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    ] {
        let response = server
            .client
            .get(server.url("/metrics"))
            .header(header::ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert!(response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
    }
    assert_eq!(
        server.get("/metrics?format=xml").await.status(),
        StatusCode::BAD_REQUEST
    );
    let forced_text = server
        .client
        .get(server.url("/metrics?format=prometheus"))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert!(forced_text.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}

#[tokio::test]
async fn metrics_disabled_answers_404() {
    let ctx = FunctionContext::builder("quiet")
        .with_metrics_enabled(false)
        .build()
        .unwrap();
    let server = TestServer::start(ctx).await;
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("METRICS_ENABLED=false"));
    // Health is unaffected.
    assert_eq!(server.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_has_the_guides_shape_and_status_codes() {
    let server = TestServer::default().await;
    let health = server.ctx.health();
    health.set_up("database");
    health.set_up("datahub");
    let m = server.ctx.metrics();
    m.add_collected("capture", 1000);
    m.add_sent("capture", 950);
    m.add_failed("capture", 50);

    let (status, body) = server.get_json("/health").await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // "details" is there because the memory check reports its figures.
    assert_eq!(
        keys,
        ["checks", "details", "metrics", "status", "timestamp"]
    );
    assert_eq!(body["status"], "UP");
    let timestamp = body["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), "2025-01-28T12:00:00Z".len(), "{timestamp}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "{timestamp}"
    );
    assert!(timestamp.ends_with('Z'));
    assert_eq!(
        body["checks"],
        serde_json::json!({ "database": "UP", "datahub": "UP", "memory": "UP" })
    );
    assert_eq!(body["metrics"]["recordsCollected"], 1000);
    assert_eq!(body["metrics"]["recordsSent"], 950);
    assert_eq!(body["metrics"]["recordsFailed"], 50);
    assert!(body["metrics"]["collectRate"].as_f64().unwrap() > 0.0);
    assert!(body["details"]["memory"]["rssBytes"].as_u64().unwrap() > 0);

    health.set_down("datahub", "connection reset by peer");
    health.set_detail(
        "source",
        serde_json::json!({ "flavour": "MariaDB 10.11", "position": "0-1-42" }),
    );
    let (status, body) = server.get_json("/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["checks"]["datahub"], "DOWN");
    assert_eq!(body["checks"]["database"], "UP");
    assert_eq!(
        body["details"]["datahub"]["reason"],
        "connection reset by peer"
    );
    assert_eq!(body["details"]["source"]["position"], "0-1-42");
}

#[tokio::test]
async fn ready_runs_probes() {
    let server = TestServer::default().await;
    let health = server.ctx.health();

    let (status, body) = server.get_json("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "UP");

    // A port nobody listens on: bind one, note it, close it.
    let closed: SocketAddr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    health.add_tcp_probe("database", closed.to_string());
    let (status, body) = server.get_json("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["checks"]["database"], "DOWN");
    let reason = body["failing"]["database"].as_str().unwrap();
    assert!(reason.contains(&closed.to_string()), "{reason}");
    assert_eq!(body["failing"].as_object().unwrap().len(), 1, "{body}");
    // /health runs the same probes.
    assert_eq!(
        server.get("/health").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Point the probe at a listener this test holds open.
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    health.add_tcp_probe("database", open.local_addr().unwrap().to_string());
    let (status, body) = server.get_json("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["database"], "UP");
    assert!(body.get("failing").is_none());

    // A pushed check that has not reported yet keeps the process unready.
    health.declare("datahub");
    let (status, body) = server.get_json("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["failing"]["datahub"], "not reported yet");
    drop(open);
}

#[tokio::test]
async fn liveness_flips() {
    let server = TestServer::default().await;
    let (status, body) = server.get_json("/health/live").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("UP"))
    );

    server.ctx.health().mark_dead("decoder thread panicked");
    let (status, body) = server.get_json("/health/live").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["reason"], "decoder thread panicked");
    let (status, body) = server.get_json("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["failing"]["liveness"], "decoder thread panicked");

    server.ctx.health().mark_alive();
    assert_eq!(server.get("/health/live").await.status(), StatusCode::OK);
    assert_eq!(server.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_route_is_404() {
    let server = TestServer::default().await;
    for path in ["/", "/nope", "/health/unknown", "/metrics/extra"] {
        assert_eq!(
            server.get(path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let server = TestServer::default().await;
    let addr = server.running.local_addr();
    assert_eq!(server.get("/health/live").await.status(), StatusCode::OK);

    server.ctx.shutdown().trigger();
    server.running.stopped().await.unwrap();
    // The listener is closed: new connections are refused.
    let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn bind_reports_a_taken_port() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ctx = FunctionContext::builder("clash").build().unwrap();
    let err = OpsServer::bind(taken.local_addr().unwrap(), ctx.ops_state())
        .await
        .unwrap_err();
    assert!(matches!(err, TelemetryError::Bind { .. }), "{err}");
}

#[tokio::test]
async fn servers_with_separate_registries_coexist() {
    let health = Health::builder().with_memory_limit_bytes(u64::MAX).build();
    let a = TestServer::start(
        FunctionContext::builder("a")
            .with_health(health)
            .build()
            .unwrap(),
    )
    .await;
    let b = TestServer::default().await;
    a.ctx.metrics().add_in(5);
    assert_eq!(value(&a.scrape().await, names::RECORDS_IN, None), Some(5.0));
    assert_eq!(value(&b.scrape().await, names::RECORDS_IN, None), Some(0.0));
}

/// Cross-checks the text format with the reference Python parser when it is installed.
#[tokio::test]
async fn python_prometheus_client_parses_the_text() {
    let available = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        eprintln!("SKIPPED: python3 with prometheus_client is not installed (pip install prometheus_client)");
        return;
    }

    let server = TestServer::default().await;
    let m = server.ctx.metrics();
    m.add_collected("capture", 7);
    m.add_sent("capture", 7);
    m.add_failed("capture", 0);
    m.observe_latency_ms(3.0);
    m.add_dead_lettered(1);
    let text = server.get("/metrics").await.text().await.unwrap();

    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type, "samples": {s.name: s.value for s in family.samples}}
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&output.stdout).unwrap();

    // prometheus_client names counter families without the `_total` suffix.
    let family = |name: &str| {
        let key = name.strip_suffix("_total").unwrap_or(name);
        parsed
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing: {:?}", parsed.keys()))
    };
    for name in ALL_FAMILIES {
        let expected = match *name {
            names::LATENCY | names::CHECKPOINT_DURATION => "histogram",
            n if n.ends_with("_total")
                || n == names::CHECKPOINT_FAILED
                || n == names::DEAD_LETTERED =>
            {
                "counter"
            }
            _ => "gauge",
        };
        assert_eq!(family(name)["type"], expected, "{name}");
    }
    assert_eq!(
        family(names::DEAD_LETTERED)["samples"]["failed_records_count_total"],
        1.0
    );
    assert_eq!(
        family(names::LATENCY)["samples"][format!("{}_count", names::LATENCY)],
        1.0
    );
}
