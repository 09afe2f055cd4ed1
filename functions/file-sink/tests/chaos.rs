//! Chaos across the four-process pipeline: MariaDB → `cdc-capture` → `datahub-local` (topic
//! `events`) → `transform` (topic `clean`, masking `accounts.secret`) → `file-sink` (Parquet).
//!
//! A workload of small random transactions (inserts, updates, deletes on two tables, and
//! half-way an `ALTER TABLE ... ADD COLUMN` that later writes use) runs continuously while,
//! every 2-5 s, a stage picked at random is SIGKILLed and restarted with the same data
//! directories and port. Afterwards every stage is running, marker rows go in, and once the
//! sink has committed them and every stage stopped gracefully, the committed files replayed
//! in `_source_pos` order must equal the tables exactly, with no position committed twice.
//!
//! `CHAOS_SECONDS` (default 20) is the length of the chaos window, `CHAOS_SEED` repeats a run
//! (the seed is printed). Binaries are the workspace build's (`cargo build -p file-sink -p
//! cdc-capture -p datahub-local -p transform`), found next to `CARGO_BIN_EXE_file-sink`.
//! A failed run leaves its directory (data, checkpoints, each stage's log) for a post-mortem.

mod common;

use std::time::Instant;

use cdc_localdb::LocalMariaDb;
use common::{ChaosSettings, Stage, Workload};

/// The transform rule: `accounts.secret` must only ever reach the files masked.
const RULES: &str = "rules:\n  - table: shop.accounts\n    mask: {secret: redact}\n";
/// `accounts` as the files must show it: `redact` writes `***` for every non-null value.
const ACCOUNTS_MASKED: &str = "SELECT id, owner, IF(secret IS NULL, NULL, '***'), balance FROM shop.accounts";

fn binary(name: &str) -> std::path::PathBuf {
    common::sibling_binary(env!("CARGO_BIN_EXE_file-sink"), name)
}

#[test]
fn four_processes_stay_exact_under_random_sigkills_and_a_schema_change() {
    let settings = ChaosSettings::from_env();
    let started = Instant::now();
    let dir = common::work_dir("file-sink-chaos-");
    let out = dir.join("out");
    let db = LocalMariaDb::start().expect("MariaDB starts");
    db.execute(&format!("CREATE DATABASE shop; {}; {}", common::ITEMS_DDL, common::ACCOUNTS_DDL)).expect("schema");
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, RULES).expect("rules file");

    // datahub-local keeps its port across restarts: the other stages' endpoint is fixed.
    let port = common::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut capture_env = common::datahub_env(&endpoint, "events", "capture");
    capture_env.extend(common::capture_env(&db, &dir.join("capture-checkpoints")));
    let mut transform_env = common::datahub_env(&endpoint, "events", "transform");
    transform_env.extend([
        ("TRANSFORM_CONFIG".to_owned(), rules.display().to_string()),
        ("TRANSFORM_OUTPUT_TOPIC".to_owned(), "clean".to_owned()),
        ("CHECKPOINT_DIR".to_owned(), common::file_url(&dir.join("transform-checkpoints"))),
    ]);
    let mut sink_env = common::datahub_env(&endpoint, "clean", "files");
    sink_env.extend(common::sink_env(&out, &dir.join("sink-checkpoints")));
    let mut stages = vec![
        Stage::new("datahub-local", binary("datahub-local"), common::datahub_local_env(&dir.join("datahub"), port), "serving the DataHub API", &dir),
        Stage::new("cdc-capture", binary("cdc-capture"), capture_env, "streaming the binlog", &dir),
        Stage::new("transform", binary("transform"), transform_env, "transform running", &dir),
        Stage::new("file-sink", binary("file-sink"), sink_env, "file sink running", &dir),
    ];
    for stage in &mut stages {
        stage.start();
    }
    common::wait_for_checkpoint("cdc-capture", &dir.join("capture-checkpoints"));

    let mut workload = Workload::new(settings.seed, true);
    let report = common::run_chaos(&db, &mut stages, &mut workload, &settings);

    common::insert_markers(&db);
    common::wait_for_markers(&out, &mut stages);
    // Graceful stops, consumers before the log: the sink's final checkpoint commits its last
    // files completely (a reader could otherwise catch a checkpoint's files half renamed).
    for name in ["cdc-capture", "transform", "file-sink", "datahub-local"] {
        stages.iter_mut().filter(|s| s.name == name).for_each(Stage::terminate);
    }
    let (rows, files) = common::assert_exact(&db, &out, ACCOUNTS_MASKED);
    common::print_report(&report, rows, files, started.elapsed());
    // Passed: nothing to look at afterwards.
    let _ = std::fs::remove_dir_all(&dir);
}
