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

/// The sink and its ops port.
fn start_sink(dir: &Path, endpoint: &str) -> (Proc, u16) {
    let mut env = common::datahub_env(endpoint, TOPIC, "files");
    env.extend(common::sink_env(&dir.join("out"), &dir.join("sink-checkpoints")));
    let mut sink = Proc::spawn("file-sink", &sibling_binary("file-sink"), env);
    let line = sink.wait_for_log("serving /health");
    let port = line
        .split("\"ops_addr\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no ops_addr in {line}"));
    sink.wait_for_log("file sink running");
    (sink, port)
}

/// The sample count of the end-to-end latency histogram on the sink's `/metrics`.
fn latency_samples(ops_port: u16) -> u64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", ops_port)).expect("ops port");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    let line = text.lines().find(|l| l.starts_with("cdc_end_to_end_latency_ms_count")).unwrap_or_else(|| panic!("no latency histogram in /metrics:\n{text}"));
    line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()).unwrap_or_else(|| panic!("unreadable: {line}")) as u64
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
    let (mut sink, mut ops_port) = start_sink(dir.path(), &endpoint);

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
        (sink, ops_port) = start_sink(dir.path(), &endpoint);
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
    // The rows this sink committed were measured from their source commit to their file's commit.
    assert!(latency_samples(ops_port) > 0, "the sink observed no end-to-end latency");

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
