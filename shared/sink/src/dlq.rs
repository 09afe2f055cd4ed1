//! The dead-letter queue: records that could not be converted, one JSON line each.
//!
//! Dead-letter files follow the same protocol as data files (one in-progress file per shard,
//! closed and fsynced at a checkpoint, renamed to `{dlq_dir}/part-{shard}-{first}-{last}.jsonl`
//! on commit), so a dead-lettered record is committed exactly once, together with the offsets
//! that cover it, and never lost or duplicated by a crash.
//!
//! A line holds: `shard`, `offset`, `source`, `position`, `table`, `schema_version`, `op`,
//! `stage` (`partition`, `schema` or `append`), `error` (the reason), `attempts`, `time`
//! (RFC 3339, UTC) and `time_ms`, and the event as `record` (the Debezium JSON envelope). When
//! the event cannot be encoded as Debezium JSON either, `record` is null, `record_error` says
//! why, and `record_debug` holds the event's Rust debug text so nothing is lost.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use cdc_event::ChangeEvent;
use cdc_state::PendingFile;
use serde_json::json;

use crate::io::RetryWriter;
use crate::layout::escape_component;
use crate::sink::{Files, NewFile};
use crate::SinkError;

/// One rejected record and why.
pub(crate) struct DeadLetter<'a> {
    pub shard: &'a str,
    pub offset: u64,
    pub event: &'a ChangeEvent,
    pub stage: &'static str,
    pub error: &'a str,
    pub attempts: u32,
}

/// The in-progress dead-letter file of one shard.
pub(crate) struct DlqFile {
    shard: Arc<str>,
    staging_key: String,
    path: PathBuf,
    handle: File,
    out: BufWriter<RetryWriter<File>>,
    first_offset: Option<u64>,
    last_offset: u64,
    count: u64,
    bytes: u64,
    line: Vec<u8>,
}

impl DlqFile {
    pub(crate) fn create(files: &mut Files, shard: Arc<str>) -> Result<Self, SinkError> {
        let NewFile {
            staging_key,
            path,
            handle,
            out,
        } = files.create("dlq.jsonl")?;
        Ok(Self {
            shard,
            staging_key,
            path,
            handle,
            out,
            first_offset: None,
            last_offset: 0,
            count: 0,
            bytes: 0,
            line: Vec::new(),
        })
    }

    pub(crate) fn append(&mut self, letter: &DeadLetter<'_>) -> Result<(), SinkError> {
        let event = letter.event;
        let now = chrono::Utc::now();
        let mut document = json!({
            "shard": letter.shard,
            "offset": letter.offset,
            "source": &*event.source_name,
            "position": event.position.to_string(),
            "table": event.schema.table.to_string(),
            "schema_version": event.schema.version,
            "op": event.op.code(),
            "stage": letter.stage,
            "error": letter.error,
            "attempts": letter.attempts,
            "time": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "time_ms": now.timestamp_millis(),
        });
        match cdc_event::debezium::to_json(event) {
            Ok(record) => document["record"] = record,
            Err(error) => {
                document["record"] = serde_json::Value::Null;
                document["record_error"] = json!(error.to_string());
                document["record_debug"] = json!(format!("{event:?}"));
            }
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, &document).map_err(|source| {
            SinkError::DeadLetterEncode {
                shard: letter.shard.to_owned(),
                offset: letter.offset,
                source,
            }
        })?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(|source| SinkError::Io {
                action: "write dead-letter record to",
                path: self.path.clone(),
                attempts: 1,
                source,
            })?;
        self.first_offset.get_or_insert(letter.offset);
        self.last_offset = letter.offset;
        self.count += 1;
        self.bytes += self.line.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs the file; returns it as pending under its final name.
    pub(crate) fn close(self, files: &Files) -> Result<PendingFile, SinkError> {
        let Self {
            shard,
            staging_key,
            path,
            handle,
            out,
            first_offset,
            last_offset,
            count,
            bytes,
            ..
        } = self;
        let policy = files.options.retry;
        out.into_inner().map_err(|error| SinkError::Io {
            action: "flush dead-letter file",
            path: path.clone(),
            attempts: 1,
            source: error.into_error(),
        })?;
        policy.run("fsync dead-letter file", &path, || handle.sync_all())?;
        let mut final_key = format!("{}/part-", files.options.dlq_dir);
        escape_component(&shard, &mut final_key);
        let first = first_offset.unwrap_or(last_offset);
        final_key.push_str(&format!("-{first}-{last_offset}.jsonl"));
        Ok(PendingFile {
            staging_key,
            final_key,
            size_bytes: bytes,
            record_count: count,
            upload_id: None,
            parts: Vec::new(),
        })
    }
}
