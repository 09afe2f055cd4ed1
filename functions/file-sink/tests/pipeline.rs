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

mod common;

use std::path::{Path, PathBuf};

use cdc_localdb::LocalMariaDb;
use common::{committed_rows, replay, select_all, wait_until, Proc, Workload, DEADLINE};

const TOPIC: &str = "events";
const COLUMNS: [&str; 3] = ["id", "name", "qty"];
const SELECT: &str = "SELECT id, name, qty FROM shop.items";

fn sibling_binary(name: &str) -> PathBuf {
    common::sibling_binary(env!("CARGO_BIN_EXE_file-sink"), name)
}

fn start_sink(dir: &Path, endpoint: &str) -> Proc {
    let mut env = common::datahub_env(endpoint, TOPIC, "files");
    env.extend(common::sink_env(&dir.join("out"), &dir.join("sink-checkpoints")));
    let mut sink = Proc::spawn("file-sink", &sibling_binary("file-sink"), env);
    sink.wait_for_log("file sink running");
    sink
}

/// The committed rows of shop.items.
fn committed(out: &Path) -> Vec<common::CommittedRow> {
    committed_rows(out, "items", &COLUMNS).rows
}

#[test]
fn capture_datahub_local_file_sink_is_exact_across_sink_sigkills() {
    let rounds: usize = std::env::var("FILE_SINK_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let db = LocalMariaDb::start().expect("MariaDB starts");
    db.execute(&format!("CREATE DATABASE shop; {}", common::ITEMS_DDL)).expect("schema");

    let mut datahub = Proc::spawn("datahub-local", &sibling_binary("datahub-local"), common::datahub_local_env(&dir.path().join("datahub"), 0));
    let line = datahub.wait_for_log("serving the DataHub API");
    let addr = line.split("\"api_addr\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_else(|| panic!("no api_addr in {line}"));
    let endpoint = format!("http://{addr}");

    let mut capture_env = common::datahub_env(&endpoint, TOPIC, "files");
    capture_env.extend(common::capture_env(&db, &dir.path().join("capture-checkpoints")));
    let mut capture = Proc::spawn("cdc-capture", &sibling_binary("cdc-capture"), capture_env);
    capture.wait_for_log("streaming the binlog");
    let mut sink = start_sink(dir.path(), &endpoint);

    let mut workload = Workload::new(11, false);
    let mut committed_before_kill = Vec::new();
    for round in 0..rounds {
        // Counted before the round's workload: the sink may commit some of it before the wait
        // starts, and a count taken after that would wait for rows that never come.
        let before = committed(&out).len();
        workload.run(&db, 40);
        // Kill once this round's rows started reaching committed files: mid-stream, with
        // rows of the round still being read, written and checkpointed.
        wait_until(&format!("round {round}: new committed rows"), DEADLINE, || committed(&out).len() > before);
        workload.run(&db, 20);
        committed_before_kill.push(committed(&out).len());
        sink.kill();
        sink = start_sink(dir.path(), &endpoint);
    }
    workload.run(&db, 40);

    // The marker is the last change; once committed, everything before it is too (every shard
    // is read, and the sink checkpoints all shards at once).
    db.execute("INSERT INTO shop.items VALUES (-1, 'marker', 0)").expect("marker");
    wait_until("the marker row in committed files", DEADLINE, || committed(&out).iter().any(|r| r.values[0].as_deref() == Some("-1")));
    let rows = committed(&out);
    let expected = select_all(&db, SELECT);
    common::assert_no_position_twice(&rows);
    let replayed = replay(rows.clone());
    assert_eq!(replayed.len(), expected.len());
    assert_eq!(replayed, expected);

    // Graceful stops exit 0 with a final checkpoint; nothing is left in .inprogress.
    let (status, log) = sink.terminate();
    assert!(status.success(), "file-sink exits 0 on SIGTERM, got {status}:\n{log}");
    let (status, log) = capture.terminate();
    assert!(status.success(), "cdc-capture exits 0 on SIGTERM, got {status}:\n{log}");
    let inprogress = common::inprogress_files(&out);
    assert!(inprogress.is_empty(), "files left in .inprogress: {inprogress:?}");
    let last = committed_rows(&out, "items", &COLUMNS);
    assert_eq!(replay(last.rows), expected, "the final checkpoint added nothing wrong");

    println!(
        "{rounds} sink kills (committed rows before each: {committed_before_kill:?}); {} committed rows in {} Parquet files; {} rows in the table",
        rows.len(),
        last.files,
        expected.len()
    );
}
