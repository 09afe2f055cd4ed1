//! How the publisher handles PutRecords answers that reject some records, against a fake
//! server that rejects what each test tells it to: only the rejected records are sent again
//! and each shard's records land in order; a rejection the server could only have made by
//! accepting a later record of the same shard is refused (re-sending would reorder the
//! shard); permanent rejections and exhausted retries are errors naming the first record.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use cdc_datahub::{Compression, DatahubClient, DatahubPublisher, PublishError, PublisherOptions, RecordData, TopicPolicy};
use cdc_event::{ChangeEvent, ColumnDef, ColumnType, Event, Op, Position, Row, ServerFlavor, TableId, TableSchema, Value};
use serde_json::{json, Value as JsonValue};

/// Decides, per request (0-based) and record, whether to reject it: `Some(code)`.
type Rule = Box<dyn Fn(usize, &str, usize) -> Option<&'static str> + Send + Sync>;

#[derive(Clone)]
struct Fake {
    rule: Arc<Rule>,
    requests: Arc<Mutex<usize>>,
    /// Accepted payloads per shard, in arrival order.
    shards: Arc<Mutex<BTreeMap<String, Vec<Vec<u8>>>>>,
    /// Records per request, for checking what was re-sent.
    sent: Arc<Mutex<Vec<usize>>>,
}

async fn put(State(fake): State<Fake>, Json(body): Json<JsonValue>) -> Json<JsonValue> {
    let n = {
        let mut r = fake.requests.lock().unwrap();
        *r += 1;
        *r - 1
    };
    let records = body["Records"].as_array().cloned().unwrap_or_default();
    fake.sent.lock().unwrap().push(records.len());
    let mut failed = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let shard = r["ShardId"].as_str().unwrap_or_default().to_string();
        match (fake.rule)(n, &shard, i) {
            Some(code) => failed.push(json!({"Index": i, "ErrorCode": code, "ErrorMessage": "rejected by the test"})),
            None => {
                let RecordData::Blob(bytes) = RecordData::from_json(&r["Data"]).unwrap() else { panic!("BLOB") };
                fake.shards.lock().unwrap().entry(shard).or_default().push(bytes);
            }
        }
    }
    Json(json!({"FailedRecordCount": failed.len(), "FailedRecords": failed}))
}

async fn start(rule: Rule) -> (String, Fake) {
    let fake = Fake { rule: Arc::new(rule), requests: Arc::default(), shards: Arc::default(), sent: Arc::default() };
    let app = Router::new()
        .route("/projects/p/topics/t", get(|| async { Json(json!({"RecordType": "BLOB", "ShardCount": 2})) }))
        .route(
            "/projects/p/topics/t/shards",
            get(|| async {
                Json(json!({"Shards": [
                    {"ShardId": "0", "State": "ACTIVE", "BeginHashKey": "00000000000000000000000000000000", "EndHashKey": "80000000000000000000000000000000"},
                    {"ShardId": "1", "State": "ACTIVE", "BeginHashKey": "80000000000000000000000000000000", "EndHashKey": "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"}]}))
            })
            .post(put),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), fake)
}

async fn publisher(endpoint: &str, retries: u32) -> DatahubPublisher {
    let client = DatahubClient::builder(endpoint).with_compression(Compression::None).with_max_retries(0).build().unwrap();
    let options = PublisherOptions::new("p", "t")
        .with_topic_policy(TopicPolicy::MustExist)
        .with_max_retries(retries)
        .with_backoff(Duration::from_millis(1), Duration::from_millis(5));
    DatahubPublisher::connect(Arc::new(client), options).await.unwrap()
}

fn events(n: i64) -> Vec<Event> {
    let schema = Arc::new(TableSchema {
        table: TableId::new("shop", "items"),
        version: 1,
        columns: vec![ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false)],
        primary_key: vec!["id".into()],
    });
    (0..n)
        .map(|id| {
            Event::Change(ChangeEvent {
                op: Op::Insert,
                schema: schema.clone(),
                before: None,
                after: Some(Row::new(vec![Value::Int(id)])),
                position: Position::stream(ServerFlavor::MariaDb, "binlog.000001", 1000 + id as u64),
                commit_ts_ms: 0,
                tx_id: None,
                source_name: Arc::from("db"),
                server_id: 1,
            })
        })
        .collect()
}

fn positions(payloads: &[Vec<u8>]) -> Vec<u64> {
    payloads.iter().map(|p| cdc_event::debezium::from_slice(p).unwrap().position.offset).collect()
}

#[tokio::test]
async fn only_rejected_records_are_sent_again_and_each_shard_stays_in_order() {
    // Request 0: shard 1 is throttled (all its records rejected); request 1: shard 1's first
    // record rejected again, with everything after it in that shard; then all accepted.
    let (endpoint, fake) = start(Box::new(|n, shard, i| match (n, shard) {
        (0, "1") => Some("LimitExceeded"),
        (1, "1") if i >= 1 => Some("InternalServerError"),
        _ => None,
    }))
    .await;
    let mut p = publisher(&endpoint, 3).await;
    let events = events(40);
    p.publish_events(&events).await.unwrap();
    let shards = fake.shards.lock().unwrap().clone();
    let in_shard = |s: &str| events.iter().filter(|e| p.shard_for(e) == s).map(|e| e.position().offset).collect::<Vec<_>>();
    assert!(!in_shard("0").is_empty() && !in_shard("1").is_empty());
    assert_eq!(positions(&shards["0"]), in_shard("0"));
    assert_eq!(positions(&shards["1"]), in_shard("1"), "shard 1 in order, each record once");
    let sent = fake.sent.lock().unwrap().clone();
    assert_eq!(sent[0], 40);
    assert_eq!(sent[1], in_shard("1").len(), "the second request holds only the rejected records");
    assert_eq!(sent[2], in_shard("1").len() - 1);
    assert_eq!(p.stats().records, 40);
}

#[tokio::test]
async fn a_rejection_before_an_accepted_record_of_the_same_shard_is_refused() {
    // Rejects the first record of shard 0 only: a later shard-0 record was accepted.
    let (endpoint, fake) = start(Box::new(|n, shard, i| (n == 0 && shard == "0" && i == 0).then_some("LimitExceeded"))).await;
    let mut p = publisher(&endpoint, 3).await;
    let events = events(40);
    // Make sure record 0 goes to shard 0 with other shard-0 records after it.
    let first_shard = p.shard_for(&events[0]).to_string();
    let events: Vec<Event> = events.into_iter().skip_while(|e| p.shard_for(e) != "0").collect();
    assert!(events.iter().skip(1).any(|e| p.shard_for(e) == "0"), "first was {first_shard}");
    match p.publish_events(&events).await {
        Err(PublishError::OrderBroken { shard, .. }) => assert_eq!(shard, "0"),
        other => panic!("expected OrderBroken, got {other:?}"),
    }
    assert_eq!(fake.sent.lock().unwrap().len(), 1, "nothing re-sent");
}

#[tokio::test]
async fn permanent_rejections_and_exhausted_retries_fail_naming_the_record() {
    let (endpoint, _) = start(Box::new(|_, shard, _| (shard == "1").then_some("MalformedRecord"))).await;
    let mut p = publisher(&endpoint, 3).await;
    let err = p.publish_events(&events(10)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PublishError::Rejected { attempts: 1, .. }), "{text}");
    assert!(text.contains("shard 1") && text.contains("MalformedRecord") && text.contains("binlog.000001:"), "{text}");

    let (endpoint, fake) = start(Box::new(|_, shard, _| (shard == "1").then_some("LimitExceeded"))).await;
    let mut p = publisher(&endpoint, 2).await;
    let err = p.publish_events(&events(10)).await.unwrap_err();
    assert!(matches!(err, PublishError::Rejected { attempts: 3, .. }), "{err}");
    assert_eq!(fake.sent.lock().unwrap().len(), 3, "first attempt + 2 retries");
}
