//! Throughput of datahub-local (the in-process server over a temp `Datalog` with default
//! `LogOptions`, i.e. fsync on every batch = durable acknowledgement) for 1 KB BLOB records in
//! batches of 1000 on one shard: put and get through our Rust client, beside the same calls
//! through pydatahub 2.29.0 (`examples/throughput_bench_peer.py`) against the same server.
//!
//!     cargo run --release -p cdc-datahub --example throughput_bench [-- RUST_N PY_N]
//!
//! Defaults: 100,000 records for Rust, 20,000 for pydatahub. Payloads are pseudo-random (so
//! LZ4 cannot flatter the numbers) and built before the clock starts; every record read back
//! is checked against what was put, after the clock stops. Server and Rust client share one
//! 2-worker tokio runtime; the Python peer is a separate process.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_datahub::client::{CursorType, PutRecord, RecordType, TopicSpec};
use cdc_datahub::{DatahubClient, RecordData, ServerConfig};
use cdc_datalog::{Datalog, LogOptions};

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const RECORD_BYTES: usize = 1024;
const BATCH: usize = 1000;
const PROJECT: &str = "bench";

struct Row {
    client: String,
    op: &'static str,
    records: usize,
    seconds: f64,
    bytes: usize,
}

/// Deterministic, incompressible-ish payloads (xorshift64*).
fn payloads(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            let mut v = Vec::with_capacity(RECORD_BYTES);
            while v.len() < RECORD_BYTES {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                v.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            v.truncate(RECORD_BYTES);
            v
        })
        .collect()
}

fn blob_topic() -> TopicSpec {
    TopicSpec { shard_count: 1, lifecycle: 3, record_type: RecordType::Blob, record_schema: None, comment: "throughput bench".into(), expand_mode: None }
}

async fn rust_bench(client: &DatahubClient, n: usize) -> BoxResult<Vec<Row>> {
    let topic = "rust_blob";
    client.create_topic(PROJECT, topic, &blob_topic()).await?;
    let data = payloads(n, 0x9E37_79B9_7F4A_7C15);
    let batches: Vec<Vec<PutRecord>> =
        data.chunks(BATCH).map(|c| c.iter().map(|p| PutRecord::new(RecordData::Blob(p.clone())).with_shard("0")).collect()).collect();

    let t0 = Instant::now();
    for batch in &batches {
        let failed = client.put_records(PROJECT, topic, batch).await?;
        if !failed.is_empty() {
            return Err(format!("{} records failed, first: {:?}", failed.len(), failed[0]).into());
        }
    }
    let put_s = t0.elapsed().as_secs_f64();
    drop(batches);

    let t0 = Instant::now();
    let mut cursor = client.get_cursor(PROJECT, topic, "0", CursorType::Oldest).await?.cursor;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let page = client.get_records(PROJECT, topic, "0", &cursor, BATCH as u32).await?;
        if page.records.is_empty() {
            break;
        }
        cursor = page.next_cursor;
        got.extend(page.records);
    }
    let get_s = t0.elapsed().as_secs_f64();

    if got.len() != n {
        return Err(format!("read back {} records of {n}", got.len()).into());
    }
    for (i, (r, want)) in got.iter().zip(&data).enumerate() {
        if r.sequence != i as i64 || !matches!(&r.data, RecordData::Blob(b) if b == want) {
            return Err(format!("record {i} differs after the round trip").into());
        }
    }
    let client = "rust (json, lz4)".to_string();
    Ok(vec![
        Row { client: client.clone(), op: "put", records: n, seconds: put_s, bytes: n * RECORD_BYTES },
        Row { client, op: "get", records: n, seconds: get_s, bytes: n * RECORD_BYTES },
    ])
}

/// Runs the pydatahub peer (off the runtime, so the in-process server keeps serving).
async fn python_bench(endpoint: &str, mode: &'static str, compression: &'static str, n: usize) -> BoxResult<Vec<Row>> {
    let script = format!("{}/examples/throughput_bench_peer.py", env!("CARGO_MANIFEST_DIR"));
    let topic = format!("py_{mode}_{compression}");
    let args: Vec<String> =
        vec![script, endpoint.to_string(), PROJECT.into(), topic, mode.into(), compression.into(), n.to_string(), RECORD_BYTES.to_string(), BATCH.to_string()];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("pydatahub peer ({mode}/{compression}) failed: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr)).into());
    }
    let mut rows = Vec::new();
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 5 && f[0] == "RESULT" {
            let op = if f[1] == "put" { "put" } else { "get" };
            rows.push(Row { client: format!("pydatahub ({mode}, {compression})"), op, records: f[2].parse()?, seconds: f[3].parse()?, bytes: f[4].parse()? });
        }
    }
    if rows.len() != 2 {
        return Err(format!("pydatahub peer ({mode}/{compression}) printed no results:\n{stdout}").into());
    }
    Ok(rows)
}

fn print_table(rows: &[Row]) {
    println!("{:<24} {:<4} {:>9} {:>9} {:>11} {:>8}", "client", "op", "records", "seconds", "records/s", "MB/s");
    for r in rows {
        let rps = r.records as f64 / r.seconds;
        let mbs = r.bytes as f64 / r.seconds / 1_000_000.0;
        println!("{:<24} {:<4} {:>9} {:>9.3} {:>11.0} {:>8.1}", r.client, r.op, r.records, r.seconds, rps, mbs);
    }
}

fn print_ratios(rows: &[Row]) {
    let rate = |client: &str, op: &str| rows.iter().find(|r| r.client.starts_with(client) && r.op == op).map(|r| r.records as f64 / r.seconds);
    for op in ["put", "get"] {
        if let Some(rust) = rate("rust", op) {
            for r in rows.iter().filter(|r| r.op == op && !r.client.starts_with("rust")) {
                println!("rust / {} {op}: {:.1}x", r.client, rust / (r.records as f64 / r.seconds));
            }
        }
    }
}

fn main() -> BoxResult<()> {
    let mut args = std::env::args().skip(1);
    let rust_n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let py_n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run(rust_n, py_n))
}

async fn run(rust_n: usize, py_n: usize) -> BoxResult<()> {
    let dir = tempfile::tempdir()?;
    let log = Arc::new(Datalog::open(dir.path(), LogOptions::default())?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cdc_datahub::serve(listener, ServerConfig::new(log), async move {
        let _ = stop_rx.await;
    }));
    println!("datahub-local at {endpoint}, log in {} (fsync every batch)", dir.path().display());
    println!("{RECORD_BYTES}-byte BLOB records, batches of {BATCH}, 1 shard; rust N={rust_n}, pydatahub N={py_n}\n");

    let client = DatahubClient::builder(&endpoint).with_timeout(Duration::from_secs(60)).build()?;
    client.create_project(PROJECT, "throughput bench").await?;

    let mut rows = rust_bench(&client, rust_n).await?;
    for (mode, compression) in [("json", "lz4"), ("pb", "lz4")] {
        match python_bench(&endpoint, mode, compression, py_n).await {
            Ok(r) => rows.extend(r),
            Err(e) => eprintln!("{e}"),
        }
    }
    print_table(&rows);
    println!();
    print_ratios(&rows);

    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
