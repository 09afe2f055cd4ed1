//! THE KILL TEST: runs the real `sink-harness` process (frequent checkpoints into a
//! `CheckpointStore` on disk) and SIGKILLs it at random moments and at chosen points of the
//! commit protocol, restarting it each time; after a final clean run, every input row is
//! committed exactly once (read back with pyarrow) and every dead letter is in `dlq/` once.
//!
//! `CDC_KILL_ROUNDS` (default 20) sets the number of kills, `CDC_KILL_SEED` the random seed.
//! No sleeps: the test waits for the harness's own progress lines (`CHECKPOINT ...`,
//! `PAUSED ...`) before it kills.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{all_files, pyarrow_ids, visible_files};

const HARNESS: &str = env!("CARGO_BIN_EXE_sink-harness");
const SHARDS: u64 = 2;
const CHECKPOINT_EVERY: u64 = 100;

/// xorshift64*: deterministic, dependency-free randomness for the kill schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The ids and dead letters the harness input must end up as (mirrors `record_at` in
/// `src/bin/sink-harness.rs`): offsets `o % 50 == 49` are replays (no row), offsets
/// `o % 97 == 13` of `orders` rows (`o % 3 != 0`) carry a bad value (dead letter).
fn expected(events: u64) -> (Vec<i64>, BTreeSet<(String, u64)>) {
    let mut ids = Vec::new();
    let mut dead = BTreeSet::new();
    for shard in 0..SHARDS {
        for offset in 0..events {
            if offset % 50 == 49 {
                continue;
            }
            if offset % 97 == 13 && offset % 3 != 0 {
                dead.insert((format!("shard-{shard}"), offset));
                continue;
            }
            ids.push((shard * 1_000_000 + offset) as i64);
        }
    }
    ids.sort_unstable();
    (ids, dead)
}

#[derive(Debug, Clone)]
enum KillAt {
    /// After `n` checkpoints of this run were committed: lands in the writes that follow.
    AfterCheckpoints(u64),
    /// At a pause point of the n-th checkpoint (`after-prepare`, `after-save`, `after-commit`).
    Pause(&'static str, u64),
}

fn spawn(out: &Path, state: &Path, events: u64, pause: Option<String>) -> Child {
    let mut command = Command::new(HARNESS);
    command
        .arg(out)
        .arg(state)
        .env("HARNESS_SHARDS", SHARDS.to_string())
        .env("HARNESS_EVENTS", events.to_string())
        .env("HARNESS_CHECKPOINT_EVERY", CHECKPOINT_EVERY.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(pause) = pause {
        command.env("HARNESS_PAUSE", pause);
    }
    command.spawn().expect("start sink-harness")
}

/// Parses `.../part-<shard>-<first>-<last>.<ext>` into (table dir, shard, first, last).
fn parse_data_file(path: &str) -> Option<(String, String, u64, u64)> {
    let mut parts = path.split('/');
    let table = format!("{}/{}", parts.next()?, parts.next()?);
    let name = path.rsplit('/').next()?;
    let stem = name.strip_prefix("part-")?.split('.').next()?;
    let mut pieces = stem.rsplitn(3, '-');
    let last = pieces.next()?.parse().ok()?;
    let first = pieces.next()?.parse().ok()?;
    let shard = pieces.next()?.to_owned();
    Some((table, shard, first, last))
}

/// What must hold after any crash: committed files never vanish, and no two committed files
/// of one table and shard cover overlapping offsets (which a duplicate would).
fn check_invariants(
    out: &Path,
    committed_before: &BTreeSet<String>,
    round: usize,
) -> BTreeSet<String> {
    let visible: BTreeSet<String> = visible_files(out).into_iter().collect();
    let lost: Vec<&String> = committed_before.difference(&visible).collect();
    assert!(
        lost.is_empty(),
        "round {round}: committed files vanished: {lost:?}"
    );
    let mut ranges: BTreeMap<(String, String), Vec<(u64, u64)>> = BTreeMap::new();
    for file in &visible {
        let parsed = parse_data_file(file);
        let Some((table, shard, first, last)) = parsed else {
            panic!("round {round}: unexpected visible file {file}");
        };
        ranges
            .entry((table, shard))
            .or_default()
            .push((first, last));
    }
    for (key, mut list) in ranges {
        list.sort_unstable();
        for pair in list.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "round {round}: {key:?} has overlapping committed files {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }
    visible
}

#[test]
fn killed_at_random_moments_the_sink_commits_every_row_exactly_once() {
    let rounds: usize = std::env::var("CDC_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CDC_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cafe_f00d_0001);
    // Each round progresses at most ~4 checkpoints of 100 records; leave room so every
    // round's kill lands before the input runs out.
    let events = (rounds as u64 * 250).max(2_500);
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let mut rng = Rng(seed | 1);
    let mut committed = BTreeSet::new();
    let mut landed = 0;
    let mut schedule = Vec::new();

    for round in 0..rounds {
        let n = 1 + rng.below(3);
        // Every fourth round hits the window between checkpoint save and rename.
        let kill_at = match (round % 4, rng.below(3)) {
            (1, _) => KillAt::Pause("after-save", n),
            (3, 0) => KillAt::Pause("after-prepare", n),
            (3, 1) => KillAt::Pause("after-commit", n),
            _ => KillAt::AfterCheckpoints(n),
        };
        let pause = match &kill_at {
            KillAt::Pause(point, n) => Some(format!("{point}:{n}")),
            KillAt::AfterCheckpoints(_) => None,
        };
        let mut child = spawn(&out, &state, events, pause);
        let stdout = child.stdout.take().expect("piped stdout");
        let mut checkpoints = 0;
        let mut reached = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read harness output");
            if line.starts_with("CHECKPOINT ") {
                checkpoints += 1;
            }
            reached = match &kill_at {
                KillAt::AfterCheckpoints(n) => checkpoints >= *n,
                KillAt::Pause(point, _) => line == format!("PAUSED {point}"),
            };
            if reached || line.starts_with("DONE") {
                break;
            }
        }
        // SIGKILL: no destructor, no flush, nothing of the process survives but its files.
        child.kill().expect("kill harness");
        let status = child.wait().expect("wait harness");
        assert!(
            reached || status.success(),
            "round {round}: harness failed before the kill point {kill_at:?}: {status}"
        );
        if reached {
            landed += 1;
        }
        schedule.push(format!("{kill_at:?}"));
        committed = check_invariants(&out, &committed, round);
    }

    // The final clean run to the end of the input.
    let child = spawn(&out, &state, events, None);
    let output = child.wait_with_output().expect("final run");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "final run failed: {}",
        output.status
    );
    let done = text.lines().last().unwrap_or_default();
    assert!(
        done.starts_with("DONE"),
        "final run output ends with {done:?}"
    );
    check_invariants(&out, &committed, rounds);
    assert!(
        all_files(&out.join(".inprogress")).is_empty(),
        "nothing left in progress"
    );

    let (expected_ids, expected_dead) = expected(events);
    let mut ids = pyarrow_ids(&out, "shop/orders");
    ids.extend(pyarrow_ids(&out, "shop/customers"));
    ids.sort_unstable();
    let duplicates = ids.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(
        duplicates, 0,
        "duplicated rows after {rounds} kills ({schedule:?})"
    );
    assert_eq!(ids.len(), expected_ids.len(), "row count ({schedule:?})");
    assert_eq!(ids, expected_ids, "rows ({schedule:?})");

    let mut dead = Vec::new();
    for file in visible_files(&out).iter().filter(|f| f.starts_with("dlq/")) {
        let content = std::fs::read_to_string(out.join(file)).expect("read dlq file");
        for line in content.lines() {
            let letter: serde_json::Value = serde_json::from_str(line).expect("dlq JSON line");
            let shard = letter["shard"].as_str().expect("shard").to_owned();
            let offset = letter["offset"].as_u64().expect("offset");
            assert_eq!(letter["stage"], "append");
            dead.push((shard, offset));
        }
    }
    dead.sort();
    let unique: BTreeSet<(String, u64)> = dead.iter().cloned().collect();
    assert_eq!(
        dead.len(),
        unique.len(),
        "a dead letter was committed twice"
    );
    assert_eq!(unique, expected_dead, "dead letters");
    assert_eq!(landed, rounds, "every kill landed mid-run ({schedule:?})");
    eprintln!(
        "kill test: {rounds} kills landed, {} rows and {} dead letters committed exactly once; schedule {schedule:?}",
        ids.len(),
        dead.len()
    );
}
