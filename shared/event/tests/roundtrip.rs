//! Both encodings reproduce every event exactly: generated events over every column type, and
//! one hand-written event holding each edge value MySQL can store.
//!
//! NaN and infinities are never generated: MySQL FLOAT/DOUBLE columns cannot hold them (the
//! JSON encoder rejects them; the binary encoding would carry them bit-exactly).

mod common;

use std::sync::Arc;

use cdc_event::debezium::{from_json, from_slice, to_json, to_vec};
use cdc_event::*;
use common::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_events_satisfy_the_model_invariants(event in change()) {
        prop_assert_eq!(event.validate(), Ok(()));
    }

    #[test]
    fn debezium_json_round_trips(event in change()) {
        let document = to_json(&event).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = from_json(&document).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &event);

        let bytes = to_vec(&event).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &event);
    }

    #[test]
    fn binary_batch_round_trips(events in change_batch()) {
        let batch = encode_batch(&events);
        let back = decode_batch(&batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &events);
        // Events that shared a schema still share one after decoding.
        for (a, b) in back.iter().zip(back.iter().skip(1)) {
            if a.schema == b.schema {
                prop_assert!(Arc::ptr_eq(&a.schema, &b.schema));
            }
        }
    }

    #[test]
    fn binary_event_batch_round_trips(events in prop::collection::vec(event(), 0..8)) {
        let batch = encode_events(&events);
        let back = decode_events(&batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, events);
    }

    #[test]
    fn temporal_text_forms_round_trip(date in date(), time in time(), datetime in datetime()) {
        prop_assert_eq!(date.to_string().parse::<SqlDate>(), Ok(date));
        prop_assert_eq!(time.to_string().parse::<SqlTime>(), Ok(time));
        prop_assert_eq!(datetime.to_string().parse::<SqlDateTime>(), Ok(datetime));
    }

    #[test]
    fn every_value_of_every_type_round_trips_alone(
        (column_type, value) in column_type().prop_flat_map(|t| (Just(t.clone()), value_or_null(&t)))
    ) {
        let event = single_value_event(column_type, value);
        let json = from_slice(&to_vec(&event).map_err(|e| TestCaseError::fail(e.to_string()))?)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&json, &event);
        let binary = decode_batch(&encode_batch(std::slice::from_ref(&event)))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(binary, vec![event]);
    }
}

fn single_value_event(column_type: ColumnType, value: Value) -> ChangeEvent {
    let schema = Arc::new(TableSchema {
        table: TableId::new("db", "t"),
        version: 1,
        columns: vec![ColumnDef::new("c", column_type, true)],
        primary_key: vec![],
    });
    ChangeEvent {
        op: Op::Insert,
        schema,
        before: None,
        after: Some(Row::new(vec![value])),
        position: Position::stream(ServerFlavor::MySql, "binlog.000001", 4),
        commit_ts_ms: 1_700_000_000_000,
        tx_id: None,
        source_name: Arc::from("src"),
        server_id: 1,
    }
}

/// Every edge value the brief names, each in its own column of one table.
fn edge_case_event() -> ChangeEvent {
    use ColumnType as T;
    let text = |size| T::Text {
        size,
        charset: "utf8mb4".into(),
    };
    let columns: Vec<(&str, ColumnType, Value)> = vec![
        ("null", T::Int { unsigned: false }, Value::Null),
        (
            "i64_min",
            T::BigInt { unsigned: false },
            Value::Int(i64::MIN),
        ),
        (
            "i64_max",
            T::BigInt { unsigned: false },
            Value::Int(i64::MAX),
        ),
        (
            "u64_max",
            T::BigInt { unsigned: true },
            Value::UInt(u64::MAX),
        ),
        ("tiny_min", T::TinyInt { unsigned: false }, Value::Int(-128)),
        (
            "dec_65_30",
            T::Decimal {
                precision: 65,
                scale: 30,
            },
            Value::Decimal(format!("-{}.{}", "9".repeat(35), "1".repeat(30))),
        ),
        (
            "dec_scale",
            T::Decimal {
                precision: 12,
                scale: 6,
            },
            Value::Decimal("-12345.678900".into()),
        ),
        ("f32_neg_zero", T::Float, Value::Float(-0.0)),
        ("f32_subnormal", T::Float, Value::Float(f32::from_bits(1))),
        ("f32_max", T::Float, Value::Float(f32::MAX)),
        ("f32_min", T::Float, Value::Float(f32::MIN)),
        (
            "f32_double_rounding",
            T::Float,
            Value::Float(f32::from_bits(0x15ae_43fd)),
        ),
        ("f64_neg_zero", T::Double, Value::Double(-0.0)),
        ("f64_subnormal", T::Double, Value::Double(f64::from_bits(1))),
        ("f64_max", T::Double, Value::Double(f64::MAX)),
        (
            "f64_min_positive",
            T::Double,
            Value::Double(f64::MIN_POSITIVE),
        ),
        ("zero_date", T::Date, Value::Date(SqlDate::ZERO)),
        (
            "partial_date",
            T::Date,
            Value::Date(SqlDate::new(2024, 0, 0)),
        ),
        (
            "invalid_date",
            T::Date,
            Value::Date(SqlDate::new(2024, 2, 31)),
        ),
        ("date", T::Date, Value::Date(SqlDate::new(1969, 12, 31))),
        (
            "zero_datetime",
            T::DateTime { fsp: 6 },
            Value::DateTime(SqlDateTime::ZERO),
        ),
        (
            "datetime",
            T::DateTime { fsp: 6 },
            Value::DateTime(SqlDateTime::new(2024, 2, 29, 23, 59, 59, 999_999)),
        ),
        (
            "time_max",
            T::Time { fsp: 6 },
            Value::Time(SqlTime::new(false, 838, 59, 59, 999_999)),
        ),
        (
            "time_min",
            T::Time { fsp: 6 },
            Value::Time(SqlTime::new(true, 838, 59, 59, 999_999)),
        ),
        (
            "time_neg_micro",
            T::Time { fsp: 6 },
            Value::Time(SqlTime::new(true, 0, 0, 0, 1)),
        ),
        (
            "time_neg_zero",
            T::Time { fsp: 0 },
            Value::Time(SqlTime::new(true, 0, 0, 0, 0)),
        ),
        ("ts_zero", T::Timestamp { fsp: 0 }, Value::Timestamp(0)),
        (
            "ts_micros",
            T::Timestamp { fsp: 3 },
            Value::Timestamp(1_700_000_000_123_456),
        ),
        (
            "ts_before_epoch",
            T::Timestamp { fsp: 6 },
            Value::Timestamp(-1),
        ),
        ("year_zero", T::Year, Value::Year(0)),
        ("year_max", T::Year, Value::Year(2155)),
        (
            "emoji_😀",
            text(LobSize::Long),
            Value::Text("🎉 naïve 中文 \u{0} \"q\"".into()),
        ),
        (
            "empty_text",
            text(LobSize::Tiny),
            Value::Text(String::new()),
        ),
        (
            "bytes",
            T::VarBinary { length: 16 },
            Value::Bytes(vec![0, 0, 255, 0, 1]),
        ),
        (
            "empty_bytes",
            T::Blob {
                size: LobSize::Regular,
            },
            Value::Bytes(vec![]),
        ),
        (
            "json",
            T::Json,
            Value::Json(r#"{"k": [1, 2.50, null], "😀": {"n": -0.0}}"#.into()),
        ),
        (
            "enum",
            T::Enum {
                values: vec!["a,b".into(), "c".into()],
            },
            Value::Enum("a,b".into()),
        ),
        (
            "enum_error_value",
            T::Enum {
                values: vec!["x".into()],
            },
            Value::Enum(String::new()),
        ),
        (
            "set",
            T::Set {
                values: vec!["r".into(), "w".into(), "😀".into()],
            },
            Value::Set(vec!["r".into(), "😀".into()]),
        ),
        (
            "empty_set",
            T::Set {
                values: vec!["r".into()],
            },
            Value::Set(vec![]),
        ),
        (
            "bit1",
            T::Bit { width: 1 },
            Value::Bit { width: 1, value: 1 },
        ),
        (
            "bit64",
            T::Bit { width: 64 },
            Value::Bit {
                width: 64,
                value: u64::MAX,
            },
        ),
        (
            "bit13",
            T::Bit { width: 13 },
            Value::Bit {
                width: 13,
                value: 0x1abc,
            },
        ),
        (
            "geometry",
            T::Geometry,
            Value::Geometry {
                srid: 4326,
                wkb: vec![
                    1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64,
                ],
            },
        ),
    ];
    let schema = Arc::new(TableSchema {
        table: TableId::new("shop 😀", "orders.v2"),
        version: 7,
        columns: columns
            .iter()
            .map(|(name, column_type, _)| ColumnDef::new(*name, column_type.clone(), true))
            .collect(),
        primary_key: vec!["i64_min".into(), "u64_max".into()],
    });
    let row = Row::new(columns.into_iter().map(|(_, _, value)| value).collect());
    ChangeEvent {
        op: Op::Update,
        schema,
        before: Some(row.clone()),
        after: Some(row),
        position: Position {
            flavor: ServerFlavor::MariaDb,
            file: "mysql-bin.000010".into(),
            offset: 4_294_967_296,
            gtid: Some(Gtid::MariaDb {
                domain_id: 0,
                server_id: 1,
                sequence: 42,
            }),
            phase: Phase::Stream,
            event_index: 3,
        },
        commit_ts_ms: -1,
        tx_id: Some("0-1-42".into()),
        source_name: Arc::from("prod"),
        server_id: u32::MAX,
    }
}

#[test]
fn edge_values_round_trip_through_debezium_json() {
    let event = edge_case_event();
    assert_eq!(event.validate(), Ok(()));
    let bytes = to_vec(&event).expect("edge values are encodable");
    let back = from_slice(&bytes).expect("our own output decodes");
    assert_eq!(back, event);
}

#[test]
fn edge_values_round_trip_through_binary_batches() {
    let event = edge_case_event();
    let back = decode_batch(&encode_batch(std::slice::from_ref(&event))).expect("decodes");
    assert_eq!(back, vec![event]);
}

#[test]
fn equal_schemas_in_different_arcs_are_defined_once() {
    let first = edge_case_event();
    let mut second = first.clone();
    second.schema = Arc::new((*first.schema).clone());
    let one = encode_batch(std::slice::from_ref(&first));
    let two = encode_batch(&[first.clone(), second.clone()]);
    let three = encode_batch(&[first.clone(), second.clone(), first.clone()]);
    // The second event costs the same whether its schema Arc is new or not.
    assert_eq!(three.len() - two.len(), two.len() - one.len());
    let back = decode_batch(&two).expect("decodes");
    assert!(Arc::ptr_eq(&back[0].schema, &back[1].schema));
    assert_eq!(back, vec![first, second]);
}

#[test]
fn encoder_is_reusable_across_batches() {
    let event = edge_case_event();
    let mut encoder = BatchEncoder::new();
    encoder.push(&event);
    let first = encoder.finish();
    assert_eq!(encoder.event_count(), 0);
    encoder.push(&event);
    encoder.push(&event);
    assert_eq!(encoder.event_count(), 2);
    let predicted = encoder.encoded_len();
    let second = encoder.finish();
    assert_eq!(second.len(), predicted);
    assert_eq!(decode_batch(&first).expect("decodes"), vec![event.clone()]);
    assert_eq!(
        decode_batch(&second).expect("decodes"),
        vec![event.clone(), event]
    );
}

#[test]
fn empty_batches_round_trip() {
    assert_eq!(decode_batch(&encode_batch(&[])), Ok(vec![]));
    assert_eq!(decode_events(&encode_events(&[])), Ok(vec![]));
}

#[test]
fn decode_batch_refuses_to_drop_non_change_events() {
    let heartbeat = Event::Heartbeat(HeartbeatEvent {
        position: Position::stream(ServerFlavor::MySql, "binlog.000001", 4),
        ts_ms: 0,
        source_name: Arc::from("src"),
    });
    let batch = encode_events(&[heartbeat]);
    assert!(matches!(
        decode_batch(&batch),
        Err(DecodeError::NotAChangeEvent {
            kind: "heartbeat",
            ..
        })
    ));
}
