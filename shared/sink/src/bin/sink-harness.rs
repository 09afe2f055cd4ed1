//! Test harness for the kill test (`tests/kill.rs`): runs the file sink over a deterministic
//! input with frequent checkpoints, the way a real sink process would, so the test can
//! SIGKILL it anywhere and check that a final run commits every row exactly once.
//!
//! Usage: `sink-harness OUTPUT_DIR STATE_DIR`, settings from the environment:
//!
//! - `HARNESS_SHARDS` (2), `HARNESS_EVENTS` per shard (5000), `HARNESS_CHECKPOINT_EVERY`
//!   records (100), `HARNESS_BATCH_SIZE` (32), `HARNESS_ROLLING_SIZE` bytes (16384).
//! - `HARNESS_PAUSE=<point>:<n>`: at the n-th checkpoint of this run, at `after-prepare`,
//!   `after-save` (checkpoint durable, files not yet renamed) or `after-commit`, print
//!   `PAUSED <point>` and block reading stdin, so the test can kill the process exactly there.
//!
//! Prints `CHECKPOINT <id> <records written in this run>` after each commit and `DONE ...`
//! at the end.
//!
//! The input (see [`record_at`]): shard `shard-<s>` carries the events of source `src<s>`;
//! offset `o` holds a change of `shop.orders` (schema v1 below half the input, v2 above) or
//! `shop.customers` with id `s * 1_000_000 + o`, except that offsets with `o % 50 == 49`
//! replay the event of offset `o - 7` (dropped by position dedupe) and offsets with
//! `o % 97 == 13` carry a value that does not fit its column (dead-lettered).

use std::error::Error;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use cdc_config::{Compression, OutputFormat};
use cdc_event::{
    ChangeEvent, ColumnDef, ColumnType, Op, Position, Row, ServerFlavor, TableId, TableSchema,
    Value,
};
use cdc_sink::{FileSink, Record, SinkOptions};
use cdc_state::{Checkpoint, CheckpointStore, LocalDirBackend, SinkState};

/// The operator name of the sink's state in the checkpoint.
const OPERATOR: &str = "file-sink";
/// 2024-05-17T06:30:00Z: events span a few hourly partitions from here.
const BASE_TS_MS: i64 = 1_715_927_400_000;

struct Schemas {
    orders_v1: Arc<TableSchema>,
    orders_v2: Arc<TableSchema>,
    customers: Arc<TableSchema>,
}

fn varchar(length: u32) -> ColumnType {
    ColumnType::VarChar {
        length,
        charset: "utf8mb4".into(),
    }
}

fn schemas() -> Schemas {
    let orders_columns = vec![
        ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
        ColumnDef::new("name", varchar(64), true),
        ColumnDef::new("qty", ColumnType::Int { unsigned: false }, true),
        ColumnDef::new(
            "amount",
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            true,
        ),
    ];
    let mut v2_columns = orders_columns.clone();
    v2_columns.push(ColumnDef::new("note", varchar(32), true));
    let table = |name: &str, version, columns| {
        Arc::new(TableSchema {
            table: TableId::new("shop", name),
            version,
            columns,
            primary_key: vec!["id".into()],
        })
    };
    Schemas {
        orders_v1: table("orders", 1, orders_columns.clone()),
        orders_v2: table("orders", 2, v2_columns),
        customers: table(
            "customers",
            1,
            vec![
                ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
                ColumnDef::new("name", varchar(64), true),
            ],
        ),
    }
}

/// The event first written at `offset` of shard `shard` (not a replay).
fn event_at(schemas: &Schemas, shard: u64, offset: u64, events: u64) -> ChangeEvent {
    let id = (shard * 1_000_000 + offset) as i64;
    let qty = if offset % 97 == 13 {
        // Text in an INT column: the batch builder rejects it (FormatError::BadValue).
        Value::Text("not-a-number".into())
    } else {
        Value::Int((offset % 11) as i64)
    };
    let (schema, values) = if offset.is_multiple_of(3) {
        (
            schemas.customers.clone(),
            vec![Value::Int(id), Value::Text(format!("customer {id}"))],
        )
    } else {
        let mut values = vec![
            Value::Int(id),
            Value::Text(format!("order {id}")),
            qty,
            Value::Decimal(format!("{}.{:02}", offset, offset % 100)),
        ];
        if offset >= events / 2 {
            values.push(Value::Text(format!("v2 {offset}")));
            (schemas.orders_v2.clone(), values)
        } else {
            (schemas.orders_v1.clone(), values)
        }
    };
    let mut position = Position::stream(ServerFlavor::MySql, "binlog.000001", 4 + offset * 100);
    position.event_index = 0;
    ChangeEvent {
        op: Op::Insert,
        schema,
        before: None,
        after: Some(Row::new(values)),
        position,
        commit_ts_ms: BASE_TS_MS + offset as i64 * 2_000,
        tx_id: Some(format!("tx-{shard}-{offset}")),
        source_name: Arc::from(format!("src{shard}")),
        server_id: 1,
    }
}

/// The record at `offset` of shard `shard`: an event, or a replay of an earlier one.
fn record_at(schemas: &Schemas, shard: u64, offset: u64, events: u64) -> Record {
    let original = if offset % 50 == 49 {
        offset - 7
    } else {
        offset
    };
    Record::new(
        format!("shard-{shard}"),
        offset,
        event_at(schemas, shard, original, events),
    )
}

fn env_u64(name: &str, default: u64) -> Result<u64, Box<dyn Error>> {
    match std::env::var(name) {
        Ok(text) => Ok(text.parse().map_err(|e| format!("{name}={text:?}: {e}"))?),
        Err(_) => Ok(default),
    }
}

fn pause(point: &str) -> Result<(), Box<dyn Error>> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "PAUSED {point}")?;
    out.flush()?;
    drop(out);
    // Blocks until the test kills us (or closes stdin).
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(output), Some(state)) = (args.next(), args.next()) else {
        return Err("usage: sink-harness OUTPUT_DIR STATE_DIR".into());
    };
    let (output, state) = (PathBuf::from(output), PathBuf::from(state));
    let shards = env_u64("HARNESS_SHARDS", 2)?;
    let events = env_u64("HARNESS_EVENTS", 5000)?;
    let every = env_u64("HARNESS_CHECKPOINT_EVERY", 100)?.max(1);
    let batch = env_u64("HARNESS_BATCH_SIZE", 32)?;
    let rolling = env_u64("HARNESS_ROLLING_SIZE", 16 * 1024)?;
    let pause_at = match std::env::var("HARNESS_PAUSE") {
        Ok(text) => {
            let (point, n) = text
                .split_once(':')
                .ok_or_else(|| format!("HARNESS_PAUSE={text:?}: expected <point>:<n>"))?;
            Some((point.to_owned(), n.parse::<u64>()?))
        }
        Err(_) => None,
    };
    let pause_here = |point: &str, checkpoint: u64| -> Result<(), Box<dyn Error>> {
        match &pause_at {
            Some((p, n)) if p == point && *n == checkpoint => pause(point),
            _ => Ok(()),
        }
    };

    std::fs::create_dir_all(&state)?;
    let store = CheckpointStore::new(LocalDirBackend::open(&state)?);
    let last: Option<SinkState> = match store.load_latest()? {
        Some(checkpoint) => checkpoint.state(OPERATOR)?,
        None => None,
    };
    let options = SinkOptions::new(&output, OutputFormat::Parquet, Compression::Snappy)?
        .with_batch_size(batch as usize)?
        .with_rolling_size(rolling)?;
    let mut sink = FileSink::new(options);
    let resume = sink.recover(last.as_ref())?;

    let schemas = schemas();
    let mut written = 0u64;
    let mut checkpoints = 0u64;
    let mut checkpoint = |sink: &mut FileSink, written: u64| -> Result<(), Box<dyn Error>> {
        checkpoints += 1;
        let sink_state = sink.prepare_checkpoint()?;
        pause_here("after-prepare", checkpoints)?;
        let mut document = Checkpoint::new("sink-harness", 1);
        document.put_state(OPERATOR, &sink_state)?;
        let id = store.save(&mut document)?;
        pause_here("after-save", checkpoints)?;
        sink.commit(&sink_state)?;
        // A real sink would commit `sink_state.offsets` to the bus here; the checkpoint is
        // this harness's offset store.
        pause_here("after-commit", checkpoints)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "CHECKPOINT {id} {written}")?;
        out.flush()?;
        Ok(())
    };
    // Shards interleaved round-robin, each in offset order from its resume offset.
    for offset in 0..events {
        for shard in 0..shards {
            let next = resume.get(&format!("shard-{shard}")).unwrap_or(0);
            if offset < next {
                continue;
            }
            sink.write(record_at(&schemas, shard, offset, events))?;
            written += 1;
            if written.is_multiple_of(every) {
                checkpoint(&mut sink, written)?;
            }
        }
    }
    checkpoint(&mut sink, written)?;
    let stats = sink.stats();
    println!(
        "DONE written={written} appended={} duplicates={} dead_lettered={} committed={} already_committed={} inprogress_deleted={}",
        stats.rows_appended,
        stats.duplicates_dropped,
        stats.dead_lettered,
        stats.files_committed,
        stats.files_already_committed,
        stats.inprogress_deleted
    );
    Ok(())
}
