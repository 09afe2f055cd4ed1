//! The `cdc-capture` binary as an operator runs it: configured by the guide's environment
//! variables, validating its whole configuration, serving the ops endpoints over real HTTP.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use cdc_localdb::process::Process;
use cdc_localdb::LocalMariaDb;

fn capture() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdc-capture"));
    // Only what the test sets: no CONFIG_FILE, DATABASE_* or RUST_LOG from the caller.
    command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command.current_dir(std::env::temp_dir());
    // Capture publishes to DataHub, so its configuration needs an endpoint and credentials.
    command
        .env("DATAHUB_ENDPOINT", "http://127.0.0.1:9")
        .env("DATAHUB_ACCESS_ID", "test-id")
        .env("DATAHUB_ACCESS_KEY", "test-key");
    command
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn three_independent_mistakes_are_reported_together_and_the_secret_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("db_password");
    std::fs::write(&secret_file, "hunter2-very-secret\n").unwrap();
    let output = capture()
        .env("DATABASE_PASSWORD_FILE", &secret_file)
        .env("DATABASE_PORT", "not-a-port")
        .env("CHECKPOINT_INTERVAL", "-5")
        .env("LOG_LEVEL", "LOUD")
        .arg("check")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for expected in ["DATABASE_PORT", "CHECKPOINT_INTERVAL", "LOG_LEVEL", "1.", "2.", "3."] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    let all = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
    assert!(!all.contains("hunter2"), "the secret leaked:\n{all}");
}

#[test]
fn check_config_prints_the_redacted_effective_configuration() {
    let output = capture()
        .env("DATABASE_PASSWORD", "hunter2-very-secret")
        .env("DATABASE_HOST", "db.example")
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config["database"]["host"], "db.example");
    assert_eq!(config["database"]["password"], "***");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("hunter2"));
}

#[test]
fn check_against_a_real_mariadb_lists_the_tables_and_passes() {
    let db = LocalMariaDb::start().unwrap();
    db.execute("CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, note TEXT)").unwrap();
    let output = capture().envs(db.env_vars()).env("DATABASE_SCHEMA", "shop").arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("source: mariadb"), "{stdout}");
    assert!(stdout.contains("pre-flight: OK"), "{stdout}");
    assert!(stdout.contains("shop.orders") && stdout.contains("key (id)"), "{stdout}");

    // A table that does not exist is a pre-flight failure: exit 1 with the fix.
    let output = capture()
        .envs(db.env_vars())
        .env("DATABASE_SCHEMA", "shop")
        .env("DATABASE_TABLES", "orders,missing")
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("shop.missing") && stdout.contains("fix:"), "{stdout}");
}

#[tokio::test]
async fn serves_the_ops_endpoints_and_stops_on_sigterm() {
    let db = tokio::task::spawn_blocking(LocalMariaDb::start).await.unwrap().unwrap();
    db.execute("CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT PRIMARY KEY)").unwrap();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut command = capture();
    command
        .envs(db.env_vars())
        .env("DATABASE_SCHEMA", "shop")
        .env("DATABASE_SNAPSHOT_MODE", "never")
        .env("DATAHUB_ENDPOINT", format!("file://{}", dir.path().join("events.jsonl").display()))
        .env("CHECKPOINT_DIR", format!("file://{}", dir.path().join("checkpoints").display()))
        .env("MONITORING_PORT", port.to_string())
        .env("LOG_FORMAT", "json");
    let mut child = Process::spawn("cdc-capture", &mut command).unwrap();
    // Wait for the log line that says capture is streaming (a condition, not a sleep).
    let log = child.wait_for_log("streaming the binlog", Duration::from_secs(60)).unwrap();
    assert!(log.contains("Configuration validation passed"), "{log}");

    let base = format!("http://127.0.0.1:{port}");
    let http = { cdc_telemetry::install_crypto_provider(); reqwest::Client::new() };
    let live = http.get(format!("{base}/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "UP", "{body}");
    assert_eq!(body["checks"]["binlog"], "UP", "{body}");
    assert_eq!(body["details"]["server"]["flavor"], "mariadb", "{body}");
    assert_eq!(body["details"]["capture"]["phase"], "streaming", "{body}");
    assert!(body["details"]["capture"]["position"].as_str().is_some_and(|p| p.contains("binlog.")), "{body}");
    let ready = http.get(format!("{base}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("flink_checkpoint_total"), "{metrics}");

    // The database going away turns its check DOWN and the function not ready, while capture
    // keeps running and retrying.
    drop(db);
    let health: serde_json::Value = http.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["checks"]["database"], "DOWN", "{health}");
    let ready = http.get(format!("{base}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    // Capture keeps retrying the lost binlog connection and still stops cleanly on SIGTERM.
    let (status, log) = child.terminate().unwrap();
    assert!(status.success(), "graceful stop should exit 0, got {status}:\n{log}");
}
