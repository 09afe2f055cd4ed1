//! A record that fails lands in the dead-letter queue with its reason; `replay` brings it
//! back, exactly once, once fixed. Committed files are read back with pyarrow
//! (`read_dataset.py`; needs `python3` with `pyarrow`).

mod common;

use std::path::Path;

use cdc_event::Value;
use cdc_sink::{read_dead_letters, FileSink, ReplayReport, SinkOptions, WriteOutcome};
use cdc_state::{Checkpoint, CheckpointStore, LocalDirBackend, SinkState};
use common::*;
use serde_json::{json, Value as Json};

/// Checkpoint ids must grow: the store keeps the newest.
fn save_checkpoint(state_dir: &Path, id: u64, state: &SinkState) {
    let store = CheckpointStore::new(LocalDirBackend::open(state_dir).expect("state dir"));
    let mut checkpoint = Checkpoint::new("test", id);
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

/// A `replay` run: recover from the newest checkpoint, replay, checkpoint, commit and
/// (unless `crash_before_finish`) finish.
fn replay_run(
    root: &Path,
    state_dir: &Path,
    id: u64,
    fix: impl FnMut(&cdc_sink::DeadLetterRecord) -> Option<cdc_event::ChangeEvent>,
    crash_before_finish: bool,
) -> (ReplayReport, Vec<String>) {
    let mut sink = FileSink::new(options(root));
    sink.recover(load_checkpoint(state_dir).as_ref())
        .expect("recover");
    let report = sink.replay_dead_letters(fix).expect("replay");
    let state = sink.prepare_checkpoint().expect("prepare");
    save_checkpoint(state_dir, id, &state);
    sink.commit(&state).expect("commit");
    if crash_before_finish {
        return (report, Vec::new());
    }
    let moved = sink.finish_replay().expect("finish replay");
    (report, moved)
}

fn dlq_files(root: &Path) -> Vec<String> {
    visible_files(root)
        .into_iter()
        .filter(|f| f.starts_with("dlq/"))
        .collect()
}

/// (id, qty) of every committed order and customer row, sorted by id.
fn committed_rows(root: &Path) -> Vec<(i64, Json)> {
    let mut rows = Vec::new();
    for table in ["shop/orders", "shop/customers"] {
        for row in pyarrow_read(root, table, "id,qty").1 {
            rows.push((row[0].as_i64().expect("id"), row[1].clone()));
        }
    }
    rows.sort_by_key(|r| r.0);
    rows
}

const BAD_TS: i64 = i64::MAX;

#[test]
fn a_dead_letter_is_replayed_once_fixed_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = &dir.path().join("out");
    let state_dir = &dir.path().join("state");

    // The normal run: id 6 (offset 5) comes with a commit timestamp out of the range of the
    // file's date partition (an upstream clock bug). Debezium JSON can encode it, so the DLQ
    // keeps its envelope. (A value the event model itself refuses, like text in an INT
    // column, is kept only as debug text: see the second test.)
    let mut input = input();
    let good_ts = input[5].event.commit_ts_ms;
    input[5].event.commit_ts_ms = BAD_TS;
    let mut sink = recovered_sink(root, None);
    let outcomes: Vec<WriteOutcome> = input
        .iter()
        .map(|r| sink.write(r.clone()).expect("write"))
        .collect();
    assert_eq!(outcomes[5], WriteOutcome::DeadLettered);
    let state = sink.prepare_checkpoint().expect("prepare");
    save_checkpoint(state_dir, 1, &state);
    sink.commit(&state).expect("commit");
    drop(sink);

    // It is in the DLQ with its reason, and its envelope decodes back to the event.
    assert_eq!(dlq_files(root), vec!["dlq/part-s0-5-5.jsonl".to_owned()]);
    let letters = read_dead_letters(&options(root)).expect("read dlq");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (letter.file.as_str(), letter.line, letter.shard.as_str()),
        ("dlq/part-s0-5-5.jsonl", 1, "s0")
    );
    assert_eq!((letter.offset, letter.stage.as_str()), (5, "partition"));
    assert!(
        letter.error.contains("commit_ts_ms") && letter.error.contains("outside"),
        "{}",
        letter.error
    );
    assert_eq!(
        letter.event.as_ref().ok(),
        Some(&input[5].event),
        "{:?} {}",
        letter.event.as_ref().err(),
        letter.document
    );
    let mut expected: Vec<(i64, Json)> = (1..=24)
        .filter(|id| *id != 6)
        .map(|id| (id, json!(id % 7)))
        .collect();
    assert_eq!(committed_rows(root), expected);

    // Replay before the fix: it fails again, lands in the DLQ again (shard dlq-replay), and
    // the replayed file moves out of the way.
    let (report, moved) = replay_run(root, state_dir, 2, |l| l.as_recorded(), false);
    assert_eq!((report.lines, report.replayed), (1, 0));
    assert_eq!(report.dead_lettered_again, 1);
    assert_eq!(
        moved,
        vec!["dlq/replayed/00000000000000000000-part-s0-5-5.jsonl".to_owned()]
    );
    assert_eq!(
        dlq_files(root),
        vec![
            "dlq/part-dlq-replay-0-0.jsonl".to_owned(),
            "dlq/replayed/00000000000000000000-part-s0-5-5.jsonl".to_owned(),
        ]
    );
    assert_eq!(committed_rows(root), expected);

    // The fix: the hook corrects the timestamp. Replay, checkpoint, commit — then a crash before
    // the files are moved.
    let fix = |letter: &cdc_sink::DeadLetterRecord| {
        let mut event = letter.as_recorded()?;
        if event.commit_ts_ms == BAD_TS {
            event.commit_ts_ms = good_ts;
        }
        Some(event)
    };
    let (report, _) = replay_run(root, state_dir, 3, fix, true);
    assert_eq!((report.lines, report.replayed), (1, 1), "{report:?}");
    assert_eq!(
        report.files,
        vec!["dlq/replaying/00000000000000000001-part-dlq-replay-0-0.jsonl".to_owned()]
    );
    expected.insert(5, (6, json!(6)));
    assert_eq!(committed_rows(root), expected, "id 6 present exactly once");
    let replayed_file: Vec<String> = pyarrow_read(root, "shop/orders", "id")
        .0
        .into_iter()
        .filter(|f| f.contains("part-dlq-replay-"))
        .collect();
    assert_eq!(
        replayed_file,
        vec!["shop/orders/dt=2024-05-17/hour=06/part-dlq-replay-1-1.parquet".to_owned()]
    );

    // Replay again after that crash: the claimed file is re-read, every line is covered by
    // the checkpoint and dropped, and this time the file is moved.
    let (report, moved) = replay_run(root, state_dir, 4, fix, false);
    assert_eq!(
        (report.lines, report.replayed, report.already_replayed),
        (1, 0, 1)
    );
    assert_eq!(
        moved,
        vec!["dlq/replayed/00000000000000000001-part-dlq-replay-0-0.jsonl".to_owned()]
    );
    assert_eq!(committed_rows(root), expected);

    // A further replay finds nothing.
    let (report, moved) = replay_run(root, state_dir, 5, fix, false);
    assert_eq!(report, ReplayReport::default());
    assert!(moved.is_empty());
    assert_eq!(committed_rows(root), expected);
    assert!(dlq_files(root)
        .iter()
        .all(|f| f.starts_with("dlq/replayed/")));
    assert!(read_dead_letters(&options(root)).expect("read").is_empty());
    // The replay shard has its own offsets in the checkpoint and no position mark.
    let last = load_checkpoint(state_dir).expect("checkpoint");
    assert_eq!(last.offsets.get("dlq-replay"), Some(2));
    assert_eq!(last.offsets.get("s0"), Some(24));
    assert!(last
        .committed_positions
        .keys()
        .all(|k| !k.ends_with("@dlq-replay")));
}

#[test]
fn lines_without_an_envelope_are_reported_not_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = &dir.path().join("out");
    let state_dir = &dir.path().join("state");
    let mut record = input().remove(5);
    // Text in an INT column: Debezium JSON refuses it too, so only its debug text is kept.
    if let Some(row) = record.event.after.as_mut() {
        row.values[2] = Value::Text("seven".into());
    }
    let mut sink = recovered_sink(root, None);
    assert_eq!(
        sink.write(record).expect("write"),
        WriteOutcome::DeadLettered
    );
    let state = sink.prepare_checkpoint().expect("prepare");
    save_checkpoint(state_dir, 1, &state);
    sink.commit(&state).expect("commit");

    let letters = read_dead_letters(&SinkOptions::clone(&options(root))).expect("read");
    assert!(letters[0].event.is_err());
    let (report, moved) = replay_run(root, state_dir, 2, |l| l.as_recorded(), false);
    assert_eq!(report.replayed, 0);
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(
        report.skipped[0].0.ends_with("part-s0-5-5.jsonl:1"),
        "{:?}",
        report.skipped
    );
    // Kept, unreplayed, under replayed/ for manual handling.
    assert_eq!(moved.len(), 1);
    assert!(std::fs::read_to_string(root.join(&moved[0]))
        .expect("kept")
        .contains("seven"));
}
