//! Both server-less buses keep every published event, in order; the JSON-lines file holds
//! Debezium envelopes that decode back to the same events.

use std::sync::Arc;

use cdc_bus::{JsonLinesBus, MemoryBus, Publisher};
use cdc_event::*;

fn change(id: i64, offset: u64) -> Event {
    let schema = Arc::new(TableSchema {
        table: TableId::new("shop", "orders"),
        version: 1,
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
            ColumnDef::new("note", ColumnType::Text { size: LobSize::Regular, charset: "utf8mb4".into() }, true),
        ],
        primary_key: vec!["id".into()],
    });
    Event::Change(ChangeEvent {
        op: Op::Insert,
        schema,
        before: None,
        after: Some(Row::new(vec![Value::Int(id), Value::Text(format!("row {id} 🦀"))])),
        position: Position::stream(ServerFlavor::MariaDb, "binlog.000001", offset),
        commit_ts_ms: 1_700_000_000_000 + id,
        tx_id: Some(format!("0-1-{id}")),
        source_name: Arc::from("test"),
        server_id: 1,
    })
}

fn heartbeat(offset: u64) -> Event {
    Event::Heartbeat(HeartbeatEvent {
        position: Position::stream(ServerFlavor::MariaDb, "binlog.000001", offset),
        ts_ms: 1_700_000_000_999,
        source_name: Arc::from("test"),
    })
}

#[tokio::test]
async fn memory_bus_keeps_batches_in_order_across_clones() {
    let mut bus = MemoryBus::new();
    let reader = bus.clone();
    bus.publish(&[change(1, 100), change(2, 200)]).await.unwrap();
    bus.publish(&[heartbeat(300), change(3, 400)]).await.unwrap();
    let offsets: Vec<u64> = reader.events().iter().map(|e| e.position().offset).collect();
    assert_eq!(offsets, [100, 200, 300, 400]);
}

#[tokio::test]
async fn json_lines_bus_appends_durably_and_reads_back_the_same_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let written = [change(1, 100), heartbeat(150), change(2, 200)];
    {
        let mut bus = JsonLinesBus::open(&path).unwrap();
        bus.publish(&written[..2]).await.unwrap();
    }
    // Reopening appends rather than truncating.
    let mut bus = JsonLinesBus::open(&path).unwrap();
    bus.publish(&written[2..]).await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().nth(1).unwrap().starts_with("{\"heartbeat\""));
    let changes = JsonLinesBus::read_changes(&path).unwrap();
    let expected: Vec<ChangeEvent> = written
        .iter()
        .filter_map(|e| match e {
            Event::Change(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(changes, expected);
}

#[tokio::test]
async fn a_damaged_line_is_reported_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut bus = JsonLinesBus::open(&path).unwrap();
    bus.publish(&[change(1, 100)]).await.unwrap();
    std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"payload\": {\"op\": \"c\"\n");
    std::fs::write(&path, text).unwrap();
    let err = JsonLinesBus::read_changes(&path).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[tokio::test]
async fn a_torn_last_line_from_a_crash_is_cut_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut bus = JsonLinesBus::open(&path).unwrap();
    bus.publish(&[change(1, 100)]).await.unwrap();
    let complete = std::fs::read(&path).unwrap();
    // What a kill in the middle of the next publish leaves behind.
    let mut torn = complete.clone();
    torn.extend_from_slice(b"{\"schema\": {\"type\": \"str");
    std::fs::write(&path, &torn).unwrap();

    let mut bus = JsonLinesBus::open(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), complete);
    bus.publish(&[change(2, 200)]).await.unwrap();
    let ids: Vec<u64> = JsonLinesBus::read_changes(&path).unwrap().iter().map(|c| c.position.offset).collect();
    assert_eq!(ids, [100, 200]);
}
