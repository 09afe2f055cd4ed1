//! The transform stage in front of the sink (`TRANSFORM_CONFIG`), and its dead letters.
//!
//! An event that transforms goes to the sink as usual. One the rules filter out is consumed:
//! its offset is still checkpointed, so it is not read again. One that cannot be transformed
//! is written to a dead-letter line with stage `transform` and the reason, exactly like the
//! sink's own dead letters (same fields, same `dlq/` directory, same two-phase commit), so
//! `file-sink replay` finds it: the line keeps the event as it was *before* the transform, and
//! replay transforms it with the (fixed) rules.
//!
//! cdc-sink has no public call to dead-letter a record with a stage of the caller's, so this
//! module writes its own in-progress files and rides on the sink's checkpoint: at a
//! checkpoint its closed files join the sink state's pending files (committed by
//! `FileSink::commit` and `FileSink::recover` like the sink's), the offsets it consumed are
//! merged into the state's offsets, and the positions it dead-lettered into the state's
//! replay marks. A crash before the checkpoint loses only in-progress files, which recovery
//! deletes and whose records are read again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};


use anyhow::Context;
use cdc_event::{ChangeEvent, Position};
use cdc_sink::{replay_mark_key, SinkOptions, INPROGRESS_DIR};
use cdc_state::{PendingFile, ShardOffsets, SinkState};
use cdc_transform::{TransformError, TransformOptions, Transformer, DLQ_STAGE};
use serde_json::json;

/// Loads and validates the rules named by `transform.config`, or `None` when unset.
pub fn load(config: &cdc_config::Config) -> anyhow::Result<Option<Transformer>> {
    let Some(path) = &config.transform.config else {
        return Ok(None);
    };
    let mut options = TransformOptions::new();
    if let Some(salt) = &config.transform.hash_salt {
        options = options.with_hash_salt(salt.expose().as_bytes());
    }
    let loaded = Transformer::load(path, &options).map_err(|e| anyhow::anyhow!("{e}"))?;
    for warning in &loaded.warnings {
        tracing::warn!(rules = %path.display(), "{warning}");
    }
    tracing::info!(rules = %path.display(), rules_count = loaded.transformer.spec().rules.len(), "transform rules loaded");
    Ok(Some(loaded.transformer))
}

/// What the stage did with one record.
pub enum Staged {
    /// Give this (transformed) event to the sink.
    Write(ChangeEvent),
    /// The rules filter it out (or its table); its offset is consumed.
    Filtered,
    /// It could not be transformed: written to the dead-letter queue.
    DeadLettered,
    /// Already handled before (a redelivery or a replay of a dead-lettered event): dropped.
    Duplicate,
}

pub struct TransformStage {
    transformer: Transformer,
    dlq: DlqFiles,
    /// Next offset per shard of the records this stage consumed without the sink seeing them.
    consumed: ShardOffsets,
    /// Next offset per shard of every record seen, to drop redeliveries before they reach
    /// the transform (the sink drops them too, but a failing one would be dead-lettered twice).
    seen: HashMap<Arc<str>, u64>,
    /// Highest position dead-lettered per replay-mark key (`source@shard`).
    marks: HashMap<String, Position>,
}

impl TransformStage {
    /// A stage writing dead letters under the sink's output root; `resume` is the recovered
    /// checkpoint's offsets.
    pub fn new(transformer: Transformer, options: &SinkOptions, resume: &ShardOffsets) -> Self {
        let seen = resume.iter().map(|(shard, next)| (Arc::from(shard), next)).collect();
        TransformStage { transformer, dlq: DlqFiles::new(options), consumed: ShardOffsets::new(), seen, marks: HashMap::new() }
    }

    /// Transforms one record read at (`shard`, `offset`). `committed` is the sink's last
    /// committed state (its replay marks drop a capture's re-publication of an event that was
    /// dead-lettered before a restart). Errors are I/O on the dead-letter file: fatal.
    pub fn apply(&mut self, committed: &SinkState, shard: &Arc<str>, offset: u64, event: ChangeEvent) -> anyhow::Result<Staged> {
        let next = self.seen.entry(shard.clone()).or_insert(0);
        if offset < *next {
            return Ok(Staged::Duplicate);
        }
        *next = offset.saturating_add(1);
        match self.transformer.apply(&event) {
            Ok(Some(out)) => Ok(Staged::Write(out)),
            Ok(None) => {
                self.consumed.advance(shard.to_string(), offset.saturating_add(1));
                Ok(Staged::Filtered)
            }
            Err(error) => {
                self.consumed.advance(shard.to_string(), offset.saturating_add(1));
                let key = replay_mark_key(&event.source_name, shard);
                let committed_mark = committed.committed_positions.get(&key).and_then(|p| p.parse::<Position>().ok());
                let is_replay = self.marks.get(&key).into_iter().chain(committed_mark.as_ref()).any(|mark| event.position <= *mark);
                if is_replay {
                    return Ok(Staged::Duplicate);
                }
                tracing::warn!(%shard, offset, table = %event.schema.table, error = %error, "record failed the transform; sent to the dead-letter queue");
                self.dlq.append(shard, offset, &event, &error)?;
                self.marks.insert(key, event.position.clone());
                Ok(Staged::DeadLettered)
            }
        }
    }

    /// Adds this stage's part to the sink's checkpoint state: closed dead-letter files as
    /// pending, consumed offsets, dead-lettered positions as replay marks.
    pub fn prepare(&mut self, state: &mut SinkState) -> anyhow::Result<()> {
        self.dlq.close_all()?;
        state.pending.extend(self.dlq.pending.iter().cloned());
        for (shard, next) in self.consumed.iter() {
            state.offsets.advance(shard, next);
        }
        for (key, position) in &self.marks {
            let newer = match state.committed_positions.get(key).and_then(|p| p.parse::<Position>().ok()) {
                Some(existing) => *position > existing,
                None => true,
            };
            if newer {
                state.committed_positions.insert(key.clone(), position.to_string());
            }
        }
        Ok(())
    }

    /// After `FileSink::commit(state)`: the files it committed are no longer pending.
    pub fn committed(&mut self, state: &SinkState) {
        self.dlq.pending.retain(|p| !state.pending.iter().any(|c| c.staging_key == p.staging_key));
    }
}

/// One open dead-letter file of a shard.
struct OpenDlq {
    staging_key: String,
    path: PathBuf,
    out: BufWriter<File>,
    first: u64,
    last: u64,
    count: u64,
    bytes: u64,
}

/// The stage's in-progress dead-letter files, one per shard, and the closed ones not yet
/// committed.
struct DlqFiles {
    root: PathBuf,
    dlq_dir: String,
    run_id: String,
    next_seq: u64,
    open: HashMap<Arc<str>, OpenDlq>,
    pending: Vec<PendingFile>,
}

impl DlqFiles {
    fn new(options: &SinkOptions) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        DlqFiles {
            root: options.root().to_path_buf(),
            dlq_dir: options.dlq_dir().to_owned(),
            // Distinct from the sink's staging names (`{nanos}-{pid}-{seq}`) by the `t`.
            run_id: format!("{nanos:x}-{}-t", std::process::id()),
            next_seq: 0,
            open: HashMap::new(),
            pending: Vec::new(),
        }
    }

    fn append(&mut self, shard: &Arc<str>, offset: u64, event: &ChangeEvent, error: &TransformError) -> anyhow::Result<()> {
        if !self.open.contains_key(shard) {
            self.next_seq += 1;
            let name = format!("{}{:06}.dlq.jsonl", self.run_id, self.next_seq);
            let path = self.root.join(INPROGRESS_DIR).join(&name);
            let file = OpenOptions::new().write(true).create_new(true).open(&path).with_context(|| format!("creating {}", path.display()))?;
            self.open.insert(
                shard.clone(),
                OpenDlq { staging_key: format!("{INPROGRESS_DIR}/{name}"), path, out: BufWriter::new(file), first: offset, last: offset, count: 0, bytes: 0 },
            );
        }
        let Some(file) = self.open.get_mut(shard) else {
            anyhow::bail!("dead-letter file of shard {shard} vanished");
        };
        let now = chrono::Utc::now();
        let mut document = json!({
            "shard": &**shard,
            "offset": offset,
            "source": &*event.source_name,
            "position": event.position.to_string(),
            "table": event.schema.table.to_string(),
            "schema_version": event.schema.version,
            "op": event.op.code(),
            "stage": DLQ_STAGE,
            "error": error.to_string(),
            "error_kind": error.kind(),
            "attempts": 1,
            "time": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "time_ms": now.timestamp_millis(),
        });
        // The event as read, before any rule: replay transforms it again with fixed rules.
        match cdc_event::debezium::to_json(event) {
            Ok(record) => document["record"] = record,
            Err(e) => {
                document["record"] = serde_json::Value::Null;
                document["record_error"] = json!(e.to_string());
                document["record_debug"] = json!(format!("{event:?}"));
            }
        }
        let mut line = serde_json::to_vec(&document).context("encoding a dead-letter line")?;
        line.push(b'\n');
        file.out.write_all(&line).with_context(|| format!("writing {}", file.path.display()))?;
        file.last = offset;
        file.count += 1;
        file.bytes += line.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs every open file and makes it pending under its final name.
    fn close_all(&mut self) -> anyhow::Result<()> {
        if self.open.is_empty() {
            return Ok(());
        }
        for (shard, file) in self.open.drain() {
            let OpenDlq { staging_key, path, out, first, last, count, bytes } = file;
            let handle = out.into_inner().map_err(|e| e.into_error()).with_context(|| format!("flushing {}", path.display()))?;
            handle.sync_all().with_context(|| format!("fsync {}", path.display()))?;
            // `.transform` keeps the name apart from the sink's own dead letters of the shard.
            let final_key = format!("{}/part-{}-{first}-{last}.transform.jsonl", self.dlq_dir, escape(&shard));
            self.pending.push(PendingFile { staging_key, final_key, size_bytes: bytes, record_count: count, upload_id: None, parts: Vec::new() });
        }
        // The new directory entries must be durable before a checkpoint names them.
        sync_dir(&self.root.join(INPROGRESS_DIR))
    }
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync directory {}", dir.display()))
}

/// A shard id as one safe file-name component (DataHub's are decimal numbers anyway).
fn escape(shard: &str) -> String {
    shard
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_string() } else { format!("%{:02X}", c as u32 & 0xff) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_become_safe_file_name_parts() {
        assert_eq!(escape("12"), "12");
        assert_eq!(escape("a-b/c"), "a%2Db%2Fc");
    }
}
