//! pydatahub 2.29.0's high-level `DatahubConsumer` in consumer-group mode (joinGroup,
//! heartBeat, syncGroup, leaveGroup, offsets open/commit) reads a 3-shard BLOB topic from
//! the real server on 127.0.0.1:0. `pydatahub_consumer.py` does the work and prints JSON:
//! consumer A alone reads N records; consumer B joins, the group rebalances (A releases a
//! shard via syncGroup, B resumes at the committed offsets); A and B then read M more.

mod common;

use std::collections::BTreeSet;

use common::{require_pydatahub, run_python, TestServer};
use serde_json::Value;

/// `[consumer, shard, sequence, value]` rows as tuples.
fn reads(v: &Value) -> Vec<(String, u64, u64, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().parse().unwrap(), r[2].as_u64().unwrap(), r[3].as_str().unwrap().to_string())
        })
        .collect()
}

/// Record `i` was put to shard `i % shards`, so it sits there at sequence `i / shards`.
/// Checks that `rows` hold records `start..start + count` exactly once, each read from the
/// right shard and sequence with the right value, in sequence order within a shard.
fn assert_exactly_once(rows: &[(String, u64, u64, String)], start: u64, count: u64, shards: u64, ctx: &dyn Fn() -> String) {
    assert_eq!(rows.len() as u64, count, "{}", ctx());
    let mut seen = BTreeSet::new();
    for (_, shard, seq, value) in rows {
        let i = seq * shards + shard;
        assert_eq!(value, &format!("\u{0}\u{1}value-{i}"), "shard {shard} seq {seq}: {}", ctx());
        assert!((start..start + count).contains(&i), "record {i} outside this phase: {}", ctx());
        assert!(seen.insert(i), "record {i} read twice: {}", ctx());
    }
    for s in 0..shards {
        let seqs: Vec<u64> = rows.iter().filter(|r| r.1 == s).map(|r| r.2).collect();
        let want: Vec<u64> = (start / shards..(start + count) / shards).collect();
        assert_eq!(seqs, want, "shard {s} out of order or incomplete: {}", ctx());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datahub_consumer_group_reads_every_record_once() {
    require_pydatahub();
    let server = TestServer::start(None).await;
    let logs = tempfile::tempdir().unwrap();
    let (ok, out) = run_python("pydatahub_consumer.py", vec![server.endpoint(), logs.path().display().to_string()]).await;
    println!("{out}");
    let sdk_log = std::fs::read_to_string(logs.path().join("DatahubClient.log")).unwrap_or_default();
    assert!(ok, "pydatahub consumer script failed:\n{out}\n--- DatahubClient.log ---\n{sdk_log}");
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in output:\n{out}"));
    let v: Value = serde_json::from_str(line).unwrap();
    let ctx = || format!("{v:#}\n--- DatahubClient.log ---\n{sdk_log}");

    assert_eq!(v["error"], Value::Null, "{}", ctx());
    assert_eq!(v["call_failures"], serde_json::json!([]), "{}", ctx());
    let (n, m, shards) = (v["n"].as_u64().unwrap(), v["m"].as_u64().unwrap(), v["shards"].as_u64().unwrap());

    // Phase 1: A alone was assigned every shard and read all N records once.
    let phase1 = reads(&v["phase1"]);
    assert!(phase1.iter().all(|r| r.0 == "a"), "{}", ctx());
    assert_exactly_once(&phase1, 0, n, shards, &ctx);
    assert_eq!(v["phase1_extra"], serde_json::json!([]), "nothing may be read after the last record: {}", ctx());
    for s in 0..shards {
        assert_eq!(v["committed_after_phase1"][s.to_string()].as_i64(), Some((n / shards) as i64 - 1), "shard {s}: {}", ctx());
    }

    // Rebalance: A released a shard through syncGroup; B resumed at the committed offsets, so
    // nothing was read again; the two hold disjoint shards covering the topic.
    assert_eq!(v["rebalance_reads"], serde_json::json!([]), "records re-read after the rebalance: {}", ctx());
    let sync = v["sync_args"].as_array().unwrap();
    assert!(sync.iter().any(|s| !s["release"].as_array().unwrap().is_empty()), "{}", ctx());
    let held = v["held_after_rebalance"].as_object().unwrap();
    assert_eq!(held.len(), 2, "{}", ctx());
    let mut all: Vec<String> = held.values().flat_map(|l| l.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string())).collect();
    all.sort();
    assert_eq!(all, (0..shards).map(|s| s.to_string()).collect::<Vec<_>>(), "{}", ctx());

    // Phase 2: A and B together read the M new records exactly once, both contributing.
    let phase2 = reads(&v["phase2"]);
    assert_exactly_once(&phase2, n, m, shards, &ctx);
    assert!(phase2.iter().any(|r| r.0 == "a") && phase2.iter().any(|r| r.0 == "b"), "{}", ctx());
    assert_eq!(v["phase2_extra"], serde_json::json!([]), "{}", ctx());
    for s in 0..shards {
        assert_eq!(v["committed"][s.to_string()].as_i64(), Some(((n + m) / shards) as i64 - 1), "shard {s}: {}", ctx());
    }

    // Every group endpoint was driven and answered successfully.
    let calls = &v["calls"];
    assert_eq!(calls["join_group"].as_u64(), Some(2), "{}", ctx());
    assert_eq!(calls["leave_group"].as_u64(), Some(2), "{}", ctx());
    assert!(calls["sync_group"].as_u64().unwrap() >= 1, "{}", ctx());
    assert!(calls["heart_beat"].as_u64().unwrap() >= 2, "{}", ctx());
    server.stop().await;
}
