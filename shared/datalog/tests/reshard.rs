//! Split and merge through the public API: closed shards keep their data and refuse writes,
//! children take the hash ranges, and all of it survives a reopen. Also the schema registry.

use cdc_datalog::{AppendRecord, Datalog, DatalogError, LogOptions, RecordType, ShardState, TopicSpec};

fn spec(shards: u32, record_type: RecordType) -> TopicSpec {
    let record_schema = (record_type == RecordType::Tuple).then(|| r#"{"fields": [{"name": "id", "type": "bigint"}]}"#.to_string());
    TopicSpec { shard_count: shards, lifecycle: 1, record_type, record_schema, comment: "c".into(), expand_mode: None }
}

fn recs(n: usize) -> Vec<AppendRecord> {
    (0..n).map(|i| AppendRecord::new(format!("r{i}"))).collect()
}

#[test]
fn split_and_merge_close_parents_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mid;
    {
        let log = Datalog::open(dir.path(), LogOptions::default()).unwrap();
        log.create_project("proj", "p").unwrap();
        let topic = log.create_topic("proj", "t", spec(1, RecordType::Blob)).unwrap();
        topic.shard("0").unwrap().append(&recs(3)).unwrap();
        let table = topic.shard_table();
        mid = table[0].end_hash_key / 2;

        let [left, right] = topic.split_shard("0", mid).unwrap();
        assert_eq!((left.id, right.id), (1, 2));
        assert_eq!((left.begin_hash_key, left.end_hash_key), (0, mid));
        assert_eq!((right.begin_hash_key, right.end_hash_key), (mid, u128::MAX));
        assert_eq!(left.parents, vec![0]);
        // The parent keeps its records, refuses new ones; the children take writes.
        let parent = topic.shard("0").unwrap();
        assert!(parent.is_closed());
        assert!(matches!(parent.append(&recs(1)), Err(DatalogError::ShardClosed(0))));
        assert_eq!(parent.read(0, 10, usize::MAX).unwrap().len(), 3);
        assert_eq!(topic.shard("2").unwrap().append(&recs(2)).unwrap().first_sequence, 0);
        assert_eq!(topic.route_hash(mid - 1), Some(1));
        assert_eq!(topic.route_hash(u128::MAX), Some(2));
        assert_eq!(topic.active_shard_ids(), vec![1, 2]);
        // A closed shard can be neither split nor merged again.
        assert!(matches!(topic.split_shard("0", 5), Err(DatalogError::ShardClosed(0))));
        assert!(matches!(topic.merge_shards("0", "1"), Err(DatalogError::ShardClosed(0))));

        let merged = topic.merge_shards("2", "1").unwrap();
        assert_eq!((merged.id, merged.begin_hash_key, merged.end_hash_key, merged.parents.clone()), (3, 0, u128::MAX, vec![1, 2]));
        assert!(matches!(topic.merge_shards("3", "3"), Err(DatalogError::ShardClosed(_)) | Err(DatalogError::InvalidParameter(_))));
    }
    let log = Datalog::open(dir.path(), LogOptions::default()).unwrap();
    let topic = log.topic("proj", "t").unwrap();
    let table = topic.shard_table();
    assert_eq!(table.iter().map(|s| (s.id, s.state)).collect::<Vec<_>>(), vec![
        (0, ShardState::Closed),
        (1, ShardState::Closed),
        (2, ShardState::Closed),
        (3, ShardState::Active)
    ]);
    assert!(table[0].closed_time.is_some() && table[3].closed_time.is_none());
    assert_eq!(table[1].end_hash_key, mid);
    // Closed-ness is durable: the reopened parent still refuses writes, keeps its data.
    assert!(matches!(topic.shard("2").unwrap().append(&recs(1)), Err(DatalogError::ShardClosed(2))));
    assert_eq!(topic.shard("2").unwrap().read(0, 10, usize::MAX).unwrap().len(), 2);
    assert_eq!(topic.shard("0").unwrap().read(0, 10, usize::MAX).unwrap().len(), 3);
    assert_eq!(topic.shard("3").unwrap().append(&recs(1)).unwrap().first_sequence, 0);
    assert_eq!(topic.shard_ids(), vec![0, 1, 2, 3]);
}

#[test]
fn split_key_and_limits_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let log = Datalog::open(dir.path(), LogOptions::default()).unwrap();
    log.create_project("proj", "p").unwrap();
    let topic = log.create_topic("proj", "t", spec(2, RecordType::Blob)).unwrap();
    let table = topic.shard_table();
    for key in [table[1].begin_hash_key, table[1].begin_hash_key - 1, u128::MAX] {
        assert!(matches!(topic.split_shard("1", key), Err(DatalogError::InvalidParameter(_))), "{key:x}");
    }
    assert!(matches!(topic.split_shard("7", 1), Err(DatalogError::NoSuchShard(_))));
    // A failed split leaves the shard open for writes.
    topic.shard("1").unwrap().append(&recs(1)).unwrap();
}

#[test]
fn schema_registry_versions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = r#"{"fields": [{"name": "id", "type": "bigint"}, {"name": "x", "type": "string"}]}"#;
    {
        let log = Datalog::open(dir.path(), LogOptions::default()).unwrap();
        log.create_project("proj", "p").unwrap();
        let topic = log.create_topic("proj", "t", spec(1, RecordType::Tuple)).unwrap();
        assert_eq!(topic.schemas().iter().map(|v| v.version_id).collect::<Vec<_>>(), vec![0]);
        assert_eq!(topic.register_schema(v2, |s| s == v2).unwrap(), 1);
        assert_eq!(topic.register_schema(v2, |s| s == v2).unwrap(), 1, "registering is idempotent");
        assert!(matches!(topic.delete_schema(5), Err(DatalogError::NoSuchSchema(5))));
        topic.delete_schema(0).unwrap();
        assert!(matches!(topic.delete_schema(1), Err(DatalogError::InvalidParameter(_))), "the last schema stays");
        let blob = log.create_topic("proj", "b", spec(1, RecordType::Blob)).unwrap();
        assert!(blob.register_schema(v2, |_| false).is_err());
    }
    let log = Datalog::open(dir.path(), LogOptions::default()).unwrap();
    let schemas = log.topic("proj", "t").unwrap().schemas();
    assert_eq!(schemas.iter().map(|v| (v.version_id, v.record_schema.as_str())).collect::<Vec<_>>(), vec![(1, v2)]);
}
