//! Proptest strategies shared by the integration tests: schemas with every column type, rows
//! whose values fit them (including the edge values MySQL can hold), positions and events.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use cdc_event::*;
use proptest::prelude::*;
use proptest::sample::select;

/// Identifiers: ASCII, accented, CJK and 4-byte UTF-8 (emoji).
pub fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_][a-z0-9_]{0,10}", "[a-zé中😀🎉]{1,6}",]
}

/// Any text, including control characters, NUL, quotes and emoji.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?s).{0,16}",
        "[a-z 😀🎉\"\\\\,\u{0}\n]{0,12}",
        Just(String::new()),
    ]
}

pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        Just(vec![0u8; 5]),
        Just(Vec::new()),
    ]
}

fn member_names(allow_commas: bool) -> impl Strategy<Value = Vec<String>> {
    let member = if allow_commas {
        "[a-z,😀 ]{0,5}".boxed()
    } else {
        "[a-z😀 ]{1,5}".boxed()
    };
    prop::collection::btree_set(member, 0..6).prop_map(|set| set.into_iter().collect())
}

pub fn lob_size() -> impl Strategy<Value = LobSize> {
    select(vec![
        LobSize::Tiny,
        LobSize::Regular,
        LobSize::Medium,
        LobSize::Long,
    ])
}

pub fn charset() -> impl Strategy<Value = String> {
    select(vec!["utf8mb4", "latin1", "gbk", "utf8mb3", "binary"]).prop_map(str::to_owned)
}

pub fn column_type() -> impl Strategy<Value = ColumnType> {
    prop_oneof![
        any::<bool>().prop_map(|unsigned| ColumnType::TinyInt { unsigned }),
        any::<bool>().prop_map(|unsigned| ColumnType::SmallInt { unsigned }),
        any::<bool>().prop_map(|unsigned| ColumnType::MediumInt { unsigned }),
        any::<bool>().prop_map(|unsigned| ColumnType::Int { unsigned }),
        any::<bool>().prop_map(|unsigned| ColumnType::BigInt { unsigned }),
        (1u8..=65)
            .prop_flat_map(|precision| (Just(precision), 0..=precision.min(30)))
            .prop_map(|(precision, scale)| ColumnType::Decimal { precision, scale }),
        Just(ColumnType::Decimal {
            precision: 65,
            scale: 30
        }),
        Just(ColumnType::Float),
        Just(ColumnType::Double),
        Just(ColumnType::Date),
        (0u8..=6).prop_map(|fsp| ColumnType::Time { fsp }),
        (0u8..=6).prop_map(|fsp| ColumnType::DateTime { fsp }),
        (0u8..=6).prop_map(|fsp| ColumnType::Timestamp { fsp }),
        Just(ColumnType::Year),
        (0u32..=255, charset()).prop_map(|(length, charset)| ColumnType::Char { length, charset }),
        (0u32..=65_535, charset())
            .prop_map(|(length, charset)| ColumnType::VarChar { length, charset }),
        (lob_size(), charset()).prop_map(|(size, charset)| ColumnType::Text { size, charset }),
        (0u32..=255).prop_map(|length| ColumnType::Binary { length }),
        (0u32..=65_535).prop_map(|length| ColumnType::VarBinary { length }),
        lob_size().prop_map(|size| ColumnType::Blob { size }),
        Just(ColumnType::Json),
        member_names(true).prop_map(|values| ColumnType::Enum { values }),
        member_names(false).prop_map(|values| ColumnType::Set { values }),
        prop_oneof![Just(1u8), Just(64u8), 1u8..=64].prop_map(|width| ColumnType::Bit { width }),
        Just(ColumnType::Geometry),
    ]
}

fn signed(min: i64, max: i64) -> BoxedStrategy<Value> {
    prop_oneof![Just(min), Just(max), Just(0), min..=max]
        .prop_map(Value::Int)
        .boxed()
}

fn unsigned(max: u64) -> BoxedStrategy<Value> {
    prop_oneof![Just(0), Just(max), 0..=max]
        .prop_map(Value::UInt)
        .boxed()
}

/// DECIMAL(p,s) text as MySQL prints it: optional sign, 1..=p-s integer digits (a single 0
/// when p == s), exactly s fraction digits.
fn decimal(precision: u8, scale: u8) -> BoxedStrategy<Value> {
    let integer_digits = usize::from(precision - scale);
    let integer = if integer_digits == 0 {
        Just("0".to_owned()).boxed()
    } else {
        let regex = |pattern: String| {
            proptest::string::string_regex(&pattern).expect("valid digit pattern")
        };
        prop_oneof![
            regex(format!("[1-9][0-9]{{{}}}", integer_digits - 1)),
            regex(format!("[0-9]{{1,{integer_digits}}}")),
        ]
        .boxed()
    };
    let fraction =
        proptest::string::string_regex(&format!("[0-9]{{{scale}}}")).expect("valid digit pattern");
    (any::<bool>(), integer, fraction)
        .prop_map(move |(negative, integer, fraction)| {
            let sign = if negative { "-" } else { "" };
            if scale == 0 {
                Value::Decimal(format!("{sign}{integer}"))
            } else {
                Value::Decimal(format!("{sign}{integer}.{fraction}"))
            }
        })
        .boxed()
}

/// Finite f32s: uniform over bit patterns (every exponent, subnormals) plus named extremes and
/// a value whose shortest text double-rounds when read through f64.
pub fn float() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        select(vec![
            0.0f32,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x807f_ffff),
            f32::MAX,
            f32::MIN,
            f32::EPSILON,
            0.1,
            f32::from_bits(0x15ae_43fd),
        ]),
    ]
    .prop_filter("MySQL cannot store NaN or infinities", |f| f.is_finite())
}

pub fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        select(vec![
            0.0f64,
            -0.0,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            -f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            0.1,
        ]),
    ]
    .prop_filter("MySQL cannot store NaN or infinities", |f| f.is_finite())
}

/// Dates with any month 0..=12 and day 0..=31: calendar dates, zero and partial dates, and
/// invalid ones like 2024-02-31.
pub fn date() -> impl Strategy<Value = SqlDate> {
    prop_oneof![
        (0u16..=9999, 0u8..=12, 0u8..=31).prop_map(|(y, m, d)| SqlDate::new(y, m, d)),
        (1000u16..=9999, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| SqlDate::new(y, m, d)),
        select(vec![
            SqlDate::ZERO,
            SqlDate::new(2024, 0, 0),
            SqlDate::new(2024, 5, 0),
            SqlDate::new(0, 1, 1),
            SqlDate::new(9999, 12, 31),
            SqlDate::new(1970, 1, 1),
        ]),
    ]
}

pub fn time() -> impl Strategy<Value = SqlTime> {
    prop_oneof![
        (
            any::<bool>(),
            0u16..=838,
            0u8..=59,
            0u8..=59,
            0u32..=999_999
        )
            .prop_map(|(n, h, m, s, us)| SqlTime::new(n, h, m, s, us)),
        select(vec![
            SqlTime::new(false, 838, 59, 59, 999_999),
            SqlTime::new(true, 838, 59, 59, 999_999),
            SqlTime::new(true, 0, 0, 0, 1),
            SqlTime::new(true, 0, 0, 0, 0),
            SqlTime::new(false, 0, 0, 0, 0),
        ]),
    ]
}

pub fn datetime() -> impl Strategy<Value = SqlDateTime> {
    prop_oneof![
        (date(), 0u8..=23, 0u8..=59, 0u8..=59, 0u32..=999_999).prop_map(|(date, h, mi, s, us)| {
            SqlDateTime::new(date.year, date.month, date.day, h, mi, s, us)
        }),
        select(vec![
            SqlDateTime::ZERO,
            SqlDateTime::new(2024, 0, 0, 0, 0, 0, 0),
            SqlDateTime::new(9999, 12, 31, 23, 59, 59, 999_999),
            SqlDateTime::new(0, 1, 1, 0, 0, 0, 0),
        ]),
    ]
}

pub fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        MIN_TIMESTAMP_MICROS..=MAX_TIMESTAMP_MICROS,
        // MySQL's own TIMESTAMP range, 1970..2038.
        0i64..=2_147_483_647_999_999,
        select(vec![
            0,
            -1,
            MIN_TIMESTAMP_MICROS,
            MAX_TIMESTAMP_MICROS,
            1_700_000_000_123_456
        ]),
    ]
}

/// A value that fits `column_type` (never NULL; see [`value_or_null`]).
pub fn value(column_type: &ColumnType) -> BoxedStrategy<Value> {
    match column_type.clone() {
        ColumnType::TinyInt { unsigned: false } => signed(i8::MIN.into(), i8::MAX.into()),
        ColumnType::SmallInt { unsigned: false } => signed(i16::MIN.into(), i16::MAX.into()),
        ColumnType::MediumInt { unsigned: false } => signed(-(1 << 23), (1 << 23) - 1),
        ColumnType::Int { unsigned: false } => signed(i32::MIN.into(), i32::MAX.into()),
        ColumnType::BigInt { unsigned: false } => signed(i64::MIN, i64::MAX),
        ColumnType::TinyInt { unsigned: true } => unsigned(u8::MAX.into()),
        ColumnType::SmallInt { unsigned: true } => unsigned(u16::MAX.into()),
        ColumnType::MediumInt { unsigned: true } => unsigned((1 << 24) - 1),
        ColumnType::Int { unsigned: true } => unsigned(u32::MAX.into()),
        ColumnType::BigInt { unsigned: true } => unsigned(u64::MAX),
        ColumnType::Decimal { precision, scale } => decimal(precision, scale),
        ColumnType::Float => float().prop_map(Value::Float).boxed(),
        ColumnType::Double => double().prop_map(Value::Double).boxed(),
        ColumnType::Date => date().prop_map(Value::Date).boxed(),
        ColumnType::Time { .. } => time().prop_map(Value::Time).boxed(),
        ColumnType::DateTime { .. } => datetime().prop_map(Value::DateTime).boxed(),
        ColumnType::Timestamp { .. } => timestamp().prop_map(Value::Timestamp).boxed(),
        ColumnType::Year => prop_oneof![Just(0u16), 1901u16..=2155]
            .prop_map(Value::Year)
            .boxed(),
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            text().prop_map(Value::Text).boxed()
        }
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            bytes().prop_map(Value::Bytes).boxed()
        }
        ColumnType::Json => prop_oneof![
            Just(r#"{"a": [1, 2.5, null, true], "😀": "x"}"#.to_owned()),
            Just("[]".to_owned()),
            Just("null".to_owned()),
            text().prop_map(|t| serde_json::Value::String(t).to_string()),
        ]
        .prop_map(Value::Json)
        .boxed(),
        ColumnType::Enum { values } => {
            if values.is_empty() {
                Just(Value::Enum(String::new())).boxed()
            } else {
                prop_oneof![Just(String::new()), select(values)]
                    .prop_map(Value::Enum)
                    .boxed()
            }
        }
        ColumnType::Set { values } => {
            let len = values.len();
            prop::sample::subsequence(values, 0..=len)
                .prop_map(Value::Set)
                .boxed()
        }
        ColumnType::Bit { width } => {
            let max = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            prop_oneof![Just(0), Just(max), 0..=max]
                .prop_map(move |value| Value::Bit { width, value })
                .boxed()
        }
        ColumnType::Geometry => (any::<u32>(), bytes())
            .prop_map(|(srid, wkb)| Value::Geometry { srid, wkb })
            .boxed(),
    }
}

pub fn value_or_null(column_type: &ColumnType) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 6 => value(column_type)].boxed()
}

pub fn schema() -> impl Strategy<Value = Arc<TableSchema>> {
    (
        name(),
        name(),
        any::<u64>(),
        prop::collection::btree_set(name(), 1..8),
    )
        .prop_flat_map(|(database, table, version, names)| {
            let names: Vec<String> = names.into_iter().collect();
            let count = names.len();
            (
                Just((database, table, version, names)),
                prop::collection::vec((column_type(), any::<bool>()), count),
                prop::collection::vec(any::<bool>(), count),
            )
        })
        .prop_map(|((database, table, version, names), types, in_key)| {
            let primary_key = names
                .iter()
                .zip(&in_key)
                .filter(|(_, key)| **key)
                .map(|(name, _)| name.clone())
                .collect();
            let columns = names
                .into_iter()
                .zip(types)
                .map(|(name, (column_type, nullable))| ColumnDef::new(name, column_type, nullable))
                .collect();
            Arc::new(TableSchema {
                table: TableId::new(database, table),
                version,
                columns,
                primary_key,
            })
        })
}

pub fn row(schema: &TableSchema) -> BoxedStrategy<Row> {
    schema
        .columns
        .iter()
        .map(|c| value_or_null(&c.column_type))
        .collect::<Vec<_>>()
        .prop_map(Row::new)
        .boxed()
}

pub fn uuid() -> impl Strategy<Value = ServerUuid> {
    any::<[u8; 16]>().prop_map(ServerUuid)
}

pub fn gtid() -> impl Strategy<Value = Gtid> {
    prop_oneof![
        (
            uuid(),
            proptest::option::of("[a-z_][a-z0-9_]{0,31}"),
            any::<u64>()
        )
            .prop_map(|(source_id, tag, transaction_id)| Gtid::MySql {
                source_id,
                tag,
                transaction_id
            }),
        (any::<u32>(), any::<u32>(), any::<u64>()).prop_map(|(domain_id, server_id, sequence)| {
            Gtid::MariaDb {
                domain_id,
                server_id,
                sequence,
            }
        }),
    ]
}

pub fn flavor() -> impl Strategy<Value = ServerFlavor> {
    select(vec![
        ServerFlavor::MySql,
        ServerFlavor::MariaDb,
        ServerFlavor::OceanBase,
    ])
}

pub fn phase() -> impl Strategy<Value = Phase> {
    select(vec![Phase::Snapshot, Phase::Stream])
}

/// Ordinary binlog names and hostile ones (spaces, `%`, `:`, `#`, control characters, emoji).
pub fn binlog_file() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (select(vec!["binlog", "mysql-bin", "mariadb-bin"]), 1u64..=1_200_000)
            .prop_map(|(base, seq)| format!("{base}.{seq:06}")),
        1 => "(?s).{0,12}",
        1 => "[a -%:#😀\t.0-9]{0,12}",
    ]
}

pub fn position() -> impl Strategy<Value = Position> {
    (
        flavor(),
        binlog_file(),
        any::<u64>(),
        proptest::option::of(gtid()),
        phase(),
        any::<u32>(),
    )
        .prop_map(
            |(flavor, file, offset, gtid, phase, event_index)| Position {
                flavor,
                file,
                offset,
                gtid,
                phase,
                event_index,
            },
        )
}

pub fn op() -> impl Strategy<Value = Op> {
    select(vec![Op::Insert, Op::Update, Op::Delete, Op::Read])
}

/// A change event on `schema` whose images match its op.
pub fn change_on(schema: Arc<TableSchema>) -> impl Strategy<Value = ChangeEvent> {
    let before = row(&schema);
    let after = row(&schema);
    (
        op(),
        before,
        after,
        position(),
        any::<i64>(),
        proptest::option::of(select(vec![
            "tx-1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:23",
        ])),
        select(vec!["prod-db", "源😀"]),
        any::<u32>(),
    )
        .prop_map(
            move |(op, before, after, position, commit_ts_ms, tx_id, source_name, server_id)| {
                let (wants_before, wants_after) = op.expected_images();
                ChangeEvent {
                    op,
                    schema: Arc::clone(&schema),
                    before: wants_before.then_some(before),
                    after: wants_after.then_some(after),
                    position,
                    commit_ts_ms,
                    tx_id: tx_id.map(str::to_owned),
                    source_name: Arc::from(source_name),
                    server_id,
                }
            },
        )
}

pub fn change() -> impl Strategy<Value = ChangeEvent> {
    schema().prop_flat_map(change_on)
}

/// 1..=3 schemas shared by 1..12 events, as in a real batch.
pub fn change_batch() -> impl Strategy<Value = Vec<ChangeEvent>> {
    prop::collection::vec(schema(), 1..=3).prop_flat_map(|schemas| {
        let events = schemas
            .into_iter()
            .map(|schema| prop::collection::vec(change_on(schema), 1..=4))
            .collect::<Vec<_>>();
        (events, any::<u64>()).prop_map(|(groups, seed)| {
            // Interleave the tables' events deterministically from the seed.
            let mut all: Vec<ChangeEvent> = groups.into_iter().flatten().collect();
            let len = all.len();
            if len > 1 {
                for i in 0..len {
                    let j = (seed.wrapping_mul(i as u64 + 1) % len as u64) as usize;
                    all.swap(i, j);
                }
            }
            all
        })
    })
}

pub fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => change().prop_map(Event::Change),
        1 => (schema(), "(?s).{0,30}", any::<bool>(), position(), any::<i64>(), any::<u32>(), name())
            .prop_map(|(schema, ddl, dropped, position, commit_ts_ms, server_id, database)| {
                Event::SchemaChange(SchemaChangeEvent {
                    database,
                    ddl,
                    table: Some(schema.table.clone()),
                    schema: (!dropped).then_some(schema),
                    position,
                    commit_ts_ms,
                    source_name: Arc::from("prod-db"),
                    server_id,
                })
            }),
        1 => (position(), any::<i64>()).prop_map(|(position, ts_ms)| {
            Event::Heartbeat(HeartbeatEvent {
                position,
                ts_ms,
                source_name: Arc::from("prod-db"),
            })
        }),
    ]
}
