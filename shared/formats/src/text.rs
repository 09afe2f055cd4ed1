//! Rendering Arrow values as text, shared by the CSV and JSON-lines writers so both print a
//! value the same way: decimals exact, timestamps ISO-8601 with six fraction digits, binary as
//! standard base64.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimestampMicrosecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    PrimitiveArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine as _;

use crate::FormatError;

/// Whether a rendered value is a JSON string (needs quotes) or a bare JSON literal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonShape {
    Bare,
    Quoted,
}

/// One column of a batch, downcast once per batch.
pub(crate) enum TextColumn<'a> {
    Bool(&'a BooleanArray),
    I8(&'a PrimitiveArray<Int8Type>),
    I16(&'a PrimitiveArray<Int16Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    U8(&'a PrimitiveArray<UInt8Type>),
    U16(&'a PrimitiveArray<UInt16Type>),
    U32(&'a PrimitiveArray<UInt32Type>),
    U64(&'a PrimitiveArray<UInt64Type>),
    F32(&'a PrimitiveArray<Float32Type>),
    F64(&'a PrimitiveArray<Float64Type>),
    D128(&'a Decimal128Array, u32),
    D256(&'a Decimal256Array, u32),
    Date(&'a Date32Array),
    Micros(&'a TimestampMicrosecondArray, bool),
    Str(&'a StringArray),
    Bin(&'a BinaryArray),
    /// A struct (the envelope's images and source): rendered as a JSON object, each child
    /// with its `"name":` prefix escaped once.
    Struct(&'a StructArray, Vec<(Vec<u8>, TextColumn<'a>)>),
}

impl<'a> TextColumn<'a> {
    /// Downcasts every column of `batch`; fails on Arrow types the text writers do not render.
    pub(crate) fn all(
        batch: &'a RecordBatch,
        format: &'static str,
    ) -> Result<Vec<Self>, FormatError> {
        let schema = batch.schema();
        batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(array, field)| Self::of(array.as_ref(), field.name(), format))
            .collect()
    }

    /// Downcasts one array (recursively for structs).
    fn of(array: &'a dyn Array, name: &str, format: &'static str) -> Result<Self, FormatError> {
                let unsupported = || FormatError::UnsupportedArrowType {
                    format,
                    column: name.to_owned(),
                    data_type: array.data_type().to_string(),
                };
                Ok(match array.data_type() {
                    DataType::Struct(fields) => {
                        let array = array.as_struct();
                        let mut children = Vec::with_capacity(fields.len());
                        for (child, field) in array.columns().iter().zip(fields) {
                            let mut key = vec![b'"'];
                            push_json_escaped(&mut key, field.name().as_bytes());
                            key.extend_from_slice(b"\":");
                            let path = format!("{name}.{}", field.name());
                            children.push((key, Self::of(child.as_ref(), &path, format)?));
                        }
                        Self::Struct(array, children)
                    }
                    DataType::Boolean => Self::Bool(array.as_boolean()),
                    DataType::Int8 => Self::I8(array.as_primitive()),
                    DataType::Int16 => Self::I16(array.as_primitive()),
                    DataType::Int32 => Self::I32(array.as_primitive()),
                    DataType::Int64 => Self::I64(array.as_primitive()),
                    DataType::UInt8 => Self::U8(array.as_primitive()),
                    DataType::UInt16 => Self::U16(array.as_primitive()),
                    DataType::UInt32 => Self::U32(array.as_primitive()),
                    DataType::UInt64 => Self::U64(array.as_primitive()),
                    DataType::Float32 => Self::F32(array.as_primitive()),
                    DataType::Float64 => Self::F64(array.as_primitive()),
                    DataType::Decimal128(_, s) if *s >= 0 => {
                        Self::D128(array.as_primitive::<Decimal128Type>(), *s as u32)
                    }
                    DataType::Decimal256(_, s) if *s >= 0 => {
                        Self::D256(array.as_primitive::<Decimal256Type>(), *s as u32)
                    }
                    DataType::Date32 => Self::Date(array.as_primitive::<Date32Type>()),
                    DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                        let utc = match tz.as_deref() {
                            None => false,
                            Some("UTC" | "+00:00" | "Z") => true,
                            // Other zones would need zone rules to print local time.
                            Some(_) => return Err(unsupported()),
                        };
                        Self::Micros(array.as_primitive::<TimestampMicrosecondType>(), utc)
                    }
                    DataType::Utf8 => Self::Str(array.as_string::<i32>()),
                    DataType::Binary => Self::Bin(array.as_binary::<i32>()),
                    _ => return Err(unsupported()),
                })
    }

    pub(crate) fn is_null(&self, row: usize) -> bool {
        match self {
            Self::Bool(a) => a.is_null(row),
            Self::I8(a) => a.is_null(row),
            Self::I16(a) => a.is_null(row),
            Self::I32(a) => a.is_null(row),
            Self::I64(a) => a.is_null(row),
            Self::U8(a) => a.is_null(row),
            Self::U16(a) => a.is_null(row),
            Self::U32(a) => a.is_null(row),
            Self::U64(a) => a.is_null(row),
            Self::F32(a) => a.is_null(row),
            Self::F64(a) => a.is_null(row),
            Self::D128(a, _) => a.is_null(row),
            Self::D256(a, _) => a.is_null(row),
            Self::Date(a) => a.is_null(row),
            Self::Micros(a, _) => a.is_null(row),
            Self::Str(a) => a.is_null(row),
            Self::Bin(a) => a.is_null(row),
            Self::Struct(a, _) => a.is_null(row),
        }
    }

    /// How the JSON writer must wrap the rendered text.
    pub(crate) fn json_shape(&self) -> JsonShape {
        match self {
            Self::D128(..)
            | Self::D256(..)
            | Self::Date(_)
            | Self::Micros(..)
            | Self::Str(_)
            | Self::Bin(_) => JsonShape::Quoted,
            _ => JsonShape::Bare,
        }
    }

    /// Appends the text of a non-null value (unquoted, unescaped) to `out`.
    pub(crate) fn render(&self, row: usize, out: &mut Vec<u8>, scratch: &mut String) {
        match self {
            Self::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Self::I8(a) => push_i64(out, i64::from(a.value(row))),
            Self::I16(a) => push_i64(out, i64::from(a.value(row))),
            Self::I32(a) => push_i64(out, i64::from(a.value(row))),
            Self::I64(a) => push_i64(out, a.value(row)),
            Self::U8(a) => push_u64(out, u64::from(a.value(row))),
            Self::U16(a) => push_u64(out, u64::from(a.value(row))),
            Self::U32(a) => push_u64(out, u64::from(a.value(row))),
            Self::U64(a) => push_u64(out, a.value(row)),
            Self::F32(a) => push_display(out, scratch, a.value(row)),
            Self::F64(a) => push_display(out, scratch, a.value(row)),
            Self::D128(a, scale) => {
                let v = a.value(row);
                let mut digits = [0u8; 40];
                let len = u128_digits(v.unsigned_abs(), &mut digits);
                push_scaled(out, v < 0, &digits[40 - len..], *scale);
            }
            Self::D256(a, scale) => {
                let v = a.value(row);
                scratch.clear();
                // i256 has no cheap digit loop; its Display is exact.
                use std::fmt::Write as _;
                let _ = write!(scratch, "{v}");
                let (negative, digits) = match scratch.strip_prefix('-') {
                    Some(d) => (true, d),
                    None => (false, scratch.as_str()),
                };
                push_scaled(out, negative, digits.as_bytes(), *scale);
            }
            Self::Date(a) => push_date(out, i64::from(a.value(row))),
            Self::Micros(a, utc) => {
                let micros = a.value(row);
                let days = micros.div_euclid(86_400_000_000);
                let rest = micros.rem_euclid(86_400_000_000);
                push_date(out, days);
                out.push(b'T');
                let secs = rest / 1_000_000;
                push_2(out, secs / 3600);
                out.push(b':');
                push_2(out, secs / 60 % 60);
                out.push(b':');
                push_2(out, secs % 60);
                out.push(b'.');
                push_padded(out, (rest % 1_000_000) as u64, 6);
                if *utc {
                    out.push(b'Z');
                }
            }
            Self::Str(a) => out.extend_from_slice(a.value(row).as_bytes()),
            Self::Bin(a) => {
                scratch.clear();
                base64::engine::general_purpose::STANDARD.encode_string(a.value(row), scratch);
                out.extend_from_slice(scratch.as_bytes());
            }
            // A complete JSON object: children are quoted and escaped here, since the caller
            // treats a struct as a bare JSON value.
            Self::Struct(_, children) => {
                out.push(b'{');
                let mut field = Vec::new();
                for (i, (key, child)) in children.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key);
                    if child.is_null(row) {
                        out.extend_from_slice(b"null");
                        continue;
                    }
                    match child.json_shape() {
                        JsonShape::Bare => child.render(row, out, scratch),
                        JsonShape::Quoted => {
                            field.clear();
                            child.render(row, &mut field, scratch);
                            out.push(b'"');
                            push_json_escaped(out, &field);
                            out.push(b'"');
                        }
                    }
                }
                out.push(b'}');
            }
        }
    }
}

fn push_display(out: &mut Vec<u8>, scratch: &mut String, v: impl std::fmt::Display) {
    use std::fmt::Write as _;
    scratch.clear();
    let _ = write!(scratch, "{v}");
    out.extend_from_slice(scratch.as_bytes());
}

/// Writes the decimal digits of `v` right-aligned into `buf`; returns how many.
fn u128_digits(mut v: u128, buf: &mut [u8; 40]) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.len() - i
}

pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 40];
    let len = u128_digits(u128::from(v), &mut buf);
    out.extend_from_slice(&buf[40 - len..]);
}

pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

fn push_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [0u8; 40];
    let len = u128_digits(u128::from(v), &mut buf);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(len)));
    out.extend_from_slice(&buf[40 - len..]);
}

fn push_2(out: &mut Vec<u8>, v: i64) {
    push_padded(out, v.unsigned_abs(), 2);
}

/// Unscaled digits + scale → `[-]int.frac`, with at least one integer digit.
fn push_scaled(out: &mut Vec<u8>, negative: bool, digits: &[u8], scale: u32) {
    let scale = scale as usize;
    if negative {
        out.push(b'-');
    }
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        if scale > 0 {
            out.push(b'.');
            out.extend_from_slice(frac);
        }
    } else {
        out.push(b'0');
        if scale > 0 {
            out.push(b'.');
            out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
            out.extend_from_slice(digits);
        }
    }
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (proleptic Gregorian; Howard Hinnant's
/// civil_from_days, so no calendar library is needed on the hot path).
fn push_date(out: &mut Vec<u8>, days: i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year < 0 {
        out.push(b'-');
    }
    push_padded(out, year.unsigned_abs(), 4);
    out.push(b'-');
    push_2(out, month);
    out.push(b'-');
    push_2(out, day);
}

/// Appends `s` as the inside of a JSON string (without the quotes).
pub(crate) fn push_json_escaped(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_decimals() {
        let mut out = Vec::new();
        push_date(&mut out, 0);
        out.push(b' ');
        push_date(&mut out, 19_858); // 2024-05-15
        out.push(b' ');
        push_date(&mut out, -719_528); // 0000-01-01... proleptic year 0
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01 2024-05-15 0000-01-01"
        );
        let mut out = Vec::new();
        push_scaled(&mut out, true, b"5", 2);
        out.push(b' ');
        push_scaled(&mut out, false, b"12345", 2);
        out.push(b' ');
        push_scaled(&mut out, false, b"0", 0);
        assert_eq!(String::from_utf8(out).unwrap(), "-0.05 123.45 0");
        let mut out = Vec::new();
        push_json_escaped(&mut out, "a\"b\\\n\u{1}é".as_bytes());
        assert_eq!(String::from_utf8(out).unwrap(), "a\\\"b\\\\\\n\\u0001é");
    }
}
