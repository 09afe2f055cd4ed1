//! Binlog values (as mysql_common decodes them) to model values equal to what SELECT returns.
//!
//! mysql_common hands over loosely typed values: integers with the signedness it guessed,
//! DECIMAL and TIMESTAMP as text bytes, YEAR as text, ENUM as its index, SET and BIT as raw
//! bytes. The column type of our schema decides the final value.

use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value as MyValue;

use cdc_event::{ColumnType, SqlDate, SqlDateTime, SqlTime, Value};

use super::text::TextEncoding;

fn kind(v: &MyValue) -> &'static str {
    match v {
        MyValue::NULL => "NULL",
        MyValue::Bytes(_) => "bytes",
        MyValue::Int(_) => "int",
        MyValue::UInt(_) => "uint",
        MyValue::Float(_) => "float",
        MyValue::Double(_) => "double",
        MyValue::Date(..) => "date",
        MyValue::Time(..) => "time",
    }
}

/// Converts one decoded binlog value of a column of `column_type`. The error says what did not
/// fit; the caller names the table and column.
pub(crate) fn to_value(column_type: &ColumnType, encoding: TextEncoding, value: BinlogValue<'_>) -> Result<Value, String> {
    let value = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => {
            // MySQL's binary JSON; MariaDB's JSON is LONGTEXT and never takes this path.
            let json = serde_json::Value::try_from(j).map_err(|e| format!("binary JSON: {e}"))?;
            return Ok(Value::Json(json.to_string()));
        }
        BinlogValue::JsonDiff(_) => return Err("partial JSON updates (binlog_row_value_options) are not supported".into()),
    };
    if matches!(value, MyValue::NULL) {
        return Ok(Value::Null);
    }
    let unexpected = |v: &MyValue| format!("unexpected {} value from the binlog decoder", kind(v));
    Ok(match column_type {
        ColumnType::TinyInt { unsigned } => integer(&value, 8, *unsigned).ok_or_else(|| unexpected(&value))?,
        ColumnType::SmallInt { unsigned } => integer(&value, 16, *unsigned).ok_or_else(|| unexpected(&value))?,
        ColumnType::MediumInt { unsigned } => integer(&value, 24, *unsigned).ok_or_else(|| unexpected(&value))?,
        ColumnType::Int { unsigned } => integer(&value, 32, *unsigned).ok_or_else(|| unexpected(&value))?,
        ColumnType::BigInt { unsigned } => integer(&value, 64, *unsigned).ok_or_else(|| unexpected(&value))?,
        ColumnType::Decimal { scale, .. } => match &value {
            MyValue::Bytes(b) => Value::Decimal(
                normalize_decimal(b, usize::from(*scale)).ok_or_else(|| format!("DECIMAL text {:?}", String::from_utf8_lossy(b)))?,
            ),
            other => return Err(unexpected(other)),
        },
        ColumnType::Float => match value {
            MyValue::Float(f) => Value::Float(f),
            other => return Err(unexpected(&other)),
        },
        ColumnType::Double => match value {
            MyValue::Double(f) => Value::Double(f),
            other => return Err(unexpected(&other)),
        },
        ColumnType::Date => match value {
            MyValue::Date(y, m, d, ..) => Value::Date(SqlDate::new(y, m, d)),
            other => return Err(unexpected(&other)),
        },
        ColumnType::DateTime { .. } => match value {
            MyValue::Date(y, mo, d, h, mi, s, us) => Value::DateTime(SqlDateTime::new(y, mo, d, h, mi, s, us)),
            other => return Err(unexpected(&other)),
        },
        ColumnType::Timestamp { .. } => match &value {
            // Old TIMESTAMP (pre-5.6 format): whole seconds.
            MyValue::Int(secs) => Value::Timestamp(secs.checked_mul(1_000_000).ok_or("TIMESTAMP out of range")?),
            // TIMESTAMP2: "secs" or "secs.micros" (UTC epoch), as mysql_common prints it.
            MyValue::Bytes(b) => Value::Timestamp(parse_timestamp(b).ok_or_else(|| format!("TIMESTAMP text {:?}", String::from_utf8_lossy(b)))?),
            other => return Err(unexpected(other)),
        },
        ColumnType::Time { .. } => match value {
            MyValue::Time(negative, days, h, m, s, us) => {
                // TIME is a duration up to 838 hours; mysql_common splits off whole days.
                let hours = days
                    .checked_mul(24)
                    .and_then(|x| x.checked_add(u32::from(h)))
                    .and_then(|x| u16::try_from(x).ok())
                    .ok_or("TIME hours out of range")?;
                Value::Time(SqlTime::new(negative, hours, m, s, us))
            }
            other => return Err(unexpected(&other)),
        },
        ColumnType::Year => match &value {
            // mysql_common prints 1900 + the stored byte; byte 0 is the year 0000.
            MyValue::Bytes(b) => {
                let year: u16 = std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or("YEAR text")?;
                Value::Year(if year == 1900 { 0 } else { year })
            }
            other => return Err(unexpected(other)),
        },
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => match value {
            MyValue::Bytes(b) => Value::Text(encoding.decode(b).ok_or("bytes are not valid in the column's character set")?),
            other => return Err(unexpected(&other)),
        },
        ColumnType::Binary { length } => match value {
            MyValue::Bytes(mut b) => {
                // The binlog drops BINARY's trailing 0x00 padding; SELECT returns it.
                let length = usize::try_from(*length).unwrap_or(usize::MAX);
                if b.len() < length {
                    b.resize(length, 0);
                }
                Value::Bytes(b)
            }
            other => return Err(unexpected(&other)),
        },
        ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => match value {
            MyValue::Bytes(b) => Value::Bytes(b),
            other => return Err(unexpected(&other)),
        },
        ColumnType::Json => match value {
            MyValue::Bytes(b) => Value::Json(String::from_utf8(b).map_err(|_| "JSON text is not UTF-8")?),
            other => return Err(unexpected(&other)),
        },
        ColumnType::Enum { values } => match value {
            // Index 0 is the empty error value an invalid insert stores in non-strict mode.
            MyValue::Int(0) => Value::Enum(String::new()),
            MyValue::Int(i) => Value::Enum(
                usize::try_from(i - 1)
                    .ok()
                    .and_then(|i| values.get(i))
                    .cloned()
                    .ok_or_else(|| format!("ENUM index {i} beyond {} members", values.len()))?,
            ),
            other => return Err(unexpected(&other)),
        },
        ColumnType::Set { values } => match value {
            MyValue::Bytes(b) => {
                // Little-endian bitmask, bit i = member i.
                let mut members = Vec::new();
                for (byte_index, byte) in b.iter().enumerate() {
                    for bit in 0..8 {
                        if byte & (1 << bit) != 0 {
                            let i = byte_index * 8 + bit;
                            members.push(values.get(i).cloned().ok_or_else(|| format!("SET bit {i} beyond {} members", values.len()))?);
                        }
                    }
                }
                Value::Set(members)
            }
            other => return Err(unexpected(&other)),
        },
        ColumnType::Bit { width } => match value {
            MyValue::Bytes(b) => {
                if b.len() > 8 {
                    return Err(format!("BIT value of {} bytes", b.len()));
                }
                // Big-endian, as many bytes as the width needs.
                let value = b.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
                Value::Bit { width: *width, value }
            }
            other => return Err(unexpected(&other)),
        },
        ColumnType::Geometry => match value {
            MyValue::Bytes(b) => {
                // MySQL's internal geometry: 4-byte little-endian SRID, then WKB.
                let (srid, wkb) = b.split_at_checked(4).ok_or("geometry shorter than its 4-byte SRID")?;
                let srid = u32::from_le_bytes([srid[0], srid[1], srid[2], srid[3]]);
                Value::Geometry { srid, wkb: wkb.to_vec() }
            }
            other => return Err(unexpected(&other)),
        },
    })
}

/// Reinterprets an integer of `bits` width by the column's signedness: mysql_common may have
/// decoded it with the other one.
fn integer(value: &MyValue, bits: u32, unsigned: bool) -> Option<Value> {
    let raw: u64 = match value {
        MyValue::Int(i) => *i as u64,
        MyValue::UInt(u) => *u,
        _ => return None,
    };
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let low = raw & mask;
    Some(if unsigned {
        Value::UInt(low)
    } else {
        // Sign-extend the low `bits` bits.
        let shift = 64 - bits;
        Value::Int(((low << shift) as i64) >> shift)
    })
}

/// `secs[.micros]` to microseconds.
fn parse_timestamp(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let (secs, micros) = match text.split_once('.') {
        Some((s, f)) if f.len() <= 6 && !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            (s, f.parse::<i64>().ok()? * 10i64.pow(6 - f.len() as u32))
        }
        Some(_) => return None,
        None => (text, 0),
    };
    secs.parse::<i64>().ok()?.checked_mul(1_000_000)?.checked_add(micros)
}

/// Normalises decimal text to what MySQL prints: no leading zeros, exactly `scale` fraction
/// digits, no negative zero.
fn normalize_decimal(text: &[u8], scale: usize) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut frac: String = frac.chars().take(scale).collect();
    while frac.len() < scale {
        frac.push('0');
    }
    let zero = int == "0" && frac.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if scale > 0 {
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_the_column_signedness() {
        assert_eq!(integer(&MyValue::Int(-1), 8, true), Some(Value::UInt(255)));
        assert_eq!(integer(&MyValue::UInt(255), 8, false), Some(Value::Int(-1)));
        assert_eq!(integer(&MyValue::Int(-1), 64, true), Some(Value::UInt(u64::MAX)));
        assert_eq!(integer(&MyValue::Int(0x7f_ffff), 24, false), Some(Value::Int(8_388_607)));
        assert_eq!(integer(&MyValue::Int(0x80_0000), 24, false), Some(Value::Int(-8_388_608)));
    }

    #[test]
    fn decimals_are_normalised() {
        assert_eq!(normalize_decimal(b"-0000012.5", 3).as_deref(), Some("-12.500"));
        assert_eq!(normalize_decimal(b"-0.000", 3).as_deref(), Some("0.000"));
        assert_eq!(normalize_decimal(b"7", 0).as_deref(), Some("7"));
        assert_eq!(normalize_decimal(b"x", 0), None);
    }

    #[test]
    fn timestamps_parse_fractions() {
        assert_eq!(parse_timestamp(b"1"), Some(1_000_000));
        assert_eq!(parse_timestamp(b"1.000005"), Some(1_000_005));
        assert_eq!(parse_timestamp(b"1.5"), Some(1_500_000));
        assert_eq!(parse_timestamp(b"1.x"), None);
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let r = to_value(&ColumnType::Geometry, TextEncoding::Binary, BinlogValue::Value(MyValue::Bytes(vec![1])));
        assert!(r.unwrap_err().contains("SRID"));
        let r = to_value(&ColumnType::Enum { values: vec!["a".into()] }, TextEncoding::Utf8, BinlogValue::Value(MyValue::Int(2)));
        assert!(r.unwrap_err().contains("ENUM index 2"));
    }
}
