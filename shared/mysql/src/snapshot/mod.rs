//! The initial snapshot: every selected table read as [`Op::Read`] events, consistent with one
//! binlog position, from which streaming takes over without a gap or a duplicate.
//!
//! # Consistency
//!
//! One connection reads every table inside one `REPEATABLE READ` transaction started `WITH
//! CONSISTENT SNAPSHOT`, and learns the binlog position P that transaction's view corresponds
//! to: every transaction committed before P is visible to it, none after.
//!
//! * MariaDB reports P lock-free: after `START TRANSACTION WITH CONSISTENT SNAPSHOT` the
//!   session status `binlog_snapshot_file` / `binlog_snapshot_position` is the binlog position
//!   of exactly that view (the server takes both under its commit-ordering lock).
//! * MySQL and OceanBase have no such status: the snapshot is taken under a short
//!   `FLUSH TABLES WITH READ LOCK` (no commit can happen while the transaction starts and
//!   `SHOW MASTER STATUS` is read), released right after, as `mysqldump --single-transaction
//!   --source-data` does. The lock waits at most `lock_wait_timeout` (set to
//!   [`LOCK_WAIT_TIMEOUT_SECS`]) for running statements, so a long query makes the snapshot
//!   fail instead of stalling every writer behind a pending global lock. `LOCK INSTANCE FOR
//!   BACKUP` is not used: it blocks DDL but not commits, so it cannot make the position
//!   consistent. **This path is untested here (no MySQL or OceanBase server).**
//!
//! Metadata locks: inside the transaction the server keeps a shared metadata lock on each table
//! already read until the snapshot ends; a DDL on such a table waits for it (and queues the
//! table's other statements behind it). Keep snapshots of busy tables short or DDL-free.
//!
//! # Positions
//!
//! Every event carries `Position { P.file, P.offset, gtid, phase: Snapshot, event_index }`
//! with `event_index` counting from 1 across the whole snapshot (0 is "before the first row").
//! `Phase::Snapshot < Phase::Stream` at the same offset and every streamed transaction starts
//! at or after P, so all snapshot events sort before every stream event read from
//! [`Snapshot::stream_from`]: a consumer that drops events at or below its high-water mark
//! never drops a stream event because of a snapshot one, and a replayed snapshot chunk is
//! dropped like any replayed event.
//!
//! # Chunks
//!
//! Tables are read one after another (by database and name) in primary-key order, in chunks
//! of `chunk_size` rows by keyset pagination (`WHERE key > last ORDER BY key LIMIT n`): no
//! OFFSET scans, and a chunk boundary is a key, so resuming after it neither skips nor repeats
//! a row. A table without a primary key cannot be paged that way and is read by one SELECT
//! into one chunk (a warning says so: it is held in memory whole).
//!
//! # Resume
//!
//! See [`Snapshot::start`].

mod error;
mod progress;
mod table;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as MyValue};

use cdc_event::{ChangeEvent, Event, Gtid, Op, Phase, Position, ServerFlavor, TableId};

use crate::binlog::schema::{load_collations, Collations};
use crate::{existing_tables, server_info, BinlogReaderConfig, SourceOptions, TableSelector};

pub use error::SnapshotError;
pub use progress::{KeyValue, SnapshotProgress, TableCursor};

use progress::describe_key;
use table::{plan_table, TablePlan};

/// Rows per chunk unless configured otherwise.
pub const DEFAULT_CHUNK_SIZE: usize = 10_000;

/// How long (seconds) MySQL's `FLUSH TABLES WITH READ LOCK` may wait for running statements.
pub const LOCK_WAIT_TIMEOUT_SECS: u32 = 10;

/// What [`Snapshot::start`] needs. Required values in [`SnapshotConfig::new`], the rest
/// through `with_*`.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    /// Rows per chunk (per SELECT and per [`Snapshot::next_chunk`] result); at least 1.
    pub chunk_size: usize,
    /// Logical source name stamped on every event.
    pub source_name: Arc<str>,
    /// The replica `server_id` of the binlog reader that continues after the snapshot (see
    /// [`Snapshot::reader_config`]). Snapshot events themselves carry server id 0, as the event
    /// model prescribes for reads.
    pub server_id: u32,
    pub selector: TableSelector,
}

impl SnapshotConfig {
    pub fn new(source_name: impl Into<Arc<str>>, server_id: u32, selector: TableSelector) -> Self {
        Self { chunk_size: DEFAULT_CHUNK_SIZE, source_name: source_name.into(), server_id, selector }
    }

    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }
}

/// The table being read.
struct Current {
    plan: TablePlan,
    /// Key of the last row returned; `None` before the first chunk.
    last_key: Option<Vec<MyValue>>,
}

/// An initial snapshot in progress. See the module docs.
pub struct Snapshot {
    /// The snapshot transaction's connection; `None` once every table is read and it ended.
    conn: Option<Conn>,
    config: SnapshotConfig,
    stream_from: Position,
    /// The snapshot position with the index of the last event returned.
    last: Position,
    collations: Collations,
    /// When this run's transaction started (the events' `commit_ts_ms`).
    ts_ms: i64,
    queue: VecDeque<TableId>,
    current: Option<Current>,
    done: Vec<TableId>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("last", &self.last)
            .field("current", &self.current.as_ref().map(|c| c.plan.table().to_string()))
            .field("queued", &self.queue.len())
            .field("done", &self.done.len())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Snapshot {
    /// Opens the snapshot transaction and lists the selected tables; no rows are read yet.
    ///
    /// With `resume`, the snapshot continues a crashed one: tables in `tables_done` are
    /// skipped, the table in progress continues after its last committed key, the rest are
    /// read whole — all in a NEW consistent-snapshot transaction (taken without any lock, at
    /// some later binlog position P2 ≥ P1), while [`stream_from`](Self::stream_from) and the
    /// event positions stay at the original P1, indexes continuing after the last committed
    /// one.
    ///
    /// Why this is still correct for a consumer that applies events as upserts and deletes
    /// keyed by primary key (with full row images, which pre-flight requires):
    ///
    /// * Rows already committed were read at P1; every change to them after P1 is in the
    ///   binlog after P1, which streaming replays — as for an uninterrupted snapshot.
    /// * A row read by the resumed run shows its state at P2, the after-image of the last
    ///   transaction T ≤ P2 that wrote it (T is in the binlog: a commit is binlogged before it
    ///   becomes visible). Streaming from P1 replays every change to that key after P1 — those
    ///   in (P1, P2], which rewrite the row with older after-images, then the later ones — so
    ///   the key ends at its last after-image in the binlog, its true final state. A row
    ///   deleted in (P1, P2] is not read and its replayed delete removes nothing; one inserted
    ///   there is read and then re-put by its replayed insert; both idempotent by key.
    /// * Between the resumed reads and the replay of (P1, P2] a key may briefly show an older
    ///   state than the snapshot gave it: the result converges, it is not a consistent
    ///   point-in-time view until streaming passes P2.
    /// * Chunk boundaries: the resumed run starts strictly after the last committed key (same
    ///   collation and numeric semantics as `ORDER BY`), so the boundary row is not read twice,
    ///   and the next one is not skipped; if it changed meanwhile, streaming covers it.
    pub async fn start(
        source: &SourceOptions,
        config: SnapshotConfig,
        resume: Option<SnapshotProgress>,
    ) -> Result<Self, SnapshotError> {
        if config.chunk_size == 0 {
            return Err(SnapshotError::Config { reason: "chunk_size must be at least 1".into() });
        }
        let mut conn = source.connect().await?;
        let info = server_info(&mut conn).await?;
        let collations = load_collations(&mut conn).await?;
        session_setup(&mut conn).await?;

        let taken = begin_snapshot(&mut conn, info.flavor, resume.is_none()).await?;
        let ts_ms = now_ms();
        let (last, mut done, cursor) = match resume {
            Some(progress) => {
                check_resume(&progress, info.flavor)?;
                if let Some((file, offset)) = &taken {
                    tracing::info!(
                        resumed_at = %progress.position, now = %format!("{file}:{offset}"),
                        "resuming the snapshot in a new transaction; positions stay at the original snapshot"
                    );
                }
                (progress.position, progress.tables_done, progress.current)
            }
            None => {
                let (file, offset) = taken.ok_or(SnapshotError::NoBinlogPosition { what: "snapshot start" })?;
                let gtid = snapshot_gtid(&mut conn, info.flavor, &file, offset).await;
                let position = Position { flavor: info.flavor, file, offset, gtid, phase: Phase::Snapshot, event_index: 0 };
                (position, Vec::new(), None)
            }
        };
        let mut stream_from = Position::stream(last.flavor, last.file.clone(), last.offset);
        stream_from.gtid = last.gtid.clone();

        let tables = existing_tables(&mut conn, &config.selector).await?;
        let mut queue: VecDeque<TableId> = tables
            .into_iter()
            .map(|t| TableId::new(t.database, t.table))
            .filter(|t| !done.contains(t))
            .collect();

        let mut current = None;
        if let Some(cursor) = cursor {
            match queue.iter().position(|t| *t == cursor.table) {
                Some(at) => {
                    queue.remove(at);
                    match plan_table(&mut conn, &cursor.table, &collations, config.chunk_size).await? {
                        Some(plan) => {
                            let last_key = resume_key(&plan, &cursor)?;
                            current = Some(Current { plan, last_key: Some(last_key) });
                        }
                        None => tracing::warn!(table = %cursor.table, "the table in progress no longer exists; skipped"),
                    }
                }
                None => {
                    tracing::warn!(table = %cursor.table, "the table in progress is no longer selected or gone; skipped");
                    done.push(cursor.table);
                }
            }
        }
        tracing::info!(
            position = %last, tables = queue.len() + usize::from(current.is_some()), chunk_size = config.chunk_size,
            "snapshot transaction open"
        );
        Ok(Self { conn: Some(conn), config, stream_from, last, collations, ts_ms, queue, current, done })
    }

    /// Where the binlog reader starts after the snapshot: the snapshot's file and offset
    /// (phase `stream`, index 0, the GTID position when known).
    pub fn stream_from(&self) -> &Position {
        &self.stream_from
    }

    /// A binlog reader configuration that continues exactly where the snapshot is consistent.
    pub fn reader_config(&self) -> BinlogReaderConfig {
        BinlogReaderConfig::new(
            self.config.server_id,
            self.config.source_name.clone(),
            self.config.selector.clone(),
            self.stream_from.file.clone(),
            self.stream_from.offset,
        )
    }

    /// The next chunk's [`Op::Read`] events (never empty); `None` once every table is read
    /// (the snapshot transaction is then ended). After an error the snapshot is unusable:
    /// restart from the last committed [`progress`](Self::progress).
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<Event>>, SnapshotError> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Ok(None) };
            let current = match self.current.take() {
                Some(current) => current,
                None => match self.queue.pop_front() {
                    None => {
                        self.finish().await?;
                        return Ok(None);
                    }
                    Some(table) => match plan_table(conn, &table, &self.collations, self.config.chunk_size).await? {
                        Some(plan) => {
                            if plan.key.is_empty() {
                                tracing::warn!(
                                    table = %table,
                                    "table has no primary key: read in one chunk, held in memory whole, \
                                     and not resumable part-way"
                                );
                            }
                            Current { plan, last_key: None }
                        }
                        None => {
                            tracing::warn!(table = %table, "table disappeared before it was read; skipped");
                            continue;
                        }
                    },
                },
            };
            let (sql, params) = current.plan.chunk_query(current.last_key.as_deref());
            let rows: Vec<mysql_async::Row> = match conn.exec(sql, params).await {
                Ok(rows) => rows,
                Err(source) => {
                    return Err(SnapshotError::Read {
                        table: current.plan.table().clone(),
                        after: describe_key(current.last_key.as_deref()),
                        source: Box::new(source),
                    })
                }
            };
            // Whole chunk converted before any state moves, so an error leaves progress at
            // the last chunk returned.
            let full = !current.plan.key.is_empty() && rows.len() >= self.config.chunk_size;
            let mut index = self.last.event_index;
            let mut last_key = None;
            let mut events = Vec::with_capacity(rows.len());
            for row in rows {
                let (after, key) = current.plan.convert(row)?;
                index = index.checked_add(1).ok_or(SnapshotError::TooManyRows { max: u32::MAX })?;
                let mut position = self.last.clone();
                position.event_index = index;
                events.push(Event::Change(ChangeEvent {
                    op: Op::Read,
                    schema: current.plan.schema.clone(),
                    before: None,
                    after: Some(after),
                    position,
                    commit_ts_ms: self.ts_ms,
                    tx_id: None,
                    source_name: self.config.source_name.clone(),
                    server_id: 0,
                }));
                last_key = Some(key);
            }
            self.last.event_index = index;
            let table = current.plan.table().clone();
            if full {
                self.current = Some(Current { plan: current.plan, last_key: last_key.or(current.last_key) });
            } else {
                self.done.push(table);
            }
            if !events.is_empty() {
                return Ok(Some(events));
            }
        }
    }

    /// How far the snapshot got: committable once every event returned so far is published.
    pub fn progress(&self) -> SnapshotProgress {
        let current = self.current.as_ref().and_then(|c| {
            c.last_key.as_ref().map(|key| TableCursor {
                table: c.plan.table().clone(),
                key_columns: c.plan.key_names(),
                last_key: key.iter().filter_map(KeyValue::from_mysql).collect(),
            })
        });
        SnapshotProgress { position: self.last.clone(), tables_done: self.done.clone(), current }
    }

    /// Whether every table has been read.
    pub fn is_finished(&self) -> bool {
        self.conn.is_none()
    }

    /// Ends the snapshot transaction early (it holds metadata locks on the tables read).
    pub async fn close(mut self) -> Result<(), SnapshotError> {
        self.finish().await
    }

    async fn finish(&mut self) -> Result<(), SnapshotError> {
        if let Some(mut conn) = self.conn.take() {
            // Read-only: COMMIT just releases the view and the metadata locks.
            conn.query_drop("COMMIT").await.map_err(|source| SnapshotError::Finish { source: Box::new(source) })?;
            conn.disconnect().await.map_err(|source| SnapshotError::Finish { source: Box::new(source) })?;
            tracing::info!(position = %self.last, tables = self.done.len(), "snapshot finished");
        }
        Ok(())
    }
}

/// Session settings of the snapshot connection.
async fn session_setup(conn: &mut Conn) -> Result<(), SnapshotError> {
    let steps: [(&'static str, &str); 4] = [
        // The consistency argument needs a repeatable view, whatever the server default is.
        ("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"),
        // TIMESTAMP keys round-trip, and UNIX_TIMESTAMP is exact, only in a zone without DST.
        ("SET time_zone", "SET time_zone = '+00:00'"),
        // Statement text and bound strings in utf8mb4; results NOT converted: character
        // values arrive as the bytes the binlog carries, decoded by the column's charset.
        ("SET NAMES", "SET NAMES utf8mb4"),
        ("SET character_set_results", "SET character_set_results = NULL"),
    ];
    for (what, sql) in steps {
        conn.query_drop(sql).await.map_err(|source| SnapshotError::Setup { what, source: Box::new(source) })?;
    }
    Ok(())
}

/// Starts the snapshot transaction; with `need_position`, returns the binlog position it is
/// consistent with (on MariaDB it is always available and returned).
async fn begin_snapshot(
    conn: &mut Conn,
    flavor: ServerFlavor,
    need_position: bool,
) -> Result<Option<(String, u64)>, SnapshotError> {
    const START: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT";
    let setup = |what: &'static str| move |source| SnapshotError::Setup { what, source: Box::new(source) };
    match flavor {
        ServerFlavor::MariaDb => {
            conn.query_drop(START).await.map_err(setup(START))?;
            let rows: Vec<(String, String)> =
                conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await.map_err(setup("SHOW STATUS LIKE 'binlog_snapshot_%'"))?;
            let get = |name: &str| rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
            let file = get("binlog_snapshot_file").filter(|f| !f.is_empty());
            let offset = get("binlog_snapshot_position").and_then(|p| p.parse::<u64>().ok());
            match (file, offset) {
                (Some(file), Some(offset)) => Ok(Some((file, offset))),
                _ => Err(SnapshotError::NoBinlogPosition { what: "binlog_snapshot_file/binlog_snapshot_position" }),
            }
        }
        ServerFlavor::MySql | ServerFlavor::OceanBase => {
            if !need_position {
                // A resumed snapshot keeps its original position: any later view will do.
                conn.query_drop(START).await.map_err(setup(START))?;
                return Ok(None);
            }
            conn.query_drop(format!("SET SESSION lock_wait_timeout = {LOCK_WAIT_TIMEOUT_SECS}"))
                .await
                .map_err(setup("SET SESSION lock_wait_timeout"))?;
            conn.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(setup("FLUSH TABLES WITH READ LOCK"))?;
            let locked = async {
                conn.query_drop(START).await.map_err(setup(START))?;
                master_status(conn).await
            }
            .await;
            // Released whatever happened; UNLOCK TABLES after FTWRL does not end the transaction.
            let unlocked = conn.query_drop("UNLOCK TABLES").await.map_err(setup("UNLOCK TABLES"));
            let position = locked?;
            unlocked?;
            position.map(Some).ok_or(SnapshotError::NoBinlogPosition { what: "SHOW MASTER STATUS" })
        }
    }
}

/// `SHOW MASTER STATUS`, or its MySQL 8.4 name `SHOW BINARY LOG STATUS`.
async fn master_status(conn: &mut Conn) -> Result<Option<(String, u64)>, SnapshotError> {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(row) => row,
        Err(_) => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            
            .map_err(|source| SnapshotError::Setup { what: "SHOW BINARY LOG STATUS", source: Box::new(source) })?,
    };
    Ok(row.and_then(|row| Some((row.get::<Option<String>, _>(0)??, row.get::<Option<u64>, _>(1)??))))
}

/// MariaDB: the GTID of the last transaction before the snapshot, when the server has one
/// replication domain (a position holds one GTID). Best effort: only for readability and
/// future GTID-based starts; the file and offset are what the hand-off uses.
async fn snapshot_gtid(conn: &mut Conn, flavor: ServerFlavor, file: &str, offset: u64) -> Option<Gtid> {
    if flavor != ServerFlavor::MariaDb {
        return None;
    }
    let text: Option<Option<String>> = match conn.exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, offset)).await {
        Ok(text) => text,
        Err(e) => {
            tracing::debug!(error = %e, "BINLOG_GTID_POS failed; snapshot position without GTID");
            return None;
        }
    };
    let text = text.flatten()?;
    if text.contains(',') {
        return None;
    }
    text.trim().parse().ok()
}

fn check_resume(progress: &SnapshotProgress, flavor: ServerFlavor) -> Result<(), SnapshotError> {
    let position = &progress.position;
    let reason = if position.phase != Phase::Snapshot {
        Some(format!("position {position} is not a snapshot position"))
    } else if position.flavor != flavor {
        Some(format!("position {position} is of a {} server, this one is {flavor}", position.flavor))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SnapshotError::Resume { reason }),
        None => Ok(()),
    }
}

/// The bound values of a committed cursor, refusing a table whose key changed since.
fn resume_key(plan: &TablePlan, cursor: &TableCursor) -> Result<Vec<MyValue>, SnapshotError> {
    let resume_err = |reason: String| SnapshotError::Resume { reason: format!("table {}: {reason}", cursor.table) };
    let names = plan.key_names();
    if names != cursor.key_columns || cursor.last_key.len() != names.len() {
        return Err(resume_err(format!(
            "the progress is keyed by {:?} ({} values) but the primary key is now {names:?}",
            cursor.key_columns,
            cursor.last_key.len()
        )));
    }
    cursor.last_key.iter().map(|k| k.to_mysql().map_err(&resume_err)).collect()
}
