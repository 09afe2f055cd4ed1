//! THE KILL TEST of the object sink: the real `object-sink` process reads a DataHub topic
//! (a real `datahub-local`) under a continuous producer and writes Parquet objects to a real
//! S3-compatible server (moto), with its checkpoints in the same bucket (`s3://`). It is
//! killed `CDC_KILL_ROUNDS` times (default 20): SIGKILLs at random moments after it has
//! committed a few checkpoints, and aborts at `OBJECT_SINK_FAILPOINT`s — between saving a
//! checkpoint and `CompleteMultipartUpload` (every other round), after uploading but before
//! saving, after completing but before committing DataHub offsets. After each kill, committed
//! objects never vanish and never overlap; after a final clean run that catches up with the
//! producer, pyarrow reads every produced row exactly once and no upload is left open.
//!
//! `CDC_KILL_SEED` replays a schedule. Binaries: `datahub-local` is taken from the same target
//! directory (`cargo build -p datahub-local` first; `scripts/test.sh` builds the workspace).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdc_datahub::client::{PutRecord, RecordType, TopicSpec};
use cdc_datahub::{DatahubClient, RecordData};
use cdc_event::{ChangeEvent, ColumnDef, ColumnType, Op, Position, Row, ServerFlavor, TableId, TableSchema, Value};
use cdc_localdb::process::{wait_until, Process, ProcessError};
use cdc_state::s3::testing::{LocalS3Server, ACCESS_KEY, SECRET_KEY};
use cdc_state::s3::{list_uploads, S3Connection};

const DEADLINE: Duration = Duration::from_secs(120);
const PROJECT: &str = "objects";
const TOPIC: &str = "events";
const SHARDS: u64 = 2;
const BUCKET: &str = "lake";
const PREFIX: &str = "cdc/out";
/// Records per put; the producer keeps putting until told to stop.
const BATCH: u64 = 20;

/// xorshift64*: deterministic randomness for the kill schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn sibling_binary(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_object-sink")).with_file_name(name)
}

fn spawn(name: &'static str, binary: &Path, env: &[(String, String)]) -> Process {
    assert!(binary.exists(), "{} is missing: build it first (cargo build -p datahub-local)", binary.display());
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MONITORING_PORT", "0")
        .env("LOG_LEVEL", "info")
        .env("LOG_FORMAT", "json")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null());
    Process::spawn(name, &mut command).unwrap_or_else(|e| panic!("{e}"))
}

fn wait_for(process: &mut Process, needle: &str) -> String {
    process.wait_for_log(needle, DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

/// The event with id `id` (shard `id % SHARDS`): positions grow with ids, so per shard too.
fn event(schema: &Arc<TableSchema>, id: u64) -> ChangeEvent {
    ChangeEvent {
        op: Op::Insert,
        schema: schema.clone(),
        before: None,
        after: Some(Row::new(vec![Value::Int(id as i64), Value::Text(format!("item {id}"))])),
        position: Position::stream(ServerFlavor::MySql, "binlog.000001", 4 + id * 100),
        // Ten seconds apart: the rows spread over a few hourly partitions.
        commit_ts_ms: 1_715_925_600_000 + id as i64 * 10_000,
        tx_id: Some(format!("tx-{id}")),
        source_name: Arc::from("src"),
        server_id: 1,
    }
}

fn schema() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        table: TableId::new("shop", "items"),
        version: 1,
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
            ColumnDef::new("name", ColumnType::VarChar { length: 64, charset: "utf8mb4".into() }, true),
        ],
        primary_key: vec!["id".into()],
    })
}

/// Puts records with ids 0, 1, 2, … (id % SHARDS is the shard) until `stop`; `produced` is the
/// number of ids acknowledged by DataHub (all ids below it are in the topic).
fn producer(endpoint: String, stop: Arc<AtomicBool>, produced: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = DatahubClient::builder(&endpoint).with_credentials("local-id", "local-key").build().expect("client");
        let schema = schema();
        runtime.block_on(async {
            let mut next = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let records: Vec<PutRecord> = (next..next + BATCH)
                    .map(|id| {
                        let payload = cdc_event::debezium::to_vec(&event(&schema, id)).expect("encodable event");
                        PutRecord::new(RecordData::Blob(payload)).with_shard((id % SHARDS).to_string())
                    })
                    .collect();
                let failed = client.put_records(PROJECT, TOPIC, &records).await.expect("put records");
                assert!(failed.is_empty(), "datahub-local refused records: {failed:?}");
                next += BATCH;
                produced.store(next, Ordering::SeqCst);
                // Pacing, not synchronisation: a steady stream over the kills.
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        });
    })
}

fn sink_env(datahub: &str, s3: &LocalS3Server, staging: &Path) -> Vec<(String, String)> {
    [
        ("DATAHUB_ENDPOINT", datahub.to_owned()),
        ("DATAHUB_ACCESS_ID", "local-id".into()),
        ("DATAHUB_ACCESS_KEY", "local-key".into()),
        ("DATAHUB_PROJECT", PROJECT.into()),
        ("DATAHUB_TOPIC", TOPIC.into()),
        ("DATAHUB_CONSUMER_GROUP", "objects".into()),
        ("OUTPUT_PATH", format!("s3://{BUCKET}/{PREFIX}")),
        ("OUTPUT_FORMAT", "parquet".into()),
        ("OUTPUT_COMPRESSION", "snappy".into()),
        ("OUTPUT_BATCH_SIZE", "64".into()),
        ("OUTPUT_ROLLING_SIZE", "8192".into()),
        ("CHECKPOINT_DIR", format!("s3://{BUCKET}/cdc/checkpoints")),
        ("CHECKPOINT_INTERVAL", "150".into()),
        ("CHECKPOINT_MIN_PAUSE", "0".into()),
        ("S3_ENDPOINT", s3.endpoint().to_owned()),
        ("S3_REGION", "us-east-1".into()),
        ("S3_PATH_STYLE_ACCESS", "true".into()),
        ("S3_ACCESS_KEY", ACCESS_KEY.into()),
        ("S3_SECRET_KEY", SECRET_KEY.into()),
        ("S3_STAGING_DIR", staging.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn object_keys(connection: &S3Connection) -> BTreeSet<String> {
    let client = connection.client().clone();
    connection
        .block_on(async move {
            let mut keys = BTreeSet::new();
            let mut token = None;
            loop {
                let page = client.list_objects_v2().bucket(BUCKET).prefix(format!("{PREFIX}/")).set_continuation_token(token).send().await.expect("list");
                keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
                match page.next_continuation_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => break,
                }
            }
            keys
        })
        .expect("runtime")
}

/// `…/part-<shard>-<first>-<last>.parquet` → (shard, first, last).
fn parse_name(key: &str) -> Option<(String, u64, u64)> {
    let stem = key.rsplit('/').next()?.strip_prefix("part-")?.split('.').next()?;
    let mut pieces = stem.rsplitn(3, '-');
    let last = pieces.next()?.parse().ok()?;
    let first = pieces.next()?.parse().ok()?;
    Some((pieces.next()?.to_owned(), first, last))
}

/// Committed objects never vanish, and no two of one shard cover overlapping offsets.
fn check_invariants(connection: &S3Connection, before: &BTreeSet<String>, round: usize) -> BTreeSet<String> {
    let now = object_keys(connection);
    let lost: Vec<&String> = before.difference(&now).collect();
    assert!(lost.is_empty(), "round {round}: committed objects vanished: {lost:?}");
    let mut ranges: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for key in &now {
        let (shard, first, last) = parse_name(key).unwrap_or_else(|| panic!("round {round}: unexpected object {key}"));
        ranges.entry(shard).or_default().push((first, last));
    }
    for (shard, mut list) in ranges {
        list.sort_unstable();
        for pair in list.windows(2) {
            assert!(pair[0].1 < pair[1].0, "round {round}: shard {shard}: overlapping objects {:?} and {:?}", pair[0], pair[1]);
        }
    }
    now
}

/// Downloads the committed objects and reads their ids with pyarrow.
fn committed_ids(connection: &S3Connection, dir: &Path) -> Vec<i64> {
    for key in object_keys(connection) {
        let client = connection.client().clone();
        let object = key.clone();
        let bytes = connection
            .block_on(async move { client.get_object().bucket(BUCKET).key(object).send().await.expect("get").body.collect().await.expect("body").into_bytes() })
            .expect("runtime");
        let path = dir.join(&key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write copy");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sink/tests/read_dataset.py");
    let output = Command::new("python3").arg(&script).arg(dir.join(PREFIX)).arg("shop/items").arg("id").output().expect("python3 runs");
    assert!(output.status.success(), "read_dataset.py: {}", String::from_utf8_lossy(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let mut ids: Vec<i64> = document["rows"].as_array().expect("rows").iter().map(|r| r[0].as_i64().expect("id")).collect();
    ids.sort_unstable();
    ids
}

#[derive(Debug, Clone)]
enum KillAt {
    /// SIGKILL once `n` checkpoints were committed and `k` more records were produced.
    Sigkill { checkpoints: u64, records: u64 },
    /// `OBJECT_SINK_FAILPOINT=<point>:<n>`: the process aborts itself there.
    Failpoint(&'static str, u64),
}

#[test]
fn killed_20_times_under_continuous_input_the_object_sink_commits_every_row_exactly_once() {
    let rounds = env_u64("CDC_KILL_ROUNDS", 20) as usize;
    let seed = env_u64("CDC_KILL_SEED", 0x0b1e_c75e_ed01);
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = LocalS3Server::moto().unwrap_or_else(|e| panic!("{e} (pip install 'moto[server]')"));
    let connection = s3.connect_with_bucket(BUCKET).expect("bucket");

    let mut datahub = spawn(
        "datahub-local",
        &sibling_binary("datahub-local"),
        &[
            ("DATAHUB_LOCAL_PORT".into(), "0".into()),
            ("DATAHUB_LOCAL_BIND".into(), "127.0.0.1".into()),
            ("DATAHUB_LOCAL_DATA_DIR".into(), dir.path().join("datahub").display().to_string()),
        ],
    );
    let line = wait_for(&mut datahub, "serving the DataHub API");
    let addr = line.split("\"api_addr\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_else(|| panic!("no api_addr in {line}"));
    let endpoint = format!("http://{addr}");
    {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = DatahubClient::builder(&endpoint).with_credentials("local-id", "local-key").build().expect("client");
        runtime.block_on(async {
            client.create_project(PROJECT, "object-sink kill test").await.expect("project");
            let spec = TopicSpec { shard_count: SHARDS as u32, lifecycle: 7, record_type: RecordType::Blob, record_schema: None, comment: "t".into(), expand_mode: None };
            client.create_topic(PROJECT, TOPIC, &spec).await.expect("topic");
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let producing = producer(endpoint.clone(), stop.clone(), produced.clone());
    let env = sink_env(&endpoint, &s3, &dir.path().join("staging"));
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_object-sink"));

    let mut committed = BTreeSet::new();
    let mut schedule = Vec::new();
    for round in 0..rounds {
        let n = 1 + rng.below(3);
        let kill_at = match (round % 4, rng.below(2)) {
            // Every other round: checkpoint durable, uploads not yet completed.
            (1 | 3, _) => KillAt::Failpoint("after-save", n),
            (2, 0) => KillAt::Failpoint("after-prepare", n),
            (2, _) => KillAt::Failpoint("after-commit", n),
            _ => KillAt::Sigkill { checkpoints: n, records: rng.below(120) },
        };
        let mut env = env.clone();
        if let KillAt::Failpoint(point, n) = &kill_at {
            env.push(("OBJECT_SINK_FAILPOINT".into(), format!("{point}:{n}")));
        }
        let mut sink = spawn("object-sink", &binary, &env);
        wait_for(&mut sink, "object sink running");
        match &kill_at {
            KillAt::Failpoint(point, _) => {
                wait_for(&mut sink, &format!("aborting at {point}"));
            }
            KillAt::Sigkill { checkpoints, records } => {
                for _ in 0..*checkpoints {
                    wait_for(&mut sink, "checkpoint committed");
                }
                // Somewhere in the writes, uploads and checkpoints that follow.
                let target = produced.load(Ordering::SeqCst) + records;
                wait_until("more input", DEADLINE, || produced.load(Ordering::SeqCst) >= target).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        sink.kill();
        schedule.push(format!("{kill_at:?}"));
        committed = check_invariants(&connection, &committed, round);
    }
    stop.store(true, Ordering::SeqCst);
    producing.join().expect("producer");
    let total = produced.load(Ordering::SeqCst);
    let per_shard = total / SHARDS;

    // The final run catches up with the producer, then stops gracefully.
    let mut sink = spawn("object-sink", &binary, &env);
    wait_for(&mut sink, "object sink running");
    let caught_up = (0..SHARDS).map(|s| format!("{s}={per_shard}")).collect::<Vec<_>>().join(",");
    wait_for(&mut sink, &format!("\"offsets\":\"{caught_up}\""));
    let (status, log) = sink.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "object-sink exits 0 on SIGTERM, got {status}:\n{log}");
    check_invariants(&connection, &committed, rounds);

    let client = connection.client().clone();
    let open = connection.block_on(async move { list_uploads(&client, BUCKET, "").await }).expect("runtime").expect("list uploads");
    assert!(open.is_empty(), "uploads left open: {open:?}");

    let ids = committed_ids(&connection, &dir.path().join("copy"));
    let duplicates = ids.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(duplicates, 0, "duplicated rows after {rounds} kills ({schedule:?})");
    let expected: Vec<i64> = (0..total as i64).collect();
    assert_eq!(ids.len(), expected.len(), "row count after {rounds} kills ({schedule:?})");
    assert_eq!(ids, expected, "rows ({schedule:?})");
    eprintln!(
        "object-sink kill test: {rounds} kills ({schedule:?}); {total} rows in {} objects, each exactly once",
        object_keys(&connection).len()
    );
}

/// Starts moto, datahub-local with the topic, and the producer; returns what the tests need.
struct World {
    dir: tempfile::TempDir,
    s3: LocalS3Server,
    connection: S3Connection,
    _datahub: Process,
    endpoint: String,
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicU64>,
    producing: Option<std::thread::JoinHandle<()>>,
}

impl World {
    fn start() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let s3 = LocalS3Server::moto().unwrap_or_else(|e| panic!("{e} (pip install 'moto[server]')"));
        let connection = s3.connect_with_bucket(BUCKET).expect("bucket");
        let mut datahub = spawn(
            "datahub-local",
            &sibling_binary("datahub-local"),
            &[
                ("DATAHUB_LOCAL_PORT".into(), "0".into()),
                ("DATAHUB_LOCAL_BIND".into(), "127.0.0.1".into()),
                ("DATAHUB_LOCAL_DATA_DIR".into(), dir.path().join("datahub").display().to_string()),
            ],
        );
        let line = wait_for(&mut datahub, "serving the DataHub API");
        let addr = line.split("\"api_addr\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_else(|| panic!("no api_addr in {line}"));
        let endpoint = format!("http://{addr}");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = DatahubClient::builder(&endpoint).with_credentials("local-id", "local-key").build().expect("client");
        runtime.block_on(async {
            client.create_project(PROJECT, "object-sink test").await.expect("project");
            let spec = TopicSpec { shard_count: SHARDS as u32, lifecycle: 7, record_type: RecordType::Blob, record_schema: None, comment: "t".into(), expand_mode: None };
            client.create_topic(PROJECT, TOPIC, &spec).await.expect("topic");
        });
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicU64::new(0));
        let producing = Some(producer(endpoint.clone(), stop.clone(), produced.clone()));
        World { dir, s3, connection, _datahub: datahub, endpoint, stop, produced, producing }
    }

    fn env(&self, staging: &str) -> Vec<(String, String)> {
        sink_env(&self.endpoint, &self.s3, &self.dir.path().join(staging))
    }

    /// Stops the producer; returns how many records it put.
    fn stop_producing(&mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.producing.take() {
            handle.join().expect("producer");
        }
        self.produced.load(Ordering::SeqCst)
    }
}

/// The exit status of a process that is expected to stop by itself.
fn exit_status(mut process: Process) -> (String, String) {
    match process.wait_for_log("\u{0}never logged", DEADLINE) {
        Err(ProcessError::Exited { status, log, .. }) => (status, log),
        other => panic!("expected the process to exit, got {other:?}"),
    }
}

#[test]
fn a_second_instance_on_the_same_state_prefix_fences_the_first_which_completes_nothing_more() {
    let mut world = World::start();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_object-sink"));
    let mut first = spawn("object-sink A", &binary, &world.env("staging-a"));
    wait_for(&mut first, "object sink running");
    wait_for(&mut first, "checkpoint committed");

    // The replacement starts while the first is still running (a stuck pod and its successor).
    let mut second = spawn("object-sink B", &binary, &world.env("staging-b"));
    wait_for(&mut second, "object sink running");

    // The first one's next checkpoint commit is refused: it stops, without completing the
    // uploads of that checkpoint or committing offsets.
    let (status, log) = exit_status(first);
    assert!(!status.contains("exit status: 0"), "the fenced instance must fail, got {status}:\n{log}");
    let refused = log.lines().position(|l| l.contains("another instance is writing to the same checkpoint location"));
    let Some(refused) = refused else { panic!("no conflict error in the fenced instance's log:\n{log}") };
    assert!(log.contains("checkpoint commit refused (fenced)") && log.contains("conflict: checkpoint"), "{log}");
    assert!(
        !log.lines().skip(refused).any(|l| l.contains("checkpoint committed")),
        "the fenced instance committed after its conflict:\n{log}"
    );

    // The second one carries on alone and catches up with everything produced.
    let total = world.stop_producing();
    let per_shard = total / SHARDS;
    let caught_up = (0..SHARDS).map(|s| format!("{s}={per_shard}")).collect::<Vec<_>>().join(",");
    wait_for(&mut second, &format!("\"offsets\":\"{caught_up}\""));
    let (status, log) = second.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "the second instance exits 0 on SIGTERM, got {status}:\n{log}");

    check_invariants(&world.connection, &BTreeSet::new(), 0);
    let ids = committed_ids(&world.connection, &world.dir.path().join("copy"));
    let expected: Vec<i64> = (0..total as i64).collect();
    assert_eq!(ids, expected, "every row exactly once after the fencing");
    // The fenced instance's last uploads were never completed; a restart of the survivor
    // aborts them (its recovery), leaving nothing open.
    let mut restarted = spawn("object-sink B'", &binary, &world.env("staging-b"));
    wait_for(&mut restarted, "object sink running");
    let (status, _) = restarted.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let client = world.connection.client().clone();
    let open = world.connection.block_on(async move { list_uploads(&client, BUCKET, "").await }).expect("runtime").expect("list uploads");
    assert!(open.is_empty(), "uploads left open: {open:?}");
    assert_eq!(committed_ids(&world.connection, &world.dir.path().join("copy2")), expected);
}
