//! The three-process pipeline for real: a MariaDB (cdc-localdb) → `cdc-capture` →
//! `datahub-local` → `file-sink` (Parquet). A workload of inserts, updates and deletes runs
//! while the sink is SIGKILLed and restarted; once the sink has committed the marker row,
//! the committed Parquet files, read with pyarrow and replayed in `_source_pos` order, must
//! equal the table as SELECT shows it — nothing lost, nothing doubled.
//!
//! Binaries: Cargo gives a test only its own package's binaries (`CARGO_BIN_EXE_file-sink`).
//! `datahub-local` and `cdc-capture` are taken from the same directory, which is where a
//! workspace build puts them; the project's test command (`scripts/test.sh`) runs
//! `cargo build --workspace --all-targets` first. Run alone with
//! `cargo build -p datahub-local -p cdc-capture -p file-sink && cargo test -p file-sink --test pipeline`.
//!
//! `FILE_SINK_KILL_ROUNDS` (default 3) sets how many times the sink is killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cdc_event::Position;
use cdc_localdb::process::Process;
use cdc_localdb::workload::SplitMix64;
use cdc_localdb::LocalMariaDb;
use serde_json::Value as Json;

const DEADLINE: Duration = Duration::from_secs(180);
const PROJECT: &str = "cdc_e2e";
const TOPIC: &str = "events";

/// A function binary from this workspace, in the JSON log format our assertions read; killed
/// when dropped (a failing assertion must not leave it running).
struct Proc(Process);

impl Proc {
    fn spawn(name: &'static str, binary: &Path, env: Vec<(String, String)>) -> Proc {
        assert!(binary.exists(), "{} is missing: build the workspace first (cargo build --workspace)", binary.display());
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MONITORING_PORT", "0")
            .env("LOG_LEVEL", "info")
            .env("LOG_FORMAT", "json")
            .envs(env)
            .stdout(Stdio::null());
        Proc(Process::spawn(name, &mut command).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Waits for a log line containing `needle`; returns it.
    fn wait_for_log(&mut self, needle: &str) -> String {
        let seen = self.0.wait_for_log(needle, DEADLINE).unwrap_or_else(|e| panic!("{e}"));
        seen.lines().last().unwrap_or_default().to_owned()
    }

    fn kill(self) {
        self.0.kill();
    }

    /// SIGTERM, then the exit status and the rest of the log.
    fn terminate(self) -> (std::process::ExitStatus, String) {
        self.0.terminate().unwrap_or_else(|e| panic!("{e}"))
    }
}

fn sibling_binary(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_file-sink")).with_file_name(name)
}

/// Polls `condition` until it holds, failing after the deadline.
fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    if let Err(err) = cdc_localdb::process::wait_until(what, DEADLINE, condition) {
        panic!("{err}");
    }
}

fn datahub_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("DATAHUB_ENDPOINT", endpoint),
        ("DATAHUB_ACCESS_ID", "local-id"),
        ("DATAHUB_ACCESS_KEY", "local-key"),
        ("DATAHUB_PROJECT", PROJECT),
        ("DATAHUB_TOPIC", TOPIC),
        ("DATAHUB_CONSUMER_GROUP", "files"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn start_sink(dir: &Path, endpoint: &str) -> Proc {
    let mut env = datahub_env(endpoint);
    env.extend(
        [
            ("OUTPUT_PATH", dir.join("out").display().to_string()),
            ("OUTPUT_FORMAT", "parquet".into()),
            ("CHECKPOINT_DIR", format!("file://{}", dir.join("sink-checkpoints").display())),
            ("CHECKPOINT_INTERVAL", "300".into()),
            ("CHECKPOINT_MIN_PAUSE", "0".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let mut sink = Proc::spawn("file-sink", &sibling_binary("file-sink"), env);
    sink.wait_for_log("file sink running");
    sink
}

/// The committed rows of shop.items as pyarrow reads them: (id, name, qty, position, deleted).
fn committed_rows(out: &Path) -> Vec<(i64, Option<String>, i64, Position, bool)> {
    if !out.join("shop/items").exists() {
        return Vec::new();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sink/tests/read_dataset.py");
    let output = Command::new("python3").arg(&script).arg(out).arg("shop/items").arg("id,name,qty,_source_pos,_deleted").output().expect("python3 runs");
    assert!(output.status.success(), "read_dataset.py: {}", String::from_utf8_lossy(&output.stderr));
    let doc: Json = serde_json::from_slice(&output.stdout).expect("reader prints JSON");
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let position: Position = row[3].as_str().expect("_source_pos").parse().expect("a position");
            (row[0].as_i64().expect("id"), row[1].as_str().map(str::to_owned), row[2].as_i64().expect("qty"), position, row[4].as_bool().expect("_deleted"))
        })
        .collect()
}

/// Replays committed rows in position order: the latest image per key, deletes removing it.
fn replay(mut rows: Vec<(i64, Option<String>, i64, Position, bool)>) -> BTreeMap<i64, (Option<String>, i64)> {
    rows.sort_by(|a, b| a.3.cmp(&b.3));
    let positions: Vec<&Position> = rows.iter().map(|r| &r.3).collect();
    assert!(positions.windows(2).all(|w| w[0] != w[1]), "a change was committed twice");
    let mut table = BTreeMap::new();
    for (id, name, qty, _, deleted) in rows {
        if deleted {
            table.remove(&id);
        } else {
            table.insert(id, (name, qty));
        }
    }
    table
}

fn select_all(db: &LocalMariaDb) -> BTreeMap<i64, (Option<String>, i64)> {
    db.execute("SELECT id, name, qty FROM shop.items ORDER BY id")
        .expect("select")
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let name = (cols[1] != "NULL").then(|| cols[1].to_owned());
            (cols[0].parse().expect("id"), (name, cols[2].parse().expect("qty")))
        })
        .collect()
}

/// `count` small transactions of inserts, updates and deletes.
fn run_workload(db: &LocalMariaDb, rng: &mut SplitMix64, next_id: &mut i64, count: usize) {
    for _ in 0..count {
        let mut sql = String::from("BEGIN;");
        for _ in 0..(1 + rng.below(5)) {
            match rng.below(10) {
                0..=5 => {
                    sql.push_str(&format!("INSERT INTO shop.items VALUES ({id}, 'item {id} ✓', {});", rng.below(1000), id = *next_id));
                    *next_id += 1;
                }
                6..=8 => sql.push_str(&format!("UPDATE shop.items SET qty = qty + 1, name = NULL WHERE id = {};", 1 + rng.below(*next_id as u64))),
                _ => sql.push_str(&format!("DELETE FROM shop.items WHERE id = {};", 1 + rng.below(*next_id as u64))),
            }
        }
        sql.push_str("COMMIT;");
        db.execute(&sql).expect("workload transaction");
    }
}

#[test]
fn capture_datahub_local_file_sink_is_exact_across_sink_sigkills() {
    let rounds: usize = std::env::var("FILE_SINK_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let db = LocalMariaDb::start().expect("MariaDB starts");
    db.execute("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64), qty BIGINT NOT NULL) DEFAULT CHARSET=utf8mb4")
        .expect("schema");

    let mut datahub = Proc::spawn(
        "datahub-local",
        &sibling_binary("datahub-local"),
        vec![
            ("DATAHUB_LOCAL_PORT".into(), "0".into()),
            ("DATAHUB_LOCAL_BIND".into(), "127.0.0.1".into()),
            ("DATAHUB_LOCAL_DATA_DIR".into(), dir.path().join("datahub").display().to_string()),
        ],
    );
    let line = datahub.wait_for_log("serving the DataHub API");
    let addr = line.split("\"api_addr\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_else(|| panic!("no api_addr in {line}"));
    let endpoint = format!("http://{addr}");

    let mut capture_env = datahub_env(&endpoint);
    capture_env.extend(db.env_vars());
    capture_env.extend(
        [
            ("DATABASE_SCHEMA", "shop".to_string()),
            ("DATABASE_SNAPSHOT_MODE", "never".into()),
            ("DATABASE_SERVER_ID", "4343".into()),
            ("DATAHUB_SHARD_COUNT", "4".into()),
            ("CHECKPOINT_DIR", format!("file://{}", dir.path().join("capture-checkpoints").display())),
            ("CHECKPOINT_INTERVAL", "200".into()),
            ("CHECKPOINT_MIN_PAUSE", "0".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let mut capture = Proc::spawn("cdc-capture", &sibling_binary("cdc-capture"), capture_env);
    capture.wait_for_log("streaming the binlog");
    let mut sink = start_sink(dir.path(), &endpoint);

    let mut rng = SplitMix64::new(11);
    let mut next_id = 1i64;
    let mut committed_before_kill = Vec::new();
    for round in 0..rounds {
        // Counted before the round's workload: the sink may commit some of it before the wait
        // starts, and a count taken after that would wait for rows that never come.
        let before = committed_rows(&out).len();
        run_workload(&db, &mut rng, &mut next_id, 40);
        // Kill once this round's rows started reaching committed files: mid-stream, with
        // rows of the round still being read, written and checkpointed.
        wait_until(&format!("round {round}: new committed rows"), || committed_rows(&out).len() > before);
        run_workload(&db, &mut rng, &mut next_id, 20);
        committed_before_kill.push(committed_rows(&out).len());
        sink.kill();
        sink = start_sink(dir.path(), &endpoint);
    }
    run_workload(&db, &mut rng, &mut next_id, 40);

    // The marker is the last change; once committed, everything before it is too (every shard
    // is read, and the sink checkpoints all shards at once).
    db.execute("INSERT INTO shop.items VALUES (-1, 'marker', 0)").expect("marker");
    wait_until("the marker row in committed files", || committed_rows(&out).iter().any(|r| r.0 == -1));
    let rows = committed_rows(&out);
    let expected = select_all(&db);
    let replayed = replay(rows.clone());
    assert_eq!(replayed.len(), expected.len());
    assert_eq!(replayed, expected);

    // Graceful stops exit 0 with a final checkpoint; nothing is left in .inprogress.
    let (status, log) = sink.terminate();
    assert!(status.success(), "file-sink exits 0 on SIGTERM, got {status}:\n{log}");
    let (status, log) = capture.terminate();
    assert!(status.success(), "cdc-capture exits 0 on SIGTERM, got {status}:\n{log}");
    let inprogress: Vec<_> = std::fs::read_dir(out.join(".inprogress")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(inprogress.is_empty(), "files left in .inprogress: {inprogress:?}");
    assert_eq!(replay(committed_rows(&out)), expected, "the final checkpoint added nothing wrong");

    let files = {
        let script_out = Command::new("find").arg(out.join("shop/items")).arg("-name").arg("*.parquet").output().expect("find");
        String::from_utf8_lossy(&script_out.stdout).lines().count()
    };
    println!(
        "{rounds} sink kills (committed rows before each: {committed_before_kill:?}); {} committed rows in {files} Parquet files; {} rows in the table",
        rows.len(),
        expected.len()
    );
}
