//! Debezium-compatible JSON: the output of Kafka Connect's `JsonConverter` with schemas enabled,
//! for Debezium's MySQL connector configured with
//! `decimal.handling.mode=string`, `binary.handling.mode=base64`,
//! `time.precision.mode=adaptive_time_microseconds` and `column.propagate.source.type=.*`.
//!
//! ```text
//! {"schema": {...envelope schema...},
//!  "payload": {"before": {...}|null, "after": {...}|null, "source": {...}, "op": "c",
//!              "ts_ms": 1700000000000, "transaction": {"id": "..."}|null}}
//! ```
//!
//! Value encodings (per column type):
//!
//! | MySQL                 | JSON                                   | Connect schema                             |
//! |-----------------------|----------------------------------------|--------------------------------------------|
//! | integer types         | number (BIGINT UNSIGNED exact to u64)  | int16/int32/int64 as Debezium maps them    |
//! | DECIMAL               | string                                 | string                                     |
//! | FLOAT / DOUBLE        | number (shortest exact text)           | float / double                             |
//! | DATE                  | days since epoch                       | int32 io.debezium.time.Date                |
//! | TIME                  | microseconds                           | int64 io.debezium.time.MicroTime           |
//! | DATETIME              | microseconds since epoch               | int64 io.debezium.time.MicroTimestamp      |
//! | TIMESTAMP             | ISO-8601 UTC string                    | string io.debezium.time.ZonedTimestamp     |
//! | YEAR                  | number                                 | int32 io.debezium.time.Year                |
//! | CHAR/VARCHAR/TEXT     | string                                 | string                                     |
//! | BINARY/VARBINARY/BLOB | base64 string                          | bytes                                      |
//! | JSON                  | string (the document text)             | string io.debezium.data.Json               |
//! | ENUM / SET            | string / comma-joined string           | string io.debezium.data.Enum / EnumSet     |
//! | BIT(1) / BIT(n)       | boolean / base64 little-endian bytes   | boolean / bytes io.debezium.data.Bits      |
//! | spatial               | {"wkb": base64, "srid": n}             | struct io.debezium.data.geometry.Geometry  |
//!
//! Deviations from Debezium, all so that nothing is lost:
//! - Zero, partial and invalid dates/datetimes (`0000-00-00`, `2024-00-00 00:00:00`), which
//!   Debezium turns into null, are written as the MySQL text string. A negative-zero TIME is
//!   written as `"-00:00:00"`. The field schema keeps the Debezium type, so such a value does not
//!   match its declared int type; [`from_json`] accepts either form.
//! - DATETIME is always MicroTimestamp (real adaptive mode uses millisecond Timestamp for
//!   DATETIME(0..3)), so sub-millisecond digits are never cut.
//! - BIGINT UNSIGNED is declared int64 as in Debezium's `long` mode, but the number is exact.
//! - Extra parameters: `__cdc.source.column.charset` and `__cdc.source.column.members` (a JSON
//!   array, since ENUM member names may contain commas) on columns, `__cdc.schema.version` and
//!   `__cdc.schema.primary_key` on the envelope schema, and `cdc_flavor` in `source`.
//! - `source.pos` is [`Position::offset`] (the transaction start) and `source.row` is
//!   [`Position::event_index`] (the index within the transaction); `snapshot` is `"true"` for
//!   [`Phase::Snapshot`]. Together with `file`, `gtid` and `cdc_flavor` they restore the
//!   position exactly. `payload.ts_ms` repeats the commit time, so the output is deterministic.

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde_json::{Map, Number, Value as Json};

use crate::model::{
    ChangeEvent, ColumnDef, ColumnType, Gtid, LobSize, Op, Phase, Position, Row, ServerFlavor,
    SqlDate, SqlDateTime, SqlTime, TableId, TableSchema, ValidationError, Value, ValueCheckError,
};

/// `source.connector`.
pub const CONNECTOR: &str = "mysql";
/// `source.version`: this crate's version (Debezium puts its own release here).
pub const SOURCE_VERSION: &str = concat!("cdc-event-", env!("CARGO_PKG_VERSION"));

/// Debezium's `column.propagate.source.type` parameters.
pub const PARAM_SOURCE_TYPE: &str = "__debezium.source.column.type";
pub const PARAM_SOURCE_LENGTH: &str = "__debezium.source.column.length";
pub const PARAM_SOURCE_SCALE: &str = "__debezium.source.column.scale";
/// Our additions, needed to rebuild the exact [`ColumnType`] and [`TableSchema`].
pub const PARAM_CHARSET: &str = "__cdc.source.column.charset";
pub const PARAM_MEMBERS: &str = "__cdc.source.column.members";
pub const PARAM_SCHEMA_VERSION: &str = "__cdc.schema.version";
pub const PARAM_PRIMARY_KEY: &str = "__cdc.schema.primary_key";
/// Debezium's member list on Enum / EnumSet schemas (comma-joined; informational only).
const PARAM_ALLOWED: &str = "allowed";

/// `NaiveDate::num_days_from_ce()` of 1970-01-01: converts CE day numbers to epoch days.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Error decoding Debezium JSON; `path` names the failing element, e.g.
/// `payload.after.price` or `schema.fields[1].fields[3].parameters`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonDecodeError {
    #[error("malformed JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("{path}: missing")]
    Missing { path: String },
    #[error("{path}: expected {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
    #[error("{path}: invalid value: {reason}")]
    InvalidValue { path: String, reason: String },
    #[error("{path}: unknown source column type {type_name:?}")]
    UnknownColumnType { path: String, type_name: String },
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Encodes `event` as a Debezium JSON document. Fails when the event breaks a model invariant
/// the encoding relies on (a value that does not fit its column, a row of the wrong length,
/// duplicate column names) — see [`ChangeEvent::validate`].
pub fn to_json(event: &ChangeEvent) -> Result<Json, ValidationError> {
    let schema = &event.schema;
    schema.validate()?;
    let before = encode_image(schema, event.before.as_ref(), "before")?;
    let after = encode_image(schema, event.after.as_ref(), "after")?;

    let mut payload = Map::new();
    payload.insert("before".into(), before);
    payload.insert("after".into(), after);
    payload.insert("source".into(), source_block(event));
    payload.insert("op".into(), event.op.code().into());
    payload.insert("ts_ms".into(), event.commit_ts_ms.into());
    payload.insert(
        "transaction".into(),
        match &event.tx_id {
            Some(id) => {
                let mut block = Map::new();
                block.insert("id".into(), id.as_str().into());
                Json::Object(block)
            }
            None => Json::Null,
        },
    );

    let mut document = Map::new();
    document.insert("schema".into(), envelope_schema(event));
    document.insert("payload".into(), Json::Object(payload));
    Ok(Json::Object(document))
}

/// [`to_json`] serialized to bytes.
pub fn to_vec(event: &ChangeEvent) -> Result<Vec<u8>, ValidationError> {
    Ok(to_json(event)?.to_string().into_bytes())
}

fn encode_image(
    schema: &TableSchema,
    row: Option<&Row>,
    image: &'static str,
) -> Result<Json, ValidationError> {
    let Some(row) = row else {
        return Ok(Json::Null);
    };
    schema.validate_row(row, image)?;
    let mut object = Map::new();
    for (column, value) in schema.columns.iter().zip(&row.values) {
        let json =
            encode_value(&column.column_type, value).map_err(|source| ValidationError::Value {
                table: schema.table.clone(),
                column: column.name.clone(),
                source,
            })?;
        object.insert(column.name.clone(), json);
    }
    Ok(Json::Object(object))
}

fn finite_number(value: f64, kind: &'static str) -> Result<Json, ValueCheckError> {
    Number::from_f64(value)
        .map(Json::Number)
        .ok_or(ValueCheckError::Invalid {
            value: kind,
            reason: "NaN and infinities cannot be stored in MySQL",
        })
}

/// An f64 JSON number that narrows back to exactly `value`, printed as short as possible.
/// serde_json stores floats as f64; widening the f32 directly would print `0.1f32` as
/// `0.10000000149011612`, so the shortest f32 text is used instead — unless reading that text
/// as f64 and narrowing to f32 double-rounds to a neighbour (it does for some values, e.g.
/// `7.038531e-26`); then the exact widened value is written.
fn float_number(value: f32) -> Result<Json, ValueCheckError> {
    let widened = format!("{value:e}")
        .parse::<f64>()
        .ok()
        .filter(|shortest| (*shortest as f32).to_bits() == value.to_bits())
        .unwrap_or(f64::from(value));
    finite_number(widened, "Float")
}

fn epoch_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

/// ISO-8601 UTC text as Debezium's ZonedTimestamp prints it: `2024-01-02T03:04:05.120Z`, with
/// `fsp` fraction digits, or six when the value has more precision than the column declares.
fn zoned_timestamp_text(micros: i64, fsp: u8) -> Option<String> {
    let instant = DateTime::<Utc>::from_timestamp_micros(micros)?;
    let naive = instant.naive_utc();
    let year = naive.year();
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut text = format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        naive.month(),
        naive.day(),
        naive.hour(),
        naive.minute(),
        naive.second()
    );
    let fraction = micros.rem_euclid(1_000_000);
    let fsp = u32::from(fsp.min(6));
    let dropped_digits = 10i64.pow(6 - fsp);
    if fraction % dropped_digits == 0 {
        if fsp > 0 {
            text.push_str(&format!(
                ".{:0width$}",
                fraction / dropped_digits,
                width = fsp as usize
            ));
        }
    } else {
        text.push_str(&format!(".{fraction:06}"));
    }
    text.push('Z');
    Some(text)
}

fn bits_to_bytes(width: u8, value: u64) -> Vec<u8> {
    // Debezium's Bits: little-endian, just enough bytes for `width` bits.
    let len = usize::from(width).div_ceil(8);
    value.to_le_bytes()[..len.min(8)].to_vec()
}

/// One value, already checked against its column by `validate_row`.
fn encode_value(column_type: &ColumnType, value: &Value) -> Result<Json, ValueCheckError> {
    let mismatch = || ValueCheckError::TypeMismatch {
        value: value.kind(),
        column_type: column_type.type_name(),
    };
    Ok(match value {
        Value::Null => Json::Null,
        Value::Int(v) => Json::from(*v),
        Value::UInt(v) => Json::from(*v),
        Value::Float(v) => float_number(*v)?,
        Value::Double(v) => finite_number(*v, "Double")?,
        Value::Decimal(text) | Value::Text(text) | Value::Json(text) | Value::Enum(text) => {
            Json::String(text.clone())
        }
        Value::Date(date) => match date.to_naive() {
            Some(date) => Json::from(epoch_days(date)),
            // Zero / partial / invalid dates: Debezium has no int for them.
            None => Json::String(date.to_string()),
        },
        Value::Time(time) => {
            if time.negative && time.is_zero_magnitude() {
                // -0 microseconds would read back as +0.
                Json::String(time.to_string())
            } else {
                Json::from(time.to_micros())
            }
        }
        Value::DateTime(datetime) => match datetime.to_naive() {
            Some(naive) => Json::from(naive.and_utc().timestamp_micros()),
            None => Json::String(datetime.to_string()),
        },
        Value::Timestamp(micros) => {
            let ColumnType::Timestamp { fsp } = column_type else {
                return Err(mismatch());
            };
            Json::String(
                zoned_timestamp_text(*micros, *fsp).ok_or(ValueCheckError::Invalid {
                    value: "Timestamp",
                    reason: "outside years 0000..=9999",
                })?,
            )
        }
        Value::Year(year) => Json::from(*year),
        Value::Bytes(bytes) => Json::String(BASE64.encode(bytes)),
        Value::Set(members) => Json::String(members.join(",")),
        Value::Bit { width, value } => {
            if *width == 1 {
                Json::Bool(*value != 0)
            } else {
                Json::String(BASE64.encode(bits_to_bytes(*width, *value)))
            }
        }
        Value::Geometry { srid, wkb } => {
            let mut object = Map::new();
            object.insert("wkb".into(), Json::String(BASE64.encode(wkb)));
            object.insert("srid".into(), Json::from(*srid));
            Json::Object(object)
        }
    })
}

/// (Connect type, logical name) as Debezium's MySQL connector maps each column type.
fn connect_type(column_type: &ColumnType) -> (&'static str, Option<&'static str>) {
    match column_type {
        ColumnType::TinyInt { .. } | ColumnType::SmallInt { unsigned: false } => ("int16", None),
        ColumnType::SmallInt { unsigned: true }
        | ColumnType::MediumInt { .. }
        | ColumnType::Int { unsigned: false } => ("int32", None),
        ColumnType::Int { unsigned: true } | ColumnType::BigInt { .. } => ("int64", None),
        ColumnType::Decimal { .. }
        | ColumnType::Char { .. }
        | ColumnType::VarChar { .. }
        | ColumnType::Text { .. } => ("string", None),
        ColumnType::Float => ("float", None),
        ColumnType::Double => ("double", None),
        ColumnType::Date => ("int32", Some("io.debezium.time.Date")),
        ColumnType::Time { .. } => ("int64", Some("io.debezium.time.MicroTime")),
        ColumnType::DateTime { .. } => ("int64", Some("io.debezium.time.MicroTimestamp")),
        ColumnType::Timestamp { .. } => ("string", Some("io.debezium.time.ZonedTimestamp")),
        ColumnType::Year => ("int32", Some("io.debezium.time.Year")),
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            ("bytes", None)
        }
        ColumnType::Json => ("string", Some("io.debezium.data.Json")),
        ColumnType::Enum { .. } => ("string", Some("io.debezium.data.Enum")),
        ColumnType::Set { .. } => ("string", Some("io.debezium.data.EnumSet")),
        ColumnType::Bit { width: 1 } => ("boolean", None),
        ColumnType::Bit { .. } => ("bytes", Some("io.debezium.data.Bits")),
        ColumnType::Geometry => ("struct", Some("io.debezium.data.geometry.Geometry")),
    }
}

fn column_parameters(column_type: &ColumnType) -> Map<String, Json> {
    let mut parameters = Map::new();
    parameters.insert(PARAM_SOURCE_TYPE.into(), column_type.type_name().into());
    let mut put = |key: &str, value: String| {
        parameters.insert(key.to_owned(), Json::String(value));
    };
    match column_type {
        ColumnType::Decimal { precision, scale } => {
            put(PARAM_SOURCE_LENGTH, precision.to_string());
            put(PARAM_SOURCE_SCALE, scale.to_string());
        }
        ColumnType::Time { fsp } | ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp } => {
            put(PARAM_SOURCE_LENGTH, fsp.to_string());
        }
        ColumnType::Char { length, charset } | ColumnType::VarChar { length, charset } => {
            put(PARAM_SOURCE_LENGTH, length.to_string());
            put(PARAM_CHARSET, charset.clone());
        }
        ColumnType::Text { charset, .. } => put(PARAM_CHARSET, charset.clone()),
        ColumnType::Binary { length } | ColumnType::VarBinary { length } => {
            put(PARAM_SOURCE_LENGTH, length.to_string());
        }
        ColumnType::Enum { values } | ColumnType::Set { values } => {
            put(PARAM_ALLOWED, values.join(","));
            put(PARAM_MEMBERS, Json::from(values.clone()).to_string());
        }
        ColumnType::Bit { width } => {
            put(PARAM_SOURCE_LENGTH, width.to_string());
            if *width > 1 {
                // Debezium's Bits schema carries the bit count as "length".
                put("length", width.to_string());
            }
        }
        _ => {}
    }
    parameters
}

fn field_schema(
    connect_type: &str,
    optional: bool,
    name: Option<&str>,
    field: &str,
) -> Map<String, Json> {
    let mut schema = Map::new();
    schema.insert("type".into(), connect_type.into());
    schema.insert("optional".into(), optional.into());
    if let Some(name) = name {
        schema.insert("name".into(), name.into());
        schema.insert("version".into(), 1.into());
    }
    schema.insert("field".into(), field.into());
    schema
}

fn column_schema(column: &ColumnDef) -> Json {
    let (connect, logical) = connect_type(&column.column_type);
    let mut schema = field_schema(connect, column.nullable, logical, &column.name);
    if column.column_type == ColumnType::Geometry {
        schema.insert(
            "fields".into(),
            Json::Array(vec![
                Json::Object(field_schema("bytes", false, None, "wkb")),
                Json::Object(field_schema("int32", true, None, "srid")),
            ]),
        );
    }
    schema.insert(
        "parameters".into(),
        Json::Object(column_parameters(&column.column_type)),
    );
    Json::Object(schema)
}

fn row_schema(event: &ChangeEvent, field: &str) -> Json {
    let columns = event.schema.columns.iter().map(column_schema).collect();
    let mut schema = field_schema(
        "struct",
        true,
        Some(&format!(
            "{}.{}.Value",
            event.source_name, event.schema.table
        )),
        field,
    );
    schema.remove("version");
    schema.insert("fields".into(), Json::Array(columns));
    Json::Object(schema)
}

/// The `source` struct schema, identical for every event.
fn source_schema() -> Json {
    static SCHEMA: OnceLock<Json> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields = [
                ("string", false, "version"),
                ("string", false, "connector"),
                ("string", false, "name"),
                ("int64", false, "ts_ms"),
                ("string", true, "snapshot"),
                ("string", false, "db"),
                ("string", true, "table"),
                ("int64", false, "server_id"),
                ("string", true, "gtid"),
                ("string", false, "file"),
                ("int64", false, "pos"),
                ("int32", false, "row"),
                ("int64", true, "thread"),
                ("string", true, "query"),
                ("string", false, "cdc_flavor"),
            ]
            .into_iter()
            .map(|(connect, optional, field)| {
                let mut schema = field_schema(connect, optional, None, field);
                if field == "snapshot" {
                    schema.insert("name".into(), "io.debezium.data.Enum".into());
                    schema.insert("version".into(), 1.into());
                    let mut parameters = Map::new();
                    parameters.insert(PARAM_ALLOWED.into(), "true,last,false,incremental".into());
                    schema.insert("parameters".into(), Json::Object(parameters));
                }
                Json::Object(schema)
            })
            .collect();
            let mut schema = field_schema(
                "struct",
                false,
                Some("io.debezium.connector.mysql.Source"),
                "source",
            );
            schema.insert("fields".into(), Json::Array(fields));
            Json::Object(schema)
        })
        .clone()
}

fn transaction_schema() -> Json {
    let mut schema = field_schema("struct", true, Some("event.block"), "transaction");
    schema.insert(
        "fields".into(),
        Json::Array(vec![Json::Object(field_schema(
            "string", false, None, "id",
        ))]),
    );
    Json::Object(schema)
}

fn envelope_schema(event: &ChangeEvent) -> Json {
    let mut schema = Map::new();
    schema.insert("type".into(), "struct".into());
    schema.insert(
        "fields".into(),
        Json::Array(vec![
            row_schema(event, "before"),
            row_schema(event, "after"),
            source_schema(),
            Json::Object(field_schema("string", false, None, "op")),
            Json::Object(field_schema("int64", true, None, "ts_ms")),
            transaction_schema(),
        ]),
    );
    schema.insert("optional".into(), false.into());
    schema.insert(
        "name".into(),
        format!("{}.{}.Envelope", event.source_name, event.schema.table).into(),
    );
    let mut parameters = Map::new();
    parameters.insert(
        PARAM_SCHEMA_VERSION.into(),
        event.schema.version.to_string().into(),
    );
    parameters.insert(
        PARAM_PRIMARY_KEY.into(),
        Json::from(event.schema.primary_key.clone())
            .to_string()
            .into(),
    );
    schema.insert("parameters".into(), Json::Object(parameters));
    Json::Object(schema)
}

fn source_block(event: &ChangeEvent) -> Json {
    let position = &event.position;
    let table = &event.schema.table;
    let mut source = Map::new();
    source.insert("version".into(), SOURCE_VERSION.into());
    source.insert("connector".into(), CONNECTOR.into());
    source.insert("name".into(), Json::String(event.source_name.to_string()));
    source.insert("ts_ms".into(), event.commit_ts_ms.into());
    source.insert(
        "snapshot".into(),
        match position.phase {
            Phase::Snapshot => "true",
            Phase::Stream => "false",
        }
        .into(),
    );
    source.insert("db".into(), table.database.as_str().into());
    source.insert("table".into(), table.table.as_str().into());
    source.insert("server_id".into(), event.server_id.into());
    source.insert(
        "gtid".into(),
        match &position.gtid {
            Some(gtid) => gtid.to_string().into(),
            None => Json::Null,
        },
    );
    source.insert("file".into(), position.file.as_str().into());
    source.insert("pos".into(), position.offset.into());
    source.insert("row".into(), position.event_index.into());
    source.insert("thread".into(), Json::Null);
    source.insert("query".into(), Json::Null);
    source.insert("cdc_flavor".into(), position.flavor.as_str().into());
    Json::Object(source)
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Parses a Debezium JSON document produced by [`to_vec`].
pub fn from_slice(bytes: &[u8]) -> Result<ChangeEvent, JsonDecodeError> {
    let document: Json = serde_json::from_slice(bytes)?;
    from_json(&document)
}

/// Rebuilds the event from a document produced by [`to_json`]. The `schema` part is required:
/// column types come from its source-type parameters. Optional extras missing from foreign
/// Debezium documents get defaults (flavor from `connector`, row 0, schema version 0, no
/// primary key).
pub fn from_json(document: &Json) -> Result<ChangeEvent, JsonDecodeError> {
    let document = as_object(document, "")?;
    let envelope = as_object(get(document, "schema", "")?, "schema")?;
    let payload = as_object(get(document, "payload", "")?, "payload")?;
    let source = as_object(get(payload, "source", "payload")?, "payload.source")?;

    let table = TableId::new(
        get_str(source, "db", "payload.source")?,
        get_str(source, "table", "payload.source")?,
    );
    let schema = Arc::new(decode_table_schema(envelope, table)?);

    let op_code = get_str(payload, "op", "payload")?;
    let op = Op::from_code(op_code).ok_or_else(|| invalid("payload.op", "unknown op code"))?;
    let before = decode_image(payload, "before", &schema)?;
    let after = decode_image(payload, "after", &schema)?;

    let tx_id = match payload.get("transaction") {
        None | Some(Json::Null) => None,
        Some(block) => {
            let block = as_object(block, "payload.transaction")?;
            Some(get_str(block, "id", "payload.transaction")?.to_owned())
        }
    };

    Ok(ChangeEvent {
        op,
        schema,
        before,
        after,
        position: decode_position(source)?,
        commit_ts_ms: get_i64(source, "ts_ms", "payload.source")?,
        tx_id,
        source_name: Arc::from(get_str(source, "name", "payload.source")?),
        server_id: get_uint(source, "server_id", "payload.source")?,
    })
}

fn path_of(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> JsonDecodeError {
    JsonDecodeError::InvalidValue {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn wrong_type(path: &str, expected: &'static str) -> JsonDecodeError {
    JsonDecodeError::WrongType {
        path: path.to_owned(),
        expected,
    }
}

fn as_object<'a>(value: &'a Json, path: &str) -> Result<&'a Map<String, Json>, JsonDecodeError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, "an object"))
}

fn get<'a>(
    object: &'a Map<String, Json>,
    key: &str,
    parent: &str,
) -> Result<&'a Json, JsonDecodeError> {
    object.get(key).ok_or_else(|| JsonDecodeError::Missing {
        path: path_of(parent, key),
    })
}

fn get_str<'a>(
    object: &'a Map<String, Json>,
    key: &str,
    parent: &str,
) -> Result<&'a str, JsonDecodeError> {
    get(object, key, parent)?
        .as_str()
        .ok_or_else(|| wrong_type(&path_of(parent, key), "a string"))
}

fn get_i64(object: &Map<String, Json>, key: &str, parent: &str) -> Result<i64, JsonDecodeError> {
    get(object, key, parent)?
        .as_i64()
        .ok_or_else(|| wrong_type(&path_of(parent, key), "an integer in i64 range"))
}

fn get_uint<T: TryFrom<u64>>(
    object: &Map<String, Json>,
    key: &str,
    parent: &str,
) -> Result<T, JsonDecodeError> {
    get(object, key, parent)?
        .as_u64()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| wrong_type(&path_of(parent, key), "a non-negative integer in range"))
}

fn decode_position(source: &Map<String, Json>) -> Result<Position, JsonDecodeError> {
    const PARENT: &str = "payload.source";
    let flavor = match source.get("cdc_flavor") {
        Some(flavor) => {
            let flavor = flavor
                .as_str()
                .ok_or_else(|| wrong_type("payload.source.cdc_flavor", "a string"))?;
            ServerFlavor::parse(flavor)
                .ok_or_else(|| invalid("payload.source.cdc_flavor", "unknown server flavor"))?
        }
        // Foreign Debezium output: Debezium's MariaDB connector names itself "mariadb".
        None => match source.get("connector").and_then(Json::as_str) {
            Some("mariadb") => ServerFlavor::MariaDb,
            _ => ServerFlavor::MySql,
        },
    };
    let phase = match source.get("snapshot") {
        None | Some(Json::Null) | Some(Json::Bool(false)) => Phase::Stream,
        Some(Json::Bool(true)) => Phase::Snapshot,
        Some(Json::String(text)) if text == "false" => Phase::Stream,
        // "true", "last", "first", "incremental", ...: all snapshot reads.
        Some(Json::String(_)) => Phase::Snapshot,
        Some(_) => return Err(wrong_type("payload.source.snapshot", "a string")),
    };
    let gtid = match source.get("gtid") {
        None | Some(Json::Null) => None,
        Some(Json::String(text)) => Some(
            text.parse::<Gtid>()
                .map_err(|e| invalid("payload.source.gtid", e.to_string()))?,
        ),
        Some(_) => return Err(wrong_type("payload.source.gtid", "a string or null")),
    };
    let event_index = match source.get("row") {
        None | Some(Json::Null) => 0,
        Some(_) => get_uint(source, "row", PARENT)?,
    };
    Ok(Position {
        flavor,
        file: get_str(source, "file", PARENT)?.to_owned(),
        offset: get_uint(source, "pos", PARENT)?,
        gtid,
        phase,
        event_index,
    })
}

fn decode_table_schema(
    envelope: &Map<String, Json>,
    table: TableId,
) -> Result<TableSchema, JsonDecodeError> {
    let fields = get(envelope, "fields", "schema")?
        .as_array()
        .ok_or_else(|| wrong_type("schema.fields", "an array"))?;
    // before and after share one row schema; read after's, or before's if after is absent.
    let find = |image: &str| {
        fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.get("field").and_then(Json::as_str) == Some(image))
    };
    let (row_index, row_schema) =
        find("after")
            .or_else(|| find("before"))
            .ok_or_else(|| JsonDecodeError::Missing {
                path: "schema.fields[field=after]".into(),
            })?;
    let row_path = format!("schema.fields[{row_index}]");
    let row_schema = as_object(row_schema, &row_path)?;
    let columns = get(row_schema, "fields", &row_path)?
        .as_array()
        .ok_or_else(|| wrong_type(&path_of(&row_path, "fields"), "an array"))?
        .iter()
        .enumerate()
        .map(|(i, column)| decode_column(column, &format!("{row_path}.fields[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;

    let parameters = match envelope.get("parameters") {
        Some(parameters) => Some(as_object(parameters, "schema.parameters")?),
        None => None,
    };
    let version = match parameters.and_then(|p| p.get(PARAM_SCHEMA_VERSION)) {
        None => 0,
        Some(version) => version
            .as_str()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid("schema.parameters", "schema version is not a u64 string"))?,
    };
    let primary_key = match parameters.and_then(|p| p.get(PARAM_PRIMARY_KEY)) {
        None => Vec::new(),
        Some(key) => key
            .as_str()
            .and_then(|text| serde_json::from_str::<Vec<String>>(text).ok())
            .ok_or_else(|| {
                invalid(
                    "schema.parameters",
                    "primary key is not a JSON array of names",
                )
            })?,
    };
    Ok(TableSchema {
        table,
        version,
        columns,
        primary_key,
    })
}

fn decode_column(column: &Json, path: &str) -> Result<ColumnDef, JsonDecodeError> {
    let column = as_object(column, path)?;
    let name = get_str(column, "field", path)?.to_owned();
    let nullable = get(column, "optional", path)?
        .as_bool()
        .ok_or_else(|| wrong_type(&path_of(path, "optional"), "a boolean"))?;
    let parameters_path = path_of(path, "parameters");
    let parameters = as_object(get(column, "parameters", path)?, &parameters_path)?;
    let column_type = decode_column_type(parameters, &parameters_path)?;
    Ok(ColumnDef {
        name,
        column_type,
        nullable,
    })
}

fn decode_column_type(
    parameters: &Map<String, Json>,
    path: &str,
) -> Result<ColumnType, JsonDecodeError> {
    let number_param = |key: &str| -> Result<u64, JsonDecodeError> {
        get_str(parameters, key, path)?
            .parse::<u64>()
            .map_err(|_| invalid(&path_of(path, key), "not an unsigned integer"))
    };
    let u8_param = |key: &str| -> Result<u8, JsonDecodeError> {
        u8::try_from(number_param(key)?).map_err(|_| invalid(&path_of(path, key), "above 255"))
    };
    let u32_param = |key: &str| -> Result<u32, JsonDecodeError> {
        u32::try_from(number_param(key)?)
            .map_err(|_| invalid(&path_of(path, key), "above u32::MAX"))
    };
    let charset = || -> Result<String, JsonDecodeError> {
        Ok(get_str(parameters, PARAM_CHARSET, path)?.to_owned())
    };
    let members = || -> Result<Vec<String>, JsonDecodeError> {
        serde_json::from_str(get_str(parameters, PARAM_MEMBERS, path)?)
            .map_err(|_| invalid(&path_of(path, PARAM_MEMBERS), "not a JSON array of strings"))
    };
    let type_name = get_str(parameters, PARAM_SOURCE_TYPE, path)?;
    Ok(match type_name {
        "TINYINT" => ColumnType::TinyInt { unsigned: false },
        "TINYINT UNSIGNED" => ColumnType::TinyInt { unsigned: true },
        "SMALLINT" => ColumnType::SmallInt { unsigned: false },
        "SMALLINT UNSIGNED" => ColumnType::SmallInt { unsigned: true },
        "MEDIUMINT" => ColumnType::MediumInt { unsigned: false },
        "MEDIUMINT UNSIGNED" => ColumnType::MediumInt { unsigned: true },
        "INT" => ColumnType::Int { unsigned: false },
        "INT UNSIGNED" => ColumnType::Int { unsigned: true },
        "BIGINT" => ColumnType::BigInt { unsigned: false },
        "BIGINT UNSIGNED" => ColumnType::BigInt { unsigned: true },
        "DECIMAL" => ColumnType::Decimal {
            precision: u8_param(PARAM_SOURCE_LENGTH)?,
            scale: u8_param(PARAM_SOURCE_SCALE)?,
        },
        "FLOAT" => ColumnType::Float,
        "DOUBLE" => ColumnType::Double,
        "DATE" => ColumnType::Date,
        "TIME" => ColumnType::Time {
            fsp: u8_param(PARAM_SOURCE_LENGTH)?,
        },
        "DATETIME" => ColumnType::DateTime {
            fsp: u8_param(PARAM_SOURCE_LENGTH)?,
        },
        "TIMESTAMP" => ColumnType::Timestamp {
            fsp: u8_param(PARAM_SOURCE_LENGTH)?,
        },
        "YEAR" => ColumnType::Year,
        "CHAR" => ColumnType::Char {
            length: u32_param(PARAM_SOURCE_LENGTH)?,
            charset: charset()?,
        },
        "VARCHAR" => ColumnType::VarChar {
            length: u32_param(PARAM_SOURCE_LENGTH)?,
            charset: charset()?,
        },
        "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" => ColumnType::Text {
            size: lob_size(type_name.trim_end_matches("TEXT")),
            charset: charset()?,
        },
        "BINARY" => ColumnType::Binary {
            length: u32_param(PARAM_SOURCE_LENGTH)?,
        },
        "VARBINARY" => ColumnType::VarBinary {
            length: u32_param(PARAM_SOURCE_LENGTH)?,
        },
        "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => ColumnType::Blob {
            size: lob_size(type_name.trim_end_matches("BLOB")),
        },
        "JSON" => ColumnType::Json,
        "ENUM" => ColumnType::Enum { values: members()? },
        "SET" => ColumnType::Set { values: members()? },
        "BIT" => ColumnType::Bit {
            width: u8_param(PARAM_SOURCE_LENGTH)?,
        },
        "GEOMETRY" => ColumnType::Geometry,
        _ => {
            return Err(JsonDecodeError::UnknownColumnType {
                path: path_of(path, PARAM_SOURCE_TYPE),
                type_name: type_name.to_owned(),
            })
        }
    })
}

fn lob_size(prefix: &str) -> LobSize {
    match prefix {
        "TINY" => LobSize::Tiny,
        "MEDIUM" => LobSize::Medium,
        "LONG" => LobSize::Long,
        _ => LobSize::Regular,
    }
}

fn decode_image(
    payload: &Map<String, Json>,
    image: &str,
    schema: &TableSchema,
) -> Result<Option<Row>, JsonDecodeError> {
    let image_path = path_of("payload", image);
    let object = match get(payload, image, "payload")? {
        Json::Null => return Ok(None),
        object => as_object(object, &image_path)?,
    };
    // Every column must be present, and nothing else (column names are unique).
    if object.len() != schema.columns.len() {
        return Err(invalid(
            &image_path,
            format!(
                "{} fields for {} columns",
                object.len(),
                schema.columns.len()
            ),
        ));
    }
    let values = schema
        .columns
        .iter()
        .map(|column| {
            let json = get(object, &column.name, &image_path)?;
            decode_value(&column.column_type, json, &image_path, &column.name)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Row { values }))
}

fn decode_base64(text: &str, path: impl Fn() -> String) -> Result<Vec<u8>, JsonDecodeError> {
    BASE64
        .decode(text)
        .map_err(|e| invalid(&path(), format!("bad base64: {e}")))
}

fn decode_value(
    column_type: &ColumnType,
    json: &Json,
    parent: &str,
    column: &str,
) -> Result<Value, JsonDecodeError> {
    let path = || path_of(parent, column);
    if json.is_null() {
        return Ok(Value::Null);
    }
    let string = || json.as_str().ok_or_else(|| wrong_type(&path(), "a string"));
    let integer = || {
        json.as_i64()
            .ok_or_else(|| wrong_type(&path(), "an integer"))
    };
    let text_or = |kind: &'static str| -> Result<Option<&str>, JsonDecodeError> {
        match json {
            Json::String(text) => Ok(Some(text)),
            Json::Number(_) => Ok(None),
            _ => Err(wrong_type(&path(), kind)),
        }
    };
    Ok(match column_type {
        ColumnType::TinyInt { unsigned: false }
        | ColumnType::SmallInt { unsigned: false }
        | ColumnType::MediumInt { unsigned: false }
        | ColumnType::Int { unsigned: false }
        | ColumnType::BigInt { unsigned: false } => Value::Int(integer()?),
        ColumnType::TinyInt { unsigned: true }
        | ColumnType::SmallInt { unsigned: true }
        | ColumnType::MediumInt { unsigned: true }
        | ColumnType::Int { unsigned: true }
        | ColumnType::BigInt { unsigned: true } => Value::UInt(
            json.as_u64()
                .ok_or_else(|| wrong_type(&path(), "a non-negative integer"))?,
        ),
        ColumnType::Decimal { .. } => Value::Decimal(string()?.to_owned()),
        ColumnType::Float => {
            let wide = json
                .as_f64()
                .ok_or_else(|| wrong_type(&path(), "a number"))?;
            let narrow = wide as f32;
            if !narrow.is_finite() {
                return Err(invalid(&path(), "out of FLOAT range"));
            }
            Value::Float(narrow)
        }
        ColumnType::Double => Value::Double(
            json.as_f64()
                .ok_or_else(|| wrong_type(&path(), "a number"))?,
        ),
        ColumnType::Date => match text_or("epoch days or date text")? {
            Some(text) => Value::Date(text.parse().map_err(|e| invalid(&path(), format!("{e}")))?),
            None => {
                let days = i32::try_from(integer()?)
                    .map_err(|_| invalid(&path(), "epoch days out of range"))?;
                let date = days
                    .checked_add(EPOCH_DAYS_FROM_CE)
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .and_then(SqlDate::from_naive)
                    .ok_or_else(|| invalid(&path(), "epoch days outside years 0000..=9999"))?;
                Value::Date(date)
            }
        },
        ColumnType::Time { .. } => match text_or("microseconds or time text")? {
            Some(text) => Value::Time(text.parse().map_err(|e| invalid(&path(), format!("{e}")))?),
            None => Value::Time(
                SqlTime::from_micros(integer()?)
                    .ok_or_else(|| invalid(&path(), "TIME hours out of range"))?,
            ),
        },
        ColumnType::DateTime { .. } => match text_or("epoch microseconds or datetime text")? {
            Some(text) => {
                Value::DateTime(text.parse().map_err(|e| invalid(&path(), format!("{e}")))?)
            }
            None => Value::DateTime(
                DateTime::<Utc>::from_timestamp_micros(integer()?)
                    .and_then(|instant| SqlDateTime::from_naive(instant.naive_utc()))
                    .ok_or_else(|| {
                        invalid(&path(), "epoch microseconds outside years 0000..=9999")
                    })?,
            ),
        },
        ColumnType::Timestamp { .. } => {
            let instant = DateTime::parse_from_rfc3339(string()?)
                .map_err(|e| invalid(&path(), format!("not an ISO-8601 timestamp: {e}")))?;
            if instant.timestamp_subsec_nanos() % 1_000 != 0 {
                return Err(invalid(&path(), "sub-microsecond digits"));
            }
            Value::Timestamp(instant.timestamp_micros())
        }
        ColumnType::Year => Value::Year(
            json.as_u64()
                .and_then(|year| u16::try_from(year).ok())
                .ok_or_else(|| wrong_type(&path(), "a year number"))?,
        ),
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            Value::Text(string()?.to_owned())
        }
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            Value::Bytes(decode_base64(string()?, path)?)
        }
        ColumnType::Json => Value::Json(string()?.to_owned()),
        ColumnType::Enum { .. } => Value::Enum(string()?.to_owned()),
        ColumnType::Set { .. } => {
            let text = string()?;
            // "" is the empty set, not one empty member.
            Value::Set(if text.is_empty() {
                Vec::new()
            } else {
                text.split(',').map(str::to_owned).collect()
            })
        }
        ColumnType::Bit { width: 1 } => Value::Bit {
            width: 1,
            value: u64::from(
                json.as_bool()
                    .ok_or_else(|| wrong_type(&path(), "a boolean"))?,
            ),
        },
        ColumnType::Bit { width } => {
            let bytes = decode_base64(string()?, path)?;
            if bytes.len() > 8 {
                return Err(invalid(&path(), "BIT value longer than 8 bytes"));
            }
            let mut little_endian = [0u8; 8];
            little_endian[..bytes.len()].copy_from_slice(&bytes);
            Value::Bit {
                width: *width,
                value: u64::from_le_bytes(little_endian),
            }
        }
        ColumnType::Geometry => {
            let object = as_object(json, &path())?;
            let wkb = decode_base64(get_str(object, "wkb", &path())?, || path_of(&path(), "wkb"))?;
            let srid = match object.get("srid") {
                None | Some(Json::Null) => 0,
                Some(_) => get_uint(object, "srid", &path())?,
            };
            Value::Geometry { srid, wkb }
        }
    })
}
