//! Batch (binary) mode (§4.3): the batch that travels in `BinaryRecordEntry.data`, both ways.
//!
//! ```text
//! batch header, 26 bytes, little-endian:
//!   "DHUB" | version i32 = 0 | length u32 (header + payload) | raw_size u32 (payload before
//!   compression) | crc32c u32 (of the payload as sent) | attributes u16 (compression | 8) |
//!   record_count u32
//! payload: records, compressed with none/deflate/lz4/zlib (attributes' low 2 bits: 0-3)
//! record: header (encode_type i32 = 0, schema_version i32, total_size u32, attr_offset u32)
//!   | field count i32 | null bitmap (bit set = present), ceil(n/64)*8 bytes | n 8-byte slots
//!   | var area (values > 7 bytes, each padded to a multiple of 8, +8 if already aligned)
//!   | attributes (i32 count, then i32 len + key, i32 len + value each)
//! ```
//!
//! Values convert from and to DataHub's string forms (the JSON/PB modes'), so the server can
//! store every mode's records alike and read them back in any mode.

use crate::codec::{self, crc32c, Compression};
use crate::model::RecordData;
use crate::schema::{parse_bool, FieldType, RecordSchema};

pub const BATCH_HEADER_LEN: usize = 26;
const RECORD_HEADER_LEN: usize = 16;
const MAGIC: &[u8; 4] = b"DHUB";
/// The schema version a BLOB record carries.
pub const BLOB_SCHEMA_VERSION: i32 = -1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("batch header: {0}")]
    Header(String),
    #[error("batch CRC32C mismatch: the header says {expected:08x}, the payload's is {actual:08x} (corrupted in transit or mis-framed)")]
    Crc { expected: u32, actual: u32 },
    #[error("batch payload ({compression}): {reason}")]
    Payload { compression: &'static str, reason: String },
    #[error("batch record {index}: {reason}")]
    Record { index: usize, reason: String },
}

/// The compression index of the batch attributes (pydatahub's `CompressFormat.get_index`).
fn compression_index(c: Compression) -> u16 {
    match c {
        Compression::None => 0,
        Compression::Deflate => 1,
        Compression::Lz4 => 2,
        Compression::Zlib => 3,
    }
}

fn compression_of(index: u16) -> Compression {
    match index & 3 {
        1 => Compression::Deflate,
        2 => Compression::Lz4,
        3 => Compression::Zlib,
        _ => Compression::None,
    }
}

/// One record to put into a batch.
#[derive(Debug, Clone, Copy)]
pub struct EncodeRecord<'a> {
    pub data: &'a RecordData,
    /// TUPLE: the schema the values are encoded with, and its registered version id.
    pub schema: Option<(&'a RecordSchema, i32)>,
    pub attributes: &'a [(String, String)],
}

/// A record read out of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    pub schema_version: i32,
    pub data: RecordData,
    pub attributes: Vec<(String, String)>,
}

/// Encodes records as one batch. The payload is compressed with `compression` only when
/// that makes it smaller (pydatahub's rule), else sent as is and marked uncompressed.
pub fn encode_batch(records: &[EncodeRecord<'_>], compression: Compression) -> Result<Vec<u8>, BatchError> {
    let mut payload = Vec::new();
    for (index, r) in records.iter().enumerate() {
        encode_record(&mut payload, r).map_err(|reason| BatchError::Record { index, reason })?;
    }
    let raw_size = payload.len();
    let mut attributes = compression_index(Compression::None);
    if compression != Compression::None {
        let z = codec::compress(compression, &payload);
        if z.len() < payload.len() {
            payload = z;
            attributes = compression_index(compression);
        }
    }
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&((BATCH_HEADER_LEN + payload.len()) as u32).to_le_bytes());
    out.extend_from_slice(&(raw_size as u32).to_le_bytes());
    out.extend_from_slice(&crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&(attributes | 8).to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn encode_record(out: &mut Vec<u8>, r: &EncodeRecord<'_>) -> Result<(), String> {
    // Values as (type, string or bytes); BLOB is one byte field.
    let (version, n) = match (r.data, r.schema) {
        (RecordData::Blob(_), _) => (BLOB_SCHEMA_VERSION, 1),
        (RecordData::Tuple(values), Some((schema, version))) => {
            schema.check(values)?;
            (version, values.len())
        }
        (RecordData::Tuple(_), None) => return Err("a TUPLE record needs its schema to be encoded in batch mode".into()),
    };
    let bitmap_len = n.div_ceil(64) * 8;
    let mut bitmap = vec![0u8; bitmap_len];
    let mut slots = Vec::with_capacity(n * 8);
    let mut var: Vec<u8> = Vec::new();
    // Offsets of long values count from the end of the record header.
    let var_base = 4 + bitmap_len + n * 8;
    let bytes_slot = |slots: &mut Vec<u8>, var: &mut Vec<u8>, b: &[u8]| {
        if b.len() <= 7 {
            let mut slot = [0u8; 8];
            slot[..b.len()].copy_from_slice(b);
            slot[7] = 0x80 | b.len() as u8;
            slots.extend_from_slice(&slot);
        } else {
            slots.extend_from_slice(&(b.len() as u32).to_le_bytes());
            slots.extend_from_slice(&((var_base + var.len()) as u32).to_le_bytes());
            var.extend_from_slice(b);
            // Padded to a multiple of 8; an aligned value still gets 8 bytes (as pydatahub).
            var.resize(var.len() + (8 - b.len() % 8), 0);
        }
    };
    match r.data {
        RecordData::Blob(b) => {
            bitmap[0] = 1;
            bytes_slot(&mut slots, &mut var, b);
        }
        RecordData::Tuple(values) => {
            let Some((schema, _)) = r.schema else { return Err("no schema".into()) };
            for (i, (value, field)) in values.iter().zip(&schema.fields).enumerate() {
                let Some(v) = value else {
                    slots.extend_from_slice(&[0u8; 8]);
                    continue;
                };
                bitmap[i >> 3] |= 1 << (i & 7);
                let bad = || format!("field {}: {v:?} is not a {}", field.name, field.field_type.name());
                match field.field_type {
                    FieldType::Tinyint | FieldType::Smallint | FieldType::Integer | FieldType::Bigint | FieldType::Timestamp => {
                        slots.extend_from_slice(&v.trim().parse::<i64>().map_err(|_| bad())?.to_le_bytes())
                    }
                    FieldType::Boolean => {
                        let b = parse_bool(v).ok_or_else(bad)?;
                        slots.extend_from_slice(&[b as u8, 0, 0, 0, 0, 0, 0, 0]);
                    }
                    FieldType::Float => {
                        slots.extend_from_slice(&v.trim().parse::<f32>().map_err(|_| bad())?.to_le_bytes());
                        slots.extend_from_slice(&[0u8; 4]);
                    }
                    FieldType::Double => slots.extend_from_slice(&v.trim().parse::<f64>().map_err(|_| bad())?.to_le_bytes()),
                    FieldType::String | FieldType::Decimal => bytes_slot(&mut slots, &mut var, v.as_bytes()),
                }
            }
        }
    }
    let mut attrs = Vec::new();
    put_i32(&mut attrs, r.attributes.len() as i32);
    for (k, v) in r.attributes {
        put_i32(&mut attrs, k.len() as i32);
        attrs.extend_from_slice(k.as_bytes());
        put_i32(&mut attrs, v.len() as i32);
        attrs.extend_from_slice(v.as_bytes());
    }
    let attr_offset = RECORD_HEADER_LEN + var_base + var.len();
    let total = attr_offset + attrs.len();
    put_i32(out, 0);
    put_i32(out, version);
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(attr_offset as u32).to_le_bytes());
    put_i32(out, n as i32);
    out.extend_from_slice(&bitmap);
    out.extend_from_slice(&slots);
    out.extend_from_slice(&var);
    out.extend_from_slice(&attrs);
    Ok(())
}

/// The header fields of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub length: u32,
    pub raw_size: u32,
    pub crc32: u32,
    pub compression: Compression,
    pub record_count: u32,
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes)
}

/// Checks the header, length and CRC, and returns the header and the decompressed payload.
/// `limit` bounds the decompressed size.
pub fn open_batch(bytes: &[u8], limit: usize) -> Result<(BatchHeader, Vec<u8>), BatchError> {
    if bytes.len() < BATCH_HEADER_LEN {
        return Err(BatchError::Header(format!("{} bytes, shorter than the 26-byte header", bytes.len())));
    }
    if &bytes[..4] != MAGIC {
        return Err(BatchError::Header("does not start with DHUB".into()));
    }
    let field = |at| le_u32(bytes, at).unwrap_or(0);
    let header = BatchHeader {
        length: field(8),
        raw_size: field(12),
        crc32: field(16),
        compression: compression_of(u16::from_le_bytes([bytes[20], bytes[21]])),
        record_count: field(22),
    };
    if header.length as usize != bytes.len() {
        return Err(BatchError::Header(format!("length field says {} bytes, the batch has {}", header.length, bytes.len())));
    }
    let payload = &bytes[BATCH_HEADER_LEN..];
    let actual = crc32c(payload);
    if actual != header.crc32 {
        return Err(BatchError::Crc { expected: header.crc32, actual });
    }
    let name = match header.compression {
        Compression::None => "none",
        c => c.name(),
    };
    let raw = codec::decompress(header.compression.name(), Some(header.raw_size as usize), payload, limit)
        .map_err(|e| BatchError::Payload { compression: name, reason: e.to_string() })?;
    if raw.len() != header.raw_size as usize {
        return Err(BatchError::Payload { compression: name, reason: format!("{} bytes after decompression, the header says {}", raw.len(), header.raw_size) });
    }
    if header.record_count as usize > raw.len() / RECORD_HEADER_LEN {
        return Err(BatchError::Header(format!("{} records cannot fit in {} bytes", header.record_count, raw.len())));
    }
    Ok((header, raw))
}

/// What the records of a batch are, to decode their fields.
pub enum Layout<'a> {
    Blob,
    /// TUPLE: the schema of a record's header version, `None` if that version is unknown.
    Tuple(&'a dyn Fn(i32) -> Option<RecordSchema>),
}

/// Decodes every record of a batch.
pub fn decode_batch(bytes: &[u8], layout: &Layout<'_>, limit: usize) -> Result<Vec<DecodedRecord>, BatchError> {
    let (header, payload) = open_batch(bytes, limit)?;
    let mut out = Vec::with_capacity(header.record_count as usize);
    let mut at = 0usize;
    for index in 0..header.record_count as usize {
        let rec = payload.get(at..).unwrap_or_default();
        let (record, len) = decode_record(rec, layout).map_err(|reason| BatchError::Record { index, reason })?;
        out.push(record);
        at += len;
    }
    Ok(out)
}

fn decode_record(rec: &[u8], layout: &Layout<'_>) -> Result<(DecodedRecord, usize), String> {
    let word = |at: usize| le_u32(rec, at).ok_or_else(|| format!("truncated at byte {at}"));
    let version = word(4)? as i32;
    let total = word(8)? as usize;
    let attr_offset = word(12)? as usize;
    if total < RECORD_HEADER_LEN + 4 || total > rec.len() {
        return Err(format!("total size {total} does not fit the {} bytes left", rec.len()));
    }
    let rec = &rec[..total];
    let n = word(16)? as usize;
    let schema = match layout {
        Layout::Blob => {
            if n != 1 {
                return Err(format!("a BLOB record has 1 field, this one {n}"));
            }
            None
        }
        Layout::Tuple(schema_for) => {
            let s = schema_for(version).ok_or_else(|| format!("schema version {version} is not registered for this topic"))?;
            if s.fields.len() != n {
                return Err(format!("{n} fields, schema version {version} has {}", s.fields.len()));
            }
            Some(s)
        }
    };
    let bitmap_len = n.div_ceil(64) * 8;
    let slots_at = RECORD_HEADER_LEN + 4 + bitmap_len;
    if slots_at + n * 8 > attr_offset || attr_offset > total {
        return Err(format!("{n} fields do not fit before the attributes at {attr_offset}"));
    }
    let present = |i: usize| rec[RECORD_HEADER_LEN + 4 + (i >> 3)] & (1 << (i & 7)) != 0;
    let slot = |i: usize| -> [u8; 8] {
        let mut s = [0u8; 8];
        s.copy_from_slice(&rec[slots_at + i * 8..slots_at + i * 8 + 8]);
        s
    };
    let bytes_of = |s: [u8; 8]| -> Result<Vec<u8>, String> {
        if s[7] & 0x80 != 0 {
            let len = (s[7] & 0x07) as usize;
            return Ok(s[..len].to_vec());
        }
        let len = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
        let off = RECORD_HEADER_LEN + u32::from_le_bytes([s[4], s[5], s[6], s[7]]) as usize;
        rec.get(off..off.saturating_add(len)).map(<[u8]>::to_vec).ok_or_else(|| format!("a {len}-byte value at {off} runs past the record"))
    };
    let data = match &schema {
        None => RecordData::Blob(if present(0) { bytes_of(slot(0))? } else { Vec::new() }),
        Some(schema) => {
            let mut values = Vec::with_capacity(n);
            for (i, f) in schema.fields.iter().enumerate() {
                if !present(i) {
                    values.push(None);
                    continue;
                }
                let s = slot(i);
                let v = match f.field_type {
                    FieldType::Tinyint => (s[0] as i8).to_string(),
                    FieldType::Smallint => i16::from_le_bytes([s[0], s[1]]).to_string(),
                    FieldType::Integer => i32::from_le_bytes([s[0], s[1], s[2], s[3]]).to_string(),
                    FieldType::Bigint | FieldType::Timestamp => i64::from_le_bytes(s).to_string(),
                    FieldType::Boolean => (s[0] != 0).to_string(),
                    // `{:?}` is the shortest text that parses back to the same value.
                    FieldType::Float => format!("{:?}", f32::from_le_bytes([s[0], s[1], s[2], s[3]])),
                    FieldType::Double => format!("{:?}", f64::from_le_bytes(s)),
                    FieldType::String | FieldType::Decimal => {
                        String::from_utf8(bytes_of(s)?).map_err(|_| format!("field {} is not UTF-8", f.name))?
                    }
                };
                values.push(Some(v));
            }
            RecordData::Tuple(values)
        }
    };
    let mut at = attr_offset;
    let mut take = |len: usize| -> Result<&[u8], String> {
        let s = rec.get(at..at.saturating_add(len)).ok_or_else(|| "attributes run past the record".to_string())?;
        at += len;
        Ok(s)
    };
    let int = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let count = int(take(4)?);
    let mut attributes = Vec::new();
    for _ in 0..count.max(0) {
        let klen = int(take(4)?).max(0) as usize;
        let k = String::from_utf8(take(klen)?.to_vec()).map_err(|_| "attribute key is not UTF-8".to_string())?;
        let vlen = int(take(4)?).max(0) as usize;
        let v = String::from_utf8(take(vlen)?.to_vec()).map_err(|_| "attribute value is not UTF-8".to_string())?;
        attributes.push((k, v));
    }
    Ok((DecodedRecord { schema_version: version, data, attributes }, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::hex;
    use crate::codec::unwrap_frame;
    use crate::pb;

    const SCHEMA: &str = r#"{"fields": [{"name": "id", "type": "bigint"}, {"name": "name", "type": "string"}, {"name": "ok", "type": "boolean"}, {"name": "score", "type": "double"}]}"#;

    /// §8.6: pydatahub's batch PutRecordsByShard, two records, uncompressed.
    const CAPTURED: &str = "444855421ea68d1a000000c20abf0132bc014448554200000000bc000000a2000000b7f0472808000200000000000000000000004a0000003c000000040000000f00000000000000010000000000000068656c6c6f0000850100000000000000000000000000f83f01000000010000006b010000007600000000000000005800000054000000040000000f000000000000000200000000000000160000002c000000000000000000000000000000000002406120737472696e67206c6f6e676572207468616e2037";

    fn tuple(values: &[Option<&str>]) -> RecordData {
        RecordData::Tuple(values.iter().map(|v| v.map(str::to_string)).collect())
    }

    #[test]
    fn decodes_the_captured_batch_and_reencodes_it_byte_for_byte() {
        // The capture is cut at 200 bytes of 206; the last six are the tail of record 1.
        let mut body = hex(CAPTURED);
        body.extend_from_slice(b"\x00\x00\x00\x00\x00\x00");
        let pb = unwrap_frame(&body).unwrap();
        let entries = pb::decode_binary_records(pb).unwrap();
        assert_eq!(entries.len(), 1);
        let schema = RecordSchema::parse(SCHEMA).unwrap();
        let lookup = |v: i32| (v == 0).then(|| schema.clone());
        let records = decode_batch(&entries[0].data, &Layout::Tuple(&lookup), 1 << 20).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].data, tuple(&[Some("1"), Some("hello"), Some("true"), Some("1.5")]));
        assert_eq!(records[0].attributes, vec![("k".to_string(), "v".to_string())]);
        assert_eq!(records[1].data, tuple(&[Some("2"), Some("a string longer than 7"), Some("false"), Some("2.25")]));
        let again: Vec<EncodeRecord<'_>> =
            records.iter().map(|r| EncodeRecord { data: &r.data, schema: Some((&schema, 0)), attributes: &r.attributes }).collect();
        assert_eq!(encode_batch(&again, Compression::None).unwrap(), entries[0].data);
    }

    #[test]
    fn blob_capture_nulls_compression_and_corruption() {
        // §4.3: the captured BLOB record for 00 01 'binary'.
        let blob = RecordData::Blob(b"\x00\x01binary".to_vec());
        let batch = encode_batch(&[EncodeRecord { data: &blob, schema: None, attributes: &[] }], Compression::None).unwrap();
        assert_eq!(&batch[BATCH_HEADER_LEN..], &hex("00000000ffffffff38000000340000000100000001000000000000000800000014000000000162696e617279000000000000000000000000")[..]);

        let schema = RecordSchema::parse(SCHEMA).unwrap();
        let lookup = |v: i32| (v == 3).then(|| schema.clone());
        let rows: Vec<RecordData> = (0..40).map(|i| tuple(&[Some(&i.to_string()), if i % 3 == 0 { None } else { Some("text that repeats, text that repeats") }, Some("true"), None])).collect();
        let attrs = vec![("a".to_string(), "b".to_string())];
        for c in [Compression::None, Compression::Lz4, Compression::Zlib, Compression::Deflate] {
            let recs: Vec<EncodeRecord<'_>> = rows.iter().map(|d| EncodeRecord { data: d, schema: Some((&schema, 3)), attributes: &attrs }).collect();
            let batch = encode_batch(&recs, c).unwrap();
            let (h, _) = open_batch(&batch, 1 << 20).unwrap();
            assert_eq!(h.compression, c, "a repetitive payload is compressed with {c:?}");
            let back = decode_batch(&batch, &Layout::Tuple(&lookup), 1 << 20).unwrap();
            assert_eq!(back.iter().map(|r| r.data.clone()).collect::<Vec<_>>(), rows, "{c:?}");
            assert!(back.iter().all(|r| r.schema_version == 3 && r.attributes == attrs));

            let mut bad = batch.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(decode_batch(&bad, &Layout::Tuple(&lookup), 1 << 20), Err(BatchError::Crc { .. })), "{c:?}");
        }
        let recs = [EncodeRecord { data: &rows[1], schema: Some((&schema, 9)), attributes: &[] }];
        let unknown = decode_batch(&encode_batch(&recs, Compression::None).unwrap(), &Layout::Tuple(&lookup), 1 << 20).unwrap_err();
        assert!(unknown.to_string().contains("schema version 9"), "{unknown}");
        let wrong = tuple(&[Some("x"), None, None, None]);
        assert!(encode_batch(&[EncodeRecord { data: &wrong, schema: Some((&schema, 0)), attributes: &[] }], Compression::None).is_err());
        for cut in [0, 10, 30] {
            assert!(decode_batch(&batch_prefix(&rows, &schema, cut), &Layout::Tuple(&lookup), 1 << 20).is_err());
        }
    }

    fn batch_prefix(rows: &[RecordData], schema: &RecordSchema, cut: usize) -> Vec<u8> {
        let recs: Vec<EncodeRecord<'_>> = rows.iter().map(|d| EncodeRecord { data: d, schema: Some((schema, 3)), attributes: &[] }).collect();
        encode_batch(&recs, Compression::None).unwrap()[..cut].to_vec()
    }
}
