//! The committable state of a snapshot: where it is consistent with the binlog, which tables
//! are finished and where the table in progress stopped.

use mysql_async::Value as MyValue;
use serde::{Deserialize, Serialize};

use cdc_event::{Position, TableId};

/// How far a snapshot got, to be stored with the consumer's checkpoint and passed back to
/// [`Snapshot::start`](super::Snapshot::start) after a crash.
///
/// Serialises to readable JSON, e.g.
/// `{"position":"mariadb binlog.000001:1234 snapshot#2000 gtid=0-1-7","tables_done":[..],
/// "current":{"table":{..},"key_columns":["id"],"last_key":[{"int":2000}]}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotProgress {
    /// The binlog position the snapshot is consistent with (phase `snapshot`); its
    /// `event_index` is the index of the last event returned (0 before the first).
    pub position: Position,
    /// Tables read completely, in the order they were finished.
    pub tables_done: Vec<TableId>,
    /// The table being read and the primary key of the last row returned from it; `None`
    /// between tables.
    pub current: Option<TableCursor>,
}

/// Where reading one table stopped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableCursor {
    pub table: TableId,
    /// The primary-key columns the key is made of; a resume refuses a table whose key changed.
    pub key_columns: Vec<String>,
    /// The last key read, one value per key column, exactly as the server sent it (so binding
    /// it back compares exactly as the server orders).
    pub last_key: Vec<KeyValue>,
}

/// One primary-key value in the wire form the server uses, lossless in JSON.
///
/// Integers keep their 64-bit range (serde_json reads and writes i64/u64 exactly), floats are
/// stored as the shortest decimal that reads back to the same double, bytes as text when they
/// are UTF-8 and as hex otherwise. ENUM, SET and BIT keys are their numbers (the server orders
/// those columns by number), DECIMAL keys their decimal text.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum KeyValue {
    Int(i64),
    UInt(u64),
    /// A FLOAT key, widened to f64 (exact) so its text reads back to the same f32.
    Float(f64),
    Double(f64),
    /// Bytes that are valid UTF-8 (a character key's bytes in the column's character set).
    Text(String),
    /// Other bytes, as lowercase hex.
    Hex(String),
    /// DATE, DATETIME or TIMESTAMP (UTC): year, month, day, hour, minute, second, microsecond.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// TIME: negative, days, hours, minutes, seconds, microseconds.
    Time(bool, u32, u8, u8, u8, u32),
}

impl KeyValue {
    /// The key value of a server value; `None` for NULL, which a primary key cannot hold.
    pub(crate) fn from_mysql(value: &MyValue) -> Option<Self> {
        Some(match value {
            MyValue::NULL => return None,
            MyValue::Int(i) => KeyValue::Int(*i),
            MyValue::UInt(u) => KeyValue::UInt(*u),
            MyValue::Float(f) => KeyValue::Float(f64::from(*f)),
            MyValue::Double(f) => KeyValue::Double(*f),
            MyValue::Bytes(b) => match std::str::from_utf8(b) {
                Ok(text) => KeyValue::Text(text.to_owned()),
                Err(_) => KeyValue::Hex(b.iter().map(|byte| format!("{byte:02x}")).collect()),
            },
            MyValue::Date(y, mo, d, h, mi, s, us) => KeyValue::Date(*y, *mo, *d, *h, *mi, *s, *us),
            MyValue::Time(neg, days, h, m, s, us) => KeyValue::Time(*neg, *days, *h, *m, *s, *us),
        })
    }

    /// The server value to bind; an error names what is malformed (hand-edited checkpoints).
    pub(crate) fn to_mysql(&self) -> Result<MyValue, String> {
        Ok(match self {
            KeyValue::Int(i) => MyValue::Int(*i),
            KeyValue::UInt(u) => MyValue::UInt(*u),
            // Exact: the value was widened from an f32.
            KeyValue::Float(f) => MyValue::Float(*f as f32),
            KeyValue::Double(f) => MyValue::Double(*f),
            KeyValue::Text(text) => MyValue::Bytes(text.as_bytes().to_vec()),
            KeyValue::Hex(hex) => MyValue::Bytes(decode_hex(hex).ok_or_else(|| format!("key bytes {hex:?} are not hex"))?),
            KeyValue::Date(y, mo, d, h, mi, s, us) => MyValue::Date(*y, *mo, *d, *h, *mi, *s, *us),
            KeyValue::Time(neg, days, h, m, s, us) => MyValue::Time(*neg, *days, *h, *m, *s, *us),
        })
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

/// A key for error messages and logs.
pub(crate) fn describe_key(key: Option<&[MyValue]>) -> String {
    match key {
        None => "(start of table)".to_owned(),
        Some(values) => {
            let parts: Vec<String> = values
                .iter()
                .map(|v| match KeyValue::from_mysql(v) {
                    Some(k) => serde_json::to_string(&k).unwrap_or_else(|_| format!("{v:?}")),
                    None => "NULL".to_owned(),
                })
                .collect();
            format!("({})", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_event::{Phase, ServerFlavor};

    #[test]
    fn key_values_round_trip_exactly_through_json() {
        let values = vec![
            MyValue::Int(i64::MIN),
            MyValue::UInt(u64::MAX),
            MyValue::Float(0.1f32),
            MyValue::Float(f32::MAX),
            MyValue::Double(0.1 + 0.2),
            MyValue::Double(-1.7976931348623157e308),
            MyValue::Bytes(b"caf\xc3\xa9 ".to_vec()),
            MyValue::Bytes(vec![0xe9, 0x00, 0xff]),
            MyValue::Bytes(Vec::new()),
            MyValue::Bytes(b"12345678901234567890.0000000001".to_vec()),
            MyValue::Date(9999, 12, 31, 23, 59, 59, 999_999),
            MyValue::Date(0, 0, 0, 0, 0, 0, 0),
            MyValue::Time(true, 34, 22, 59, 59, 1),
        ];
        for value in values {
            let key = KeyValue::from_mysql(&value).unwrap();
            let json = serde_json::to_string(&key).unwrap();
            let back: KeyValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_mysql().unwrap(), value, "{json}");
        }
        assert_eq!(KeyValue::from_mysql(&MyValue::NULL), None);
        assert!(KeyValue::Hex("0g".into()).to_mysql().is_err());
        assert!(KeyValue::Hex("abc".into()).to_mysql().is_err());
    }

    #[test]
    fn progress_round_trips_and_refuses_unknown_fields() {
        let progress = SnapshotProgress {
            position: Position::stream(ServerFlavor::MariaDb, "binlog.000002", 889)
                .with_phase(Phase::Snapshot)
                .with_event_index(3000),
            tables_done: vec![TableId::new("shop", "a")],
            current: Some(TableCursor {
                table: TableId::new("shop", "b.c"),
                key_columns: vec!["k1".into(), "k2".into()],
                last_key: vec![KeyValue::UInt(u64::MAX), KeyValue::Text("x".into())],
            }),
        };
        let json = serde_json::to_string(&progress).unwrap();
        assert!(json.contains("\"mariadb binlog.000002:889 snapshot#3000\""), "{json}");
        assert_eq!(serde_json::from_str::<SnapshotProgress>(&json).unwrap(), progress);
        let extra = json.replacen('{', "{\"surprise\":1,", 1);
        assert!(serde_json::from_str::<SnapshotProgress>(&extra).is_err());
    }
}
