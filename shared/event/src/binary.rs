//! Compact binary batch encoding: many events in one buffer, for the relay (DataHub records)
//! and for spooling.
//!
//! Layout (format version 1):
//!
//! ```text
//! header   "CDCB"  version:u8 = 1  flags:u8 = 0
//! records  one after another, each starting with a record tag:
//!   1 schema definition  (table, version, columns, primary key) -> next schema id (0, 1, ...)
//!   2 source definition  (source name)                          -> next source id
//!   3 change event       (op, schema id, source id, server id, position, commit ts, tx id,
//!                         before row?, after row?)
//!   4 schema change      (source id, server id, position, commit ts, database, ddl, table?,
//!                         schema id?)
//!   5 heartbeat          (source id, position, ts)
//! trailer  event count:u64 LE   crc32:u32 LE (over every byte before it)
//! ```
//!
//! Each distinct schema and source name is defined once per batch, just before its first use,
//! so the encoder streams into one buffer. Integers are LEB128 varints (signed ones zigzag);
//! strings and byte strings are varint length + bytes; values are one tag byte + payload. A
//! position's file name and a change's transaction id may be written as "same as the previous
//! record's", which is the common case inside a batch.
//!
//! The encoding carries any [`Value`] exactly without checking it against its column (use
//! [`ChangeEvent::validate`](crate::ChangeEvent::validate) for that). Decoding never panics:
//! every read is bounds-checked, lengths and counts are capped by the bytes that remain, and
//! the CRC is verified before any record is parsed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{
    ChangeEvent, ColumnDef, ColumnType, Event, Gtid, HeartbeatEvent, LobSize, Op, Phase, Position,
    Row, SchemaChangeEvent, ServerFlavor, ServerUuid, SqlDate, SqlDateTime, SqlTime, TableId,
    TableSchema, Value,
};

/// First bytes of every batch.
pub const MAGIC: [u8; 4] = *b"CDCB";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 6;
const TRAILER_LEN: usize = 12;

const RECORD_SCHEMA: u8 = 1;
const RECORD_SOURCE: u8 = 2;
const RECORD_CHANGE: u8 = 3;
const RECORD_SCHEMA_CHANGE: u8 = 4;
const RECORD_HEARTBEAT: u8 = 5;

/// Error decoding a binary batch; `offset` is the byte offset in the batch where the failing
/// element starts, `what` names the element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("batch is {len} bytes, shorter than the {min}-byte header and trailer")]
    TooShort { len: usize, min: usize },
    #[error("batch does not start with the magic \"CDCB\" (found {found:02x?})")]
    BadMagic { found: [u8; 4] },
    #[error("batch format version {version} is not supported (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion { version: u8 },
    #[error("batch header flags {flags:#04x} are not supported")]
    UnsupportedFlags { flags: u8 },
    #[error("batch checksum mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupted or truncated)")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("offset {offset}: {what} runs past the end of the records")]
    Truncated { offset: usize, what: &'static str },
    #[error("offset {offset}: {what} varint is longer than 64 bits")]
    VarintOverflow { offset: usize, what: &'static str },
    #[error("offset {offset}: {what} is not valid UTF-8")]
    InvalidUtf8 { offset: usize, what: &'static str },
    #[error("offset {offset}: unknown {what} tag {tag}")]
    UnknownTag {
        offset: usize,
        what: &'static str,
        tag: u8,
    },
    #[error("offset {offset}: {what} {value} is out of range")]
    OutOfRange {
        offset: usize,
        what: &'static str,
        value: u64,
    },
    #[error("offset {offset}: {what} length {length} exceeds the {remaining} bytes left")]
    LengthTooLarge {
        offset: usize,
        what: &'static str,
        length: u64,
        remaining: usize,
    },
    #[error("offset {offset}: {what} id {id} is not defined (only {defined} so far)")]
    UndefinedReference {
        offset: usize,
        what: &'static str,
        id: u64,
        defined: usize,
    },
    #[error("offset {offset}: {what} refers to the previous record's, but there is none")]
    NoPrevious { offset: usize, what: &'static str },
    #[error("trailer declares {declared} events but the records hold {decoded}")]
    EventCountMismatch { declared: u64, decoded: u64 },
    #[error("offset {offset}: a {kind} record where only change events are expected (use decode_events)")]
    NotAChangeEvent { offset: usize, kind: &'static str },
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn put_zigzag(buf: &mut Vec<u8>, value: i64) {
    put_varint(buf, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_len(buf: &mut Vec<u8>, len: usize) {
    put_varint(buf, len as u64);
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_len(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

fn put_str(buf: &mut Vec<u8>, text: &str) {
    put_bytes(buf, text.as_bytes());
}

fn put_strs(buf: &mut Vec<u8>, texts: &[String]) {
    put_len(buf, texts.len());
    for text in texts {
        put_str(buf, text);
    }
}

fn put_bool(buf: &mut Vec<u8>, value: bool) {
    buf.push(u8::from(value));
}

fn lob_size_code(size: LobSize) -> u8 {
    match size {
        LobSize::Tiny => 0,
        LobSize::Regular => 1,
        LobSize::Medium => 2,
        LobSize::Long => 3,
    }
}

fn put_column_type(buf: &mut Vec<u8>, column_type: &ColumnType) {
    match column_type {
        ColumnType::TinyInt { unsigned } => {
            buf.push(0);
            put_bool(buf, *unsigned);
        }
        ColumnType::SmallInt { unsigned } => {
            buf.push(1);
            put_bool(buf, *unsigned);
        }
        ColumnType::MediumInt { unsigned } => {
            buf.push(2);
            put_bool(buf, *unsigned);
        }
        ColumnType::Int { unsigned } => {
            buf.push(3);
            put_bool(buf, *unsigned);
        }
        ColumnType::BigInt { unsigned } => {
            buf.push(4);
            put_bool(buf, *unsigned);
        }
        ColumnType::Decimal { precision, scale } => buf.extend_from_slice(&[5, *precision, *scale]),
        ColumnType::Float => buf.push(6),
        ColumnType::Double => buf.push(7),
        ColumnType::Date => buf.push(8),
        ColumnType::Time { fsp } => buf.extend_from_slice(&[9, *fsp]),
        ColumnType::DateTime { fsp } => buf.extend_from_slice(&[10, *fsp]),
        ColumnType::Timestamp { fsp } => buf.extend_from_slice(&[11, *fsp]),
        ColumnType::Year => buf.push(12),
        ColumnType::Char { length, charset } => {
            buf.push(13);
            put_varint(buf, u64::from(*length));
            put_str(buf, charset);
        }
        ColumnType::VarChar { length, charset } => {
            buf.push(14);
            put_varint(buf, u64::from(*length));
            put_str(buf, charset);
        }
        ColumnType::Text { size, charset } => {
            buf.extend_from_slice(&[15, lob_size_code(*size)]);
            put_str(buf, charset);
        }
        ColumnType::Binary { length } => {
            buf.push(16);
            put_varint(buf, u64::from(*length));
        }
        ColumnType::VarBinary { length } => {
            buf.push(17);
            put_varint(buf, u64::from(*length));
        }
        ColumnType::Blob { size } => buf.extend_from_slice(&[18, lob_size_code(*size)]),
        ColumnType::Json => buf.push(19),
        ColumnType::Enum { values } => {
            buf.push(20);
            put_strs(buf, values);
        }
        ColumnType::Set { values } => {
            buf.push(21);
            put_strs(buf, values);
        }
        ColumnType::Bit { width } => buf.extend_from_slice(&[22, *width]),
        ColumnType::Geometry => buf.push(23),
    }
}

fn put_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => buf.push(0),
        Value::Int(v) => {
            buf.push(1);
            put_zigzag(buf, *v);
        }
        Value::UInt(v) => {
            buf.push(2);
            put_varint(buf, *v);
        }
        Value::Float(v) => {
            buf.push(3);
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        Value::Double(v) => {
            buf.push(4);
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        Value::Decimal(text) => {
            buf.push(5);
            put_str(buf, text);
        }
        Value::Date(date) => {
            buf.push(6);
            put_varint(buf, u64::from(date.year));
            buf.extend_from_slice(&[date.month, date.day]);
        }
        Value::Time(time) => {
            buf.push(7);
            put_bool(buf, time.negative);
            put_varint(buf, u64::from(time.hours));
            buf.extend_from_slice(&[time.minutes, time.seconds]);
            put_varint(buf, u64::from(time.micros));
        }
        Value::DateTime(datetime) => {
            buf.push(8);
            put_varint(buf, u64::from(datetime.year));
            buf.extend_from_slice(&[
                datetime.month,
                datetime.day,
                datetime.hour,
                datetime.minute,
                datetime.second,
            ]);
            put_varint(buf, u64::from(datetime.micros));
        }
        Value::Timestamp(micros) => {
            buf.push(9);
            put_zigzag(buf, *micros);
        }
        Value::Year(year) => {
            buf.push(10);
            put_varint(buf, u64::from(*year));
        }
        Value::Text(text) => {
            buf.push(11);
            put_str(buf, text);
        }
        Value::Bytes(bytes) => {
            buf.push(12);
            put_bytes(buf, bytes);
        }
        Value::Json(text) => {
            buf.push(13);
            put_str(buf, text);
        }
        Value::Enum(name) => {
            buf.push(14);
            put_str(buf, name);
        }
        Value::Set(members) => {
            buf.push(15);
            put_strs(buf, members);
        }
        Value::Bit { width, value } => {
            buf.extend_from_slice(&[16, *width]);
            put_varint(buf, *value);
        }
        Value::Geometry { srid, wkb } => {
            buf.push(17);
            put_varint(buf, u64::from(*srid));
            put_bytes(buf, wkb);
        }
    }
}

fn put_row(buf: &mut Vec<u8>, row: Option<&Row>) {
    match row {
        None => buf.push(0),
        Some(row) => {
            buf.push(1);
            put_len(buf, row.values.len());
            for value in &row.values {
                put_value(buf, value);
            }
        }
    }
}

fn flavor_code(flavor: ServerFlavor) -> u8 {
    match flavor {
        ServerFlavor::MySql => 0,
        ServerFlavor::MariaDb => 1,
        ServerFlavor::OceanBase => 2,
    }
}

/// Writes events into one batch buffer. Reusable: [`finish`](BatchEncoder::finish) returns the
/// batch and starts the next one, keeping allocations.
#[derive(Debug)]
pub struct BatchEncoder {
    buf: Vec<u8>,
    /// Schemas defined in this batch; the index is the schema id.
    schemas: Vec<Arc<TableSchema>>,
    /// Schema id by `Arc` address: events of one table version share one `Arc`, so the common
    /// lookup is a pointer hash, never a schema comparison.
    schema_ids: HashMap<usize, u64>,
    sources: Vec<Arc<str>>,
    source_ids: HashMap<usize, u64>,
    /// Every `Arc` whose address is a key above, kept alive so no address can be reused by a
    /// different value while the batch is open.
    pinned_schemas: Vec<Arc<TableSchema>>,
    pinned_sources: Vec<Arc<str>>,
    previous_file: Option<String>,
    previous_tx_id: Option<String>,
    events: u64,
}

impl Default for BatchEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchEncoder {
    pub fn new() -> Self {
        Self::with_capacity(4096)
    }

    /// An encoder whose buffer starts with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut encoder = Self {
            buf: Vec::with_capacity(bytes.max(HEADER_LEN + TRAILER_LEN)),
            schemas: Vec::new(),
            schema_ids: HashMap::new(),
            sources: Vec::new(),
            source_ids: HashMap::new(),
            pinned_schemas: Vec::new(),
            pinned_sources: Vec::new(),
            previous_file: None,
            previous_tx_id: None,
            events: 0,
        };
        encoder.start_batch();
        encoder
    }

    fn start_batch(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&MAGIC);
        self.buf.extend_from_slice(&[FORMAT_VERSION, 0]);
        self.schemas.clear();
        self.schema_ids.clear();
        self.sources.clear();
        self.source_ids.clear();
        self.pinned_schemas.clear();
        self.pinned_sources.clear();
        self.previous_file = None;
        self.previous_tx_id = None;
        self.events = 0;
    }

    /// Events pushed into the current batch.
    pub fn event_count(&self) -> u64 {
        self.events
    }

    /// Size the batch would have if finished now, in bytes (for size-based rolling).
    pub fn encoded_len(&self) -> usize {
        self.buf.len() + TRAILER_LEN
    }

    pub fn push(&mut self, event: &ChangeEvent) {
        let schema_id = self.schema_id(&event.schema);
        let source_id = self.source_id(&event.source_name);
        self.buf.push(RECORD_CHANGE);
        self.buf.push(match event.op {
            Op::Insert => 0,
            Op::Update => 1,
            Op::Delete => 2,
            Op::Read => 3,
        });
        put_varint(&mut self.buf, schema_id);
        put_varint(&mut self.buf, source_id);
        put_varint(&mut self.buf, u64::from(event.server_id));
        self.put_position(&event.position);
        put_zigzag(&mut self.buf, event.commit_ts_ms);
        match &event.tx_id {
            None => self.buf.push(0),
            Some(id) if self.previous_tx_id.as_ref() == Some(id) => self.buf.push(2),
            Some(id) => {
                self.buf.push(1);
                put_str(&mut self.buf, id);
                self.previous_tx_id.clone_from(&event.tx_id);
            }
        }
        put_row(&mut self.buf, event.before.as_ref());
        put_row(&mut self.buf, event.after.as_ref());
        self.events += 1;
    }

    pub fn push_event(&mut self, event: &Event) {
        match event {
            Event::Change(change) => self.push(change),
            Event::SchemaChange(change) => {
                let schema_id = change.schema.as_ref().map(|s| self.schema_id(s));
                let source_id = self.source_id(&change.source_name);
                self.buf.push(RECORD_SCHEMA_CHANGE);
                put_varint(&mut self.buf, source_id);
                put_varint(&mut self.buf, u64::from(change.server_id));
                self.put_position(&change.position);
                put_zigzag(&mut self.buf, change.commit_ts_ms);
                put_str(&mut self.buf, &change.database);
                put_str(&mut self.buf, &change.ddl);
                match &change.table {
                    None => self.buf.push(0),
                    Some(table) => {
                        self.buf.push(1);
                        put_str(&mut self.buf, &table.database);
                        put_str(&mut self.buf, &table.table);
                    }
                }
                match schema_id {
                    None => self.buf.push(0),
                    Some(id) => {
                        self.buf.push(1);
                        put_varint(&mut self.buf, id);
                    }
                }
                self.events += 1;
            }
            Event::Heartbeat(heartbeat) => {
                let source_id = self.source_id(&heartbeat.source_name);
                self.buf.push(RECORD_HEARTBEAT);
                put_varint(&mut self.buf, source_id);
                self.put_position(&heartbeat.position);
                put_zigzag(&mut self.buf, heartbeat.ts_ms);
                self.events += 1;
            }
        }
    }

    /// Completes the batch (trailer and checksum), returns it and starts an empty one.
    pub fn finish(&mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&self.events.to_le_bytes());
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        let capacity = self.buf.capacity();
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(capacity));
        self.start_batch();
        batch
    }

    fn schema_id(&mut self, schema: &Arc<TableSchema>) -> u64 {
        let address = Arc::as_ptr(schema) as usize;
        if let Some(id) = self.schema_ids.get(&address) {
            return *id;
        }
        // A new Arc: it may still hold a schema already defined (equal content).
        let id = match self.schemas.iter().position(|known| **known == **schema) {
            Some(index) => index as u64,
            None => {
                self.put_schema_definition(schema);
                self.schemas.push(Arc::clone(schema));
                (self.schemas.len() - 1) as u64
            }
        };
        self.schema_ids.insert(address, id);
        self.pinned_schemas.push(Arc::clone(schema));
        id
    }

    fn source_id(&mut self, source: &Arc<str>) -> u64 {
        let address = Arc::as_ptr(source) as *const u8 as usize;
        if let Some(id) = self.source_ids.get(&address) {
            return *id;
        }
        let id = match self.sources.iter().position(|known| **known == **source) {
            Some(index) => index as u64,
            None => {
                self.buf.push(RECORD_SOURCE);
                put_str(&mut self.buf, source);
                self.sources.push(Arc::clone(source));
                (self.sources.len() - 1) as u64
            }
        };
        self.source_ids.insert(address, id);
        self.pinned_sources.push(Arc::clone(source));
        id
    }

    fn put_schema_definition(&mut self, schema: &TableSchema) {
        let buf = &mut self.buf;
        buf.push(RECORD_SCHEMA);
        put_str(buf, &schema.table.database);
        put_str(buf, &schema.table.table);
        put_varint(buf, schema.version);
        put_len(buf, schema.columns.len());
        for column in &schema.columns {
            put_str(buf, &column.name);
            put_bool(buf, column.nullable);
            put_column_type(buf, &column.column_type);
        }
        put_strs(buf, &schema.primary_key);
    }

    fn put_position(&mut self, position: &Position) {
        self.buf.push(flavor_code(position.flavor));
        if self.previous_file.as_deref() == Some(position.file.as_str()) {
            self.buf.push(0);
        } else {
            self.buf.push(1);
            put_str(&mut self.buf, &position.file);
            match &mut self.previous_file {
                Some(previous) => previous.clone_from(&position.file),
                None => self.previous_file = Some(position.file.clone()),
            }
        }
        put_varint(&mut self.buf, position.offset);
        self.buf.push(match position.phase {
            Phase::Snapshot => 0,
            Phase::Stream => 1,
        });
        put_varint(&mut self.buf, u64::from(position.event_index));
        match &position.gtid {
            None => self.buf.push(0),
            Some(Gtid::MySql {
                source_id,
                tag,
                transaction_id,
            }) => {
                self.buf.push(1);
                self.buf.extend_from_slice(&source_id.0);
                match tag {
                    None => self.buf.push(0),
                    Some(tag) => {
                        self.buf.push(1);
                        put_str(&mut self.buf, tag);
                    }
                }
                put_varint(&mut self.buf, *transaction_id);
            }
            Some(Gtid::MariaDb {
                domain_id,
                server_id,
                sequence,
            }) => {
                self.buf.push(2);
                put_varint(&mut self.buf, u64::from(*domain_id));
                put_varint(&mut self.buf, u64::from(*server_id));
                put_varint(&mut self.buf, *sequence);
            }
        }
    }
}

/// Encodes change events as one batch.
pub fn encode_batch(events: &[ChangeEvent]) -> Vec<u8> {
    let mut encoder = BatchEncoder::new();
    for event in events {
        encoder.push(event);
    }
    encoder.finish()
}

/// Encodes events of every kind as one batch.
pub fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut encoder = BatchEncoder::new();
    for event in events {
        encoder.push_event(event);
    }
    encoder.finish()
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A bounds-checked cursor over the record area.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes[0]` in the whole batch, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated {
            offset: self.offset(),
            what,
        })?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(DecodeError::Truncated {
                offset: self.offset(),
                what,
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N, what)?);
        Ok(array)
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let offset = self.offset();
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag { offset, what, tag }),
        }
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let offset = self.offset();
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may only contribute the single remaining bit.
            if shift == 63 && bits > 1 {
                return Err(DecodeError::VarintOverflow { offset, what });
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow { offset, what })
    }

    fn zigzag(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let raw = self.varint(what)?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    fn narrow<T: TryFrom<u64>>(&mut self, what: &'static str) -> Result<T, DecodeError> {
        let offset = self.offset();
        let value = self.varint(what)?;
        T::try_from(value).map_err(|_| DecodeError::OutOfRange {
            offset,
            what,
            value,
        })
    }

    /// A length or element count; every element takes at least one byte, so anything larger
    /// than the remaining input is corrupt. This caps allocations by the input size.
    fn len(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let offset = self.offset();
        let length = self.varint(what)?;
        let remaining = self.remaining();
        match usize::try_from(length) {
            Ok(length) if length <= remaining => Ok(length),
            _ => Err(DecodeError::LengthTooLarge {
                offset,
                what,
                length,
                remaining,
            }),
        }
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.len(what)?;
        self.take(len, what)
    }

    fn str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let offset = self.offset();
        std::str::from_utf8(self.bytes(what)?)
            .map_err(|_| DecodeError::InvalidUtf8 { offset, what })
    }

    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        Ok(self.str(what)?.to_owned())
    }

    fn strings(&mut self, what: &'static str) -> Result<Vec<String>, DecodeError> {
        let count = self.len(what)?;
        (0..count).map(|_| self.string(what)).collect()
    }

    fn unknown_tag(&self, offset: usize, what: &'static str, tag: u8) -> DecodeError {
        DecodeError::UnknownTag { offset, what, tag }
    }
}

fn read_lob_size(reader: &mut Reader<'_>) -> Result<LobSize, DecodeError> {
    let offset = reader.offset();
    match reader.u8("LOB size")? {
        0 => Ok(LobSize::Tiny),
        1 => Ok(LobSize::Regular),
        2 => Ok(LobSize::Medium),
        3 => Ok(LobSize::Long),
        tag => Err(reader.unknown_tag(offset, "LOB size", tag)),
    }
}

fn read_column_type(reader: &mut Reader<'_>) -> Result<ColumnType, DecodeError> {
    let offset = reader.offset();
    let tag = reader.u8("column type")?;
    Ok(match tag {
        0 => ColumnType::TinyInt {
            unsigned: reader.bool("unsigned flag")?,
        },
        1 => ColumnType::SmallInt {
            unsigned: reader.bool("unsigned flag")?,
        },
        2 => ColumnType::MediumInt {
            unsigned: reader.bool("unsigned flag")?,
        },
        3 => ColumnType::Int {
            unsigned: reader.bool("unsigned flag")?,
        },
        4 => ColumnType::BigInt {
            unsigned: reader.bool("unsigned flag")?,
        },
        5 => ColumnType::Decimal {
            precision: reader.u8("DECIMAL precision")?,
            scale: reader.u8("DECIMAL scale")?,
        },
        6 => ColumnType::Float,
        7 => ColumnType::Double,
        8 => ColumnType::Date,
        9 => ColumnType::Time {
            fsp: reader.u8("TIME precision")?,
        },
        10 => ColumnType::DateTime {
            fsp: reader.u8("DATETIME precision")?,
        },
        11 => ColumnType::Timestamp {
            fsp: reader.u8("TIMESTAMP precision")?,
        },
        12 => ColumnType::Year,
        13 => ColumnType::Char {
            length: reader.narrow("CHAR length")?,
            charset: reader.string("charset")?,
        },
        14 => ColumnType::VarChar {
            length: reader.narrow("VARCHAR length")?,
            charset: reader.string("charset")?,
        },
        15 => ColumnType::Text {
            size: read_lob_size(reader)?,
            charset: reader.string("charset")?,
        },
        16 => ColumnType::Binary {
            length: reader.narrow("BINARY length")?,
        },
        17 => ColumnType::VarBinary {
            length: reader.narrow("VARBINARY length")?,
        },
        18 => ColumnType::Blob {
            size: read_lob_size(reader)?,
        },
        19 => ColumnType::Json,
        20 => ColumnType::Enum {
            values: reader.strings("ENUM members")?,
        },
        21 => ColumnType::Set {
            values: reader.strings("SET members")?,
        },
        22 => ColumnType::Bit {
            width: reader.u8("BIT width")?,
        },
        23 => ColumnType::Geometry,
        tag => return Err(reader.unknown_tag(offset, "column type", tag)),
    })
}

fn read_value(reader: &mut Reader<'_>) -> Result<Value, DecodeError> {
    let offset = reader.offset();
    let tag = reader.u8("value")?;
    Ok(match tag {
        0 => Value::Null,
        1 => Value::Int(reader.zigzag("Int value")?),
        2 => Value::UInt(reader.varint("UInt value")?),
        3 => Value::Float(f32::from_bits(u32::from_le_bytes(
            reader.array("Float value")?,
        ))),
        4 => Value::Double(f64::from_bits(u64::from_le_bytes(
            reader.array("Double value")?,
        ))),
        5 => Value::Decimal(reader.string("Decimal value")?),
        6 => Value::Date(SqlDate {
            year: reader.narrow("Date year")?,
            month: reader.u8("Date month")?,
            day: reader.u8("Date day")?,
        }),
        7 => Value::Time(SqlTime {
            negative: reader.bool("Time sign")?,
            hours: reader.narrow("Time hours")?,
            minutes: reader.u8("Time minutes")?,
            seconds: reader.u8("Time seconds")?,
            micros: reader.narrow("Time microseconds")?,
        }),
        8 => Value::DateTime(SqlDateTime {
            year: reader.narrow("DateTime year")?,
            month: reader.u8("DateTime month")?,
            day: reader.u8("DateTime day")?,
            hour: reader.u8("DateTime hour")?,
            minute: reader.u8("DateTime minute")?,
            second: reader.u8("DateTime second")?,
            micros: reader.narrow("DateTime microseconds")?,
        }),
        9 => Value::Timestamp(reader.zigzag("Timestamp value")?),
        10 => Value::Year(reader.narrow("Year value")?),
        11 => Value::Text(reader.string("Text value")?),
        12 => Value::Bytes(reader.bytes("Bytes value")?.to_vec()),
        13 => Value::Json(reader.string("Json value")?),
        14 => Value::Enum(reader.string("Enum value")?),
        15 => Value::Set(reader.strings("Set members")?),
        16 => Value::Bit {
            width: reader.u8("Bit width")?,
            value: reader.varint("Bit value")?,
        },
        17 => Value::Geometry {
            srid: reader.narrow("Geometry SRID")?,
            wkb: reader.bytes("Geometry WKB")?.to_vec(),
        },
        tag => return Err(reader.unknown_tag(offset, "value", tag)),
    })
}

fn read_row(reader: &mut Reader<'_>, what: &'static str) -> Result<Option<Row>, DecodeError> {
    if !reader.bool(what)? {
        return Ok(None);
    }
    let count = reader.len(what)?;
    let values = (0..count)
        .map(|_| read_value(reader))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Row { values }))
}

/// Decoding state that records refer back to.
#[derive(Default)]
struct Context {
    schemas: Vec<Arc<TableSchema>>,
    sources: Vec<Arc<str>>,
    previous_file: Option<String>,
    previous_tx_id: Option<String>,
}

impl Context {
    fn schema(&self, reader: &mut Reader<'_>) -> Result<Arc<TableSchema>, DecodeError> {
        let offset = reader.offset();
        let id = reader.varint("schema id")?;
        usize::try_from(id)
            .ok()
            .and_then(|index| self.schemas.get(index))
            .cloned()
            .ok_or(DecodeError::UndefinedReference {
                offset,
                what: "schema",
                id,
                defined: self.schemas.len(),
            })
    }

    fn source(&self, reader: &mut Reader<'_>) -> Result<Arc<str>, DecodeError> {
        let offset = reader.offset();
        let id = reader.varint("source id")?;
        usize::try_from(id)
            .ok()
            .and_then(|index| self.sources.get(index))
            .cloned()
            .ok_or(DecodeError::UndefinedReference {
                offset,
                what: "source",
                id,
                defined: self.sources.len(),
            })
    }

    fn read_schema_definition(&mut self, reader: &mut Reader<'_>) -> Result<(), DecodeError> {
        let table = TableId {
            database: reader.string("schema database")?,
            table: reader.string("schema table")?,
        };
        let version = reader.varint("schema version")?;
        let count = reader.len("column count")?;
        let columns = (0..count)
            .map(|_| {
                Ok(ColumnDef {
                    name: reader.string("column name")?,
                    nullable: reader.bool("column nullable flag")?,
                    column_type: read_column_type(reader)?,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let primary_key = reader.strings("primary key")?;
        self.schemas.push(Arc::new(TableSchema {
            table,
            version,
            columns,
            primary_key,
        }));
        Ok(())
    }

    fn read_position(&mut self, reader: &mut Reader<'_>) -> Result<Position, DecodeError> {
        let offset = reader.offset();
        let flavor = match reader.u8("server flavor")? {
            0 => ServerFlavor::MySql,
            1 => ServerFlavor::MariaDb,
            2 => ServerFlavor::OceanBase,
            tag => return Err(reader.unknown_tag(offset, "server flavor", tag)),
        };
        let offset = reader.offset();
        let file = if reader.bool("binlog file marker")? {
            let file = reader.string("binlog file")?;
            self.previous_file = Some(file.clone());
            file
        } else {
            self.previous_file.clone().ok_or(DecodeError::NoPrevious {
                offset,
                what: "binlog file",
            })?
        };
        let binlog_offset = reader.varint("binlog offset")?;
        let offset = reader.offset();
        let phase = match reader.u8("phase")? {
            0 => Phase::Snapshot,
            1 => Phase::Stream,
            tag => return Err(reader.unknown_tag(offset, "phase", tag)),
        };
        let event_index = reader.narrow("event index")?;
        let offset = reader.offset();
        let gtid = match reader.u8("GTID")? {
            0 => None,
            1 => Some(Gtid::MySql {
                source_id: ServerUuid(reader.array("GTID source UUID")?),
                tag: if reader.bool("GTID tag marker")? {
                    Some(reader.string("GTID tag")?)
                } else {
                    None
                },
                transaction_id: reader.varint("GTID transaction id")?,
            }),
            2 => Some(Gtid::MariaDb {
                domain_id: reader.narrow("GTID domain id")?,
                server_id: reader.narrow("GTID server id")?,
                sequence: reader.varint("GTID sequence")?,
            }),
            tag => return Err(reader.unknown_tag(offset, "GTID", tag)),
        };
        Ok(Position {
            flavor,
            file,
            offset: binlog_offset,
            gtid,
            phase,
            event_index,
        })
    }

    fn read_change(&mut self, reader: &mut Reader<'_>) -> Result<ChangeEvent, DecodeError> {
        let offset = reader.offset();
        let op = match reader.u8("op")? {
            0 => Op::Insert,
            1 => Op::Update,
            2 => Op::Delete,
            3 => Op::Read,
            tag => return Err(reader.unknown_tag(offset, "op", tag)),
        };
        let schema = self.schema(reader)?;
        let source_name = self.source(reader)?;
        let server_id = reader.narrow("server id")?;
        let position = self.read_position(reader)?;
        let commit_ts_ms = reader.zigzag("commit timestamp")?;
        let offset = reader.offset();
        let tx_id = match reader.u8("transaction id marker")? {
            0 => None,
            1 => {
                let id = reader.string("transaction id")?;
                self.previous_tx_id = Some(id.clone());
                Some(id)
            }
            2 => Some(self.previous_tx_id.clone().ok_or(DecodeError::NoPrevious {
                offset,
                what: "transaction id",
            })?),
            tag => return Err(reader.unknown_tag(offset, "transaction id marker", tag)),
        };
        Ok(ChangeEvent {
            op,
            schema,
            before: read_row(reader, "before image")?,
            after: read_row(reader, "after image")?,
            position,
            commit_ts_ms,
            tx_id,
            source_name,
            server_id,
        })
    }

    fn read_schema_change(
        &mut self,
        reader: &mut Reader<'_>,
    ) -> Result<SchemaChangeEvent, DecodeError> {
        let source_name = self.source(reader)?;
        let server_id = reader.narrow("server id")?;
        let position = self.read_position(reader)?;
        let commit_ts_ms = reader.zigzag("commit timestamp")?;
        let database = reader.string("DDL database")?;
        let ddl = reader.string("DDL text")?;
        let table = if reader.bool("DDL table marker")? {
            Some(TableId {
                database: reader.string("DDL table database")?,
                table: reader.string("DDL table name")?,
            })
        } else {
            None
        };
        let schema = if reader.bool("DDL schema marker")? {
            Some(self.schema(reader)?)
        } else {
            None
        };
        Ok(SchemaChangeEvent {
            database,
            ddl,
            table,
            schema,
            position,
            commit_ts_ms,
            source_name,
            server_id,
        })
    }

    fn read_heartbeat(&mut self, reader: &mut Reader<'_>) -> Result<HeartbeatEvent, DecodeError> {
        let source_name = self.source(reader)?;
        let position = self.read_position(reader)?;
        Ok(HeartbeatEvent {
            position,
            ts_ms: reader.zigzag("heartbeat timestamp")?,
            source_name,
        })
    }
}

/// Checks framing and checksum; returns the record area and the declared event count.
fn open_batch(bytes: &[u8]) -> Result<(Reader<'_>, u64), DecodeError> {
    let min = HEADER_LEN + TRAILER_LEN;
    if bytes.len() < min {
        return Err(DecodeError::TooShort {
            len: bytes.len(),
            min,
        });
    }
    let (header, rest) = bytes.split_at(HEADER_LEN);
    let (records, trailer) = rest.split_at(rest.len() - TRAILER_LEN);
    let (count, crc) = trailer.split_at(8);
    // Slices above have exactly the lengths asked for, so these conversions cannot fail;
    // mapping to an error anyway keeps the decoder free of panics.
    let magic: [u8; 4] = header[..4].try_into().map_err(|_| DecodeError::TooShort {
        len: bytes.len(),
        min,
    })?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic { found: magic });
    }
    if header[4] != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { version: header[4] });
    }
    if header[5] != 0 {
        return Err(DecodeError::UnsupportedFlags { flags: header[5] });
    }
    let stored = u32::from_le_bytes(crc.try_into().map_err(|_| DecodeError::TooShort {
        len: bytes.len(),
        min,
    })?);
    let computed = crc32fast::hash(&bytes[..bytes.len() - 4]);
    if stored != computed {
        return Err(DecodeError::ChecksumMismatch { stored, computed });
    }
    let declared = u64::from_le_bytes(count.try_into().map_err(|_| DecodeError::TooShort {
        len: bytes.len(),
        min,
    })?);
    Ok((
        Reader {
            bytes: records,
            pos: 0,
            base: HEADER_LEN,
        },
        declared,
    ))
}

/// Walks every record, handing each event (with its offset) to `emit`.
fn decode_with(
    bytes: &[u8],
    mut emit: impl FnMut(Event, usize) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let (mut reader, declared) = open_batch(bytes)?;
    let mut context = Context::default();
    let mut decoded = 0u64;
    while !reader.is_empty() {
        let offset = reader.offset();
        let event = match reader.u8("record")? {
            RECORD_SCHEMA => {
                context.read_schema_definition(&mut reader)?;
                continue;
            }
            RECORD_SOURCE => {
                let name = reader.str("source name")?;
                context.sources.push(Arc::from(name));
                continue;
            }
            RECORD_CHANGE => Event::Change(context.read_change(&mut reader)?),
            RECORD_SCHEMA_CHANGE => Event::SchemaChange(context.read_schema_change(&mut reader)?),
            RECORD_HEARTBEAT => Event::Heartbeat(context.read_heartbeat(&mut reader)?),
            tag => return Err(reader.unknown_tag(offset, "record", tag)),
        };
        decoded += 1;
        emit(event, offset)?;
    }
    if decoded != declared {
        return Err(DecodeError::EventCountMismatch { declared, decoded });
    }
    Ok(())
}

/// Decodes a batch of events of every kind.
pub fn decode_events(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let mut events = Vec::new();
    decode_with(bytes, |event, _| {
        events.push(event);
        Ok(())
    })?;
    Ok(events)
}

/// Decodes a batch that holds only change events; a schema-change or heartbeat record is an
/// error rather than silently dropped.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<ChangeEvent>, DecodeError> {
    let mut events = Vec::new();
    decode_with(bytes, |event, offset| match event {
        Event::Change(change) => {
            events.push(change);
            Ok(())
        }
        Event::SchemaChange(_) => Err(DecodeError::NotAChangeEvent {
            offset,
            kind: "schema change",
        }),
        Event::Heartbeat(_) => Err(DecodeError::NotAChangeEvent {
            offset,
            kind: "heartbeat",
        }),
    })?;
    Ok(events)
}
