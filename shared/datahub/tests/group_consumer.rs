//! [`GroupConsumer`] against our server in process: members share the shards, commits carry
//! only what was acknowledged, a leaving member's shards resume after its last commit, and a
//! split shard is read to its end (and reported) before its children.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_datahub::client::{PutRecord, RecordType, TopicSpec};
use cdc_datahub::{ConsumedRecord, ConsumerOptions, DatahubClient, GroupConsumer, GroupConsumerOptions, RecordData, TopicPolicy};

const PROJECT: &str = "groups";
const GROUP: &str = "members";
const DEADLINE: Duration = Duration::from_secs(30);

async fn server(dir: &std::path::Path) -> String {
    let log = Arc::new(cdc_datalog::Datalog::open(dir, cdc_datalog::LogOptions::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(cdc_datahub::serve(listener, cdc_datahub::ServerConfig::new(log), std::future::pending()));
    format!("http://{addr}")
}

async fn topic(client: &DatahubClient, topic: &str, shards: u32) {
    let _ = client.create_project(PROJECT, "").await;
    let spec = TopicSpec { shard_count: shards, lifecycle: 1, record_type: RecordType::Blob, comment: String::new(), record_schema: None, expand_mode: None };
    client.create_topic(PROJECT, topic, &spec).await.unwrap();
}

async fn put(client: &DatahubClient, topic: &str, shard: &str, ids: std::ops::Range<u32>) {
    let puts: Vec<PutRecord> = ids.map(|i| PutRecord::new(RecordData::Blob(format!("{shard}:{i}").into_bytes())).with_shard(shard)).collect();
    assert!(client.put_records(PROJECT, topic, &puts).await.unwrap().is_empty());
}

async fn member(client: &Arc<DatahubClient>, topic: &str) -> GroupConsumer {
    let base = ConsumerOptions::new(PROJECT, topic, GROUP).with_topic_policy(TopicPolicy::MustExist);
    GroupConsumer::open(client.clone(), GroupConsumerOptions::new(base).with_heartbeat_interval(Duration::from_millis(100))).await.unwrap()
}

/// Polls every member (keeping what they read) until `done` holds.
async fn drive(members: &mut [&mut GroupConsumer], read: &mut Vec<Vec<ConsumedRecord>>, what: &str, done: impl Fn(&[&mut GroupConsumer], &[Vec<ConsumedRecord>]) -> bool) {
    read.resize_with(members.len(), Vec::new);
    let deadline = Instant::now() + DEADLINE;
    while !done(members, read) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for (i, m) in members.iter_mut().enumerate() {
            read[i].extend(m.poll().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn held(m: &GroupConsumer) -> BTreeSet<String> {
    m.held_shards().into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_shards_commit_only_acknowledged_records_and_take_over_after_leave() {
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(DatahubClient::builder(server(dir.path()).await).with_max_retries(0).build().unwrap());
    topic(&client, "four", 4).await;
    for shard in ["0", "1", "2", "3"] {
        put(&client, "four", shard, 0..10).await;
    }
    let mut a = member(&client, "four").await;
    let mut b = member(&client, "four").await;
    let all: BTreeSet<String> = ["0", "1", "2", "3"].map(String::from).into();
    let mut read = Vec::new();
    drive(&mut [&mut a, &mut b], &mut read, "two members with two shards each", |m, _| {
        let (ha, hb) = (held(m[0]), held(m[1]));
        ha.len() == 2 && hb.len() == 2 && ha.union(&hb).cloned().collect::<BTreeSet<_>>() == all
    })
    .await;
    assert!(a.membership().is_member() && b.membership().is_member());
    drive(&mut [&mut a, &mut b], &mut read, "every record read", |_, r| r.iter().map(Vec::len).sum::<usize>() >= 40).await;

    // A acknowledges sequences 0..=4 of its shards only: that, and nothing more, is committed.
    let a_shards = held(&a);
    for shard in &a_shards {
        assert!(a.ack(shard, 4, 0));
    }
    assert!(!a.ack("no-such-shard", 1, 0), "a shard not held cannot be acknowledged");
    a.commit().await.unwrap();
    let sub = a.subscription_id().to_string();
    let ids: Vec<&str> = all.iter().map(String::as_str).collect();
    let offsets = client.get_offsets(PROJECT, "four", &sub, &ids).await.unwrap();
    for (shard, o) in &offsets {
        let expected = if a_shards.contains(shard) { 4 } else { -1 };
        assert_eq!(o.sequence, expected, "shard {shard}");
    }

    // A leaves: B gets its shards and reads them from A's last commit + 1.
    a.close().await.unwrap();
    let mut after = Vec::new();
    drive(&mut [&mut b], &mut after, "B holding every shard", |m, _| held(m[0]) == all).await;
    drive(&mut [&mut b], &mut after, "B re-reading A's unacknowledged records", |_, r| r[0].iter().filter(|r| a_shards.contains(&*r.shard)).count() >= 10).await;
    for shard in &a_shards {
        let first = after[0].iter().find(|r| &*r.shard == shard).map(|r| r.sequence);
        assert_eq!(first, Some(5), "shard {shard} resumes after the committed offset");
    }
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_shard_is_read_to_its_end_and_reported_before_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = server(dir.path()).await;
    let client = Arc::new(DatahubClient::builder(&endpoint).with_max_retries(0).build().unwrap());
    topic(&client, "split", 1).await;
    put(&client, "split", "0", 0..5).await;
    // SplitShard (§1.1) with the server's default key: the middle of shard 0's range.
    // reqwest is built with rustls but no default crypto provider (cdc-datahub picks ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{endpoint}/projects/{PROJECT}/topics/split/shards"))
        .header("content-type", "application/json")
        .body(r#"{"Action": "split", "ShardId": "0"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let children: Vec<String> = answer["NewShards"].as_array().expect("NewShards").iter().map(|s| s["ShardId"].as_str().unwrap().to_string()).collect();
    assert_eq!(children.len(), 2, "{answer}");
    for child in &children {
        put(&client, "split", child, 0..3).await;
    }

    let mut m = member(&client, "split").await;
    let mut order = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    // Deliver-and-acknowledge loop, as the relay does.
    while order.len() < 11 {
        assert!(Instant::now() < deadline, "timed out; read so far: {order:?}");
        let got = m.poll().await.unwrap();
        for r in &got {
            order.push(format!("{}:{}", r.shard, r.sequence));
            assert!(m.ack(&r.shard, r.sequence, r.system_time));
        }
        m.commit().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let parent_last = order.iter().rposition(|r| r.starts_with("0:")).unwrap();
    let first_child = order.iter().position(|r| !r.starts_with("0:")).unwrap();
    assert!(parent_last < first_child, "the parent is read to its end before any child: {order:?}");
    assert_eq!(parent_last, 4);
    // The parent, read to its end and committed, was reported and left the assignment.
    let deadline = Instant::now() + DEADLINE;
    while m.membership().assigned.contains("0") {
        assert!(Instant::now() < deadline, "shard 0 is still assigned: {:?}", m.membership());
        let _ = m.poll().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held(&m), children.iter().cloned().collect());
    m.close().await.unwrap();
}
