//! Column masks: keyed hash, redaction and truncation.

use std::fmt;

use cdc_event::{ColumnDef, ColumnType, Value};
use sha2::{Digest, Sha256};

/// The marker `redact` writes when no other is given.
pub const DEFAULT_REDACT_MARKER: &str = "***";
/// Length of a `hash` output: 32 bytes as lower-case hex.
pub const HASH_HEX_LEN: u32 = 64;

/// What a mask does to a column's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mask {
    /// HMAC-SHA256 of the value's canonical bytes with `transform.hashSalt`, as 64 lower-case
    /// hex characters (`CHAR(64)`). Equal values give equal hashes, so joins and counts of
    /// distinct values still work, and without the key nobody can test guesses.
    Hash,
    /// Every non-NULL value becomes `marker` (a `VARCHAR` of its length); `None` makes every
    /// value NULL (the column becomes nullable, its type unchanged). NULL stays NULL.
    Redact { marker: Option<String> },
    /// Strings longer than `chars` characters (Unicode scalar values, as MySQL counts them)
    /// are cut to `chars`.
    Truncate { chars: u32 },
}

impl Mask {
    pub fn name(&self) -> &'static str {
        match self {
            Mask::Hash => "hash",
            Mask::Redact { .. } => "redact",
            Mask::Truncate { .. } => "truncate",
        }
    }

    /// The output column for `column`, or why the mask cannot apply to its type.
    pub(crate) fn output_column(&self, column: &ColumnDef, new_name: &str) -> Result<ColumnDef, &'static str> {
        use ColumnType as T;
        let column_type = match self {
            Mask::Hash => match &column.column_type {
                T::Float | T::Double => return Err("floating-point values have no canonical text to hash"),
                T::Set { .. } => return Err("SET values have no single canonical text to hash"),
                T::Bit { .. } => return Err("BIT values have no canonical text to hash"),
                T::Geometry => return Err("spatial values cannot be hashed"),
                T::Timestamp { .. } => return Err("TIMESTAMP values have no zone-free text to hash"),
                _ => T::Char { length: HASH_HEX_LEN, charset: "ascii".into() },
            },
            Mask::Redact { marker: Some(marker) } => {
                T::VarChar { length: u32::try_from(marker.chars().count()).unwrap_or(u32::MAX), charset: "utf8mb4".into() }
            }
            Mask::Redact { marker: None } => column.column_type.clone(),
            Mask::Truncate { chars } => match &column.column_type {
                T::Char { length, charset } => T::Char { length: (*length).min(*chars), charset: charset.clone() },
                T::VarChar { length, charset } => T::VarChar { length: (*length).min(*chars), charset: charset.clone() },
                T::Text { charset, .. } => T::VarChar { length: *chars, charset: charset.clone() },
                T::Json => return Err("cutting JSON text would leave an invalid document"),
                _ => return Err("truncate applies to CHAR, VARCHAR and TEXT columns"),
            },
        };
        let nullable = column.nullable || matches!(self, Mask::Redact { marker: None });
        Ok(ColumnDef::new(new_name, column_type, nullable))
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mask::Hash => f.write_str("hash"),
            Mask::Redact { marker: Some(m) } => write!(f, "redact {m:?}"),
            Mask::Redact { marker: None } => f.write_str("redact null"),
            Mask::Truncate { chars } => write!(f, "truncate {chars}"),
        }
    }
}

/// HMAC-SHA256 with a fixed key, its pads absorbed once (RFC 2104).
#[derive(Clone)]
pub(crate) struct Hasher {
    inner: Sha256,
    outer: Sha256,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, not even its absorbed state.
        f.write_str("Hasher(***)")
    }
}

impl Hasher {
    pub(crate) fn new(key: &[u8]) -> Self {
        const BLOCK: usize = 64;
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for i in 0..BLOCK {
            ipad[i] ^= block[i];
            opad[i] ^= block[i];
        }
        Hasher { inner: Sha256::new().chain_update(ipad), outer: Sha256::new().chain_update(opad) }
    }

    pub(crate) fn mac(&self, message: &[u8]) -> [u8; 32] {
        let inner = self.inner.clone().chain_update(message).finalize();
        self.outer.clone().chain_update(inner).finalize().into()
    }

    pub(crate) fn hex(&self, message: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mac = self.mac(message);
        let mut out = String::with_capacity(64);
        for byte in mac {
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0x0f)] as char);
        }
        out
    }
}

/// The bytes a value is hashed from: its MySQL text (UTF-8), or the raw bytes of binary
/// columns. `None` for kinds `output_column` refuses (a corrupt event).
fn canonical_bytes(value: &Value) -> Option<std::borrow::Cow<'_, [u8]>> {
    use std::borrow::Cow;
    Some(match value {
        Value::Text(s) | Value::Enum(s) | Value::Json(s) | Value::Decimal(s) => Cow::Borrowed(s.as_bytes()),
        Value::Bytes(b) => Cow::Borrowed(b.as_slice()),
        Value::Int(v) => Cow::Owned(v.to_string().into_bytes()),
        Value::UInt(v) => Cow::Owned(v.to_string().into_bytes()),
        Value::Year(v) => Cow::Owned(v.to_string().into_bytes()),
        Value::Date(d) => Cow::Owned(d.to_string().into_bytes()),
        Value::DateTime(d) => Cow::Owned(d.to_string().into_bytes()),
        Value::Time(t) => Cow::Owned(t.to_string().into_bytes()),
        _ => return None,
    })
}

/// Applies `mask` to one value; `Err` carries the value kind the mask cannot take.
pub(crate) fn apply(mask: &Mask, hasher: Option<&Hasher>, value: &Value) -> Result<Value, &'static str> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    Ok(match mask {
        Mask::Hash => {
            let bytes = canonical_bytes(value).ok_or(value.kind())?;
            // The transformer refuses hash rules without a key, so `None` cannot happen here;
            // refusing the value keeps it from ever leaving unmasked.
            let hasher = hasher.ok_or(value.kind())?;
            Value::Text(hasher.hex(&bytes))
        }
        Mask::Redact { marker: Some(marker) } => Value::Text(marker.clone()),
        Mask::Redact { marker: None } => Value::Null,
        Mask::Truncate { chars } => match value {
            Value::Text(s) => {
                let limit = usize::try_from(*chars).unwrap_or(usize::MAX);
                match s.char_indices().nth(limit) {
                    Some((cut, _)) => Value::Text(s[..cut].to_owned()),
                    None => Value::Text(s.clone()),
                }
            }
            other => return Err(other.kind()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let h = Hasher::new(b"Jefe");
        assert_eq!(h.hex(b"what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: a key longer than the block is hashed first.
        let h = Hasher::new(&[0xaa; 131]);
        assert_eq!(
            h.hex(b"Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        let m = Mask::Truncate { chars: 3 };
        assert_eq!(apply(&m, None, &Value::Text("héllo".into())), Ok(Value::Text("hél".into())));
        assert_eq!(apply(&m, None, &Value::Text("ab".into())), Ok(Value::Text("ab".into())));
        assert_eq!(apply(&m, None, &Value::Null), Ok(Value::Null));
        assert_eq!(apply(&m, None, &Value::Int(5)), Err("Int"));
    }

    #[test]
    fn output_types_follow_the_mask() {
        let varchar = ColumnDef::new("c", ColumnType::VarChar { length: 255, charset: "utf8mb4".into() }, false);
        let int = ColumnDef::new("n", ColumnType::Int { unsigned: false }, false);
        assert_eq!(
            Mask::Truncate { chars: 10 }.output_column(&varchar, "c").unwrap().column_type,
            ColumnType::VarChar { length: 10, charset: "utf8mb4".into() }
        );
        assert!(Mask::Truncate { chars: 10 }.output_column(&int, "n").is_err());
        let hashed = Mask::Hash.output_column(&int, "n_hash").unwrap();
        assert_eq!((hashed.name.as_str(), hashed.column_type.clone(), hashed.nullable), ("n_hash", ColumnType::Char { length: 64, charset: "ascii".into() }, false));
        let nulled = Mask::Redact { marker: None }.output_column(&int, "n").unwrap();
        assert!(nulled.nullable);
        assert_eq!(nulled.column_type, int.column_type);
        assert!(Mask::Hash.output_column(&ColumnDef::new("f", ColumnType::Double, true), "f").is_err());
    }
}
