//! Committed changes replayed into the table they describe, the judge of every test.
//!
//! The sinks' Parquet is read by pyarrow (`shared/sink/tests/read_dataset.py`, the reader of
//! the process-level pipeline test: dataset discovery as query engines do it, which skips
//! `.inprogress/` and `_`-prefixed paths); the relay's deliveries are Debezium envelopes
//! decoded with `cdc_event`. Either way the changes are applied in source-position order:
//! the latest image per key, a delete removing it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use cdc_event::{ChangeEvent, Op, Position, Value};
use serde_json::Value as Json;

use crate::source::Table;
use crate::workspace_root;

/// One committed change of `shop.items`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub position: Position,
    pub id: i64,
    pub name: Option<String>,
    pub qty: i64,
    pub deleted: bool,
}

/// The committed rows of `shop.items` under `root` (a sink's output directory, or a copy of
/// its objects) as pyarrow reads them.
pub fn read_committed(root: &Path) -> anyhow::Result<Vec<Change>> {
    if !root.join("shop/items").exists() {
        return Ok(Vec::new());
    }
    let script = workspace_root().join("shared/sink/tests/read_dataset.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(root)
        .arg("shop/items")
        .arg("id,name,qty,_source_pos,_deleted")
        .output()
        .with_context(|| format!("running python3 {}", script.display()))?;
    if !output.status.success() {
        bail!("{} {} failed: {}", script.display(), root.display(), String::from_utf8_lossy(&output.stderr));
    }
    let doc: Json = serde_json::from_slice(&output.stdout).context("read_dataset.py prints JSON")?;
    let rows = doc["rows"].as_array().context("read_dataset.py: no rows")?;
    rows.iter()
        .map(|row| {
            let position = row[3].as_str().context("_source_pos is text")?;
            Ok(Change {
                position: position.parse().map_err(|e| anyhow::anyhow!("_source_pos {position:?}: {e}"))?,
                id: row[0].as_i64().with_context(|| format!("id of {row}"))?,
                name: row[1].as_str().map(str::to_owned),
                qty: row[2].as_i64().with_context(|| format!("qty of {row}"))?,
                deleted: row[4].as_bool().with_context(|| format!("_deleted of {row}"))?,
            })
        })
        .collect()
}

/// Files a reader would see under `root/shop/items` (committed files; `.`/`_` paths skipped).
pub fn committed_files(root: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(['.', '_']))
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path)
                } else {
                    usize::from(path.extension().is_some_and(|x| x == "parquet"))
                }
            })
            .sum()
    }
    walk(&root.join("shop/items"))
}

/// Applies changes in position order. Exactly once: a position committed twice is an error.
pub fn replay_exactly_once(mut changes: Vec<Change>) -> anyhow::Result<Table> {
    changes.sort_by(|a, b| a.position.cmp(&b.position));
    if let Some(pair) = changes.windows(2).find(|w| w[0].position == w[1].position) {
        bail!("a change was committed twice: {:?} and {:?}", pair[0], pair[1]);
    }
    Ok(apply(changes))
}

/// Applies changes sorted by position.
pub fn apply(changes: impl IntoIterator<Item = Change>) -> Table {
    let mut table = Table::new();
    for change in changes {
        if change.deleted {
            table.remove(&change.id);
        } else {
            table.insert(change.id, (change.name, change.qty));
        }
    }
    table
}

/// The `shop.items` change in a Debezium envelope; `None` for other tables.
pub fn change_from_envelope(document: &Json) -> anyhow::Result<Option<Change>> {
    let event: ChangeEvent = cdc_event::debezium::from_json(document).map_err(|e| anyhow::anyhow!("not a Debezium change event: {e}"))?;
    if event.schema.table.database != "shop" || event.schema.table.table != "items" {
        return Ok(None);
    }
    let deleted = event.op == Op::Delete;
    let row = if deleted { event.before.as_ref() } else { event.after.as_ref() }.context("change without its row image")?;
    let column = |name: &str| row.get_by_name(&event.schema, name).with_context(|| format!("no column {name} in {document}"));
    let int = |value: &Value| match value {
        Value::Int(i) => Ok(*i),
        Value::UInt(u) => Ok(*u as i64),
        other => bail!("expected an integer, got {other:?}"),
    };
    let name = match column("name")? {
        Value::Null => None,
        Value::Text(text) => Some(text.clone()),
        other => bail!("name: expected text, got {other:?}"),
    };
    Ok(Some(Change { position: event.position.clone(), id: int(column("id")?)?, name, qty: int(column("qty")?)?, deleted }))
}

/// What differs between the source table and a replay, briefly.
pub fn diff(expected: &Table, actual: &Table) -> String {
    let mut lines = vec![format!("{} rows in the table, {} replayed", expected.len(), actual.len())];
    let mut keys: Vec<&i64> = expected.keys().chain(actual.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|k| expected.get(k) != actual.get(k))
        .map(|k| format!("id {k}: table {:?}, replayed {:?}", expected.get(k), actual.get(k)))
        .collect();
    lines.push(format!("{} ids differ", differing.len()));
    lines.extend(differing.into_iter().take(10));
    lines.join("\n  ")
}

/// Per shard, sequences that are missing between the first and the last one seen.
pub fn sequence_gaps(seen: &BTreeMap<String, std::collections::BTreeSet<u64>>) -> Vec<String> {
    let mut gaps = Vec::new();
    for (shard, sequences) in seen {
        let (Some(first), Some(last)) = (sequences.first(), sequences.last()) else { continue };
        let missing = (last - first + 1) as usize - sequences.len();
        if missing > 0 {
            let example = (*first..=*last).find(|s| !sequences.contains(s)).unwrap_or_default();
            gaps.push(format!("shard {shard}: {missing} of sequences {first}..={last} never delivered (e.g. {example})"));
        }
    }
    gaps
}
