//! Transform dead letters, end to end with the real binary: a record the transform rules
//! cannot evaluate lands in the DLQ with its reason; `file-sink replay` refuses while the
//! rules are still wrong, and once they are fixed brings the record back exactly once — also
//! across a second replay and a restart of the sink.
//!
//! DataHub is the real server (cdc-datahub over cdc-datalog) in this test's process on
//! 127.0.0.1:0; the sink is this package's binary, writing JSON lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cdc_datahub::{DatahubClient, DatahubPublisher, PublisherOptions, ServerConfig};
use cdc_datalog::{Datalog, LogOptions};
use cdc_event::{ChangeEvent, ColumnDef, ColumnType, Event, Op, Position, Row, ServerFlavor, TableId, TableSchema, Value};
use cdc_localdb::process::Process;
use serde_json::Value as Json;

const DEADLINE: Duration = Duration::from_secs(120);
const PROJECT: &str = "tx_dlq";
const TOPIC: &str = "events";

/// Filters orders by a reference that is numeric for most rows; `N/A` cannot be compared.
const BROKEN_RULES: &str = "rules:\n  - table: shop.orders\n    columns: {rename: {ref: reference}}\n    filter: \"ref >= 1000\"\n";
/// The fix decides `N/A` first, so it is never compared with a number.
const FIXED_RULES: &str = "rules:\n  - table: shop.orders\n    columns: {rename: {ref: reference}}\n    filter: \"ref = 'N/A' OR ref >= 1000\"\n";

fn orders_schema() -> Arc<TableSchema> {
    let columns = vec![
        ColumnDef::new("id", ColumnType::Int { unsigned: false }, false),
        ColumnDef::new("ref", ColumnType::VarChar { length: 16, charset: "utf8mb4".into() }, true),
    ];
    let primary_key = vec!["id".to_owned()];
    let version = TableSchema::fingerprint(&columns, &primary_key);
    Arc::new(TableSchema { table: TableId::new("shop", "orders"), version, columns, primary_key })
}

fn order(id: i32, reference: &str) -> Event {
    Event::Change(ChangeEvent {
        op: Op::Insert,
        schema: orders_schema(),
        before: None,
        after: Some(Row::new(vec![Value::Int(i64::from(id)), Value::Text(reference.into())])),
        position: Position::stream(ServerFlavor::MySql, "binlog.000001", 1000 + u64::try_from(id).unwrap_or_default()),
        commit_ts_ms: 1_715_932_800_000 + i64::from(id),
        tx_id: None,
        source_name: Arc::from("src"),
        server_id: 1,
    })
}

struct Harness {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    endpoint: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    fn start() -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(Datalog::open(dir.path().join("datahub"), LogOptions::default()).expect("datalog"));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(cdc_datahub::serve(listener, ServerConfig::new(log), async move {
            let _ = stopped.await;
        }));
        Harness { rt, dir, endpoint, _stop: stop }
    }

    fn publish(&self, events: Vec<Event>) {
        self.rt.block_on(async {
            let client = DatahubClient::builder(&self.endpoint).with_credentials("id", "key").build().expect("client");
            let mut publisher = DatahubPublisher::connect(Arc::new(client), PublisherOptions::new(PROJECT, TOPIC)).await.expect("topic");
            publisher.publish_events(&events).await.expect("published");
        });
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn rules(&self, text: &str) -> String {
        let path = self.dir.path().join("rules.yml");
        std::fs::write(&path, text).expect("rules file");
        path.display().to_string()
    }

    fn command(&self, rules: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_file-sink"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MONITORING_PORT", "0")
            .env("LOG_LEVEL", "info")
            .env("LOG_FORMAT", "json")
            .env("DATAHUB_ENDPOINT", &self.endpoint)
            .env("DATAHUB_ACCESS_ID", "id")
            .env("DATAHUB_ACCESS_KEY", "key")
            .env("DATAHUB_PROJECT", PROJECT)
            .env("DATAHUB_TOPIC", TOPIC)
            .env("DATAHUB_CONSUMER_GROUP", "files")
            .env("OUTPUT_PATH", self.out())
            .env("OUTPUT_FORMAT", "json")
            .env("CHECKPOINT_DIR", format!("file://{}", self.dir.path().join("checkpoints").display()))
            .env("CHECKPOINT_INTERVAL", "200")
            .env("CHECKPOINT_MIN_PAUSE", "0")
            .env("TRANSFORM_CONFIG", self.rules(rules))
            .stdout(Stdio::piped());
        command
    }

    fn start_sink(&self, rules: &str) -> Process {
        let mut command = self.command(rules);
        command.stdout(Stdio::null());
        let mut sink = Process::spawn("file-sink", &mut command).unwrap_or_else(|e| panic!("{e}"));
        sink.wait_for_log("file sink running", DEADLINE).unwrap_or_else(|e| panic!("{e}"));
        sink
    }

    /// `file-sink replay`: (success, stdout, stderr).
    fn replay(&self, rules: &str) -> (bool, String, String) {
        let output = self.command(rules).arg("replay").stderr(Stdio::piped()).output().expect("replay runs");
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Committed JSON-lines rows per file, outside `.inprogress` and `dlq`.
fn committed_rows(out: &Path) -> Vec<(String, Json)> {
    fn walk(dir: &Path, rows: &mut Vec<(String, Json)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != ".inprogress" && name != "dlq" {
                    walk(&path, rows);
                }
            } else if name.ends_with(".jsonl") {
                let text = std::fs::read_to_string(&path).expect("read committed file");
                rows.extend(text.lines().map(|l| (name.clone(), serde_json::from_str(l).expect("a JSON row"))));
            }
        }
    }
    let mut rows = Vec::new();
    walk(out, &mut rows);
    rows
}

/// id → how many committed rows have it.
fn id_counts(out: &Path) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for (_, row) in committed_rows(out) {
        *counts.entry(row["id"].as_i64().expect("id")).or_default() += 1;
    }
    counts
}

fn dlq_files(out: &Path, under: &str) -> Vec<String> {
    let dir = out.join("dlq").join(under);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.path().is_file()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    if let Err(err) = cdc_localdb::process::wait_until(what, DEADLINE, condition) {
        panic!("{err}");
    }
}

#[test]
fn a_transform_failure_is_dead_lettered_and_replayed_exactly_once_after_the_fix() {
    let h = Harness::start();
    let out = h.out();
    h.publish(vec![order(1, "1001"), order(2, "7"), order(3, "N/A"), order(4, "2002"), order(5, "1500")]);

    // The broken rules: 7 is filtered out, N/A cannot be evaluated → dead letter.
    let sink = h.start_sink(BROKEN_RULES);
    wait_until("the dead letter and rows 1, 4, 5 committed", || {
        !dlq_files(&out, "").is_empty() && id_counts(&out).len() == 3
    });
    let (status, log) = sink.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "file-sink exits 0 on SIGTERM:\n{log}");
    assert_eq!(id_counts(&out), BTreeMap::from([(1, 1), (4, 1), (5, 1)]));
    let rows = committed_rows(&out);
    assert!(rows.iter().all(|(_, r)| r.get("reference").is_some() && r.get("ref").is_none()), "renamed column: {rows:?}");

    let files = dlq_files(&out, "");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".transform.jsonl"), "{files:?}");
    let text = std::fs::read_to_string(out.join("dlq").join(&files[0])).expect("dlq file");
    let lines: Vec<Json> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let letter = &lines[0];
    assert_eq!(letter["stage"], "transform");
    assert_eq!(letter["table"], "shop.orders");
    let reason = letter["error"].as_str().unwrap_or_default();
    assert!(reason.contains("ref >= 1000") && reason.contains("'N/A'") && reason.contains("not a number"), "{reason}");
    assert_eq!(letter["record"]["payload"]["after"]["ref"], "N/A", "the event before the rules: {letter}");

    // Replay with the rules still broken: refused, nothing moved or written.
    let (ok, stdout, stderr) = h.replay(BROKEN_RULES);
    assert!(!ok, "replay must refuse while the transform still fails:\n{stdout}\n{stderr}");
    assert!(stderr.contains("would fail again") && stderr.contains("not a number"), "{stderr}");
    assert_eq!(dlq_files(&out, ""), files);
    assert!(dlq_files(&out, "replayed").is_empty());

    // The fix: replayed once, with the fixed rules (renamed column), moved to dlq/replayed.
    let (ok, stdout, stderr) = h.replay(FIXED_RULES);
    assert!(ok, "replay with fixed rules:\n{stdout}\n{stderr}");
    assert!(stdout.contains("replayed 1 of 1"), "{stdout}");
    assert_eq!(id_counts(&out), BTreeMap::from([(1, 1), (3, 1), (4, 1), (5, 1)]));
    let replayed = committed_rows(&out).into_iter().find(|(_, r)| r["id"] == 3).expect("row 3");
    assert_eq!(replayed.1["reference"], "N/A");
    assert!(dlq_files(&out, "").is_empty());
    assert_eq!(dlq_files(&out, "replayed").len(), 1);

    // A second replay finds nothing; a restarted sink does not read the dead-lettered record
    // again (its offset is in the checkpoint): a marker published after it arrives alone.
    let (ok, stdout, _) = h.replay(FIXED_RULES);
    assert!(ok && stdout.contains("replayed 0 of 0"), "{stdout}");
    let sink = h.start_sink(FIXED_RULES);
    h.publish(vec![order(6, "9999")]);
    wait_until("the marker row committed", || id_counts(&out).contains_key(&6));
    let (status, log) = sink.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{log}");
    assert_eq!(id_counts(&out), BTreeMap::from([(1, 1), (3, 1), (4, 1), (5, 1), (6, 1)]), "each row exactly once");
    assert!(dlq_files(&out, "").is_empty(), "nothing dead-lettered again");
}
