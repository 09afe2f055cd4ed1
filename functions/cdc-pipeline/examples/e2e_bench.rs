//! End-to-end benchmark (issue 7): rows/s from the MariaDB binlog to committed Parquet, p50/p99
//! latency, CPU seconds and peak RSS, for the all-in-one `cdc-pipeline run` and for the three
//! processes `datahub-local` + `cdc-capture` + `file-sink`, beside a Python peer measured in
//! the same run. It prints; it asserts nothing.
//!
//! ```text
//! cargo build --release -p cdc-pipeline -p cdc-capture -p datahub-local -p file-sink
//! cargo run --release -p cdc-pipeline --example e2e_bench -- [--rows 1000000[,5000000]]
//!     [--mode all-in-one|multi-process|both] [--steady-rate 10000 --steady-seconds 30]
//!     [--tx-rows 50000] [--steady-tx-rows 100] [--checkpoint-interval 1000]
//!     [--compression snappy|none|zstd|gzip] [--peer-rows 100000] [--skip-peer] [--skip-live]
//!     [--bin-dir target/release] [--keep]
//! ```
//!
//! One throwaway MariaDB (`cdc_localdb`) serves every run; each run gets a fresh table
//! `bench.t` (BIGINT, INT, DECIMAL(12,2), VARCHAR(64), DATETIME(6), TINYINT, TEXT — the table of
//! `decode_bench`), a fresh binlog (`RESET MASTER`) and fresh pipeline directories. Rows are
//! made by MariaDB itself (`INSERT … SELECT … FROM seq_a_to_b`, the Sequence engine), one
//! statement per transaction. Three workloads per mode:
//!
//! * **catch-up** (throughput): the pipeline is started once, streaming from the binlog head
//!   (`snapshotMode: never`), and stopped with SIGTERM, whose final checkpoint records that
//!   position; then N rows are inserted in `--tx-rows` transactions with the pipeline down;
//!   then it is started again and timed from the spawn until all N rows are in committed
//!   Parquet files. MariaDB's insert speed is not in that figure. (Multi-process:
//!   `datahub-local` is started and ready first; the clock starts when capture and sink are
//!   spawned.) Latency is not reported: every row waited for the start.
//! * **live**: the pipeline runs first; N rows are inserted as fast as MariaDB allows on this
//!   machine (the same transactions), timed from the first insert until all are committed.
//!   MariaDB and the pipeline share the two cores, so this is the sustained end-to-end rate
//!   with the database on the same machine, and the latency under full load.
//! * **steady** (`--steady-seconds S`): `--steady-rate` rows/s in `--steady-tx-rows`-row
//!   transactions on a fixed schedule, for S seconds.
//!
//! Completion and latency are observed from the outside: a thread lists the committed files
//! under `OUTPUT_PATH/bench/t` every 20 ms (a commit is a rename into place, so a listed file is
//! complete) and reads each new file's row count, and for live runs its `id` column. A row's
//! latency is the time its file was first listed minus the time its INSERT returned (autocommit:
//! the commit was acknowledged); it overstates by up to one listing interval (20 ms). Beside it
//! the all-in-one's own histogram `cdc_end_to_end_latency_ms` from `/metrics`, read just before
//! the SIGTERM, p50/p99 interpolated linearly within the bucket (as Prometheus'
//! `histogram_quantile`): it measures something else, from the binlog event timestamp (whole
//! seconds in MariaDB, so it reads up to 1 s high) to the moment the sink was handed the row
//! (before the file is committed, so it misses the wait for the checkpoint). `file-sink`
//! records no latency histogram, so multi-process has none.
//!
//! CPU seconds and peak RSS of each pipeline process come from `wait4(2)`'s `rusage` when it
//! exits after SIGTERM (`ru_utime + ru_stime`, `ru_maxrss` = the VmHWM at exit): exact, and
//! including the final checkpoint, which polling `/proc` just before the exit would miss. A
//! line per run also splits the machine's busy CPU (`/proc/stat`) into the pipeline, mariadbd,
//! this bench (watcher and load generator) and everything else: the machine is shared.
//!
//! Peers, once per row count on the catch-up binlog range (pipeline stopped):
//! `e2e_bench_peer.py`, python-mysql-replication decoding the binlog rows and pyarrow writing
//! them to Parquet with the same compression in 10,000-row row groups, on the first
//! `--peer-rows` rows (it runs at tens of thousands of rows/s); and `mariadb-binlog -v` (C),
//! decoding the whole range to text into /dev/null, the decode floor, not a pipeline.
//! `PYTHON` selects the interpreter (default `python3`; `pip install mysql-replication
//! pyarrow`).
//!
//! Settings passed to the pipeline (see shared/config/REFERENCE.md): `OUTPUT_FORMAT=parquet`,
//! `OUTPUT_COMPRESSION=--compression`, `CHECKPOINT_INTERVAL=--checkpoint-interval` and
//! `CHECKPOINT_MIN_PAUSE=0` (its default of 60 s would otherwise be the interval); the rest
//! are the defaults (rolling 1 GiB / 1 h, batch 10,000, 4 DataHub shards).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arrow_array::Int64Array;
use cdc_event::ServerFlavor;
use cdc_localdb::{LocalMariaDb, LocalMariaDbOptions};
use cdc_mysql::{binlog_head, BinlogHead, SourceOptions};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

const PROJECT: &str = "bench";
const TOPIC: &str = "events";
/// How often the committed files are listed: the resolution of the measured latency.
const WATCH_EVERY: Duration = Duration::from_millis(20);
/// How long a stage may take to log that it is up.
const STARTUP: Duration = Duration::from_secs(120);
/// How long a stage may take to exit after SIGTERM (a final checkpoint) before SIGKILL.
const EXIT_GRACE: Duration = Duration::from_secs(120);
const PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/e2e_bench_peer.py");
const PASSWORD_ENV: &str = "CDC_BENCH_PASSWORD";
/// The issue's targets, printed beside the figures.
const TARGET_ROWS_PER_S: f64 = 250_000.0;
const TARGET_P99_S: f64 = 2.0;
const TARGET_RSS_MB: f64 = 300.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    AllInOne,
    MultiProcess,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::AllInOne => "all-in-one",
            Mode::MultiProcess => "multi-process",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Workload {
    CatchUp,
    Live,
    Steady { rate: u64 },
}

impl Workload {
    fn name(self) -> String {
        match self {
            Workload::CatchUp => "catch-up".into(),
            Workload::Live => "live".into(),
            Workload::Steady { rate } => format!("steady {rate}/s"),
        }
    }
}

struct Args {
    rows: Vec<u64>,
    modes: Vec<Mode>,
    steady_rate: u64,
    steady_seconds: u64,
    tx_rows: u64,
    steady_tx_rows: u64,
    checkpoint_ms: u64,
    compression: String,
    peer_rows: u64,
    skip_peer: bool,
    skip_live: bool,
    bin_dir: Option<PathBuf>,
    keep: bool,
}

const USAGE: &str = "e2e_bench [--rows N[,N...]] [--mode all-in-one|multi-process|both] [--steady-rate R] [--steady-seconds S] \
[--tx-rows T] [--steady-tx-rows T] [--checkpoint-interval MS] [--compression snappy|none|zstd|gzip] [--peer-rows P] [--skip-peer] \
[--skip-live] [--bin-dir DIR] [--keep]";

fn parse_args(mut it: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut args = Args {
        rows: vec![1_000_000],
        modes: vec![Mode::AllInOne, Mode::MultiProcess],
        steady_rate: 10_000,
        steady_seconds: 0,
        tx_rows: 50_000,
        steady_tx_rows: 100,
        checkpoint_ms: 1000,
        compression: "snappy".into(),
        peer_rows: 100_000,
        skip_peer: false,
        skip_live: false,
        bin_dir: None,
        keep: false,
    };
    // The upper bound keeps every derived value (ids, the INT column, the DATETIME) in range.
    fn number(name: &str, text: &str, min: u64) -> anyhow::Result<u64> {
        let n: u64 = text.trim().parse().with_context(|| format!("{name} {text}: not a whole number"))?;
        if n < min || n > 1_000_000_000 {
            bail!("{name} must be between {min} and 1000000000, got {n}");
        }
        Ok(n)
    }
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--rows" => {
                let text = value("--rows")?;
                args.rows = text.split(',').map(|n| number("--rows", n, 0)).collect::<anyhow::Result<_>>()?;
                args.rows.retain(|&n| n > 0);
            }
            "--mode" => {
                args.modes = match value("--mode")?.as_str() {
                    "all-in-one" => vec![Mode::AllInOne],
                    "multi-process" => vec![Mode::MultiProcess],
                    "both" => vec![Mode::AllInOne, Mode::MultiProcess],
                    other => bail!("--mode {other:?}: expected all-in-one, multi-process or both"),
                }
            }
            "--steady-rate" => args.steady_rate = number("--steady-rate", &value("--steady-rate")?, 1)?,
            "--steady-seconds" => args.steady_seconds = number("--steady-seconds", &value("--steady-seconds")?, 0)?,
            "--tx-rows" => args.tx_rows = number("--tx-rows", &value("--tx-rows")?, 1)?,
            "--steady-tx-rows" => args.steady_tx_rows = number("--steady-tx-rows", &value("--steady-tx-rows")?, 1)?,
            "--checkpoint-interval" => args.checkpoint_ms = number("--checkpoint-interval", &value("--checkpoint-interval")?, 10)?,
            "--compression" => {
                let c = value("--compression")?;
                if !["none", "snappy", "zstd", "gzip"].contains(&c.as_str()) {
                    bail!("--compression {c:?}: expected none, snappy, zstd or gzip");
                }
                args.compression = c;
            }
            "--peer-rows" => args.peer_rows = number("--peer-rows", &value("--peer-rows")?, 1)?,
            "--skip-peer" => args.skip_peer = true,
            "--skip-live" => args.skip_live = true,
            "--bin-dir" => args.bin_dir = Some(PathBuf::from(value("--bin-dir")?)),
            "--keep" => args.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let bins = Binaries::find(args.bin_dir.as_deref())?;
    bench(&args, &bins).await
}

// ---------------------------------------------------------------------------------------------
// The runs and the table.

/// What one run measured.
struct RunResult {
    mode: Mode,
    workload: Workload,
    rows: u64,
    seconds: f64,
    /// Own measurement: INSERT returned → file listed, (p50, p99) in seconds.
    own: Option<(f64, f64)>,
    /// The all-in-one's `/metrics` histogram: (p50, p99) as text.
    histogram: Option<(String, String)>,
    procs: Vec<(&'static str, Usage)>,
    files: usize,
    /// Cores used on average by processes other than the pipeline, mariadbd and this bench.
    others: f64,
}

impl RunResult {
    fn cpu_s(&self) -> f64 {
        self.procs.iter().map(|(_, u)| u.cpu_s).sum()
    }
    /// Sum of the processes' peaks: an upper bound of their peak together.
    fn rss_mb(&self) -> f64 {
        self.procs.iter().map(|(_, u)| u.peak_rss_kb as f64 / 1024.0).sum()
    }
}

struct PeerResult {
    tool: String,
    rows: u64,
    seconds: f64,
    note: String,
}

async fn bench(args: &Args, bins: &Binaries) -> anyhow::Result<()> {
    // A larger buffer pool than the test default (64M), so that loading 5M rows (≈1 GB of
    // table) does not turn into a disk-bound insert and the live runs measure the pipeline.
    let db = LocalMariaDb::start_with(LocalMariaDbOptions {
        extra_args: vec!["--innodb-buffer-pool-size=1G".into()],
        ..Default::default()
    })
    .context("starting MariaDB")?;
    db.execute(&format!("CREATE DATABASE bench; GRANT ALL ON bench.* TO '{}'@'%'", db.user()))?;
    if db.execute("SELECT COUNT(*) FROM bench.seq_1_to_10")?.trim() != "10" {
        bail!("MariaDB's Sequence engine (seq_1_to_N) is not available");
    }
    let source = SourceOptions {
        host: db.host().into(),
        port: db.port(),
        user: db.user().into(),
        password: db.password().into(),
        schema: "bench".into(),
        tls: Default::default(),
    };
    let mariadbd_pid: Option<i32> =
        std::fs::read_to_string(db.root().join("mariadbd.pid")).ok().and_then(|s| s.trim().parse().ok());
    println!(
        "e2e_bench: modes {:?}, rows {:?}, {}-row transactions, CHECKPOINT_INTERVAL={} ms, Parquet {}, {} cores, binaries in {}",
        args.modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
        args.rows,
        args.tx_rows,
        args.checkpoint_ms,
        args.compression,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        bins.dir.display()
    );

    let mut results = Vec::new();
    let mut peers = Vec::new();
    for &rows in &args.rows {
        for (i, &mode) in args.modes.iter().enumerate() {
            let ctx = RunCtx { args, bins, db: &db, source: &source, mariadbd_pid };
            let (result, range) = ctx.run(mode, Workload::CatchUp, rows).await?;
            results.push(result);
            // Peers once per row count, over the binlog range just read.
            if i == 0 && !args.skip_peer {
                peers.extend(run_peers(&source, &range, rows, args));
            }
            if !args.skip_live {
                results.push(ctx.run(mode, Workload::Live, rows).await?.0);
            }
        }
    }
    if args.steady_seconds > 0 {
        for &mode in &args.modes {
            let ctx = RunCtx { args, bins, db: &db, source: &source, mariadbd_pid };
            let rows = args.steady_rate * args.steady_seconds;
            results.push(ctx.run(mode, Workload::Steady { rate: args.steady_rate }, rows).await?.0);
        }
    }
    db.stop()?;
    print_table(args, &results, &peers);
    Ok(())
}

fn print_table(args: &Args, results: &[RunResult], peers: &[PeerResult]) {
    println!();
    println!(
        "End to end, MariaDB binlog → committed Parquet ({}), CHECKPOINT_INTERVAL={} ms, {} cores",
        args.compression,
        args.checkpoint_ms,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<14} {:<15} {:>9} {:>8} {:>9} {:>17} {:>17} {:>7} {:>6} {:>9} {:>6} {:>7}",
        "mode", "workload", "rows", "seconds", "rows/s", "p50/p99 own (s)", "p50/p99 hist (s)", "CPU s", "cores", "peak RSS", "files", "others"
    );
    for r in results {
        let own = match (r.workload, r.own) {
            (Workload::CatchUp, _) => "(backlog)".to_owned(),
            (_, Some((p50, p99))) => format!("{p50:.3} / {p99:.3}"),
            (_, None) => "-".to_owned(),
        };
        let hist = match (r.workload, &r.histogram) {
            (Workload::CatchUp, _) => "(backlog)".to_owned(),
            (_, Some((p50, p99))) => format!("{p50} / {p99}"),
            (_, None) => "-".to_owned(),
        };
        let rss = if r.procs.len() > 1 { format!("Σ{:.0} MB", r.rss_mb()) } else { format!("{:.0} MB", r.rss_mb()) };
        println!(
            "{:<14} {:<15} {:>9} {:>8.2} {:>9.0} {:>17} {:>17} {:>7.1} {:>6.2} {:>9} {:>6} {:>7.2}",
            r.mode.name(),
            r.workload.name(),
            r.rows,
            r.seconds,
            r.rows as f64 / r.seconds,
            own,
            hist,
            r.cpu_s(),
            r.cpu_s() / r.seconds,
            rss,
            r.files,
            r.others
        );
    }
    let multi: Vec<&RunResult> = results.iter().filter(|r| r.procs.len() > 1).collect();
    if !multi.is_empty() {
        println!("\nmulti-process, per process (CPU s, peak RSS):");
        for r in multi {
            let procs: Vec<String> =
                r.procs.iter().map(|(name, u)| format!("{name} {:.1} s {:.0} MB", u.cpu_s, u.peak_rss_kb as f64 / 1024.0)).collect();
            println!("  {:<15} {:>9}: {}", r.workload.name(), r.rows, procs.join(", "));
        }
    }
    if !peers.is_empty() {
        println!("\npeers, same binlog range, pipeline stopped:");
        println!("{:<44} {:>9} {:>8} {:>9}  note", "tool", "rows", "seconds", "rows/s");
        for p in peers {
            println!("{:<44} {:>9} {:>8.2} {:>9.0}  {}", p.tool, p.rows, p.seconds, p.rows as f64 / p.seconds, p.note);
        }
    }
    println!("\ntargets (issue 7), printed, not asserted:");
    for r in results.iter().filter(|r| r.mode == Mode::AllInOne && r.workload == Workload::CatchUp) {
        let rate = r.rows as f64 / r.seconds;
        println!(
            "  all-in-one ≥ {TARGET_ROWS_PER_S:.0} rows/s sustained: {} rows catch-up {rate:.0} rows/s ({})",
            r.rows,
            verdict(rate >= TARGET_ROWS_PER_S)
        );
    }
    for r in results.iter().filter(|r| matches!(r.workload, Workload::Steady { .. })) {
        if let Some((_, p99)) = r.own {
            println!(
                "  p99 < {TARGET_P99_S} s at {} (CHECKPOINT_INTERVAL={}): {} p99 {p99:.3} s ({})",
                r.workload.name(),
                args.checkpoint_ms,
                r.mode.name(),
                verdict(p99 < TARGET_P99_S)
            );
        }
    }
    for r in results {
        for (name, u) in &r.procs {
            let mb = u.peak_rss_kb as f64 / 1024.0;
            if mb >= TARGET_RSS_MB {
                println!("  peak RSS < {TARGET_RSS_MB:.0} MB: {name} reached {mb:.1} MB in {} {} {} rows (missed)", r.mode.name(), r.workload.name(), r.rows);
            }
        }
    }
    let worst = results.iter().flat_map(|r| r.procs.iter().map(|(_, u)| u.peak_rss_kb)).max().unwrap_or(0) as f64 / 1024.0;
    println!("  peak RSS < {TARGET_RSS_MB:.0} MB per process: largest {worst:.1} MB ({})", verdict(worst < TARGET_RSS_MB));
    println!(
        "\nown latency: INSERT returned → committed file listed (20 ms listing), exact percentiles over every row. \
hist: the all-in-one's cdc_end_to_end_latency_ms, binlog timestamp (whole seconds) → row handed to the sink, \
interpolated within the bucket; file-sink has none. CPU s and peak RSS from wait4(2) at exit; Σ = sum of the processes' peaks; \
cores = CPU s / seconds; others = cores used meanwhile by other processes on this shared machine (/proc/stat)."
    );
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

/// What every run needs.
struct RunCtx<'a> {
    args: &'a Args,
    bins: &'a Binaries,
    db: &'a LocalMariaDb,
    source: &'a SourceOptions,
    mariadbd_pid: Option<i32>,
}

/// The binlog range a load wrote.
struct Range {
    start: BinlogHead,
    end: BinlogHead,
}

impl RunCtx<'_> {
    async fn run(&self, mode: Mode, workload: Workload, rows: u64) -> anyhow::Result<(RunResult, Range)> {
        let label = format!("{} {} {} rows", mode.name(), workload.name(), rows);
        println!("\n== {label}");
        // A fresh table and binlog: nothing of an earlier run is read, and the disk is freed.
        self.db.execute(
            "RESET MASTER; DROP TABLE IF EXISTS bench.t; CREATE TABLE bench.t (id BIGINT PRIMARY KEY, a INT, price DECIMAL(12,2), \
             name VARCHAR(64), at DATETIME(6), flag TINYINT, body TEXT) DEFAULT CHARSET=utf8mb4",
        )?;
        let dir = tempfile::Builder::new().prefix("e2e-bench-").tempdir().context("run directory")?;
        let layout = Layout::new(dir.path(), self.args);
        let table_dir = layout.out.join("bench").join("t");
        let mut conn = self.source.connect().await.context("connecting to MariaDB")?;
        let (tx_rows, period) = match workload {
            Workload::Steady { rate } => {
                let tx = self.args.steady_tx_rows;
                (tx, Some(Duration::from_secs_f64(tx as f64 / rate as f64)))
            }
            _ => (self.args.tx_rows, None),
        };

        let (mut pipeline, started, range, machine_before) = match workload {
            Workload::CatchUp => {
                // First start: streams from the head; SIGTERM's final checkpoint keeps it.
                let primed = Pipeline::start(mode, self.bins, &layout, self.db)?;
                primed.wait_ready()?;
                primed.stop()?;
                let start = head(&mut conn).await?;
                let loading = Instant::now();
                load(&mut conn, rows, tx_rows, None).await?;
                let load_s = loading.elapsed().as_secs_f64();
                let end = head(&mut conn).await?;
                println!(
                    "   loaded with the pipeline down: {:.1} s ({:.0} rows/s into MariaDB); binlog {}:{} .. {}:{}",
                    load_s,
                    rows as f64 / load_s,
                    start.file,
                    start.position,
                    end.file,
                    end.position
                );
                let machine = MachineCpu::read(self.mariadbd_pid);
                let pipeline = Pipeline::start(mode, self.bins, &layout, self.db)?;
                let started = pipeline.spawned;
                (pipeline, started, Range { start, end }, machine)
            }
            Workload::Live | Workload::Steady { .. } => {
                let pipeline = Pipeline::start(mode, self.bins, &layout, self.db)?;
                pipeline.wait_ready()?;
                let start = head(&mut conn).await?;
                let machine = MachineCpu::read(self.mariadbd_pid);
                let started = Instant::now();
                (pipeline, started, Range { start: start.clone(), end: start }, machine)
            }
        };

        let track_ids = workload != Workload::CatchUp;
        let watcher = Watcher::start(table_dir, track_ids.then_some(tx_rows));
        let mut commits = Vec::new();
        let mut range = range;
        if track_ids {
            commits = load(&mut conn, rows, tx_rows, period).await?;
            range.end = head(&mut conn).await?;
            let span = commits.last().map_or(0.0, |last| last.duration_since(started).as_secs_f64());
            println!("   inserted in {span:.1} s ({:.0} rows/s into MariaDB while the pipeline ran)", rows as f64 / span.max(1e-9));
        }
        let _ = conn.disconnect().await;

        // Until every row is committed (or a stage died, or far too long passed).
        let deadline = Duration::from_secs(120 + rows / 2000);
        let mut last_report = Instant::now();
        loop {
            let committed = watcher.rows();
            if committed >= rows {
                break;
            }
            if let Some(name) = pipeline.exited() {
                bail!("{label}: {name} exited with {committed} of {rows} rows committed; its log: {}", pipeline.log_of(name).display());
            }
            if started.elapsed() > deadline {
                bail!("{label}: only {committed} of {rows} rows committed after {deadline:?}; logs in {}", layout.root.display());
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                println!("   … {committed} rows committed after {:.0} s", started.elapsed().as_secs_f64());
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if mode == Mode::AllInOne && workload != Workload::CatchUp {
            pipeline.read_ops_port();
        }
        let histogram = match pipeline.ops_port {
            Some(port) if workload != Workload::CatchUp => match scrape(port).and_then(|text| latency_histogram(&text)) {
                Ok(h) => Some(h),
                Err(e) => {
                    eprintln!("   /metrics: {e:#}");
                    None
                }
            },
            _ => None,
        };
        let procs = pipeline.stop()?;
        let machine = MachineCpu::read(self.mariadbd_pid).since(&machine_before);
        let seen = watcher.finish()?;

        let done_at = seen.done_at(rows).context("the watcher saw every row but not when")?;
        let seconds = done_at.duration_since(started).as_secs_f64();
        let committed: u64 = seen.files.iter().map(|f| f.rows).sum();
        if committed != rows {
            println!("   NOTE: {committed} rows in committed files for {rows} inserted (duplicates?)");
        }
        let own = if track_ids { seen.latency(&commits) } else { None };
        let pipeline_cpu: f64 = procs.iter().map(|(_, u)| u.cpu_s).sum();
        println!(
            "   {rows} rows committed in {seconds:.2} s = {:.0} rows/s; {} files; {}",
            rows as f64 / seconds,
            seen.files.len(),
            procs
                .iter()
                .map(|(n, u)| format!("{n}: {:.1} CPU s, peak RSS {:.0} MB", u.cpu_s, u.peak_rss_kb as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join("; ")
        );
        if let Some((p50, p99)) = own {
            println!("   latency INSERT returned → committed file listed: p50 {p50:.3} s, p99 {p99:.3} s");
        }
        if let Some((p50, p99)) = &histogram {
            println!("   /metrics cdc_end_to_end_latency_ms: p50 {p50} s, p99 {p99} s");
        }
        println!("   {}", machine.describe(pipeline_cpu));
        if self.args.keep {
            println!("   kept {}", dir.keep().display());
        }
        let files = seen.files.len();
        let others = machine.others(pipeline_cpu);
        Ok((RunResult { mode, workload, rows, seconds, own, histogram, procs, files, others }, range))
    }
}

async fn head(conn: &mut Conn) -> anyhow::Result<BinlogHead> {
    binlog_head(conn, ServerFlavor::MariaDb).await?.context("the binlog is off")
}

/// Inserts ids 1..=rows in `tx_rows`-row transactions (one INSERT … SELECT each, autocommit),
/// every `period` if given (a fixed schedule: a late transaction is followed at once by the
/// next), else back to back. Returns when each transaction's INSERT returned.
async fn load(conn: &mut Conn, rows: u64, tx_rows: u64, period: Option<Duration>) -> anyhow::Result<Vec<Instant>> {
    let mut commits = Vec::with_capacity(rows.div_ceil(tx_rows) as usize);
    let mut ticker = period.map(|p| {
        let mut t = tokio::time::interval(p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let mut next = 1;
    while next <= rows {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let last = (next + tx_rows - 1).min(rows);
        // The values of decode_bench's rows, computed by MariaDB from the sequence.
        let sql = format!(
            "INSERT INTO bench.t (id, a, price, name, at, flag, body) SELECT seq, (seq * 7) % 2000000000, seq / 100, \
             CONCAT('customer-', seq), TIMESTAMP'2024-01-01 00:00:00' + INTERVAL (seq * 1000001) MICROSECOND, seq % 100, \
             REPEAT('lorem ipsum ', 1 + seq % 8) FROM bench.seq_{next}_to_{last}"
        );
        conn.query_drop(sql).await.with_context(|| format!("inserting rows {next}..={last}"))?;
        commits.push(Instant::now());
        next = last + 1;
    }
    Ok(commits)
}

// ---------------------------------------------------------------------------------------------
// The pipeline's processes.

struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// The function binaries next to this example's directory (`target/release/examples/..`
    /// → `target/release/`), or in `--bin-dir`.
    fn find(dir: Option<&Path>) -> anyhow::Result<Binaries> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => {
                let exe = std::env::current_exe().context("locating this executable")?;
                exe.parent().and_then(Path::parent).context("no target directory above this executable")?.to_path_buf()
            }
        };
        for name in ["cdc-pipeline", "cdc-capture", "datahub-local", "file-sink"] {
            if !dir.join(name).is_file() {
                bail!(
                    "{} is missing: cargo build --release -p cdc-pipeline -p cdc-capture -p datahub-local -p file-sink (or --bin-dir)",
                    dir.join(name).display()
                );
            }
        }
        Ok(Binaries { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The directories of one run.
struct Layout {
    root: PathBuf,
    out: PathBuf,
    datahub_port: u16,
    compression: String,
    checkpoint_ms: u64,
}

impl Layout {
    fn new(root: &Path, args: &Args) -> Layout {
        Layout {
            root: root.to_path_buf(),
            out: root.join("out"),
            // datahub-local keeps its port across the restart of a catch-up run.
            datahub_port: std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port()),
            compression: args.compression.clone(),
            checkpoint_ms: args.checkpoint_ms,
        }
    }

    fn file_url(&self, name: &str) -> String {
        format!("file://{}", self.root.join(name).display())
    }

    fn output_env(&self) -> Vec<(String, String)> {
        vars(&[
            ("OUTPUT_PATH", self.out.display().to_string()),
            ("OUTPUT_FORMAT", "parquet".into()),
            ("OUTPUT_COMPRESSION", self.compression.clone()),
            ("CHECKPOINT_INTERVAL", self.checkpoint_ms.to_string()),
            // Its default (60 s) would otherwise be the effective interval.
            ("CHECKPOINT_MIN_PAUSE", "0".into()),
        ])
    }

    fn capture_env(&self, db: &LocalMariaDb) -> Vec<(String, String)> {
        let mut env = db.env_vars();
        env.extend(vars(&[
            ("DATABASE_SCHEMA", "bench".into()),
            ("DATABASE_TABLES", "t".into()),
            ("DATABASE_SNAPSHOT_MODE", "never".into()),
            ("DATABASE_SERVER_ID", "4343".into()),
            ("DATAHUB_PROJECT", PROJECT.into()),
            ("DATAHUB_TOPIC", TOPIC.into()),
        ]));
        env
    }

    fn datahub_env(&self) -> Vec<(String, String)> {
        vars(&[
            ("DATAHUB_ENDPOINT", format!("http://127.0.0.1:{}", self.datahub_port)),
            ("DATAHUB_ACCESS_ID", "local-id".into()),
            ("DATAHUB_ACCESS_KEY", "local-key".into()),
            ("DATAHUB_PROJECT", PROJECT.into()),
            ("DATAHUB_TOPIC", TOPIC.into()),
            ("DATAHUB_CONSUMER_GROUP", "files".into()),
        ])
    }
}

fn vars(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Resources a process used over its life, from `wait4(2)`.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu_s: f64,
    peak_rss_kb: u64,
}

/// A function binary running as our child, its stderr (JSON log lines) in a file.
struct Stage {
    name: &'static str,
    pid: libc::pid_t,
    log: PathBuf,
    /// The log's length at the spawn: a restarted stage appends to the same log.
    log_start: usize,
    reaped: bool,
}

impl Stage {
    fn spawn(name: &'static str, binary: &Path, env: Vec<(String, String)>, log: PathBuf) -> anyhow::Result<Stage> {
        let file = File::options().create(true).append(true).open(&log).with_context(|| format!("{}", log.display()))?;
        let log_start = usize::try_from(file.metadata().map_or(0, |m| m.len())).unwrap_or(0);
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MONITORING_PORT", "0")
            .env("LOG_LEVEL", "info")
            .env("LOG_FORMAT", "json")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        // Reaped with wait4 below, for its rusage; std's Child neither waits nor kills on drop.
        let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
        Ok(Stage { name, pid, log, log_start, reaped: false })
    }

    /// Waits for a log line of this process containing `needle`; returns it.
    fn wait_for_log(&self, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + STARTUP;
        loop {
            let mut text = String::new();
            if let Ok(mut f) = File::open(&self.log) {
                let _ = f.read_to_string(&mut text);
            }
            let fresh = text.get(self.log_start..).unwrap_or("");
            if let Some(line) = fresh.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            if self.exited() {
                bail!("{} exited before logging {needle:?}; its log: {}", self.name, self.log.display());
            }
            if Instant::now() > deadline {
                bail!("{} logged no {needle:?} within {STARTUP:?}; its log: {}", self.name, self.log.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Exited (a zombie until reaped; /proc still has it).
    fn exited(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // `pid (comm) state ...`; comm may contain spaces and parentheses.
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => true,
        }
    }

    /// SIGTERM (a graceful stop: final checkpoint and commit), then reap with its rusage.
    fn terminate(mut self) -> anyhow::Result<Usage> {
        // SAFETY: kill(2) on our own unreaped child; no memory is involved.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            let (reaped, status, usage) = self.reap(libc::WNOHANG)?;
            if reaped {
                let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
                if code != 0 {
                    bail!("{} exited with status {status:#x} after SIGTERM; its log: {}", self.name, self.log.display());
                }
                return Ok(usage);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {EXIT_GRACE:?} of SIGTERM; its log: {}", self.name, self.log.display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// wait4(2): whether the child was reaped, its status and its resource usage.
    fn reap(&mut self, flags: libc::c_int) -> anyhow::Result<(bool, libc::c_int, Usage)> {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain old data, zero is a valid value; wait4 writes into both
        // out-parameters, which live across the call.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let got = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
        if got < 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("wait4 on {}", self.name));
        }
        if got == 0 {
            return Ok((false, 0, Usage { cpu_s: 0.0, peak_rss_kb: 0 }));
        }
        self.reaped = true;
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let usage = Usage { cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime), peak_rss_kb: ru.ru_maxrss.max(0) as u64 };
        Ok((true, status, usage))
    }
}

impl Drop for Stage {
    /// A failed run leaves nothing running.
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: as in terminate.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.reap(0);
        }
    }
}

/// One run's pipeline: the all-in-one process, or datahub-local + capture + sink.
struct Pipeline {
    stages: Vec<Stage>,
    /// When capture (and the sink) were spawned: a catch-up run's clock starts here.
    spawned: Instant,
    /// The all-in-one's ops port (its `/metrics`), once read.
    ops_port: Option<u16>,
}

impl Pipeline {
    /// Starts the stages. Multi-process: datahub-local is up before capture and sink start
    /// (its start is not part of the timed window's critical path in a deployment either).
    fn start(mode: Mode, bins: &Binaries, layout: &Layout, db: &LocalMariaDb) -> anyhow::Result<Pipeline> {
        let log = |name: &str| layout.root.join(format!("{name}.log"));
        match mode {
            Mode::AllInOne => {
                let mut env = layout.capture_env(db);
                env.extend(layout.output_env());
                env.extend(vars(&[
                    ("DATAHUB_ENDPOINT", "embedded".into()),
                    ("DATAHUB_LOCAL_DATA_DIR", layout.root.join("log").display().to_string()),
                    ("CHECKPOINT_DIR", layout.file_url("checkpoints")),
                    ("SAVEPOINT_DIR", layout.file_url("savepoints")),
                ]));
                let spawned = Instant::now();
                let stage = Stage::spawn("cdc-pipeline", &bins.path("cdc-pipeline"), env, log("cdc-pipeline"))?;
                Ok(Pipeline { stages: vec![stage], spawned, ops_port: None })
            }
            Mode::MultiProcess => {
                let env = vars(&[
                    ("DATAHUB_LOCAL_PORT", layout.datahub_port.to_string()),
                    ("DATAHUB_LOCAL_BIND", "127.0.0.1".into()),
                    ("DATAHUB_LOCAL_DATA_DIR", layout.root.join("datahub").display().to_string()),
                ]);
                let datahub = Stage::spawn("datahub-local", &bins.path("datahub-local"), env, log("datahub-local"))?;
                datahub.wait_for_log("serving the DataHub API")?;
                let mut env = layout.capture_env(db);
                env.extend(layout.datahub_env());
                env.extend(vars(&[
                    ("CHECKPOINT_DIR", layout.file_url("capture-checkpoints")),
                    ("CHECKPOINT_INTERVAL", layout.checkpoint_ms.to_string()),
                    ("CHECKPOINT_MIN_PAUSE", "0".into()),
                ]));
                let spawned = Instant::now();
                let capture = Stage::spawn("cdc-capture", &bins.path("cdc-capture"), env, log("cdc-capture"))?;
                let mut env = layout.datahub_env();
                env.extend(layout.output_env());
                env.push(("CHECKPOINT_DIR".into(), layout.file_url("sink-checkpoints")));
                let sink = Stage::spawn("file-sink", &bins.path("file-sink"), env, log("file-sink"))?;
                Ok(Pipeline { stages: vec![datahub, capture, sink], spawned, ops_port: None })
            }
        }
    }

    /// Waits until capture streams (and, multi-process, the sink reads the topic, which
    /// capture creates at its first publish). Reads the all-in-one's ops port.
    fn wait_ready(&self) -> anyhow::Result<()> {
        for stage in &self.stages {
            match stage.name {
                "cdc-pipeline" | "cdc-capture" => {
                    stage.wait_for_log("streaming the binlog")?;
                }
                "file-sink" => {
                    stage.wait_for_log("file sink running")?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads the all-in-one's ops port (`MONITORING_PORT=0`: any free port) from its log.
    fn read_ops_port(&mut self) {
        if let Some(stage) = self.stages.iter().find(|s| s.name == "cdc-pipeline") {
            if let Ok(line) = stage.wait_for_log("serving /health") {
                self.ops_port = line
                    .split("\"ops_addr\":\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|addr| addr.rsplit(':').next())
                    .and_then(|port| port.parse().ok());
            }
        }
    }

    /// The stage that exited, if one did.
    fn exited(&self) -> Option<&'static str> {
        self.stages.iter().find(|s| s.exited()).map(|s| s.name)
    }

    fn log_of(&self, name: &str) -> PathBuf {
        self.stages.iter().find(|s| s.name == name).map_or_else(PathBuf::new, |s| s.log.clone())
    }

    /// SIGTERM to every stage, readers before what they read from; their usage.
    fn stop(self) -> anyhow::Result<Vec<(&'static str, Usage)>> {
        let mut stages = self.stages;
        let mut usage = Vec::new();
        // Sink first, then capture, then the bus: none loses its peer before its final
        // checkpoint.
        while let Some(stage) = stages.pop() {
            let name = stage.name;
            usage.push((name, stage.terminate()?));
        }
        usage.reverse();
        Ok(usage)
    }
}

/// `GET /metrics` over HTTP/1.0 (the response ends with the connection, no chunking).
fn scrape(port: u16) -> anyhow::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).context("connecting to the ops port")?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP header end")?;
    if !head.starts_with("HTTP/1.") || !head.lines().next().is_some_and(|l| l.contains(" 200")) {
        bail!("/metrics answered {:?}", head.lines().next());
    }
    Ok(body.to_owned())
}

/// p50 and p99 in seconds from `cdc_end_to_end_latency_ms`, interpolated linearly within the
/// bucket as Prometheus' histogram_quantile does; "> X" when it falls in the +Inf bucket.
fn latency_histogram(text: &str) -> anyhow::Result<(String, String)> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("cdc_end_to_end_latency_ms_bucket")) {
        let le = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()).context("bucket without le")?;
        let le = if le == "+Inf" { f64::INFINITY } else { le.parse().with_context(|| format!("le {le}"))? };
        let count: f64 = line.rsplit(' ').next().and_then(|c| c.parse().ok()).with_context(|| format!("bucket line {line}"))?;
        buckets.push((le, count));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total == 0.0 {
        bail!("cdc_end_to_end_latency_ms has no samples");
    }
    let quantile = |q: f64| -> String {
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, cumulative) in &buckets {
            if cumulative >= rank {
                if le.is_infinite() {
                    return format!(">{:.0}", lower.0 / 1000.0);
                }
                let within = cumulative - lower.1;
                let ms = if within > 0.0 { lower.0 + (le - lower.0) * (rank - lower.1) / within } else { le };
                return format!("{:.3}", ms / 1000.0);
            }
            lower = (le, cumulative);
        }
        "-".into()
    };
    Ok((quantile(0.5), quantile(0.99)))
}

// ---------------------------------------------------------------------------------------------
// Watching the committed files.

/// One committed file, when it was first listed and what it holds.
struct FileSeen {
    seen: Instant,
    rows: u64,
    /// Rows per transaction index (live runs), `(id - 1) / tx_rows`.
    by_tx: BTreeMap<u64, u64>,
}

struct Seen {
    files: Vec<FileSeen>,
}

impl Seen {
    /// When the committed files first held `rows` rows.
    fn done_at(&self, rows: u64) -> Option<Instant> {
        let mut by_time: Vec<&FileSeen> = self.files.iter().collect();
        by_time.sort_by_key(|f| f.seen);
        let mut sum = 0;
        for f in by_time {
            sum += f.rows;
            if sum >= rows {
                return Some(f.seen);
            }
        }
        None
    }

    /// p50/p99 seconds from each transaction's commit to its file's listing, every row counted.
    fn latency(&self, commits: &[Instant]) -> Option<(f64, f64)> {
        let mut samples: Vec<(f64, u64)> = Vec::new();
        for f in &self.files {
            for (&tx, &n) in &f.by_tx {
                let commit = *commits.get(tx as usize)?;
                samples.push((f.seen.saturating_duration_since(commit).as_secs_f64(), n));
            }
        }
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: u64 = samples.iter().map(|s| s.1).sum();
        let quantile = |q: f64| {
            let rank = (q * total as f64).ceil().max(1.0) as u64;
            let mut cumulative = 0;
            for &(latency, n) in &samples {
                cumulative += n;
                if cumulative >= rank {
                    return latency;
                }
            }
            f64::NAN
        };
        (total > 0).then(|| (quantile(0.5), quantile(0.99)))
    }
}

/// A thread listing the committed files of the table every [`WATCH_EVERY`].
struct Watcher {
    rows: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<anyhow::Result<Seen>>,
}

impl Watcher {
    fn start(dir: PathBuf, tx_rows: Option<u64>) -> Watcher {
        let rows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (rows.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut known = HashSet::new();
            let mut files = Vec::new();
            // One more listing after the stop, so a file committed at the very end counts.
            let mut last = false;
            loop {
                let now = Instant::now();
                let mut new = Vec::new();
                list_parquet(&dir, &mut new, &known);
                for path in new {
                    let file = read_committed(&path, tx_rows, now).with_context(|| format!("reading {}", path.display()))?;
                    r.fetch_add(file.rows, Ordering::Relaxed);
                    files.push(file);
                    known.insert(path);
                }
                if last {
                    return Ok(Seen { files });
                }
                last = s.load(Ordering::Relaxed);
                std::thread::sleep(WATCH_EVERY.saturating_sub(now.elapsed()));
            }
        });
        Watcher { rows, stop, handle }
    }

    fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    fn finish(self) -> anyhow::Result<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| anyhow::anyhow!("the watcher thread panicked"))?
    }
}

/// Committed Parquet files under `dir` not in `known`; dot and underscore entries are not
/// committed data (`.inprogress/`), as query engines see it.
fn list_parquet(dir: &Path, out: &mut Vec<PathBuf>, known: &HashSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => list_parquet(&path, out, known),
            Ok(_) if name.ends_with(".parquet") && !known.contains(&path) => out.push(path),
            _ => {}
        }
    }
}

fn read_committed(path: &Path, tx_rows: Option<u64>, seen: Instant) -> anyhow::Result<FileSeen> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).context("negative row count")?;
    let mut by_tx = BTreeMap::new();
    if let Some(tx_rows) = tx_rows {
        let mask = ProjectionMask::columns(builder.parquet_schema(), ["id"]);
        for batch in builder.with_projection(mask).build()? {
            let batch = batch?;
            let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().context("the id column is not Int64")?;
            for id in ids.iter().flatten() {
                let tx = u64::try_from(id - 1).context("id below 1")? / tx_rows;
                *by_tx.entry(tx).or_insert(0) += 1;
            }
        }
    }
    Ok(FileSeen { seen, rows, by_tx })
}

// ---------------------------------------------------------------------------------------------
// Machine CPU accounting (the machine is shared).

struct MachineCpu {
    /// Busy and total jiffies of the machine (/proc/stat).
    busy: u64,
    total: u64,
    mariadbd: u64,
    bench: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, in clock ticks, from /proc/PID/stat.
fn proc_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

impl MachineCpu {
    fn read(mariadbd: Option<i32>) -> MachineCpu {
        let (mut busy, mut total) = (0, 0);
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            if let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) {
                let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal (guest is within user).
                let at = |i: usize| v.get(i).copied().unwrap_or(0);
                busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
                total = busy + at(3) + at(4);
            }
        }
        MachineCpu {
            busy,
            total,
            mariadbd: mariadbd.map_or(0, |p| proc_ticks(&p.to_string())),
            bench: proc_ticks("self"),
        }
    }

    fn since(&self, before: &MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy.saturating_sub(before.busy),
            total: self.total.saturating_sub(before.total),
            mariadbd: self.mariadbd.saturating_sub(before.mariadbd),
            bench: self.bench.saturating_sub(before.bench),
        }
    }

    /// Cores used on average by everything but the pipeline, mariadbd and this bench.
    fn others(&self, pipeline_s: f64) -> f64 {
        let hz = clock_ticks();
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let wall = self.total as f64 / hz / cores;
        let used = (self.busy as f64 - self.mariadbd as f64 - self.bench as f64) / hz - pipeline_s;
        if wall > 0.0 {
            used.max(0.0) / wall
        } else {
            0.0
        }
    }

    /// The window's CPU split, in cores on average (pipeline CPU in seconds from wait4).
    fn describe(&self, pipeline_s: f64) -> String {
        let hz = clock_ticks();
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let wall = self.total as f64 / hz / cores;
        if wall <= 0.0 {
            return "machine CPU: not measured".into();
        }
        let busy = self.busy as f64 / hz;
        let (mariadbd, bench) = (self.mariadbd as f64 / hz, self.bench as f64 / hz);
        let others = (busy - pipeline_s - mariadbd - bench).max(0.0);
        format!(
            "machine over {wall:.1} s: {:.2} of {cores:.0} cores busy — pipeline {:.2}, mariadbd {:.2}, bench {:.2}, others {:.2}",
            busy / wall,
            pipeline_s / wall,
            mariadbd / wall,
            bench / wall,
            others / wall
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Peers.

fn run_peers(source: &SourceOptions, range: &Range, rows: u64, args: &Args) -> Vec<PeerResult> {
    let mut peers = Vec::new();
    let limit = rows.min(args.peer_rows);
    match python_peer(source, &range.start, limit, &args.compression) {
        Ok(p) => peers.push(p),
        Err(e) => eprintln!("   python peer not measured: {e:#}"),
    }
    match mariadb_binlog(source, range, rows) {
        Ok(p) => peers.push(p),
        Err(e) => eprintln!("   mariadb-binlog not measured: {e:#}"),
    }
    peers
}

fn python_peer(source: &SourceOptions, start: &BinlogHead, limit: u64, compression: &str) -> anyhow::Result<PeerResult> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out_dir = tempfile::Builder::new().prefix("e2e-bench-peer-").tempdir()?;
    let out_file = out_dir.path().join("peer.parquet");
    let out = Command::new(&python)
        .arg(PEER_SCRIPT)
        .args([&source.host, &source.port.to_string(), &source.user, &start.file, &start.position.to_string()])
        .args([&limit.to_string(), &out_file.display().to_string(), compression])
        .env(PASSWORD_ENV, &source.password)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {python}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("{python} {PEER_SCRIPT}: stdout {stdout:?} stderr {:?}", String::from_utf8_lossy(&out.stderr)))?;
    if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
        bail!("{err}");
    }
    let rows = v.get("rows").and_then(|x| x.as_u64()).context("no rows in the peer's output")?;
    let seconds = v.get("seconds").and_then(|x| x.as_f64()).context("no seconds in the peer's output")?;
    let peak_kb = v.get("peak_rss_kb").and_then(|x| x.as_u64()).unwrap_or(0);
    let cpu = v.get("cpu_s").and_then(|x| x.as_f64()).unwrap_or(0.0);
    Ok(PeerResult {
        tool: "python-mysql-replication + pyarrow (e2e)".into(),
        rows,
        seconds,
        note: format!("first {limit} rows; CPU {cpu:.1} s, peak RSS {:.0} MB", peak_kb as f64 / 1024.0),
    })
}

fn mariadb_binlog(source: &SourceOptions, range: &Range, rows: u64) -> anyhow::Result<PeerResult> {
    let started = Instant::now();
    let mut files = vec![range.start.file.clone()];
    if range.end.file != range.start.file {
        // Rotations within a run: list every file of the range (binlog.NNNNNN, in order).
        let first: u64 = range.start.file.rsplit('.').next().and_then(|n| n.parse().ok()).context("binlog file number")?;
        let last: u64 = range.end.file.rsplit('.').next().and_then(|n| n.parse().ok()).context("binlog file number")?;
        let stem = range.start.file.rsplit_once('.').map_or("binlog", |(s, _)| s);
        files = (first..=last).map(|n| format!("{stem}.{n:06}")).collect();
    }
    let out = Command::new("mariadb-binlog")
        .arg("--no-defaults")
        .arg("--read-from-remote-server")
        .arg(format!("--host={}", source.host))
        .arg(format!("--port={}", source.port))
        .arg(format!("--user={}", source.user))
        .arg(format!("--password={}", source.password))
        .arg("--base64-output=decode-rows")
        .arg("-v")
        .arg(format!("--start-position={}", range.start.position))
        .arg(format!("--stop-position={}", range.end.position))
        .args(&files)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running mariadb-binlog")?;
    if !out.status.success() {
        bail!("mariadb-binlog failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let note = "C, decoding rows to text into /dev/null: no pipeline".into();
    Ok(PeerResult { tool: "mariadb-binlog -v (C)".into(), rows, seconds: started.elapsed().as_secs_f64(), note })
}
