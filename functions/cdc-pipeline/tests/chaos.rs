//! Chaos for the all-in-one binary: `cdc-pipeline run` (capture → embedded log → transform →
//! file sink in one process, one checkpoint) is SIGKILLed every 2-5 s and restarted with the same log,
//! checkpoint and output directories, under a continuous workload of small random
//! transactions (inserts, updates, deletes on two tables, and half-way an `ALTER TABLE ...
//! ADD COLUMN` that later writes use). Afterwards marker rows go in, and once they are
//! committed and the process stopped gracefully, the committed files replayed in
//! `_source_pos` order must equal the tables exactly, with no position committed twice.
//!
//! `CHAOS_SECONDS` (default 20) is the length of the chaos window, `CHAOS_SEED` repeats a run
//! (the seed is printed). A failed run leaves its directory (data, checkpoints, the log) for
//! a post-mortem.

// The harness is file-sink's (its process-level tests share it); one copy serves both.
#[path = "../../file-sink/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use cdc_localdb::LocalMariaDb;
use common::{ChaosSettings, Stage, Workload};

#[test]
fn the_all_in_one_pipeline_stays_exact_under_random_sigkills_and_a_schema_change() {
    let settings = ChaosSettings::from_env();
    let started = Instant::now();
    let dir = common::work_dir("cdc-pipeline-chaos-");
    let out = dir.join("out");
    let checkpoints = dir.join("checkpoints");
    let db = LocalMariaDb::start().expect("MariaDB starts");
    db.execute(&format!("CREATE DATABASE shop; {}; {}", common::ITEMS_DDL, common::ACCOUNTS_DDL)).expect("schema");

    // The embedded transform stage masks `accounts.secret`, as the transform function does.
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, common::TRANSFORM_RULES).expect("rules file");
    let mut env = common::capture_env(&db, &checkpoints);
    env.extend(common::sink_env(&out, &checkpoints));
    env.extend([
        ("DATAHUB_ENDPOINT".to_owned(), "embedded".to_owned()),
        ("DATAHUB_PROJECT".to_owned(), common::PROJECT.to_owned()),
        ("DATAHUB_TOPIC".to_owned(), "events".to_owned()),
        ("DATAHUB_LOCAL_DATA_DIR".to_owned(), dir.join("log").display().to_string()),
        ("SAVEPOINT_DIR".to_owned(), common::file_url(&dir.join("savepoints"))),
        ("TRANSFORM_CONFIG".to_owned(), rules.display().to_string()),
    ]);
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_cdc-pipeline"));
    let mut stages = vec![Stage::new("cdc-pipeline", binary, env, "streaming the binlog", &dir)];
    stages[0].start();
    common::wait_for_checkpoint("cdc-pipeline", &checkpoints);

    let mut workload = Workload::new(settings.seed, true);
    let report = common::run_chaos(&db, &mut stages, &mut workload, &settings);

    common::insert_markers(&db);
    common::wait_for_markers(&out, &mut stages);
    // A graceful stop: its final checkpoint commits the last files completely.
    stages[0].terminate();
    let (rows, files) = common::assert_exact(&db, &out, common::ACCOUNTS_MASKED);
    common::print_report(&report, rows, files, started.elapsed());
    // Passed: nothing to look at afterwards.
    let _ = std::fs::remove_dir_all(&dir);
}
