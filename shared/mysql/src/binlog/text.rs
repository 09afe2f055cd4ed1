//! Character-set decoding of CHAR/VARCHAR/TEXT bytes (and ENUM/SET member names) to UTF-8.
//!
//! Only the character sets a capture meets in practice are supported; a column in any other
//! one is refused when its table is first seen (naming table, column and charset) rather than
//! emitting text that differs from what SELECT returns.

/// How the bytes of one column become a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextEncoding {
    /// utf8mb4, utf8mb3 (`utf8`) and ascii: the bytes are UTF-8 already.
    Utf8,
    /// MySQL's `latin1` is Windows-1252, with 0x81, 0x8D, 0x8F, 0x90 and 0x9D passed through
    /// as U+0081.. (that is what the server itself converts them to for a utf8mb4 client).
    Latin1,
    /// `binary` (collation 63): not text at all.
    Binary,
}

impl TextEncoding {
    /// The encoding of a character set named as in `information_schema.CHARACTER_SETS`.
    pub(crate) fn for_charset(name: &str) -> Option<Self> {
        match name {
            "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => Some(Self::Utf8),
            "latin1" => Some(Self::Latin1),
            "binary" => Some(Self::Binary),
            _ => None,
        }
    }

    /// Decodes `bytes`; `None` when they are not valid in the encoding (or it is binary).
    pub(crate) fn decode(self, bytes: Vec<u8>) -> Option<String> {
        match self {
            Self::Utf8 => String::from_utf8(bytes).ok(),
            // ASCII is the same in latin1 and UTF-8: reuse the buffer instead of building the
            // string a character at a time (the common case, and most of the decode cost).
            Self::Latin1 if bytes.is_ascii() => String::from_utf8(bytes).ok(),
            Self::Latin1 => Some(bytes.iter().map(|&b| cp1252(b)).collect()),
            Self::Binary => None,
        }
    }
}

/// Windows-1252 as MySQL's latin1 defines it (undefined positions map to the C1 controls).
fn cp1252(byte: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match byte {
        0x80..=0x9F => HIGH
            .get(usize::from(byte - 0x80))
            .and_then(|&c| char::from_u32(u32::from(c)))
            .unwrap_or(char::REPLACEMENT_CHARACTER),
        _ => char::from(byte),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_windows_1252() {
        let text = TextEncoding::Latin1.decode(vec![b'a', 0xE9, 0x80, 0x81, 0xFF]).unwrap();
        assert_eq!(text, "a\u{e9}\u{20ac}\u{81}\u{ff}");
    }

    #[test]
    fn ascii_latin1_takes_the_fast_path_with_the_same_result() {
        let ascii = b"plain ascii 123 ~".to_vec();
        let expected: String = ascii.iter().map(|&b| cp1252(b)).collect();
        assert_eq!(TextEncoding::Latin1.decode(ascii).as_deref(), Some(expected.as_str()));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert_eq!(TextEncoding::Utf8.decode(vec![0xff]), None);
        assert_eq!(TextEncoding::Utf8.decode("😀".as_bytes().to_vec()).as_deref(), Some("😀"));
    }
}
