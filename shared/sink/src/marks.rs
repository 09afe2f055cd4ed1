//! The replay high-water marks: per (source, shard), the highest position written.
//!
//! Why per shard and not per source: a publisher spreads one source's events over the bus
//! shards by a hash of table and primary key, so per-key order holds within a shard but the
//! positions of two shards interleave. A single per-source mark would then drop every event
//! of a shard that lags behind another shard of the same source. Within one shard the
//! source's positions only grow, so the per-(source, shard) mark is exact: anything at or
//! below it in the same shard is a replay (capture re-publishing after a restart, routed to
//! the same shard because routing is deterministic).
//!
//! In a checkpoint (`SinkState::committed_positions`) a mark is keyed `"{source}@{shard}"`
//! (see [`replay_mark_key`]). Keys without `@` come from checkpoints written before marks
//! were per shard; such a per-source mark still applies to every shard of that source that
//! has no mark of its own yet, which is what the old one-source-per-shard contract meant.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cdc_event::Position;

use crate::SinkError;

/// The checkpoint key of the replay mark of `source` in `shard`: `"{source}@{shard}"`.
///
/// Parsed back by splitting at the last `@`, so a source name may contain `@`; a shard id may
/// not (DataHub's are decimal numbers).
pub fn replay_mark_key(source: &str, shard: &str) -> String {
    format!("{source}@{shard}")
}

#[derive(Debug, Default, Clone)]
pub(crate) struct ReplayMarks {
    by_shard: HashMap<(Arc<str>, Arc<str>), Position>,
    /// Per-source marks restored from an old checkpoint (keys without a shard).
    legacy: HashMap<Arc<str>, Position>,
}

impl ReplayMarks {
    pub(crate) fn from_checkpoint(saved: &BTreeMap<String, String>) -> Result<Self, SinkError> {
        let mut marks = Self::default();
        for (key, position) in saved {
            let position: Position =
                position
                    .parse()
                    .map_err(|source| SinkError::BadCheckpointPosition {
                        source_name: key.clone(),
                        source,
                    })?;
            match key.rsplit_once('@') {
                Some((source, shard)) if !shard.is_empty() => {
                    marks
                        .by_shard
                        .insert((Arc::from(source), Arc::from(shard)), position);
                }
                _ => {
                    marks.legacy.insert(Arc::from(key.as_str()), position);
                }
            }
        }
        Ok(marks)
    }

    fn mark(&self, source: &Arc<str>, shard: &Arc<str>) -> Option<&Position> {
        self.by_shard
            .get(&(source.clone(), shard.clone()))
            .or_else(|| self.legacy.get(source))
    }

    /// Whether an event of `source` at `position` read from `shard` was already written.
    pub(crate) fn is_replay(
        &self,
        source: &Arc<str>,
        shard: &Arc<str>,
        position: &Position,
    ) -> bool {
        self.mark(source, shard)
            .is_some_and(|mark| position <= mark)
    }

    /// Records that the event at `position` was written (callers check `is_replay` first, so
    /// the mark only grows).
    pub(crate) fn advance(&mut self, source: &Arc<str>, shard: &Arc<str>, position: Position) {
        self.by_shard
            .insert((source.clone(), shard.clone()), position);
    }

    pub(crate) fn to_checkpoint(&self) -> BTreeMap<String, String> {
        let legacy = self
            .legacy
            .iter()
            .map(|(source, p)| (source.to_string(), p.to_string()));
        let by_shard = self
            .by_shard
            .iter()
            .map(|((source, shard), p)| (replay_mark_key(source, shard), p.to_string()));
        legacy.chain(by_shard).collect()
    }
}
