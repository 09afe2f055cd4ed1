//! The hand-off between capture and the rest of the pipeline.
//!
//! A [`Publisher`] accepts batches of events in order and returns only once they are durable
//! on the bus: capture advances its checkpoint only past events whose `publish` returned
//! `Ok`, so a crash replays at most the unacknowledged tail (which downstream drops by
//! position). DataHub (remote or embedded) implements this trait in its own crate; this one
//! holds the two buses that need no server: [`MemoryBus`] for tests and [`JsonLinesBus`] for
//! looking at what capture produces.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cdc_event::Event;

/// Failures of a bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    #[error("cannot write to the event file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("event at {position} cannot be encoded: {reason}")]
    Encode { position: String, reason: String },
    #[error("line {line} of {path} is not a valid event: {reason}")]
    Decode { path: PathBuf, line: usize, reason: String },
}

/// Accepts events in order; `publish` returns once the batch is durable.
pub trait Publisher: Send {
    fn publish(&mut self, events: &[Event]) -> impl Future<Output = Result<(), BusError>> + Send;
}

/// Events kept in memory, shared between clones: the test double of the bus.
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    events: Arc<Mutex<Vec<Event>>>,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything published so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub fn len(&self) -> usize {
        self.events.lock().map(|e| e.len()).unwrap_or_else(|poisoned| poisoned.into_inner().len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Publisher for MemoryBus {
    async fn publish(&mut self, events: &[Event]) -> Result<(), BusError> {
        let mut guard = self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.extend_from_slice(events);
        Ok(())
    }
}

/// One JSON object per line, appended to a file and fsynced per batch. Row changes are
/// Debezium envelopes (`{"schema":..,"payload":..}`), readable by any Debezium consumer;
/// schema changes and heartbeats are `{"schemaChange": {..}}` / `{"heartbeat": {..}}`.
#[derive(Debug)]
pub struct JsonLinesBus {
    path: PathBuf,
    file: File,
    buffer: Vec<u8>,
}

impl JsonLinesBus {
    /// Opens (creating or appending to) the file. A torn last line, left by a crash in the
    /// middle of a `publish` that therefore never returned, is cut off: its events were never
    /// acknowledged and the publisher sends them again.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BusError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| BusError::Io { path: path.clone(), source };
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io)?;
        let bytes = std::fs::read(&path).map_err(io)?;
        if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
            tracing::warn!(path = %path.display(), cut = bytes.len() - keep, "cut a torn last line left by a crash");
        }
        Ok(Self { path, file, buffer: Vec::new() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn encode(event: &Event, out: &mut Vec<u8>) -> Result<(), BusError> {
        let document = match event {
            Event::Change(change) => cdc_event::debezium::to_json(change).map_err(|e| BusError::Encode {
                position: change.position.to_string(),
                reason: e.to_string(),
            })?,
            Event::SchemaChange(change) => serde_json::json!({"schemaChange": {
                "database": change.database,
                "table": change.table.as_ref().map(ToString::to_string),
                "ddl": change.ddl,
                "schemaVersion": change.schema.as_ref().map(|s| s.version),
                "position": change.position.to_string(),
                "ts_ms": change.commit_ts_ms,
                "source": &*change.source_name,
            }}),
            Event::Heartbeat(beat) => serde_json::json!({"heartbeat": {
                "position": beat.position.to_string(),
                "ts_ms": beat.ts_ms,
                "source": &*beat.source_name,
            }}),
        };
        serde_json::to_writer(&mut *out, &document).map_err(|e| BusError::Encode {
            position: event.position().to_string(),
            reason: e.to_string(),
        })?;
        out.push(b'\n');
        Ok(())
    }

    /// Reads back the row changes of a file written by this bus (other lines are skipped).
    pub fn read_changes(path: impl AsRef<Path>) -> Result<Vec<cdc_event::ChangeEvent>, BusError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| BusError::Io { path: path.to_path_buf(), source })?;
        let mut changes = Vec::new();
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| BusError::Io { path: path.to_path_buf(), source })?;
            let decode_error = |reason: String| BusError::Decode { path: path.to_path_buf(), line: index + 1, reason };
            let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| decode_error(e.to_string()))?;
            if value.get("payload").is_some() {
                changes.push(cdc_event::debezium::from_json(&value).map_err(|e| decode_error(e.to_string()))?);
            }
        }
        Ok(changes)
    }
}

impl Publisher for JsonLinesBus {
    async fn publish(&mut self, events: &[Event]) -> Result<(), BusError> {
        self.buffer.clear();
        for event in events {
            Self::encode(event, &mut self.buffer)?;
        }
        let io = |source| BusError::Io { path: self.path.clone(), source };
        // Blocking file I/O in an async fn: batches are small and this bus is for debugging;
        // the production buses (DataHub) do network I/O.
        self.file.write_all(&self.buffer).map_err(io)?;
        self.file.sync_data().map_err(|source| BusError::Io { path: self.path.clone(), source })?;
        Ok(())
    }
}
