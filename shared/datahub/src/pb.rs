//! The few protobuf (proto2) messages of DataHub's PB mode (§4.2), encoded and decoded by hand:
//! eight small messages do not justify `prost` and a build step on a two-core machine.

use crate::model::RecordData;

#[derive(Debug, thiserror::Error)]
#[error("protobuf: {0}")]
pub struct PbError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, PbError> {
    Err(PbError(msg.into()))
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Skip,
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, PbError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(b) = buf.get(*at) else { return err("truncated varint") };
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    err("varint longer than 10 bytes")
}

/// Iterates `(field number, value)` over a message.
fn fields(buf: &[u8]) -> impl Iterator<Item = Result<(u64, Value<'_>), PbError>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= buf.len() {
            return None;
        }
        let item = (|| {
            let key = varint(buf, &mut at)?;
            let value = match key & 7 {
                0 => Value::Varint(varint(buf, &mut at)?),
                2 => {
                    let len = varint(buf, &mut at)? as usize;
                    let end = at.checked_add(len).filter(|e| *e <= buf.len()).ok_or_else(|| PbError("length-delimited field overruns the message".into()))?;
                    let s = &buf[at..end];
                    at = end;
                    Value::Len(s)
                }
                1 => {
                    at = at.checked_add(8).filter(|e| *e <= buf.len()).ok_or_else(|| PbError("truncated fixed64".into()))?;
                    Value::Skip
                }
                5 => {
                    at = at.checked_add(4).filter(|e| *e <= buf.len()).ok_or_else(|| PbError("truncated fixed32".into()))?;
                    Value::Skip
                }
                w => return err(format!("unsupported wire type {w}")),
            };
            Ok((key >> 3, value))
        })();
        if item.is_err() {
            at = buf.len();
        }
        Some(item)
    })
}

fn string(v: Value<'_>) -> Result<String, PbError> {
    match v {
        Value::Len(b) => String::from_utf8(b.to_vec()).map_err(|_| PbError("string field is not UTF-8".into())),
        _ => err("expected a string field"),
    }
}

/// A record of a PB PutRecordsRequest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbRecord {
    pub shard_id: Option<String>,
    pub hash_key: Option<String>,
    pub partition_key: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// One entry per `FieldData`; `None` = value absent (null).
    pub fields: Vec<Option<Vec<u8>>>,
}

pub fn decode_put_records(buf: &[u8]) -> Result<Vec<PbRecord>, PbError> {
    let mut out = Vec::new();
    for f in fields(buf) {
        if let (1, Value::Len(entry)) = f? {
            out.push(decode_entry(entry)?);
        }
    }
    Ok(out)
}

fn decode_entry(buf: &[u8]) -> Result<PbRecord, PbError> {
    let mut r = PbRecord::default();
    let mut has_data = false;
    for f in fields(buf) {
        match f? {
            (1, v) => r.shard_id = Some(string(v)?),
            (2, v) => r.hash_key = Some(string(v)?),
            (3, v) => r.partition_key = Some(string(v)?),
            (8, Value::Len(attrs)) => {
                for a in fields(attrs) {
                    if let (1, Value::Len(pair)) = a? {
                        let (mut k, mut v) = (None, None);
                        for p in fields(pair) {
                            match p? {
                                (1, x) => k = Some(string(x)?),
                                (2, x) => v = Some(string(x)?),
                                _ => {}
                            }
                        }
                        match (k, v) {
                            (Some(k), Some(v)) => r.attributes.push((k, v)),
                            _ => return err("attribute StringPair lacks key or value"),
                        }
                    }
                }
            }
            (9, Value::Len(data)) => {
                has_data = true;
                for d in fields(data) {
                    if let (1, Value::Len(fd)) = d? {
                        let mut value = None;
                        for x in fields(fd) {
                            if let (1, Value::Len(b)) = x? {
                                value = Some(b.to_vec());
                            }
                        }
                        r.fields.push(value);
                    }
                }
            }
            _ => {}
        }
    }
    if !has_data {
        return err("RecordEntry lacks the required data field");
    }
    Ok(r)
}

/// GetRecordsRequest → (cursor, limit).
pub fn decode_get_records(buf: &[u8]) -> Result<(String, i64), PbError> {
    let (mut cursor, mut limit) = (None, 1i64);
    for f in fields(buf) {
        match f? {
            (1, v) => cursor = Some(string(v)?),
            (2, Value::Varint(n)) => limit = n as i32 as i64,
            _ => {}
        }
    }
    Ok((cursor.ok_or_else(|| PbError("GetRecordsRequest lacks the cursor".into()))?, limit))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, field << 3 | wire);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_int(out: &mut Vec<u8>, field: u64, v: i64) {
    put_key(out, field, 0);
    put_varint(out, v as u64);
}

/// PutRecordsResponse{failed_count, failed_records[{index, error_code, error_message}]}.
pub fn encode_put_response(failed: &[(usize, String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    put_int(&mut out, 1, failed.len() as i64);
    for (index, code, message) in failed {
        let mut m = Vec::new();
        put_int(&mut m, 1, *index as i64);
        put_bytes(&mut m, 2, code.as_bytes());
        put_bytes(&mut m, 3, message.as_bytes());
        put_bytes(&mut out, 2, &m);
    }
    out
}

/// One record of a GetRecordsResponse.
#[derive(Debug)]
pub struct PbOutRecord<'a> {
    pub cursor: String,
    pub next_cursor: String,
    pub sequence: u64,
    pub system_time: i64,
    pub attributes: &'a [(String, String)],
    pub data: &'a RecordData,
}

pub fn encode_get_response(next_cursor: &str, start_sequence: i64, records: &[PbOutRecord<'_>], latest_sequence: i64, latest_time: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, next_cursor.as_bytes());
    put_int(&mut out, 2, records.len() as i64);
    put_int(&mut out, 3, start_sequence);
    for r in records {
        let mut e = Vec::new();
        put_bytes(&mut e, 4, r.cursor.as_bytes());
        put_bytes(&mut e, 5, r.next_cursor.as_bytes());
        put_int(&mut e, 6, r.sequence as i64);
        put_int(&mut e, 7, r.system_time);
        if !r.attributes.is_empty() {
            let mut attrs = Vec::new();
            for (k, v) in r.attributes {
                let mut pair = Vec::new();
                put_bytes(&mut pair, 1, k.as_bytes());
                put_bytes(&mut pair, 2, v.as_bytes());
                put_bytes(&mut attrs, 1, &pair);
            }
            put_bytes(&mut e, 8, &attrs);
        }
        let mut data = Vec::new();
        let mut field = |value: Option<&[u8]>| {
            let mut fd = Vec::new();
            if let Some(v) = value {
                put_bytes(&mut fd, 1, v);
            }
            put_bytes(&mut data, 1, &fd);
        };
        match r.data {
            RecordData::Blob(b) => field(Some(b)),
            RecordData::Tuple(values) => values.iter().for_each(|v| field(v.as_deref().map(str::as_bytes))),
        }
        // `data` is required in proto2: always emitted, even when empty.
        put_bytes(&mut e, 9, &data);
        put_bytes(&mut out, 4, &e);
    }
    put_int(&mut out, 5, latest_sequence);
    put_int(&mut out, 6, latest_time);
    out
}

/// A `BinaryRecordEntry` (batch mode): one batch and where it sits in the shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinaryEntry {
    pub cursor: String,
    pub next_cursor: String,
    pub sequence: i64,
    pub system_time: i64,
    /// The batch (§4.3).
    pub data: Vec<u8>,
}

fn decode_binary_entry(buf: &[u8]) -> Result<BinaryEntry, PbError> {
    let mut e = BinaryEntry::default();
    for f in fields(buf) {
        match f? {
            (1, v) => e.cursor = string(v)?,
            (2, v) => e.next_cursor = string(v)?,
            (3, Value::Varint(n)) => e.sequence = n as i64,
            (4, Value::Varint(n)) => e.system_time = n as i64,
            (6, Value::Len(b)) => e.data = b.to_vec(),
            _ => {}
        }
    }
    Ok(e)
}

fn encode_binary_entry(e: &BinaryEntry) -> Vec<u8> {
    let mut m = Vec::with_capacity(e.data.len() + 64);
    if !e.cursor.is_empty() {
        put_bytes(&mut m, 1, e.cursor.as_bytes());
    }
    if !e.next_cursor.is_empty() {
        put_bytes(&mut m, 2, e.next_cursor.as_bytes());
    }
    put_int(&mut m, 3, e.sequence);
    put_int(&mut m, 4, e.system_time);
    put_bytes(&mut m, 6, &e.data);
    m
}

/// PutBinaryRecordsRequest → its entries (pydatahub sends one, holding the whole batch).
pub fn decode_binary_records(buf: &[u8]) -> Result<Vec<BinaryEntry>, PbError> {
    let mut out = Vec::new();
    for f in fields(buf) {
        if let (1, Value::Len(entry)) = f? {
            out.push(decode_binary_entry(entry)?);
        }
    }
    Ok(out)
}

/// PutBinaryRecordsRequest{records: [BinaryRecordEntry{data}]} (client side).
pub fn encode_binary_records(batches: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in batches {
        let mut e = Vec::with_capacity(b.len() + 8);
        put_bytes(&mut e, 6, b);
        put_bytes(&mut out, 1, &e);
    }
    out
}

/// GetBinaryRecordsResponse. `record_count` is the number of *entries* (batches): pydatahub
/// iterates `records[0..record_count]` and counts the records inside itself.
pub fn encode_get_binary_response(next_cursor: &str, start_sequence: i64, entries: &[BinaryEntry], latest_sequence: i64, latest_time: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, next_cursor.as_bytes());
    put_int(&mut out, 2, entries.len() as i64);
    put_int(&mut out, 3, start_sequence);
    for e in entries {
        put_bytes(&mut out, 4, &encode_binary_entry(e));
    }
    put_int(&mut out, 5, latest_sequence);
    put_int(&mut out, 6, latest_time);
    out
}

/// A decoded GetRecordsResponse / GetBinaryRecordsResponse (client side).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetResponse<R> {
    pub next_cursor: String,
    pub start_sequence: i64,
    pub records: Vec<R>,
}

pub fn decode_get_binary_response(buf: &[u8]) -> Result<GetResponse<BinaryEntry>, PbError> {
    let mut r = GetResponse { start_sequence: -1, ..GetResponse::default() };
    let mut has_cursor = false;
    for f in fields(buf) {
        match f? {
            (1, v) => {
                r.next_cursor = string(v)?;
                has_cursor = true;
            }
            (3, Value::Varint(n)) => r.start_sequence = n as i64,
            (4, Value::Len(e)) => r.records.push(decode_binary_entry(e)?),
            _ => {}
        }
    }
    if !has_cursor {
        return err("GetBinaryRecordsResponse lacks next_cursor");
    }
    Ok(r)
}

/// A record of a PB GetRecordsResponse (client side).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbGotRecord {
    pub sequence: i64,
    pub system_time: i64,
    pub attributes: Vec<(String, String)>,
    /// One entry per `FieldData`; `None` = value absent.
    pub fields: Vec<Option<Vec<u8>>>,
}

pub fn decode_get_response(buf: &[u8]) -> Result<GetResponse<PbGotRecord>, PbError> {
    let mut r = GetResponse { start_sequence: -1, ..GetResponse::default() };
    let mut has_cursor = false;
    for f in fields(buf) {
        match f? {
            (1, v) => {
                r.next_cursor = string(v)?;
                has_cursor = true;
            }
            (3, Value::Varint(n)) => r.start_sequence = n as i64,
            (4, Value::Len(e)) => {
                let mut got = PbGotRecord::default();
                for x in fields(e) {
                    match x? {
                        (6, Value::Varint(n)) => got.sequence = n as i64,
                        (7, Value::Varint(n)) => got.system_time = n as i64,
                        _ => {}
                    }
                }
                // The data and attributes are laid out as in a PutRecordsRequest entry.
                let entry = decode_entry(e)?;
                got.attributes = entry.attributes;
                got.fields = entry.fields;
                r.records.push(got);
            }
            _ => {}
        }
    }
    if !has_cursor {
        return err("GetRecordsResponse lacks next_cursor");
    }
    Ok(r)
}

/// PutRecordsRequest (client side): fields in field-number order, null = empty FieldData.
pub fn encode_put_records(records: &[PbRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let mut e = Vec::new();
        for (field, v) in [(1, &r.shard_id), (2, &r.hash_key), (3, &r.partition_key)] {
            if let Some(v) = v {
                put_bytes(&mut e, field, v.as_bytes());
            }
        }
        if !r.attributes.is_empty() {
            let mut attrs = Vec::new();
            for (k, v) in &r.attributes {
                let mut pair = Vec::new();
                put_bytes(&mut pair, 1, k.as_bytes());
                put_bytes(&mut pair, 2, v.as_bytes());
                put_bytes(&mut attrs, 1, &pair);
            }
            put_bytes(&mut e, 8, &attrs);
        }
        let mut data = Vec::new();
        for v in &r.fields {
            let mut fd = Vec::new();
            if let Some(v) = v {
                put_bytes(&mut fd, 1, v);
            }
            put_bytes(&mut data, 1, &fd);
        }
        put_bytes(&mut e, 9, &data);
        put_bytes(&mut out, 1, &e);
    }
    out
}

/// PutRecordsResponse → failed records `(index, code, message)` (client side).
pub fn decode_put_response(buf: &[u8]) -> Result<Vec<(usize, String, String)>, PbError> {
    let mut out = Vec::new();
    for f in fields(buf) {
        if let (2, Value::Len(m)) = f? {
            let (mut index, mut code, mut message) = (None, String::new(), String::new());
            for x in fields(m) {
                match x? {
                    (1, Value::Varint(n)) => index = Some(n as usize),
                    (2, v) => code = string(v)?,
                    (3, v) => message = string(v)?,
                    _ => {}
                }
            }
            out.push((index.ok_or_else(|| PbError("FailedRecord lacks its index".into()))?, code, message));
        }
    }
    Ok(out)
}

/// GetRecordsRequest{cursor, limit} (client side).
pub fn encode_get_records(cursor: &str, limit: u32) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, cursor.as_bytes());
    put_int(&mut out, 2, limit as i64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{tests::hex, unwrap_frame};

    #[test]
    fn decodes_the_captured_pb_put() {
        // §8.3: two TUPLE records, the second with nulls and a partition key.
        let body = hex("4448554256b4a358000000480a2c0a013042080a060a016b1201764a1d0a030a01310a070a0568656c6c6f0a060a04747275650a050a03312e350a181a02706b4a120a030a01320a000a070a0566616c73650a00");
        let recs = decode_put_records(unwrap_frame(&body).unwrap()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].shard_id.as_deref(), Some("0"));
        assert_eq!(recs[0].attributes, vec![("k".to_string(), "v".to_string())]);
        assert_eq!(recs[0].fields, vec![Some(b"1".to_vec()), Some(b"hello".to_vec()), Some(b"true".to_vec()), Some(b"1.5".to_vec())]);
        assert_eq!(recs[1].partition_key.as_deref(), Some("pk"));
        assert_eq!(recs[1].fields, vec![Some(b"2".to_vec()), None, Some(b"false".to_vec()), None]);
        // §8.4: BLOB.
        let blob = hex("44485542f103205c000000100a0e4a0c0a0a0a08000162696e617279");
        let recs = decode_put_records(unwrap_frame(&blob).unwrap()).unwrap();
        assert_eq!(recs[0].fields, vec![Some(b"\x00\x01binary".to_vec())]);
        // §8.5: GetRecords.
        let get = hex("4448554247e2867c000000060a026330100a");
        assert_eq!(decode_get_records(unwrap_frame(&get).unwrap()).unwrap(), ("c0".to_string(), 10));
    }

    #[test]
    fn client_and_server_halves_agree() {
        // §8.3 is what pydatahub sends; our encoder must produce the same bytes.
        let body = hex("4448554256b4a358000000480a2c0a013042080a060a016b1201764a1d0a030a01310a070a0568656c6c6f0a060a04747275650a050a03312e350a181a02706b4a120a030a01320a000a070a0566616c73650a00");
        let recs = decode_put_records(unwrap_frame(&body).unwrap()).unwrap();
        assert_eq!(crate::codec::wrap_frame(&encode_put_records(&recs)), body);
        assert_eq!(encode_get_records("c0", 10), hex("0a026330100a"));
        let failed = vec![(1, "InvalidShardOperation".to_string(), "closed".to_string())];
        assert_eq!(decode_put_response(&encode_put_response(&failed)).unwrap(), failed);

        let data = RecordData::Tuple(vec![Some("1".into()), None]);
        let attrs = vec![("k".to_string(), "v".to_string())];
        let out = [PbOutRecord { cursor: "c".into(), next_cursor: "d".into(), sequence: 7, system_time: 9, attributes: &attrs, data: &data }];
        let got = decode_get_response(&encode_get_response("n", 7, &out, 7, 9)).unwrap();
        assert_eq!((got.next_cursor.as_str(), got.start_sequence), ("n", 7));
        assert_eq!(got.records, vec![PbGotRecord { sequence: 7, system_time: 9, attributes: attrs, fields: vec![Some(b"1".to_vec()), None] }]);

        let e = BinaryEntry { cursor: "c".into(), next_cursor: "d".into(), sequence: 3, system_time: 4, data: b"batch".to_vec() };
        let got = decode_get_binary_response(&encode_get_binary_response("n", 3, std::slice::from_ref(&e), 3, 4)).unwrap();
        assert_eq!(got.records, vec![e]);
        assert_eq!(decode_binary_records(&encode_binary_records(&[b"x".to_vec()])).unwrap()[0].data, b"x");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b"\x0a\xff\xff\xff\xff\x0f"[..], b"\x0a\x05ab", b"\xff", b"\x0b", b"\x0a\x02\x0a\x05"] {
            assert!(decode_put_records(bad).is_err(), "{bad:?}");
        }
    }
}
