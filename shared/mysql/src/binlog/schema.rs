//! Table schemas from TABLE_MAP events.
//!
//! The table map gives each column's binlog type and type metadata (lengths, precision,
//! fractional digits, BIT width). With `binlog_row_metadata=FULL` its optional metadata adds
//! names, signedness, character sets, ENUM/SET members and the primary key; without it those
//! come from `information_schema` (which describes the table *now*, not at the event: good
//! enough when the reader is not behind a DDL, and the reason FULL is preferred).

use std::collections::HashMap;

use mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType as MyType;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use cdc_event::{ColumnDef, ColumnType, LobSize, TableId};

use super::error::BinlogError;
use super::text::TextEncoding;

/// A character set as `information_schema` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Charset {
    pub name: String,
    /// Bytes per character at most (utf8mb4: 4), to turn binlog byte lengths into CHAR(n).
    pub max_len: u32,
}

/// Collation id (what the binlog carries) to character set.
pub(crate) type Collations = HashMap<u16, Charset>;

pub(crate) async fn load_collations(conn: &mut Conn) -> Result<Collations, BinlogError> {
    let rows: Vec<(Option<u64>, String, u32)> = conn
        .query(
            "SELECT co.ID, co.CHARACTER_SET_NAME, cs.MAXLEN FROM information_schema.COLLATIONS co \
             JOIN information_schema.CHARACTER_SETS cs ON cs.CHARACTER_SET_NAME = co.CHARACTER_SET_NAME",
        )
        .await
        .map_err(|source| BinlogError::Setup { what: "information_schema.COLLATIONS", source })?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, name, max_len)| Some((u16::try_from(id?).ok()?, Charset { name, max_len })))
        .collect())
}

/// One column as `information_schema.COLUMNS` describes it (the fallback source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatalogueColumn {
    pub name: String,
    /// `COLUMN_TYPE`, e.g. `int(10) unsigned`, `enum('a','b')`.
    pub column_type: String,
    pub charset: Option<String>,
}

/// Columns and primary key of `table` from `information_schema`.
pub(crate) async fn load_catalogue_columns(
    conn: &mut Conn,
    table: &TableId,
) -> Result<(Vec<CatalogueColumn>, Vec<String>), BinlogError> {
    let err = |source| BinlogError::Catalogue { table: table.clone(), source };
    let rows: Vec<(String, String, Option<String>)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.database, &table.table),
        )
        .await
        .map_err(err)?;
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (&table.database, &table.table),
        )
        .await
        .map_err(err)?;
    let columns = rows
        .into_iter()
        .map(|(name, column_type, charset)| CatalogueColumn { name, column_type, charset })
        .collect();
    Ok((columns, key))
}

/// A table's columns as capture decodes them: the model's definitions plus, per column, how
/// its bytes become text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableLayout {
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<String>,
    pub encodings: Vec<TextEncoding>,
}

/// Types whose signedness is listed in the SIGNEDNESS field (MariaDB 10.11 includes YEAR,
/// as MySQL does; checked against a live server).
fn is_numeric(t: MyType) -> bool {
    use MyType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
            | MYSQL_TYPE_YEAR
    )
}

/// Types listed in the (DEFAULT_|COLUMN_)CHARSET fields: strings, blobs and (as blobs
/// underneath) geometries; ENUM and SET have their own list.
fn is_character(t: MyType) -> bool {
    use MyType::*;
    matches!(t, MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_BLOB | MYSQL_TYPE_GEOMETRY)
}

fn is_enum_or_set(t: MyType) -> bool {
    matches!(t, MyType::MYSQL_TYPE_ENUM | MyType::MYSQL_TYPE_SET)
}

/// The optional metadata of one table map, by column kind.
#[derive(Debug, Default)]
struct OptionalMeta {
    names: Option<Vec<String>>,
    unsigned: Option<Vec<bool>>,
    charsets: Option<Vec<u16>>,
    enum_set_charsets: Option<Vec<u16>>,
    enum_members: Option<Vec<Vec<Vec<u8>>>>,
    set_members: Option<Vec<Vec<Vec<u8>>>>,
    primary_key: Option<Vec<u64>>,
}

/// Expands DEFAULT_CHARSET (a default plus exceptions by ordinal) or COLUMN_CHARSET (one per
/// column) into one collation per column of the kind.
fn expand_charsets(default: Option<(u16, Vec<(u64, u16)>)>, per_column: Option<Vec<u16>>, count: usize) -> Option<Vec<u16>> {
    if let Some(list) = per_column {
        return Some(list);
    }
    let (default, exceptions) = default?;
    let mut list = vec![default; count];
    for (index, charset) in exceptions {
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| list.get_mut(i)) {
            *slot = charset;
        }
    }
    Some(list)
}

fn read_optional_meta(tme: &TableMapEvent<'_>, types: &[MyType]) -> Result<OptionalMeta, String> {
    let mut meta = OptionalMeta::default();
    let mut default_cs = None;
    let mut column_cs = None;
    let mut es_default_cs = None;
    let mut es_column_cs = None;
    let bad = |what: &str, e: std::io::Error| format!("optional metadata field {what}: {e}");
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| bad("header", e))? {
            OptionalMetadataField::Signedness(bits) => meta.unsigned = Some(bits.iter().by_vals().collect()),
            OptionalMetadataField::DefaultCharset(d) => {
                let exceptions = d
                    .iter_non_default()
                    .map(|x| x.map(|x| (x.column_index(), x.charset())))
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad("DEFAULT_CHARSET", e))?;
                default_cs = Some((d.default_charset(), exceptions));
            }
            OptionalMetadataField::ColumnCharset(c) => {
                column_cs = Some(c.iter_charsets().collect::<Result<Vec<_>, _>>().map_err(|e| bad("COLUMN_CHARSET", e))?)
            }
            OptionalMetadataField::EnumAndSetDefaultCharset(d) => {
                let exceptions = d
                    .iter_non_default()
                    .map(|x| x.map(|x| (x.column_index(), x.charset())))
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad("ENUM_AND_SET_DEFAULT_CHARSET", e))?;
                es_default_cs = Some((d.default_charset(), exceptions));
            }
            OptionalMetadataField::EnumAndSetColumnCharset(c) => {
                es_column_cs = Some(
                    c.iter_charsets().collect::<Result<Vec<_>, _>>().map_err(|e| bad("ENUM_AND_SET_COLUMN_CHARSET", e))?,
                )
            }
            OptionalMetadataField::ColumnName(names) => {
                let mut list = Vec::new();
                for name in names.iter_names() {
                    let name = name.map_err(|e| bad("COLUMN_NAME", e))?;
                    // Identifiers are stored in the system charset, utf8.
                    let text = String::from_utf8(name.name_raw().to_vec())
                        .map_err(|_| "optional metadata COLUMN_NAME is not UTF-8".to_string())?;
                    list.push(text);
                }
                meta.names = Some(list);
            }
            OptionalMetadataField::EnumStrValue(values) => {
                let mut list = Vec::new();
                for members in values.iter_values() {
                    let members = members.map_err(|e| bad("ENUM_STR_VALUE", e))?;
                    list.push(members.values().iter().map(|v| v.value_raw().to_vec()).collect());
                }
                meta.enum_members = Some(list);
            }
            OptionalMetadataField::SetStrValue(values) => {
                let mut list = Vec::new();
                for members in values.iter_values() {
                    let members = members.map_err(|e| bad("SET_STR_VALUE", e))?;
                    list.push(members.values().iter().map(|v| v.value_raw().to_vec()).collect());
                }
                meta.set_members = Some(list);
            }
            OptionalMetadataField::SimplePrimaryKey(pk) => {
                meta.primary_key =
                    Some(pk.iter_indexes().collect::<Result<Vec<_>, _>>().map_err(|e| bad("SIMPLE_PRIMARY_KEY", e))?)
            }
            OptionalMetadataField::PrimaryKeyWithPrefix(pk) => {
                meta.primary_key = Some(
                    pk.iter_keys()
                        .map(|k| k.map(|k| k.column_index()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| bad("PRIMARY_KEY_WITH_PREFIX", e))?,
                )
            }
            _ => {}
        }
    }
    let characters = types.iter().filter(|t| is_character(**t)).count();
    let enums_sets = types.iter().filter(|t| is_enum_or_set(**t)).count();
    meta.charsets = expand_charsets(default_cs, column_cs, characters);
    meta.enum_set_charsets = expand_charsets(es_default_cs, es_column_cs, enums_sets);
    Ok(meta)
}

/// The real type of every column and its type metadata, refusing what mysql_common could not
/// decode without panicking (it indexes the metadata bytes unchecked).
pub(crate) fn column_types<'a>(tme: &'a TableMapEvent<'a>) -> Result<Vec<(MyType, &'a [u8])>, String> {
    let count = usize::try_from(tme.columns_count()).map_err(|_| "column count overflows".to_string())?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let t = match tme.get_column_type(i) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(format!("column {i} has no type")),
            Err(e) => return Err(format!("column {i}: {e}")),
        };
        let meta = tme.get_column_metadata(i).ok_or_else(|| format!("column {i} ({t:?}) has no type metadata"))?;
        let needed = match t {
            MyType::MYSQL_TYPE_VAR_STRING | MyType::MYSQL_TYPE_TYPED_ARRAY => {
                return Err(format!("column {i} has unsupported binlog type {t:?}"))
            }
            MyType::MYSQL_TYPE_STRING
            | MyType::MYSQL_TYPE_VARCHAR
            | MyType::MYSQL_TYPE_BIT
            | MyType::MYSQL_TYPE_NEWDECIMAL
            | MyType::MYSQL_TYPE_ENUM
            | MyType::MYSQL_TYPE_SET => 2,
            MyType::MYSQL_TYPE_BLOB
            | MyType::MYSQL_TYPE_GEOMETRY
            | MyType::MYSQL_TYPE_JSON
            | MyType::MYSQL_TYPE_TIME2
            | MyType::MYSQL_TYPE_DATETIME2
            | MyType::MYSQL_TYPE_TIMESTAMP2 => 1,
            _ => 0,
        };
        if meta.len() < needed {
            return Err(format!("column {i} ({t:?}) has {} metadata bytes, needs {needed}", meta.len()));
        }
        out.push((t, meta));
    }
    Ok(out)
}

/// Whether this table map lacks what the schema needs from optional metadata, so that
/// `information_schema` must be asked.
pub(crate) fn needs_catalogue(tme: &TableMapEvent<'_>) -> bool {
    let Ok(types) = column_types(tme) else { return false };
    let types: Vec<MyType> = types.iter().map(|(t, _)| *t).collect();
    let Ok(meta) = read_optional_meta(tme, &types) else { return false };
    meta.names.is_none()
        || (types.iter().any(|t| is_numeric(*t)) && meta.unsigned.is_none())
        || (types.iter().any(|t| is_character(*t)) && meta.charsets.is_none())
        || (types.contains(&MyType::MYSQL_TYPE_ENUM) && meta.enum_members.is_none())
        || (types.contains(&MyType::MYSQL_TYPE_SET) && meta.set_members.is_none())
}

/// What the type mapping needs besides the table map, from either metadata source.
pub(crate) struct ColumnFacts {
    name: String,
    unsigned: bool,
    charset: Option<Charset>,
    members: Option<Vec<String>>,
}

/// Builds the layout of `table` from its table map, with `catalogue` (information_schema
/// columns and key) when the optional metadata is incomplete.
pub(crate) fn build_layout(
    table: &TableId,
    tme: &TableMapEvent<'_>,
    collations: &Collations,
    catalogue: Option<&(Vec<CatalogueColumn>, Vec<String>)>,
) -> Result<TableLayout, BinlogError> {
    let table_err = |reason: String| BinlogError::Table { table: table.clone(), reason };
    let types = column_types(tme).map_err(|r| table_err(format!("table map: {r}")))?;
    let kinds: Vec<MyType> = types.iter().map(|(t, _)| *t).collect();
    let (facts, key) = match catalogue {
        None => facts_from_metadata(tme, &kinds, collations).map_err(table_err)?,
        Some((columns, key)) => {
            if columns.len() != types.len() {
                return Err(table_err(format!(
                    "the binlog row has {} columns but information_schema lists {} (the table changed \
                     since this event; use binlog_row_metadata=FULL)",
                    types.len(),
                    columns.len()
                )));
            }
            (facts_from_catalogue(columns, collations), key.clone())
        }
    };
    finish(table, &types, tme, facts, key)
}

fn finish(
    table: &TableId,
    types: &[(MyType, &[u8])],
    tme: &TableMapEvent<'_>,
    facts: Vec<ColumnFacts>,
    primary_key: Vec<String>,
) -> Result<TableLayout, BinlogError> {
    let nulls = tme.null_bitmask();
    let mut columns = Vec::with_capacity(types.len());
    let mut encodings = Vec::with_capacity(types.len());
    for (i, ((t, meta), fact)) in types.iter().zip(facts).enumerate() {
        let (column_type, encoding) = map_type(*t, meta, &fact).map_err(|reason| BinlogError::Column {
            table: table.clone(),
            column: fact.name.clone(),
            column_type: format!("{t:?}"),
            reason,
        })?;
        let nullable = nulls.get(i).map(|b| *b).unwrap_or(true);
        columns.push(ColumnDef::new(fact.name, column_type, nullable));
        encodings.push(encoding);
    }
    Ok(TableLayout { columns, primary_key, encodings })
}

fn facts_from_metadata(
    tme: &TableMapEvent<'_>,
    types: &[MyType],
    collations: &Collations,
) -> Result<(Vec<ColumnFacts>, Vec<String>), String> {
    let meta = read_optional_meta(tme, types)?;
    let names = meta.names.ok_or("no COLUMN_NAME in the optional metadata")?;
    if names.len() != types.len() {
        return Err(format!("{} column names for {} columns", names.len(), types.len()));
    }
    let mut unsigned = meta.unsigned.unwrap_or_default().into_iter();
    let mut charsets = meta.charsets.unwrap_or_default().into_iter();
    let mut es_charsets = meta.enum_set_charsets.unwrap_or_default().into_iter();
    let mut enums = meta.enum_members.unwrap_or_default().into_iter();
    let mut sets = meta.set_members.unwrap_or_default().into_iter();
    let mut facts = Vec::with_capacity(types.len());
    for (t, name) in types.iter().zip(names.iter()) {
        let lookup = |id: Option<u16>| -> Result<Option<Charset>, String> {
            match id {
                None => Ok(None),
                Some(id) => collations.get(&id).cloned().map(Some).ok_or(format!("column {name}: unknown collation id {id}")),
            }
        };
        let mut fact = ColumnFacts { name: name.clone(), unsigned: false, charset: None, members: None };
        if is_numeric(*t) {
            fact.unsigned = unsigned.next().unwrap_or(false);
        }
        if is_character(*t) {
            fact.charset = lookup(charsets.next())?;
        }
        if is_enum_or_set(*t) {
            fact.charset = lookup(es_charsets.next())?;
            let raw = if *t == MyType::MYSQL_TYPE_ENUM { enums.next() } else { sets.next() };
            let encoding = fact
                .charset
                .as_ref()
                .and_then(|c| TextEncoding::for_charset(&c.name))
                .unwrap_or(TextEncoding::Utf8);
            let members = raw
                .ok_or(format!("column {name}: no ENUM/SET members in the optional metadata"))?
                .into_iter()
                .map(|m| match encoding {
                    TextEncoding::Binary => Some(String::from_utf8_lossy(&m).into_owned()),
                    other => other.decode(m),
                })
                .collect::<Option<Vec<_>>>()
                .ok_or(format!("column {name}: ENUM/SET member names are not valid in their charset"))?;
            fact.members = Some(members);
        }
        facts.push(fact);
    }
    let key = meta
        .primary_key
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| names.get(usize::try_from(i).ok()?).cloned())
        .collect();
    Ok((facts, key))
}

pub(crate) fn facts_from_catalogue(columns: &[CatalogueColumn], collations: &Collations) -> Vec<ColumnFacts> {
    columns
        .iter()
        .map(|c| {
            let lower = c.column_type.to_ascii_lowercase();
            let members = if lower.starts_with("enum(") || lower.starts_with("set(") {
                Some(parse_member_list(&c.column_type))
            } else {
                None
            };
            let charset = c.charset.as_ref().map(|name| Charset {
                name: name.clone(),
                max_len: collations.values().find(|cs| &cs.name == name).map(|cs| cs.max_len).unwrap_or(1),
            });
            // Binary strings and blobs have no CHARACTER_SET_NAME in information_schema.
            let charset = charset.or_else(|| {
                (lower.contains("binary") || lower.contains("blob") || is_spatial_name(&lower))
                    .then(|| Charset { name: "binary".into(), max_len: 1 })
            });
            ColumnFacts {
                name: c.name.clone(),
                unsigned: lower.contains("unsigned"),
                charset,
                members,
            }
        })
        .collect()
}

fn is_spatial_name(lower: &str) -> bool {
    ["geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"]
        .iter()
        .any(|n| lower.starts_with(n))
}

/// `enum('a','b''c')` -> `["a", "b'c"]`.
fn parse_member_list(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else { return Vec::new() };
    let body: Vec<char> = column_type[open + 1..].chars().collect();
    let mut members = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] == '\'' {
            let mut member = String::new();
            i += 1;
            while i < body.len() {
                if body[i] == '\'' {
                    if body.get(i + 1) == Some(&'\'') {
                        member.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                member.push(body[i]);
                i += 1;
            }
            members.push(member);
        }
        i += 1;
    }
    members
}

fn lob_size(pack_length: u8) -> Result<LobSize, String> {
    Ok(match pack_length {
        1 => LobSize::Tiny,
        2 => LobSize::Regular,
        3 => LobSize::Medium,
        4 => LobSize::Long,
        n => return Err(format!("BLOB length prefix of {n} bytes")),
    })
}

fn text_encoding(fact: &ColumnFacts) -> Result<(TextEncoding, String, u32), String> {
    let charset = fact.charset.as_ref().ok_or("no character set known")?;
    let encoding = TextEncoding::for_charset(&charset.name)
        .ok_or_else(|| format!("character set {} is not supported (utf8mb4, utf8mb3, ascii, latin1, binary are)", charset.name))?;
    Ok((encoding, charset.name.clone(), charset.max_len.max(1)))
}

pub(crate) fn map_type(t: MyType, meta: &[u8], fact: &ColumnFacts) -> Result<(ColumnType, TextEncoding), String> {
    use MyType::*;
    let byte = |i: usize| meta.get(i).copied().ok_or_else(|| format!("type metadata byte {i} missing"));
    let unsigned = fact.unsigned;
    let ty = match t {
        MYSQL_TYPE_TINY => ColumnType::TinyInt { unsigned },
        MYSQL_TYPE_SHORT => ColumnType::SmallInt { unsigned },
        MYSQL_TYPE_INT24 => ColumnType::MediumInt { unsigned },
        MYSQL_TYPE_LONG => ColumnType::Int { unsigned },
        MYSQL_TYPE_LONGLONG => ColumnType::BigInt { unsigned },
        MYSQL_TYPE_NEWDECIMAL => ColumnType::Decimal { precision: byte(0)?, scale: byte(1)? },
        MYSQL_TYPE_FLOAT => ColumnType::Float,
        MYSQL_TYPE_DOUBLE => ColumnType::Double,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => ColumnType::Date,
        MYSQL_TYPE_TIME => ColumnType::Time { fsp: 0 },
        MYSQL_TYPE_TIME2 => ColumnType::Time { fsp: byte(0)? },
        MYSQL_TYPE_DATETIME => ColumnType::DateTime { fsp: 0 },
        MYSQL_TYPE_DATETIME2 => ColumnType::DateTime { fsp: byte(0)? },
        MYSQL_TYPE_TIMESTAMP => ColumnType::Timestamp { fsp: 0 },
        MYSQL_TYPE_TIMESTAMP2 => ColumnType::Timestamp { fsp: byte(0)? },
        MYSQL_TYPE_YEAR => ColumnType::Year,
        MYSQL_TYPE_JSON => ColumnType::Json,
        MYSQL_TYPE_GEOMETRY => ColumnType::Geometry,
        MYSQL_TYPE_BIT => ColumnType::Bit { width: byte(1)?.saturating_mul(8).saturating_add(byte(0)?) },
        MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => {
            let values = fact.members.clone().ok_or("ENUM/SET member names unknown")?;
            if t == MYSQL_TYPE_ENUM {
                ColumnType::Enum { values }
            } else {
                ColumnType::Set { values }
            }
        }
        MYSQL_TYPE_VARCHAR => {
            let bytes = u32::from(u16::from_le_bytes([byte(0)?, byte(1)?]));
            let (encoding, charset, max_len) = text_encoding(fact)?;
            return Ok(match encoding {
                TextEncoding::Binary => (ColumnType::VarBinary { length: bytes }, encoding),
                _ => (ColumnType::VarChar { length: bytes / max_len, charset }, encoding),
            });
        }
        MYSQL_TYPE_STRING => {
            // The length's two high bits live in the real-type byte (MySQL bug #37426).
            let (b0, b1) = (u32::from(byte(0)?), u32::from(byte(1)?));
            let bytes = if b0 & 0x30 != 0x30 { b1 | (((b0 & 0x30) ^ 0x30) << 4) } else { b1 };
            let (encoding, charset, max_len) = text_encoding(fact)?;
            return Ok(match encoding {
                TextEncoding::Binary => (ColumnType::Binary { length: bytes }, encoding),
                _ => (ColumnType::Char { length: bytes / max_len, charset }, encoding),
            });
        }
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            let size = lob_size(byte(0)?)?;
            let (encoding, charset, _) = text_encoding(fact)?;
            return Ok(match encoding {
                TextEncoding::Binary => (ColumnType::Blob { size }, encoding),
                _ => (ColumnType::Text { size, charset }, encoding),
            });
        }
        other => return Err(format!("binlog type {other:?} is not supported")),
    };
    Ok((ty, TextEncoding::Binary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists_unquote() {
        assert_eq!(parse_member_list("enum('a','b''c','')"), vec!["a", "b'c", ""]);
        assert_eq!(parse_member_list("set('x,y')"), vec!["x,y"]);
    }

    #[test]
    fn charset_lists_expand_defaults() {
        assert_eq!(expand_charsets(Some((45, vec![(1, 8)])), None, 3), Some(vec![45, 8, 45]));
        assert_eq!(expand_charsets(None, Some(vec![8, 63]), 2), Some(vec![8, 63]));
        assert_eq!(expand_charsets(None, None, 2), None);
    }
}
