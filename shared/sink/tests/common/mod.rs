//! Shared by the integration tests: a small table, events, and the pyarrow reader.
#![allow(dead_code)] // each test binary uses a different subset

#[cfg(feature = "s3")]
pub mod objects;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cdc_config::{Compression, OutputFormat};
use cdc_event::{
    ChangeEvent, ColumnDef, ColumnType, Op, Position, Row, ServerFlavor, TableId, TableSchema,
    Value,
};
use cdc_sink::{FileSink, Record, SinkOptions};
use serde_json::Value as Json;

/// 2024-05-17T06:00:00Z.
pub const HOUR_06: i64 = 1_715_925_600_000;
pub const HOUR_MS: i64 = 3_600_000;

pub fn table(name: &str, version: u64, extra_column: bool) -> Arc<TableSchema> {
    let mut columns = vec![
        ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
        ColumnDef::new(
            "name",
            ColumnType::VarChar {
                length: 64,
                charset: "utf8mb4".into(),
            },
            true,
        ),
        ColumnDef::new("qty", ColumnType::Int { unsigned: false }, true),
    ];
    if extra_column {
        columns.push(ColumnDef::new(
            "note",
            ColumnType::VarChar {
                length: 16,
                charset: "utf8mb4".into(),
            },
            true,
        ));
    }
    Arc::new(TableSchema {
        table: TableId::new("shop", name),
        version,
        columns,
        primary_key: vec!["id".into()],
    })
}

/// An insert of row `id` into `schema`, at binlog offset `id * 10` of source `source`.
pub fn insert(schema: &Arc<TableSchema>, source: &str, id: i64, ts_ms: i64) -> ChangeEvent {
    let mut values = vec![
        Value::Int(id),
        Value::Text(format!("row {id}")),
        Value::Int(id % 7),
    ];
    if schema.columns.len() > 3 {
        values.push(Value::Text(format!("n{id}")));
    }
    ChangeEvent {
        op: Op::Insert,
        schema: schema.clone(),
        before: None,
        after: Some(Row::new(values)),
        position: Position::stream(ServerFlavor::MySql, "binlog.000003", 4 + id as u64 * 10),
        commit_ts_ms: ts_ms,
        tx_id: Some(format!("tx-{id}")),
        source_name: Arc::from(source),
        server_id: 7,
    }
}

/// 24 records on shard `s0` (source `src`): ids 1..=24 at offsets 0..=23, into `orders` (v1
/// for ids up to 12, then v2 with an extra column) and `customers`, over two hours.
pub fn input() -> Vec<Record> {
    let orders_v1 = table("orders", 1, false);
    let orders_v2 = table("orders", 2, true);
    let customers = table("customers", 1, false);
    (1..=24)
        .map(|id| {
            let schema = match id {
                _ if id % 4 == 0 => &customers,
                ..=12 => &orders_v1,
                _ => &orders_v2,
            };
            let ts = HOUR_06 + (id - 1) * (2 * HOUR_MS / 24);
            Record::new("s0", (id - 1) as u64, insert(schema, "src", id, ts))
        })
        .collect()
}

pub fn options(root: &Path) -> SinkOptions {
    SinkOptions::new(root, OutputFormat::Parquet, Compression::Snappy)
        .and_then(|o| o.with_batch_size(4))
        .map(|o| o.with_retry_backoff(std::time::Duration::from_millis(1)))
        .expect("valid test options")
}

pub fn recovered_sink(root: &Path, last: Option<&cdc_state::SinkState>) -> FileSink {
    let mut sink = FileSink::new(options(root));
    sink.recover(last).expect("recover");
    sink
}

/// What pyarrow's dataset discovery sees under `root/sub`: (files, rows of `columns`).
pub fn pyarrow_read(root: &Path, sub: &str, columns: &str) -> (Vec<String>, Vec<Vec<Json>>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_dataset.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(root)
        .arg(sub)
        .arg(columns)
        .output()
        .expect("python3 runs (needs pyarrow)");
    assert!(
        output.status.success(),
        "read_dataset.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Json = serde_json::from_slice(&output.stdout).expect("reader prints JSON");
    let files = document["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f.as_str().expect("file name").to_owned())
        .collect();
    let rows = document["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("row").clone())
        .collect();
    (files, rows)
}

/// The ids pyarrow reads under `root/sub`, sorted.
pub fn pyarrow_ids(root: &Path, sub: &str) -> Vec<i64> {
    let (_, rows) = pyarrow_read(root, sub, "id");
    let mut ids: Vec<i64> = rows.iter().map(|r| r[0].as_i64().expect("id")).collect();
    ids.sort_unstable();
    ids
}

/// Every regular file under `dir`, relative to it, sorted; `.inprogress` included.
pub fn all_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if let Ok(relative) = path.strip_prefix(base) {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Files outside `.inprogress/` (what a reader could see).
pub fn visible_files(dir: &Path) -> Vec<String> {
    all_files(dir)
        .into_iter()
        .filter(|f| !f.starts_with(".inprogress/"))
        .collect()
}
