//! DatahubPublisher → the real server (datahub-local's, on 127.0.0.1:0 over a Datalog in a
//! temporary directory) → ShardConsumer, in one process: every event comes back once, per
//! shard in order, every key in one shard in position order; offsets resume; a missing topic
//! is created on datahub-local and is an error when the policy says it must exist.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_datahub::client::CursorType;
use cdc_datahub::{
    ConsumerOptions, DatahubClient, DatahubPublisher, PublishError, PublisherOptions, ServerConfig, ShardConsumer, StartFrom, TopicError,
    TopicPolicy, EVENT_KIND_ATTRIBUTE, SCHEMA_CHANGE_KIND,
};
use cdc_datalog::{Datalog, LogOptions};
use cdc_event::{
    ChangeEvent, ColumnDef, ColumnType, Event, HeartbeatEvent, Op, Position, Row, SchemaChangeEvent, ServerFlavor, TableId, TableSchema, Value,
};

const DEADLINE: Duration = Duration::from_secs(60);

struct Server {
    endpoint: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Datalog::open(dir.path(), LogOptions::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cdc_datahub::serve(listener, ServerConfig::new(log), async move {
        let _ = rx.await;
    }));
    Server { endpoint: format!("http://{addr}"), _dir: dir, _stop: tx }
}

fn client(endpoint: &str) -> Arc<DatahubClient> {
    Arc::new(DatahubClient::builder(endpoint).with_credentials("id", "key").with_max_retries(2).build().unwrap())
}

fn schema(table: &str, keyed: bool) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        table: TableId::new("shop", table),
        version: 1,
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
            ColumnDef::new("qty", ColumnType::BigInt { unsigned: false }, false),
        ],
        primary_key: if keyed { vec!["id".into()] } else { Vec::new() },
    })
}

fn change(schema: &Arc<TableSchema>, op: Op, id: i64, qty: i64, offset: u64) -> Event {
    let row = Row::new(vec![Value::Int(id), Value::Int(qty)]);
    let (before, after) = match op {
        Op::Insert => (None, Some(row)),
        Op::Delete => (Some(row), None),
        _ => (Some(Row::new(vec![Value::Int(id), Value::Int(qty - 1)])), Some(row)),
    };
    Event::Change(ChangeEvent {
        op,
        schema: schema.clone(),
        before,
        after,
        position: Position::stream(ServerFlavor::MariaDb, "binlog.000001", offset),
        commit_ts_ms: 1_715_925_600_000 + offset as i64,
        tx_id: None,
        source_name: Arc::from("db:3306"),
        server_id: 1,
    })
}

/// A workload over 40 keyed rows and an unkeyed table: inserts, then updates and deletes
/// interleaved, one position apart; heartbeats and a schema change mixed in.
fn workload() -> Vec<Event> {
    let items = schema("items", true);
    let log = schema("log", false);
    let mut events = Vec::new();
    let mut offset = 100;
    for id in 0..40 {
        offset += 10;
        events.push(change(&items, Op::Insert, id, 1, offset));
    }
    for round in 0..6 {
        for id in 0..40 {
            offset += 10;
            let op = if round == 5 && id % 3 == 0 { Op::Delete } else { Op::Update };
            events.push(change(&items, op, id, 2 + round, offset));
            offset += 10;
            events.push(change(&log, Op::Insert, id, round, offset));
        }
        offset += 10;
        events.push(Event::Heartbeat(HeartbeatEvent {
            position: Position::stream(ServerFlavor::MariaDb, "binlog.000001", offset),
            ts_ms: 0,
            source_name: Arc::from("db:3306"),
        }));
    }
    offset += 10;
    events.push(Event::SchemaChange(SchemaChangeEvent {
        database: "shop".into(),
        ddl: "ALTER TABLE items ADD COLUMN note TEXT".into(),
        table: Some(TableId::new("shop", "items")),
        schema: None,
        position: Position::stream(ServerFlavor::MariaDb, "binlog.000001", offset),
        commit_ts_ms: 0,
        source_name: Arc::from("db:3306"),
        server_id: 1,
    }));
    events
}

async fn poll_until(consumer: &mut ShardConsumer, want: usize) -> Vec<cdc_datahub::ConsumedRecord> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while got.len() < want {
        assert!(Instant::now() < deadline, "timed out: {} of {want} records", got.len());
        let batch = consumer.poll().await.unwrap();
        if batch.is_empty() {
            tokio::task::yield_now().await;
        }
        got.extend(batch);
    }
    // Nothing beyond what was published.
    assert!(consumer.poll().await.unwrap().is_empty());
    got
}

fn key_of(e: &ChangeEvent) -> (String, i64) {
    let row = e.after.as_ref().or(e.before.as_ref()).unwrap();
    let Value::Int(id) = row.values[0] else { panic!("id") };
    (e.schema.table.table.clone(), id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_come_back_once_in_order_per_key_and_offsets_resume() {
    let server = start_server().await;
    let events = workload();
    let changes: Vec<&ChangeEvent> = events.iter().filter_map(|e| if let Event::Change(c) = e { Some(c) } else { None }).collect();

    // Small requests so one publish is cut into several.
    let options = PublisherOptions::new("cdc_test", "events").with_max_batch_records(64).with_max_batch_bytes(16 * 1024);
    let mut publisher = DatahubPublisher::connect(client(&server.endpoint), options).await.unwrap();
    for chunk in events.chunks(150) {
        publisher.publish_events(chunk).await.unwrap();
    }
    let stats = publisher.stats();
    assert_eq!(stats.records as usize, changes.len() + 1, "{stats:?}");
    assert_eq!(stats.heartbeats_skipped, 6);
    assert!(stats.requests as usize >= events.len() / 64, "{stats:?}");

    let c = client(&server.endpoint);
    assert_eq!(c.list_shards("cdc_test", "events").await.unwrap().len(), 4, "created with the default 4 shards");
    assert_eq!(c.is_datahub_local(), Some(true));

    let mut consumer = ShardConsumer::open(c.clone(), ConsumerOptions::new("cdc_test", "events", "file-sink-group").with_fetch_limit(50), []).await.unwrap();
    assert!(consumer.start_positions().iter().all(|(_, s)| *s == StartFrom::Oldest(0)));
    let records = poll_until(&mut consumer, changes.len() + 1).await;

    // Per shard: sequences 0, 1, 2, ... with nothing missing or repeated.
    let mut per_shard: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &records {
        per_shard.entry(r.shard.to_string()).or_default().push(r.sequence);
    }
    assert_eq!(per_shard.len(), 4, "the keys spread over every shard: {:?}", per_shard.keys());
    for (shard, seqs) in &per_shard {
        assert_eq!(*seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "shard {shard}");
    }

    // Every change decodes to what was published; each key lives in one shard, in order.
    let mut decoded = Vec::new();
    let mut key_shard: HashMap<(String, i64), String> = HashMap::new();
    let mut schema_changes = 0;
    for r in &records {
        if r.attributes.get(EVENT_KIND_ATTRIBUTE).map(String::as_str) == Some(SCHEMA_CHANGE_KIND) {
            schema_changes += 1;
            let doc: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            assert_eq!(doc["schemaChange"]["ddl"], "ALTER TABLE items ADD COLUMN note TEXT");
            continue;
        }
        let event = cdc_event::debezium::from_slice(&r.payload).unwrap();
        let shard = key_shard.entry(key_of(&event)).or_insert_with(|| r.shard.to_string());
        assert_eq!(*shard, *r.shard, "key {:?} is in one shard", key_of(&event));
        decoded.push((r.shard.clone(), event));
    }
    assert_eq!(schema_changes, 1);
    let log_shards: std::collections::HashSet<&String> = key_shard.iter().filter(|((t, _), _)| t == "log").map(|(_, s)| s).collect();
    assert_eq!(log_shards.len(), 1, "an unkeyed table goes to one shard");
    let mut by_key: HashMap<(String, i64), Vec<&Position>> = HashMap::new();
    for (_, e) in &decoded {
        by_key.entry(key_of(e)).or_default().push(&e.position);
    }
    for (key, positions) in &by_key {
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "key {key:?} out of order");
    }
    let mut sorted: Vec<&ChangeEvent> = decoded.iter().map(|(_, e)| e).collect();
    sorted.sort_by(|a, b| a.position.cmp(&b.position));
    assert_eq!(sorted.len(), changes.len());
    for (got, want) in sorted.iter().zip(&changes) {
        assert_eq!((got.op, &got.position, &got.before, &got.after), (want.op, &want.position, &want.before, &want.after));
    }

    // Commit about half of every shard; a new consumer of the group resumes after it, and
    // a checkpointed position wins over the committed one.
    let half: Vec<(String, u64)> = per_shard.iter().map(|(s, seqs)| (s.clone(), seqs.len() as u64 / 2)).collect();
    consumer.commit(half.iter().map(|(s, n)| (s.as_str(), *n))).await.unwrap();
    let committed = consumer.committed().await.unwrap();
    for (s, n) in &half {
        assert_eq!(committed[s], *n as i64 - 1);
    }
    let sub = consumer.subscription_id().to_string();
    drop(consumer);
    let mut resumed = ShardConsumer::open(c.clone(), ConsumerOptions::new("cdc_test", "events", "file-sink-group"), [("0", 1u64)]).await.unwrap();
    assert_eq!(resumed.subscription_id(), sub, "the group name finds its subscription again");
    for (shard, start) in resumed.start_positions() {
        let want = if &*shard == "0" { StartFrom::Checkpoint(1) } else { StartFrom::Committed(per_shard[&*shard].len() as u64 / 2) };
        assert_eq!(start, want, "shard {shard}");
    }
    let rest: usize = per_shard.iter().map(|(s, seqs)| if s == "0" { seqs.len() - 1 } else { seqs.len() - seqs.len() / 2 }).sum();
    let again = poll_until(&mut resumed, rest).await;
    assert_eq!(again.len(), rest);
    assert_eq!(again.iter().filter(|r| &*r.shard == "0").map(|r| r.sequence).min(), Some(1));

    // The end of a shard is a valid start too (nothing new to read).
    let tail: Vec<(String, u64)> = per_shard.iter().map(|(s, seqs)| (s.clone(), seqs.len() as u64)).collect();
    let mut at_tail = ShardConsumer::open(c.clone(), ConsumerOptions::new("cdc_test", "events", "other-group"), tail.iter().map(|(s, n)| (s.as_str(), *n))).await.unwrap();
    assert!(at_tail.poll().await.unwrap().is_empty());
    assert_ne!(at_tail.subscription_id(), sub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_created_only_when_allowed() {
    let server = start_server().await;
    let strict = PublisherOptions::new("cdc_test", "absent").with_topic_policy(TopicPolicy::MustExist);
    match DatahubPublisher::connect(client(&server.endpoint), strict).await {
        Err(PublishError::Topic(TopicError::Missing { topic, code, .. })) => {
            assert_eq!(topic, "cdc_test.absent");
            assert_eq!(code, "NoSuchProject");
        }
        other => panic!("expected a missing-topic error, got {other:?}"),
    }
    let created = PublisherOptions::new("cdc_test", "two").with_topic_policy(TopicPolicy::CreateIfLocal { shard_count: 2, lifecycle_days: 1 });
    let publisher = DatahubPublisher::connect(client(&server.endpoint), created).await.unwrap();
    let c = client(&server.endpoint);
    assert_eq!(c.list_shards("cdc_test", "two").await.unwrap().len(), 2);
    assert_eq!(c.get_cursor("cdc_test", "two", "1", CursorType::Oldest).await.unwrap().sequence, 0);
    drop(publisher);
    // Connecting again to the existing topic is fine (two processes starting together).
    DatahubPublisher::connect(client(&server.endpoint), PublisherOptions::new("cdc_test", "two")).await.unwrap();
}
