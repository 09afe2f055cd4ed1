//! Lambda-mode figures of issue 7, printed beside their targets:
//!
//! * one `object-sink` invocation of `--rows` (default 10,000) change events, delivered as the
//!   relay delivers them (`cdc_datahub::delivery`) through a local Lambda service to the
//!   bootstrap, committed as Parquet objects in a moto S3 bucket: the first invocation of a fresh
//!   sandbox and then `--runs` warm ones (each a new batch of the same shard), target < 1 s;
//! * cold start of each function binary to its first `/health/live` answer, target < 100 ms,
//!   beside the start of `/bin/true` (process creation alone) measured the same way.
//!
//! Run with release binaries: `cargo build --release -p object-sink -p file-sink -p transform
//! -p datahub-relay -p datahub-local -p cdc-capture && cargo run --release -p object-sink
//! --example lambda_bench -- [--rows N] [--runs N]`. moto (`pip install 'moto[server]'`) is the
//! S3 server; its speed is part of the invocation time, as S3's would be.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cdc_datahub::ConsumedRecord;
use cdc_event::{ChangeEvent, ColumnDef, ColumnType, Op, Position, Row, ServerFlavor, TableId, TableSchema, Value};
use cdc_lambda::LocalLambda;
use cdc_state::s3::testing::{LocalS3Server, ACCESS_KEY, SECRET_KEY};

const BUCKET: &str = "bench";

struct Args {
    rows: u64,
    runs: u32,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args { rows: 10_000, runs: 5 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rows" => args.rows = value()?.parse().context("--rows")?,
            "--runs" => args.runs = value()?.parse().context("--runs")?,
            "--bench" => {}
            other => bail!("unknown argument {other}; usage: lambda_bench [--rows N] [--runs N]"),
        }
    }
    Ok(args)
}

/// The release binaries sit next to this example's directory (`target/release/examples/..`).
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("the example's directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} is missing: cargo build --release -p {name}", path.display());
    }
    Ok(path)
}

fn schema() -> Arc<TableSchema> {
    let columns = vec![
        ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
        ColumnDef::new("name", ColumnType::VarChar { length: 64, charset: "utf8mb4".into() }, true),
        ColumnDef::new("qty", ColumnType::Int { unsigned: false }, false),
        ColumnDef::new("price", ColumnType::Double, true),
    ];
    let primary_key = vec!["id".to_owned()];
    let version = TableSchema::fingerprint(&columns, &primary_key);
    Arc::new(TableSchema { table: TableId::new("shop", "items"), version, columns, primary_key })
}

/// One relay batch of `rows` inserts, sequences `first..first+rows` of shard 0.
fn batch(schema: &Arc<TableSchema>, first: u64, rows: u64) -> anyhow::Result<Vec<u8>> {
    let mut records = Vec::with_capacity(rows as usize);
    for sequence in first..first + rows {
        let event = ChangeEvent {
            op: Op::Insert,
            schema: schema.clone(),
            before: None,
            after: Some(Row::new(vec![
                Value::Int(sequence as i64),
                Value::Text(format!("item {sequence}")),
                Value::Int((sequence % 1000) as i64),
                Value::Double(sequence as f64 * 0.25),
            ])),
            position: Position::stream(ServerFlavor::MySql, "binlog.000001", 4 + sequence * 100),
            commit_ts_ms: 1_715_925_600_000 + sequence as i64,
            tx_id: None,
            source_name: Arc::from("bench"),
            server_id: 1,
        };
        let payload = cdc_event::debezium::to_vec(&event).context("encoding an event")?;
        records.push(ConsumedRecord { shard: Arc::from("0"), sequence, system_time: 0, payload, attributes: Default::default() });
    }
    Ok(cdc_datahub::delivery::encode("bench", "events", "0", &records)?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `GET /health/live` every millisecond until it answers 200.
fn until_live(port: u16, child: &mut Child, deadline: Duration) -> anyhow::Result<Duration> {
    use std::io::{Read, Write};
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("exited with {status} before answering /health/live");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.write_all(b"GET /health/live HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut head = [0u8; 16];
            if stream.read(&mut head).is_ok_and(|n| n >= 12 && &head[9..12] == b"200") {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > deadline {
            bail!("no /health/live answer within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Cold start: exec → first `/health/live` 200, median of `runs`.
fn cold_start(name: &str, env: &[(&str, String)], runs: u32) -> anyhow::Result<Duration> {
    let path = binary(name)?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let port = free_port()?;
        let started = Instant::now();
        let mut child = Command::new(&path)
            .env_clear()
            .env("MONITORING_PORT", port.to_string())
            .env("LOG_LEVEL", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let outcome = until_live(port, &mut child, Duration::from_secs(10));
        let elapsed = started.elapsed();
        let _ = child.kill();
        let _ = child.wait();
        outcome.with_context(|| name.to_owned())?;
        times.push(elapsed);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// `/bin/true` from spawn to exit: what process creation alone costs here.
fn process_floor(runs: u32) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        Command::new("true").status()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    cdc_telemetry::install_crypto_provider();

    // --- one invocation of N rows -----------------------------------------------------------
    let s3 = LocalS3Server::moto().map_err(|e| anyhow::anyhow!("{e} (pip install 'moto[server]')"))?;
    s3.connect_with_bucket(BUCKET).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let lambda = runtime.block_on(LocalLambda::start("object-sink", Duration::from_secs(60)))?;
    let staging = tempfile::tempdir()?;
    let mut sandbox = Command::new(binary("object-sink")?)
        .env_clear()
        .env("MONITORING_PORT", "0")
        .env("LOG_LEVEL", "warn")
        .env("DATAHUB_ENDPOINT", "http://127.0.0.1:1")
        .env("DATAHUB_ACCESS_ID", "bench")
        .env("DATAHUB_ACCESS_KEY", "bench")
        .env("DATAHUB_PROJECT", "bench")
        .env("DATAHUB_TOPIC", "events")
        .env("OUTPUT_PATH", format!("s3://{BUCKET}/out"))
        .env("OUTPUT_FORMAT", "parquet")
        .env("OUTPUT_COMPRESSION", "snappy")
        .env("CHECKPOINT_DIR", format!("s3://{BUCKET}/checkpoints"))
        .env("S3_ENDPOINT", s3.endpoint())
        .env("S3_REGION", "us-east-1")
        .env("S3_PATH_STYLE_ACCESS", "true")
        .env("S3_ACCESS_KEY", ACCESS_KEY)
        .env("S3_SECRET_KEY", SECRET_KEY)
        .env("S3_STAGING_DIR", staging.path())
        .envs(lambda.bootstrap_env())
        .stdout(Stdio::null())
        .spawn()?;
    let schema = schema();
    let http = reqwest::Client::new();
    let url = format!("{}/2015-03-31/functions/object-sink/invocations", lambda.invoke_endpoint());
    let mut times = Vec::new();
    for run in 0..=args.runs {
        let body = batch(&schema, u64::from(run) * args.rows, args.rows)?;
        let bytes = body.len();
        let started = Instant::now();
        let answer: serde_json::Value = runtime.block_on(async {
            let response = http.post(&url).body(body).send().await?;
            if response.headers().contains_key("X-Amz-Function-Error") {
                bail!("invocation failed: {}", response.text().await?);
            }
            Ok(response.json().await?)
        })?;
        let took = started.elapsed();
        if answer["rows"].as_u64() != Some(args.rows) {
            bail!("the invocation wrote {} rows, expected {}: {answer}", answer["rows"], args.rows);
        }
        println!(
            "invocation {run} ({}): {} rows, {:.1} MB of JSON, {} object(s): {:.0} ms",
            if run == 0 { "first of the sandbox" } else { "warm" },
            args.rows,
            bytes as f64 / 1e6,
            answer["files"].as_array().map_or(0, Vec::len),
            ms(took)
        );
        if run > 0 {
            times.push(took);
        }
    }
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();

    // --- cold start to /health/live ---------------------------------------------------------
    let out = tempfile::tempdir()?;
    let rules = out.path().join("rules.yml");
    std::fs::write(&rules, "rules: []\n")?;
    let unreachable = || "http://127.0.0.1:1".to_owned();
    let datahub = |topic: &str| {
        vec![
            ("DATAHUB_ENDPOINT", unreachable()),
            ("DATAHUB_ACCESS_ID", "bench".to_owned()),
            ("DATAHUB_ACCESS_KEY", "bench".to_owned()),
            ("DATAHUB_PROJECT", "bench".to_owned()),
            ("DATAHUB_TOPIC", topic.to_owned()),
        ]
    };
    let mut cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("datahub-local", vec![("DATAHUB_LOCAL_PORT", "0".into()), ("DATAHUB_LOCAL_DATA_DIR", out.path().join("log").display().to_string())]),
        ("datahub-relay", [datahub("events"), vec![("RELAY_TARGET", "stdout".into())]].concat()),
        ("transform", [datahub("events"), vec![("TRANSFORM_CONFIG", rules.display().to_string()), ("TRANSFORM_OUTPUT_TOPIC", "clean".into())]].concat()),
        ("file-sink", [datahub("events"), vec![("OUTPUT_PATH", out.path().join("files").display().to_string()), ("CHECKPOINT_DIR", format!("file://{}", out.path().join("chk").display()))]].concat()),
        (
            "object-sink",
            [
                datahub("events"),
                vec![
                    ("OUTPUT_PATH", format!("s3://{BUCKET}/cold")),
                    ("CHECKPOINT_DIR", format!("s3://{BUCKET}/cold-checkpoints")),
                    ("S3_ENDPOINT", s3.endpoint().to_owned()),
                    ("S3_PATH_STYLE_ACCESS", "true".into()),
                    ("S3_ACCESS_KEY", ACCESS_KEY.into()),
                    ("S3_SECRET_KEY", SECRET_KEY.into()),
                ],
            ]
            .concat(),
        ),
    ];
    // Capture's ops server starts before it connects to the source; an unreachable one is fine.
    cases.push(("cdc-capture", [datahub("events"), vec![("DATABASE_HOST", "127.0.0.1".into()), ("DATABASE_PORT", "1".into()), ("DATABASE_USERNAME", "x".into()), ("DATABASE_PASSWORD", "x".into())]].concat()));
    let floor = process_floor(11)?;
    println!();
    println!("{:<16} {:>22} {:>10}", "binary", "exec → /health/live", "target");
    for (name, env) in &cases {
        match cold_start(name, env, 11) {
            Ok(d) => println!("{name:<16} {:>19.1} ms {:>10}", ms(d), "< 100 ms"),
            Err(e) => println!("{name:<16} {:>22} ({e:#})", "n/a"),
        }
    }
    println!("{:<16} {:>19.1} ms {:>10}", "/bin/true (exit)", ms(floor), "floor");
    println!();
    println!(
        "Lambda-mode object-sink, {} rows per invocation: median warm {:.0} ms over {} runs (target < 1000 ms)",
        args.rows,
        ms(median),
        times.len()
    );
    Ok(())
}
