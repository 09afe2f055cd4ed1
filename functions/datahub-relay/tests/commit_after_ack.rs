//! The commit-after-ack rule, in process: a datahub-local server (cdc-datahub over a
//! temporary log), a topic with records, and an HTTP target served here that answers 500 a
//! chosen number of times.
//!
//! 1. The target always fails: the relay retries `max_retries` times, stops with an error,
//!    and the subscription's offsets are not committed.
//! 2. "Restart" (a new group member on the same subscription): the target fails twice more,
//!    then acknowledges. Every record is delivered again, in order, and the offsets are
//!    committed up to the last one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use cdc_datahub::client::{PutRecord, RecordType, TopicSpec};
use cdc_datahub::{ConsumerOptions, DatahubClient, GroupConsumer, GroupConsumerOptions, RecordData, TopicPolicy};
use cdc_telemetry::Shutdown;
use datahub_relay::{BatchPolicy, HttpTarget, RelayError, RelayOptions, Target};

const PROJECT: &str = "relay_ack";
const TOPIC: &str = "events";
const GROUP: &str = "relay-group";
const RECORDS: usize = 10;
const DEADLINE: Duration = Duration::from_secs(60);

/// The test's HTTP target: fails while `failures_left` > 0, records every request.
#[derive(Default)]
struct Receiver {
    failures_left: AtomicUsize,
    attempts: AtomicUsize,
    /// Bodies of acknowledged requests.
    acked: Mutex<Vec<serde_json::Value>>,
}

async fn receive(State(r): State<Arc<Receiver>>, body: axum::body::Bytes) -> StatusCode {
    r.attempts.fetch_add(1, Ordering::SeqCst);
    let fail = r.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    match serde_json::from_slice(&body) {
        Ok(v) => {
            r.acked.lock().unwrap().push(v);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn serve_target(receiver: Arc<Receiver>) -> String {
    let app = axum::Router::new().route("/batches", axum::routing::post(receive)).with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/batches")
}

async fn serve_datahub(dir: &std::path::Path) -> String {
    let log = Arc::new(cdc_datalog::Datalog::open(dir, cdc_datalog::LogOptions::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(cdc_datahub::serve(listener, cdc_datahub::ServerConfig::new(log), std::future::pending()));
    format!("http://{addr}")
}

fn options() -> RelayOptions {
    RelayOptions {
        project: PROJECT.into(),
        topic: TOPIC.into(),
        batch: BatchPolicy { max_records: 4, max_bytes: 1 << 20, linger: Duration::from_millis(50) },
        max_retries: 2,
        retry_backoff: Duration::from_millis(10),
        idle_wait: Duration::from_millis(50),
    }
}

async fn member(client: &Arc<DatahubClient>) -> GroupConsumer {
    let base = ConsumerOptions::new(PROJECT, TOPIC, GROUP).with_topic_policy(TopicPolicy::MustExist);
    GroupConsumer::open(client.clone(), GroupConsumerOptions::new(base)).await.unwrap()
}

async fn committed(client: &DatahubClient, sub: &str) -> BTreeMap<String, i64> {
    client.get_offsets(PROJECT, TOPIC, sub, &["0"]).await.unwrap().into_iter().map(|(k, o)| (k, o.sequence)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_committed_only_after_the_target_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = serve_datahub(dir.path()).await;
    let client = Arc::new(DatahubClient::builder(&endpoint).with_max_retries(0).build().unwrap());
    client.create_project(PROJECT, "").await.unwrap();
    let spec = TopicSpec { shard_count: 1, lifecycle: 1, record_type: RecordType::Blob, comment: String::new(), record_schema: None, expand_mode: None };
    client.create_topic(PROJECT, TOPIC, &spec).await.unwrap();
    let puts: Vec<PutRecord> = (0..RECORDS).map(|i| PutRecord::new(RecordData::Blob(format!("{{\"id\":{i}}}").into_bytes())).with_shard("0")).collect();
    assert!(client.put_records(PROJECT, TOPIC, &puts).await.unwrap().is_empty());

    let receiver = Arc::new(Receiver::default());
    let url = serve_target(receiver.clone()).await;
    let target = Target::Http(HttpTarget::new(url, Duration::from_secs(5)).unwrap());

    // 1. A target that never acknowledges: retried, then the relay stops; nothing committed.
    receiver.failures_left.store(usize::MAX, Ordering::SeqCst);
    let mut consumer = member(&client).await;
    let sub = consumer.subscription_id().to_string();
    let shutdown = Shutdown::new();
    let failed = tokio::time::timeout(DEADLINE, datahub_relay::run(&mut consumer, &target, &options(), None, &shutdown)).await.expect("the relay gives up in time");
    match failed {
        Err(RelayError::Delivery { attempts, shard, first, .. }) => {
            assert_eq!(attempts, 3, "one attempt and max_retries=2 retries");
            assert_eq!((shard.as_str(), first), ("0", 0));
        }
        other => panic!("expected a delivery failure, got {other:?}"),
    }
    assert_eq!(receiver.attempts.load(Ordering::SeqCst), 3);
    assert!(receiver.acked.lock().unwrap().is_empty());
    consumer.close().await.unwrap();
    assert_eq!(committed(&client, &sub).await, BTreeMap::from([("0".to_string(), -1)]), "no offset committed for unacknowledged records");

    // 2. Restart: two more failures (retried), then acknowledgements; everything re-delivered.
    receiver.failures_left.store(2, Ordering::SeqCst);
    let mut consumer = member(&client).await;
    let shutdown = Shutdown::new();
    let stopper = {
        let (receiver, shutdown) = (receiver.clone(), shutdown.clone());
        tokio::spawn(async move {
            while delivered(&receiver).len() < RECORDS {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            shutdown.trigger();
        })
    };
    let stats = tokio::time::timeout(DEADLINE, datahub_relay::run(&mut consumer, &target, &options(), None, &shutdown))
        .await
        .expect("every record is delivered in time")
        .expect("the relay stops cleanly");
    stopper.await.unwrap();
    consumer.close().await.unwrap();
    assert_eq!(stats.records as usize, RECORDS);
    let ids = delivered(&receiver);
    assert_eq!(ids, (0..RECORDS as i64).collect::<Vec<_>>(), "re-delivered in order, once each after the restart");
    for batch in receiver.acked.lock().unwrap().iter() {
        assert_eq!(batch["topic"], TOPIC);
        assert_eq!(batch["shard"], "0");
        let first = batch["records"][0]["sequence"].as_i64().unwrap();
        assert_eq!(batch["firstSequence"].as_i64(), Some(first));
    }
    assert_eq!(committed(&client, &sub).await, BTreeMap::from([("0".to_string(), RECORDS as i64 - 1)]));
}

/// The `id`s of the acknowledged records, in delivery order.
fn delivered(r: &Receiver) -> Vec<i64> {
    r.acked
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| b["records"].as_array().cloned().unwrap_or_default())
        .filter_map(|rec| rec["data"]["id"].as_i64())
        .collect()
}
