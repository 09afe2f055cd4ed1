//! Replaying the dead-letter queue: committed dead letters back into the sink, exactly once.
//!
//! A replay is three steps around the sink's usual two-phase commit:
//!
//! 1. [`FileSink::replay_dead_letters`] **claims** every committed dead-letter file
//!    (`{dlq_dir}/part-*.jsonl`; never `.inprogress/`) by renaming it to
//!    `{dlq_dir}/replaying/{base:020}-{name}`, where `base` is the replay offset of its first
//!    line, then writes each line's event (decoded from its Debezium envelope, optionally
//!    corrected by a hook) as a [`Record`] of shard [`REPLAY_SHARD`] at offset `base + line
//!    index`. Files claimed by an earlier, interrupted replay are replayed again with the
//!    offsets in their names.
//! 2. The caller takes a checkpoint as usual: [`FileSink::prepare_checkpoint`], save it,
//!    [`FileSink::commit`]. The replayed rows become visible as normal data files named
//!    `part-dlq-replay-{first}-{last}.{ext}`; a record that fails again goes to a new
//!    dead-letter file of shard `dlq-replay`, to be replayed another time.
//! 3. [`FileSink::finish_replay`] moves the claimed files whose offsets the committed
//!    checkpoint covers to `{dlq_dir}/replayed/`, so the next replay does not see them.
//!
//! Why this is exactly once: the replay offsets of a line are fixed when its file is claimed
//! (they are in the file name), and the sink drops a record below the next offset of its
//! shard as a redelivery. A crash before the checkpoint replays the claimed files with the same
//! offsets into a sink recovered from the previous checkpoint; a crash after the commit but
//! before step 3 replays them into a sink whose checkpoint already covers those offsets, so
//! every line is dropped, and step 3 then moves them.
//!
//! The position high-water marks do not apply to [`REPLAY_SHARD`]: dead letters of several
//! shards (and of several replays) interleave in position, so a per-shard mark would drop
//! genuine rows. The original shard's mark still drops a re-delivery of the original event.
//!
//! A line whose event cannot be decoded (its `record` is null because Debezium JSON refused
//! the event too) is replayed only if the hook builds an event for it; otherwise it is
//! reported in [`ReplayReport::skipped`] and stays, unreplayed, in its file under `replayed/`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cdc_event::ChangeEvent;
use serde_json::Value as Json;

use crate::io::{create_dir_durable, sync_dir};
use crate::{FileSink, Record, SinkError, SinkOptions, WriteOutcome};

/// The shard id replayed dead letters are written under (its own offsets in the checkpoint).
pub const REPLAY_SHARD: &str = "dlq-replay";
/// Under the dead-letter directory: files claimed by a replay not yet finished.
pub const REPLAYING_DIR: &str = "replaying";
/// Under the dead-letter directory: files whose replay is committed.
pub const REPLAYED_DIR: &str = "replayed";

/// One line of a committed dead-letter file.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    /// The file, relative to the output root (e.g. `dlq/part-s0-5-5.jsonl`).
    pub file: String,
    /// 1-based line number in `file`.
    pub line: u64,
    /// Shard and offset the record was originally read from.
    pub shard: String,
    pub offset: u64,
    /// Why it was rejected: stage (`partition`, `schema`, `append`) and reason.
    pub stage: String,
    pub error: String,
    pub attempts: u64,
    /// The whole JSON line.
    pub document: Json,
    /// The event decoded from `record` (the Debezium envelope), or why it cannot be.
    pub event: Result<ChangeEvent, String>,
}

impl DeadLetterRecord {
    /// The hook that replays each event as it was recorded (for causes fixed outside the
    /// event: sink configuration, schema, code).
    pub fn as_recorded(&self) -> Option<ChangeEvent> {
        self.event.as_ref().ok().cloned()
    }
}

/// What [`FileSink::replay_dead_letters`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// The claimed files replayed, relative to the root (under `{dlq_dir}/replaying/`).
    pub files: Vec<String>,
    /// Lines read.
    pub lines: u64,
    /// Written as rows (committed with the next checkpoint).
    pub replayed: u64,
    /// Failed again: written to a new dead-letter file.
    pub dead_lettered_again: u64,
    /// Dropped because the committed checkpoint already covers them (an earlier replay that
    /// stopped before [`FileSink::finish_replay`]).
    pub already_replayed: u64,
    /// `file:line` and why, for lines not replayed (undecodable, or refused by the hook).
    pub skipped: Vec<(String, String)>,
}

/// Reads every committed dead-letter file directly in `{root}/{dlq_dir}/` (not `.inprogress/`,
/// not `replaying/` or `replayed/`), in file-name order, one entry per line.
pub fn read_dead_letters(options: &SinkOptions) -> Result<Vec<DeadLetterRecord>, SinkError> {
    let dlq = options.root().join(options.dlq_dir());
    let mut out = Vec::new();
    for name in list_jsonl(options, &dlq)? {
        let key = format!("{}/{name}", options.dlq_dir());
        out.extend(read_file(options, &dlq.join(&name), &key)?);
    }
    Ok(out)
}

/// `*.jsonl` regular files directly in `dir`, sorted; none if `dir` does not exist.
fn list_jsonl(options: &SinkOptions, dir: &Path) -> Result<Vec<String>, SinkError> {
    let entries = options
        .retry_policy()
        .run("list", dir, || match fs::read_dir(dir) {
            Ok(entries) => entries.collect::<io::Result<Vec<_>>>(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        })?;
    let mut names: Vec<String> = entries
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".jsonl") && !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

fn read_file(
    options: &SinkOptions,
    path: &Path,
    key: &str,
) -> Result<Vec<DeadLetterRecord>, SinkError> {
    let text = options
        .retry_policy()
        .run("read dead-letter file", path, || fs::read_to_string(path))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, line)| parse_line(key, i as u64 + 1, line))
        .collect())
}

fn parse_line(file: &str, line: u64, text: &str) -> DeadLetterRecord {
    let document: Json = serde_json::from_str(text).unwrap_or(Json::Null);
    let field = |name: &str| document[name].as_str().unwrap_or_default().to_owned();
    let event = if document.is_null() {
        Err("the line is not JSON".to_owned())
    } else {
        match &document["record"] {
            Json::Null => Err(format!(
                "no Debezium envelope recorded: {}",
                document["record_error"]
                    .as_str()
                    .unwrap_or("record is null")
            )),
            record => cdc_event::debezium::from_json(record).map_err(|e| e.to_string()),
        }
    };
    DeadLetterRecord {
        file: file.to_owned(),
        line,
        shard: field("shard"),
        offset: document["offset"].as_u64().unwrap_or_default(),
        stage: field("stage"),
        error: field("error"),
        attempts: document["attempts"].as_u64().unwrap_or_default(),
        event,
        document,
    }
}

/// A claimed file: `{base:020}-{original name}` with its line count.
struct Claimed {
    name: String,
    base: u64,
    lines: u64,
}

fn parse_claimed(name: &str) -> Option<u64> {
    let (base, rest) = name.split_once('-')?;
    (base.len() == 20 && !rest.is_empty())
        .then(|| base.parse().ok())
        .flatten()
}

fn count_lines(options: &SinkOptions, path: &Path) -> Result<u64, SinkError> {
    let text = options
        .retry_policy()
        .run("read dead-letter file", path, || fs::read_to_string(path))?;
    Ok(text.lines().count() as u64)
}

fn list_claimed(options: &SinkOptions, dir: &Path) -> Result<Vec<Claimed>, SinkError> {
    let mut claimed = Vec::new();
    for name in list_jsonl(options, dir)? {
        let Some(base) = parse_claimed(&name) else {
            continue;
        };
        let lines = count_lines(options, &dir.join(&name))?;
        claimed.push(Claimed { name, base, lines });
    }
    claimed.sort_by_key(|c| c.base);
    Ok(claimed)
}

impl FileSink {
    /// Dead letters are claimed and moved as committed local files: an object store's sink
    /// has none under its staging root.
    fn require_local_output(&self) -> Result<(), SinkError> {
        if self.local_root().is_some() {
            Ok(())
        } else {
            Err(SinkError::Config {
                option: "dlq",
                reason: format!(
                    "replaying dead letters needs a local output directory; {} is an object store",
                    self.location()
                ),
            })
        }
    }

    /// Step 1 of a replay (see [`crate::replay`]): claims the committed dead-letter files and
    /// writes their events through this sink as shard [`REPLAY_SHARD`]. `fix` gets each line
    /// and returns the event to write (`None` skips the line; [`DeadLetterRecord::as_recorded`]
    /// replays it unchanged). Then checkpoint and commit as usual, then
    /// [`finish_replay`](Self::finish_replay).
    pub fn replay_dead_letters(
        &mut self,
        mut fix: impl FnMut(&DeadLetterRecord) -> Option<ChangeEvent>,
    ) -> Result<ReplayReport, SinkError> {
        // `write` checks the same, but claiming must not happen on an unusable sink either.
        self.write_checks()?;
        self.require_local_output()?;
        let options = self.options().clone();
        let policy = options.retry_policy();
        let dlq = options.root().join(options.dlq_dir());
        let replaying = dlq.join(REPLAYING_DIR);

        // Claim: fix the offsets of every new committed dead-letter file in its name.
        let mut next = self.next_offset(REPLAY_SHARD).unwrap_or(0);
        for claimed in list_claimed(&options, &replaying)? {
            next = next.max(claimed.base + claimed.lines);
        }
        let fresh = list_jsonl(&options, &dlq)?;
        if !fresh.is_empty() {
            create_dir_durable(&policy, &replaying)?;
            for name in &fresh {
                let from = dlq.join(name);
                let lines = count_lines(&options, &from)?;
                let to = replaying.join(format!("{next:020}-{name}"));
                policy.run("claim dead-letter file", &to, || fs::rename(&from, &to))?;
                next += lines;
            }
            sync_dir(&policy, &replaying)?;
            sync_dir(&policy, &dlq)?;
        }

        let mut report = ReplayReport::default();
        for claimed in list_claimed(&options, &replaying)? {
            let key = format!("{}/{REPLAYING_DIR}/{}", options.dlq_dir(), claimed.name);
            for letter in read_file(&options, &replaying.join(&claimed.name), &key)? {
                report.lines += 1;
                let offset = claimed.base + letter.line - 1;
                let Some(event) = fix(&letter) else {
                    let reason = match &letter.event {
                        Err(error) => error.clone(),
                        Ok(_) => "refused by the replay hook".to_owned(),
                    };
                    tracing::warn!(file = %letter.file, line = letter.line, %reason, "dead letter not replayed");
                    report
                        .skipped
                        .push((format!("{}:{}", letter.file, letter.line), reason));
                    continue;
                };
                match self.write(Record::new(REPLAY_SHARD, offset, event))? {
                    WriteOutcome::Appended => report.replayed += 1,
                    WriteOutcome::DeadLettered => report.dead_lettered_again += 1,
                    WriteOutcome::RedeliveryDropped | WriteOutcome::DuplicateDropped => {
                        report.already_replayed += 1
                    }
                }
            }
            // Skipped trailing lines are consumed too, so the checkpoint covers the file.
            self.skip_to(REPLAY_SHARD, claimed.base + claimed.lines);
            report.files.push(key);
        }
        tracing::info!(
            files = report.files.len(),
            replayed = report.replayed,
            again = report.dead_lettered_again,
            already = report.already_replayed,
            skipped = report.skipped.len(),
            "dead letters replayed"
        );
        Ok(report)
    }

    /// Step 3 of a replay: moves each claimed file whose offsets the last committed
    /// checkpoint covers to `{dlq_dir}/replayed/` (idempotent). Returns the files moved,
    /// relative to the root.
    pub fn finish_replay(&mut self) -> Result<Vec<String>, SinkError> {
        self.require_local_output()?;
        let options = self.options().clone();
        let policy = options.retry_policy();
        let dlq = options.root().join(options.dlq_dir());
        let replaying = dlq.join(REPLAYING_DIR);
        let replayed = dlq.join(REPLAYED_DIR);
        let committed = self.committed().offsets.get(REPLAY_SHARD).unwrap_or(0);
        let mut moved = Vec::new();
        for claimed in list_claimed(&options, &replaying)? {
            if claimed.base + claimed.lines > committed {
                continue;
            }
            create_dir_durable(&policy, &replayed)?;
            let to: PathBuf = replayed.join(&claimed.name);
            let from = replaying.join(&claimed.name);
            policy.run("move replayed dead-letter file", &to, || {
                fs::rename(&from, &to)
            })?;
            moved.push(format!(
                "{}/{REPLAYED_DIR}/{}",
                options.dlq_dir(),
                claimed.name
            ));
        }
        if !moved.is_empty() {
            sync_dir(&policy, &replayed)?;
            sync_dir(&policy, &replaying)?;
        }
        Ok(moved)
    }
}
