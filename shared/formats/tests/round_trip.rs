//! Writes change events in every format × compression and reads the files back with an
//! independent reader (pyarrow / Python's json, via `read_back.py`), comparing value for value.
//!
//! Needs `python3` with `pyarrow` (`pip install pyarrow`); the tests fail, not skip, without it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use cdc_config::{Compression, OutputFormat, OutputShape};
use cdc_event::{
    ChangeEvent, ColumnDef, ColumnType, LobSize, Op, Position, Row, ServerFlavor, SqlDate,
    SqlDateTime, SqlTime, TableId, TableSchema, Value,
};
use cdc_formats::writer::POSITION_RANGE_KEY;
use cdc_formats::{new_writer, CsvOptions, FormatError, RecordBatchBuilder, WriterOptions};
use serde_json::{json, Map, Value as Json};

const D65: &str = "12345678901234567890123456789012345.123456789012345678901234567890";
const D65_NEG: &str = "-0.000000000000000000000000000001";
const WKB_POINT: [u8; 21] = [
    1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64,
];

fn table() -> Arc<TableSchema> {
    let utf8 = || "utf8mb4".to_string();
    let columns = vec![
        ColumnDef::new("id", ColumnType::BigInt { unsigned: false }, false),
        ColumnDef::new(
            "d65",
            ColumnType::Decimal {
                precision: 65,
                scale: 30,
            },
            true,
        ),
        ColumnDef::new(
            "d12",
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            true,
        ),
        ColumnDef::new("dt", ColumnType::DateTime { fsp: 6 }, true),
        ColumnDef::new("ts", ColumnType::Timestamp { fsp: 6 }, true),
        ColumnDef::new("u64", ColumnType::BigInt { unsigned: true }, true),
        ColumnDef::new(
            "txt",
            ColumnType::VarChar {
                length: 64,
                charset: utf8(),
            },
            true,
        ),
        ColumnDef::new(
            "body",
            ColumnType::Text {
                size: LobSize::Regular,
                charset: utf8(),
            },
            true,
        ),
        ColumnDef::new("bin", ColumnType::VarBinary { length: 16 }, true),
        ColumnDef::new("day", ColumnType::Date, true),
        ColumnDef::new("t", ColumnType::Time { fsp: 6 }, true),
        ColumnDef::new("js", ColumnType::Json, true),
        ColumnDef::new(
            "st",
            ColumnType::Set {
                values: vec!["a".into(), "b".into(), "c".into()],
            },
            true,
        ),
        ColumnDef::new(
            "en",
            ColumnType::Enum {
                values: vec!["x".into(), "y".into()],
            },
            true,
        ),
        ColumnDef::new("bits", ColumnType::Bit { width: 8 }, true),
        ColumnDef::new("yr", ColumnType::Year, true),
        ColumnDef::new("tiny", ColumnType::TinyInt { unsigned: false }, true),
        ColumnDef::new("dbl", ColumnType::Double, true),
        ColumnDef::new("geom", ColumnType::Geometry, true),
    ];
    Arc::new(TableSchema {
        table: TableId::new("shop", "orders"),
        version: 3,
        columns,
        primary_key: vec!["id".into()],
    })
}

fn position(index: u32) -> Position {
    Position::stream(ServerFlavor::MySql, "binlog.000010", 4567).with_event_index(index)
}

fn full_row(id: i64) -> Row {
    Row::new(vec![
        Value::Int(id),
        Value::Decimal(D65.into()),
        Value::Decimal("-1234567890.12".into()),
        Value::DateTime(SqlDateTime::new(2024, 5, 6, 7, 8, 9, 123_456)),
        // 2024-05-06T07:08:09.654321Z
        Value::Timestamp(1_714_979_289_654_321),
        Value::UInt(u64::MAX),
        Value::Text("héllo 😀 𝄞, \"quoted\"".into()),
        Value::Text("line1\nline2".into()),
        Value::Bytes(vec![0, 1, 0, 255, 0]),
        Value::Date(SqlDate::new(2024, 2, 29)),
        Value::Time(SqlTime::new(true, 838, 59, 59, 0)),
        Value::Json("{\"a\": [1, 2]}".into()),
        Value::Set(vec!["a".into(), "c".into()]),
        Value::Enum("y".into()),
        Value::Bit { width: 8, value: 5 },
        Value::Year(2024),
        Value::Int(-128),
        Value::Double(1.5),
        Value::Geometry {
            srid: 4326,
            wkb: WKB_POINT.to_vec(),
        },
    ])
}

fn null_row(id: i64) -> Row {
    let mut values = vec![Value::Int(id)];
    values.extend(std::iter::repeat_n(Value::Null, 18));
    // Zero dates have no Arrow value: written as NULL and counted.
    values[3] = Value::DateTime(SqlDateTime::ZERO);
    values[4] = Value::Timestamp(0);
    values[9] = Value::Date(SqlDate::ZERO);
    // Empty strings must stay distinct from NULL in every format.
    values[6] = Value::Text(String::new());
    values[8] = Value::Bytes(Vec::new());
    Row::new(values)
}

fn event(
    op: Op,
    before: Option<Row>,
    after: Option<Row>,
    index: u32,
    tx: Option<&str>,
) -> ChangeEvent {
    ChangeEvent {
        op,
        schema: table(),
        before,
        after,
        position: position(index),
        commit_ts_ms: 1_714_979_289_000 + i64::from(index),
        tx_id: tx.map(str::to_owned),
        source_name: Arc::from("src"),
        server_id: 7,
    }
}

fn events() -> Vec<ChangeEvent> {
    let mut updated = full_row(1);
    updated.values[2] = Value::Decimal("0.05".into());
    updated.values[1] = Value::Decimal(D65_NEG.into());
    vec![
        event(Op::Insert, None, Some(full_row(1)), 0, Some("gtid-1")),
        event(Op::Read, None, Some(null_row(2)), 1, None),
        event(
            Op::Update,
            Some(full_row(1)),
            Some(updated),
            2,
            Some("gtid-2"),
        ),
        event(Op::Delete, Some(full_row(3)), None, 3, Some("gtid-2")),
    ]
}

/// The rows as the JSON-lines writer should print them (and Parquet should read back).
fn expected_rows() -> Vec<Map<String, Json>> {
    let full = |id: i64, d65: &str, d12: &str| {
        json!({
            "id": id, "d65": d65, "d12": d12,
            "dt": "2024-05-06T07:08:09.123456", "ts": "2024-05-06T07:08:09.654321Z",
            "u64": u64::MAX, "txt": "héllo 😀 𝄞, \"quoted\"", "body": "line1\nline2",
            "bin": "AAEA/wA=", "day": "2024-02-29", "t": -3_020_399_000_000i64,
            "js": "{\"a\": [1, 2]}", "st": "a,c", "en": "y", "bits": 5, "yr": 2024,
            "tiny": -128, "dbl": 1.5, "geom": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "geom__srid": 4326,
        })
    };
    let mut rows = vec![
        full(1, D65, "-1234567890.12"),
        json!({
            "id": 2, "d65": null, "d12": null, "dt": null, "ts": null, "u64": null, "txt": "",
            "body": null, "bin": "", "day": null, "t": null, "js": null, "st": null, "en": null,
            "bits": null, "yr": null, "tiny": null, "dbl": null, "geom": null, "geom__srid": null,
        }),
        full(1, "-0.000000000000000000000000000001", "0.05"),
        full(3, D65, "-1234567890.12"),
    ];
    let meta = [
        ("c", Some("gtid-1"), false),
        ("r", None, false),
        ("u", Some("gtid-2"), false),
        ("d", Some("gtid-2"), true),
    ];
    for (i, (row, (op, tx, deleted))) in rows.iter_mut().zip(meta).enumerate() {
        let obj = row.as_object_mut().expect("literal object");
        obj.insert("_op".into(), json!(op));
        obj.insert("_ts_ms".into(), json!(1_714_979_289_000i64 + i as i64));
        obj.insert("_source_pos".into(), json!(position(i as u32).to_string()));
        obj.insert("_tx_id".into(), json!(tx));
        obj.insert("_deleted".into(), json!(deleted));
    }
    rows.into_iter()
        .map(|r| r.as_object().cloned().expect("object"))
        .collect()
}

/// What a CSV reader sees: every value as text, NULL as None.
fn as_csv_text(rows: Vec<Map<String, Json>>) -> Vec<Map<String, Json>> {
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        Json::Null => Json::Null,
                        Json::String(s) => Json::String(s),
                        other => Json::String(other.to_string()),
                    };
                    (k, text)
                })
                .collect()
        })
        .collect()
}

fn read_back(format: &str, compression: &str, path: &Path, extra: &[&str]) -> Json {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_back.py");
    let output = Command::new("python3")
        .arg(&script)
        .args([format, compression])
        .arg(path)
        .args(extra)
        .output()
        .expect("python3 must be installed for these tests (with `pip install pyarrow`)");
    assert!(
        output.status.success(),
        "read_back.py {format} {compression} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("read_back.py prints JSON")
}

fn write_file(
    dir: &Path,
    options: &WriterOptions,
    events: &[ChangeEvent],
) -> (std::path::PathBuf, cdc_formats::WriteStats) {
    let mut builder = RecordBatchBuilder::for_writer(table(), options).expect("builder");
    // Two batches, so the writers' multi-batch paths and the position range are exercised.
    let (head, tail) = events.split_at(2);
    let mut batches = Vec::new();
    for part in [head, tail] {
        for e in part {
            builder.append(e).expect("append");
        }
        batches.push(builder.finish().expect("batch"));
    }
    assert_eq!(
        builder.substituted_nulls(),
        vec![("dt", 1), ("ts", 1), ("day", 1)]
    );
    let ext = cdc_formats::file_extension(options.format, options.compression).expect("ext");
    let path = dir.join(format!("out.{ext}"));
    let file = std::fs::File::create(&path).expect("create");
    let mut writer = new_writer(file, builder.arrow_schema().clone(), options).expect("writer");
    for batch in &batches {
        writer.write(batch).expect("write");
    }
    assert!(
        writer.bytes_written() + writer.in_progress_size() > 0
            || options.format != OutputFormat::Parquet
    );
    let stats = writer.finish().expect("finish");
    assert_eq!(stats.rows, 4);
    assert_eq!(stats.batches, 2);
    assert_eq!(
        stats.bytes_written,
        std::fs::metadata(&path).expect("stat").len()
    );
    assert_eq!(stats.first_position, Some(position(0).to_string()));
    assert_eq!(stats.last_position, Some(position(3).to_string()));
    (path, stats)
}

fn rows_of(doc: &Json) -> Vec<Map<String, Json>> {
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_object().cloned().expect("row object"))
        .collect()
}

fn assert_rows_eq(actual: Vec<Map<String, Json>>, expected: Vec<Map<String, Json>>, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: row count");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        for (key, ev) in e {
            assert_eq!(a.get(key), Some(ev), "{what}: row {i}, column {key}");
        }
        assert_eq!(
            a.len(),
            e.len(),
            "{what}: row {i} columns {:?}",
            a.keys().collect::<Vec<_>>()
        );
    }
}

#[test]
fn parquet_round_trips_every_compression() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (compression, codec) in [
        (Compression::None, "UNCOMPRESSED"),
        (Compression::Gzip, "GZIP"),
        (Compression::Snappy, "SNAPPY"),
        (Compression::Zstd, "ZSTD"),
    ] {
        let options = WriterOptions::new(OutputFormat::Parquet, compression);
        let (path, _) = write_file(dir.path(), &options, &events());
        let doc = read_back("parquet", compression.as_str(), &path, &[]);
        assert_rows_eq(
            rows_of(&doc),
            expected_rows(),
            &format!("parquet/{}", compression.as_str()),
        );
        assert_eq!(
            doc["codecs"],
            json!([codec]),
            "parquet/{}",
            compression.as_str()
        );
        let types = &doc["types"];
        for (column, arrow_type) in [
            ("id", "int64"),
            ("d65", "decimal256(65, 30)"),
            ("d12", "decimal128(12, 2)"),
            ("dt", "timestamp[us]"),
            ("ts", "timestamp[us, tz=UTC]"),
            ("u64", "uint64"),
            ("bin", "binary"),
            ("day", "date32[day]"),
            ("t", "int64"),
            ("yr", "uint16"),
            ("tiny", "int8"),
            ("bits", "uint64"),
            ("_deleted", "bool"),
        ] {
            assert_eq!(types[column], json!(arrow_type), "arrow type of {column}");
        }
    }
}

#[test]
fn parquet_footer_holds_position_range_and_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WriterOptions::new(OutputFormat::Parquet, Compression::Snappy);
    let (path, _) = write_file(dir.path(), &options, &events());
    let doc = read_back("parquet", "snappy", &path, &[]);
    let meta = &doc["metadata"];
    assert_eq!(
        meta[POSITION_RANGE_KEY],
        json!(format!("{}..{}", position(0), position(3)))
    );
    assert_eq!(meta["cdc.table"], json!("shop.orders"));
    assert_eq!(meta["cdc.schema_version"], json!("3"));
}

#[test]
fn json_lines_round_trip_every_compression() {
    let dir = tempfile::tempdir().expect("tempdir");
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let options = WriterOptions::new(OutputFormat::Json, compression);
        let (path, _) = write_file(dir.path(), &options, &events());
        let doc = read_back("json", compression.as_str(), &path, &[]);
        assert_rows_eq(
            rows_of(&doc),
            expected_rows(),
            &format!("json/{}", compression.as_str()),
        );
    }
}

#[test]
fn csv_round_trips_every_compression() {
    let dir = tempfile::tempdir().expect("tempdir");
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let options = WriterOptions::new(OutputFormat::Csv, compression);
        let (path, _) = write_file(dir.path(), &options, &events());
        let doc = read_back("csv", compression.as_str(), &path, &[""]);
        assert_rows_eq(
            rows_of(&doc),
            as_csv_text(expected_rows()),
            &format!("csv/{}", compression.as_str()),
        );
    }
}

#[test]
fn csv_honours_delimiter_and_null_marker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WriterOptions::new(OutputFormat::Csv, Compression::None).with_csv(
        CsvOptions::default()
            .with_delimiter(b';')
            .with_null("\\N")
            .with_line_terminator("\n"),
    );
    let (path, _) = write_file(dir.path(), &options, &events());
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.starts_with("id;d65;d12;"), "{text}");
    assert!(text.contains(";\\N;"), "null marker written: {text}");
    let doc = read_back("csv", "none", &path, &["\\N", ";"]);
    assert_rows_eq(rows_of(&doc), as_csv_text(expected_rows()), "csv ; \\N");
}

#[test]
fn snappy_text_streams_are_rejected_with_a_clear_error() {
    for format in [OutputFormat::Csv, OutputFormat::Json] {
        let builder = RecordBatchBuilder::new(table()).expect("builder");
        let options = WriterOptions::new(format, Compression::Snappy);
        let error = new_writer(Vec::new(), builder.arrow_schema().clone(), &options)
            .err()
            .expect("snappy text must be refused");
        assert!(
            matches!(error, FormatError::UnsupportedCompression { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(format.as_str()) && message.contains("snappy"),
            "{message}"
        );
        assert!(message.contains("gzip or zstd"), "{message}");
        assert!(cdc_formats::file_extension(format, Compression::Snappy).is_err());
    }
}

#[test]
fn bad_values_name_table_and_column_and_append_nothing() {
    let mut builder = RecordBatchBuilder::new(table()).expect("builder");
    let mut row = full_row(9);
    row.values[2] = Value::Decimal("1.234".into()); // scale 2
    let error = builder
        .append(&event(Op::Insert, None, Some(row), 0, None))
        .expect_err("too many fraction digits");
    let message = error.to_string();
    assert!(
        message.contains("shop.orders")
            && message.contains("d12")
            && message.contains("DECIMAL(12,2)"),
        "{message}"
    );

    let mut row = full_row(9);
    row.values[16] = Value::Int(300); // TINYINT
    let message = builder
        .append(&event(Op::Insert, None, Some(row), 0, None))
        .expect_err("out of range")
        .to_string();
    assert!(
        message.contains("tiny") && message.contains("Int8"),
        "{message}"
    );

    let mut row = full_row(9);
    row.values[0] = Value::Null; // NOT NULL
    assert!(matches!(
        builder.append(&event(Op::Insert, None, Some(row), 0, None)),
        Err(FormatError::NullInNotNullColumn { .. })
    ));
    assert!(matches!(
        builder.append(&event(Op::Delete, None, Some(full_row(1)), 0, None)),
        Err(FormatError::MissingImage {
            image: "before",
            ..
        })
    ));
    assert_eq!(builder.len(), 0, "failed appends leave nothing behind");
    builder.append(&events()[0]).expect("good row");
    let batch = builder.finish().expect("batch");
    assert_eq!(batch.num_rows(), 1);
}

#[test]
fn column_names_clashing_with_metadata_are_refused() {
    let mut schema = (*table()).clone();
    schema.columns.push(ColumnDef::new(
        "_op",
        ColumnType::Int { unsigned: false },
        true,
    ));
    let error = RecordBatchBuilder::new(Arc::new(schema))
        .err()
        .expect("clash");
    assert!(error.to_string().contains("\"_op\""), "{error}");
}

/// The envelope rows: `before` / `after` images (the flat rows' data columns), `source`, `op`.
fn envelope_expected() -> Vec<Map<String, Json>> {
    let flat = expected_rows();
    let image = |i: Option<usize>| -> Json {
        match i {
            None => Json::Null,
            Some(i) => Json::Object(
                flat[i]
                    .iter()
                    .filter(|(k, _)| !k.starts_with('_'))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        }
    };
    // (op, before image, after image, tx): the update's before image is row 1 as inserted.
    let events = [
        ("c", None, Some(0), Some("gtid-1")),
        ("r", None, Some(1), None),
        ("u", Some(0), Some(2), Some("gtid-2")),
        ("d", Some(3), None, Some("gtid-2")),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, (op, before, after, tx))| {
            let row = json!({
                "before": image(before),
                "after": image(after),
                "source": {
                    "name": "src", "db": "shop", "table": "orders", "server_id": 7,
                    "ts_ms": 1_714_979_289_000i64 + i as i64,
                    "position": position(i as u32).to_string(),
                    "tx_id": tx, "snapshot": op == "r",
                },
                "op": op,
            });
            row.as_object().cloned().expect("object")
        })
        .collect()
}

#[test]
fn envelope_parquet_is_read_by_pyarrow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        WriterOptions::new(OutputFormat::Parquet, Compression::Snappy).with_shape(OutputShape::Envelope);
    let (path, stats) = write_file(dir.path(), &options, &events());
    assert_eq!(stats.first_position, Some(position(0).to_string()), "from source.position");
    let doc = read_back("parquet", "snappy", &path, &[]);
    assert_rows_eq(rows_of(&doc), envelope_expected(), "parquet/envelope");
    assert_eq!(
        doc["metadata"][POSITION_RANGE_KEY],
        json!(format!("{}..{}", position(0), position(3)))
    );

    // Types and field metadata of the nested columns, as pyarrow sees them.
    let script = r#"
import json, sys
import pyarrow.parquet as pq
schema = pq.read_schema(sys.argv[1])
after = schema.field("after").type
fields = {after.field(i).name: after.field(i) for i in range(after.num_fields)}
meta = lambda f: {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
print(json.dumps({
    "top": [f.name for f in schema],
    "shape": (schema.metadata or {}).get(b"cdc.shape", b"").decode(),
    "types": {n: str(f.type) for n, f in fields.items()},
    "js": meta(fields["js"]),
    "d65": meta(fields["d65"]),
    "source": str(schema.field("source").type),
}))
"#;
    let output = Command::new("python3").arg("-c").arg(script).arg(&path).output().expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let info: Json = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(info["top"], json!(["before", "after", "source", "op"]));
    assert_eq!(info["shape"], json!("envelope"));
    for (column, arrow_type) in [
        ("d65", "decimal256(65, 30)"),
        ("d12", "decimal128(12, 2)"),
        ("dt", "timestamp[us]"),
        ("ts", "timestamp[us, tz=UTC]"),
        ("u64", "uint64"),
    ] {
        assert_eq!(info["types"][column], json!(arrow_type), "arrow type of after.{column}");
    }
    // pyarrow ≥ 19 turns arrow.json into its JSON extension type; older ones keep the metadata.
    let js_type = info["types"]["js"].as_str().unwrap_or_default();
    assert!(
        js_type.contains("json") || info["js"]["ARROW:extension:name"] == json!("arrow.json"),
        "after.js is JSON-typed: {info}"
    );
    assert_eq!(info["d65"]["cdc.source_type"], json!("DECIMAL(65,30)"));
    assert!(info["source"].as_str().unwrap_or_default().contains("position: string not null"), "{info}");
}

#[test]
fn envelope_json_lines_nest_the_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        WriterOptions::new(OutputFormat::Json, Compression::None).with_shape(OutputShape::Envelope);
    let (path, _) = write_file(dir.path(), &options, &events());
    let doc = read_back("json", "none", &path, &[]);
    assert_rows_eq(rows_of(&doc), envelope_expected(), "json/envelope");
}

#[test]
fn envelope_is_refused_for_csv() {
    assert!(cdc_formats::check_shape(OutputFormat::Csv, OutputShape::Envelope).is_err());
    assert!(cdc_formats::check_shape(OutputFormat::Parquet, OutputShape::Envelope).is_ok());
    let builder = RecordBatchBuilder::with_shape(table(), OutputShape::Envelope).expect("builder");
    let options = WriterOptions::new(OutputFormat::Csv, Compression::None);
    let err = new_writer(Vec::new(), builder.arrow_schema().clone(), &options)
        .err()
        .expect("csv refuses struct columns");
    assert!(matches!(err, FormatError::UnsupportedArrowType { ref column, .. } if column == "before"), "{err}");
}

#[test]
fn envelope_rejects_a_missing_image_and_appends_nothing() {
    let mut builder = RecordBatchBuilder::with_shape(table(), OutputShape::Envelope).expect("builder");
    let update_without_before = event(Op::Update, None, Some(full_row(1)), 0, None);
    let err = builder.append(&update_without_before).expect_err("an update needs its before image");
    assert!(matches!(err, FormatError::MissingImage { image: "before", .. }), "{err}");
    let mut bad = full_row(2);
    bad.values[5] = Value::Int(-1); // BIGINT UNSIGNED column
    let err = builder.append(&event(Op::Update, Some(full_row(2)), Some(bad), 1, None)).expect_err("bad value");
    assert!(matches!(err, FormatError::BadValue(_)), "{err}");
    assert!(builder.is_empty());
    builder.append(&events()[0]).expect("append");
    let batch = builder.finish().expect("batch");
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.column(0).null_count(), 1, "an insert has no before image");
}
