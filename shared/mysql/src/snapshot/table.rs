//! One table as the snapshot reads it: its schema from `information_schema` (through the binlog
//! reader's own type mapping), the SELECT statements of its chunks and the conversion of their
//! rows.
//!
//! The schema must equal what [`BinlogReader`](crate::BinlogReader) builds from the table's
//! TABLE_MAP, and each value what it decodes from the row image. So no type mapping lives here:
//! each `information_schema.COLUMNS` row is turned into the binlog type code and type metadata
//! bytes the server writes into a TABLE_MAP for that column, and the binlog module's
//! `map_type` does the rest; SELECT values are reshaped into what the binlog decoder hands over
//! and converted by the binlog module's `to_value`.

use std::sync::Arc;

use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType as MyType;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as MyValue};

use cdc_event::{ColumnDef, ColumnType, Row, TableId, TableSchema};

use super::error::SnapshotError;
use crate::binlog::schema::{self, CatalogueColumn, Collations};
use crate::binlog::text::TextEncoding;
use crate::binlog::values;

/// One primary-key column of the keyset pagination.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyColumn {
    pub name: String,
    /// How the key is selected (its value is bound back as is).
    select: String,
    /// The right-hand side the bound value is compared through, with the column's own
    /// ordering (collation, DECIMAL arithmetic), so that `>` agrees with `ORDER BY`.
    bind: String,
    /// Bind the key's bytes as hex text: a string parameter is taken to be in the connection's
    /// character set (utf8mb4), and bytes invalid in it (latin1 `é`, binary keys) would be
    /// mangled before the comparison.
    bind_hex: bool,
}

/// Everything needed to read one table.
#[derive(Debug, Clone)]
pub(crate) struct TablePlan {
    pub schema: Arc<TableSchema>,
    encodings: Vec<TextEncoding>,
    /// Empty when the table has no primary key: it is then read in one SELECT.
    pub key: Vec<KeyColumn>,
    /// The first chunk (or the whole table without a key).
    first_sql: String,
    /// The chunks after a key: `WHERE key > (?..) ORDER BY key LIMIT n`.
    next_sql: String,
    /// For each `?` of `next_sql`, the key column whose value it takes.
    next_params: Vec<usize>,
}

/// `information_schema.COLUMNS` facts beyond what the binlog module's catalogue reader takes.
struct ColumnInfo {
    catalogue: CatalogueColumn,
    data_type: String,
    collation: Option<String>,
    nullable: bool,
    octet_length: Option<u64>,
    precision: Option<u64>,
    scale: Option<u64>,
    fsp: Option<u64>,
}

fn quote(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

fn quote_table(table: &TableId) -> String {
    format!("{}.{}", quote(&table.database), quote(&table.table))
}

type ColumnsRow = (String, String, Option<String>, Option<String>, String, String, Option<u64>, Option<u64>, Option<u64>, Option<u64>);

/// Reads `table`'s definition and plans its chunks; `Ok(None)` when the table no longer exists.
pub(crate) async fn plan_table(
    conn: &mut Conn,
    table: &TableId,
    collations: &Collations,
    chunk_size: usize,
) -> Result<Option<TablePlan>, SnapshotError> {
    let catalogue_err = |source| SnapshotError::TableCatalogue { table: table.clone(), source: Box::new(source) };
    let rows: Vec<ColumnsRow> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, DATA_TYPE, IS_NULLABLE, \
             CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.database, &table.table),
        )
        .await
        .map_err(catalogue_err)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let primary_key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (&table.database, &table.table),
        )
        .await
        .map_err(catalogue_err)?;
    let infos: Vec<ColumnInfo> = rows
        .into_iter()
        .map(|(name, column_type, charset, collation, data_type, nullable, octets, precision, scale, fsp)| ColumnInfo {
            catalogue: CatalogueColumn { name, column_type, charset },
            data_type: data_type.to_ascii_lowercase(),
            collation,
            nullable: nullable.eq_ignore_ascii_case("YES"),
            octet_length: octets,
            precision,
            scale,
            fsp,
        })
        .collect();
    build_plan(table, &infos, primary_key, collations, chunk_size).map(Some)
}

fn build_plan(
    table: &TableId,
    infos: &[ColumnInfo],
    primary_key: Vec<String>,
    collations: &Collations,
    chunk_size: usize,
) -> Result<TablePlan, SnapshotError> {
    let catalogue: Vec<CatalogueColumn> = infos.iter().map(|i| i.catalogue.clone()).collect();
    let facts = schema::facts_from_catalogue(&catalogue, collations);
    let mut columns = Vec::with_capacity(infos.len());
    let mut encodings = Vec::with_capacity(infos.len());
    for (info, fact) in infos.iter().zip(&facts) {
        let column_err = |reason: String| SnapshotError::Column {
            table: table.clone(),
            column: info.catalogue.name.clone(),
            column_type: info.catalogue.column_type.clone(),
            reason,
        };
        let (binlog_type, meta) = binlog_type(info).map_err(column_err)?;
        let (column_type, encoding) = schema::map_type(binlog_type, &meta, fact).map_err(column_err)?;
        columns.push(ColumnDef::new(info.catalogue.name.clone(), column_type, info.nullable));
        encodings.push(encoding);
    }
    let mut key = Vec::with_capacity(primary_key.len());
    for name in &primary_key {
        let (index, column) = columns.iter().enumerate().find(|(_, c)| &c.name == name).ok_or_else(|| {
            SnapshotError::Table { table: table.clone(), reason: format!("primary key column {name:?} is not among its columns") }
        })?;
        key.push(key_column(column, infos.get(index).and_then(|i| i.collation.as_deref())).map_err(|reason| {
            SnapshotError::Column {
                table: table.clone(),
                column: name.clone(),
                column_type: column.column_type.to_string(),
                reason,
            }
        })?);
    }
    let version = TableSchema::fingerprint(&columns, &primary_key);
    let schema = Arc::new(TableSchema { table: table.clone(), version, columns, primary_key });
    let (first_sql, next_sql, next_params) = chunk_sql(table, &schema, &key, chunk_size);
    Ok(TablePlan { schema, encodings, key, first_sql, next_sql, next_params })
}

/// The binlog type code and TABLE_MAP type metadata the server writes for a column, from its
/// `information_schema` description (the layouts are those of `Field::save_field_metadata`
/// in the server and of `schema::column_types`/`map_type` here).
fn binlog_type(info: &ColumnInfo) -> Result<(MyType, Vec<u8>), String> {
    let u8_of = |value: Option<u64>, what: &str| -> Result<u8, String> {
        value.and_then(|v| u8::try_from(v).ok()).ok_or_else(|| format!("information_schema gives no usable {what}"))
    };
    let octets = || -> Result<u32, String> {
        info.octet_length
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| "information_schema gives no CHARACTER_OCTET_LENGTH".to_string())
    };
    let fsp = || u8_of(Some(info.fsp.unwrap_or(0)), "DATETIME_PRECISION");
    Ok(match info.data_type.as_str() {
        "tinyint" => (MyType::MYSQL_TYPE_TINY, vec![]),
        "smallint" => (MyType::MYSQL_TYPE_SHORT, vec![]),
        "mediumint" => (MyType::MYSQL_TYPE_INT24, vec![]),
        "int" | "integer" => (MyType::MYSQL_TYPE_LONG, vec![]),
        "bigint" => (MyType::MYSQL_TYPE_LONGLONG, vec![]),
        "decimal" | "numeric" => (
            MyType::MYSQL_TYPE_NEWDECIMAL,
            vec![u8_of(info.precision, "NUMERIC_PRECISION")?, u8_of(Some(info.scale.unwrap_or(0)), "NUMERIC_SCALE")?],
        ),
        "float" => (MyType::MYSQL_TYPE_FLOAT, vec![4]),
        "double" | "real" | "double precision" => (MyType::MYSQL_TYPE_DOUBLE, vec![8]),
        "date" => (MyType::MYSQL_TYPE_DATE, vec![]),
        "time" => (MyType::MYSQL_TYPE_TIME2, vec![fsp()?]),
        "datetime" => (MyType::MYSQL_TYPE_DATETIME2, vec![fsp()?]),
        "timestamp" => (MyType::MYSQL_TYPE_TIMESTAMP2, vec![fsp()?]),
        "year" => (MyType::MYSQL_TYPE_YEAR, vec![]),
        "char" | "binary" => (MyType::MYSQL_TYPE_STRING, string_meta(MyType::MYSQL_TYPE_STRING, octets()?)?),
        "varchar" | "varbinary" => {
            let bytes = u16::try_from(octets()?).map_err(|_| "VARCHAR longer than 65535 bytes".to_string())?;
            (MyType::MYSQL_TYPE_VARCHAR, bytes.to_le_bytes().to_vec())
        }
        "tinytext" | "tinyblob" => (MyType::MYSQL_TYPE_BLOB, vec![1]),
        "text" | "blob" => (MyType::MYSQL_TYPE_BLOB, vec![2]),
        "mediumtext" | "mediumblob" => (MyType::MYSQL_TYPE_BLOB, vec![3]),
        "longtext" | "longblob" => (MyType::MYSQL_TYPE_BLOB, vec![4]),
        "json" => (MyType::MYSQL_TYPE_JSON, vec![4]),
        // ENUM/SET travel as STRING with the real type in the first metadata byte; the mapping
        // needs only the members (from COLUMN_TYPE).
        "enum" => (MyType::MYSQL_TYPE_ENUM, vec![MyType::MYSQL_TYPE_ENUM as u8, 2]),
        "set" => (MyType::MYSQL_TYPE_SET, vec![MyType::MYSQL_TYPE_SET as u8, 8]),
        "bit" => {
            let width = u8_of(info.precision, "NUMERIC_PRECISION (BIT width)")?;
            (MyType::MYSQL_TYPE_BIT, vec![width % 8, width / 8])
        }
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" | "geomcollection" => (MyType::MYSQL_TYPE_GEOMETRY, vec![4]),
        other => {
            return Err(format!(
                "data type {other} is not supported by the snapshot (the binlog reader's type mapping has no \
                 information_schema equivalent for it)"
            ))
        }
    })
}

/// CHAR/BINARY metadata: real type and byte length, the length's bits 8-9 folded into the
/// real-type byte as the server does (MySQL bug #37426), the inverse of `map_type`'s decoding.
fn string_meta(real_type: MyType, bytes: u32) -> Result<Vec<u8>, String> {
    if bytes > 1023 {
        return Err(format!("CHAR/BINARY of {bytes} bytes exceeds the binlog's 1023"));
    }
    let high = ((bytes >> 8) & 0x3) as u8;
    let b0 = ((real_type as u8) & !0x30) | ((high << 4) ^ 0x30);
    Ok(vec![b0, (bytes & 0xff) as u8])
}

/// How a primary-key column is selected and compared.
fn key_column(column: &ColumnDef, collation: Option<&str>) -> Result<KeyColumn, String> {
    let name = quote(&column.name);
    let (select, bind) = match &column.column_type {
        ColumnType::TinyInt { .. }
        | ColumnType::SmallInt { .. }
        | ColumnType::MediumInt { .. }
        | ColumnType::Int { .. }
        | ColumnType::BigInt { .. }
        | ColumnType::Float
        | ColumnType::Double
        | ColumnType::Date
        | ColumnType::Time { .. }
        | ColumnType::DateTime { .. }
        | ColumnType::Year
        // TIMESTAMP reads and binds in the session's UTC, so the round trip is exact.
        | ColumnType::Timestamp { .. } => (name.clone(), "?".to_owned()),
        // A string compared with DECIMAL is compared as a double: cast, or wide keys lose digits.
        ColumnType::Decimal { precision, scale } => (name.clone(), format!("CAST(? AS DECIMAL({precision},{scale}))")),
        // The raw bytes (results are not converted, see `session_setup`), bound as hex and
        // reinterpreted in the column's character set, compared in its collation: `>` orders
        // as `ORDER BY` does and the primary-key index serves the range.
        ColumnType::Char { charset, .. } | ColumnType::VarChar { charset, .. } | ColumnType::Text { charset, .. } => {
            let collation = collation.ok_or("no COLLATION_NAME in information_schema")?;
            let bind = format!("CONVERT(UNHEX(?) USING {charset}) COLLATE {collation}");
            return Ok(KeyColumn { name: column.name.clone(), select: name, bind, bind_hex: true });
        }
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            return Ok(KeyColumn { name: column.name.clone(), select: name, bind: "UNHEX(?)".to_owned(), bind_hex: true });
        }
        // These order by their number (ENUM index, SET bitmask, BIT value): select and compare it.
        ColumnType::Enum { .. } | ColumnType::Set { .. } | ColumnType::Bit { .. } => (format!("{name}+0"), "?".to_owned()),
        ColumnType::Json | ColumnType::Geometry => {
            return Err("a primary key of this type cannot be paged through".to_owned());
        }
    };
    Ok(KeyColumn { name: column.name.clone(), select, bind, bind_hex: false })
}

/// How a column is selected so that its value reaches `to_value` in the binlog decoder's shape.
fn value_select(column: &ColumnDef) -> String {
    let name = quote(&column.name);
    match column.column_type {
        // The binlog carries TIMESTAMP as UTC epoch seconds[.micros]; so does UNIX_TIMESTAMP
        // (exact in the session's fixed +00:00, where no local time is ambiguous).
        ColumnType::Timestamp { .. } => format!("UNIX_TIMESTAMP({name})"),
        // The binlog carries ENUM as its index and SET as its bitmask.
        ColumnType::Enum { .. } | ColumnType::Set { .. } => format!("{name}+0"),
        _ => name,
    }
}

/// (first chunk SQL, next chunks SQL, key column of each `?` of the latter).
fn chunk_sql(table: &TableId, schema: &TableSchema, key: &[KeyColumn], chunk_size: usize) -> (String, String, Vec<usize>) {
    let mut select: Vec<String> = schema.columns.iter().map(value_select).collect();
    select.extend(key.iter().map(|k| k.select.clone()));
    let head = format!("SELECT {} FROM {}", select.join(", "), quote_table(table));
    if key.is_empty() {
        return (head.clone(), head, Vec::new());
    }
    let order: Vec<String> = key.iter().map(|k| quote(&k.name)).collect();
    let tail = format!("ORDER BY {} LIMIT {chunk_size}", order.join(", "));
    // (k1, k2, ..) > (v1, v2, ..) expanded, with a leading `k1 >= v1` the range optimizer can
    // use (MariaDB does not range-scan row-constructor comparisons).
    let mut params = Vec::new();
    let mut condition = String::new();
    if key.len() > 1 {
        condition.push_str(&format!("{} >= {} AND ", quote(&key[0].name), key[0].bind));
        params.push(0);
    }
    condition.push_str(&greater_from(key, 0, &mut params));
    let next = format!("{head} WHERE {condition} {tail}");
    (format!("{head} {tail}"), next, params)
}

fn greater_from(key: &[KeyColumn], i: usize, params: &mut Vec<usize>) -> String {
    let Some(k) = key.get(i) else { return String::new() };
    let name = quote(&k.name);
    params.push(i);
    if i + 1 == key.len() {
        return format!("{name} > {}", k.bind);
    }
    let gt = format!("{name} > {}", k.bind);
    params.push(i);
    let eq = format!("{name} = {}", k.bind);
    let rest = greater_from(key, i + 1, params);
    format!("({gt} OR ({eq} AND {rest}))")
}

impl TablePlan {
    pub fn table(&self) -> &TableId {
        &self.schema.table
    }

    pub fn key_names(&self) -> Vec<String> {
        self.key.iter().map(|k| k.name.clone()).collect()
    }

    /// The SQL and parameters of the chunk after `after` (from the start when `None`).
    pub fn chunk_query(&self, after: Option<&[MyValue]>) -> (&str, Vec<MyValue>) {
        match after {
            None => (&self.first_sql, Vec::new()),
            Some(key) => (
                &self.next_sql,
                self.next_params
                    .iter()
                    .map(|&i| match (key.get(i), self.key.get(i)) {
                        (Some(MyValue::Bytes(b)), Some(k)) if k.bind_hex => {
                            MyValue::Bytes(b.iter().map(|byte| format!("{byte:02X}")).collect::<String>().into_bytes())
                        }
                        (Some(v), _) => v.clone(),
                        (None, _) => MyValue::NULL,
                    })
                    .collect(),
            ),
        }
    }

    /// Converts one selected row to the model's row and its primary-key values.
    pub fn convert(&self, row: mysql_async::Row) -> Result<(Row, Vec<MyValue>), SnapshotError> {
        let schema = &self.schema;
        let mut raw = row.unwrap_raw();
        let expected = schema.columns.len() + self.key.len();
        if raw.len() != expected {
            return Err(SnapshotError::Table {
                table: schema.table.clone(),
                reason: format!(
                    "SELECT returned {} columns, {expected} expected (did the table change during the snapshot?)",
                    raw.len()
                ),
            });
        }
        let key_raw = raw.split_off(schema.columns.len());
        let mut values = Vec::with_capacity(schema.columns.len());
        for ((column, encoding), value) in schema.columns.iter().zip(&self.encodings).zip(raw) {
            let column_err = |reason: String| SnapshotError::Column {
                table: schema.table.clone(),
                column: column.name.clone(),
                column_type: column.column_type.to_string(),
                reason,
            };
            let value = value.ok_or_else(|| column_err("value missing from the result row".into()))?;
            let value = binlog_shape(&column.column_type, value).map_err(column_err)?;
            values.push(values::to_value(&column.column_type, *encoding, BinlogValue::Value(value)).map_err(column_err)?);
        }
        let mut key = Vec::with_capacity(key_raw.len());
        for (k, value) in self.key.iter().zip(key_raw) {
            match value {
                Some(MyValue::NULL) | None => {
                    return Err(SnapshotError::Table {
                        table: schema.table.clone(),
                        reason: format!("primary key column {:?} read as NULL", k.name),
                    })
                }
                Some(v) => key.push(v),
            }
        }
        Ok((Row::new(values), key))
    }
}

/// Reshapes a value of the binary result protocol into what the binlog decoder produces for
/// the same column, where the two differ; `to_value` then converts both alike.
fn binlog_shape(column_type: &ColumnType, value: MyValue) -> Result<MyValue, String> {
    if value == MyValue::NULL {
        return Ok(value);
    }
    let as_u64 = |v: &MyValue| match v {
        MyValue::Int(i) => u64::try_from(*i).ok(),
        MyValue::UInt(u) => Some(*u),
        _ => None,
    };
    Ok(match column_type {
        // UNIX_TIMESTAMP of a TIMESTAMP(0) is an integer; the decoder gives Int seconds.
        ColumnType::Timestamp { .. } => match value {
            MyValue::UInt(u) => MyValue::Int(i64::try_from(u).map_err(|_| "UNIX_TIMESTAMP out of range")?),
            other => other,
        },
        // The decoder prints YEAR as text (1900 standing for 0000).
        ColumnType::Year => match as_u64(&value) {
            Some(year) => MyValue::Bytes(if year == 0 { b"1900".to_vec() } else { year.to_string().into_bytes() }),
            None => value,
        },
        ColumnType::Enum { .. } => match as_u64(&value) {
            Some(index) => MyValue::Int(i64::try_from(index).map_err(|_| "ENUM index out of range")?),
            None => return Err(format!("ENUM index expected, got {value:?}")),
        },
        // The decoder gives the SET bitmask as little-endian bytes.
        ColumnType::Set { .. } => match as_u64(&value) {
            Some(bits) => MyValue::Bytes(bits.to_le_bytes().to_vec()),
            None => return Err(format!("SET bitmask expected, got {value:?}")),
        },
        // MySQL's binary JSON is decoded to serde_json and printed compactly with sorted keys;
        // SELECT prints the server's own text form. Reprint it the same way. (MariaDB's JSON is
        // LONGTEXT and never gets here.)
        ColumnType::Json => match &value {
            MyValue::Bytes(b) => match serde_json::from_slice::<serde_json::Value>(b) {
                Ok(json) => MyValue::Bytes(json.to_string().into_bytes()),
                Err(e) => return Err(format!("JSON text does not parse: {e}")),
            },
            _ => value,
        },
        _ => value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, column_type: ColumnType) -> ColumnDef {
        ColumnDef::new(name, column_type, false)
    }

    #[test]
    fn char_metadata_round_trips_through_the_binlog_decoding() {
        for bytes in [0u32, 1, 40, 255, 256, 600, 1020, 1023] {
            let meta = string_meta(MyType::MYSQL_TYPE_STRING, bytes).unwrap();
            // The decoding in `map_type` (MYSQL_TYPE_STRING arm).
            let (b0, b1) = (u32::from(meta[0]), u32::from(meta[1]));
            let decoded = if b0 & 0x30 != 0x30 { b1 | (((b0 & 0x30) ^ 0x30) << 4) } else { b1 };
            assert_eq!(decoded, bytes);
            assert_eq!(meta[0] | 0x30, MyType::MYSQL_TYPE_STRING as u8);
        }
        assert!(string_meta(MyType::MYSQL_TYPE_STRING, 1024).is_err());
    }

    #[test]
    fn composite_keys_page_with_an_index_friendly_expanded_comparison() {
        let table = TableId::new("db", "t`x");
        let schema = TableSchema {
            table: table.clone(),
            version: 1,
            columns: vec![
                column("a", ColumnType::Int { unsigned: false }),
                column("b", ColumnType::Decimal { precision: 30, scale: 10 }),
                column("c", ColumnType::Enum { values: vec!["x".into()] }),
            ],
            primary_key: vec!["a".into(), "b".into(), "c".into()],
        };
        let key: Vec<KeyColumn> = schema.columns.iter().map(|c| key_column(c, None).unwrap()).collect();
        let (first, next, params) = chunk_sql(&table, &schema, &key, 7);
        assert_eq!(first, "SELECT `a`, `b`, `c`+0, `a`, `b`, `c`+0 FROM `db`.`t``x` ORDER BY `a`, `b`, `c` LIMIT 7");
        assert_eq!(
            next,
            "SELECT `a`, `b`, `c`+0, `a`, `b`, `c`+0 FROM `db`.`t``x` WHERE `a` >= ? AND (`a` > ? OR (`a` = ? AND \
             (`b` > CAST(? AS DECIMAL(30,10)) OR (`b` = CAST(? AS DECIMAL(30,10)) AND `c` > ?)))) \
             ORDER BY `a`, `b`, `c` LIMIT 7"
        );
        assert_eq!(params, [0, 0, 0, 1, 1, 2]);

        let single = &key[..1];
        let (_, next, params) = chunk_sql(&table, &schema, single, 7);
        assert!(next.contains("WHERE `a` > ? ORDER BY `a` LIMIT 7"), "{next}");
        assert_eq!(params, [0]);
    }

    #[test]
    fn character_keys_compare_in_their_collation() {
        let c = column("n", ColumnType::VarChar { length: 5, charset: "latin1".into() });
        assert!(key_column(&c, None).is_err());
        let k = key_column(&c, Some("latin1_swedish_ci")).unwrap();
        assert_eq!(k.bind, "CONVERT(UNHEX(?) USING latin1) COLLATE latin1_swedish_ci");
        assert!(k.bind_hex);
    }

    #[test]
    fn result_values_take_the_binlog_decoders_shape() {
        let year = binlog_shape(&ColumnType::Year, MyValue::Int(0)).unwrap();
        assert_eq!(values::to_value(&ColumnType::Year, TextEncoding::Binary, BinlogValue::Value(year)).unwrap(), cdc_event::Value::Year(0));
        let set = ColumnType::Set { values: vec!["a".into(), "b".into(), "c".into()] };
        let bits = binlog_shape(&set, MyValue::UInt(5)).unwrap();
        assert_eq!(
            values::to_value(&set, TextEncoding::Utf8, BinlogValue::Value(bits)).unwrap(),
            cdc_event::Value::Set(vec!["a".into(), "c".into()])
        );
        assert!(binlog_shape(&set, MyValue::Bytes(b"a".to_vec())).is_err());
        let json = binlog_shape(&ColumnType::Json, MyValue::Bytes(br#"{"b": 1, "a": [true, null]}"#.to_vec())).unwrap();
        assert_eq!(json, MyValue::Bytes(br#"{"a":[true,null],"b":1}"#.to_vec()));
    }
}
