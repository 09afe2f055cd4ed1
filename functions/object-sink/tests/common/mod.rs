//! What the object-sink tests share: a moto S3 server, `datahub-local` with the topic, a
//! producer of numbered change events, the sink's settings, and readers of the committed
//! objects (keys, ranges, and the rows through pyarrow).
#![allow(dead_code)] // each test file uses a different part

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdc_datahub::client::{PutRecord, RecordType, TopicSpec};
use cdc_datahub::{DatahubClient, RecordData};
use cdc_event::{ChangeEvent, ColumnDef, ColumnType, Op, Position, Row, ServerFlavor, TableId, TableSchema, Value};
use cdc_localdb::process::{Process, ProcessError};
use cdc_state::s3::testing::{LocalS3Server, ACCESS_KEY, SECRET_KEY};
use cdc_state::s3::S3Connection;

pub const DEADLINE: Duration = Duration::from_secs(120);
pub const PROJECT: &str = "objects";
pub const TOPIC: &str = "events";
pub const SHARDS: u64 = 2;
pub const BUCKET: &str = "lake";
pub const PREFIX: &str = "cdc/out";
/// Records per put; the producer keeps putting until told to stop.
pub const BATCH: u64 = 20;

/// xorshift64*: deterministic randomness for the kill schedule.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn sibling_binary(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_object-sink")).with_file_name(name)
}

pub fn spawn(name: &'static str, binary: &Path, env: &[(String, String)]) -> Process {
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

pub fn wait_for(process: &mut Process, needle: &str) -> String {
    process.wait_for_log(needle, DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

/// The event with id `id` (shard `id % SHARDS`): positions grow with ids, so per shard too.
pub fn event(schema: &Arc<TableSchema>, id: u64) -> ChangeEvent {
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

pub fn schema() -> Arc<TableSchema> {
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
pub fn producer(endpoint: String, stop: Arc<AtomicBool>, produced: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
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

pub fn sink_env(datahub: &str, s3: &LocalS3Server, staging: &Path) -> Vec<(String, String)> {
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

pub fn object_keys(connection: &S3Connection) -> BTreeSet<String> {
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
pub fn parse_name(key: &str) -> Option<(String, u64, u64)> {
    let stem = key.rsplit('/').next()?.strip_prefix("part-")?.split('.').next()?;
    let mut pieces = stem.rsplitn(3, '-');
    let last = pieces.next()?.parse().ok()?;
    let first = pieces.next()?.parse().ok()?;
    Some((pieces.next()?.to_owned(), first, last))
}

/// Committed objects never vanish, and no two of one shard cover overlapping offsets.
pub fn check_invariants(connection: &S3Connection, before: &BTreeSet<String>, round: usize) -> BTreeSet<String> {
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
pub fn committed_ids(connection: &S3Connection, dir: &Path) -> Vec<i64> {
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

/// Starts moto, datahub-local with the topic, and the producer; returns what the tests need.
pub struct World {
    pub dir: tempfile::TempDir,
    pub s3: LocalS3Server,
    pub connection: S3Connection,
    _datahub: Process,
    pub endpoint: String,
    pub stop: Arc<AtomicBool>,
    pub produced: Arc<AtomicU64>,
    pub producing: Option<std::thread::JoinHandle<()>>,
}

impl World {
    pub fn start() -> World {
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

    pub fn env(&self, staging: &str) -> Vec<(String, String)> {
        sink_env(&self.endpoint, &self.s3, &self.dir.path().join(staging))
    }

    /// Stops the producer; returns how many records it put.
    pub fn stop_producing(&mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.producing.take() {
            handle.join().expect("producer");
        }
        self.produced.load(Ordering::SeqCst)
    }
}

/// The exit status of a process that is expected to stop by itself.
pub fn exit_status(mut process: Process) -> (String, String) {
    match process.wait_for_log("\u{0}never logged", DEADLINE) {
        Err(ProcessError::Exited { status, log, .. }) => (status, log),
        other => panic!("expected the process to exit, got {other:?}"),
    }
}

