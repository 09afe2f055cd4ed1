//! A topic's shard table: each shard's state, hash-key range and lineage, as ListShard shows
//! them. Split and merge only ever add shards and close old ones; a closed shard keeps its
//! data (readers drain it) and takes no more writes.
//!
//! Ranges are half-open `[begin, end)` over the 128-bit MD5 hash space. `u128::MAX` as an end
//! stands for the top of the space (2^128 does not fit), so the shard ending there also owns
//! the hash `u128::MAX` itself.

use serde::{Deserialize, Serialize};

use crate::error::{DatalogError, Result};

/// Largest number of ACTIVE shards in a topic (the service's limit).
pub const MAX_ACTIVE_SHARDS: usize = 256;
/// Largest number of shards in a topic, CLOSED ones included (the service's limit).
pub const MAX_TOTAL_SHARDS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ShardState {
    Active,
    /// Split or merged away: readable to its end, no more writes.
    Closed,
}

impl ShardState {
    /// The name ListShard uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Active => "ACTIVE",
            ShardState::Closed => "CLOSED",
        }
    }
}

/// One row of the shard table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub id: u32,
    pub state: ShardState,
    /// Inclusive start of the hash range.
    #[serde(with = "hex128")]
    pub begin_hash_key: u128,
    /// Exclusive end of the hash range (`u128::MAX`: the top of the space).
    #[serde(with = "hex128")]
    pub end_hash_key: u128,
    /// The shard this one was split from, or the two it was merged from.
    #[serde(default)]
    pub parents: Vec<u32>,
    /// When it was closed, epoch seconds.
    #[serde(default)]
    pub closed_time: Option<i64>,
}

impl ShardMeta {
    pub fn is_active(&self) -> bool {
        self.state == ShardState::Active
    }

    /// Whether this shard's range holds `hash`.
    pub fn owns(&self, hash: u128) -> bool {
        self.begin_hash_key <= hash && (hash < self.end_hash_key || (self.end_hash_key == u128::MAX && hash == u128::MAX))
    }

    /// Hex as ListShard prints hash keys: 32 upper-case digits.
    pub fn begin_hex(&self) -> String {
        format!("{:032X}", self.begin_hash_key)
    }
    pub fn end_hex(&self) -> String {
        format!("{:032X}", self.end_hash_key)
    }
}

/// Shard `i` of `n` at creation owns `[i * step, (i + 1) * step)`, `step = u128::MAX / n`; the
/// last one runs to the top.
pub fn initial_range(i: u32, n: u32) -> (u128, u128) {
    let step = u128::MAX / n.max(1) as u128;
    let begin = step * i as u128;
    let end = if i + 1 >= n { u128::MAX } else { step * (i as u128 + 1) };
    (begin, end)
}

/// The table of a topic created with `n` shards.
pub fn initial_table(n: u32) -> Vec<ShardMeta> {
    (0..n)
        .map(|id| {
            let (begin_hash_key, end_hash_key) = initial_range(id, n);
            ShardMeta { id, state: ShardState::Active, begin_hash_key, end_hash_key, parents: Vec::new(), closed_time: None }
        })
        .collect()
}

/// Parses a hash key as clients send it: up to 32 hex digits, either case, no padding needed
/// (pydatahub's default split key is `hex(mid)[2:34]`, unpadded lower case).
pub fn parse_hash_key(s: &str) -> Result<u128> {
    let t = s.trim();
    if t.is_empty() || t.len() > 32 {
        return Err(DatalogError::InvalidParameter(format!("hash key {s:?} is not 1 to 32 hex digits")));
    }
    u128::from_str_radix(t, 16).map_err(|_| DatalogError::InvalidParameter(format!("hash key {s:?} is not hexadecimal")))
}

fn find(table: &[ShardMeta], id: u32) -> Result<usize> {
    table.iter().position(|s| s.id == id).ok_or_else(|| DatalogError::NoSuchShard(id.to_string()))
}

fn next_id(table: &[ShardMeta]) -> u32 {
    table.iter().map(|s| s.id + 1).max().unwrap_or(0)
}

fn check_active(table: &[ShardMeta], i: usize) -> Result<()> {
    if table[i].is_active() {
        Ok(())
    } else {
        Err(DatalogError::ShardClosed(table[i].id))
    }
}

/// Plans a split of `id` at `split_key`: the new table and the two children (left first).
pub(crate) fn plan_split(table: &[ShardMeta], id: u32, split_key: u128, now_s: i64) -> Result<(Vec<ShardMeta>, [ShardMeta; 2])> {
    let i = find(table, id)?;
    check_active(table, i)?;
    let parent = &table[i];
    if split_key <= parent.begin_hash_key || split_key >= parent.end_hash_key {
        return Err(DatalogError::InvalidParameter(format!(
            "split key {split_key:032X} is not strictly inside shard {id}'s range [{}, {})",
            parent.begin_hex(),
            parent.end_hex()
        )));
    }
    if table.len() + 2 > MAX_TOTAL_SHARDS {
        return Err(DatalogError::InvalidParameter(format!("a topic holds at most {MAX_TOTAL_SHARDS} shards, closed ones included")));
    }
    if table.iter().filter(|s| s.is_active()).count() + 1 > MAX_ACTIVE_SHARDS {
        return Err(DatalogError::InvalidParameter(format!("a topic holds at most {MAX_ACTIVE_SHARDS} active shards")));
    }
    let first = next_id(table);
    let child = |id: u32, begin, end| ShardMeta { id, state: ShardState::Active, begin_hash_key: begin, end_hash_key: end, parents: vec![parent.id], closed_time: None };
    let children = [child(first, parent.begin_hash_key, split_key), child(first + 1, split_key, parent.end_hash_key)];
    let mut next = table.to_vec();
    next[i].state = ShardState::Closed;
    next[i].closed_time = Some(now_s);
    next.extend(children.iter().cloned());
    Ok((next, children))
}

/// Plans a merge of two adjacent active shards (either order): the new table and the child.
pub(crate) fn plan_merge(table: &[ShardMeta], id: u32, adjacent: u32, now_s: i64) -> Result<(Vec<ShardMeta>, ShardMeta)> {
    let (a, b) = (find(table, id)?, find(table, adjacent)?);
    check_active(table, a)?;
    check_active(table, b)?;
    let (lo, hi) = if table[a].begin_hash_key <= table[b].begin_hash_key { (a, b) } else { (b, a) };
    if a == b || table[lo].end_hash_key != table[hi].begin_hash_key {
        return Err(DatalogError::InvalidParameter(format!("shards {id} and {adjacent} are not adjacent: their hash ranges do not touch")));
    }
    if table.len() + 1 > MAX_TOTAL_SHARDS {
        return Err(DatalogError::InvalidParameter(format!("a topic holds at most {MAX_TOTAL_SHARDS} shards, closed ones included")));
    }
    let child = ShardMeta {
        id: next_id(table),
        state: ShardState::Active,
        begin_hash_key: table[lo].begin_hash_key,
        end_hash_key: table[hi].end_hash_key,
        parents: vec![table[lo].id, table[hi].id],
        closed_time: None,
    };
    let mut next = table.to_vec();
    for i in [lo, hi] {
        next[i].state = ShardState::Closed;
        next[i].closed_time = Some(now_s);
    }
    next.push(child.clone());
    Ok((next, child))
}

/// The active neighbours of an active shard: the ones whose ranges end where it begins
/// (left) and begin where it ends (right).
pub fn neighbours(table: &[ShardMeta], shard: &ShardMeta) -> (Option<u32>, Option<u32>) {
    if !shard.is_active() {
        return (None, None);
    }
    let active = || table.iter().filter(|s| s.is_active() && s.id != shard.id);
    let left = active().find(|s| s.end_hash_key == shard.begin_hash_key).map(|s| s.id);
    let right = active().find(|s| s.begin_hash_key == shard.end_hash_key).map(|s| s.id);
    (left, right)
}

mod hex128 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:032X}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        u128::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_then_merge_back() {
        let t = initial_table(2);
        assert_eq!(t[0].end_hash_key, t[1].begin_hash_key);
        assert_eq!(t[1].end_hash_key, u128::MAX);
        let mid = t[0].end_hash_key / 2;
        let (t, [l, r]) = plan_split(&t, 0, mid, 7).unwrap();
        assert_eq!((l.id, r.id), (2, 3));
        assert_eq!((l.begin_hash_key, l.end_hash_key, r.begin_hash_key, r.end_hash_key), (0, mid, mid, t[1].begin_hash_key));
        assert_eq!(l.parents, vec![0]);
        assert_eq!((t[0].state, t[0].closed_time), (ShardState::Closed, Some(7)));
        assert!(matches!(plan_split(&t, 0, mid / 2, 8), Err(DatalogError::ShardClosed(0))));
        assert!(matches!(plan_split(&t, 2, mid, 8), Err(DatalogError::InvalidParameter(_))), "split key at the range start");
        assert_eq!(neighbours(&t, &t[3]), (Some(2), Some(1)));
        assert_eq!(neighbours(&t, &t[0]), (None, None));
        // 2 and 1 do not touch; 3 and 2 do, in either order.
        assert!(matches!(plan_merge(&t, 2, 1, 9), Err(DatalogError::InvalidParameter(_))));
        let (t, m) = plan_merge(&t, 3, 2, 9).unwrap();
        assert_eq!((m.id, m.begin_hash_key, m.end_hash_key, m.parents.clone()), (4, 0, t[1].begin_hash_key, vec![2, 3]));
        assert_eq!(t.iter().filter(|s| s.is_active()).map(|s| s.id).collect::<Vec<_>>(), vec![1, 4]);
        // Every hash has exactly one active owner.
        for h in [0, 1, mid, t[1].begin_hash_key - 1, t[1].begin_hash_key, u128::MAX - 1, u128::MAX] {
            assert_eq!(t.iter().filter(|s| s.is_active() && s.owns(h)).count(), 1, "{h:x}");
        }
        assert_eq!(parse_hash_key("7fffffffffffffffffffffffffffffff").unwrap(), u128::MAX / 2);
        assert_eq!(parse_hash_key("ff").unwrap(), 255);
        assert!(parse_hash_key("xyz").is_err() && parse_hash_key("").is_err());
    }
}
