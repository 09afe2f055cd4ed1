//! Engine behaviour through the public API: round trips, cursors, recovery, retention.

use cdc_datalog::{AppendRecord, CursorRequest, Datalog, DatalogError, LogOptions, RecordType, ShardLog, TopicSpec};

fn rec(i: u64) -> AppendRecord {
    AppendRecord { attributes: vec![("i".into(), i.to_string())], payload: format!("payload-{i}").repeat((i % 7 + 1) as usize).into_bytes() }
}

fn small_segments() -> LogOptions {
    LogOptions { index_interval_bytes: 64, ..LogOptions::default() }.with_segment_bytes(1024)
}

fn active_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn append_read_round_trip_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = ShardLog::open(dir.path(), 0, small_segments()).unwrap();
    for chunk in 0..20u64 {
        let batch: Vec<_> = (chunk * 10..chunk * 10 + 10).map(rec).collect();
        let ack = log.append(&batch).unwrap();
        assert_eq!(ack.first_sequence, chunk * 10);
        assert_eq!(ack.count, 10);
    }
    assert!(log.segment_count() > 5, "1 KiB segments must have rolled, got {}", log.segment_count());
    let all = log.read(0, 1000, usize::MAX).unwrap();
    assert_eq!(all.len(), 200);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.sequence, i as u64);
        assert_eq!(r.payload, rec(i as u64).payload);
        assert_eq!(r.attributes, rec(i as u64).attributes);
    }
    // Reads starting mid-segment and limits.
    let some = log.read(137, 5, usize::MAX).unwrap();
    assert_eq!(some.iter().map(|r| r.sequence).collect::<Vec<_>>(), vec![137, 138, 139, 140, 141]);
    assert_eq!(log.read(199, 10, usize::MAX).unwrap().len(), 1);
    assert!(log.read(200, 10, usize::MAX).unwrap().is_empty(), "reading at the tail returns nothing");
    assert!(matches!(log.read(201, 10, usize::MAX), Err(DatalogError::SeekOutOfRange { .. })));
    // max_bytes stops early but always returns one record.
    assert_eq!(log.read(0, 1000, 1).unwrap().len(), 1);
}

fn topic_spec(shards: u32) -> TopicSpec {
    TopicSpec { shard_count: shards, lifecycle: 1, record_type: RecordType::Blob, record_schema: None, comment: "c".into(), expand_mode: None }
}

#[test]
fn every_cursor_type() {
    let dir = tempfile::tempdir().unwrap();
    let log = Datalog::open(dir.path(), small_segments()).unwrap();
    log.create_project("proj", "p").unwrap();
    let topic = log.create_topic("proj", "t", topic_spec(2)).unwrap();

    // Empty shard: every cursor is the tail, sequence 0.
    for req in [CursorRequest::Oldest, CursorRequest::Latest, CursorRequest::SystemTime(0), CursorRequest::Sequence(0)] {
        assert_eq!(topic.cursor("0", req).unwrap().sequence, 0, "{req:?}");
    }
    let shard = topic.shard("0").unwrap();
    let a = shard.append(&(0..5).map(rec).collect::<Vec<_>>()).unwrap();
    // A second batch strictly later in time, without sleeping: wait for the clock to move.
    while cdc_datalog::now_ms() <= a.system_time {
        std::hint::spin_loop();
    }
    let b = shard.append(&(5..10).map(rec).collect::<Vec<_>>()).unwrap();
    assert!(b.system_time > a.system_time);

    let oldest = topic.cursor("0", CursorRequest::Oldest).unwrap();
    assert_eq!((oldest.sequence, oldest.record_time), (0, a.system_time));
    let latest = topic.cursor("0", CursorRequest::Latest).unwrap();
    assert_eq!((latest.sequence, latest.record_time), (9, b.system_time));
    assert_eq!(topic.cursor("0", CursorRequest::SystemTime(b.system_time)).unwrap().sequence, 5);
    assert_eq!(topic.cursor("0", CursorRequest::SystemTime(a.system_time + 1)).unwrap().sequence, 5);
    assert_eq!(topic.cursor("0", CursorRequest::SystemTime(0)).unwrap().sequence, 0);
    assert_eq!(topic.cursor("0", CursorRequest::SystemTime(b.system_time + 1)).unwrap().sequence, 10, "newer than all: tail");
    assert_eq!(topic.cursor("0", CursorRequest::Sequence(7)).unwrap().sequence, 7);
    assert_eq!(topic.cursor("0", CursorRequest::Sequence(10)).unwrap().sequence, 10);
    assert!(matches!(topic.cursor("0", CursorRequest::Sequence(11)), Err(DatalogError::SeekOutOfRange { .. })));
    assert!(matches!(topic.cursor("0", CursorRequest::SystemTime(-1)), Err(DatalogError::SeekOutOfRange { .. })));
    assert!(matches!(topic.cursor("2", CursorRequest::Oldest), Err(DatalogError::NoSuchShard(_))));
    assert!(matches!(topic.cursor("x", CursorRequest::Oldest), Err(DatalogError::NoSuchShard(_))));
    // The other shard is independent.
    assert_eq!(topic.cursor("1", CursorRequest::Latest).unwrap().sequence, 0);
}

#[test]
fn torn_and_corrupt_tails_are_truncated_at_reopen() {
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("garbage", Box::new(|f: &mut Vec<u8>| f.extend_from_slice(b"\xde\xad\xbe\xef garbage that is not a frame"))),
        ("partial header", Box::new(|f: &mut Vec<u8>| f.extend_from_slice(&[40, 0, 0]))),
        ("partial frame", Box::new(|f: &mut Vec<u8>| {
            // A valid-looking header whose body never arrived.
            f.extend_from_slice(&100u32.to_le_bytes());
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend_from_slice(&[1, 2, 3, 4, 5]);
        })),
        ("bit flip in last record", Box::new(|f: &mut Vec<u8>| {
            let n = f.len();
            f[n - 2] ^= 0xff;
        })),
    ];
    for (name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = ShardLog::open(dir.path(), 0, LogOptions::default()).unwrap();
            log.append(&(0..10).map(rec).collect::<Vec<_>>()).unwrap();
        }
        let seg = active_segment(dir.path());
        let mut bytes = std::fs::read(&seg).unwrap();
        let good_len = bytes.len();
        damage(&mut bytes);
        std::fs::write(&seg, &bytes).unwrap();

        let log = ShardLog::open(dir.path(), 0, LogOptions::default()).unwrap();
        let expect = if name == "bit flip in last record" { 9 } else { 10 };
        let all = log.read(0, 100, usize::MAX).unwrap();
        assert_eq!(all.len(), expect, "{name}");
        assert!(all.iter().enumerate().all(|(i, r)| r.sequence == i as u64 && r.payload == rec(i as u64).payload), "{name}");
        assert!(std::fs::metadata(&seg).unwrap().len() <= good_len as u64, "{name}: file truncated");
        // Appending after recovery continues the sequence without gaps.
        let ack = log.append(&[rec(99)]).unwrap();
        assert_eq!(ack.first_sequence, expect as u64, "{name}");
        assert_eq!(log.read(expect as u64, 1, usize::MAX).unwrap()[0].payload, rec(99).payload, "{name}");
    }
}

#[test]
fn everything_survives_reopen_including_metadata_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let sub_id;
    {
        let log = Datalog::open(dir.path(), small_segments()).unwrap();
        log.create_project("proj", "comment").unwrap();
        let spec = TopicSpec { record_type: RecordType::Tuple, record_schema: Some("{\"fields\":[]}".into()), ..topic_spec(3) };
        let topic = log.create_topic("proj", "tup", spec).unwrap();
        for s in 0..3u64 {
            topic.shard(&s.to_string()).unwrap().append(&(0..50 + s).map(rec).collect::<Vec<_>>()).unwrap();
        }
        sub_id = topic.subscriptions().create("tup", "sub").unwrap();
        let opened = topic.subscriptions().open_sessions(&sub_id, &[1]).unwrap();
        let commit = cdc_datalog::OffsetCommit {
            sequence: 20,
            timestamp: 5,
            batch_index: 0,
            version: opened[&1].version,
            session_id: opened[&1].session_id.unwrap().to_string(),
        };
        topic.subscriptions().commit(&sub_id, &[(1, commit)].into()).unwrap();
    }
    let log = Datalog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.list_projects(), vec!["proj"]);
    assert_eq!(log.get_project("proj").unwrap().comment, "comment");
    let topic = log.topic("proj", "tup").unwrap();
    assert_eq!(topic.info().spec.record_type, RecordType::Tuple);
    for s in 0..3u64 {
        let recs = topic.shard(&s.to_string()).unwrap().read(0, 1000, usize::MAX).unwrap();
        assert_eq!(recs.len() as u64, 50 + s);
        assert!(recs.iter().enumerate().all(|(i, r)| r.payload == rec(i as u64).payload));
    }
    let offsets = topic.subscriptions().offsets(&sub_id, &[0, 1]).unwrap();
    assert_eq!(offsets[&1].sequence, 20);
    assert_eq!(offsets[&0].sequence, -1);
    // A stale session cannot commit once another consumer opened the shard.
    let old_session = offsets[&1].session_id.unwrap();
    topic.subscriptions().open_sessions(&sub_id, &[1]).unwrap();
    let stale = cdc_datalog::OffsetCommit { sequence: 30, timestamp: 6, batch_index: 0, version: 0, session_id: old_session.to_string() };
    assert!(matches!(topic.subscriptions().commit(&sub_id, &[(1, stale.clone())].into()), Err(DatalogError::OffsetSessionChanged { .. })));
    topic.subscriptions().reset(&sub_id, &[(1, (3, 4, 0))].into()).unwrap();
    assert!(matches!(topic.subscriptions().commit(&sub_id, &[(1, stale)].into()), Err(DatalogError::OffsetReset { .. })));

    assert!(matches!(log.delete_project("proj"), Err(DatalogError::ProjectNotEmpty(_))));
    log.delete_topic("proj", "tup").unwrap();
    log.delete_project("proj").unwrap();
    drop(log);
    assert!(Datalog::open(dir.path(), small_segments()).unwrap().list_projects().is_empty());
}

#[test]
fn retention_deletes_whole_old_segments_and_moves_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let log = Datalog::open(dir.path(), small_segments()).unwrap();
    log.create_project("proj", "p").unwrap();
    let topic = log.create_topic("proj", "t", topic_spec(1)).unwrap();
    let shard = topic.shard("0").unwrap().clone();
    for chunk in 0..10u64 {
        shard.append(&(chunk * 10..chunk * 10 + 10).map(rec).collect::<Vec<_>>()).unwrap();
    }
    let segments = shard.segment_count();
    assert!(segments > 3);
    // Nothing is a day old yet.
    assert_eq!(topic.enforce_retention(cdc_datalog::now_ms()).unwrap(), 0);
    // Two days later (lifecycle 1 day): every sealed segment goes, the active one stays.
    let deleted = topic.enforce_retention(cdc_datalog::now_ms() + 2 * 86_400_000).unwrap();
    assert_eq!(deleted, segments - 1);
    assert_eq!(shard.segment_count(), 1);
    let b = shard.bounds();
    assert!(b.oldest > 0 && b.next == 100);
    assert!(matches!(shard.read(0, 10, usize::MAX), Err(DatalogError::SeekOutOfRange { .. })));
    let oldest = topic.cursor("0", CursorRequest::Oldest).unwrap();
    assert_eq!(oldest.sequence, b.oldest);
    assert_eq!(shard.read(b.oldest, 1000, usize::MAX).unwrap().len() as u64, 100 - b.oldest);
    // After reopen the retained range and the next sequence are the same.
    drop((topic, shard, log));
    let log = Datalog::open(dir.path(), small_segments()).unwrap();
    let shard = log.topic("proj", "t").unwrap().shard("0").unwrap().clone();
    assert_eq!(shard.bounds().oldest, b.oldest);
    assert_eq!(shard.append(&[rec(1)]).unwrap().first_sequence, 100);
}

#[test]
fn names_are_checked_before_touching_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = Datalog::open(dir.path(), LogOptions::default()).unwrap();
    for bad in ["../x", "ab", "1abc", "a/b/c", "abc.def"] {
        assert!(matches!(log.create_project(bad, ""), Err(DatalogError::InvalidName { .. })), "{bad}");
    }
    log.create_project("proj", "").unwrap();
    assert!(matches!(log.create_project("proj", ""), Err(DatalogError::ProjectExists(_))));
    assert!(matches!(log.create_topic("proj", "../t", topic_spec(1)), Err(DatalogError::InvalidName { .. })));
    log.create_topic("proj", "t", topic_spec(1)).unwrap();
    assert!(matches!(log.create_topic("proj", "t", topic_spec(1)), Err(DatalogError::TopicExists { .. })));
    assert!(matches!(log.create_topic("nope", "t", topic_spec(1)), Err(DatalogError::NoSuchProject(_))));
}
