//! The initial snapshot against a real MariaDB: values and schema equal the binlog reader's,
//! the hand-off to streaming under concurrent writes is gap- and duplicate-free, a resumed
//! snapshot converges, and tables without (or with composite) primary keys are read exactly.
//!
//! Every wait is on a condition (a writer's progress, a marker row) under a deadline; nothing
//! sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_event::{ChangeEvent, Event, Op, Phase, Position, SqlDateTime, TableSchema, Value};
use cdc_mysql::{
    binlog_head, BinlogReader, BinlogReaderConfig, Snapshot, SnapshotConfig, SnapshotProgress, SourceOptions, TableSelector,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as MyValue};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(60);
const READER_ID: u32 = 4343;

mod common;

use common::{fixture, ALL_TYPES, EXTREMES, ORDINARY};

fn config(tables: &str, chunk_size: usize) -> SnapshotConfig {
    SnapshotConfig::new("test", READER_ID, TableSelector::new("shop", tables, "").unwrap()).with_chunk_size(chunk_size)
}

fn change(event: &Event) -> &ChangeEvent {
    match event {
        Event::Change(c) => c,
        other => panic!("expected a change event, got {other:?}"),
    }
}

/// Reads every chunk; checks each is non-empty, positions strictly increase and are snapshot
/// positions at the snapshot's offset.
async fn read_all(snapshot: &mut Snapshot) -> Vec<ChangeEvent> {
    let mut out: Vec<ChangeEvent> = Vec::new();
    while let Some(chunk) = snapshot.next_chunk().await.expect("chunk") {
        assert!(!chunk.is_empty());
        assert!(out.len() < 1_000_000, "paging does not advance: {:?}", snapshot.progress());
        for event in chunk {
            let c = change(&event).clone();
            check_read(snapshot, &c);
            if let Some(last) = out.last() {
                assert!(last.position < c.position, "{} then {}", last.position, c.position);
            }
            out.push(c);
        }
    }
    out
}

fn check_read(snapshot: &Snapshot, c: &ChangeEvent) {
    c.validate().expect("valid read event");
    assert_eq!(c.op, Op::Read);
    assert_eq!(c.position.phase, Phase::Snapshot);
    assert_eq!((c.position.file.as_str(), c.position.offset), (snapshot.stream_from().file.as_str(), snapshot.stream_from().offset));
    assert!(c.position < *snapshot.stream_from(), "snapshot events sort before the stream start");
}

// ---------------------------------------------------------------------------------------------
// (a) values and schema equal the binlog reader's




#[tokio::test]
async fn every_column_type_reads_as_the_binlog_reader_decodes_it() {
    let mut f = fixture(&[]).await;
    f.conn.query_drop(ALL_TYPES).await.expect("create");
    let head = binlog_head(&mut f.conn, cdc_event::ServerFlavor::MariaDb).await.unwrap().expect("binlog on");
    let selector = TableSelector::new("shop", "all_types", "").unwrap();
    let mut reader = BinlogReader::start(&f.opts, BinlogReaderConfig::new(READER_ID, "test", selector, head.file, head.position))
        .await
        .expect("reader");
    f.conn.query_drop(EXTREMES).await.expect("extremes");
    f.conn.query_drop("INSERT INTO shop.all_types (id) VALUES (2)").await.expect("nulls");
    f.conn.query_drop(ORDINARY).await.expect("ordinary");
    // A fourth row whose final state comes from an UPDATE: the snapshot must equal the
    // update's after-image.
    f.conn.query_drop(ORDINARY.replace("VALUES (3,", "VALUES (4,")).await.expect("fourth");
    f.conn
        .query_drop(
            "UPDATE shop.all_types SET ti = -1, biu = 9223372036854775808, d = -0.5, f = -0.0, dt = '2024-05-00',
             tm = '-00:00:01', ts = '1970-01-01 00:00:01.000001', yr = 1901, vc = '日本語', vcl = 'Ñandú',
             bn = X'01020304050607', en = '', st = 'b,c', bt = b'111111111111', b64 = 1,
             g = ST_GeomFromText('LINESTRING(0 0, 10 10)', 3857) WHERE id = 4",
        )
        .await
        .expect("update");

    let mut images: BTreeMap<i64, ChangeEvent> = BTreeMap::new();
    tokio::time::timeout(DEADLINE, async {
        while images.len() < 4 || images.get(&4).is_none_or(|e| e.op != Op::Update) {
            if let Some(Event::Change(c)) = reader.next_event().await.expect("binlog event") {
                let Some(Value::Int(id)) = c.after.as_ref().map(|r| r.values[0].clone()) else { panic!("{c:?}") };
                images.insert(id, c);
            }
        }
    })
    .await
    .expect("four rows streamed within the deadline");

    // Chunks of 3 over 4 rows: a keyset page boundary falls between rows 3 and 4.
    let mut snapshot = Snapshot::start(&f.opts, config("all_types", 3), None).await.expect("snapshot");
    let reads = read_all(&mut snapshot).await;
    assert_eq!(reads.len(), 4);
    assert_eq!(reads.iter().map(|r| r.position.event_index).collect::<Vec<_>>(), [1, 2, 3, 4]);
    for read in &reads {
        let Value::Int(id) = read.after.as_ref().unwrap().values[0] else { panic!() };
        let streamed = &images[&id];
        // Same schema, version included: both derive the version from the columns.
        assert_eq!(*read.schema, *streamed.schema, "schema of row {id}");
        assert_eq!(read.schema.version, TableSchema::fingerprint(&read.schema.columns, &read.schema.primary_key));
        let (got, want) = (&read.after.as_ref().unwrap().values, &streamed.after.as_ref().unwrap().values);
        for ((column, g), w) in read.schema.columns.iter().zip(got).zip(want) {
            assert_eq!(g, w, "row {id} column {} ({})", column.name, column.column_type);
        }
        assert_eq!(read.server_id, 0);
        assert_eq!(read.source_name.as_ref(), "test");
    }
    assert!(snapshot.is_finished());
    let progress = snapshot.progress();
    assert_eq!(progress.position.event_index, 4);
    assert_eq!(progress.tables_done.len(), 1);
    assert_eq!(progress.current, None);
}

// ---------------------------------------------------------------------------------------------
// The seven-column table, its writer and the checks shared by the hand-off and resume tests

/// (id BIGINT PK, n INT, amount DECIMAL(12,2), name VARCHAR(64), at DATETIME(6), flag TINYINT,
/// note TEXT), ids 2, 4, .., 2*rows (odd ids are free for inserts between existing rows).
async fn create_seven(conn: &mut Conn, table: &str, rows: u64) {
    conn.query_drop(format!(
        "CREATE TABLE shop.{table} (id BIGINT PRIMARY KEY, n INT NOT NULL, amount DECIMAL(12,2), name VARCHAR(64),
         at DATETIME(6), flag TINYINT, note TEXT);
         INSERT INTO shop.{table} SELECT seq * 2, seq, seq / 100, CONCAT('name-', seq),
           TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 1000001 MICROSECOND, seq % 100, REPEAT('x', seq % 40)
         FROM shop.seq_1_to_{rows}"
    ))
    .await
    .expect("create and fill");
}

/// The table's content by SELECT (binary protocol), as model values, keyed like `apply`.
async fn select_seven(conn: &mut Conn, table: &str, into: &mut BTreeMap<(String, String), Vec<Value>>) {
    type SevenRow = (i64, i64, Option<String>, Option<String>, MyValue, Option<i64>, Option<String>);
    let rows: Vec<SevenRow> = conn
        .exec(format!("SELECT id, n, amount, name, at, flag, note FROM shop.{table}"), ())
        .await
        .expect("select");
    let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
    for (id, n, amount, name, at, flag, note) in rows {
        let at = match at {
            MyValue::NULL => Value::Null,
            MyValue::Date(y, mo, d, h, mi, s, us) => Value::DateTime(SqlDateTime::new(y, mo, d, h, mi, s, us)),
            other => panic!("{other:?}"),
        };
        let values = vec![
            Value::Int(id),
            Value::Int(n),
            opt(amount.map(Value::Decimal)),
            opt(name.map(Value::Text)),
            at,
            opt(flag.map(Value::Int)),
            opt(note.map(Value::Text)),
        ];
        into.insert((table.to_string(), format!("{:?}", [Value::Int(id)])), values);
    }
}

/// Applies a change to a key-value image of the tables: reads, inserts and updates put the
/// after-image (an update that moved the key removes the old key), deletes remove.
fn apply(state: &mut BTreeMap<(String, String), Vec<Value>>, c: &ChangeEvent) {
    let key = |values: &[Value]| {
        let k: Vec<Value> = c.schema.primary_key.iter().map(|name| values[c.schema.column_index(name).unwrap()].clone()).collect();
        (c.table().table.clone(), format!("{k:?}"))
    };
    if let Some(before) = &c.before {
        state.remove(&key(&before.values));
    }
    if let Some(after) = &c.after {
        state.insert(key(&after.values), after.values.clone());
    }
}

fn assert_same(got: &BTreeMap<(String, String), Vec<Value>>, want: &BTreeMap<(String, String), Vec<Value>>) {
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).take(5).collect();
    let differ: Vec<_> = want.iter().filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v)).map(|(k, _)| k).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{} rows captured, {} in the table; missing {missing:?}, extra {extra:?}, different {differ:?}",
        got.len(),
        want.len()
    );
}

/// Writes to `table` (2*rows initial ids) until `stop`, one transaction per iteration:
/// updates, deletes and inserts at random keys (ahead of and behind the snapshot's cursor),
/// at chunk boundaries (`boundary` = ids per chunk), and primary-key moves into the
/// already-read (negative ids) and not-yet-read (large ids) ranges. Publishes the number of
/// committed iterations; after `stop`, inserts the marker row id 0 and returns the count.
async fn writer(
    opts: SourceOptions,
    table: String,
    rows: u64,
    boundary: u64,
    stop: Arc<AtomicBool>,
    done: watch::Sender<u64>,
) -> u64 {
    let mut conn = opts.connect().await.expect("writer connects");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |bound: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    let mut iteration = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let (r1, r2, r3) = (1 + next(2 * rows), 1 + next(2 * rows), 2 + 2 * next(rows));
        let odd = 1 + 2 * next(rows);
        let b = boundary * (1 + next(rows / boundary));
        let moved = if iteration.is_multiple_of(2) { -(iteration as i64) - 1 } else { 1_000_001 + 2 * iteration as i64 };
        let t = format!("shop.{table}");
        conn.query_drop(format!(
            "START TRANSACTION;
             UPDATE {t} SET n = n + 1, note = CONCAT(note, 'u'), at = at + INTERVAL 1 SECOND WHERE id = {r1};
             DELETE FROM {t} WHERE id = {r2};
             INSERT INTO {t} VALUES ({odd}, -1, 1.5, 'inserted', '2030-01-01 00:00:00.5', 1, 'i')
               ON DUPLICATE KEY UPDATE n = n + 1000;
             UPDATE {t} SET amount = amount + 0.01 WHERE id = {b};
             DELETE FROM {t} WHERE id = {b} + 2;
             INSERT INTO {t} VALUES ({b} + 1, -2, 2.5, 'boundary', NULL, 0, NULL) ON DUPLICATE KEY UPDATE flag = 1 - flag;
             UPDATE {t} SET id = {moved} WHERE id = {r3};
             COMMIT"
        ))
        .await
        .expect("writer transaction");
        iteration += 1;
        done.send_replace(iteration);
    }
    conn.query_drop(format!("INSERT INTO shop.{table} (id, n, name) VALUES (0, 0, 'marker')")).await.expect("marker");
    iteration
}

/// Streams from the snapshot's position until the marker row of `table`, checking every event
/// sorts after `high_water` (the last snapshot event), and applies them.
///
/// With `exact`, also checks the snapshot was exactly the state at its position: the first
/// streamed change of each key starts from what the snapshot read (an insert's key was absent,
/// an update's or delete's before-image equals the snapshot's row).
async fn stream_until_marker(
    snapshot: &Snapshot,
    opts: &SourceOptions,
    table: &str,
    high_water: &Position,
    state: &mut BTreeMap<(String, String), Vec<Value>>,
    exact: bool,
) -> usize {
    let at_snapshot = state.clone();
    let mut touched = BTreeSet::new();
    let mut reader = BinlogReader::start(opts, snapshot.reader_config()).await.expect("reader");
    let mut count = 0;
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = reader.next_event().await.expect("binlog event").expect("stream open");
            let Event::Change(c) = event else { continue };
            assert!(c.position > *high_water, "stream event {} not after the snapshot's {high_water}", c.position);
            assert_eq!(c.position.phase, Phase::Stream);
            if exact {
                let key = |values: &[Value]| (c.table().table.clone(), format!("{:?}", [values[0].clone()]));
                if let Some(before) = &c.before {
                    let k = key(&before.values);
                    if touched.insert(k.clone()) {
                        assert_eq!(at_snapshot.get(&k), Some(&before.values), "first change of {k:?} at {}", c.position);
                    }
                }
                if let Some(after) = &c.after {
                    let k = key(&after.values);
                    if touched.insert(k.clone()) && c.op == Op::Insert {
                        assert!(!at_snapshot.contains_key(&k), "{k:?} inserted at {} but read by the snapshot", c.position);
                    }
                }
            }
            apply(state, &c);
            count += 1;
            let is_marker = c.op == Op::Insert
                && c.table().table == table
                && c.after.as_ref().is_some_and(|a| a.values[0] == Value::Int(0));
            if is_marker {
                return;
            }
        }
    })
    .await
    .expect("marker streamed within the deadline");
    count
}

// ---------------------------------------------------------------------------------------------
// (b) the hand-off

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_under_concurrent_writes_equals_the_table() {
    const ROWS: u64 = 100_000;
    const CHUNK: usize = 1_000;
    let mut f = fixture(&[]).await;
    create_seven(&mut f.conn, "big", ROWS).await;

    let started = Instant::now();
    let mut snapshot = Snapshot::start(&f.opts, config("big", CHUNK), None).await.expect("snapshot");
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut progress_rx) = watch::channel(0u64);
    let writer = tokio::spawn(writer(f.opts.clone(), "big".into(), ROWS, 2 * CHUNK as u64, stop.clone(), tx));

    let mut state = BTreeMap::new();
    let mut last: Option<Position> = None;
    let mut reads = 0usize;
    let mut chunks = 0usize;
    let mut seen_writes = 0u64;
    while let Some(chunk) = snapshot.next_chunk().await.expect("chunk") {
        chunks += 1;
        for event in &chunk {
            let c = change(event);
            check_read(&snapshot, c);
            assert!(last.as_ref().is_none_or(|l| *l < c.position));
            last = Some(c.position.clone());
            apply(&mut state, c);
            reads += 1;
        }
        // Every 10 chunks, wait until the writer committed more: writes are guaranteed to
        // interleave with the whole snapshot, whatever the relative speeds.
        if chunks.is_multiple_of(10) {
            seen_writes = *tokio::time::timeout(DEADLINE, progress_rx.wait_for(|n| *n > seen_writes))
                .await
                .expect("writer progresses")
                .expect("writer alive");
        }
    }
    let snapshot_time = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let writes = writer.await.expect("writer");
    assert!(chunks >= 100, "{chunks} chunks");
    assert!(writes >= 10, "{writes} writer transactions");
    let high_water = last.expect("some reads");
    assert_eq!(snapshot.progress().position, high_water);

    let streamed = stream_until_marker(&snapshot, &f.opts, "big", &high_water, &mut state, true).await;
    let mut want = BTreeMap::new();
    select_seven(&mut f.conn, "big", &mut want).await;
    assert_same(&state, &want);
    eprintln!(
        "hand-off: {reads} rows read in {chunks} chunks in {snapshot_time:?}, {writes} concurrent writer \
         transactions, {streamed} streamed changes, {} final rows",
        want.len()
    );
}

// ---------------------------------------------------------------------------------------------
// (c) resume after a crash

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_snapshot_keeps_its_position_and_converges() {
    const ROWS: u64 = 20_000;
    const CHUNK: usize = 1_000;
    let mut f = fixture(&[]).await;
    create_seven(&mut f.conn, "alpha", 1_500).await;
    create_seven(&mut f.conn, "beta", ROWS).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut writes_rx) = watch::channel(0u64);
    let mut first = Snapshot::start(&f.opts, config("alpha,beta", CHUNK), None).await.expect("snapshot");
    let writer = tokio::spawn(writer(f.opts.clone(), "beta".into(), ROWS, 2 * CHUNK as u64, stop.clone(), tx));

    // Read alpha and part of beta, then "crash": the committed progress goes through JSON.
    let mut state = BTreeMap::new();
    let mut first_keys = BTreeSet::new();
    let mut last = None;
    loop {
        let chunk = first.next_chunk().await.expect("chunk").expect("not finished yet");
        for event in &chunk {
            let c = change(event);
            check_read(&first, c);
            apply(&mut state, c);
            if c.table().table == "beta" {
                first_keys.insert(format!("{:?}", c.after.as_ref().unwrap().values[0]));
            }
            last = Some(c.position.clone());
        }
        let progress = first.progress();
        if progress.current.is_some() && first_keys.len() >= 3 * CHUNK {
            break;
        }
    }
    let progress = first.progress();
    assert_eq!(progress.tables_done.len(), 1, "{progress:?}");
    assert_eq!(progress.current.as_ref().unwrap().table.table, "beta");
    assert_eq!(progress.position, last.clone().unwrap());
    let json = serde_json::to_string(&progress).unwrap();
    let progress: SnapshotProgress = serde_json::from_str(&json).unwrap();
    let first_stream_from = first.stream_from().clone();
    drop(first);

    // The writer goes on between the crash and the resumed run.
    let seen = *writes_rx.borrow_and_update();
    tokio::time::timeout(DEADLINE, writes_rx.wait_for(|n| *n > seen + 5)).await.expect("writer progresses").unwrap();

    let mut second = Snapshot::start(&f.opts, config("alpha,beta", CHUNK), Some(progress.clone())).await.expect("resume");
    assert_eq!(second.stream_from(), &first_stream_from, "a resumed snapshot keeps the original position");
    assert_eq!(second.progress(), progress, "nothing moves before the first chunk");
    let mut high_water = progress.position.clone();
    let mut first_index = None;
    while let Some(chunk) = second.next_chunk().await.expect("chunk") {
        for event in &chunk {
            let c = change(event);
            check_read(&second, c);
            assert!(c.position > high_water);
            first_index.get_or_insert(c.position.event_index);
            high_water = c.position.clone();
            assert_eq!(c.table().table, "beta", "alpha was finished before the crash");
            let key = format!("{:?}", c.after.as_ref().unwrap().values[0]);
            assert!(!first_keys.contains(&key), "row {key} read by both runs");
            apply(&mut state, c);
        }
    }
    assert_eq!(first_index, Some(progress.position.event_index + 1), "indexes continue after the committed one");
    stop.store(true, Ordering::SeqCst);
    let writes = writer.await.expect("writer");

    // Not `exact`: the resumed part reflects a later state (see `Snapshot::start`).
    stream_until_marker(&second, &f.opts, "beta", &high_water, &mut state, false).await;
    let mut want = BTreeMap::new();
    select_seven(&mut f.conn, "alpha", &mut want).await;
    select_seven(&mut f.conn, "beta", &mut want).await;
    assert_same(&state, &want);
    eprintln!("resume: {writes} writer transactions, {} final rows", want.len());
}

// ---------------------------------------------------------------------------------------------
// (d) keys: none, composite

#[tokio::test]
async fn a_table_without_primary_key_is_one_chunk() {
    let mut f = fixture(&[]).await;
    f.conn
        .query_drop(
            "CREATE TABLE shop.nokey (a INT, b VARCHAR(10));
             INSERT INTO shop.nokey SELECT seq % 7, CONCAT('b', seq) FROM shop.seq_1_to_2500;
             INSERT INTO shop.nokey VALUES (1, 'b1'), (NULL, NULL)",
        )
        .await
        .unwrap();
    let mut snapshot = Snapshot::start(&f.opts, config("nokey", 1_000), None).await.expect("snapshot");
    let chunk = snapshot.next_chunk().await.expect("chunk").expect("one chunk");
    assert_eq!(chunk.len(), 2502, "every row, duplicates included, in one chunk");
    let progress = snapshot.progress();
    assert_eq!(progress.current, None);
    assert_eq!(progress.tables_done.iter().map(|t| t.table.as_str()).collect::<Vec<_>>(), ["nokey"]);
    assert!(snapshot.next_chunk().await.expect("end").is_none());
    let schema: &TableSchema = &change(&chunk[0]).schema;
    assert!(schema.primary_key.is_empty());
    let mut rows: Vec<String> = chunk.iter().map(|e| format!("{:?}", change(e).after.as_ref().unwrap().values)).collect();
    let want: Vec<(Option<i64>, Option<String>)> = f.conn.query("SELECT a, b FROM shop.nokey").await.unwrap();
    let mut want: Vec<String> = want
        .into_iter()
        .map(|(a, b)| format!("{:?}", vec![a.map_or(Value::Null, Value::Int), b.map_or(Value::Null, Value::Text)]))
        .collect();
    rows.sort();
    want.sort();
    assert_eq!(rows, want);
}

#[tokio::test]
async fn composite_keys_of_collated_text_and_decimal_page_exactly() {
    let mut f = fixture(&[]).await;
    // Case-insensitive latin1 text (binary order B < Z < a < c < é, collation order a, B, c, é,
    // Z) and DECIMALs that differ only in their 30th digit: a boundary compared as bytes or as
    // a double would skip or repeat rows.
    f.conn
        .query_drop(
            "CREATE TABLE shop.ck (k1 VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_swedish_ci,
               k2 DECIMAL(30,10), v INT, PRIMARY KEY (k1, k2));
             INSERT INTO shop.ck SELECT ELT(1 + seq % 5, 'a', 'B', 'c', 'é', 'Z'),
               12345678901234567890 + (seq DIV 5) * 0.0000000001, seq FROM shop.seq_1_to_200",
        )
        .await
        .unwrap();
    let mut snapshot = Snapshot::start(&f.opts, config("ck", 7), None).await.expect("snapshot");
    let mut chunks = 0;
    let mut got = Vec::new();
    while let Some(chunk) = snapshot.next_chunk().await.expect("chunk") {
        chunks += 1;
        assert!(chunks <= 200, "paging does not advance: {:?}", snapshot.progress());
        got.extend(chunk.iter().map(|e| change(e).after.as_ref().unwrap().values[2].clone()));
    }
    let want: Vec<i64> = f.conn.query("SELECT v FROM shop.ck ORDER BY k1, k2").await.unwrap();
    assert_eq!(got, want.into_iter().map(Value::Int).collect::<Vec<_>>(), "every row once, in key order");
    assert_eq!(chunks, 200usize.div_ceil(7));
}

#[tokio::test]
async fn binary_keys_with_bytes_invalid_in_utf8_page_exactly() {
    let mut f = fixture(&[]).await;
    f.conn
        .query_drop(
            "CREATE TABLE shop.bk (k VARBINARY(4) PRIMARY KEY, v INT);
             INSERT INTO shop.bk VALUES (X'00', 1), (X'0000', 2), (X'7F', 3), (X'80', 4), (X'E9', 5), (X'E900', 6),
               (X'FF', 7), (X'FFFF', 8), (X'C3A9', 9), ('a', 10)",
        )
        .await
        .unwrap();
    let mut snapshot = Snapshot::start(&f.opts, config("bk", 3), None).await.expect("snapshot");
    let mut got = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = snapshot.next_chunk().await.expect("chunk") {
        chunks += 1;
        assert!(chunks <= 10, "paging does not advance: {:?}", snapshot.progress());
        got.extend(chunk.iter().map(|e| change(e).after.as_ref().unwrap().values[1].clone()));
    }
    let want: Vec<i64> = f.conn.query("SELECT v FROM shop.bk ORDER BY k").await.unwrap();
    assert_eq!(got, want.into_iter().map(Value::Int).collect::<Vec<_>>());
}
