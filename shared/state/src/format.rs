//! The checkpoint file format: human-readable and checksummed.
//!
//! ```text
//! CDC-CHECKPOINT v1
//! {
//!   "id": 7,
//!   ...pretty-printed JSON of the Checkpoint...
//! }
//! END crc32=1a2b3c4d len=1234
//! ```
//!
//! `len` is the byte length of the JSON body (between the newline ending
//! the magic line and the newline before the trailer) and `crc32` its
//! CRC-32 (IEEE) in lower-case hex. The file ends with a newline. A
//! truncated file lacks the trailer or fails the length check; a changed
//! byte anywhere fails the magic, the trailer syntax, the length or the CRC
//! (CRC-32 detects every error burst up to 32 bits).

use crate::checkpoint::Checkpoint;
use crate::error::{CheckpointError, FormatError};

/// First token of the magic line.
pub const MAGIC: &str = "CDC-CHECKPOINT";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: &str = "v1";

const TRAILER_TAG: &str = "END";

/// Serialises `checkpoint` into the file format.
pub fn encode_checkpoint(checkpoint: &Checkpoint) -> Result<Vec<u8>, CheckpointError> {
    let body = serde_json::to_vec_pretty(checkpoint).map_err(|source| CheckpointError::Encode {
        id: checkpoint.id,
        job: checkpoint.job.clone(),
        source,
    })?;
    let mut file = Vec::with_capacity(body.len() + 64);
    file.extend_from_slice(format!("{MAGIC} {FORMAT_VERSION}\n").as_bytes());
    file.extend_from_slice(&body);
    file.extend_from_slice(
        format!(
            "\n{TRAILER_TAG} crc32={:08x} len={}\n",
            crc32fast::hash(&body),
            body.len()
        )
        .as_bytes(),
    );
    Ok(file)
}

/// Verifies and parses a checkpoint file.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint, FormatError> {
    let header_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(FormatError::BadMagic)?;
    let header = std::str::from_utf8(&bytes[..header_end]).map_err(|_| FormatError::BadMagic)?;
    let version = header
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or(FormatError::BadMagic)?;
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            version: truncate_for_message(version),
        });
    }

    let rest = &bytes[header_end + 1..];
    let rest = rest
        .strip_suffix(b"\n")
        .ok_or(FormatError::MissingTrailer)?;
    let trailer_start = rest
        .iter()
        .rposition(|&b| b == b'\n')
        .ok_or(FormatError::MissingTrailer)?;
    let body = &rest[..trailer_start];
    let trailer = &rest[trailer_start + 1..];
    let (expected_crc, expected_len) = parse_trailer(trailer)?;

    let actual_len = body.len() as u64;
    if actual_len != expected_len {
        return Err(FormatError::LengthMismatch {
            expected: expected_len,
            actual: actual_len,
        });
    }
    let actual_crc = crc32fast::hash(body);
    if actual_crc != expected_crc {
        return Err(FormatError::ChecksumMismatch {
            expected: expected_crc,
            actual: actual_crc,
        });
    }
    serde_json::from_slice(body).map_err(FormatError::Json)
}

/// Parses `END crc32=<8 hex> len=<decimal>`, strictly (exact spacing, no
/// sign, lower-case hex) so a flipped trailer byte cannot go unnoticed.
fn parse_trailer(line: &[u8]) -> Result<(u32, u64), FormatError> {
    let bad = || FormatError::BadTrailer {
        line: truncate_for_message(&String::from_utf8_lossy(line)),
    };
    let line = std::str::from_utf8(line).map_err(|_| bad())?;
    let fields = line
        .strip_prefix(TRAILER_TAG)
        .and_then(|rest| rest.strip_prefix(" crc32="))
        .ok_or_else(bad)?;
    let (crc, len) = fields.split_once(" len=").ok_or_else(bad)?;
    let crc_ok = crc.len() == 8 && crc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let len_ok = !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    if !crc_ok || !len_ok {
        return Err(bad());
    }
    let crc = u32::from_str_radix(crc, 16).map_err(|_| bad())?;
    let len = len.parse::<u64>().map_err(|_| bad())?;
    Ok((crc, len))
}

/// Keeps error messages short when a corrupt file holds garbage.
fn truncate_for_message(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    if text.chars().count() <= MAX_CHARS {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}
