//! Record values as DataHub carries them, shared by the server and the client, and how the
//! server stores them in a log record's payload.

use base64::Engine as _;

/// A record's data: TUPLE values in their DataHub string form (`"1"`, `"true"`,
/// `"1.5e+00"`; `None` = null), or BLOB bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    Tuple(Vec<Option<String>>),
    Blob(Vec<u8>),
}

impl RecordData {
    /// The JSON-mode `Data` value: an array of strings/nulls, or a base64 string.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            RecordData::Tuple(values) => serde_json::Value::Array(
                values.iter().map(|v| v.as_ref().map_or(serde_json::Value::Null, |s| s.clone().into())).collect(),
            ),
            RecordData::Blob(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes).into(),
        }
    }

    /// Parses a JSON-mode `Data` value: a string is BLOB (base64), an array is TUPLE.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        match v {
            serde_json::Value::String(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(RecordData::Blob)
                .map_err(|e| format!("BLOB Data is not base64: {e}")),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    serde_json::Value::Null => Ok(None),
                    serde_json::Value::String(s) => Ok(Some(s.clone())),
                    // Lenient: other clients may send bare numbers or booleans.
                    serde_json::Value::Number(n) => Ok(Some(n.to_string())),
                    serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
                    other => Err(format!("TUPLE Data[{i}] is {other}, not a string or null")),
                })
                .collect::<Result<_, _>>()
                .map(RecordData::Tuple),
            other => Err(format!("Data must be a base64 string or an array, got {other}")),
        }
    }

    /// Stored payload: a kind byte, then the BLOB bytes or the TUPLE fields
    /// (u32 LE count; per field u32 LE length, `u32::MAX` = null, then the bytes).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RecordData::Blob(b) => {
                let mut out = Vec::with_capacity(b.len() + 1);
                out.push(KIND_BLOB);
                out.extend_from_slice(b);
                out
            }
            RecordData::Tuple(values) => {
                let mut out = vec![KIND_TUPLE];
                out.extend_from_slice(&(values.len() as u32).to_le_bytes());
                for v in values {
                    match v {
                        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
                        Some(s) => {
                            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                            out.extend_from_slice(s.as_bytes());
                        }
                    }
                }
                out
            }
        }
    }

    /// Decodes a stored payload, batch-written ones included (their origin is dropped; see
    /// [`StoredPayload::decode`]).
    pub fn decode(payload: &[u8]) -> Result<Self, String> {
        match payload.split_first() {
            Some((&KIND_BATCHED, _)) => StoredPayload::decode(payload).map(|p| p.data),
            Some((&KIND_BLOB, rest)) => Ok(RecordData::Blob(rest.to_vec())),
            Some((&KIND_TUPLE, mut rest)) => {
                let mut take = |n: usize| -> Result<&[u8], String> {
                    if rest.len() < n {
                        return Err("stored TUPLE record is truncated".into());
                    }
                    let (a, b) = rest.split_at(n);
                    rest = b;
                    Ok(a)
                };
                let u32_of = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let count = u32_of(take(4)?);
                let mut values = Vec::with_capacity(count.min(4096) as usize);
                for _ in 0..count {
                    let len = u32_of(take(4)?);
                    if len == u32::MAX {
                        values.push(None);
                    } else {
                        let bytes = take(len as usize)?;
                        values.push(Some(String::from_utf8_lossy(bytes).into_owned()));
                    }
                }
                Ok(RecordData::Tuple(values))
            }
            Some((kind, _)) => Err(format!("stored record has unknown kind {kind}")),
            None => Err("stored record is empty".into()),
        }
    }
}

const KIND_BLOB: u8 = 0;
const KIND_TUPLE: u8 = 1;
/// A record written in batch mode: [`BatchOrigin`] (u32 index, u32 count, i32 schema
/// version, LE), then the record as kind 0 or 1.
const KIND_BATCHED: u8 = 2;

/// Where a record written in batch mode sat in its batch, and the schema version it was
/// written with. The server stores batch records one sequence each (so JSON and PB readers
/// see ordinary records); this lets batch readers get the batch back as it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOrigin {
    pub index: u32,
    pub count: u32,
    pub schema_version: i32,
}

/// A stored record's payload: its data and, for batch writes, its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayload {
    pub data: RecordData,
    pub origin: Option<BatchOrigin>,
}

impl StoredPayload {
    pub fn encode(&self) -> Vec<u8> {
        match self.origin {
            None => self.data.encode(),
            Some(o) => {
                let inner = self.data.encode();
                let mut out = Vec::with_capacity(13 + inner.len());
                out.push(KIND_BATCHED);
                out.extend_from_slice(&o.index.to_le_bytes());
                out.extend_from_slice(&o.count.to_le_bytes());
                out.extend_from_slice(&o.schema_version.to_le_bytes());
                out.extend_from_slice(&inner);
                out
            }
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Self, String> {
        match payload.split_first() {
            Some((&KIND_BATCHED, rest)) => {
                let word = |at: usize| rest.get(at..at + 4).and_then(|b| b.try_into().ok()).ok_or("stored batch record is truncated");
                let origin = BatchOrigin {
                    index: u32::from_le_bytes(word(0)?),
                    count: u32::from_le_bytes(word(4)?),
                    schema_version: i32::from_le_bytes(word(8)?),
                };
                Ok(StoredPayload { data: RecordData::decode(&rest[12..])?, origin: Some(origin) })
            }
            _ => Ok(StoredPayload { data: RecordData::decode(payload)?, origin: None }),
        }
    }
}

/// Number of fields in a RecordSchema JSON string (`{"fields": [...]}`).
pub fn schema_field_count(schema: &str) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(schema).ok()?;
    v.get("fields")?.as_array().map(Vec::len)
}

/// Cursors are 32 hex characters like the service's: the sequence and a check word, so a
/// made-up or mangled cursor is rejected as `InvalidCursor` instead of read from.
pub fn encode_cursor(sequence: u64) -> String {
    format!("{sequence:016x}{:016x}", cursor_check(sequence))
}

pub fn decode_cursor(cursor: &str) -> Option<u64> {
    if cursor.len() != 32 || !cursor.is_ascii() {
        return None;
    }
    let seq = u64::from_str_radix(&cursor[..16], 16).ok()?;
    let check = u64::from_str_radix(&cursor[16..], 16).ok()?;
    (check == cursor_check(seq)).then_some(seq)
}

fn cursor_check(seq: u64) -> u64 {
    (seq ^ 0x5DA7_A10C_u64.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_and_cursor_round_trip() {
        for d in [RecordData::Blob(b"\x00\x01binary".to_vec()), RecordData::Tuple(vec![Some("1".into()), None, Some(String::new())])] {
            assert_eq!(RecordData::decode(&d.encode()).unwrap(), d);
            assert_eq!(RecordData::from_json(&d.to_json()).unwrap(), d);
        }
        assert!(RecordData::decode(&[1, 5, 0, 0, 0, 1]).is_err());
        let batched = StoredPayload { data: RecordData::Tuple(vec![Some("x".into())]), origin: Some(BatchOrigin { index: 2, count: 5, schema_version: -1 }) };
        assert_eq!(StoredPayload::decode(&batched.encode()).unwrap(), batched);
        assert_eq!(RecordData::decode(&batched.encode()).unwrap(), batched.data);
        assert!(StoredPayload::decode(&batched.encode()[..8]).is_err());
        for s in [0, 1, 12345, u64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(s)), Some(s));
        }
        assert_eq!(decode_cursor("30005af19b3800000000000000000000"), None);
        assert_eq!(decode_cursor("c0"), None);
    }
}
