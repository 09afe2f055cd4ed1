//! Our Rust client against the real server, and interoperating with pydatahub: Rust writes,
//! pydatahub reads; pydatahub writes, Rust reads. Also signing, errors and offsets.

mod common;

use cdc_datahub::client::{CursorType, Protocol, PutRecord, Record, RecordType, TopicSpec};
use cdc_datahub::{Compression, DatahubClient, RecordData};
use common::{require_pydatahub, run_python, TestServer};

const SCHEMA: &str = r#"{"fields": [{"name": "id", "type": "bigint", "comment": ""}, {"name": "name", "type": "string", "comment": ""}, {"name": "score", "type": "double", "comment": ""}]}"#;

fn tuple_spec(shards: u32) -> TopicSpec {
    TopicSpec { shard_count: shards, lifecycle: 3, record_type: RecordType::Tuple, record_schema: Some(SCHEMA.into()), comment: "t".into(), expand_mode: None }
}

/// The values interop.py uses, in DataHub's JSON string forms (DOUBLE as `%.16e`-ish; we
/// compare numerically on the Python side, so any parseable form works).
fn values(i: u64) -> Vec<Option<String>> {
    vec![Some(i.to_string()), if i % 10 == 3 { None } else { Some(format!("r{i}")) }, Some(format!("{:e}", i as f64 / 4.0))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_writes_pydatahub_reads_and_back() {
    require_pydatahub();
    let server = TestServer::start(None).await;
    let client = DatahubClient::builder(server.endpoint()).with_credentials("id", "key").build().unwrap();
    client.create_project("interop", "i").await.unwrap();
    client.create_topic("interop", "from_rust", &tuple_spec(1)).await.unwrap();
    client.create_topic("interop", "from_py", &tuple_spec(1)).await.unwrap();

    const N: u64 = 250;
    let records: Vec<PutRecord> = (0..N).map(|i| PutRecord::new(RecordData::Tuple(values(i))).with_shard("0").with_attribute("from", "rust")).collect();
    assert!(client.put_records("interop", "from_rust", &records).await.unwrap().is_empty());
    let (ok, out) = run_python("interop.py", vec![server.endpoint(), "read".into(), "interop".into(), "from_rust".into(), N.to_string()]).await;
    assert!(ok && out.contains(&format!("read {N}")), "pydatahub could not read what Rust wrote:\n{out}");

    let (ok, out) = run_python("interop.py", vec![server.endpoint(), "write".into(), "interop".into(), "from_py".into(), N.to_string()]).await;
    assert!(ok, "pydatahub write failed:\n{out}");
    let mut cursor = client.get_cursor("interop", "from_py", "0", CursorType::Oldest).await.unwrap().cursor;
    let mut got = Vec::new();
    loop {
        let page = client.get_records("interop", "from_py", "0", &cursor, 100).await.unwrap();
        if page.records.is_empty() {
            break;
        }
        cursor = page.next_cursor;
        got.extend(page.records);
    }
    assert_eq!(got.len() as u64, N);
    for (i, r) in got.iter().enumerate() {
        let RecordData::Tuple(v) = &r.data else { panic!("record {i} is not TUPLE") };
        assert_eq!(r.sequence, i as i64);
        assert_eq!(v[0].as_deref(), Some(i.to_string().as_str()));
        assert_eq!(v[1], values(i as u64)[1]);
        // pydatahub writes DOUBLE as '%.16e' with zeros before the exponent stripped.
        let score: f64 = v[2].as_deref().unwrap().parse().unwrap();
        assert_eq!(score, i as f64 / 4.0);
        assert_eq!(r.attributes.get("from").map(String::as_str), Some("pydatahub"));
    }
    server.stop().await;
}

/// Every record from OLDEST, paging with `limit`.
async fn read_all(client: &DatahubClient, project: &str, topic: &str, limit: u32) -> Vec<Record> {
    let mut cursor = client.get_cursor(project, topic, "0", CursorType::Oldest).await.unwrap().cursor;
    let mut got = Vec::new();
    loop {
        let page = client.get_records(project, topic, "0", &cursor, limit).await.unwrap();
        if page.records.is_empty() {
            return got;
        }
        cursor = page.next_cursor;
        got.extend(page.records);
    }
}

/// Batch mode both ways: our client writes batches (with nulls, which our encoder supports)
/// and pydatahub reads them in batch mode; pydatahub writes batches and our client reads them
/// in batch mode (and in PB mode, where each record has its own sequence).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mode_rust_writes_pydatahub_reads_and_back() {
    require_pydatahub();
    let server = TestServer::start(None).await;
    let client = DatahubClient::builder(server.endpoint()).with_protocol(Protocol::Batch).with_compression(Compression::Lz4).build().unwrap();
    client.create_project("binterop", "i").await.unwrap();
    client.create_topic("binterop", "from_rust", &tuple_spec(1)).await.unwrap();
    client.create_topic("binterop", "from_py", &tuple_spec(1)).await.unwrap();

    const N: u64 = 250;
    const BATCH: usize = 100;
    let records: Vec<PutRecord> = (0..N).map(|i| PutRecord::new(RecordData::Tuple(values(i))).with_attribute("from", "rust")).collect();
    for chunk in records.chunks(BATCH) {
        client.put_records_by_shard("binterop", "from_rust", "0", chunk).await.unwrap();
    }
    let (ok, out) = run_python("interop.py", vec![server.endpoint(), "read".into(), "binterop".into(), "from_rust".into(), N.to_string(), "batch".into()]).await;
    assert!(ok && out.contains(&format!("read {N} in 3 batches")), "pydatahub could not read the batches Rust wrote:\n{out}");
    // And what was written in batches reads back in JSON mode record by record.
    let (ok, out) = run_python("interop.py", vec![server.endpoint(), "read".into(), "binterop".into(), "from_rust".into(), N.to_string(), "json".into()]).await;
    assert!(ok && out.contains(&format!("read {N} in {N} batches")), "pydatahub JSON could not read the batches Rust wrote:\n{out}");

    let (ok, out) = run_python("interop.py", vec![server.endpoint(), "write".into(), "binterop".into(), "from_py".into(), N.to_string(), "batch".into()]).await;
    assert!(ok, "pydatahub batch write failed:\n{out}");
    let got = read_all(&client, "binterop", "from_py", 1000).await;
    assert_eq!(got.len() as u64, N);
    for (i, r) in got.iter().enumerate() {
        // pydatahub wrote batches of 100: each batch's records share its first sequence.
        assert_eq!((r.sequence, r.batch_index), ((i - i % BATCH) as i64, (i % BATCH) as u32), "record {i}");
        let RecordData::Tuple(v) = &r.data else { panic!("record {i} is not TUPLE") };
        assert_eq!(v[0].as_deref(), Some(i.to_string().as_str()));
        assert_eq!(v[1].as_deref(), Some(format!("r{i}").as_str()), "pydatahub's batch writer has no nulls");
        assert_eq!(v[2].as_deref().unwrap().parse::<f64>().unwrap(), i as f64 / 4.0);
        assert_eq!(r.attributes.get("from").map(String::as_str), Some("pydatahub"));
    }
    let pb = DatahubClient::builder(server.endpoint()).with_protocol(Protocol::Pb).build().unwrap();
    let by_record = read_all(&pb, "binterop", "from_py", 7).await;
    assert_eq!(by_record.iter().map(|r| r.sequence).collect::<Vec<_>>(), (0..N as i64).collect::<Vec<_>>());
    assert_eq!(by_record.iter().map(|r| &r.data).collect::<Vec<_>>(), got.iter().map(|r| &r.data).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_api_errors_offsets_and_signing() {
    let server = TestServer::start(Some(("testid", "testkey"))).await;
    for compression in [Compression::None, Compression::Lz4, Compression::Zlib, Compression::Deflate] {
        let client = DatahubClient::builder(server.endpoint()).with_credentials("testid", "testkey").with_compression(compression).build().unwrap();
        let project = format!("p_{}", if compression.name().is_empty() { "none" } else { compression.name() });
        client.create_project(&project, "c").await.unwrap();
        assert!(client.list_projects().await.unwrap().contains(&project));
        assert_eq!(client.get_project(&project).await.unwrap().comment, "c");
        let blob = TopicSpec { record_type: RecordType::Blob, record_schema: None, ..tuple_spec(2) };
        client.create_topic(&project, "b", &blob).await.unwrap();
        assert_eq!(client.list_shards(&project, "b").await.unwrap().len(), 2);
        let recs: Vec<PutRecord> = (0..100u8).map(|i| PutRecord::new(RecordData::Blob(vec![i; 300])).with_shard("1")).collect();
        assert!(client.put_records(&project, "b", &recs).await.unwrap().is_empty());
        let c = client.get_cursor(&project, "b", "1", CursorType::Sequence(40)).await.unwrap();
        let page = client.get_records(&project, "b", "1", &c.cursor, 1000).await.unwrap();
        assert_eq!(page.start_sequence, 40);
        assert_eq!(page.records.len(), 60);
        assert_eq!(page.records[0].data, RecordData::Blob(vec![40; 300]));
        let latest = client.get_cursor(&project, "b", "1", CursorType::Latest).await.unwrap();
        assert_eq!(latest.sequence, 99);
        let t = client.get_cursor(&project, "b", "1", CursorType::SystemTime(latest.record_time)).await.unwrap();
        assert!(t.sequence <= 99);

        // Errors are typed and classified.
        let e = client.get_project("no_such").await.unwrap_err();
        assert_eq!(e.code(), Some("NoSuchProject"));
        assert!(!e.is_retryable());
        let e = client.get_cursor(&project, "b", "1", CursorType::Sequence(500)).await.unwrap_err();
        assert_eq!(e.code(), Some("SeekOutOfRange"));
        let e = client.create_project(&project, "dup").await.unwrap_err();
        assert_eq!(e.code(), Some("ProjectAlreadyExist"));

        // Offsets: open, commit, read back; a stale session is refused.
        let sub = client.create_subscription(&project, "b", "s").await.unwrap();
        let mut opened = client.open_offsets(&project, "b", &sub, &["0", "1"]).await.unwrap();
        let o = opened.get_mut("1").unwrap();
        assert_eq!(o.sequence, -1);
        o.sequence = 41;
        o.timestamp = 7;
        client.commit_offsets(&project, "b", &sub, &[("1".to_string(), o.clone())].into()).await.unwrap();
        assert_eq!(client.get_offsets(&project, "b", &sub, &["1"]).await.unwrap()["1"].sequence, 41);
        client.open_offsets(&project, "b", &sub, &["1"]).await.unwrap();
        let e = client.commit_offsets(&project, "b", &sub, &[("1".to_string(), o.clone())].into()).await.unwrap_err();
        assert_eq!(e.code(), Some("OffsetSessionChanged"));

        client.delete_topic(&project, "b").await.unwrap();
        client.delete_project(&project).await.unwrap();
    }
    // A wrong key is refused with Unauthorized, and not retried.
    let bad = DatahubClient::builder(server.endpoint()).with_credentials("testid", "wrong").build().unwrap();
    let e = bad.list_projects().await.unwrap_err();
    assert_eq!(e.code(), Some("Unauthorized"));
    assert!(!e.is_retryable());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_are_retried_then_reported() {
    // Bind then drop a listener: the port refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = DatahubClient::builder(format!("http://127.0.0.1:{port}"))
        .with_max_retries(2)
        .with_backoff(std::time::Duration::from_millis(1), std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    let e = client.list_projects().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("ListProject"), "{e}");
}
