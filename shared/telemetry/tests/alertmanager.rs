//! The in-process alerts end to end, against a real Alertmanager (Debian's
//! `prometheus-alertmanager`, 0.25) run with the repository's `deploy/alertmanager/alertmanager.yml`
//! (its webhook pointed at this test, its group timings shortened).
//!
//! Each test provokes one alert through the metrics of a running ops server and checks, while
//! it fires, that Alertmanager lists it as active, its webhook receives it (through the route
//! of its severity), `/health` lists it and reports DEGRADED, and `/metrics` has its
//! `cdc_alert_firing` gauge at 1; then ends the condition and checks the resolution in the
//! same four places. Rules use short `for` durations and windows, and every wait is on a
//! condition with a deadline.
//!
//! Without the Alertmanager binary the tests print why and pass:
//! `apt-get install -y prometheus-alertmanager` (scripts/install-test-deps.sh does it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use cdc_telemetry::{
    alert_names, AlertName, AlertRules, AlertingOptions, FunctionContext, PipelineMetrics,
    RunningOpsServer,
};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::Value;

const FUNCTION: &str = "alert-test";
/// How long any one condition may take before the test fails (a hang turned into a message).
const DEADLINE: Duration = Duration::from_secs(60);
/// Time between two looks at the four places an alert shows.
const POLL: Duration = Duration::from_millis(100);

// ----- Alertmanager ------------------------------------------------------------------------

fn find_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ALERTMANAGER_BIN") {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH")?;
    // Debian names it prometheus-alertmanager; upstream tarballs alertmanager.
    ["prometheus-alertmanager", "alertmanager"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A private Alertmanager on 127.0.0.1, killed on drop.
struct Alertmanager {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's Alertmanager configuration with every receiver's webhook pointed at
/// `webhook` and group timings short enough for a test. Fails if the file no longer has what
/// is replaced, so a change there is noticed here.
fn test_config(webhook: &str) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/alertmanager/alertmanager.yml");
    let original = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut config = original.clone();
    for (from, to) in [
        ("http://alertmanager-webhook:8080/alerts", webhook),
        ("group_wait: 10s", "group_wait: 100ms"),
        ("group_interval: 10s", "group_interval: 500ms"),
    ] {
        assert!(
            config.contains(from),
            "{} no longer contains {from:?}",
            path.display()
        );
        config = config.replace(from, to);
    }
    config
}

impl Alertmanager {
    async fn start(webhook: &str) -> Option<Self> {
        let Some(binary) = find_binary() else {
            eprintln!(
                "SKIPPED: no Alertmanager binary (prometheus-alertmanager or alertmanager in PATH, \
                 or ALERTMANAGER_BIN); install it with `apt-get install -y prometheus-alertmanager` \
                 or scripts/install-test-deps.sh"
            );
            return None;
        };
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, test_config(webhook)).unwrap();
        let client = { cdc_telemetry::install_crypto_provider(); reqwest::Client::new() };
        // The port is picked by binding :0 and released for Alertmanager: another process may
        // take it in between, so a failed start is retried on a fresh port.
        for attempt in 1..=3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = dir.path().join(format!("alertmanager-{attempt}.log"));
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // No gossip port: a single, private instance.
                .arg("--cluster.listen-address=")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let mut am = Alertmanager {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
                _dir: dir.clone(),
            };
            let deadline = Instant::now() + DEADLINE;
            loop {
                let ready = client.get(format!("{}/-/ready", am.url)).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    return Some(am);
                }
                if let Ok(Some(status)) = am.child.try_wait() {
                    eprintln!(
                        "Alertmanager exited ({status}) on attempt {attempt}:\n{}",
                        am.log_text()
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "Alertmanager not ready:\n{}",
                    am.log_text()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("Alertmanager did not start in three attempts");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Alerts Alertmanager currently holds as active (resolved ones are not listed).
    async fn active(&self, client: &reqwest::Client, alert: AlertName) -> Option<Value> {
        let alerts: Value = client
            .get(format!("{}/api/v2/alerts", self.url))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        alerts
            .as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == alert.as_str() && a["status"]["state"] == "active"
            })
            .cloned()
    }
}

// ----- the webhook Alertmanager notifies --------------------------------------------------

#[derive(Clone, Default)]
struct Webhook {
    received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    async fn serve(&self) -> SocketAddr {
        async fn receive(State(hook): State<Webhook>, Json(body): Json<Value>) {
            hook.received.lock().unwrap().push(body);
        }
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// The first notification (with the alert in it) whose alert for `alert` has `status`.
    fn find(&self, alert: AlertName, status: &str) -> Option<(Value, Value)> {
        let received = self.received.lock().unwrap();
        received.iter().find_map(|message| {
            let item = message["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == alert.as_str() && a["status"] == status)?;
            Some((message.clone(), item.clone()))
        })
    }
}

// ----- the function under test ------------------------------------------------------------

struct Setup {
    am: Alertmanager,
    hook: Webhook,
    ctx: FunctionContext,
    ops: RunningOpsServer,
    client: reqwest::Client,
}

/// The guide's rules with test-sized `for` durations and windows; load is off (a threshold of
/// 1 is never exceeded) unless a test sets it, since CPU use while a test starts is not ours
/// to control.
fn rules() -> AlertRules {
    AlertRules::default()
        .with_for_all(Duration::from_millis(300))
        .with_for(AlertName::DeadLetterQueueGrowing, Duration::ZERO)
        .with_checkpoint_window(Duration::from_secs(1))
        .with_dead_letter_window(Duration::from_secs(1))
        .with_load_threshold(1.0)
}

async fn setup(rules: AlertRules) -> Option<Setup> {
    let hook = Webhook::default();
    let hook_addr = hook.serve().await;
    let am = Alertmanager::start(&format!("http://{hook_addr}/hook")).await?;
    let options = AlertingOptions::new(rules)
        .with_interval(Duration::from_millis(100))
        // Firing alerts are sent valid for four resend intervals (2 min here, longer than any
        // wait below), so a resolution Alertmanager reports can only come from the one this
        // process sends, not from the alert expiring there.
        .with_resend_interval(Duration::from_secs(30))
        .with_alertmanager(am.url.clone())
        .with_label("cluster", "test");
    let ctx = FunctionContext::builder(FUNCTION)
        .with_alerting(options)
        .build()
        .unwrap();
    let ops = ctx
        .start_ops_server(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    Some(Setup {
        am,
        hook,
        ctx,
        ops,
        client: { cdc_telemetry::install_crypto_provider(); reqwest::Client::new() },
    })
}

/// What the ops server shows about one alert.
struct Shown {
    health_status: String,
    health_code: u16,
    /// The alert's entry in `/health`'s `alerts`, if listed.
    health_entry: Option<Value>,
    /// `cdc_alert_firing` per alert name.
    gauges: Vec<(String, f64)>,
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.ops.local_addr(), path)
    }

    async fn shown(&self, alert: AlertName) -> Shown {
        let response = self.client.get(self.url("/health")).send().await.unwrap();
        let health_code = response.status().as_u16();
        let health: Value = response.json().await.unwrap();
        let health_entry = health["alerts"]
            .as_array()
            .unwrap_or_else(|| panic!("/health has no alerts list: {health}"))
            .iter()
            .find(|a| a["name"] == alert.as_str())
            .cloned();
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let gauges = scrape
            .samples
            .iter()
            .filter(|s| s.metric == alert_names::ALERT_FIRING)
            .map(|s| {
                let Sample::Gauge(v) = s.value else {
                    panic!("{} is not a gauge: {s:?}", alert_names::ALERT_FIRING)
                };
                (s.labels.get("alertname").unwrap_or_default().to_owned(), v)
            })
            .collect();
        Shown {
            health_status: health["status"].as_str().unwrap_or_default().to_owned(),
            health_code,
            health_entry,
            gauges,
        }
    }

    async fn status(&self, path: &str) -> u16 {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Shown {
    fn gauge(&self, alert: AlertName) -> f64 {
        self.gauges
            .iter()
            .find(|(name, _)| name == alert.as_str())
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

/// Provokes `alert` (calling `provoke` between looks until it is seen firing everywhere), then
/// ends the condition (calling `calm` likewise until it is seen resolved everywhere).
async fn provoke_and_resolve(
    s: &Setup,
    alert: AlertName,
    mut provoke: impl FnMut(&PipelineMetrics),
    mut calm: impl FnMut(&PipelineMetrics),
) {
    let metrics = s.ctx.metrics();
    let deadline = Instant::now() + DEADLINE;

    // ---- firing: Alertmanager, webhook, /health, /metrics --------------------------------
    let (mut in_am, mut notified, mut in_health, mut in_metrics) = (None, None, false, false);
    loop {
        provoke(metrics);
        if in_am.is_none() {
            in_am = s.am.active(&s.client, alert).await;
        }
        if notified.is_none() {
            notified = s.hook.find(alert, "firing");
        }
        let shown = s.shown(alert).await;
        if let Some(entry) = &shown.health_entry {
            if entry["state"] == "firing" {
                assert_eq!(
                    shown.health_status, "DEGRADED",
                    "a firing alert degrades /health"
                );
                assert_eq!(shown.health_code, 200, "DEGRADED still answers 200");
                in_health = true;
            }
        }
        if shown.gauge(alert) == 1.0 {
            for other in AlertName::ALL.into_iter().filter(|a| *a != alert) {
                assert_eq!(
                    shown.gauge(other),
                    0.0,
                    "{other} fires while only {alert} was provoked"
                );
            }
            in_metrics = true;
        }
        if in_am.is_some() && notified.is_some() && in_health && in_metrics {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{alert} not seen firing everywhere: Alertmanager {in_am:?}, webhook {notified:?}, \
             /health {in_health}, /metrics {in_metrics}; webhook got {:?}\nAlertmanager log:\n{}",
            s.hook.received.lock().unwrap(),
            s.am.log_text()
        );
        tokio::time::sleep(POLL).await;
    }
    // Liveness and readiness ignore alerts.
    assert_eq!(s.status("/health/live").await, 200);
    assert_eq!(s.status("/health/ready").await, 200);

    // What Alertmanager holds and what it notified carry our labels and annotations.
    let held = in_am.unwrap_or_default();
    let severity = alert.severity().as_str();
    assert_eq!(held["labels"]["severity"], severity, "{held}");
    assert_eq!(held["labels"]["function"], FUNCTION, "{held}");
    assert_eq!(held["labels"]["cluster"], "test", "{held}");
    let instance = held["labels"]["instance"].as_str().unwrap_or_default();
    assert!(
        instance.ends_with(&format!(":{}", s.ops.local_addr().port())),
        "{held}"
    );
    assert_eq!(held["annotations"]["summary"], alert.summary(), "{held}");
    assert!(
        held["annotations"]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{held}"
    );
    assert_eq!(
        held["generatorURL"],
        format!("http://{instance}/health"),
        "{held}"
    );
    let (message, item) = notified.unwrap_or_default();
    // The guide's routes send each severity to the receiver of that name.
    assert_eq!(message["receiver"], severity, "{message}");
    assert_eq!(item["labels"], held["labels"], "{message}");
    let starts_at = item["startsAt"].clone();

    // ---- resolved: the same four places -------------------------------------------------
    let deadline = Instant::now() + DEADLINE;
    let (mut gone_from_am, mut resolved, mut gone_from_health) = (false, None, false);
    loop {
        calm(metrics);
        if !gone_from_am {
            gone_from_am = s.am.active(&s.client, alert).await.is_none();
        }
        if resolved.is_none() {
            resolved = s.hook.find(alert, "resolved");
        }
        let shown = s.shown(alert).await;
        if shown.health_entry.is_none() {
            assert_eq!(shown.health_status, "UP", "nothing fires any more");
            gone_from_health = true;
        }
        let gauge_zero = shown.gauge(alert) == 0.0;
        if gone_from_am && resolved.is_some() && gone_from_health && gauge_zero {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{alert} not seen resolved everywhere: gone from Alertmanager {gone_from_am}, \
             webhook {resolved:?}, gone from /health {gone_from_health}, gauge 0 {gauge_zero}"
        );
        tokio::time::sleep(POLL).await;
    }
    let (message, item) = resolved.unwrap_or_default();
    assert_eq!(message["status"], "resolved", "{message}");
    assert_eq!(
        item["startsAt"], starts_at,
        "the same alert, resolved: {message}"
    );
    let ends_at = item["endsAt"].as_str().unwrap_or_default();
    let ends_at = chrono::DateTime::parse_from_rfc3339(ends_at).unwrap();
    let starts_at = chrono::DateTime::parse_from_rfc3339(starts_at.as_str().unwrap()).unwrap();
    assert!(ends_at > starts_at, "{message}");
}

/// Before anything is provoked: every gauge is there, at 0, and /health is UP.
async fn assert_quiet(s: &Setup) {
    let shown = s.shown(AlertName::HighDataLatency).await;
    assert_eq!(
        shown.gauges.len(),
        AlertName::ALL.len(),
        "{:?}",
        shown.gauges
    );
    assert!(
        shown.gauges.iter().all(|(_, v)| *v == 0.0),
        "{:?}",
        shown.gauges
    );
    assert_eq!(shown.health_status, "UP");
    assert_eq!(shown.health_code, 200);
}

// ----- one test per alert -----------------------------------------------------------------

#[tokio::test]
async fn high_data_latency_fires_and_resolves() {
    let rules = rules().with_latency_threshold_ms(30_000.0);
    let Some(s) = setup(rules).await else { return };
    assert_quiet(&s).await;
    provoke_and_resolve(
        &s,
        AlertName::HighDataLatency,
        |m| m.observe_latency(Duration::from_secs(45)),
        // Fast records push the p99 of the latency window back under the threshold.
        |m| {
            for _ in 0..1000 {
                m.observe_latency(Duration::from_millis(20));
            }
        },
    )
    .await;
}

#[tokio::test]
async fn high_checkpoint_failure_rate_fires_and_resolves() {
    let Some(s) = setup(rules()).await else {
        return;
    };
    assert_quiet(&s).await;
    provoke_and_resolve(
        &s,
        AlertName::HighCheckpointFailureRate,
        |m| {
            m.checkpoint_completed(Duration::from_millis(5), 100);
            m.checkpoint_failed(Duration::from_millis(50));
        },
        // Only successful checkpoints from now on: the failures leave the window.
        |m| m.checkpoint_completed(Duration::from_millis(5), 100),
    )
    .await;
}

#[tokio::test]
async fn high_backpressure_fires_and_resolves() {
    let Some(s) = setup(rules()).await else {
        return;
    };
    assert_quiet(&s).await;
    provoke_and_resolve(
        &s,
        AlertName::HighBackpressure,
        |m| m.set_backpressure(0.95),
        |m| m.set_backpressure(0.1),
    )
    .await;
}

#[tokio::test]
async fn dead_letter_queue_growth_fires_and_resolves() {
    let Some(s) = setup(rules()).await else {
        return;
    };
    assert_quiet(&s).await;
    provoke_and_resolve(
        &s,
        AlertName::DeadLetterQueueGrowing,
        |m| m.add_dead_lettered(3),
        // No new dead letters: the growth leaves the window.
        |_| {},
    )
    .await;
}

/// Spinning threads raise this process's CPU use (`flink_taskmanager_cpu_usage`, the load the
/// alert measures) above a low threshold; stopping them brings it back under.
#[tokio::test]
async fn high_load_fires_and_resolves() {
    // Low enough that spinning on every core exceeds it even on a busy machine, high enough
    // that this process idling between polls stays under it.
    let Some(s) = setup(rules().with_load_threshold(0.1)).await else {
        return;
    };
    let spin = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            let (spin, stop) = (spin.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    if spin.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    } else {
                        // Idle between checks of the flags without using CPU.
                        std::thread::park_timeout(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    provoke_and_resolve(
        &s,
        AlertName::HighCpuUsage,
        |_| spin.store(true, Ordering::Relaxed),
        |_| spin.store(false, Ordering::Relaxed),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for spinner in spinners {
        spinner.join().unwrap();
    }
}
