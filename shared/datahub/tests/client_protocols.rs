//! Our client in each protocol (JSON, PB, batch) against the real server: what any protocol
//! wrote, every protocol reads back; split and merge as the client sees them; a corrupted
//! batch is refused by its CRC.

// Only the server half of the helpers: no Python here.
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;

use cdc_datahub::client::{CursorType, Protocol, PutRecord, Record, RecordType, TopicSpec};
use cdc_datahub::{Compression, DatahubClient, RecordData};
use common::TestServer;

const SCHEMA: &str = r#"{"fields": [{"name": "id", "type": "bigint", "comment": ""}, {"name": "name", "type": "string", "comment": ""}, {"name": "ok", "type": "boolean", "comment": ""}, {"name": "score", "type": "double", "comment": ""}]}"#;
const PROTOCOLS: [Protocol; 3] = [Protocol::Json, Protocol::Pb, Protocol::Batch];

fn spec(record_type: RecordType, shards: u32) -> TopicSpec {
    let record_schema = (record_type == RecordType::Tuple).then(|| SCHEMA.to_string());
    TopicSpec { shard_count: shards, lifecycle: 3, record_type, record_schema, comment: "t".into(), expand_mode: None }
}

fn client(endpoint: &str, protocol: Protocol, compression: Compression) -> DatahubClient {
    DatahubClient::builder(endpoint).with_protocol(protocol).with_compression(compression).with_max_retries(0).build().unwrap()
}

fn tuple(i: usize) -> RecordData {
    // Nulls in every column but the key; doubles in the forms pydatahub's JSON writer uses.
    let score = if i % 4 == 2 { None } else { Some(format!("{:.16e}", i as f64 * 0.1)) };
    RecordData::Tuple(vec![Some(i.to_string()), (i % 3 != 1).then(|| format!("name {i} ünïcode")), (i % 5 != 4).then(|| i.is_multiple_of(2).to_string()), score])
}

fn blob(i: usize) -> RecordData {
    RecordData::Blob((0..i as u8).chain(b"blob".iter().copied()).collect())
}

async fn read_all(c: &DatahubClient, project: &str, topic: &str, shard: &str, limit: u32) -> Vec<Record> {
    let mut cursor = c.get_cursor(project, topic, shard, CursorType::Oldest).await.unwrap().cursor;
    let mut got = Vec::new();
    loop {
        let page = c.get_records(project, topic, shard, &cursor, limit).await.unwrap();
        if page.records.is_empty() {
            return got;
        }
        cursor = page.next_cursor;
        got.extend(page.records);
    }
}

/// Values compared as the types say: doubles numerically (batch mode carries binary f64 and
/// answers its shortest text form), booleans and integers by value.
fn same_value(a: &RecordData, b: &RecordData) -> bool {
    match (a, b) {
        (RecordData::Tuple(x), RecordData::Tuple(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).enumerate().all(|(i, (p, q))| match (p, q) {
                    (Some(p), Some(q)) if i == 3 => p.parse::<f64>().ok() == q.parse::<f64>().ok(),
                    _ => p == q,
                })
        }
        _ => a == b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_reads_what_every_protocol_wrote() {
    const N: usize = 30;
    let server = TestServer::start(None).await;
    let admin = client(&server.endpoint(), Protocol::Json, Compression::None);
    admin.create_project("protocols", "p").await.unwrap();
    for compression in [Compression::None, Compression::Lz4, Compression::Zlib, Compression::Deflate] {
        for writer in PROTOCOLS {
            let (t, b) = (format!("t_{writer:?}_{compression:?}"), format!("b_{writer:?}_{compression:?}"));
            admin.create_topic("protocols", &t, &spec(RecordType::Tuple, 2)).await.unwrap();
            admin.create_topic("protocols", &b, &spec(RecordType::Blob, 2)).await.unwrap();
            let w = client(&server.endpoint(), writer, compression);
            for (topic, make) in [(&t, tuple as fn(usize) -> RecordData), (&b, blob)] {
                let records: Vec<PutRecord> = (0..N).map(|i| PutRecord::new(make(i)).with_shard("1").with_attribute("i", i.to_string())).collect();
                // Two requests, so batch mode writes two batches (10 + 20 records).
                for chunk in [&records[..10], &records[10..]] {
                    assert!(w.put_records("protocols", topic, chunk).await.unwrap().is_empty(), "{writer:?}/{compression:?}");
                }
                for reader in PROTOCOLS {
                    let ctx = format!("{topic}: written {writer:?}, read {reader:?}, {compression:?}");
                    let got = read_all(&client(&server.endpoint(), reader, compression), "protocols", topic, "1", 25).await;
                    assert_eq!(got.len(), N, "{ctx}");
                    for (i, r) in got.iter().enumerate() {
                        assert!(same_value(&r.data, &make(i)), "{ctx}: record {i}: {:?} vs {:?}", r.data, make(i));
                        assert_eq!(r.attributes, BTreeMap::from([("i".to_string(), i.to_string())]), "{ctx}");
                        assert_eq!(r.sequence + r.batch_index as i64, i as i64, "{ctx}: record {i}");
                        if reader != Protocol::Batch {
                            assert_eq!(r.batch_index, 0, "{ctx}");
                        }
                    }
                    if reader == Protocol::Batch && writer == Protocol::Batch {
                        // Limit 25 over batches of 10 and 20: entries at 0 (10), 10 (15), 25 (5).
                        let firsts: Vec<i64> = got.iter().filter(|r| r.batch_index == 0).map(|r| r.sequence).collect();
                        assert_eq!(firsts, vec![0, 10, 25], "{ctx}");
                    }
                }
            }
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_puts_need_a_shard_and_values_that_fit_the_schema() {
    let server = TestServer::start(None).await;
    let c = client(&server.endpoint(), Protocol::Batch, Compression::Lz4);
    c.create_project("checks", "p").await.unwrap();
    c.create_topic("checks", "t", &spec(RecordType::Tuple, 1)).await.unwrap();
    let e = c.put_records("checks", "t", &[PutRecord::new(tuple(0))]).await.unwrap_err();
    assert!(e.to_string().contains("names no shard"), "{e}");
    let bad = RecordData::Tuple(vec![Some("x".into()), None, None, None]);
    let e = c.put_records_by_shard("checks", "t", "0", &[PutRecord::new(bad.clone())]).await.unwrap_err();
    assert!(e.to_string().contains("fits none"), "{e}");
    // The server checks types in every protocol, not only batch.
    for p in [Protocol::Json, Protocol::Pb] {
        let e = client(&server.endpoint(), p, Compression::None).put_records_by_shard("checks", "t", "0", &[PutRecord::new(bad.clone())]).await.unwrap_err();
        assert_eq!(e.code(), Some("MalformedRecord"), "{p:?}: {e}");
    }
    // A registered wider schema is used for records that fit it.
    let wider = r#"{"fields": [{"name": "id", "type": "bigint"}, {"name": "name", "type": "string"}, {"name": "ok", "type": "boolean"}, {"name": "score", "type": "double"}, {"name": "n", "type": "integer"}]}"#;
    assert_eq!(c.register_schema("checks", "t", wider).await.unwrap(), 1);
    let five = RecordData::Tuple(vec![Some("1".into()), None, Some("true".into()), Some("0.5".into()), Some("-3".into())]);
    c.put_records_by_shard("checks", "t", "0", &[PutRecord::new(tuple(0)), PutRecord::new(five.clone())]).await.unwrap();
    let got = read_all(&c, "checks", "t", "0", 10).await;
    assert_eq!(got.len(), 2);
    assert!(same_value(&got[0].data, &tuple(0)), "{:?}", got[0].data);
    assert_eq!(got[1].data, five);
    assert_eq!(c.list_schemas("checks", "t").await.unwrap().iter().map(|v| v.version_id).collect::<Vec<_>>(), vec![0, 1]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_merge_and_the_end_of_a_closed_shard() {
    let server = TestServer::start(None).await;
    let c = client(&server.endpoint(), Protocol::Json, Compression::Lz4);
    let batch = client(&server.endpoint(), Protocol::Batch, Compression::Lz4);
    c.create_project("reshard", "p").await.unwrap();
    c.create_topic("reshard", "t", &spec(RecordType::Blob, 1)).await.unwrap();
    let recs = |n: usize, shard: &str| (0..n).map(|i| PutRecord::new(blob(i)).with_shard(shard)).collect::<Vec<_>>();
    assert!(c.put_records("reshard", "t", &recs(3, "0")).await.unwrap().is_empty());

    let new = c.split_shard("reshard", "t", "0", None).await.unwrap();
    assert_eq!(new.iter().map(|s| s.shard_id.as_str()).collect::<Vec<_>>(), vec!["1", "2"]);
    assert_eq!(new[0].end_hash_key, "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
    assert_eq!(new[0].end_hash_key, new[1].begin_hash_key);
    let shards = c.list_shards("reshard", "t").await.unwrap();
    assert_eq!(shards.iter().map(|s| (s.shard_id.as_str(), s.state.as_str())).collect::<Vec<_>>(), vec![("0", "CLOSED"), ("1", "ACTIVE"), ("2", "ACTIVE")]);
    assert!(shards[0].is_closed() && shards[0].closed_time.is_some() && shards[1].closed_time.is_none());
    assert_eq!(shards[1].parent_shard_ids, vec!["0"]);
    assert_eq!((shards[1].left_shard_id.as_deref(), shards[1].right_shard_id.as_deref()), (None, Some("2")));
    assert_eq!((shards[0].left_shard_id.as_deref(), shards[0].right_shard_id.as_deref()), (None, None));

    // The closed shard refuses writes in every protocol...
    let failed = c.put_records("reshard", "t", &recs(2, "0")).await.unwrap();
    assert_eq!(failed.iter().map(|f| (f.index, f.code.as_str())).collect::<Vec<_>>(), vec![(0, "InvalidShardOperation"), (1, "InvalidShardOperation")]);
    let e = batch.put_records_by_shard("reshard", "t", "0", &recs(1, "0")).await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidShardOperation"), "{e}");
    // ... serves what it holds, then says it has ended (the service's InvalidShardOperation).
    for reader in [&c, &batch] {
        let cursor = reader.get_cursor("reshard", "t", "0", CursorType::Oldest).await.unwrap().cursor;
        let page = reader.get_records("reshard", "t", "0", &cursor, 100).await.unwrap();
        assert_eq!(page.records.len(), 3);
        let e = reader.get_records("reshard", "t", "0", &page.next_cursor, 100).await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidShardOperation"), "{e}");
        assert!(!e.is_retryable());
    }
    // Records without a shard go to ACTIVE shards only.
    let keyed: Vec<PutRecord> = (0..20).map(|i| PutRecord::new(blob(1)).with_partition_key(format!("k{i}"))).collect();
    assert!(c.put_records("reshard", "t", &keyed).await.unwrap().is_empty());

    let merged = c.merge_shard("reshard", "t", "2", "1").await.unwrap();
    assert_eq!((merged.shard_id.as_str(), merged.begin_hash_key.as_str(), merged.end_hash_key.as_str()), ("3", "00000000000000000000000000000000", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"));
    let shards = c.list_shards("reshard", "t").await.unwrap();
    assert_eq!(shards.iter().filter(|s| s.is_active()).map(|s| s.shard_id.as_str()).collect::<Vec<_>>(), vec!["3"]);
    assert_eq!(shards[3].parent_shard_ids, vec!["1", "2"]);
    assert_eq!(c.get_topic("reshard", "t").await.unwrap()["ShardCount"], 1);
    let e = c.merge_shard("reshard", "t", "0", "3").await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidShardOperation"), "{e}");
    let e = c.split_shard("reshard", "t", "3", Some("0")).await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameter"), "{e}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_offsets_carry_the_batch_index() {
    let server = TestServer::start(None).await;
    let c = client(&server.endpoint(), Protocol::Batch, Compression::None);
    c.create_project("offsets", "p").await.unwrap();
    c.create_topic("offsets", "t", &spec(RecordType::Blob, 1)).await.unwrap();
    let sub = c.create_subscription("offsets", "t", "s").await.unwrap();
    let mut opened = c.open_offsets("offsets", "t", &sub, &["0"]).await.unwrap();
    let o = opened.get_mut("0").unwrap();
    assert_eq!((o.sequence, o.batch_index), (-1, 0));
    (o.sequence, o.timestamp, o.batch_index) = (10, 77, 4);
    c.commit_offsets("offsets", "t", &sub, &opened).await.unwrap();
    let got = &c.get_offsets("offsets", "t", &sub, &["0"]).await.unwrap()["0"];
    assert_eq!((got.sequence, got.timestamp, got.batch_index), (10, 77, 4));
    server.stop().await;
}

/// A batch whose payload does not match its CRC32C is refused, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_bad_crc_is_refused() {
    use cdc_datahub::batch::{encode_batch, EncodeRecord};
    let server = TestServer::start(None).await;
    let c = client(&server.endpoint(), Protocol::Json, Compression::None);
    c.create_project("crc", "p").await.unwrap();
    c.create_topic("crc", "b", &spec(RecordType::Blob, 1)).await.unwrap();
    let data = blob(20);
    let mut batch = encode_batch(&[EncodeRecord { data: &data, schema: None, attributes: &[] }], Compression::None).unwrap();
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let body = cdc_datahub::codec::wrap_frame(&cdc_datahub::pb::encode_binary_records(&[batch]));
    // reqwest has rustls without a provider of its own; building our client above installed
    // ring as the process default, this makes it explicit.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new()
        .post(format!("{}/projects/crc/topics/b/shards/0", server.endpoint()))
        .header("content-type", "application/x-binary")
        .header("x-datahub-request-action", "pub")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["ErrorCode"], "MalformedRecord");
    assert!(v["ErrorMessage"].as_str().unwrap().contains("CRC32C mismatch"), "{v}");
    let latest = c.get_cursor("crc", "b", "0", CursorType::Latest).await.unwrap();
    assert_eq!(latest.sequence, 0, "nothing was written");
    server.stop().await;
}
