//! The Debezium JSON has the shape Debezium consumers expect, refuses events it could not
//! reproduce, and decodes hostile documents into errors without panicking.

use std::sync::Arc;

use cdc_event::debezium::{from_json, from_slice, to_json, to_vec};
use cdc_event::*;
use serde_json::{json, Value as Json};

fn column(name: &str, column_type: ColumnType) -> ColumnDef {
    ColumnDef::new(name, column_type, true)
}

fn event_with(columns: Vec<ColumnDef>, values: Vec<Value>) -> ChangeEvent {
    ChangeEvent {
        op: Op::Insert,
        schema: Arc::new(TableSchema {
            table: TableId::new("shop", "orders"),
            version: 3,
            columns,
            primary_key: vec![],
        }),
        before: None,
        after: Some(Row::new(values)),
        position: Position::stream(ServerFlavor::MySql, "binlog.000010", 4567)
            .with_event_index(2)
            .with_gtid(
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
                    .parse()
                    .expect("gtid"),
            ),
        commit_ts_ms: 1_700_000_000_000,
        tx_id: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:23".into()),
        source_name: Arc::from("prod"),
        server_id: 11,
    }
}

fn sample() -> ChangeEvent {
    use ColumnType as T;
    event_with(
        vec![
            column("id", T::BigInt { unsigned: true }),
            column(
                "price",
                T::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            column("day", T::Date),
            column("zero_day", T::Date),
            column("at", T::DateTime { fsp: 6 }),
            column("zero_at", T::DateTime { fsp: 0 }),
            column("took", T::Time { fsp: 6 }),
            column("seen", T::Timestamp { fsp: 3 }),
            column("seen_precise", T::Timestamp { fsp: 0 }),
            column("flag", T::Bit { width: 1 }),
            column("mask", T::Bit { width: 13 }),
            column(
                "tags",
                T::Set {
                    values: vec!["a".into(), "b".into()],
                },
            ),
            column("ratio", T::Float),
            column(
                "blob",
                T::Blob {
                    size: LobSize::Regular,
                },
            ),
            column("born", T::Year),
            column("shape", T::Geometry),
        ],
        vec![
            Value::UInt(u64::MAX),
            Value::Decimal("-12.50".into()),
            Value::Date(SqlDate::new(1970, 1, 2)),
            Value::Date(SqlDate::ZERO),
            Value::DateTime(SqlDateTime::new(1970, 1, 1, 0, 0, 1, 500_000)),
            Value::DateTime(SqlDateTime::new(2024, 0, 0, 0, 0, 0, 0)),
            Value::Time(SqlTime::new(true, 1, 0, 0, 250)),
            Value::Timestamp(1_700_000_000_120_000),
            Value::Timestamp(1_700_000_000_000_001),
            Value::Bit { width: 1, value: 1 },
            Value::Bit {
                width: 13,
                value: 0x1abc,
            },
            Value::Set(vec!["a".into(), "b".into()]),
            Value::Float(0.1),
            Value::Bytes(vec![0, 1, 2]),
            Value::Year(2024),
            Value::Geometry {
                srid: 4326,
                wkb: vec![1, 2],
            },
        ],
    )
}

#[test]
fn values_use_debeziums_encodings() {
    let document = to_json(&sample()).expect("valid event");
    let after = &document["payload"]["after"];
    assert_eq!(after["id"], json!(18_446_744_073_709_551_615u64));
    assert_eq!(after["price"], json!("-12.50"));
    assert_eq!(after["day"], json!(1));
    assert_eq!(after["zero_day"], json!("0000-00-00"));
    assert_eq!(after["at"], json!(1_500_000));
    assert_eq!(after["zero_at"], json!("2024-00-00 00:00:00"));
    assert_eq!(after["took"], json!(-3_600_000_250i64));
    assert_eq!(after["seen"], json!("2023-11-14T22:13:20.120Z"));
    assert_eq!(after["seen_precise"], json!("2023-11-14T22:13:20.000001Z"));
    assert_eq!(after["flag"], json!(true));
    // 0x1abc little-endian: bc 1a.
    assert_eq!(after["mask"], json!("vBo="));
    assert_eq!(after["tags"], json!("a,b"));
    assert_eq!(after["blob"], json!("AAEC"));
    assert_eq!(after["born"], json!(2024));
    assert_eq!(after["shape"], json!({"wkb": "AQI=", "srid": 4326}));
    // The short text, not the widened 0.10000000149011612.
    assert_eq!(
        serde_json::to_string(&after["ratio"]).expect("number"),
        "0.1"
    );
}

#[test]
fn envelope_and_source_follow_the_mysql_connector() {
    let document = to_json(&sample()).expect("valid event");
    let payload = &document["payload"];
    assert_eq!(payload["op"], json!("c"));
    assert_eq!(payload["before"], Json::Null);
    assert_eq!(payload["ts_ms"], json!(1_700_000_000_000i64));
    assert_eq!(
        payload["transaction"],
        json!({"id": "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"})
    );
    let source = &payload["source"];
    for (key, expected) in [
        ("connector", json!("mysql")),
        ("name", json!("prod")),
        ("ts_ms", json!(1_700_000_000_000i64)),
        ("snapshot", json!("false")),
        ("db", json!("shop")),
        ("table", json!("orders")),
        ("server_id", json!(11)),
        ("gtid", json!("3e11fa47-71ca-11e1-9e33-c80aa9429562:23")),
        ("file", json!("binlog.000010")),
        ("pos", json!(4567)),
        ("row", json!(2)),
        ("thread", Json::Null),
        ("query", Json::Null),
        ("cdc_flavor", json!("mysql")),
    ] {
        assert_eq!(source[key], expected, "source.{key}");
    }
    let schema = &document["schema"];
    assert_eq!(schema["name"], json!("prod.shop.orders.Envelope"));
    let field_names: Vec<&str> = schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["field"].as_str().expect("field name"))
        .collect();
    assert_eq!(
        field_names,
        ["before", "after", "source", "op", "ts_ms", "transaction"]
    );
}

#[test]
fn field_schemas_propagate_the_source_column_type() {
    let document = to_json(&sample()).expect("valid event");
    let after = &document["schema"]["fields"][1];
    assert_eq!(after["name"], json!("prod.shop.orders.Value"));
    let field = |name: &str| {
        after["fields"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|f| f["field"] == json!(name))
            .cloned()
            .expect("column present")
    };
    let id = field("id");
    assert_eq!(id["type"], json!("int64"));
    assert_eq!(
        id["parameters"]["__debezium.source.column.type"],
        json!("BIGINT UNSIGNED")
    );
    let price = field("price");
    assert_eq!(price["type"], json!("string"));
    assert_eq!(
        price["parameters"]["__debezium.source.column.length"],
        json!("10")
    );
    assert_eq!(
        price["parameters"]["__debezium.source.column.scale"],
        json!("2")
    );
    assert_eq!(field("day")["name"], json!("io.debezium.time.Date"));
    assert_eq!(
        field("at")["name"],
        json!("io.debezium.time.MicroTimestamp")
    );
    assert_eq!(field("took")["name"], json!("io.debezium.time.MicroTime"));
    assert_eq!(
        field("seen")["name"],
        json!("io.debezium.time.ZonedTimestamp")
    );
    assert_eq!(field("born")["name"], json!("io.debezium.time.Year"));
    assert_eq!(field("flag")["type"], json!("boolean"));
    assert_eq!(field("mask")["name"], json!("io.debezium.data.Bits"));
    assert_eq!(field("mask")["parameters"]["length"], json!("13"));
    assert_eq!(field("tags")["name"], json!("io.debezium.data.EnumSet"));
    assert_eq!(field("tags")["parameters"]["allowed"], json!("a,b"));
    assert_eq!(
        field("shape")["name"],
        json!("io.debezium.data.geometry.Geometry")
    );
    assert_eq!(field("ratio")["type"], json!("float"));
}

#[test]
fn events_the_encoding_cannot_reproduce_are_refused() {
    let int_column = || vec![column("n", ColumnType::Int { unsigned: false })];
    let mismatch = event_with(int_column(), vec![Value::Text("1".into())]);
    assert!(matches!(
        to_json(&mismatch),
        Err(ValidationError::Value {
            source: ValueCheckError::TypeMismatch { .. },
            ..
        })
    ));
    let out_of_range = event_with(int_column(), vec![Value::Int(i64::from(i32::MAX) + 1)]);
    assert!(to_json(&out_of_range).is_err());
    let short_row = event_with(int_column(), vec![]);
    assert!(matches!(
        to_json(&short_row),
        Err(ValidationError::RowLength {
            expected: 1,
            actual: 0,
            ..
        })
    ));
    let nan = event_with(
        vec![column("x", ColumnType::Double)],
        vec![Value::Double(f64::NAN)],
    );
    assert!(to_json(&nan).is_err());
    let duplicate = event_with(
        vec![column("a", ColumnType::Json), column("a", ColumnType::Json)],
        vec![Value::Null, Value::Null],
    );
    assert!(matches!(
        to_json(&duplicate),
        Err(ValidationError::DuplicateColumn { .. })
    ));
    let comma_member = event_with(
        vec![column("s", ColumnType::Set { values: vec![] })],
        vec![Value::Set(vec!["a,b".into()])],
    );
    assert!(to_json(&comma_member).is_err());
}

#[test]
fn decoding_errors_name_the_failing_element() {
    assert!(matches!(from_slice(b"{"), Err(JsonDecodeError::Syntax(_))));
    assert!(matches!(
        from_json(&json!({"schema": {}})),
        Err(JsonDecodeError::Missing { path }) if path == "payload"
    ));
    let mut document = to_json(&sample()).expect("valid event");
    document["payload"]["after"]["id"] = json!(-1);
    assert!(matches!(
        from_json(&document),
        Err(JsonDecodeError::WrongType { path, .. }) if path == "payload.after.id"
    ));
    let mut document = to_json(&sample()).expect("valid event");
    document["schema"]["fields"][1]["fields"][0]["parameters"]["__debezium.source.column.type"] =
        json!("MONEY");
    assert!(matches!(
        from_json(&document),
        Err(JsonDecodeError::UnknownColumnType { type_name, .. }) if type_name == "MONEY"
    ));
}

#[test]
fn documents_without_our_extras_still_decode() {
    let event = sample();
    let mut document = to_json(&event).expect("valid event");
    let source = document["payload"]["source"]
        .as_object_mut()
        .expect("source");
    source.remove("cdc_flavor");
    source.remove("row");
    document["schema"]
        .as_object_mut()
        .expect("schema")
        .remove("parameters");
    let decoded = from_json(&document).expect("decodes with defaults");
    assert_eq!(decoded.position.flavor, ServerFlavor::MySql);
    assert_eq!(decoded.position.event_index, 0);
    assert_eq!(decoded.schema_version(), 0);
    assert_eq!(decoded.after, event.after);
}

/// Replaces every node of a valid document, one at a time, with hostile alternatives; each
/// variant must decode to a value or an error, never a panic.
#[test]
fn every_single_node_replacement_decodes_or_errors() {
    fn paths(node: &Json, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        match node {
            Json::Object(map) => {
                for (key, child) in map {
                    prefix.push(key.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            Json::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    prefix.push(i.to_string());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }
    fn node_at<'a>(root: &'a mut Json, path: &[String]) -> &'a mut Json {
        path.iter().fold(root, |node, key| match node {
            Json::Array(items) => &mut items[key.parse::<usize>().expect("index")],
            other => &mut other[key.as_str()],
        })
    }
    let original = to_json(&sample()).expect("valid event");
    let mut all = Vec::new();
    paths(&original, &mut Vec::new(), &mut all);
    let replacements = [
        Json::Null,
        json!(true),
        json!(-1),
        json!(1e300),
        json!(18_446_744_073_709_551_615u64),
        json!(""),
        json!("-99999-99-99 99:99:99.9999999"),
        json!("%%%"),
        json!([]),
        json!({}),
    ];
    let mut outcomes = 0;
    for path in &all {
        for replacement in &replacements {
            let mut document = original.clone();
            *node_at(&mut document, path) = replacement.clone();
            let _ = from_json(&document);
            outcomes += 1;
        }
    }
    assert!(outcomes > 1000, "walked {outcomes} variants");
}

#[test]
fn to_vec_matches_to_json() {
    let event = sample();
    let bytes = to_vec(&event).expect("valid event");
    let parsed: Json = serde_json::from_slice(&bytes).expect("valid JSON");
    assert_eq!(parsed, to_json(&event).expect("valid event"));
}
