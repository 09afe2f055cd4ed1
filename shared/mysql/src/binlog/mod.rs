//! Reading the binlog as a replica and turning it into change events.
//!
//! [`BinlogReader`] connects with mysql_async, asks for the binlog from a file and offset and
//! yields [`cdc_event::Event`]s: row changes of the selected tables, schema changes (DDL on
//! them) and heartbeats through idle periods.
//!
//! Positions: every event of a transaction carries the file and offset of the event that
//! opened it (MariaDB GTID, MySQL GTID or `BEGIN`) and its index among the emitted events of
//! that transaction (from 1; 0 is the boundary before the transaction, used by resume and
//! heartbeat positions), so positions are totally ordered and strictly increasing along the
//! stream; a consumer that remembers the last position it committed drops every event at or
//! before it, whether that position came from a change, a heartbeat or a resume point. Rows are emitted as they are read, not held until the commit: after a restart
//! from [`BinlogReader::resume_position`] (the end of the last complete transaction) nothing
//! already committed is read again.

mod ddl;
mod error;
pub(crate) mod schema;
pub(crate) mod text;
pub(crate) mod values;

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_core::Stream;
use mysql_async::binlog::events::{BinlogEventHeader, Event as RawEvent, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};

use cdc_event::{
    ChangeEvent, Event, Gtid, HeartbeatEvent, Op, Phase, Position, Row, SchemaChangeEvent, ServerFlavor, ServerUuid,
    TableId, TableSchema,
};

use crate::{server_info, SourceOptions, TableSelector};

pub use error::BinlogError;

use schema::{CatalogueColumn, Collations};
use text::TextEncoding;

/// Index of a transaction's first emitted event. Index 0 is kept for the transaction boundary
/// itself (resume and heartbeat positions): `(file, X, stream, 0)` then sorts after every event
/// of the transaction that ended at X and before every event of the one starting there, so
/// one rule — drop what is `<=` the last committed position — serves both kinds of checkpoint.
const FIRST_EVENT_INDEX: u32 = 1;

/// MariaDB's own event types, which mysql_common does not parse.
const MARIADB_ANNOTATE_ROWS: u8 = 160;
const MARIADB_GTID: u8 = 162;
/// Binlog event types the reader acts on by number.
const HEARTBEAT: u8 = 27;

/// MariaDB GTID event flag: the transaction is a single statement without BEGIN/COMMIT (DDL).
const FL_STANDALONE: u8 = 1;

/// What [`BinlogReader::start`] needs. Required values in [`BinlogReaderConfig::new`], the
/// rest through `with_*`.
#[derive(Debug, Clone)]
pub struct BinlogReaderConfig {
    /// This reader's replica `server_id`: must differ from the source's and from every other
    /// replica's, or the server disconnects one of them.
    pub server_id: u32,
    /// Logical source name stamped on every event.
    pub source_name: Arc<str>,
    pub selector: TableSelector,
    /// Binlog file to start in, e.g. `binlog.000003`.
    pub file: String,
    /// Byte offset in `file` where a transaction (or the file, at 4) starts.
    pub offset: u64,
    /// How often the server sends a heartbeat when it has nothing to send; `None` leaves the
    /// server's default (no heartbeats).
    pub heartbeat: Option<Duration>,
}

impl BinlogReaderConfig {
    pub fn new(
        server_id: u32,
        source_name: impl Into<Arc<str>>,
        selector: TableSelector,
        file: impl Into<String>,
        offset: u64,
    ) -> Self {
        Self { server_id, source_name: source_name.into(), selector, file: file.into(), offset, heartbeat: None }
    }

    /// The reader a capture of `source` uses, starting at `start`: `database.serverId` or a
    /// default stable per host (Debezium's customary 5400–6399 range, so restarts reuse it),
    /// and the source's `host:port` as the source name that positions are ordered under.
    pub fn for_source(
        source: &SourceOptions,
        database: &cdc_config::DatabaseConfig,
        selector: TableSelector,
        start: &Position,
    ) -> Self {
        let server_id = database.server_id.unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_default();
            let hash = host.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            5400 + hash % 1000
        });
        Self::new(server_id, source.address(), selector, start.file.clone(), start.offset)
    }

    pub fn with_heartbeat(mut self, period: Duration) -> Self {
        self.heartbeat = Some(period);
        self
    }
}

/// A table as the current TABLE_MAP describes it.
struct TableEntry {
    table: TableId,
    selected: bool,
    tme: TableMapEvent<'static>,
    decoder: Option<Arc<Decoder>>,
}

struct Decoder {
    schema: Arc<TableSchema>,
    encodings: Vec<TextEncoding>,
}

/// The transaction being read.
struct Transaction {
    file: String,
    offset: u64,
    gtid: Option<Gtid>,
    id: String,
    /// Index of the next emitted event.
    next_index: u32,
    ts_ms: i64,
    /// BEGIN seen (or implied by a non-standalone MariaDB GTID): the transaction ends at
    /// XID/COMMIT, not after its first statement.
    begun: bool,
}

/// Streams change events from a MySQL-protocol server's binlog. See the module docs.
pub struct BinlogReader {
    stream: BinlogStream,
    source: SourceOptions,
    catalogue: Option<Conn>,
    flavor: ServerFlavor,
    source_name: Arc<str>,
    selector: TableSelector,
    collations: Collations,
    file: String,
    /// End offset of the last event read (for error messages).
    last_end: u64,
    tables: HashMap<u64, TableEntry>,
    /// The newest schema of each table, for versioning.
    schemas: HashMap<TableId, Arc<TableSchema>>,
    catalogue_cache: HashMap<TableId, (Vec<CatalogueColumn>, Vec<String>)>,
    tx: Option<Transaction>,
    resume: Position,
    pending: VecDeque<Event>,
}

impl std::fmt::Debug for BinlogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogReader")
            .field("source", &self.source)
            .field("flavor", &self.flavor)
            .field("file", &self.file)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl BinlogReader {
    /// Connects twice (one connection becomes the binlog stream, the other answers catalogue
    /// questions), detects the flavor and asks for the binlog from `config.file`/`offset`.
    pub async fn start(source: &SourceOptions, config: BinlogReaderConfig) -> Result<Self, BinlogError> {
        let mut catalogue = source.connect().await?;
        let info = server_info(&mut catalogue).await?;
        if info.server_id == config.server_id {
            return Err(BinlogError::ServerIdInUse { server_id: config.server_id });
        }
        let collations = schema::load_collations(&mut catalogue).await?;

        let mut conn = source.connect().await?;
        if info.flavor == ServerFlavor::MariaDb {
            // Without capability 4 MariaDB treats us as an old replica: no GTID events and
            // annotate events sent as dummies.
            conn.query_drop("SET @mariadb_slave_capability=4")
                .await
                .map_err(|source| BinlogError::Setup { what: "SET @mariadb_slave_capability", source })?;
        }
        if let Some(period) = config.heartbeat {
            conn.query_drop(format!("SET @master_heartbeat_period={}", period.as_nanos()))
                .await
                .map_err(|source| BinlogError::Setup { what: "SET @master_heartbeat_period", source })?;
        }
        let request = BinlogStreamRequest::new(config.server_id)
            .with_filename(config.file.as_bytes())
            .with_pos(config.offset);
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|source| BinlogError::Setup { what: "binlog dump request", source })?;
        Ok(Self {
            stream,
            source: source.clone(),
            catalogue: Some(catalogue),
            flavor: info.flavor,
            source_name: config.source_name,
            selector: config.selector,
            collations,
            file: config.file.clone(),
            last_end: config.offset,
            tables: HashMap::new(),
            schemas: HashMap::new(),
            catalogue_cache: HashMap::new(),
            tx: None,
            resume: Position::stream(info.flavor, config.file, config.offset),
            pending: VecDeque::new(),
        })
    }

    /// Where to restart so that nothing is lost and no complete transaction is read again:
    /// the end of the last complete transaction (or heartbeat in an idle period), or the
    /// start position before any. Its `event_index` is 0 and `gtid` that of the last
    /// committed transaction.
    pub fn resume_position(&self) -> &Position {
        &self.resume
    }

    pub fn flavor(&self) -> ServerFlavor {
        self.flavor
    }

    /// The binlog file being read.
    pub fn current_file(&self) -> &str {
        &self.file
    }

    /// The next event; `None` when the server ended the stream. Not cancel-safe while it is
    /// querying information_schema (tables without full row metadata): drop the reader then.
    pub async fn next_event(&mut self) -> Result<Option<Event>, BinlogError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let next = std::future::poll_fn(|cx| Pin::new(&mut self.stream).poll_next(cx)).await;
            let raw = match next {
                None => return Ok(None),
                Some(Ok(raw)) => raw,
                Some(Err(source)) => {
                    return Err(BinlogError::Stream { file: self.file.clone(), offset: self.last_end, source })
                }
            };
            self.handle(raw).await?;
        }
    }

    /// Closes the binlog connection.
    pub async fn close(self) -> Result<(), BinlogError> {
        let (file, offset) = (self.file.clone(), self.last_end);
        self.stream.close().await.map_err(|source| BinlogError::Stream { file, offset, source })
    }

    fn malformed(&self, event_type: u8, offset: u64, reason: impl Into<String>) -> BinlogError {
        BinlogError::Malformed { event_type, file: self.file.clone(), offset, reason: reason.into() }
    }

    async fn handle(&mut self, raw: RawEvent) -> Result<(), BinlogError> {
        let header = raw.header();
        let event_type = header.event_type_raw();
        let log_pos = u64::from(header.log_pos());
        // log_pos is the end of the event; artificial events (first ROTATE, FDE) have 0.
        let start = log_pos.saturating_sub(u64::from(header.event_size()));
        let ts_ms = i64::from(header.timestamp()) * 1000;
        let server_id = header.server_id();
        if log_pos != 0 {
            self.last_end = log_pos;
        }
        match event_type {
            MARIADB_GTID => {
                let (gtid, flags) = parse_mariadb_gtid(raw.data(), server_id)
                    .ok_or_else(|| self.malformed(event_type, start, "MariaDB GTID event shorter than 13 bytes"))?;
                self.tx = Some(Transaction {
                    file: self.file.clone(),
                    offset: start,
                    id: gtid.to_string(),
                    gtid: Some(gtid),
                    next_index: FIRST_EVENT_INDEX,
                    ts_ms,
                    begun: flags & FL_STANDALONE == 0,
                });
                return Ok(());
            }
            HEARTBEAT => {
                // Only between transactions: inside one, the heartbeat's offset would sort
                // after rows still to come.
                if self.tx.is_none() && log_pos != 0 {
                    let mut position = Position::stream(self.flavor, self.file.clone(), log_pos);
                    position.gtid = self.resume.gtid.clone();
                    self.resume = position.clone();
                    self.pending.push_back(Event::Heartbeat(HeartbeatEvent {
                        position,
                        ts_ms: now_ms(),
                        source_name: self.source_name.clone(),
                    }));
                }
                return Ok(());
            }
            MARIADB_ANNOTATE_ROWS..=163 => return Ok(()),
            _ => {}
        }
        let data = match raw.read_data() {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(()),
            Err(e) => return Err(self.malformed(event_type, start, e.to_string())),
        };
        match data {
            EventData::RotateEvent(rotate) => {
                let name = strip_rotate_checksum(&header, raw.data(), rotate.name_raw());
                self.file = String::from_utf8(name.to_vec())
                    .map_err(|_| self.malformed(event_type, start, "ROTATE file name is not UTF-8"))?;
                if self.tx.is_none() {
                    let mut position = Position::stream(self.flavor, self.file.clone(), rotate.position());
                    position.gtid = self.resume.gtid.clone();
                    self.resume = position;
                }
            }
            EventData::GtidEvent(gtid) => {
                let gtid = Gtid::MySql { source_id: ServerUuid(gtid.sid()), tag: None, transaction_id: gtid.gno() };
                self.tx = Some(Transaction {
                    file: self.file.clone(),
                    offset: start,
                    id: gtid.to_string(),
                    gtid: Some(gtid),
                    next_index: FIRST_EVENT_INDEX,
                    ts_ms,
                    begun: false,
                });
            }
            EventData::XidEvent(_) => self.finish_tx(log_pos),
            EventData::QueryEvent(query) => {
                let sql = query.query();
                let trimmed = sql.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    match &mut self.tx {
                        // After a GTID event: the same transaction.
                        Some(tx) => tx.begun = true,
                        None => self.open_implicit_tx(start, ts_ms, true),
                    }
                } else if trimmed.eq_ignore_ascii_case("COMMIT") || trimmed.eq_ignore_ascii_case("ROLLBACK") {
                    self.finish_tx(log_pos);
                } else {
                    if let Some(ddl) = ddl::parse_ddl(&sql, &query.schema()) {
                        self.schema_change(ddl, sql.into_owned(), query.schema().into_owned(), start, ts_ms, server_id);
                    }
                    // A statement outside BEGIN..COMMIT (DDL) is its own transaction.
                    if self.tx.as_ref().is_none_or(|tx| !tx.begun) {
                        self.finish_tx(log_pos);
                    }
                }
            }
            EventData::TableMapEvent(tme) => self.table_map(tme.into_owned(), start).await?,
            EventData::RowsEvent(rows) => self.rows(&rows, start, ts_ms, server_id)?,
            _ => {}
        }
        Ok(())
    }

    fn open_implicit_tx(&mut self, start: u64, ts_ms: i64, begun: bool) {
        self.tx = Some(implicit_tx(&self.file, start, ts_ms, begun));
    }

    fn finish_tx(&mut self, end: u64) {
        let gtid = self.tx.take().and_then(|tx| tx.gtid).or_else(|| self.resume.gtid.clone());
        let mut position = Position::stream(self.flavor, self.file.clone(), end);
        position.gtid = gtid;
        self.resume = position;
    }

    /// The position of the next emitted event of the open transaction (opened implicitly
    /// when the stream starts inside one).
    fn next_position(&mut self, start: u64, ts_ms: i64) -> (Position, String, i64) {
        let flavor = self.flavor;
        let file = &self.file;
        let tx = self.tx.get_or_insert_with(|| implicit_tx(file, start, ts_ms, false));
        let position = Position {
            flavor,
            file: tx.file.clone(),
            offset: tx.offset,
            gtid: tx.gtid.clone(),
            phase: Phase::Stream,
            event_index: tx.next_index,
        };
        tx.next_index = tx.next_index.saturating_add(1);
        (position, tx.id.clone(), tx.ts_ms)
    }

    fn schema_change(&mut self, ddl: ddl::Ddl, sql: String, database: String, start: u64, ts_ms: i64, server_id: u32) {
        // Forget what we know of every named table, selected or not: a RENAME may make an
        // unselected name selected.
        for table in &ddl.tables {
            self.catalogue_cache.remove(table);
            self.tables.retain(|_, entry| &entry.table != table);
        }
        if !ddl.tables.iter().any(|t| self.selector.matches(&t.database, &t.table)) {
            return;
        }
        let (position, _, _) = self.next_position(start, ts_ms);
        let table = match ddl.tables.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        self.pending.push_back(Event::SchemaChange(SchemaChangeEvent {
            database,
            ddl: sql,
            table,
            // The schema after the DDL is known only from the next TABLE_MAP of the table;
            // the next row event carries it (with a higher version).
            schema: None,
            position,
            commit_ts_ms: ts_ms,
            source_name: self.source_name.clone(),
            server_id,
        }));
    }

    async fn table_map(&mut self, tme: TableMapEvent<'static>, start: u64) -> Result<(), BinlogError> {
        let table_id = tme.table_id();
        if let Some(entry) = self.tables.get(&table_id) {
            // MariaDB repeats the same map before every statement.
            if entry.tme == tme {
                return Ok(());
            }
        }
        let table = TableId::new(tme.database_name(), tme.table_name());
        let selected = self.selector.matches(&table.database, &table.table);
        let decoder = if selected { Some(self.decoder(&table, &tme, start).await?) } else { None };
        self.tables.insert(table_id, TableEntry { table, selected, tme, decoder });
        Ok(())
    }

    async fn decoder(&mut self, table: &TableId, tme: &TableMapEvent<'_>, start: u64) -> Result<Arc<Decoder>, BinlogError> {
        let catalogue = if schema::needs_catalogue(tme) {
            if !self.catalogue_cache.contains_key(table) {
                let conn = match self.catalogue.as_mut() {
                    Some(conn) => conn,
                    None => self.catalogue.insert(self.source.connect().await?),
                };
                match schema::load_catalogue_columns(conn, table).await {
                    Ok(columns) => {
                        self.catalogue_cache.insert(table.clone(), columns);
                    }
                    Err(e) => {
                        // Reconnect next time: the connection may have timed out while idle.
                        self.catalogue = None;
                        return Err(e);
                    }
                }
            }
            self.catalogue_cache.get(table)
        } else {
            None
        };
        let layout = schema::build_layout(table, tme, &self.collations, catalogue).map_err(|e| match e {
            BinlogError::Table { table, reason } => {
                BinlogError::Table { table, reason: format!("{reason} (TABLE_MAP at {}:{start})", self.file) }
            }
            other => other,
        })?;
        let schema = match self.schemas.get(table) {
            Some(last) if last.columns == layout.columns && last.primary_key == layout.primary_key => last.clone(),
            _ => {
                let schema = Arc::new(TableSchema {
                    table: table.clone(),
                    version: TableSchema::fingerprint(&layout.columns, &layout.primary_key),
                    columns: layout.columns,
                    primary_key: layout.primary_key,
                });
                self.schemas.insert(table.clone(), schema.clone());
                schema
            }
        };
        Ok(Arc::new(Decoder { schema, encodings: layout.encodings }))
    }

    fn rows(&mut self, rows: &RowsEventData<'_>, start: u64, ts_ms: i64, server_id: u32) -> Result<(), BinlogError> {
        let table_id = rows.table_id();
        let Some(entry) = self.tables.get(&table_id) else {
            return Err(BinlogError::UnknownTableId { file: self.file.clone(), offset: start, table_id });
        };
        let Some(decoder) = entry.decoder.clone().filter(|_| entry.selected) else { return Ok(()) };
        let op = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Insert,
            RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => Op::Update,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(BinlogError::Table {
                    table: entry.table.clone(),
                    reason: "partial JSON updates (binlog_row_value_options=PARTIAL_JSON) are not supported".into(),
                })
            }
        };
        let mut images = Vec::new();
        for item in rows.rows(&entry.tme) {
            let (before, after) = item.map_err(|e| BinlogError::Malformed {
                event_type: 0,
                file: self.file.clone(),
                offset: start,
                reason: format!("rows of {}: {e}", entry.table),
            })?;
            let before = before.map(|r| convert_row(&decoder, r)).transpose()?;
            let after = after.map(|r| convert_row(&decoder, r)).transpose()?;
            images.push((before, after));
        }
        for (before, after) in images {
            let (position, tx_id, commit_ts_ms) = self.next_position(start, ts_ms);
            self.pending.push_back(Event::Change(ChangeEvent {
                op,
                schema: decoder.schema.clone(),
                before,
                after,
                position,
                commit_ts_ms,
                tx_id: Some(tx_id),
                source_name: self.source_name.clone(),
                server_id,
            }));
        }
        Ok(())
    }
}

/// A transaction without GTID (or one the stream started inside): named by where it starts.
fn implicit_tx(file: &str, start: u64, ts_ms: i64, begun: bool) -> Transaction {
    Transaction {
        file: file.to_owned(),
        offset: start,
        gtid: None,
        id: format!("{file}:{start}"),
        next_index: FIRST_EVENT_INDEX,
        ts_ms,
        begun,
    }
}

fn convert_row(decoder: &Decoder, mut row: BinlogRow) -> Result<Row, BinlogError> {
    let schema = &decoder.schema;
    if row.len() != schema.columns.len() {
        return Err(BinlogError::Table {
            table: schema.table.clone(),
            reason: format!(
                "row image has {} of {} columns; binlog_row_image must be FULL",
                row.len(),
                schema.columns.len()
            ),
        });
    }
    let mut values = Vec::with_capacity(schema.columns.len());
    for (i, (column, encoding)) in schema.columns.iter().zip(&decoder.encodings).enumerate() {
        let column_err = |reason: String| BinlogError::Column {
            table: schema.table.clone(),
            column: column.name.clone(),
            column_type: column.column_type.to_string(),
            reason,
        };
        let raw = row.take(i).ok_or_else(|| column_err("value missing from the row image".into()))?;
        values.push(values::to_value(&column.column_type, *encoding, raw).map_err(column_err)?);
    }
    Ok(Row::new(values))
}

/// The first, artificial ROTATE of a stream arrives before the FORMAT_DESCRIPTION event that
/// announces checksums, so mysql_common leaves the event's CRC32 on the end of the file name.
/// Drop those 4 bytes when they are the CRC32 of the event (a real name ending in its own
/// checksum by chance is a 1 in 2^32 event).
fn strip_rotate_checksum<'a>(header: &BinlogEventHeader, data: &[u8], name: &'a [u8]) -> &'a [u8] {
    let (Some(split), Some(name_split)) = (data.len().checked_sub(4), name.len().checked_sub(4)) else {
        return name;
    };
    let (body, crc) = data.split_at(split);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header.timestamp().to_le_bytes());
    hasher.update(&[header.event_type_raw()]);
    hasher.update(&header.server_id().to_le_bytes());
    hasher.update(&header.event_size().to_le_bytes());
    hasher.update(&header.log_pos().to_le_bytes());
    hasher.update(&header.flags_raw().to_le_bytes());
    hasher.update(body);
    if crc == hasher.finalize().to_le_bytes() {
        &name[..name_split]
    } else {
        name
    }
}

/// MariaDB GTID event body: sequence (u64 LE), domain (u32 LE), flags (u8), then optional
/// parts this reader does not need.
fn parse_mariadb_gtid(data: &[u8], server_id: u32) -> Option<(Gtid, u8)> {
    let sequence = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain_id = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    let flags = *data.get(12)?;
    Some((Gtid::MariaDb { domain_id, server_id, sequence }, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gtid_bodies_parse() {
        let mut body = 42u64.to_le_bytes().to_vec();
        body.extend(7u32.to_le_bytes());
        body.push(FL_STANDALONE);
        let (gtid, flags) = parse_mariadb_gtid(&body, 3).unwrap();
        assert_eq!(gtid.to_string(), "7-3-42");
        assert_eq!(flags, FL_STANDALONE);
        assert!(parse_mariadb_gtid(&body[..12], 3).is_none());
    }
}
