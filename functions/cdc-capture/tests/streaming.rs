//! Capture as a real process taking an initial snapshot of a real MariaDB and then streaming
//! its binlog into the JSON-lines bus, killed with SIGKILL at random moments (during the
//! snapshot and during streaming) under a continuous workload and restarted: the published
//! events, with replays dropped by position, rebuild the table exactly.
//!
//! `CDC_CAPTURE_KILL_ROUNDS` (default 20) sets how many kills.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdc_bus::JsonLinesBus;
use cdc_event::{ChangeEvent, Op, Position, Value};
use cdc_localdb::workload::SplitMix64;
use cdc_localdb::process::Process;
use cdc_localdb::LocalMariaDb;

const DEADLINE: Duration = Duration::from_secs(120);

/// `cdc-capture` against `db`'s `shop` schema, publishing to `dir/events.jsonl` with its
/// checkpoints and savepoints under `dir`: only the environment the test sets.
fn capture_command(db: &LocalMariaDb, dir: &Path, server_id: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdc-capture"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(db.env_vars())
        .env("DATABASE_SCHEMA", "shop")
        .env("DATABASE_SNAPSHOT_MODE", "initial")
        .env("DATABASE_SERVER_ID", server_id)
        .env("DATAHUB_ENDPOINT", format!("file://{}", dir.join("events.jsonl").display()))
        .env("CHECKPOINT_DIR", format!("file://{}", dir.join("checkpoints").display()))
        .env("SAVEPOINT_DIR", format!("file://{}", dir.join("savepoints").display()))
        .env("MONITORING_PORT", "0")
        .env("LOG_LEVEL", "info");
    command
}

fn start_capture(db: &LocalMariaDb, dir: &Path, extra: &[&str]) -> Process {
    let mut command = capture_command(db, dir, "4242");
    command
        .env("DATABASE_SNAPSHOT_CHUNK_SIZE", "200")
        .env("CHECKPOINT_INTERVAL", "100")
        .env("CHECKPOINT_MIN_PAUSE", "0")
        .args(extra);
    Process::spawn("cdc-capture", &mut command).unwrap()
}

fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    if let Err(err) = cdc_localdb::process::wait_until(what, DEADLINE, condition) {
        panic!("{err}");
    }
}

fn line_count(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}



/// Applies events in order, dropping replays (position ≤ the highest seen), and checks that
/// every replayed stream event is an exact copy of the event first published at that
/// position. (A replayed snapshot chunk is re-read in a new snapshot transaction, so its rows
/// may be newer; streaming from the snapshot's position brings every row to its final state.)
fn apply(changes: &[ChangeEvent]) -> (BTreeMap<i64, Vec<Value>>, usize) {
    let mut table = BTreeMap::new();
    let mut seen: BTreeMap<Position, &ChangeEvent> = BTreeMap::new();
    let mut high: Option<Position> = None;
    let mut replays = 0;
    for change in changes {
        if high.as_ref().is_some_and(|h| &change.position <= h) {
            let first = seen.get(&change.position).expect("a replayed position was published before");
            if change.position.phase == cdc_event::Phase::Stream {
                assert_eq!(*first, change, "a replay differs from the original at {}", change.position);
            }
            replays += 1;
            continue;
        }
        high = Some(change.position.clone());
        seen.insert(change.position.clone(), change);
        let image = match change.op {
            Op::Delete => None,
            _ => change.after.as_ref(),
        };
        let row = change.before.as_ref().or(change.after.as_ref()).expect("an image");
        let Value::Int(id) = row.values[0] else { panic!("id is an INT") };
        match image {
            Some(after) => {
                // An update may change the key: drop the old key first.
                if let Some(before) = &change.before {
                    if let Value::Int(old) = before.values[0] {
                        table.remove(&old);
                    }
                }
                let Value::Int(new_id) = after.values[0] else { panic!("id is an INT") };
                table.insert(new_id, after.values.clone());
            }
            None => {
                table.remove(&id);
            }
        }
    }
    (table, replays)
}

fn select_all(db: &LocalMariaDb) -> BTreeMap<i64, Vec<Value>> {
    db.execute("SELECT id, name, qty FROM shop.items ORDER BY id")
        .unwrap()
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let id: i64 = cols[0].parse().unwrap();
            let name = if cols[1] == "NULL" { Value::Null } else { Value::Text(cols[1].to_owned()) };
            (id, vec![Value::Int(id), name, Value::Int(cols[2].parse().unwrap())])
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_replays_are_droppable() {
    let rounds: usize = std::env::var("CDC_CAPTURE_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let db = LocalMariaDb::start().unwrap();
    db.execute("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64), qty BIGINT NOT NULL) DEFAULT CHARSET=utf8mb4")
        .unwrap();
    // Rows for the snapshot to read: ids far above the workload's so both touch distinct rows
    // and the workload's updates and deletes also reach snapshot rows.
    let preload: Vec<String> = (0..5000).map(|i| format!("({}, 'preloaded {i}', {i})", 1_000_000 + i)).collect();
    db.execute(&format!("INSERT INTO shop.items VALUES {}", preload.join(","))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");

    let mut child = start_capture(&db, dir.path(), &[]);
    child.wait_for_log("initial snapshot started", DEADLINE).unwrap();

    // A continuous workload: small transactions of inserts, updates and deletes.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let target = db.root().join("mariadbd.sock");
        std::thread::spawn(move || {
            let mut rng = SplitMix64::new(7);
            let mut next_id = 1i64;
            let mut statements = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut sql = String::from("BEGIN;");
                for _ in 0..(1 + rng.below(5)) {
                    match rng.below(10) {
                        0..=5 => {
                            sql.push_str(&format!(
                                "INSERT INTO shop.items VALUES ({next_id}, 'item {next_id} ✓', {});",
                                rng.below(1000)
                            ));
                            next_id += 1;
                        }
                        6..=8 => sql.push_str(&format!(
                            "UPDATE shop.items SET qty = qty + 1, name = NULL WHERE id IN ({}, {});",
                            1 + rng.below(next_id as u64),
                            1_000_000 + rng.below(5000)
                        )),
                        _ => sql.push_str(&format!(
                            "DELETE FROM shop.items WHERE id IN ({}, {});",
                            1 + rng.below(next_id as u64),
                            1_000_000 + rng.below(5000)
                        )),
                    }
                }
                sql.push_str("COMMIT;");
                let status = Command::new("mariadb")
                    .args(["--no-defaults", "--user=root", "--default-character-set=utf8mb4", &format!("--socket={}", target.display()), "-e", &sql])
                    .status()
                    .unwrap();
                assert!(status.success());
                statements += 1;
            }
            statements
        })
    };

    let mut rng = SplitMix64::new(99);
    let mut snapshot_restarts = 0;
    for round in 0..rounds {
        // Kill once a random number of new lines has been published: a moment during
        // streaming that varies from round to round.
        let before = line_count(&events);
        let wanted = before + 1 + rng.below(600) as usize;
        wait_until(&format!("round {round}: {wanted} lines"), || line_count(&events) >= wanted);
        child.kill();
        child = start_capture(&db, dir.path(), &[]);
        let log = child.wait_for_log("streaming the binlog", DEADLINE).unwrap();
        snapshot_restarts += usize::from(log.contains("snapshot_in_progress=true"));
    }
    stop.store(true, Ordering::Relaxed);
    let statements = writer.join().unwrap();
    assert!(statements > 0);

    // A final marker; once it is published everything before it is too.
    db.execute("INSERT INTO shop.items VALUES (-1, 'marker', 0)").unwrap();
    wait_until("the marker row", || std::fs::read_to_string(&events).unwrap_or_default().contains("\"marker\""));
    let (status, log) = child.terminate().unwrap();
    assert!(status.success(), "a graceful stop exits 0, got {status}:\n{log}");

    let changes = JsonLinesBus::read_changes(&events).unwrap();
    let (captured, replays) = apply(&changes);
    let expected = select_all(&db);
    assert_eq!(captured.len(), expected.len());
    assert_eq!(captured, expected);
    assert!(snapshot_restarts > 0, "no kill landed during the snapshot");
    println!(
        "{rounds} kills ({snapshot_restarts} during the snapshot), {statements} statements, {} events published, {replays} replays dropped by position",
        changes.len()
    );
}

/// Runs `cdc-capture` to completion with `args`, returning stdout (asserting success).
fn run_to_end(db: &LocalMariaDb, dir: &Path, args: &[&str]) -> String {
    let output = capture_command(db, dir, "4243").args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_bounded_run_a_savepoint_and_a_run_from_it_capture_everything_once() {
    let db = LocalMariaDb::start().unwrap();
    db.execute("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64), qty BIGINT NOT NULL) DEFAULT CHARSET=utf8mb4")
        .unwrap();
    let rows: Vec<String> = (1..=300).map(|i| format!("({i}, 'row {i}', {i})")).collect();
    db.execute(&format!("INSERT INTO shop.items VALUES {}", rows.join(","))).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // A burst that stops by itself after 100 row events, with a final checkpoint.
    run_to_end(&db, dir.path(), &["run", "--max-events", "100"]);
    let savepoint = run_to_end(&db, dir.path(), &["savepoint"]);
    let savepoint = savepoint.trim();
    assert!(Path::new(savepoint).join("_metadata").is_file(), "savepoint path printed: {savepoint:?}");

    // The checkpoints are gone: only the savepoint knows where capture was.
    std::fs::remove_dir_all(dir.path().join("checkpoints")).unwrap();
    db.execute("UPDATE shop.items SET qty = -qty WHERE id <= 10; DELETE FROM shop.items WHERE id > 290; INSERT INTO shop.items VALUES (-1, 'marker', 0)")
        .unwrap();
    let events = dir.path().join("events.jsonl");
    let mut command = capture_command(&db, dir.path(), "4243");
    command.args(["run", "--from-savepoint", savepoint]);
    let mut child = Process::spawn("cdc-capture", &mut command).unwrap();
    let log = child.wait_for_log("resuming from the checkpoint", DEADLINE).unwrap();
    assert!(log.contains("snapshot_in_progress=true"), "the savepoint was taken mid-snapshot:\n{log}");
    wait_until("the marker row", || std::fs::read_to_string(&events).unwrap_or_default().contains("\"marker\""));
    let (status, log) = child.terminate().unwrap();
    assert!(status.success(), "{status}:\n{log}");

    let changes = JsonLinesBus::read_changes(&events).unwrap();
    let (captured, _) = apply(&changes);
    assert_eq!(captured, select_all(&db));
}

/// Lambda mode: the bootstrap runs under a local Lambda service; each invocation (what a
/// schedule sends) is one bounded run that checkpoints to S3 (moto). Three bursts with writes
/// before each capture every change once, and the checkpoints are in the bucket.
#[test]
fn in_lambda_mode_scheduled_bursts_checkpoint_to_s3_and_capture_everything_once() {
    use cdc_state::s3::testing::{LocalS3Server, ACCESS_KEY, SECRET_KEY};
    cdc_telemetry::install_crypto_provider();
    let db = LocalMariaDb::start().unwrap();
    db.execute("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64), qty BIGINT NOT NULL) DEFAULT CHARSET=utf8mb4; INSERT INTO shop.items VALUES (1, 'before the first burst', 1)")
        .unwrap();
    let s3 = LocalS3Server::moto().unwrap_or_else(|e| panic!("{e} (pip install 'moto[server]')"));
    let connection = s3.connect_with_bucket("lake").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let lambda = runtime.block_on(cdc_lambda::LocalLambda::start("cdc-capture", Duration::from_secs(60))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = capture_command(&db, dir.path(), "4244");
    command
        .env("CHECKPOINT_DIR", "s3://lake/capture")
        .env("S3_ENDPOINT", s3.endpoint())
        .env("S3_REGION", "us-east-1")
        .env("S3_PATH_STYLE_ACCESS", "true")
        .env("S3_ACCESS_KEY", ACCESS_KEY)
        .env("S3_SECRET_KEY", SECRET_KEY)
        .envs(lambda.bootstrap_env());
    let mut bootstrap = Process::spawn("cdc-capture (Lambda)", &mut command).unwrap();
    bootstrap.wait_for_log("capture running in Lambda mode", DEADLINE).unwrap();

    let invoke = |payload: serde_json::Value| -> serde_json::Value {
        match runtime.block_on(lambda.invoke(&payload)) {
            cdc_lambda::InvokeOutcome::Success(answer) => answer,
            failed => panic!("the burst failed: {failed:?}"),
        }
    };
    let burst = serde_json::json!({"maxDurationMs": 1500});
    invoke(burst.clone());
    db.execute("INSERT INTO shop.items VALUES (2, 'between bursts', 2), (3, 'between bursts', 3); UPDATE shop.items SET qty = 10 WHERE id = 1").unwrap();
    invoke(burst.clone());
    db.execute("DELETE FROM shop.items WHERE id = 2; INSERT INTO shop.items VALUES (4, 'last', 4)").unwrap();
    invoke(burst);
    let (status, log) = bootstrap.terminate().unwrap();
    assert!(status.success(), "{status}:\n{log}");
    assert_eq!(log.matches("capture stopped").count(), 3, "one bounded run per invocation:\n{log}");

    let changes = JsonLinesBus::read_changes(&dir.path().join("events.jsonl")).unwrap();
    let (captured, _) = apply(&changes);
    assert_eq!(captured, select_all(&db));
    let client = connection.client().clone();
    let keys = connection
        .block_on(async move { client.list_objects_v2().bucket("lake").prefix("capture/").send().await.unwrap().contents().len() })
        .unwrap();
    assert!(keys > 0, "checkpoints in the bucket");
}
