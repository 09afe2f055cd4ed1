//! What the process-level pipeline tests share: function binaries as supervised child
//! processes, the shop schema and a random workload over it, chaos (SIGKILL of a random
//! stage, then a restart) and the exactness check (the committed Parquet files, read with
//! pyarrow and replayed in `_source_pos` order, equal the tables as SELECT shows them).
//!
//! Used by file-sink's `pipeline.rs` and `chaos.rs`, and by cdc-pipeline's `chaos.rs`
//! through `#[path]`, so it names no binary of its own package and uses only crates both
//! packages have (cdc-event, cdc-localdb, serde_json, tempfile).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdc_event::Position;
use cdc_localdb::process::{Process, ProcessError};
use cdc_localdb::workload::SplitMix64;
use cdc_localdb::LocalMariaDb;
use serde_json::Value as Json;

/// How long one stage may take to start, or the pipeline to show one expected change.
pub const DEADLINE: Duration = Duration::from_secs(180);
/// How long the pipeline may take to catch up after a chaos window: the backlog of minutes
/// of workload, re-read by stages restarted many times, on a small machine.
pub const CATCH_UP: Duration = Duration::from_secs(900);
pub const PROJECT: &str = "cdc_e2e";

/// The independent reader of committed files (pyarrow), embedded so that a test of another
/// package using this module through `#[path]` finds it too.
const READ_ROWS_PY: &str = include_str!("read_rows.py");

/// `name` from the directory of `anchor`, a binary Cargo gave the test
/// (`env!("CARGO_BIN_EXE_...")`): a workspace build puts every function binary there, and
/// Cargo only tells a test about its own package's binaries.
pub fn sibling_binary(anchor: &str, name: &str) -> PathBuf {
    Path::new(anchor).with_file_name(name)
}

/// Polls `condition` until it holds, failing after `within`.
pub fn wait_until(what: &str, within: Duration, condition: impl FnMut() -> bool) {
    if let Err(err) = cdc_localdb::process::wait_until(what, within, condition) {
        panic!("{err}");
    }
}

/// A function binary from this workspace, in the JSON log format our assertions read; killed
/// when dropped (a failing assertion must not leave it running). With a log file, every line
/// read from it is kept there (for a post-mortem of a failed run).
pub struct Proc {
    process: Process,
    log: Option<File>,
}

impl Proc {
    pub fn spawn(name: &str, binary: &Path, env: Vec<(String, String)>) -> Proc {
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
        Proc { process: Process::spawn(name, &mut command).unwrap_or_else(|e| panic!("{e}")), log: None }
    }

    /// Keeps every log line from now on in `log`.
    pub fn with_log(mut self, log: File) -> Proc {
        self.log = Some(log);
        self
    }

    fn keep(&mut self, lines: &str) {
        Proc::keep_in(self.log.as_mut(), lines);
    }

    fn keep_in(log: Option<impl Write>, lines: &str) {
        if let Some(mut log) = log {
            // Best effort: the log file is for people, a failed write must not fail the test.
            let _ = log.write_all(lines.as_bytes());
        }
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        match self.process.wait_for_log(needle, DEADLINE) {
            Ok(seen) => {
                self.keep(&seen);
                seen.lines().last().unwrap_or_default().to_owned()
            }
            Err(err) => {
                self.keep(&err.to_string());
                panic!("{err}");
            }
        }
    }

    /// Moves the log lines received so far to the log file.
    pub fn pump_log(&mut self) {
        let lines: String = self.process.drain_log().into_iter().map(|l| l + "\n").collect();
        self.keep(&lines);
    }

    /// Whether the process has exited (it stays a zombie until reaped, so /proc still has it).
    pub fn has_exited(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.process.id())) {
            // `pid (comm) state ...`; comm may contain spaces and parentheses.
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => true,
        }
    }

    /// For a process that has exited: its exit status and the rest of its log.
    pub fn exit_report(mut self) -> String {
        // A needle no log line has: returns once the process is found exited.
        let report = match self.process.wait_for_log("\u{1}", Duration::ZERO) {
            Err(err @ ProcessError::Exited { .. }) => err.to_string(),
            Err(err) => format!("not exited: {err}"),
            Ok(seen) => format!("not exited: {seen}"),
        };
        self.keep(&report);
        report
    }

    pub fn kill(mut self) {
        self.pump_log();
        self.process.kill();
    }

    /// SIGTERM, then the exit status and the rest of the log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.pump_log();
        let Proc { process, log: file } = self;
        let (status, log) = process.terminate().unwrap_or_else(|e| panic!("{e}"));
        Proc::keep_in(file, &log);
        (status, log)
    }
}

fn vars(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// A free TCP port on 127.0.0.1, for a server that must keep its port across restarts.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// `datahub-local` serving `dir` on `port` (0: any free port).
pub fn datahub_local_env(dir: &Path, port: u16) -> Vec<(String, String)> {
    vars(&[
        ("DATAHUB_LOCAL_PORT", port.to_string()),
        ("DATAHUB_LOCAL_BIND", "127.0.0.1".into()),
        ("DATAHUB_LOCAL_DATA_DIR", dir.display().to_string()),
    ])
}

/// A DataHub client of `topic` with consumer group `group`.
pub fn datahub_env(endpoint: &str, topic: &str, group: &str) -> Vec<(String, String)> {
    vars(&[
        ("DATAHUB_ENDPOINT", endpoint.into()),
        ("DATAHUB_ACCESS_ID", "local-id".into()),
        ("DATAHUB_ACCESS_KEY", "local-key".into()),
        ("DATAHUB_PROJECT", PROJECT.into()),
        ("DATAHUB_TOPIC", topic.into()),
        ("DATAHUB_CONSUMER_GROUP", group.into()),
    ])
}

/// Capture of schema `shop`, streaming only (the tables are created before it starts).
pub fn capture_env(db: &LocalMariaDb, checkpoints: &Path) -> Vec<(String, String)> {
    let mut env = db.env_vars();
    env.extend(vars(&[
        ("DATABASE_SCHEMA", "shop".into()),
        ("DATABASE_SNAPSHOT_MODE", "never".into()),
        ("DATABASE_SERVER_ID", "4343".into()),
        ("DATAHUB_SHARD_COUNT", "4".into()),
        ("CHECKPOINT_DIR", file_url(checkpoints)),
        ("CHECKPOINT_INTERVAL", "200".into()),
        ("CHECKPOINT_MIN_PAUSE", "0".into()),
    ]));
    env
}

/// A Parquet file sink writing under `out`, checkpointing to `checkpoints`.
pub fn sink_env(out: &Path, checkpoints: &Path) -> Vec<(String, String)> {
    vars(&[
        ("OUTPUT_PATH", out.display().to_string()),
        ("OUTPUT_FORMAT", "parquet".into()),
        ("CHECKPOINT_DIR", file_url(checkpoints)),
        ("CHECKPOINT_INTERVAL", "300".into()),
        ("CHECKPOINT_MIN_PAUSE", "0".into()),
    ])
}

/// Waits until `dir` holds a checkpoint file (`chk-...`, see cdc-state). A capture that
/// streams from the binlog head on a first start must have checkpointed before the workload
/// begins: killed earlier, it would start again from the then-current head.
pub fn wait_for_checkpoint(what: &str, dir: &Path) {
    fn has_checkpoint(dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else { return false };
        entries.flatten().any(|e| {
            let path = e.path();
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("chk-")) || (path.is_dir() && has_checkpoint(&path))
        })
    }
    wait_until(&format!("a first checkpoint of {what} in {}", dir.display()), DEADLINE, || has_checkpoint(dir));
}

// ---------------------------------------------------------------------------------------
// The schema and the workload

/// `items` gets a column half-way through the chaos tests (`Workload::add_column`).
pub const ITEMS_DDL: &str = "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64), qty BIGINT NOT NULL) DEFAULT CHARSET=utf8mb4";
pub const ACCOUNTS_DDL: &str =
    "CREATE TABLE shop.accounts (id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL, secret VARCHAR(64), balance BIGINT NOT NULL) DEFAULT CHARSET=utf8mb4";
pub const ADD_COLUMN: &str = "ALTER TABLE shop.items ADD COLUMN color VARCHAR(16) NULL";

/// Small random transactions of inserts, updates and deletes over `items` (and `accounts`
/// when asked for), deterministic for a seed. Updates and deletes pick ids at random among
/// those ever inserted, so some hit nothing, as in real traffic.
pub struct Workload {
    rng: SplitMix64,
    accounts: bool,
    next_item: i64,
    next_account: i64,
    /// Whether `items` has the `color` column, which writes then set.
    pub altered: bool,
    pub transactions: u64,
}

impl Workload {
    pub fn new(seed: u64, accounts: bool) -> Workload {
        Workload { rng: SplitMix64::new(seed), accounts, next_item: 1, next_account: 1, altered: false, transactions: 0 }
    }

    fn item_sql(&mut self) -> String {
        let rng = &mut self.rng;
        let existing = 1 + rng.below(self.next_item as u64);
        match rng.below(10) {
            0..=5 => {
                let id = self.next_item;
                self.next_item += 1;
                let qty = rng.below(1000);
                if self.altered {
                    format!("INSERT INTO shop.items (id, name, qty, color) VALUES ({id}, 'item {id} ✓', {qty}, 'c{}');", rng.below(50))
                } else {
                    format!("INSERT INTO shop.items (id, name, qty) VALUES ({id}, 'item {id} ✓', {qty});")
                }
            }
            6..=8 if self.altered => format!("UPDATE shop.items SET qty = qty + 1, name = NULL, color = 'u{}' WHERE id = {existing};", rng.below(50)),
            6..=8 => format!("UPDATE shop.items SET qty = qty + 1, name = NULL WHERE id = {existing};"),
            _ => format!("DELETE FROM shop.items WHERE id = {existing};"),
        }
    }

    fn account_sql(&mut self) -> String {
        let rng = &mut self.rng;
        let existing = 1 + rng.below(self.next_account as u64);
        match rng.below(10) {
            0..=4 => {
                let id = self.next_account;
                self.next_account += 1;
                format!("INSERT INTO shop.accounts VALUES ({id}, 'owner {id}', 'pin-{}', {});", rng.below(10_000), rng.below(100_000))
            }
            5..=8 => {
                let secret = if rng.below(3) == 0 { "NULL".to_owned() } else { format!("'pin-{}'", rng.below(10_000)) };
                format!("UPDATE shop.accounts SET balance = balance - 7, secret = {secret} WHERE id = {existing};")
            }
            _ => format!("DELETE FROM shop.accounts WHERE id = {existing};"),
        }
    }

    /// One transaction of 1-5 statements.
    pub fn transaction_sql(&mut self) -> String {
        let mut sql = String::from("BEGIN;");
        for _ in 0..(1 + self.rng.below(5)) {
            let statement = if self.accounts && self.rng.below(3) == 0 { self.account_sql() } else { self.item_sql() };
            sql.push_str(&statement);
        }
        sql.push_str("COMMIT;");
        sql
    }

    /// Runs `count` transactions.
    pub fn run(&mut self, db: &LocalMariaDb, count: usize) {
        for _ in 0..count {
            let sql = self.transaction_sql();
            db.execute(&sql).expect("workload transaction");
            self.transactions += 1;
        }
    }

    /// The schema change: `items` gets `color`, which later writes set.
    pub fn add_column(&mut self, db: &LocalMariaDb) {
        db.execute(ADD_COLUMN).expect("ALTER TABLE");
        self.altered = true;
    }

    /// Runs transactions until `stop`, with the schema change once `alter_at` has passed and
    /// a short random pause after each transaction (the machine also runs the pipeline).
    pub fn run_until(&mut self, db: &LocalMariaDb, stop: &AtomicBool, alter_at: Instant, done: &AtomicU64) {
        while !stop.load(Ordering::Relaxed) {
            if !self.altered && Instant::now() >= alter_at {
                self.add_column(db);
            }
            self.run(db, 1);
            done.store(self.transactions, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5 + self.rng.below(25)));
        }
    }
}

/// Marker rows: inserted after the workload stops. Once the sink committed all of them,
/// every change before them is committed too, provided each bus shard carries one (a shard's
/// records are read, transformed and written in order, but shards are read independently):
/// 64 keys miss one of 4 key-hashed shards with a probability of 4·(3/4)^64 ≈ 4·10⁻⁸.
pub const MARKERS: i64 = 64;

/// The transform rule of the chaos tests: `accounts.secret` must only ever reach the files
/// masked.
pub const TRANSFORM_RULES: &str = "rules:\n  - table: shop.accounts\n    mask: {secret: redact}\n";
/// `accounts` as the files must show it: `redact` writes `***` for every non-null value.
pub const ACCOUNTS_MASKED: &str = "SELECT id, owner, IF(secret IS NULL, NULL, '***'), balance FROM shop.accounts";

pub fn insert_markers(db: &LocalMariaDb) {
    let values: Vec<String> = (1..=MARKERS).map(|i| format!("(-{i}, 'marker', 0)")).collect();
    db.execute(&format!("INSERT INTO shop.items (id, name, qty) VALUES {}", values.join(","))).expect("markers");
}

// ---------------------------------------------------------------------------------------
// Committed rows and the comparison

/// One committed row: `columns` as text (the first is the key), its position, whether a delete.
#[derive(Debug, Clone)]
pub struct CommittedRow {
    pub values: Vec<Option<String>>,
    pub position: Position,
    pub deleted: bool,
}

/// What pyarrow reads from the committed files of `out/shop/{table}`.
pub struct Committed {
    pub files: usize,
    pub rows: Vec<CommittedRow>,
}

/// The committed rows of `shop.{table}` as pyarrow reads them, `columns` as text.
pub fn committed_rows(out: &Path, table: &str, columns: &[&str]) -> Committed {
    let mut all = columns.to_vec();
    all.extend(["_source_pos", "_deleted"]);
    let output = Command::new("python3")
        .arg("-c")
        .arg(READ_ROWS_PY)
        .arg(out.join("shop").join(table))
        .arg(all.join(","))
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "read_rows.py: {}", String::from_utf8_lossy(&output.stderr));
    let doc: Json = serde_json::from_slice(&output.stdout).expect("the reader prints JSON");
    let files = doc["files"].as_array().map_or(0, Vec::len);
    let rows = doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let mut values: Vec<Option<String>> = row.as_array().expect("a row").iter().map(|v| v.as_str().map(str::to_owned)).collect();
            let deleted = values.pop().flatten().expect("_deleted") == "true";
            let position = values.pop().flatten().expect("_source_pos").parse().expect("a position");
            CommittedRow { values, position, deleted }
        })
        .collect();
    Committed { files, rows }
}

/// A table as a map from key (the first column) to all columns.
pub type Table = BTreeMap<String, Vec<Option<String>>>;

/// Replays committed rows in position order: the latest image per key, deletes removing it.
pub fn replay(mut rows: Vec<CommittedRow>) -> Table {
    rows.sort_by(|a, b| a.position.cmp(&b.position));
    let mut table = Table::new();
    for row in rows {
        let key = row.values[0].clone().expect("a key");
        if row.deleted {
            table.remove(&key);
        } else {
            table.insert(key, row.values);
        }
    }
    table
}

/// Fails naming the first position committed more than once among `rows` (of all tables:
/// a binlog position is one row change of one table).
pub fn assert_no_position_twice<'a>(rows: impl IntoIterator<Item = &'a CommittedRow>) {
    let mut seen = BTreeSet::new();
    for row in rows {
        assert!(seen.insert(&row.position), "a change was committed twice: position {} ({:?})", row.position, row.values);
    }
}

/// The result of `select` (whose first column is the key) as SELECT shows it.
pub fn select_all(db: &LocalMariaDb, select: &str) -> Table {
    db.execute(select)
        .expect("select")
        .lines()
        .map(|line| {
            let values: Vec<Option<String>> = line.split('\t').map(|v| (v != "NULL").then(|| v.to_owned())).collect();
            (values[0].clone().expect("a key"), values)
        })
        .collect()
}

/// Asserts two tables are equal, naming the keys that differ (a full dump of thousands of
/// rows would hide them).
pub fn assert_same_table(what: &str, replayed: &Table, expected: &Table) {
    if replayed == expected {
        return;
    }
    let missing: Vec<_> = expected.keys().filter(|k| !replayed.contains_key(*k)).take(20).collect();
    let extra: Vec<_> = replayed.keys().filter(|k| !expected.contains_key(*k)).take(20).collect();
    let differ: Vec<_> = expected
        .iter()
        .filter_map(|(k, v)| replayed.get(k).filter(|r| *r != v).map(|r| format!("{k}: committed {r:?}, table {v:?}")))
        .take(20)
        .collect();
    panic!(
        "{what}: the replayed files differ from the table ({} rows replayed, {} in the table)\n  missing keys: {missing:?}\n  extra keys: {extra:?}\n  differing rows: {differ:#?}",
        replayed.len(),
        expected.len()
    );
}

/// Files left in `out/.inprogress` (none after graceful stops).
pub fn inprogress_files(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out.join(".inprogress")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Chaos

/// `CHAOS_SECONDS` (default 20, the CI length) and `CHAOS_SEED` (default: from the clock,
/// printed so a failing run can be repeated).
pub struct ChaosSettings {
    pub seed: u64,
    pub duration: Duration,
}

impl ChaosSettings {
    pub fn from_env() -> ChaosSettings {
        let seed = match std::env::var("CHAOS_SEED") {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("CHAOS_SEED={text}: expected an unsigned integer")),
            Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64),
        };
        let seconds: u64 = match std::env::var("CHAOS_SECONDS") {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("CHAOS_SECONDS={text}: expected whole seconds")),
            Err(_) => 20,
        };
        println!("chaos: CHAOS_SEED={seed} CHAOS_SECONDS={seconds}");
        ChaosSettings { seed, duration: Duration::from_secs(seconds) }
    }
}

/// A directory for one run's data and logs that outlives a failed run (for a post-mortem);
/// removed by the caller after a pass.
pub fn work_dir(prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir").keep();
    println!("chaos: data and stage logs in {}", dir.display());
    dir
}

/// One restartable stage: how to start it, the running process, and what chaos did to it.
pub struct Stage {
    pub name: &'static str,
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// The log line that says the stage is up.
    ready: &'static str,
    log_path: PathBuf,
    proc: Option<Proc>,
    pub kills: u32,
    /// Exits nobody asked for (each restarted), with their reports.
    pub exits: Vec<String>,
}

impl Stage {
    pub fn new(name: &'static str, binary: PathBuf, env: Vec<(String, String)>, ready: &'static str, logs: &Path) -> Stage {
        Stage { name, binary, env, ready, log_path: logs.join(format!("{name}.log")), proc: None, kills: 0, exits: Vec::new() }
    }

    /// Starts the stage and waits until it logs that it is up. A stage that exits before
    /// that fails the test: it cannot restart.
    pub fn start(&mut self) {
        let log = File::options().create(true).append(true).open(&self.log_path).expect("stage log file");
        let mut proc = Proc::spawn(self.name, &self.binary, self.env.clone()).with_log(log);
        proc.wait_for_log(self.ready);
        self.proc = Some(proc);
    }

    pub fn kill(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Restarts the stage if it exited on its own; moves its log lines to the log file.
    pub fn supervise(&mut self) {
        let Some(proc) = self.proc.as_mut() else { return };
        proc.pump_log();
        if proc.has_exited() {
            let report = self.proc.take().map(Proc::exit_report).unwrap_or_default();
            let tail: String = report.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            println!("chaos: {} exited on its own; restarting. Last lines:\n{tail}", self.name);
            self.exits.push(report);
            self.start();
        }
    }

    /// SIGTERM: a graceful stop must exit 0 (final checkpoint and commit), also after chaos.
    pub fn terminate(&mut self) {
        if let Some(proc) = self.proc.take() {
            let (status, log) = proc.terminate();
            assert!(status.success(), "{} exits 0 on SIGTERM, got {status}:\n{log}", self.name);
        }
    }
}

/// What a chaos window did.
pub struct ChaosReport {
    pub transactions: u64,
    pub kills: Vec<(&'static str, u32)>,
    pub exits: Vec<(&'static str, usize)>,
}

/// Sets `stop` when dropped, so a panic in the chaos loop also ends the workload thread
/// (the scope would otherwise wait for it forever).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `0..n` in random order (Fisher-Yates).
fn shuffled(rng: &mut SplitMix64, n: usize) -> Vec<usize> {
    let mut deck: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        deck.swap(i, rng.below(i as u64 + 1) as usize);
    }
    deck
}

/// Runs `workload` continuously for `settings.duration` (the schema change half-way) while,
/// every 2-5 s, a stage picked at random is SIGKILLed and restarted at once (picked from a
/// shuffled deck of all stages, so even the short CI run of 20 s kills every one); a stage that
/// exits on its own meanwhile (e.g. after its bus went away) is restarted too. Returns with
/// the workload stopped and every stage running.
pub fn run_chaos(db: &LocalMariaDb, stages: &mut [Stage], workload: &mut Workload, settings: &ChaosSettings) -> ChaosReport {
    let mut rng = SplitMix64::new(settings.seed);
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let end = started + settings.duration;
    let alter_at = started + settings.duration / 2;
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        let writer = scope.spawn(|| workload.run_until(db, &stop, alter_at, &done));
        let mut next_kill = Instant::now() + Duration::from_millis(2000 + rng.below(3001));
        let mut deck = Vec::new();
        while Instant::now() < end {
            // A failed workload transaction is a failed test, now rather than at the end.
            assert!(!writer.is_finished(), "the workload thread stopped early");
            for stage in stages.iter_mut() {
                stage.supervise();
            }
            if Instant::now() >= next_kill {
                if deck.is_empty() {
                    deck = shuffled(&mut rng, stages.len());
                }
                let stage = &mut stages[deck.pop().expect("a refilled deck")];
                println!(
                    "chaos: {:>5.1} s: SIGKILL {} ({} transactions so far)",
                    started.elapsed().as_secs_f64(),
                    stage.name,
                    done.load(Ordering::Relaxed)
                );
                stage.kill();
                stage.kills += 1;
                stage.start();
                next_kill = Instant::now() + Duration::from_millis(2000 + rng.below(3001));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = writer.join() {
            std::panic::resume_unwind(panic);
        }
    });
    for stage in stages.iter_mut() {
        stage.supervise();
    }
    assert!(workload.altered, "the schema change happened during the workload");
    ChaosReport {
        transactions: workload.transactions,
        kills: stages.iter().map(|s| (s.name, s.kills)).collect(),
        exits: stages.iter().map(|s| (s.name, s.exits.len())).collect(),
    }
}

/// Waits until every marker row is in committed files of `out`, restarting stages that exit
/// meanwhile.
pub fn wait_for_markers(out: &Path, stages: &mut [Stage]) {
    wait_supervised(stages, "every marker row in committed files", || markers_committed(out));
}

/// Whether every marker row is in the committed files of `out`.
pub fn markers_committed(out: &Path) -> bool {
    let committed = committed_rows(out, "items", &["id"]);
    let markers: BTreeSet<&str> = committed.rows.iter().filter_map(|r| r.values[0].as_deref()).filter(|id| id.starts_with('-')).collect();
    markers.len() as i64 == MARKERS
}

/// Waits until `check` holds (checked every half second: reading every committed file takes a
/// while), restarting stages that exit meanwhile.
pub fn wait_supervised(stages: &mut [Stage], what: &str, mut check: impl FnMut() -> bool) {
    let mut last_check = Instant::now() - Duration::from_secs(1);
    wait_until(what, CATCH_UP, || {
        for stage in stages.iter_mut() {
            stage.supervise();
        }
        if last_check.elapsed() < Duration::from_millis(500) {
            return false;
        }
        last_check = Instant::now();
        check()
    });
}

/// The exactness check of a chaos run over `items` (altered) and `accounts`: the committed
/// files replayed in position order equal the tables, and no position is committed twice.
/// `accounts_select` says how the table should look in the files (masked or not). Returns
/// (committed rows, files).
pub fn assert_exact(db: &LocalMariaDb, out: &Path, accounts_select: &str) -> (usize, usize) {
    let items = committed_rows(out, "items", &["id", "name", "qty", "color"]);
    let accounts = committed_rows(out, "accounts", &["id", "owner", "secret", "balance"]);
    assert_no_position_twice(items.rows.iter().chain(&accounts.rows));
    let counts = (items.rows.len() + accounts.rows.len(), items.files + accounts.files);
    assert_same_table("shop.items", &replay(items.rows), &select_all(db, "SELECT id, name, qty, color FROM shop.items"));
    assert_same_table("shop.accounts", &replay(accounts.rows), &select_all(db, accounts_select));
    let inprogress = inprogress_files(out);
    assert!(inprogress.is_empty(), "files left in .inprogress after graceful stops: {inprogress:?}");
    counts
}

pub fn print_report(report: &ChaosReport, rows: usize, files: usize, took: Duration) {
    let kills: Vec<String> = report.kills.iter().map(|(name, n)| format!("{name} {n}")).collect();
    let exits: Vec<String> = report.exits.iter().map(|(name, n)| format!("{name} {n}")).collect();
    println!(
        "chaos: PASS: {} workload transactions; SIGKILLs: {}; exits on their own (restarted): {}; {rows} committed rows in {files} Parquet files; {:.1} s in all",
        report.transactions,
        kills.join(", "),
        exits.join(", "),
        took.as_secs_f64()
    );
}
