//! The events that travel from capture to sink.

use std::fmt;
use std::sync::Arc;

use super::position::Position;
use super::table::{TableId, TableSchema};
use super::value::Row;

/// The kind of row change, with Debezium's one-letter codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `c`: a row was inserted; `after` only.
    Insert,
    /// `u`: a row was updated; `before` and `after`.
    Update,
    /// `d`: a row was deleted; `before` only.
    Delete,
    /// `r`: a row read by an initial snapshot; `after` only.
    Read,
}

impl Op {
    /// Debezium's `op` code.
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "c" => Some(Op::Insert),
            "u" => Some(Op::Update),
            "d" => Some(Op::Delete),
            "r" => Some(Op::Read),
            _ => None,
        }
    }

    /// Which row images this operation carries: (before, after).
    pub fn expected_images(self) -> (bool, bool) {
        match self {
            Op::Insert | Op::Read => (false, true),
            Op::Update => (true, true),
            Op::Delete => (true, false),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One row change.
///
/// The table and its column list come from `schema`, shared by every event of that table
/// version, so cloning an event or naming its columns never copies column names. Use
/// [`ChangeEvent::table`] and [`ChangeEvent::schema_version`] for the table identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub op: Op,
    /// The table's schema at the time of the change; rows are positional against it.
    pub schema: Arc<TableSchema>,
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub position: Position,
    /// Commit time of the transaction in the source, milliseconds since the Unix epoch
    /// (the snapshot time for [`Op::Read`]).
    pub commit_ts_ms: i64,
    /// Transaction identifier (the GTID text or capture's own id), shared by the events of one
    /// transaction.
    pub tx_id: Option<String>,
    /// Logical name of the captured source (Debezium's `source.name` / topic prefix); shared,
    /// since every event of a source carries the same one.
    pub source_name: Arc<str>,
    /// MySQL `server_id` of the server that wrote the binlog event (0 for snapshot reads).
    pub server_id: u32,
}

impl ChangeEvent {
    pub fn table(&self) -> &TableId {
        &self.schema.table
    }

    pub fn schema_version(&self) -> u64 {
        self.schema.version
    }
}

/// A DDL statement seen in the binlog, with the affected table's schema after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChangeEvent {
    /// The session's default database when the DDL ran (it qualifies unqualified names in
    /// `ddl`).
    pub database: String,
    /// The DDL text as executed.
    pub ddl: String,
    /// The table the DDL changed, if it changed exactly one.
    pub table: Option<TableId>,
    /// The schema after the DDL; `None` when the table was dropped or no table schema applies.
    pub schema: Option<Arc<TableSchema>>,
    pub position: Position,
    pub commit_ts_ms: i64,
    pub source_name: Arc<str>,
    pub server_id: u32,
}

/// Progress through an idle period: no rows changed, but the source reached `position`, so
/// checkpoints may advance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatEvent {
    pub position: Position,
    /// Source time of the position, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    pub source_name: Arc<str>,
}

/// Anything capture emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Change(ChangeEvent),
    SchemaChange(SchemaChangeEvent),
    Heartbeat(HeartbeatEvent),
}

impl Event {
    pub fn position(&self) -> &Position {
        match self {
            Event::Change(e) => &e.position,
            Event::SchemaChange(e) => &e.position,
            Event::Heartbeat(e) => &e.position,
        }
    }

    pub fn source_name(&self) -> &Arc<str> {
        match self {
            Event::Change(e) => &e.source_name,
            Event::SchemaChange(e) => &e.source_name,
            Event::Heartbeat(e) => &e.source_name,
        }
    }
}

impl From<ChangeEvent> for Event {
    fn from(event: ChangeEvent) -> Self {
        Event::Change(event)
    }
}

impl From<SchemaChangeEvent> for Event {
    fn from(event: SchemaChangeEvent) -> Self {
        Event::SchemaChange(event)
    }
}

impl From<HeartbeatEvent> for Event {
    fn from(event: HeartbeatEvent) -> Self {
        Event::Heartbeat(event)
    }
}
