//! The README's first command, run as a user runs it: `cdc-pipeline demo` starts MariaDB, runs
//! the demo workload, streams it through capture → embedded log → file sink and leaves files.
//! pyarrow, an independent reader, replays the committed files; the result must equal the
//! tables after the same workload run on a second MariaDB.

use std::collections::BTreeMap;
use std::process::Command;

use cdc_localdb::workload::{demo_workload_sql, DEMO_SCHEMA};
use cdc_localdb::LocalMariaDb;

const ORDERS: u64 = 400;
const SEED: u64 = 42;

fn replay(table_dir: &std::path::Path, format: &str, columns: &str) -> BTreeMap<String, Vec<String>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay_files.py");
    let output = Command::new("python3").arg(script).arg(table_dir).arg(format).arg("id").arg(columns).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(doc["files"].as_u64().unwrap() > 0, "no committed files under {}", table_dir.display());
    serde_json::from_value(doc["rows"].clone()).unwrap()
}

fn expected(db: &LocalMariaDb, table: &str, columns: &str) -> BTreeMap<String, Vec<String>> {
    db.execute(&format!("SELECT id, {columns} FROM shop.{table} ORDER BY id"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut cols = line.split('\t').map(str::to_owned);
            let id = cols.next().unwrap();
            (id, cols.collect())
        })
        .collect()
}

#[test]
fn the_demo_leaves_files_that_replay_to_the_final_tables() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_cdc-pipeline"))
        .args(["demo", "--orders", &ORDERS.to_string(), "--seed", &SEED.to_string(), "--dir"])
        .arg(&demo_dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("files committed"), "{stdout}");

    // The same deterministic workload on a second server gives the tables to compare with.
    let db = LocalMariaDb::start().unwrap();
    db.execute(DEMO_SCHEMA).unwrap();
    db.execute(&demo_workload_sql(SEED, ORDERS).0).unwrap();

    let out = demo_dir.join("output/shop");
    // Timestamps come from NOW(6) and differ between the two servers; `channel` was added by
    // an ALTER, which writes no row events for existing rows. Everything else must match.
    let order_columns = "customer_id,amount,status,note";
    assert_eq!(replay(&out.join("orders"), "parquet", order_columns), expected(&db, "orders", "customer_id, amount, status, note"));
    assert_eq!(replay(&out.join("customers"), "parquet", "name,email"), expected(&db, "customers", "name, email"));
}
