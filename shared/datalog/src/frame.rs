//! The on-disk record frame.
//!
//! ```text
//! u32 LE  body length (bytes after this 8-byte header)
//! u32 LE  CRC32 (IEEE) of the body
//! body:   u64 LE sequence | i64 LE system time (ms) | u32 LE attributes length |
//!         attributes (u32 count, then u32 len + key, u32 len + value each) | payload
//! ```
//!
//! The CRC covers sequence and time too, so a frame whose header survived but whose body was
//! torn (or whose length field is garbage) is always detected.

pub const HEADER_LEN: usize = 8;
const FIXED_BODY: usize = 8 + 8 + 4;
/// A frame longer than this is garbage (a torn length field), not a record.
pub const MAX_FRAME_BODY: usize = 64 * 1024 * 1024;

/// One record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub sequence: u64,
    /// Server receive time, epoch milliseconds.
    pub system_time: i64,
    pub attributes: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// What a writer hands to [`crate::ShardLog::append`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendRecord {
    pub attributes: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl AppendRecord {
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        AppendRecord { attributes: Vec::new(), payload: payload.into() }
    }
}

pub(crate) fn encode(out: &mut Vec<u8>, sequence: u64, system_time: i64, record: &AppendRecord) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&system_time.to_le_bytes());
    let attr_len_at = out.len();
    out.extend_from_slice(&[0u8; 4]);
    if !record.attributes.is_empty() {
        out.extend_from_slice(&(record.attributes.len() as u32).to_le_bytes());
        for (k, v) in &record.attributes {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }
    let attr_len = (out.len() - attr_len_at - 4) as u32;
    out[attr_len_at..attr_len_at + 4].copy_from_slice(&attr_len.to_le_bytes());
    out.extend_from_slice(&record.payload);
    let body_len = (out.len() - start - HEADER_LEN) as u32;
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Outcome of decoding at one position.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A whole, valid frame of `len` bytes.
    Record { record: StoredRecord, len: usize },
    /// The buffer ends inside the frame (more bytes may follow in the file).
    Incomplete { need: usize },
    /// Not a valid frame: a torn write or corruption.
    Invalid(String),
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
}

pub(crate) fn decode(buf: &[u8]) -> Decoded {
    let (Some(body_len), Some(crc)) = (u32_at(buf, 0), u32_at(buf, 4)) else {
        return Decoded::Incomplete { need: HEADER_LEN };
    };
    let body_len = body_len as usize;
    if !(FIXED_BODY..=MAX_FRAME_BODY).contains(&body_len) {
        return Decoded::Invalid(format!("frame length {body_len} out of range"));
    }
    let total = HEADER_LEN + body_len;
    let Some(body) = buf.get(HEADER_LEN..total) else {
        return Decoded::Incomplete { need: total };
    };
    if crc32fast::hash(body) != crc {
        return Decoded::Invalid("CRC mismatch".into());
    }
    match decode_body(body) {
        Ok(record) => Decoded::Record { record, len: total },
        Err(reason) => Decoded::Invalid(reason),
    }
}

fn decode_body(body: &[u8]) -> Result<StoredRecord, String> {
    let mut r = Reader { buf: body, at: 0 };
    let sequence = r.u64()?;
    let system_time = r.u64()? as i64;
    let attr_len = r.u32()? as usize;
    let attr_end = r.at.checked_add(attr_len).filter(|e| *e <= body.len()).ok_or("attributes overrun the frame")?;
    let mut attributes = Vec::new();
    if attr_len > 0 {
        let count = r.u32()?;
        for _ in 0..count {
            let k = r.string()?;
            let v = r.string()?;
            attributes.push((k, v));
        }
        if r.at != attr_end {
            return Err("attribute section length mismatch".into());
        }
    }
    Ok(StoredRecord { sequence, system_time, attributes, payload: body[attr_end..].to_vec() })
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or("field overruns the frame")?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short u32")?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "short u64")?))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "attribute is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_truncation_is_detected() {
        let rec = AppendRecord { attributes: vec![("k".into(), "v".into())], payload: b"hello".to_vec() };
        let mut buf = Vec::new();
        encode(&mut buf, 42, 1_700_000_000_000, &rec);
        match decode(&buf) {
            Decoded::Record { record, len } => {
                assert_eq!(len, buf.len());
                assert_eq!(record.sequence, 42);
                assert_eq!(record.system_time, 1_700_000_000_000);
                assert_eq!(record.attributes, rec.attributes);
                assert_eq!(record.payload, rec.payload);
            }
            other => panic!("expected a record, got {other:?}"),
        }
        for cut in 0..buf.len() {
            assert!(matches!(decode(&buf[..cut]), Decoded::Incomplete { .. }), "cut at {cut}");
        }
        for flip in 4..buf.len() {
            let mut bad = buf.clone();
            bad[flip] ^= 0x40;
            assert!(!matches!(decode(&bad), Decoded::Record { .. }), "flip at {flip} not detected");
        }
    }
}
