//! Body compression (§2.2), CRC32C and the `DHUB` protobuf frame (§4.2).

use std::io::Read;

/// HTTP body compression as DataHub names it in `Content-Encoding` / `Accept-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    /// Raw LZ4 block without a size prefix; the receiver needs `x-datahub-content-raw-size`.
    #[default]
    Lz4,
    /// zlib stream (RFC 1950).
    Zlib,
    /// What the Go SDK calls deflate is zlib-wrapped; pydatahub's is a no-op. We send zlib
    /// data under this name, as Go does, and accept zlib or raw deflate.
    Deflate,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Lz4 => "lz4",
            Compression::Zlib => "zlib",
            Compression::Deflate => "deflate",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "none" | "identity" => Some(Compression::None),
            "lz4" => Some(Compression::Lz4),
            "zlib" => Some(Compression::Zlib),
            "deflate" => Some(Compression::Deflate),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("unsupported Content-Encoding {0:?}")]
    UnsupportedEncoding(String),
    #[error("{encoding} body needs x-datahub-content-raw-size")]
    MissingRawSize { encoding: &'static str },
    #[error("x-datahub-content-raw-size {size} exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{encoding} body does not decompress: {reason}")]
    Corrupt { encoding: &'static str, reason: String },
    #[error("DHUB frame: {0}")]
    Frame(String),
}

pub fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
    match c {
        Compression::None => data.to_vec(),
        Compression::Lz4 => lz4_flex::block::compress(data),
        Compression::Zlib | Compression::Deflate => {
            use std::io::Write;
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(data);
            enc.finish().unwrap_or_default()
        }
    }
}

/// Decompresses a body given its `Content-Encoding` and `x-datahub-content-raw-size`.
/// `limit` bounds the output so a small body cannot claim gigabytes.
pub fn decompress(encoding: &str, raw_size: Option<usize>, body: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let c = Compression::from_name(encoding).ok_or_else(|| CodecError::UnsupportedEncoding(encoding.to_string()))?;
    if let Some(size) = raw_size {
        if size > limit {
            return Err(CodecError::TooLarge { size, limit });
        }
    }
    match c {
        Compression::None => Ok(body.to_vec()),
        Compression::Lz4 => {
            let size = raw_size.ok_or(CodecError::MissingRawSize { encoding: "lz4" })?;
            lz4_flex::block::decompress(body, size).map_err(|e| CodecError::Corrupt { encoding: "lz4", reason: e.to_string() })
        }
        Compression::Zlib => read_limited(flate2::read::ZlibDecoder::new(body), limit, "zlib"),
        Compression::Deflate => read_limited(flate2::read::ZlibDecoder::new(body), limit, "deflate")
            .or_else(|_| read_limited(flate2::read::DeflateDecoder::new(body), limit, "deflate")),
    }
}

fn read_limited(r: impl Read, limit: usize, encoding: &'static str) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| CodecError::Corrupt { encoding, reason: e.to_string() })?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { size: out.len(), limit });
    }
    Ok(out)
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C (Castagnoli), as the DHUB frame and batch headers use.
pub fn crc32c(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, b| CRC32C_TABLE[((c ^ *b as u32) & 0xff) as usize] ^ (c >> 8))
}

/// Wraps a protobuf message: `DHUB`, CRC32C (BE), length (BE), message.
pub fn wrap_frame(pb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + pb.len());
    out.extend_from_slice(b"DHUB");
    out.extend_from_slice(&crc32c(pb).to_be_bytes());
    out.extend_from_slice(&(pb.len() as u32).to_be_bytes());
    out.extend_from_slice(pb);
    out
}

/// Checks and strips the DHUB frame.
pub fn unwrap_frame(body: &[u8]) -> Result<&[u8], CodecError> {
    if body.len() < 12 || &body[..4] != b"DHUB" {
        return Err(CodecError::Frame("body does not start with a DHUB header".into()));
    }
    let crc = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
    let len = u32::from_be_bytes([body[8], body[9], body[10], body[11]]) as usize;
    let pb = &body[12..];
    if pb.len() != len {
        return Err(CodecError::Frame(format!("length field says {len} bytes, body has {}", pb.len())));
    }
    if crc32c(pb) != crc {
        return Err(CodecError::Frame("CRC32C mismatch".into()));
    }
    Ok(pb)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_captured_frames() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // §8.5: PB GetRecords body for cursor "c0", limit 10.
        let body = hex("4448554247e2867c000000060a026330100a");
        assert_eq!(unwrap_frame(&body).unwrap(), &hex("0a026330100a")[..]);
        assert_eq!(wrap_frame(&hex("0a026330100a")), body);
        assert_eq!(wrap_frame(b""), hex("444855420000000000000000"));
    }

    #[test]
    fn codecs_round_trip_and_reject_bombs() {
        let data = b"{\"Action\": \"pub\", \"Records\": []}".repeat(50);
        for c in [Compression::None, Compression::Lz4, Compression::Zlib, Compression::Deflate] {
            let z = compress(c, &data);
            assert_eq!(decompress(c.name(), Some(data.len()), &z, 1 << 20).unwrap(), data, "{c:?}");
        }
        assert!(matches!(decompress("lz4", Some(1 << 30), b"x", 1 << 20), Err(CodecError::TooLarge { .. })));
        assert!(matches!(decompress("zlib", None, &compress(Compression::Zlib, &data), 10), Err(CodecError::TooLarge { .. })));
        assert!(matches!(decompress("lz4", None, b"x", 10), Err(CodecError::MissingRawSize { .. })));
        assert!(matches!(decompress("gzip", None, b"x", 10), Err(CodecError::UnsupportedEncoding(_))));
        assert!(decompress("lz4", Some(100), b"\xff\xff\xff", 1000).is_err());
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
