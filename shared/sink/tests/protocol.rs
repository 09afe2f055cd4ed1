//! The two-phase commit protocol on one process: visibility, recovery, replay, dead letters,
//! write failures. Committed files are read back with pyarrow (`read_dataset.py`); needs
//! `python3` with `pyarrow` (the tests fail, not skip, without it).

mod common;

use std::path::Path;

use cdc_event::Value;
use cdc_sink::{FileSink, Record, SinkError, WriteOutcome, INPROGRESS_DIR};
use cdc_state::{Checkpoint, CheckpointStore, LocalDirBackend, SinkState};
use common::*;
use serde_json::{json, Value as Json};

fn write_all(sink: &mut FileSink, records: &[Record]) {
    for record in records {
        sink.write(record.clone()).expect("write");
    }
}

fn save_checkpoint(state_dir: &Path, state: &SinkState) {
    let store = CheckpointStore::new(LocalDirBackend::open(state_dir).expect("state dir"));
    let mut checkpoint = Checkpoint::new("test", 1);
    checkpoint.put_state("file-sink", state).expect("put state");
    store.save(&mut checkpoint).expect("save checkpoint");
}

fn load_checkpoint(state_dir: &Path) -> Option<SinkState> {
    let store = CheckpointStore::new(LocalDirBackend::open(state_dir).expect("state dir"));
    store
        .load_latest()
        .expect("load")
        .and_then(|c| c.state("file-sink").expect("sink state"))
}

fn inprogress_files(root: &Path) -> Vec<String> {
    all_files(&root.join(INPROGRESS_DIR))
}

#[test]
fn committed_files_hold_exactly_the_input_rows_and_in_progress_files_are_invisible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut sink = recovered_sink(root, None);
    let input = input();
    write_all(&mut sink, &input);

    // Before prepare: files are open in .inprogress, nothing is discoverable.
    assert!(
        !inprogress_files(root).is_empty(),
        "batches of 4 rows were written to files"
    );
    assert_eq!(pyarrow_read(root, "", "id").0, Vec::<String>::new());

    // After prepare the pending files are complete Parquet files, still hidden.
    let state = sink.prepare_checkpoint().expect("prepare");
    // orders v1 (ids up to 12, hour 06), orders v2 (hour 07), customers (hours 06 and 07).
    assert_eq!(state.pending.len(), 4, "{:#?}", state.pending);
    assert_eq!(
        state.pending.iter().map(|p| p.record_count).sum::<u64>(),
        24
    );
    assert_eq!(state.offsets.get("s0"), Some(24));
    assert_eq!(
        state.committed_positions.get("src@s0").map(String::as_str),
        Some("mysql binlog.000003:244 stream#0")
    );
    assert_eq!(inprogress_files(root).len(), 4);
    assert_eq!(visible_files(root), Vec::<String>::new());
    let (files, rows) = pyarrow_read(root, "", "id");
    assert!(
        files.is_empty() && rows.is_empty(),
        "pyarrow discovered {files:?}"
    );
    // Prove the hidden files are real data that discovery would otherwise pick up.
    let inprogress_ids = pyarrow_ids(&root.join(INPROGRESS_DIR), "");
    assert_eq!(inprogress_ids, (1..=24).collect::<Vec<_>>());

    let report = sink.commit(&state).expect("commit");
    assert_eq!(report.renamed, 4);
    assert!(inprogress_files(root).is_empty());

    let (files, rows) = pyarrow_read(root, "", "id,name,qty,_op,_source_pos,dt,hour");
    let mut expected_files: Vec<String> =
        state.pending.iter().map(|p| p.final_key.clone()).collect();
    expected_files.sort();
    assert_eq!(files, expected_files);
    assert!(
        files.contains(&"shop/orders/dt=2024-05-17/hour=06/part-s0-0-10.parquet".to_owned()),
        "{files:?}"
    );
    assert!(
        files.contains(&"shop/customers/dt=2024-05-17/hour=07/part-s0-15-23.parquet".to_owned()),
        "{files:?}"
    );
    let mut rows = rows;
    rows.sort_by_key(|r| r[0].as_i64());
    let expected: Vec<Vec<Json>> = (1..=24i64)
        .map(|id| {
            let hour = if id <= 12 { 6 } else { 7 };
            vec![
                json!(id),
                json!(format!("row {id}")),
                json!(id % 7),
                json!("c"),
                json!(format!("mysql binlog.000003:{} stream#0", 4 + id * 10)),
                json!("2024-05-17"),
                json!(hour),
            ]
        })
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn crash_before_prepare_leaves_nothing_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut sink = recovered_sink(root, None);
    write_all(&mut sink, &input());
    drop(sink); // the crash: no prepare, no checkpoint

    // orders v1 (closed when v2 arrived) and orders v2 (a batch of 4 flushed); the customer
    // rows are still in memory and die with the process.
    let left_behind = inprogress_files(root).len();
    assert_eq!(left_behind, 2);
    let mut sink = FileSink::new(options(root));
    let offsets = sink.recover(None).expect("recover");
    assert!(offsets.is_empty(), "no checkpoint: read from the start");
    assert_eq!(sink.stats().inprogress_deleted, left_behind as u64);
    assert!(inprogress_files(root).is_empty());
    assert_eq!(visible_files(root), Vec::<String>::new());
    assert_eq!(pyarrow_read(root, "", "id").0, Vec::<String>::new());
}

#[test]
fn crash_between_checkpoint_and_commit_is_committed_once_by_recovery_and_replays_add_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = &dir.path().join("out");
    let state_dir = &dir.path().join("state");
    let input = input();

    // Run 1: the first 16 records, prepare, durable checkpoint, then the other 8 (enough to
    // flush a batch into a new in-progress file), crash before commit.
    let mut sink = recovered_sink(root, None);
    write_all(&mut sink, &input[..16]);
    let state = sink.prepare_checkpoint().expect("prepare");
    save_checkpoint(state_dir, &state);
    write_all(&mut sink, &input[16..]);
    assert!(!inprogress_files(root).is_empty());
    drop(sink);
    assert_eq!(
        visible_files(root),
        Vec::<String>::new(),
        "nothing committed yet"
    );

    // Run 2: recovery commits the checkpoint's files, deletes the later ones.
    let last = load_checkpoint(state_dir).expect("a checkpoint");
    assert_eq!(last, state);
    let mut sink = FileSink::new(options(root));
    let offsets = sink.recover(Some(&last)).expect("recover");
    assert_eq!(offsets.get("s0"), Some(16));
    assert_eq!(sink.stats().files_committed, state.pending.len() as u64);
    assert!(sink.stats().inprogress_deleted >= 1, "{:?}", sink.stats());
    assert!(inprogress_files(root).is_empty());
    assert_eq!(pyarrow_ids(root, ""), (1..=16).collect::<Vec<_>>());

    // Crash again right after recovery, and recover once more: already committed, no change.
    drop(sink);
    let mut sink = FileSink::new(options(root));
    sink.recover(Some(&last)).expect("second recover");
    assert_eq!(sink.stats().files_committed, 0);
    assert_eq!(
        sink.stats().files_already_committed,
        state.pending.len() as u64
    );
    assert_eq!(pyarrow_ids(root, ""), (1..=16).collect::<Vec<_>>());

    // The bus redelivers from offset 0 (below the checkpoint) and capture replays the whole
    // input again at new offsets: neither adds a row.
    let mut outcomes = Vec::new();
    for record in &input {
        outcomes.push(sink.write(record.clone()).expect("write"));
    }
    for (i, record) in input.iter().enumerate() {
        let replay = Record::new("s0", 100 + i as u64, record.event.clone());
        outcomes.push(sink.write(replay).expect("write replay"));
    }
    let count = |o: WriteOutcome| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(count(WriteOutcome::RedeliveryDropped), 16);
    assert_eq!(count(WriteOutcome::Appended), 8);
    assert_eq!(count(WriteOutcome::DuplicateDropped), 24);
    assert_eq!(sink.stats().duplicates_dropped, 24);
    let state = sink.prepare_checkpoint().expect("prepare");
    assert_eq!(state.offsets.get("s0"), Some(124));
    save_checkpoint(state_dir, &state);
    sink.commit(&state).expect("commit");
    assert_eq!(pyarrow_ids(root, ""), (1..=24).collect::<Vec<_>>());
}

#[test]
fn commit_is_idempotent_per_file_and_names_a_lost_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut sink = recovered_sink(root, None);
    write_all(&mut sink, &input());
    let state = sink.prepare_checkpoint().expect("prepare");
    drop(sink);

    // A crash in the middle of a commit: the first file was renamed, the others not.
    let first = &state.pending[0];
    let final_path = root.join(&first.final_key);
    std::fs::create_dir_all(final_path.parent().expect("parent")).expect("mkdir");
    std::fs::rename(root.join(&first.staging_key), &final_path).expect("rename");
    let mut sink = FileSink::new(options(root));
    sink.recover(Some(&state)).expect("recover");
    assert_eq!(sink.stats().files_already_committed, 1);
    assert_eq!(sink.stats().files_committed, 3);
    assert_eq!(pyarrow_ids(root, ""), (1..=24).collect::<Vec<_>>());

    // Both copies gone: the error names the staging and the final file.
    std::fs::remove_file(&final_path).expect("remove");
    let error = FileSink::new(options(root))
        .recover(Some(&state))
        .expect_err("a pending file is lost");
    assert!(
        matches!(error, SinkError::PendingFileMissing { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&first.staging_key) && text.contains(&first.final_key),
        "{text}"
    );
}

#[test]
fn a_record_with_a_bad_value_lands_in_the_dead_letter_queue_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut sink = recovered_sink(root, None);
    let mut input = input();
    // Text in the INT column `qty` of id 6 (offset 5): FormatError::BadValue.
    if let Some(row) = input[5].event.after.as_mut() {
        row.values[2] = Value::Text("seven".into());
    }
    let mut outcomes = Vec::new();
    for record in &input {
        outcomes.push(sink.write(record.clone()).expect("write"));
    }
    assert_eq!(outcomes[5], WriteOutcome::DeadLettered);
    assert_eq!(sink.stats().dead_lettered, 1);
    assert_eq!(sink.stats().rows_appended, 23);

    let state = sink.prepare_checkpoint().expect("prepare");
    assert_eq!(
        visible_files(root),
        Vec::<String>::new(),
        "dead letters are pending too"
    );
    sink.commit(&state).expect("commit");

    let dlq: Vec<String> = visible_files(root)
        .into_iter()
        .filter(|f| f.starts_with("dlq/"))
        .collect();
    assert_eq!(dlq, vec!["dlq/part-s0-5-5.jsonl".to_owned()]);
    let text = std::fs::read_to_string(root.join(&dlq[0])).expect("read dlq");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    let letter: Json = serde_json::from_str(lines[0]).expect("dlq line is JSON");
    assert_eq!(letter["shard"], "s0");
    assert_eq!(letter["offset"], 5);
    assert_eq!(letter["table"], "shop.orders");
    assert_eq!(letter["stage"], "append");
    assert_eq!(letter["attempts"], 1);
    assert_eq!(letter["position"], "mysql binlog.000003:64 stream#0");
    let reason = letter["error"].as_str().expect("error text");
    assert!(
        reason.contains("column qty") && reason.contains("Text"),
        "{reason}"
    );
    assert!(letter["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Debezium JSON refuses the value too, so the event is kept as its debug text.
    assert!(letter["record_error"].as_str().is_some(), "{letter}");
    assert!(
        letter["record_debug"]
            .as_str()
            .is_some_and(|d| d.contains("seven")),
        "{letter}"
    );

    // The good rows are committed; the bad one only in the DLQ. (Data read per table: the
    // DLQ's JSON files are not Parquet.)
    let mut ids = pyarrow_ids(root, "shop/orders");
    ids.extend(pyarrow_ids(root, "shop/customers"));
    ids.sort_unstable();
    assert_eq!(ids, (1..=24).filter(|id| *id != 6).collect::<Vec<_>>());
}

#[test]
fn a_record_debezium_can_encode_keeps_its_envelope_in_the_dead_letter_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut sink = recovered_sink(root, None);
    let mut record = input().remove(0);
    // Out of range for the file's date partition, fine for Debezium JSON.
    record.event.commit_ts_ms = i64::MAX;
    assert_eq!(
        sink.write(record).expect("write"),
        WriteOutcome::DeadLettered
    );
    let state = sink.prepare_checkpoint().expect("prepare");
    sink.commit(&state).expect("commit");
    let text = std::fs::read_to_string(root.join("dlq/part-s0-0-0.jsonl")).expect("dlq file");
    let letter: Json = serde_json::from_str(text.trim_end()).expect("JSON");
    assert_eq!(letter["stage"], "partition");
    assert_eq!(letter["record"]["payload"]["op"], "c", "{letter}");
}

#[test]
fn write_errors_are_retried_then_stop_the_sink_without_committing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let options = options(root)
        .with_max_retries(2)
        .with_batch_size(1)
        .expect("batch");
    let mut sink = FileSink::new(options);
    sink.recover(None).expect("recover");
    // Make every file creation fail: the in-progress directory is replaced by a file.
    std::fs::remove_dir(root.join(INPROGRESS_DIR)).expect("rmdir");
    std::fs::write(root.join(INPROGRESS_DIR), b"not a directory").expect("write");

    let error = sink
        .write(input().remove(0))
        .expect_err("the file cannot be created");
    let text = error.to_string();
    assert!(matches!(error, SinkError::Io { attempts: 3, .. }), "{text}");
    assert!(
        text.contains(".inprogress/") && text.contains("after 3 attempt(s)"),
        "{text}"
    );
    assert!(sink.is_failed());
    let refused = sink
        .prepare_checkpoint()
        .expect_err("a failed sink takes no checkpoint");
    assert!(matches!(refused, SinkError::Failed { .. }), "{refused}");
    assert!(matches!(
        sink.commit(&SinkState::default()),
        Err(SinkError::Failed { .. })
    ));
    assert_eq!(visible_files(root), vec![INPROGRESS_DIR.to_owned()]);
}

#[test]
fn records_before_recover_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = FileSink::new(options(dir.path()));
    let error = sink.write(input().remove(0)).expect_err("not recovered");
    assert!(matches!(error, SinkError::NotRecovered), "{error}");
}

#[test]
fn files_roll_by_size_and_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // 1-byte rolling size: every batch (of 4 rows) closes its file.
    let options = options(root).with_rolling_size(1).expect("size");
    let mut sink = FileSink::new(options);
    sink.recover(None).expect("recover");
    write_all(&mut sink, &input()[..8]);
    assert_eq!(
        sink.stats().files_closed,
        1,
        "orders v1 had 4 rows after id 5"
    );
    let state = sink.prepare_checkpoint().expect("prepare");
    assert_eq!(state.pending.len(), 3);

    // 1 ms interval: the first row of the next file already ends it once polled.
    let options = common::options(&dir.path().join("b"))
        .with_rolling_interval(std::time::Duration::from_millis(1))
        .expect("interval");
    let mut sink = FileSink::new(options);
    sink.recover(None).expect("recover");
    sink.write(input().remove(0)).expect("write");
    let start = std::time::Instant::now();
    // Wait for the condition (the interval elapsed), not for a fixed time.
    while start.elapsed() < std::time::Duration::from_millis(2) {
        std::hint::spin_loop();
    }
    assert_eq!(sink.poll_rolling().expect("poll"), 1);
    assert_eq!(sink.stats().files_closed, 1);
}

/// One source spread over two shards by key hash: shard `a` gets the odd ids, shard `b` the
/// even ones, so their positions interleave (a: 10, 30, 50, ...; b: 20, 40, ...). With one
/// mark per source, the first record of `b` (position 20) would look like a replay of `a`'s
/// 30 once `a` ran ahead; with the mark per (source, shard) every row lands, and a capture
/// replay into the same shards is still dropped — also after a restart from the checkpoint.
#[test]
fn two_shards_of_one_source_with_interleaved_positions_keep_every_row_and_drop_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = &dir.path().join("out");
    let schema = table("orders", 1, false);
    let shard_of = |id: i64| if id % 2 == 1 { "a" } else { "b" };
    let events: Vec<_> = (1..=20)
        .map(|id| insert(&schema, "src", id, HOUR_06))
        .collect();
    // Shard `a` is read well ahead of shard `b`: all of `a` first, then all of `b`.
    let mut records: Vec<Record> = Vec::new();
    for shard in ["a", "b"] {
        let mine = events.iter().filter(|e| {
            let Value::Int(id) = e.after.as_ref().expect("insert").values[0] else {
                panic!("id")
            };
            shard_of(id) == shard
        });
        records.extend(
            mine.enumerate()
                .map(|(offset, e)| Record::new(shard, offset as u64, e.clone())),
        );
    }

    let mut sink = recovered_sink(root, None);
    let outcomes: Vec<WriteOutcome> = records
        .iter()
        .map(|r| sink.write(r.clone()).expect("write"))
        .collect();
    assert!(
        outcomes.iter().all(|o| *o == WriteOutcome::Appended),
        "{outcomes:?}"
    );
    let state = sink.prepare_checkpoint().expect("prepare");
    assert_eq!(
        state
            .committed_positions
            .get(&cdc_sink::replay_mark_key("src", "a"))
            .map(String::as_str),
        Some("mysql binlog.000003:194 stream#0")
    );
    assert_eq!(
        state
            .committed_positions
            .get(&cdc_sink::replay_mark_key("src", "b"))
            .map(String::as_str),
        Some("mysql binlog.000003:204 stream#0")
    );
    sink.commit(&state).expect("commit");
    assert_eq!(pyarrow_ids(root, ""), (1..=20).collect::<Vec<_>>());

    // Restart from the checkpoint; capture replays ids 15..=20 into the same shards at new
    // offsets, then publishes new ids 21..=22: only the new ones are appended.
    let mut sink = recovered_sink(root, Some(&state));
    let mut replayed = Vec::new();
    for (i, id) in (15..=22).enumerate() {
        let shard = shard_of(id);
        let record = Record::new(shard, 100 + i as u64, insert(&schema, "src", id, HOUR_06));
        replayed.push((id, sink.write(record).expect("write")));
    }
    for (id, outcome) in &replayed {
        let want = if *id <= 20 {
            WriteOutcome::DuplicateDropped
        } else {
            WriteOutcome::Appended
        };
        assert_eq!(*outcome, want, "id {id}");
    }
    let state = sink.prepare_checkpoint().expect("prepare");
    sink.commit(&state).expect("commit");
    assert_eq!(pyarrow_ids(root, ""), (1..=22).collect::<Vec<_>>());
}

/// A checkpoint written before the marks were per shard holds one mark per source (no `@`):
/// it still drops replays in every shard of that source that has no mark of its own.
#[test]
fn a_per_source_mark_from_an_older_checkpoint_still_drops_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = &dir.path().join("out");
    let schema = table("orders", 1, false);
    let mut old = SinkState::default();
    old.committed_positions.insert(
        "src".into(),
        insert(&schema, "src", 5, HOUR_06).position.to_string(),
    );
    let mut sink = recovered_sink(root, Some(&old));
    let outcome = |sink: &mut FileSink, shard: &str, offset: u64, id: i64| {
        sink.write(Record::new(
            shard,
            offset,
            insert(&schema, "src", id, HOUR_06),
        ))
        .expect("write")
    };
    assert_eq!(
        outcome(&mut sink, "x", 0, 5),
        WriteOutcome::DuplicateDropped
    );
    assert_eq!(
        outcome(&mut sink, "y", 0, 4),
        WriteOutcome::DuplicateDropped
    );
    assert_eq!(outcome(&mut sink, "x", 1, 6), WriteOutcome::Appended);
    let state = sink.prepare_checkpoint().expect("prepare");
    assert!(
        state.committed_positions.contains_key("src"),
        "the old mark is kept for shards not seen yet"
    );
    assert!(state.committed_positions.contains_key("src@x"));
}
