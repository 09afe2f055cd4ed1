//! Sink write benchmark: change events → committed files on one core, beside pyarrow.
//!
//! ```text
//! cargo run --release -p cdc-sink --example write_bench [-- --rows N] [--no-peer]
//! ```
//!
//! A 7-column table (BIGINT, INT, DECIMAL(12,2), VARCHAR(64), DATETIME(6), TINYINT, TEXT).
//! `--rows` events (default 1,000,000) are built in memory first (not timed). Then, for each of
//! Parquet+snappy, CSV (no compression) and JSON lines+gzip, a child process of this binary
//! (`--format F --child`) builds the same events, times `FileSink::write` of every record +
//! `prepare_checkpoint` + `commit` into a fresh temp dir, and prints its figures: rows/s,
//! MB/s of committed file bytes, and peak RSS (VmHWM). One process per format, so each peak
//! belongs to one format. After the timed run the child also times, untimed-for-the-headline,
//! the two halves of the work separately: events → Arrow batches (`RecordBatchBuilder`), and
//! batches → bytes (the format writer into `io::sink()`).
//!
//! Then `write_bench_peer.py` (python3 + pyarrow) writes the same rows from prepared pyarrow
//! columns: `pq.write_table(compression='snappy')`, `pyarrow.csv.write_csv`, and json.dumps
//! per row into `gzip.open` (pyarrow has no JSON writer: a weak peer). One table is printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use cdc_config::{Compression, OutputFormat};
use cdc_event::{
    ChangeEvent, ColumnDef, ColumnType, LobSize, Op, Position, Row, ServerFlavor, SqlDateTime,
    TableId, TableSchema, Value,
};
use cdc_formats::{new_writer, RecordBatchBuilder, WriterOptions};
use cdc_sink::{FileSink, Record, SinkOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// 2024-05-17T06:00:00Z: every event falls in this UTC hour, so each format is one file.
const HOUR_06_MS: i64 = 1_715_925_600_000;
/// The sink's default batch size (rows buffered per bucket before encoding).
const BATCH_ROWS: usize = 10_000;
const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud \
exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor.";

const FORMATS: [&str; 3] = ["parquet", "csv", "json"];

struct Args {
    rows: usize,
    format: Option<String>,
    child: bool,
    peer: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        rows: 1_000_000,
        format: None,
        child: false,
        peer: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rows" => args.rows = it.next().ok_or("--rows needs a value")?.parse()?,
            "--format" => args.format = Some(it.next().ok_or("--format needs a value")?),
            "--child" => args.child = true,
            "--no-peer" => args.peer = false,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(args)
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    if args.child {
        let format = args.format.as_deref().ok_or("--child needs --format")?;
        return child(format, args.rows);
    }
    parent(&args)
}

// ---------------------------------------------------------------------------------------------
// The rows (the peer script computes the same values from the same formulas).

fn schema() -> Arc<TableSchema> {
    let utf8 = || "utf8mb4".to_owned();
    Arc::new(TableSchema {
        table: TableId::new("shop", "orders"),
        version: 1,
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
            ColumnDef::new("qty", ColumnType::Int { unsigned: false }, true),
            ColumnDef::new(
                "price",
                ColumnType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                true,
            ),
            ColumnDef::new(
                "customer",
                ColumnType::VarChar {
                    length: 64,
                    charset: utf8(),
                },
                true,
            ),
            ColumnDef::new("created_at", ColumnType::DateTime { fsp: 6 }, true),
            ColumnDef::new("status", ColumnType::TinyInt { unsigned: false }, true),
            ColumnDef::new(
                "note",
                ColumnType::Text {
                    size: LobSize::Regular,
                    charset: utf8(),
                },
                true,
            ),
        ],
        primary_key: vec!["id".into()],
    })
}

fn events(rows: usize) -> Vec<Record> {
    let schema = schema();
    let source: Arc<str> = Arc::from("src");
    let shard: Arc<str> = Arc::from("s0");
    let base = chrono::DateTime::from_timestamp_millis(HOUR_06_MS)
        .expect("valid base time")
        .naive_utc();
    (0..rows as i64)
        .map(|i| {
            let cents = (i * 104_729) % 10_000_000_000 - 5_000_000_000;
            let sign = if cents < 0 { "-" } else { "" };
            let created = base + chrono::Duration::microseconds(i * 1_000_003);
            let note_len = ((i * 37) % 200) as usize;
            let values = vec![
                Value::Int(i + 1),
                Value::Int((i * 7919) % 100_000 - 50_000),
                Value::Decimal(format!(
                    "{sign}{}.{:02}",
                    cents.abs() / 100,
                    cents.abs() % 100
                )),
                Value::Text(format!(
                    "customer-{:05}-{:x}",
                    i % 10_007,
                    i * 2_654_435_761 % 65_536
                )),
                Value::DateTime(SqlDateTime::from_naive(created).expect("datetime in range")),
                Value::Int(i % 256 - 128),
                Value::Text(format!("note {i}: {}", &LOREM[..note_len])),
            ];
            let event = ChangeEvent {
                op: Op::Insert,
                schema: schema.clone(),
                before: None,
                after: Some(Row::new(values)),
                position: Position::stream(
                    ServerFlavor::MySql,
                    "binlog.000003",
                    4 + i as u64 * 100,
                ),
                // 3 ms apart: 1M events span 50 minutes of one hour.
                commit_ts_ms: HOUR_06_MS + i * 3,
                tx_id: Some(format!("3E11FA47-71CA-11E1-9E33-C80AA9429562:{}", i + 1)),
                source_name: source.clone(),
                server_id: 7,
            };
            Record::new(shard.clone(), i as u64, event)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Child: one format, one process.

fn format_of(name: &str) -> Result<(OutputFormat, Compression), BoxError> {
    Ok(match name {
        "parquet" => (OutputFormat::Parquet, Compression::Snappy),
        "csv" => (OutputFormat::Csv, Compression::None),
        "json" => (OutputFormat::Json, Compression::Gzip),
        other => return Err(format!("unknown format {other:?} (parquet, csv, json)").into()),
    })
}

/// A `kB` field of /proc/self/status, e.g. `VmHWM`.
fn status_kb(field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{field} not in /proc/self/status").into())
}

/// Resets VmHWM to the current RSS (Linux 4.0+), so the peak read later is the writing's own
/// and not the building of the rows.
fn reset_peak() -> Result<(), BoxError> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

/// User + system CPU seconds of this process (/proc/self/stat, clock ticks at 100 Hz).
fn cpu_seconds() -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_comm = stat.rsplit_once(')').ok_or("bad /proc/self/stat")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after the `)` the state is field 3, index 0.
    let utime: u64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok((utime + stime) as f64 / 100.0)
}

fn dir_bytes(dir: &Path, skip: &str) -> Result<(u64, usize), BoxError> {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == skip {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (bytes, files) = dir_bytes(&entry.path(), skip)?;
            total.0 += bytes;
            total.1 += files;
        } else {
            total.0 += meta.len();
            total.1 += 1;
        }
    }
    Ok(total)
}

fn child(format: &str, rows: usize) -> Result<(), BoxError> {
    let (output_format, compression) = format_of(format)?;
    let records = events(rows);
    reset_peak()?;
    let rss_base_kb = status_kb("VmRSS")?;
    let dir = tempfile::Builder::new().prefix("write_bench-").tempdir()?;
    let root: PathBuf = dir.path().join("out");
    let options = SinkOptions::new(&root, output_format, compression)?;
    let mut sink = FileSink::new(options);
    sink.recover(None)?;

    let cpu0 = cpu_seconds()?;
    let t0 = Instant::now();
    for record in records {
        sink.write(record)?;
    }
    let t_write = t0.elapsed();
    let state = sink.prepare_checkpoint()?;
    let t_prepare = t0.elapsed();
    let report = sink.commit(&state)?;
    let total = t0.elapsed();
    let cpu = cpu_seconds()? - cpu0;
    let hwm_kb = status_kb("VmHWM")?;
    let (bytes, files) = dir_bytes(&root, cdc_sink::INPROGRESS_DIR)?;
    if sink.stats().rows_appended != rows as u64 || report.renamed != files {
        return Err(format!(
            "expected {rows} rows in {} renamed files, got {:?} / {files} files",
            report.renamed,
            sink.stats()
        )
        .into());
    }
    drop(sink);
    drop(dir);

    // Breakdown (after the peak was read): events → Arrow, then Arrow → bytes, no file I/O.
    let records = events(rows);
    let t = Instant::now();
    let mut builder = RecordBatchBuilder::new(schema())?;
    let mut batches = Vec::with_capacity(rows / BATCH_ROWS + 1);
    for record in &records {
        builder.append(&record.event)?;
        if builder.len() >= BATCH_ROWS {
            batches.push(builder.finish()?);
        }
    }
    if !builder.is_empty() {
        batches.push(builder.finish()?);
    }
    let t_append = t.elapsed();
    drop(records);
    let t = Instant::now();
    let writer_options = WriterOptions::new(output_format, compression);
    let mut writer = new_writer(
        std::io::sink(),
        builder.arrow_schema().clone(),
        &writer_options,
    )?;
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let t_encode = t.elapsed();
    // The same without compression: the difference is the compressor's share.
    let t = Instant::now();
    let raw_options = WriterOptions::new(output_format, Compression::None);
    let mut writer = new_writer(
        std::io::sink(),
        builder.arrow_schema().clone(),
        &raw_options,
    )?;
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let t_encode_raw = t.elapsed();

    println!(
        "RESULT impl=ours format={format} rows={rows} secs={:.4} cpu={:.3} bytes={bytes} files={files} \
         rss_base_kb={rss_base_kb} hwm_kb={hwm_kb} write_s={:.4} prepare_s={:.4} commit_s={:.4} \
         append_s={:.4} encode_s={:.4} encode_raw_s={:.4}",
        total.as_secs_f64(),
        cpu,
        t_write.as_secs_f64(),
        (t_prepare - t_write).as_secs_f64(),
        (total - t_prepare).as_secs_f64(),
        t_append.as_secs_f64(),
        t_encode.as_secs_f64(),
        t_encode_raw.as_secs_f64(),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parent: children per format, then the peer, then one table.

type Figures = BTreeMap<String, String>;

fn parse_results(stdout: &str) -> Vec<Figures> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn run(command: &mut Command, what: &str) -> Result<Vec<Figures>, BoxError> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let results = parse_results(&String::from_utf8_lossy(&output.stdout));
    if results.is_empty() {
        return Err(format!("{what} printed no RESULT line").into());
    }
    Ok(results)
}

fn num(f: &Figures, key: &str) -> f64 {
    f.get(key).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

fn parent(args: &Args) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let mut results = Vec::new();
    for format in FORMATS {
        eprintln!("ours: {format} ({} rows)...", args.rows);
        results.extend(run(
            Command::new(&exe).args([
                "--rows",
                &args.rows.to_string(),
                "--format",
                format,
                "--child",
            ]),
            &format!("child {format}"),
        )?);
    }
    if args.peer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/write_bench_peer.py");
        eprintln!("pyarrow peer ({} rows)...", args.rows);
        match run(
            Command::new("python3")
                .arg(&script)
                .args(["--rows", &args.rows.to_string()]),
            "write_bench_peer.py",
        ) {
            Ok(peer) => results.extend(peer),
            Err(error) => eprintln!("peer skipped: {error}"),
        }
    }

    fn label(format: &str) -> &str {
        match format {
            "parquet" => "parquet+snappy",
            "csv" => "csv (none)",
            "json" => "jsonl+gzip",
            other => other,
        }
    }
    println!(
        "\n{} rows, 7 data columns + 5 metadata columns, one core (single-threaded writers)\n",
        args.rows
    );
    println!(
        "{:<15} {:<8} {:>8} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "format", "impl", "secs", "cpu s", "rows/s", "MB/s", "MB out", "peak MB", "+base MB"
    );
    for format in FORMATS {
        for imp in ["ours", "pyarrow"] {
            let Some(f) = results.iter().find(|f| {
                f.get("format").map(String::as_str) == Some(format)
                    && f.get("impl").map(String::as_str) == Some(imp)
            }) else {
                continue;
            };
            let secs = num(f, "secs");
            let mb = num(f, "bytes") / 1e6;
            let peak = num(f, "hwm_kb") / 1024.0;
            let base = num(f, "rss_base_kb") / 1024.0;
            println!(
                "{:<15} {:<8} {:>8.3} {:>8.2} {:>10.0} {:>8.1} {:>9.1} {:>9.0} {:>9.0}",
                label(format),
                imp,
                secs,
                num(f, "cpu"),
                num(f, "rows") / secs,
                mb / secs,
                mb,
                peak,
                peak - base,
            );
        }
    }
    println!(
        "\nMB = 10^6 bytes of committed files; peak = VmHWM of the timed write (reset after the \
         rows were built); +base = peak minus VmRSS before the write (the writing's own memory)."
    );
    println!(
        "\nours, split (s):  total = write + prepare (close, fsync) + commit (rename, fsync dir);"
    );
    println!("                   append = events -> Arrow batches alone, encode = batches -> bytes alone (no I/O),");
    println!("                   raw = the same encode without compression");
    println!(
        "{:<15} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "format", "write", "prepare", "commit", "append", "encode", "raw"
    );
    for f in results
        .iter()
        .filter(|f| f.get("impl").map(String::as_str) == Some("ours"))
    {
        println!(
            "{:<15} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            label(f.get("format").map(String::as_str).unwrap_or("?")),
            num(f, "write_s"),
            num(f, "prepare_s"),
            num(f, "commit_s"),
            num(f, "append_s"),
            num(f, "encode_s"),
            num(f, "encode_raw_s"),
        );
    }
    Ok(())
}
