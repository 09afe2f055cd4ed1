//! The binlog reader against a real MariaDB: values equal what SELECT returns, transactions
//! and positions, DDL mid-stream, table selection, and the information_schema fallback.
//!
//! Every wait is on a condition (N events read) under a deadline; nothing sleeps.

use std::time::Duration;

use cdc_event::{ColumnType, Event, Op, SqlDate, SqlDateTime, SqlTime, TableSchema, Value};
use cdc_mysql::{binlog_head, BinlogReader, BinlogReaderConfig, TableSelector};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as MyValue};

const DEADLINE: Duration = Duration::from_secs(30);
const READER_ID: u32 = 4242;

mod common;

use common::{fixture, Fixture, ALL_TYPES, EXTREMES, ORDINARY};

async fn reader_at_head(f: &mut Fixture, tables: &str) -> BinlogReader {
    let head = binlog_head(&mut f.conn, cdc_event::ServerFlavor::MariaDb).await.unwrap().expect("binlog on");
    let selector = TableSelector::new("shop", tables, "").unwrap();
    BinlogReader::start(&f.opts, BinlogReaderConfig::new(READER_ID, "test", selector, head.file, head.position))
        .await
        .expect("start reader")
}

/// Reads until `n` change events arrived, returning every event read; fails at the deadline.
async fn read_changes(reader: &mut BinlogReader, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let work = async {
        while events.iter().filter(|e| matches!(e, Event::Change(_))).count() < n {
            match reader.next_event().await.expect("next event") {
                Some(Event::Heartbeat(_)) => {}
                Some(e) => events.push(e),
                None => panic!("stream ended"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, work).await.unwrap_or_else(|_| panic!("fewer than {n} changes within {DEADLINE:?}"));
    events
}

fn changes(events: &[Event]) -> Vec<&cdc_event::ChangeEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Change(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// The model value of what SELECT returned (binary protocol) for a column of `ty`.
fn expected(ty: &ColumnType, v: MyValue) -> Value {
    let bytes = |v: MyValue| match v {
        MyValue::Bytes(b) => b,
        other => panic!("expected bytes for {ty}, got {other:?}"),
    };
    if v == MyValue::NULL {
        return Value::Null;
    }
    match ty {
        ColumnType::TinyInt { unsigned }
        | ColumnType::SmallInt { unsigned }
        | ColumnType::MediumInt { unsigned }
        | ColumnType::Int { unsigned }
        | ColumnType::BigInt { unsigned } => match (v, unsigned) {
            (MyValue::Int(i), false) => Value::Int(i),
            (MyValue::Int(i), true) => Value::UInt(u64::try_from(i).unwrap()),
            (MyValue::UInt(u), true) => Value::UInt(u),
            (MyValue::UInt(u), false) => Value::Int(i64::try_from(u).unwrap()),
            (other, _) => panic!("{ty}: {other:?}"),
        },
        ColumnType::Decimal { .. } => Value::Decimal(String::from_utf8(bytes(v)).unwrap()),
        ColumnType::Float => match v {
            MyValue::Float(f) => Value::Float(f),
            other => panic!("{other:?}"),
        },
        ColumnType::Double => match v {
            MyValue::Double(f) => Value::Double(f),
            other => panic!("{other:?}"),
        },
        ColumnType::Date => match v {
            MyValue::Date(y, m, d, ..) => Value::Date(SqlDate::new(y, m, d)),
            other => panic!("{other:?}"),
        },
        ColumnType::DateTime { .. } => match v {
            MyValue::Date(y, mo, d, h, mi, s, us) => Value::DateTime(SqlDateTime::new(y, mo, d, h, mi, s, us)),
            other => panic!("{other:?}"),
        },
        ColumnType::Timestamp { .. } => match v {
            // The session is UTC, so the printed value is the UTC instant; zero stays 0.
            MyValue::Date(y, mo, d, h, mi, s, us) => Value::Timestamp(
                SqlDateTime::new(y, mo, d, h, mi, s, us).to_naive().map_or(0, |n| n.and_utc().timestamp_micros()),
            ),
            other => panic!("{other:?}"),
        },
        ColumnType::Time { .. } => match v {
            MyValue::Time(neg, days, h, m, s, us) => {
                Value::Time(SqlTime::new(neg, u16::try_from(days * 24 + u32::from(h)).unwrap(), m, s, us))
            }
            other => panic!("{other:?}"),
        },
        ColumnType::Year => match v {
            MyValue::Int(y) => Value::Year(u16::try_from(y).unwrap()),
            MyValue::UInt(y) => Value::Year(u16::try_from(y).unwrap()),
            other => panic!("{other:?}"),
        },
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            Value::Text(String::from_utf8(bytes(v)).unwrap())
        }
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => Value::Bytes(bytes(v)),
        ColumnType::Json => Value::Json(String::from_utf8(bytes(v)).unwrap()),
        ColumnType::Enum { .. } => Value::Enum(String::from_utf8(bytes(v)).unwrap()),
        ColumnType::Set { .. } => {
            let text = String::from_utf8(bytes(v)).unwrap();
            Value::Set(if text.is_empty() { vec![] } else { text.split(',').map(String::from).collect() })
        }
        ColumnType::Bit { width } => {
            Value::Bit { width: *width, value: bytes(v).iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)) }
        }
        ColumnType::Geometry => {
            let b = bytes(v);
            Value::Geometry { srid: u32::from_le_bytes(b[..4].try_into().unwrap()), wkb: b[4..].to_vec() }
        }
    }
}

/// Rows of `sql` as model values typed by `schema` (the SELECT must list the table's columns
/// in order).
async fn select_rows(conn: &mut Conn, schema: &TableSchema, sql: &str) -> Vec<Vec<Value>> {
    let rows: Vec<mysql_async::Row> = conn.exec(sql, ()).await.expect("select");
    rows.into_iter()
        .map(|row| {
            let values = row.unwrap();
            assert_eq!(values.len(), schema.columns.len());
            schema.columns.iter().zip(values).map(|(c, v)| expected(&c.column_type, v)).collect()
        })
        .collect()
}

fn assert_row_eq(schema: &TableSchema, what: &str, got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "{what}: column count");
    for ((column, g), w) in schema.columns.iter().zip(got).zip(want) {
        assert_eq!(g, w, "{what}: column {} ({})", column.name, column.column_type);
    }
}




#[tokio::test]
async fn every_column_type_equals_what_select_returns() {
    let mut f = fixture(&[]).await;
    f.conn.query_drop(ALL_TYPES).await.expect("create");
    let mut reader = reader_at_head(&mut f, "all_types").await;

    f.conn.query_drop(EXTREMES).await.expect("extremes");
    f.conn.query_drop("INSERT INTO shop.all_types (id) VALUES (2)").await.expect("nulls");
    f.conn.query_drop(ORDINARY).await.expect("ordinary");
    let events = read_changes(&mut reader, 3).await;
    let inserts = changes(&events);
    let schema = inserts[0].schema.clone();
    assert_eq!(schema.primary_key, ["id"]);
    assert_eq!(schema.column("d").unwrap().column_type, ColumnType::Decimal { precision: 65, scale: 30 });
    assert_eq!(schema.column("tm6").unwrap().column_type, ColumnType::Time { fsp: 6 });
    assert_eq!(schema.column("biu").unwrap().column_type, ColumnType::BigInt { unsigned: true });
    assert_eq!(
        schema.column("vcl").unwrap().column_type,
        ColumnType::VarChar { length: 50, charset: "latin1".into() }
    );
    assert_eq!(schema.column("vc").unwrap().column_type, ColumnType::VarChar { length: 100, charset: "utf8mb4".into() });
    assert_eq!(schema.column("c").unwrap().column_type, ColumnType::Char { length: 10, charset: "utf8mb4".into() });
    assert_eq!(schema.column("bn").unwrap().column_type, ColumnType::Binary { length: 6 });
    assert_eq!(
        schema.column("st").unwrap().column_type,
        ColumnType::Set { values: vec!["a".into(), "b".into(), "c".into(), "d".into()] }
    );
    assert_eq!(schema.column("enl").unwrap().column_type, ColumnType::Enum { values: vec!["é".into(), "ü".into()] });
    assert_eq!(schema.column("bt").unwrap().column_type, ColumnType::Bit { width: 12 });

    let selected = select_rows(&mut f.conn, &schema, "SELECT * FROM shop.all_types ORDER BY id").await;
    for (event, want) in inserts.iter().zip(&selected) {
        event.validate().expect("valid event");
        assert_eq!(event.op, Op::Insert);
        assert!(event.before.is_none());
        assert_row_eq(&schema, "insert", &event.after.as_ref().unwrap().values, want);
    }

    // Update the ordinary row to other values of every type; delete the extremes.
    f.conn
        .query_drop(
            "UPDATE shop.all_types SET ti = -1, tiu = 128, biu = 9223372036854775808, d = -0.5, d2 = 12.34,
             f = -0.0, db = 2.5e-300, dt = '2024-05-00', tm = '-00:00:01', dtm6 = '1000-01-01 00:00:00',
             ts = '1970-01-01 00:00:01.000001', yr = 1901, vc = '日本語', vcl = 'Ñandú', bn = X'01020304050607'
             , vb = X'0000', js = '{}', en = '', st = 'b,c', bt = b'111111111111', b64 = 1,
             g = ST_GeomFromText('LINESTRING(0 0, 10 10)', 3857) WHERE id = 3",
        )
        .await
        .expect("update");
    let after_update = select_rows(&mut f.conn, &schema, "SELECT * FROM shop.all_types WHERE id = 3").await;
    f.conn.query_drop("DELETE FROM shop.all_types WHERE id = 1").await.expect("delete");
    let events = read_changes(&mut reader, 2).await;
    let later = changes(&events);
    let update = later[0];
    update.validate().expect("valid update");
    assert_eq!(update.op, Op::Update);
    assert_row_eq(&schema, "update before", &update.before.as_ref().unwrap().values, &selected[2]);
    assert_row_eq(&schema, "update after", &update.after.as_ref().unwrap().values, &after_update[0]);
    let delete = later[1];
    delete.validate().expect("valid delete");
    assert_eq!(delete.op, Op::Delete);
    assert!(delete.after.is_none());
    assert_row_eq(&schema, "delete before", &delete.before.as_ref().unwrap().values, &selected[0]);
}

#[tokio::test]
async fn transactions_share_an_id_positions_increase_and_resume_reads_nothing_twice() {
    let mut f = fixture(&[]).await;
    f.conn.query_drop("CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20))").await.unwrap();
    let start = binlog_head(&mut f.conn, cdc_event::ServerFlavor::MariaDb).await.unwrap().unwrap();
    let mut reader = reader_at_head(&mut f, "t").await;

    f.conn.query_drop("INSERT INTO shop.t VALUES (1, 'one')").await.unwrap();
    f.conn
        .query_drop(
            "START TRANSACTION; INSERT INTO shop.t VALUES (2, 'a'), (3, 'b'); INSERT INTO shop.t VALUES (4, 'c');
             UPDATE shop.t SET v = 'z' WHERE id IN (2, 3); DELETE FROM shop.t WHERE id = 4; COMMIT",
        )
        .await
        .unwrap();
    f.conn.query_drop("INSERT INTO shop.t VALUES (5, 'five')").await.unwrap();
    let events = read_changes(&mut reader, 8).await;
    let all = changes(&events);
    assert_eq!(all.len(), 8);
    for pair in all.windows(2) {
        assert!(pair[0].position < pair[1].position, "{} then {}", pair[0].position, pair[1].position);
    }
    let tx_ids: Vec<&str> = all.iter().map(|e| e.tx_id.as_deref().unwrap()).collect();
    // MariaDB transactions are named by their GTID (domain-server-sequence).
    assert!(tx_ids.iter().all(|id| id.starts_with("0-1-")), "{tx_ids:?}");
    assert_ne!(tx_ids[0], tx_ids[1]);
    assert!(tx_ids[1..7].iter().all(|id| *id == tx_ids[1]), "{tx_ids:?}");
    assert_ne!(tx_ids[7], tx_ids[1]);
    let indexes: Vec<u32> = all[1..7].iter().map(|e| e.position.event_index).collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5, 6]);
    let ops: Vec<Op> = all[1..7].iter().map(|e| e.op).collect();
    assert_eq!(ops, [Op::Insert, Op::Insert, Op::Insert, Op::Update, Op::Update, Op::Delete]);
    assert!(all[1..7].iter().all(|e| e.position.offset == all[1].position.offset && e.position.gtid.is_some()));

    // The last transaction's commit has not been read yet: resuming repeats it, and only it.
    let resume = reader.resume_position().clone();
    assert_eq!(resume.file, start.file);
    assert!(resume.offset > all[6].position.offset && resume.offset <= all[7].position.offset, "{resume}");
    let last_seen = all[7].position.clone();
    // The boundary sorts after everything committed and before the next transaction.
    assert!(all[6].position < resume && resume < last_seen);
    drop(reader);

    f.conn.query_drop("INSERT INTO shop.t VALUES (6, 'six')").await.unwrap();
    let selector = TableSelector::new("shop", "t", "").unwrap();
    let config = BinlogReaderConfig::new(READER_ID + 1, "test", selector, resume.file.clone(), resume.offset)
        .with_heartbeat(Duration::from_millis(300));
    let mut again = BinlogReader::start(&f.opts, config).await.unwrap();
    let events = read_changes(&mut again, 2).await;
    let replay = changes(&events);
    assert_eq!(replay[0].position, last_seen, "the uncommitted-at-restart transaction is read again");
    assert_eq!(replay[0].after.as_ref().unwrap().values[0], Value::Int(5));
    assert_eq!(replay[1].after.as_ref().unwrap().values[0], Value::Int(6));
    assert!(replay[1].position > last_seen);

    // Idle: a heartbeat arrives, at or after the last change, and moves the resume point.
    let heartbeat = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(Event::Heartbeat(h)) = again.next_event().await.unwrap() {
                return h;
            }
        }
    })
    .await
    .expect("heartbeat within the deadline");
    assert!(heartbeat.position > replay[1].position, "{}", heartbeat.position);
    assert_eq!(again.resume_position(), &heartbeat.position);
}

#[tokio::test]
async fn ddl_mid_stream_changes_the_column_set_between_schema_change_events() {
    let mut f = fixture(&[]).await;
    f.conn.query_drop("CREATE TABLE shop.evolve (id INT PRIMARY KEY, a VARCHAR(10))").await.unwrap();
    let mut reader = reader_at_head(&mut f, "evolve").await;
    f.conn.query_drop("INSERT INTO shop.evolve VALUES (1, 'x')").await.unwrap();
    f.conn.query_drop("ALTER TABLE shop.evolve ADD COLUMN b INT UNSIGNED").await.unwrap();
    f.conn.query_drop("INSERT INTO shop.evolve VALUES (2, 'y', 5)").await.unwrap();
    // Unqualified: the DDL names its table relative to the session's default database.
    f.conn.query_drop("USE shop").await.unwrap();
    f.conn.query_drop("ALTER TABLE evolve DROP COLUMN a").await.unwrap();
    f.conn.query_drop("INSERT INTO shop.evolve VALUES (3, 7)").await.unwrap();
    let events = read_changes(&mut reader, 3).await;

    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Change(_) => "change",
            Event::SchemaChange(_) => "ddl",
            Event::Heartbeat(_) => "heartbeat",
        })
        .collect();
    assert_eq!(kinds, ["change", "ddl", "change", "ddl", "change"]);
    for pair in events.windows(2) {
        assert!(pair[0].position() < pair[1].position());
    }
    let names = |e: &Event| match e {
        Event::Change(c) => {
            c.validate().unwrap();
            (c.schema.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), c.schema.version)
        }
        _ => unreachable!(),
    };
    let (first, second, third) = (names(&events[0]), names(&events[2]), names(&events[4]));
    assert_eq!(first.0, ["id", "a"]);
    assert_eq!(second.0, ["id", "a", "b"]);
    assert_eq!(third.0, ["id", "b"]);
    // Each column set has its own version, the fingerprint of its columns and key.
    assert!(first.1 != second.1 && second.1 != third.1 && first.1 != third.1);
    for event in [&events[0], &events[2], &events[4]] {
        let Event::Change(c) = event else { unreachable!() };
        assert_eq!(c.schema.version, TableSchema::fingerprint(&c.schema.columns, &c.schema.primary_key));
    }
    match &events[1] {
        Event::SchemaChange(s) => {
            assert_eq!(s.table.as_ref().unwrap().to_string(), "shop.evolve");
            assert!(s.ddl.contains("ADD COLUMN b"));
        }
        other => panic!("{other:?}"),
    }
    match &events[4] {
        Event::Change(c) => assert_eq!(c.after.as_ref().unwrap().values, [Value::Int(3), Value::UInt(7)]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tables_not_selected_produce_nothing() {
    let mut f = fixture(&[]).await;
    f.conn
        .query_drop("CREATE TABLE shop.keep (id INT PRIMARY KEY); CREATE TABLE shop.skip (id INT PRIMARY KEY, s TEXT)")
        .await
        .unwrap();
    let mut reader = reader_at_head(&mut f, "keep").await;
    f.conn.query_drop("INSERT INTO shop.skip VALUES (1, 'no')").await.unwrap();
    f.conn.query_drop("INSERT INTO shop.keep VALUES (1)").await.unwrap();
    f.conn.query_drop("ALTER TABLE shop.skip ADD COLUMN t INT").await.unwrap();
    f.conn.query_drop("START TRANSACTION; INSERT INTO shop.skip VALUES (2, 'no', 1); INSERT INTO shop.keep VALUES (2); COMMIT").await.unwrap();
    let events = read_changes(&mut reader, 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    for (event, id) in changes(&events).iter().zip([1, 2]) {
        assert_eq!(event.table().to_string(), "shop.keep");
        assert_eq!(event.after.as_ref().unwrap().values, [Value::Int(id)]);
        // Indexes count emitted events only: the skipped row took none.
        assert_eq!(event.position.event_index, 1);
    }
}

#[tokio::test]
async fn without_row_metadata_the_schema_comes_from_information_schema() {
    let mut f = fixture(&["--binlog-row-metadata=MINIMAL"]).await;
    f.conn
        .query_drop(
            "CREATE TABLE shop.m (id BIGINT UNSIGNED PRIMARY KEY, n TINYINT UNSIGNED, e ENUM('p','q'),
             s SET('x','y'), l VARCHAR(10) CHARACTER SET latin1, b VARBINARY(4), c CHAR(3)) DEFAULT CHARSET=utf8mb4",
        )
        .await
        .unwrap();
    let mut reader = reader_at_head(&mut f, "m").await;
    f.conn
        .query_drop("INSERT INTO shop.m VALUES (18446744073709551615, 200, 'q', 'x,y', 'ñ€', X'0001', 'abc')")
        .await
        .unwrap();
    let events = read_changes(&mut reader, 1).await;
    let event = changes(&events)[0];
    event.validate().unwrap();
    assert_eq!(event.schema.primary_key, ["id"]);
    assert_eq!(event.schema.columns[6].column_type, ColumnType::Char { length: 3, charset: "utf8mb4".into() });
    let want = select_rows(&mut f.conn, &event.schema, "SELECT * FROM shop.m").await;
    assert_row_eq(&event.schema, "fallback insert", &event.after.as_ref().unwrap().values, &want[0]);
}
