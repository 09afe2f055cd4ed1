//! Which shard an event goes to: a 128-bit MD5 hash of the table and its primary-key values,
//! placed in the shards' hash-key ranges as DataHub does for `PartitionKey`.
//!
//! Why key hashing: the sink's replay filter needs a source's positions to grow within each
//! shard, and readers need the changes of one row in order. Routing every change of a key to
//! the same shard gives both, and the routing is a pure function of the event, so a capture
//! that re-publishes after a restart sends each replayed event to the shard it went to before
//! (where the sink drops it by position).
//!
//! * Inserts, updates and snapshot reads go by the key of the **after** image, deletes by the
//!   **before** image. An update that changes the key therefore moves the row to the new key's
//!   shard; readers that merge shards by `_source_pos` (as the file sink's output is read)
//!   still see the delete-then-insert in order.
//! * A table without a primary key (or whose key columns are not in the schema) goes by table
//!   name only: all its rows share one shard, which keeps their order.
//! * Schema changes go by table (or database) name.

use cdc_event::{ChangeEvent, Event, Value};
use md5::Digest;

use crate::client::ShardInfo;

/// The routing hash of an event (see the module documentation).
pub fn route_hash(event: &Event) -> u128 {
    let mut key = Vec::with_capacity(64);
    match event {
        Event::Change(change) => change_key(change, &mut key),
        Event::SchemaChange(ddl) => match &ddl.table {
            Some(table) => push_table(&table.database, &table.table, &mut key),
            None => push_table(&ddl.database, "", &mut key),
        },
        // Heartbeats are not published; any constant will do.
        Event::Heartbeat(_) => {}
    }
    u128::from_be_bytes(md5::Md5::digest(&key).into())
}

fn push_table(database: &str, table: &str, out: &mut Vec<u8>) {
    push_field(b't', database.as_bytes(), out);
    push_field(b't', table.as_bytes(), out);
}

/// Length-prefixed, tagged fields: no two different keys encode to the same bytes.
fn push_field(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn change_key(change: &ChangeEvent, out: &mut Vec<u8>) {
    let schema = &change.schema;
    push_table(&schema.table.database, &schema.table.table, out);
    let image = match change.op {
        cdc_event::Op::Delete => change.before.as_ref(),
        _ => change.after.as_ref().or(change.before.as_ref()),
    };
    let Some(row) = image else { return };
    let indexes: Option<Vec<usize>> = schema.primary_key.iter().map(|name| schema.column_index(name)).collect();
    let Some(indexes) = indexes.filter(|i| !i.is_empty()) else { return };
    for index in indexes {
        match row.values.get(index) {
            Some(value) => push_value(value, out),
            None => push_field(b'n', b"", out),
        }
    }
}

/// A stable byte form of a key value. Stable across releases matters more than speed here:
/// changing it would send a key's later changes to another shard than its earlier ones.
fn push_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => push_field(b'n', b"", out),
        Value::Int(v) => push_field(b'i', v.to_string().as_bytes(), out),
        Value::UInt(v) => push_field(b'u', v.to_string().as_bytes(), out),
        Value::Float(v) => push_field(b'f', &v.to_bits().to_le_bytes(), out),
        Value::Double(v) => push_field(b'd', &v.to_bits().to_le_bytes(), out),
        Value::Decimal(s) => push_field(b'D', s.as_bytes(), out),
        Value::Text(s) | Value::Json(s) | Value::Enum(s) => push_field(b's', s.as_bytes(), out),
        Value::Bytes(b) => push_field(b'b', b, out),
        Value::Year(y) => push_field(b'y', y.to_string().as_bytes(), out),
        Value::Timestamp(us) => push_field(b'T', us.to_string().as_bytes(), out),
        Value::Bit { width, value } => push_field(b'B', format!("{width}:{value}").as_bytes(), out),
        Value::Set(members) => push_field(b'S', members.join(",").as_bytes(), out),
        Value::Geometry { srid, wkb } => {
            push_field(b'G', &srid.to_le_bytes(), out);
            push_field(b'g', wkb, out);
        }
        // Temporal structs: their Display forms are the SQL literals.
        Value::Date(d) => push_field(b'a', d.to_string().as_bytes(), out),
        Value::Time(t) => push_field(b'm', t.to_string().as_bytes(), out),
        Value::DateTime(t) => push_field(b'e', t.to_string().as_bytes(), out),
    }
}

/// The ACTIVE shards of a topic with their hash-key ranges, to place route hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// (begin inclusive, shard id), sorted by begin.
    ranges: Vec<(u128, String)>,
}

impl ShardMap {
    /// From ListShard: ACTIVE shards only (CLOSED ones take no writes). Shards without hash
    /// keys are given equal ranges in id order.
    pub fn new(shards: &[ShardInfo]) -> Option<Self> {
        let mut active: Vec<&ShardInfo> = shards.iter().filter(|s| s.state == "ACTIVE").collect();
        if active.is_empty() {
            return None;
        }
        let parsed: Option<Vec<(u128, String)>> = active
            .iter()
            .map(|s| u128::from_str_radix(&s.begin_hash_key, 16).ok().map(|b| (b, s.shard_id.clone())))
            .collect();
        let mut ranges = match parsed {
            Some(ranges) => ranges,
            None => {
                active.sort_by_key(|s| (s.shard_id.len(), s.shard_id.clone()));
                let step = u128::MAX / active.len() as u128;
                active.iter().enumerate().map(|(i, s)| (step * i as u128, s.shard_id.clone())).collect()
            }
        };
        ranges.sort();
        Some(ShardMap { ranges })
    }

    /// The shard whose range holds `hash`.
    pub fn shard_for(&self, hash: u128) -> &str {
        let i = self.ranges.partition_point(|(begin, _)| *begin <= hash);
        // Ranges start at 0, so `i >= 1`; `saturating_sub` keeps a gap below the first range
        // (a malformed listing) in the first shard rather than panicking.
        &self.ranges[i.saturating_sub(1)].1
    }

    pub fn shard_ids(&self) -> impl Iterator<Item = &str> {
        self.ranges.iter().map(|(_, id)| id.as_str())
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, begin: &str) -> ShardInfo {
        ShardInfo { shard_id: id.into(), state: "ACTIVE".into(), begin_hash_key: begin.into(), ..ShardInfo::default() }
    }

    #[test]
    fn hashes_fall_into_their_ranges() {
        let map = ShardMap::new(&[
            shard("1", "80000000000000000000000000000000"),
            shard("0", "00000000000000000000000000000000"),
            ShardInfo { state: "CLOSED".into(), ..shard("9", "40000000000000000000000000000000") },
        ])
        .unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map.shard_for(0), "0");
        assert_eq!(map.shard_for((1 << 127) - 1), "0");
        assert_eq!(map.shard_for(1 << 127), "1");
        assert_eq!(map.shard_for(u128::MAX), "1");
        assert!(ShardMap::new(&[ShardInfo { state: "CLOSED".into(), ..shard("0", "0") }]).is_none());
    }

    #[test]
    fn key_encoding_is_unambiguous() {
        let mut a = Vec::new();
        push_value(&Value::Text("ab".into()), &mut a);
        push_value(&Value::Text("c".into()), &mut a);
        let mut b = Vec::new();
        push_value(&Value::Text("a".into()), &mut b);
        push_value(&Value::Text("bc".into()), &mut b);
        assert_ne!(a, b);
        let (mut i, mut u) = (Vec::new(), Vec::new());
        push_value(&Value::Int(1), &mut i);
        push_value(&Value::Text("1".into()), &mut u);
        assert_ne!(i, u);
    }
}
